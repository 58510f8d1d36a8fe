#!/usr/bin/env python3
# tests/linux/test_linux_balloon.py - Linux's own virtio_pci and
# virtio_balloon modules (Debian's kernel, busybox initramfs) against
# gmm-vmm's virtio-balloon, in plain and gmm memory mode: gmm-vmm starts
# with --balloon target= half the RAM and a stats period of 1 s; /init loads
# the modules and waits until MemTotal shrinks by that half (the driver
# inflated to the target), shows the bound device's features and
# reports back through the power-off port. The test checks /init's status,
# "Free page reporting enabled" on the console, and gmm-vmm's summary: the
# pages in the balloon, stats updates from the guest, free memory the guest
# reported, no broken ring.
#
# Usage: test_linux_balloon.py GMM_VMM [MODE...]. Suite 'linux'. On a kvm_pvm machine this runs itself inside the emulated
# KVM host (tests/kvmhost/kvmhost.py), as test_linux_boot.py does; without
# /dev/kvm it exits 77 (skip) saying so.
import json
import os
import sys

import linux_runner
from linux_runner import kvmhost, POWEROFF_PORT

VMM = os.path.abspath(sys.argv[1])
MEMORY_MIB = 512
TARGET_MIB = 256
# /init's pass mark: MemTotal shrinks by the whole balloon (each inflated
# page leaves MemTotal when DEFLATE_ON_OOM is not negotiated)
SHRINK_KIB = (MEMORY_MIB - TARGET_MIB) * 1024
MODES = sys.argv[2:] or ['plain', 'gmm']
MODULES = ['virtio_pci', 'virtio_balloon']
# Seconds /init waits for the balloon, and one boot may take in all (inside
# the emulated host a boot alone takes 20-40 s of wall time).
INFLATE_WAIT = 240
BOOT_DEADLINE = 420
INIT_MARK = 'gmm-init: /init is running'
REPORTING_LINE = 'Free page reporting enabled'
CMDLINE = linux_runner.cmdline('rdinit=/init')

INIT = r'''#!/bin/busybox sh
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
echo "@INIT_MARK@"
total() { $bb awk '/^MemTotal:/ {print $2}' /proc/meminfo; }
before=$(total)
echo "gmm-init: MemTotal $before kB before the balloon"
for m in $($bb cat /modules.order); do
	$bb insmod /lib/modules/$m || echo "gmm-init: insmod $m failed"
done
status=1
i=0
now=$before
while [ $i -lt @WAIT@ ]; do
	now=$(total)
	if [ $((before - now)) -ge @SHRINK@ ]; then status=0; break; fi
	$bb sleep 1
	i=$((i + 1))
done
echo "gmm-init: MemTotal $now kB after ${i} s: shrunk by $((before - now)) kB"
bound=0
for d in /sys/bus/virtio/drivers/virtio_balloon/virtio*; do
	[ -e "$d/features" ] && bound=1 && echo "gmm-init: virtio_balloon bound to $d, features $($bb cat $d/features)"
done
[ $bound = 1 ] || { echo "gmm-init: virtio_balloon bound to nothing"; status=1; }
# stats (period 1 s) and a free page reporting pass (2 s after pages free up)
$bb sleep 5
echo "gmm-init: reporting status $status on port @PORT@"
$bb printf "\\$status" | $bb dd of=/dev/port bs=1 seek=@PORT@ count=1 conv=notrunc 2>/dev/null
$bb sleep 1000
'''


def build_initramfs(path, moddir):
    init = (INIT.replace('@INIT_MARK@', INIT_MARK).replace('@PORT@', str(POWEROFF_PORT))
            .replace('@WAIT@', str(INFLATE_WAIT)).replace('@SHRINK@', str(SHRINK_KIB)))
    return linux_runner.build_initramfs(path, init, moddir, MODULES)


def run(image, initrd, mode):
    argv = [VMM, '--kernel', image, '--initrd', initrd, '--memory', '%dM' % MEMORY_MIB,
            '--memory-mode', mode, '--cmdline', CMDLINE,
            '--balloon=stats-period=1,target=%dM' % TARGET_MIB]
    print('--- %s mode: %s' % (mode, ' '.join(argv)), flush=True)
    rc, lines = linux_runner.boot_twice(
        lambda: kvmhost.run_streamed(argv, BOOT_DEADLINE), '%s mode' % mode)
    if rc is None:
        print('FAIL: %s mode: no report from /init within %d s' % (mode, BOOT_DEADLINE))
    return rc, lines


def check(mode, rc, lines):
    ok = True

    def bad(what):
        nonlocal ok
        ok = False
        print('FAIL: %s mode: %s' % (mode, what))

    summ = [json.loads(x) for x in lines if x.startswith('{"vmm":"summary"')]
    if rc != 0:
        bad('gmm-vmm exit %s (0 = /init saw MemTotal shrink and the driver bound)' % rc)
    if not any(REPORTING_LINE in x for x in lines):
        bad('no "%s" on the console' % REPORTING_LINE)
    if not summ:
        bad('no summary line')
        return False
    s = summ[0]
    want = (MEMORY_MIB - TARGET_MIB) * 256
    if s['balloon_pages'] != want:
        bad('%d pages in the balloon, target %d' % (s['balloon_pages'], want))
    if s['balloon_stats_updates'] < 2:
        bad('%d stats updates from the guest' % s['balloon_stats_updates'])
    if s['balloon_reported_bytes'] <= 0:
        bad('the guest reported no free memory')
    if s['balloon_broken']:
        bad('%d broken rings' % s['balloon_broken'])
    print('%s mode: exit %s, balloon %d pages, %d stats updates, %d MiB reported free' %
          (mode, rc, s['balloon_pages'], s['balloon_stats_updates'],
           s['balloon_reported_bytes'] >> 20), flush=True)
    return ok


def body(image, moddir, tmp):
    initrd = os.path.join(tmp, 'initramfs.cpio')
    print('modules: %s' % ' '.join(build_initramfs(initrd, moddir)))
    results = {mode: check(mode, *run(image, initrd, mode)) for mode in MODES}
    print('linux balloon: ' + ', '.join('%s %s' % (m, 'pass' if r else 'FAIL')
                                        for m, r in results.items()))
    return all(results.values())


sys.exit(linux_runner.main('balloon', __file__, [VMM] + MODES, 1700, body))
