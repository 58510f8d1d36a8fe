#!/usr/bin/env python3
"""tests/kvmhost/kvmhost.py - run one command inside an emulated KVM host.

The emulated host is Debian's own kernel booted under QEMU's TCG emulator
with `-cpu max`, which emulates AMD SVM with nested paging, so the kernel's
kvm-amd module gives it a working /dev/kvm even where the real machine has
none.  The host's / is shared read-only over 9p and the checkout read-write
at the same path; /init loads the modules, mounts proc, sysfs, devtmpfs,
tmpfs (/tmp, /run, /dev/shm), devpts and hugetlbfs over the shared root,
chroots into it and runs the command in the caller's working directory.
The project's binaries, python3 and meson run unchanged.

    tests/kvmhost/kvmhost.py [--checkout DIR] [--timeout S] -- COMMAND [ARG...]

The command's output is streamed to stdout while it runs (it goes through a
file on the shared checkout) and kvmhost exits with the command's status.
When the command cannot run to completion kvmhost exits with
EXIT_TIMEOUT (the hard timeout killed QEMU) or EXIT_HOST_FAILED (no
kernel, QEMU failed, the host did not boot or had no /dev/kvm); then it
prints the last console lines and keeps the run directory with the whole
console log.  It never reports a skip.

Everything inside the emulated host runs at emulation speed: functional
tests only, no timing taken there means anything.
"""
import argparse
import glob
import lzma
import os
import re
import resource
import selectors
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib

EXIT_TIMEOUT = 124
EXIT_HOST_FAILED = 125
# Modules /init loads (with their dependencies, in modules.dep order).
MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'kvm-amd']
# Console lines shown when the host fails.
CONSOLE_TAIL = 40
# Markers /init prints on the console.
READY = 'kvmhost-init: ready'
FAILED = 'kvmhost-init: FAIL'
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18
# 9p message size: bigger messages cut the number of emulated exits.
MSIZE = 512 * 1024
KERNEL_CMDLINE = 'console=ttyS0 panic=-1 pci=noearly mitigations=off loglevel=6 rdinit=/init'

INIT = r'''#!/bin/busybox sh
# /init of the emulated KVM host (written by tests/kvmhost/kvmhost.py).
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /host
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
fail() {
	echo "kvmhost-init: FAIL: $*"
	dmesg | tail -n 20
	poweroff -f
	sleep 10
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $(cat /modules.order); do
	insmod /lib/modules/$m || fail "insmod $m"
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=@MSIZE@,cache=loose,ro hostroot /host ||
	fail "cannot mount the host root over 9p"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/shm /host/dev/pts /host/dev/hugepages
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t hugetlbfs hugetlbfs /host/dev/hugepages
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs -o mode=755 tmpfs /host/run
# The checkout last: it may live under /tmp or /run.
mkdir -p /host@CHECKOUT@ 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=@MSIZE@ checkout /host@CHECKOUT@ ||
	fail "cannot mount the checkout over 9p"
[ -c /host/dev/kvm ] || fail "no /dev/kvm after loading kvm-amd"
echo "kvmhost-init: kvm_amd: $(dmesg | grep -o 'Nested Paging enabled' | head -n 1)"
echo "@READY@"
chroot /host /bin/sh @RUN@/command.sh >/host@RUN@/output 2>&1 </dev/null
echo $? >/host@RUN@/status.tmp
mv /host@RUN@/status.tmp /host@RUN@/status
sync
echo "kvmhost-init: command exited $(cat /host@RUN@/status)"
poweroff -f
sleep 10
'''


def fail(msg):
    print('kvmhost: FAIL: %s' % msg, file=sys.stderr, flush=True)
    return EXIT_HOST_FAILED


