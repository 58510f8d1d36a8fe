# tests/linux/linux_runner.py - what the Linux guest tests (test_linux_*.py)
# share: the kernel command line they all start from, a busybox initramfs
# with an /init script and Debian's modules, and the runner around a test
# body (inside the emulated KVM host on a kvm_pvm machine, where a stock
# kernel is far too slow; a skip, exit 77, without /dev/kvm; the kernel and
# a scratch directory otherwise), and the one retry a guest lost by the
# emulator gets.
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'kvmhost'))
import kvmhost  # noqa: E402  (the cpio writer, module order, kernel finder)

# gmm-vmm has no CMOS clock: rtc_cmos would spin about 30 s waiting for its
# update flag to clear, so its initcall is left out.
CMDLINE_BASE = ('console=ttyS0 panic=-1 acpi=off pci=conf1 pci=noearly tsc=reliable '
                'no_timer_check mitigations=off nowatchdog initcall_blacklist=cmos_init')
# gmm-vmm's power-off port (HOSTDEV_POWEROFF in vmm/vmm.h): /init writes its
# status there through /dev/port.
POWEROFF_PORT = 0x508


# Inside the emulated KVM host a boot now and then ends in a guest triple
# fault, which we put down to QEMU TCG's emulation of nested SVM rather than
# to gmm: CI saw one gmm-mode boot die so after the kernel had faulted in the
# same 116 MiB every good boot ends with (no fault was pending), and 16
# runs of test_linux_boot.py in a row here did not repeat it; the emulated
# host itself also dies at times (scripts/test.sh runs it once more).
# There, and only there, such a boot runs once more, saying so; a second
# triple fault fails the test.  On a real /dev/kvm it fails at once.
LOST_GUEST = 'guest triple fault'


def lost_to_emulator(lines):
    """True when this boot may run once more: inside the emulated host and
    the guest triple-faulted."""
    if not os.environ.get('GMM_KVMHOST'):
        return False
    return any(LOST_GUEST in line for line in lines)


def boot_twice(run, what):
    """run() -> (result, lines); once more when the emulator lost the guest."""
    result, lines = run()
    if not lost_to_emulator(lines):
        return result, lines
    print('NOTE: %s: the guest triple-faulted inside the emulated KVM host; '
          'booting once more (a second triple fault fails)' % what, flush=True)
    return run()


def cmdline(*extra):
    """The common command line, then extra words (rdinit=/init, ...)."""
    return ' '.join((CMDLINE_BASE,) + extra)


def build_initramfs(path, init, moddir=None, modules=()):
    """An initramfs at path: busybox, /init (text), the modules (and the
    ones they need, in load order) decompressed under /lib/modules, their
    names in /modules.order. Returns the module names."""
    with open('/bin/busybox', 'rb') as f:
        busybox = f.read()
    c = kvmhost.Cpio()
    for d in ('bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.file('bin/busybox', busybox, 0o755)
    c.file('init', init.encode(), 0o755)
    names = []
    for rel in (kvmhost.module_order(moddir, list(modules)) if modules else []):
        name = re.sub(r'\.(xz|zst|gz)$', '', os.path.basename(rel))
        c.file('lib/modules/' + name, kvmhost.module_bytes(os.path.join(moddir, rel)))
        names.append(name)
    c.file('modules.order', ''.join(n + '\n' for n in names).encode())
    with open(path, 'wb') as f:
        f.write(c.finish())
    return names


def main(what, script, args, inside_timeout, body):
    """Run body(image, moddir, tmp) -> bool where a stock kernel runs at
    speed; the exit status (0 pass, 1 fail, 77 skip, or the emulated host's)."""
    sys.stdout.reconfigure(line_buffering=True)
    if os.path.exists('/sys/module/kvm_pvm') and not os.environ.get('GMM_KVMHOST'):
        return kvmhost.rerun_inside(script, args, inside_timeout)
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the Linux %s test did not run '
              '(scripts/test.sh runs it in the emulated KVM host)' % what)
        return 77
    image, moddir = kvmhost.find_kernel(None)
    if not image:
        print('FAIL: no /boot/vmlinuz-VER with its modules: install linux-image-amd64 '
              '(scripts/setup.sh does)')
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        return 0 if body(image, moddir, tmp) else 1
