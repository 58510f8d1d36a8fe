#!/usr/bin/env python3
# tests/linux/test_linux_vmem.py - Debian's stock kernel with its own
# virtio_pci and virtio_mem modules on gmm-vmm's virtio-mem device: raising
# requested-size through QMP makes the driver plug memory (MemTotal grows by
# exactly that much, onlined by memhp_default_state=online_movable),
# lowering it makes the driver unplug it again (MemTotal back), and
# MEMORY_DEVICE_SIZE_CHANGE reports the plugged sizes on the way.
#
# Suite 'linux', like test_linux_boot.py: on a kvm_pvm machine it runs
# itself inside the emulated KVM host; without /dev/kvm it exits 77.
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time

import linux_runner

VMM = os.path.abspath(sys.argv[1])
MEMORY_MIB = 512
PLUG_MIB = 128
DEADLINE = 600          # seconds for the whole run (emulated host: slow)
CMDLINE = linux_runner.cmdline('memhp_default_state=online_movable', 'rdinit=/init')
MODULES = ['virtio_pci', 'virtio_mem']
READY = 'gmm-vmem: modules loaded'

INIT = r'''#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in $(/bin/busybox cat /modules.order); do
	/bin/busybox insmod /lib/modules/$m || echo "gmm-vmem: insmod $m failed"
done
echo "@READY@"
while true; do
	echo "gmm-vmem: $(/bin/busybox grep MemTotal /proc/meminfo)"
	/bin/busybox sleep 1
done
'''


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile('rw')
        self.events = []
        self.f.readline()
        self.cmd('qmp_capabilities')

    def cmd(self, name, args=None):
        req = {'execute': name}
        if args is not None:
            req['arguments'] = args
        self.f.write(json.dumps(req) + '\n')
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if 'event' in r:
                self.events.append(r)
                continue
            return r


class Run:
    """gmm-vmm's console, line by line, with the latest MemTotal."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ)
        self.lines = []
        self.memtotal = None

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.sel.select(timeout=0.5):
                continue
            line = self.p.stdout.readline()
            if not line:
                return False
            self.lines.append(line)
            sys.stdout.write(line)
            m = re.search(r'gmm-vmem: MemTotal:\s+(\d+) kB', line)
            if m:
                self.memtotal = int(m.group(1))
        return True

    def wait_for(self, cond, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if cond():
                return True
            if not self.pump(1):
                return cond()
        return cond()


def fail(what):
    print('FAIL: ' + what, flush=True)
    return False


def set_requested(q, mib):
    r = q.cmd('qom-set', {'path': '/machine/peripheral/vm0', 'property': 'requested-size',
                          'value': mib << 20})
    return 'return' in r


def run_test(image, initrd, tmp):
    """(passed, console lines) of one boot."""
    sock = os.path.join(tmp, 'qmp.sock')
    argv = [VMM, '--kernel', image, '--initrd', initrd, '--memory', '%dM' % MEMORY_MIB,
            '--cmdline', CMDLINE, '--qmp', sock,
            '--virtio-mem', 'id=vm0,size=%dM' % (2 * PLUG_MIB)]
    print('--- ' + ' '.join(argv), flush=True)
    start = time.monotonic()
    r = Run(argv)
    ok = False
    try:
        ok = check_run(r, sock, start)
    finally:
        try:
            r.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            r.p.kill()
            r.p.wait()
    return ok, r.lines


def check_run(r, sock, start):
    """Plug and unplug through QMP while the guest runs; True when all held."""
    if not r.wait_for(lambda: any(READY in l for l in r.lines) and r.memtotal,
                      DEADLINE / 2):
        return fail('the modules were not loaded / no MemTotal from /init')
    if any('insmod' in l and 'failed' in l for l in r.lines):
        return fail('insmod failed')
    base = r.memtotal
    q = Qmp(sock)
    if not set_requested(q, PLUG_MIB):
        return fail('qom-set requested-size %d MiB' % PLUG_MIB)
    want = base + PLUG_MIB * 1024
    if not r.wait_for(lambda: r.memtotal == want, DEADLINE - (time.monotonic() - start)):
        return fail('MemTotal %s kB after plugging, expected %d' % (r.memtotal, want))
    size = q.cmd('qom-get', {'path': '/machine/peripheral/vm0', 'property': 'size'})
    if size.get('return') != PLUG_MIB << 20:
        return fail('size after plugging: %r' % size)
    if not set_requested(q, 0):
        return fail('qom-set requested-size 0')
    if not r.wait_for(lambda: r.memtotal == base, DEADLINE - (time.monotonic() - start)):
        return fail('MemTotal %s kB after unplugging, expected %d' % (r.memtotal, base))
    q.cmd('query-status')
    sizes = [e['data']['size'] for e in q.events if e['event'] == 'MEMORY_DEVICE_SIZE_CHANGE']
    if not sizes or max(sizes) != PLUG_MIB << 20 or sizes[-1] != 0:
        return fail('MEMORY_DEVICE_SIZE_CHANGE sizes %r' % sizes)
    print('linux virtio-mem: MemTotal %d -> %d -> %d kB, events %r, %.1f s' %
          (base, want, base, sizes, time.monotonic() - start), flush=True)
    q.cmd('quit')
    return True


def body(image, moddir, tmp):
    initrd = os.path.join(tmp, 'initramfs.cpio')
    linux_runner.build_initramfs(initrd, INIT.replace('@READY@', READY), moddir, MODULES)
    ok, _ = linux_runner.boot_twice(lambda: run_test(image, initrd, tmp), 'virtio-mem')
    print('linux virtio-mem: ' + ('pass' if ok else 'FAIL'))
    return ok


sys.exit(linux_runner.main('virtio-mem', __file__, [VMM], 840, body))
