#!/usr/bin/env python3
# tests/linux/test_linux_boot.py - boots Debian's stock kernel on gmm-vmm
# with a busybox initramfs, in plain and in gmm memory mode, and checks
# that the kernel's console shows the e820 map gmm-vmm built (512 MiB: low
# RAM, the EBDA and BIOS holes, RAM from 1 MiB) and the command line it
# passed, then that busybox's /init runs and reports back: it checks the
# command line it sees, prints a line on the serial console and writes its
# status to gmm-vmm's power-off port through /dev/port, so gmm-vmm exits 0
# only if /init ran and found what it expected.
#
# Suite 'linux'.  A stock kernel needs a KVM that runs guest kernel mode at
# full speed: on a kvm_pvm machine (/sys/module/kvm_pvm) it would take more
# than 18 minutes, so there this test runs itself inside the emulated KVM
# host (tests/kvmhost/kvmhost.py); scripts/test.sh already runs the whole
# suite there.  Without /dev/kvm it exits 77 (skip) saying so.
import os
import re
import sys
import time

import linux_runner
from linux_runner import kvmhost, POWEROFF_PORT

VMM = os.path.abspath(sys.argv[1])
MEMORY_MIB = 512
MODES = ['plain', 'gmm']
# Seconds one boot may take from gmm-vmm's start to /init's report (inside
# the emulated host a boot takes 20-40 s of wall time).
BOOT_DEADLINE = 300
MARK = 'gmm.test=%d' % os.getpid()
CMDLINE = linux_runner.cmdline('rdinit=/init', MARK)
INIT_MARK = 'gmm-init: /init is running'
# The e820 map gmm-vmm builds for one RAM slot at 0 (vmm/loader.c), as
# the kernel prints it.
E820 = [(0x0, 0x9fbff, 'usable'), (0x9fc00, 0x9ffff, 'reserved'),
        (0xf0000, 0xfffff, 'reserved'), (0x100000, MEMORY_MIB * 2**20 - 1, 'usable')]

INIT = r'''#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "@INIT_MARK@ (pid $$, $(/bin/busybox uname -r))"
status=0
/bin/busybox grep -q "@MARK@" /proc/cmdline || status=1
echo "gmm-init: $(/bin/busybox grep MemTotal /proc/meminfo); command line mark: $((1 - status))/1"
echo "gmm-init: reporting status $status on port @PORT@"
/bin/busybox printf "\\$status" |
	/bin/busybox dd of=/dev/port bs=1 seek=@PORT@ count=1 conv=notrunc 2>/dev/null
echo "gmm-init: still running after the power-off port"
/bin/busybox sleep 1000
'''


def build_initramfs(path):
    init = (INIT.replace('@INIT_MARK@', INIT_MARK).replace('@MARK@', MARK)
            .replace('@PORT@', str(POWEROFF_PORT)))
    linux_runner.build_initramfs(path, init)


def e820_ok(lines):
    """The kernel's BIOS-e820 lines must be exactly the map gmm-vmm built."""
    seen = []
    for line in lines:
        m = re.search(r'BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+)', line)
        if m:
            seen.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    if seen != E820:
        print('FAIL: e820 map %s, expected %s' % (
            [(hex(a), hex(b), t) for a, b, t in seen], [(hex(a), hex(b), t) for a, b, t in E820]))
        return False
    return True


def cmdline_ok(lines):
    got = [line.split('Command line:', 1)[1].strip() for line in lines if 'Command line:' in line]
    if got[:1] != [CMDLINE]:
        print('FAIL: kernel command line %r, expected %r' % (got[:1], CMDLINE))
        return False
    return True


def boot(image, initrd, mode):
    """Boot once; return True when every check passed."""
    argv = [VMM, '--kernel', image, '--initrd', initrd, '--memory', '%dM' % MEMORY_MIB,
            '--memory-mode', mode, '--cmdline', CMDLINE]
    print('--- %s mode: %s' % (mode, ' '.join(argv)), flush=True)
    start = time.monotonic()
    rc, lines = linux_runner.boot_twice(
        lambda: kvmhost.run_streamed(argv, BOOT_DEADLINE), '%s mode' % mode)
    if rc is None:
        print('FAIL: %s mode: no report from /init within %d s' % (mode, BOOT_DEADLINE))
    took = time.monotonic() - start
    ok = e820_ok(lines) & cmdline_ok(lines)
    reached = any(INIT_MARK in line for line in lines)
    if not reached:
        print('FAIL: %s mode: /init did not run' % mode)
    if rc != 0:
        print('FAIL: %s mode: gmm-vmm exit %s (0 = /init reported status 0)' % (mode, rc))
    print('%s mode: e820 and command line %s, /init %s, gmm-vmm exit %s after %.1f s' %
          (mode, 'as built' if ok else 'WRONG', 'reached' if reached else 'NOT reached',
           rc, took), flush=True)
    return ok and reached and rc == 0


def body(image, moddir, tmp):
    initrd = os.path.join(tmp, 'initramfs.cpio')
    build_initramfs(initrd)
    results = {mode: boot(image, initrd, mode) for mode in MODES}
    print('linux boot: ' + ', '.join('%s %s' % (m, 'pass' if r else 'FAIL')
                                     for m, r in results.items()))
    return all(results.values())


sys.exit(linux_runner.main('boot', __file__, [VMM], 840, body))
