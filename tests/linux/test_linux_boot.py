#!/usr/bin/env python3
# tests/linux/test_linux_boot.py - boots Debian's stock kernel on gmm-vmm
# (installing linux-image-amd64 if /boot has no vmlinuz) and checks that
# within 90 s its console shows the e820 map gmm-vmm built and the command
# line it passed. Suite 'linux': a long test, not in the default run.
import glob
import os
import re
import selectors
import signal
import subprocess
import sys
import time

VMM = sys.argv[1]
DEADLINE = 90
MARK = 'gmm.test=%d' % os.getpid()
CMDLINE = ('console=ttyS0 panic=-1 mitigations=off init_on_alloc=0 cryptomgr.notests=1 '
           'lsm=capability tsc=reliable no_timer_check nr_cpus=1 acpi=off pci=conf1 '
           'rodata=off audit=0 nowatchdog noxsave nopcid nopku '
           'clearcpuid=141,154,308,288,298,145,151,158,306,137,147,148,534,317,153,129 '
           'rcupdate.rcu_cpu_stall_suppress=1 ' + MARK)


def kernel():
    found = sorted(glob.glob('/boot/vmlinuz-*'))
    if found:
        return found[-1]
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-q'], env=env, check=False)
    subprocess.run(['apt-get', 'install', '-y', '-q', 'linux-image-amd64'], env=env, check=True)
    found = sorted(glob.glob('/boot/vmlinuz-*'))
    return found[-1] if found else None


def main():
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the Linux boot test did not run')
        return 77
    image = kernel()
    if not image:
        print('FAIL: no kernel in /boot after installing linux-image-amd64')
        return 1
    print('booting %s' % image)
    p = subprocess.Popen([VMM, '--kernel', image, '--memory', '512M', '--cmdline', CMDLINE],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    start, e820, cmdline = time.monotonic(), False, False
    while time.monotonic() - start < DEADLINE and not (e820 and cmdline):
        if not sel.select(timeout=1):
            continue
        line = p.stdout.readline()
        if not line:
            break
        sys.stdout.write(line)
        e820 = e820 or re.search(r'BIOS-e820: \[mem 0x0*100000-0x[0-9a-f]+\] usable', line)
        cmdline = cmdline or ('Command line:' in line and MARK in line)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    took = time.monotonic() - start
    print('e820 map: %s, command line: %s, after %.1f s; gmm-vmm exit %d' %
          (bool(e820), bool(cmdline), took, rc))
    return 0 if e820 and cmdline else 1


sys.exit(main())
