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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'kvmhost'))
import kvmhost  # noqa: E402  (the cpio writer, module order, kernel finder)

VMM = os.path.abspath(sys.argv[1])
MEMORY_MIB = 512
PLUG_MIB = 128
DEADLINE = 600          # seconds for the whole run (emulated host: slow)
CMDLINE = ('console=ttyS0 panic=-1 acpi=off pci=conf1 pci=noearly tsc=reliable '
           'no_timer_check mitigations=off nowatchdog initcall_blacklist=cmos_init '
           'memhp_default_state=online_movable rdinit=/init')
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


def build_initramfs(path, moddir):
    with open('/bin/busybox', 'rb') as f:
        busybox = f.read()
    c = kvmhost.Cpio()
    for d in ('bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.file('bin/busybox', busybox, 0o755)
    c.file('init', INIT.replace('@READY@', READY).encode(), 0o755)
    names = []
    for rel in kvmhost.module_order(moddir, MODULES):
        name = re.sub(r'\.(xz|zst|gz)$', '', os.path.basename(rel))
        c.file('lib/modules/' + name, kvmhost.module_bytes(os.path.join(moddir, rel)))
        names.append(name)
    c.file('modules.order', ('\n'.join(names) + '\n').encode())
    with open(path, 'wb') as f:
        f.write(c.finish())


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
    sock = os.path.join(tmp, 'qmp.sock')
    argv = [VMM, '--kernel', image, '--initrd', initrd, '--memory', '%dM' % MEMORY_MIB,
            '--cmdline', CMDLINE, '--qmp', sock,
            '--virtio-mem', 'id=vm0,size=%dM' % (2 * PLUG_MIB)]
    print('--- ' + ' '.join(argv), flush=True)
    start = time.monotonic()
    r = Run(argv)
    try:
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
    finally:
        try:
            r.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            r.p.kill()
            r.p.wait()


def in_emulated_host():
    print('kvm_pvm host: running this test inside the emulated KVM host', flush=True)
    checkout = os.path.realpath(os.path.join(HERE, '..', '..'))
    return subprocess.call([sys.executable, os.path.join(HERE, '..', 'kvmhost', 'kvmhost.py'),
                            '--checkout', checkout, '--timeout', '840', '--',
                            sys.executable, os.path.abspath(__file__), VMM])


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists('/sys/module/kvm_pvm') and not os.environ.get('GMM_KVMHOST'):
        return in_emulated_host()
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the Linux virtio-mem test did not run '
              '(scripts/test.sh runs it in the emulated KVM host)')
        return 77
    image, moddir = kvmhost.find_kernel(None)
    if not image:
        print('FAIL: no /boot/vmlinuz-VER with its modules: install linux-image-amd64')
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, 'initramfs.cpio')
        build_initramfs(initrd, moddir)
        ok = run_test(image, initrd, tmp)
    print('linux virtio-mem: ' + ('pass' if ok else 'FAIL'))
    return 0 if ok else 1


sys.exit(main())