def run_streamed(argv, deadline):
    """For the tests that boot Linux on gmm-vmm: run argv with its output
    (stdout and stderr) echoed as it comes, killed after deadline seconds.
    Return (exit status, or None when it was killed; its output lines)."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    lines = []
    while time.monotonic() - start < deadline:
        if not sel.select(timeout=1):
            continue
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        sys.stdout.write(line)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    rest = p.stdout.read()
    lines += rest.splitlines(keepends=True)
    sys.stdout.write(rest)
    return rc, lines


def rerun_inside(test, args, timeout):
    """For those tests on a kvm_pvm machine (where a stock kernel is far too
    slow): run `python3 test args...` again inside the emulated KVM host,
    with the checkout the test lives in; return its exit status."""
    print('kvm_pvm host: a stock kernel is far too slow on it; '
          'running this test inside the emulated KVM host', flush=True)
    here = os.path.dirname(os.path.abspath(test))
    checkout = os.path.realpath(os.path.join(here, '..', '..'))
    return subprocess.call([sys.executable, os.path.abspath(__file__), '--checkout', checkout,
                            '--timeout', str(timeout), '--',
                            sys.executable, os.path.abspath(test)] + list(args))


def version_key(path):
    return [int(x) if x.isdigit() else x for x in re.split(r'(\d+)', path)]


def find_kernel(explicit):
    """Return (vmlinuz, modules dir): the newest /boot/vmlinuz-VER whose
    /lib/modules/VER has a modules.dep, or the one asked for."""
    if explicit:
        ver = os.path.basename(explicit).split('vmlinuz-', 1)[-1]
        return explicit, '/lib/modules/' + ver
    for image in sorted(glob.glob('/boot/vmlinuz-*'), key=version_key, reverse=True):
        moddir = '/lib/modules/' + image.split('vmlinuz-', 1)[1]
        if os.path.exists(moddir + '/modules.dep'):
            return image, moddir
    return None, None


def has_pvh_note(elf):
    """True when a 64-bit ELF image has the PVH entry note (Xen note 18)
    that lets QEMU start it directly."""
    if elf[:5] != b'\x7fELF\x02':
        return False
    phoff, = struct.unpack_from('<Q', elf, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', elf, 0x36)
    for i in range(phnum):
        ptype, _, off, _, _, size = struct.unpack_from('<IIQQQQ', elf, phoff + i * phentsize)
        end = off + size
        while ptype == PT_NOTE and off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from('<III', elf, off)
            name = elf[off + 12:off + 12 + namesz].rstrip(b'\0')
            if name == b'Xen' and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            off += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def unpacked_kernel(image, cache_dir):
    """The kernel's vmlinux, unpacked natively from the bzImage once and kept
    in cache_dir, so the emulated CPU does not decompress it at every boot
    (QEMU starts it through its PVH entry).  Falls back to the bzImage when
    the payload is not xz or gzip or the image has no PVH entry."""
    cached = os.path.join(cache_dir, 'kvmhost-' + os.path.basename(image).replace('vmlinuz', 'vmlinux'))
    if os.path.exists(cached) and os.path.getmtime(cached) >= os.path.getmtime(image):
        return cached
    with open(image, 'rb') as f:
        bz = f.read()
    start = (bz[0x1f1] or 4) * 512 + 512
    off, length = struct.unpack_from('<II', bz, 0x248)
    payload = bz[start + off:start + off + length]
    try:
        if payload[:6] == b'\xfd7zXZ\0':
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        elif payload[:2] == b'\x1f\x8b':
            elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
        else:
            return image
    except (lzma.LZMAError, zlib.error):
        return image
    if not has_pvh_note(elf):
        return image
    tmp = cached + '.tmp%d' % os.getpid()
    with open(tmp, 'wb') as f:
        f.write(elf)
    os.replace(tmp, cached)
    return cached


def module_order(moddir, wanted):
    """Module files (relative to moddir) for wanted, dependencies first."""
    deps, byname = {}, {}
    with open(moddir + '/modules.dep') as f:
        for line in f:
            path, _, rest = line.partition(':')
            deps[path] = rest.split()
            name = re.sub(r'\.ko(\.[a-z]+)?$', '', os.path.basename(path))
            byname[name.replace('-', '_')] = path
    order = []

    def add(path):
        if path in order:
            return
        # modules.dep lists the full closure, furthest dependency last.
        for dep in reversed(deps[path]):
            add(dep)
        order.append(path)

    for name in wanted:
        path = byname.get(name.replace('-', '_'))
        if path is None:
            raise LookupError('module %s is not in %s/modules.dep' % (name, moddir))
        add(path)
    return order


def module_bytes(path):
    if path.endswith('.xz'):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith('.zst'):
        return subprocess.run(['zstd', '-dc', path], check=True,
                              stdout=subprocess.PIPE).stdout
    with open(path, 'rb') as f:
        return f.read()


class Cpio:
    """An uncompressed newc archive (the initramfs format the kernel reads)."""

    def __init__(self):
        self.data = bytearray()
        self.ino = 1

    def _entry(self, name, mode, body=b'', rdev=(0, 0)):
        fields = [self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self.ino += 1
        hdr = b'070701' + b''.join(b'%08x' % v for v in fields)
        self.data += hdr + name.encode() + b'\0'
        self.data += b'\0' * (-len(self.data) % 4)
        self.data += body
        self.data += b'\0' * (-len(self.data) % 4)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, body, perm=0o644):
        self._entry(name, stat.S_IFREG | perm, body)

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry('TRAILER!!!', 0)
        return bytes(self.data)


def build_initramfs(path, moddir, checkout, run):
    busybox = shutil.which('busybox') or '/bin/busybox'
    with open(busybox, 'rb') as f:
        bb = f.read()
    order = module_order(moddir, MODULES)
    init = (INIT.replace('@MSIZE@', str(MSIZE)).replace('@CHECKOUT@', checkout)
            .replace('@RUN@', run).replace('@READY@', READY))
    c = Cpio()
    for d in ('bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys', 'host'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.chardev('dev/null', 1, 3)
    c.file('bin/busybox', bb, 0o755)
    c.file('init', init.encode(), 0o755)
    names = []
    for rel in order:
        name = re.sub(r'\.(xz|zst|gz)$', '', os.path.basename(rel))
        c.file('lib/modules/' + name, module_bytes(os.path.join(moddir, rel)))
        names.append(name)
    c.file('modules.order', ('\n'.join(names) + '\n').encode())
    with open(path, 'wb') as f:
        f.write(c.finish())


def write_command(path, argv, cwd, env):
    lines = ['# the command kvmhost runs in the emulated host',
             'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
             'export HOME=/root LANG=C.UTF-8 TERM=dumb GMM_KVMHOST=1']
    lines += ['export %s' % shlex.quote(kv) for kv in env]
    lines += ['cd %s || { echo "kvmhost: no such directory in the emulated host' % shlex.quote(cwd)
              + ' (there /tmp and /run are its own; work under the checkout)"; exit 127; }',
              'exec %s' % ' '.join(shlex.quote(a) for a in argv)]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def tail(path, n):
    try:
        with open(path, errors='replace') as f:
            return f.readlines()[-n:]
    except OSError:
        return []


class Streamer:
    """Copies what the command writes to its output file to our stdout."""

    def __init__(self, path):
        self.path, self.pos = path, 0

    def pump(self):
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        if data:
            self.pos += len(data)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()


def qemu_argv(args, kernel, initrd, checkout, console):
    return ['qemu-system-x86_64', '-nodefaults', '-no-user-config', '-no-reboot',
            '-machine', 'pc', '-accel', 'tcg,thread=multi', '-cpu', 'max',
            '-smp', str(args.smp), '-m', args.memory, '-display', 'none',
            '-kernel', kernel, '-initrd', initrd, '-append', KERNEL_CMDLINE,
            '-serial', 'file:' + console,
            '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,'
                       'readonly=on,multidevs=remap',
            '-virtfs', 'local,path=%s,mount_tag=checkout,security_model=none,'
                       'multidevs=remap' % checkout]


def console_line(path, text):
    """The first console line holding text, without /init's prefix."""
    for line in tail(path, CONSOLE_TAIL):
        if text in line:
            return line.strip().replace('kvmhost-init: ', '')
    return text + ' ?'


