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
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'kvmhost'))
import kvmhost  # noqa: E402  (the initramfs writer, kernel and module finders)

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
POWEROFF_PORT = 0x508  # HOSTDEV_POWEROFF in vmm/vmm.h
CMDLINE = ('console=ttyS0 panic=-1 acpi=off pci=conf1 pci=noearly tsc=reliable '
           'no_timer_check mitigations=off nowatchdog initcall_blacklist=cmos_init '
           'rdinit=/init')

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
for m in @MODULES@; do
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


def ko_name(path):
    """The module's file name in the initramfs (stored decompressed)."""
    name = os.path.basename(path)
    for ext in ('.xz', '.zst'):
        if name.endswith(ext):
            name = name[:-len(ext)]
    return name


def build_initramfs(path, moddir):
    order = kvmhost.module_order(moddir, MODULES)
    names = [ko_name(m) for m in order]
    init = (INIT.replace('@INIT_MARK@', INIT_MARK).replace('@PORT@', str(POWEROFF_PORT))
            .replace('@WAIT@', str(INFLATE_WAIT)).replace('@SHRINK@', str(SHRINK_KIB))
            .replace('@MODULES@', ' '.join(names)))
    with open('/bin/busybox', 'rb') as f:
        busybox = f.read()
    c = kvmhost.Cpio()
    for d in ('bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.file('bin/busybox', busybox, 0o755)
    for m, name in zip(order, names):
        c.file('lib/modules/' + name, kvmhost.module_bytes(os.path.join(moddir, m)))
    c.file('init', init.encode(), 0o755)
    with open(path, 'wb') as f:
        f.write(c.finish())
    return names


def run(image, initrd, mode):
    argv = [VMM, '--kernel', image, '--initrd', initrd, '--memory', '%dM' % MEMORY_MIB,
            '--memory-mode', mode, '--cmdline', CMDLINE,
            '--balloon=stats-period=1,target=%dM' % TARGET_MIB]
    print('--- %s mode: %s' % (mode, ' '.join(argv)), flush=True)
    rc, lines = kvmhost.run_streamed(argv, BOOT_DEADLINE)
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


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists('/sys/module/kvm_pvm') and not os.environ.get('GMM_KVMHOST'):
        return kvmhost.rerun_inside(__file__, [VMM] + MODES, 1700)
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the Linux balloon test did not run '
              '(scripts/test.sh runs it in the emulated KVM host)')
        return 77
    image, moddir = kvmhost.find_kernel(None)
    if not image:
        print('FAIL: no /boot/vmlinuz-VER with its modules: install linux-image-amd64')
        return 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, 'initramfs.cpio')
        print('modules: %s' % ' '.join(build_initramfs(initrd, moddir)))
        for mode in MODES:
            results[mode] = check(mode, *run(image, initrd, mode))
    print('linux balloon: ' + ', '.join('%s %s' % (m, 'pass' if r else 'FAIL')
                                        for m, r in results.items()))
    return 0 if all(results.values()) else 1


sys.exit(main())
