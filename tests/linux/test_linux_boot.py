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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'kvmhost'))
import kvmhost  # noqa: E402  (the initramfs writer and the kernel finder)

VMM = os.path.abspath(sys.argv[1])
MEMORY_MIB = 512
MODES = ['plain', 'gmm']
# Seconds one boot may take from gmm-vmm's start to /init's report (inside
# the emulated host a boot takes 20-40 s of wall time).
BOOT_DEADLINE = 300
MARK = 'gmm.test=%d' % os.getpid()
# gmm-vmm has no CMOS clock: rtc_cmos would spin about 30 s waiting for
# its update flag to clear, so its initcall is left out.
CMDLINE = ('console=ttyS0 panic=-1 acpi=off pci=conf1 pci=noearly tsc=reliable '
           'no_timer_check mitigations=off nowatchdog initcall_blacklist=cmos_init '
           'rdinit=/init ' + MARK)
INIT_MARK = 'gmm-init: /init is running'
# gmm-vmm's power-off port (HOSTDEV_POWEROFF in vmm/vmm.h): /init writes
# its status there through /dev/port.
POWEROFF_PORT = 0x508
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
    with open('/bin/busybox', 'rb') as f:
        busybox = f.read()
    c = kvmhost.Cpio()
    for d in ('bin', 'dev', 'proc', 'sys'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.file('bin/busybox', busybox, 0o755)
    c.file('init', init.encode(), 0o755)
    with open(path, 'wb') as f:
        f.write(c.finish())


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
    rc, lines = kvmhost.run_streamed(argv, BOOT_DEADLINE)
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


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists('/sys/module/kvm_pvm') and not os.environ.get('GMM_KVMHOST'):
        return kvmhost.rerun_inside(__file__, [VMM], 840)
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the Linux boot test did not run '
              '(scripts/test.sh runs it in the emulated KVM host)')
        return 77
    image, _ = kvmhost.find_kernel(None)
    if not image:
        print('FAIL: no /boot/vmlinuz-VER with its modules: install linux-image-amd64 '
              '(scripts/setup.sh does)')
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, 'initramfs.cpio')
        build_initramfs(initrd)
        results = {mode: boot(image, initrd, mode) for mode in MODES}
    print('linux boot: ' + ', '.join('%s %s' % (m, 'pass' if r else 'FAIL')
                                     for m, r in results.items()))
    return 0 if all(results.values()) else 1


sys.exit(main())