def console_has(path, text):
    try:
        with open(path, errors='replace') as f:
            return text in f.read()
    except OSError:
        return False


def watch(args, qemu, run, console, start):
    """Wait for QEMU; return the command's status or an EXIT_* code."""
    out = Streamer(os.path.join(run, 'output'))
    ready = None
    while True:
        out.pump()
        now = time.monotonic()
        if ready is None and console_has(console, READY):
            ready = now
            print('kvmhost: emulated host up with /dev/kvm after %.0f s (%s)' %
                  (now - start, console_line(console, 'kvm_amd:')), file=sys.stderr, flush=True)
        if qemu.poll() is not None:
            break
        if ready is None and now - start > args.boot_timeout:
            qemu.kill()
            qemu.wait()
            return fail('the emulated host did not boot within %d s' % args.boot_timeout)
        if now - start > args.timeout:
            qemu.kill()
            qemu.wait()
            out.pump()
            print('kvmhost: FAIL: hard timeout: killed after %d s' % args.timeout,
                  file=sys.stderr, flush=True)
            return EXIT_TIMEOUT
        time.sleep(0.5)
    out.pump()
    try:
        with open(os.path.join(run, 'status')) as f:
            status = int(f.read())
    except (OSError, ValueError):
        if console_has(console, FAILED):
            return fail('the emulated host failed before running the command')
        return fail('QEMU exited %d without the command\'s status' % qemu.returncode)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print('kvmhost: command exited %d after %.0f s (%.0f s since the host was up; '
          'QEMU used %.0f s of CPU)' %
          (status, time.monotonic() - start, time.monotonic() - (ready or start),
           cpu.ru_utime + cpu.ru_stime), file=sys.stderr, flush=True)
    return status


def on_sigterm(*_):
    raise KeyboardInterrupt


def parse():
    p = argparse.ArgumentParser(
        description='Run one command inside an emulated KVM host (QEMU TCG, nested SVM).')
    p.add_argument('--checkout', default=os.getcwd(),
                   help='directory shared read-write at the same path (default: cwd)')
    p.add_argument('--timeout', type=int, default=1800,
                   help='hard timeout for the whole run in seconds (default 1800)')
    p.add_argument('--boot-timeout', type=int, default=300,
                   help='seconds until /dev/kvm must be up (default 300)')
    p.add_argument('--memory', default='2G', help='emulated host memory (default 2G)')
    p.add_argument('--smp', type=int, default=2, help='emulated host CPUs (default 2)')
    p.add_argument('--kernel', help='kernel image (default: newest /boot/vmlinuz with modules)')
    p.add_argument('--env', action='append', default=[], metavar='NAME=VALUE',
                   help='environment for the command (repeatable)')
    p.add_argument('--keep', action='store_true', help='keep the run directory')
    p.add_argument('command', nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.command and args.command[0] == '--':
        args.command = args.command[1:]
    if not args.command:
        p.error('no command given (kvmhost.py [options] -- COMMAND [ARG...])')
    return args


def main():
    args = parse()
    checkout = os.path.realpath(args.checkout)
    if not os.path.isdir(checkout):
        return fail('checkout %s is not a directory' % checkout)
    kernel, moddir = find_kernel(args.kernel)
    if not kernel:
        return fail('no /boot/vmlinuz-VER with /lib/modules/VER/modules.dep '
                    '(install linux-image-amd64: scripts/setup.sh)')
    if not shutil.which('qemu-system-x86_64'):
        return fail('qemu-system-x86_64 is missing (install qemu-system-x86: scripts/setup.sh)')
    base = os.path.join(checkout, 'build') if os.path.isdir(os.path.join(checkout, 'build')) \
        else checkout
    run = tempfile.mkdtemp(prefix='kvmhost-', dir=base)
    console = os.path.join(run, 'console.log')
    initrd = os.path.join(run, 'initramfs.cpio')
    try:
        build_initramfs(initrd, moddir, checkout, run)
    except (OSError, LookupError, subprocess.CalledProcessError) as e:
        return fail('cannot build the initramfs: %s' % e)
    cwd = os.getcwd()
    write_command(os.path.join(run, 'command.sh'), args.command, cwd, args.env)
    start = time.monotonic()
    try:
        boot_image = unpacked_kernel(kernel, base)
    except OSError as e:
        return fail('cannot unpack %s: %s' % (kernel, e))
    print('kvmhost: booting %s under QEMU TCG (-cpu max, %d CPUs, %s); run directory %s' %
          (boot_image, args.smp, args.memory, run), file=sys.stderr, flush=True)
    qemu = subprocess.Popen(qemu_argv(args, boot_image, initrd, checkout, console),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        rc = watch(args, qemu, run, console, start)
    except KeyboardInterrupt:
        qemu.kill()
        qemu.wait()
        rc = fail('interrupted')
    qemu_out = qemu.stdout.read().decode(errors='replace').strip()
    if rc in (EXIT_TIMEOUT, EXIT_HOST_FAILED):
        if qemu_out:
            print('kvmhost: QEMU said: %s' % qemu_out, file=sys.stderr)
        print('kvmhost: last console lines (%s):' % console, file=sys.stderr)
        sys.stderr.write(''.join(tail(console, CONSOLE_TAIL)) or '(empty)\n')
        print('kvmhost: run directory kept: %s' % run, file=sys.stderr, flush=True)
    elif not args.keep:
        shutil.rmtree(run, ignore_errors=True)
    return rc


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main())
