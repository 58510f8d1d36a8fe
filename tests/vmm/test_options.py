#!/usr/bin/env python3
# tests/vmm/test_options.py - gmm-vmm's option errors: every wrong or
# impossible request gives exactly one line on stderr and the documented
# non-zero exit code; --help exits 0 and explains the options.  Hugepage
# cases reserve nothing: they run only when none are free (and say so).
import os
import subprocess
import sys
import tempfile

VMM = sys.argv[1]
failures = 0


def run(args):
    p = subprocess.run([VMM] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def expect_error(args, code, words):
    global failures
    rc, out, err = run(args)
    lines = [l for l in err.splitlines() if l.strip()]
    ok = rc == code and len(lines) == 1 and all(w in lines[0] for w in words)
    print('%s %s -> exit %d: %s' % ('ok  ' if ok else 'FAIL', ' '.join(args), rc,
                                   lines[0] if lines else '(no stderr)'))
    if not ok:
        failures += 1
        print('     expected exit %d, one line with %r; stderr was %r' % (code, words, err))


def main():
    global failures
    rc, out, err = run(['--help'])
    if rc != 0 or any(w not in out for w in ('--memory', '--numa', 'Exit status', 'gmm|lazy|plain',
                                             '--report-delay-ms', '--device-memory',
                                             '--balloon', 'free-page-reporting', '--qtest',
                                             '--qmp', '--paused', '--virtio-mem',
                                             '--write-stop', '--khugepaged')):
        print('FAIL --help: exit %d' % rc)
        failures += 1

    expect_error(['--memory', 'lots'], 2, ['--memory', 'lots'])
    expect_error(['--memory', '-5M'], 2, ['--memory'])
    expect_error(['--memory', '8M'], 2, ['16 MiB'])
    expect_error(['--vcpus', '0'], 2, ['--vcpus'])
    expect_error(['--vcpus', '65'], 2, ['--vcpus'])
    expect_error(['--hugepages', '3M'], 2, ['--hugepages'])
    expect_error(['--memory-mode', 'eager'], 2, ['--memory-mode', 'gmm, lazy or plain'])
    expect_error(['--report-delay-ms', 'soon'], 2, ['--report-delay-ms'])
    expect_error(['--write-stop', 'freeze'], 2, ['--write-stop', 'uffd-wp or pause', 'freeze'])
    expect_error(['--write-stop', 'pause', '--memory-mode', 'lazy'], 2,
                 ['--write-stop', 'gmm'])
    expect_error(['--khugepaged', '--memory-mode', 'plain'], 2, ['--khugepaged', 'gmm'])
    expect_error(['--report-delay-ms', '-1'], 2, ['--report-delay-ms'])
    expect_error(['--device-memory', 'x'], 2, ['--device-memory'])
    expect_error(['--device-memory', '3M'], 2, ['--device-memory', '2 MiB'])
    expect_error(['--memory', '63M'], 2, ['2 MiB units'])
    expect_error(['--numa', 'mem=64M', '--numa', 'mem=33M'], 2, ['2 MiB units'])
    expect_error(['--hugepages', '1G', '--memory', '1G'], 2, ['at most 2 MiB'])
    expect_error(['--numa', 'size=64M'], 2, ['--numa'])
    expect_error(['--numa', 'mem=64M,host-node=x'], 2, ['host-node'])
    expect_error(['--numa', 'mem=64M', '--numa', 'mem=64M', '--memory', '256M'], 2,
                 ['does not match'])
    expect_error(['--balloon=stats-period=soon'], 2, ['--balloon', 'stats-period'])
    expect_error(['--virtio-mem', 'id=a'], 2, ['--virtio-mem', 'size=MAX is required'])
    expect_error(['--virtio-mem', 'size=100M'], 2, ['--virtio-mem', '128 MiB'])
    expect_error(['--virtio-mem', 'size=128M,block-size=1M'], 2, ['--virtio-mem', 'block-size'])
    expect_error(['--virtio-mem', 'size=128M,block-size=6M'], 2, ['--virtio-mem', 'block-size'])
    expect_error(['--virtio-mem', 'size=128M,requested-size=256M'], 2,
                 ['--virtio-mem', 'requested-size'])
    expect_error(['--virtio-mem', 'size=128M,requested-size=3M'], 2,
                 ['--virtio-mem', 'requested-size'])
    expect_error(['--virtio-mem', 'size=128M,node=1'], 2, ['--virtio-mem', 'node'])
    expect_error(['--virtio-mem', 'size=128M,prealloc=yes'], 2, ['--virtio-mem', 'prealloc'])
    expect_error(['--virtio-mem', 'size=128M,colour=red'], 2, ['--virtio-mem', 'colour'])
    expect_error(['--virtio-mem', 'size=128M', '--memory-mode', 'plain'], 2,
                 ['--virtio-mem', 'memory-mode gmm'])
    expect_error(['--virtio-mem', 'id=a,size=128M', '--virtio-mem', 'id=a,size=128M'], 2,
                 ['--virtio-mem', 'twice'])
    expect_error(['--virtio-mem', 'size=64T'], 2, ['--virtio-mem', "host's RAM"])
    expect_error(['--balloon=deflate-on-oom=maybe'], 2, ['--balloon', 'on or off'])
    expect_error(['--balloon=x-track=page'], 2, ['--balloon', 'unit or element'])
    expect_error(['--balloon=size=1G'], 2, ['--balloon', 'unknown option'])
    expect_error(['--balloon=free-page-reporting'], 2, ['--balloon', 'KEY=VALUE'])
    expect_error(['--balloon=target=lots'], 2, ['--balloon', 'target'])
    expect_error(['--memory', '64M', '--balloon=target=1G'], 2, ['--balloon', "guest's RAM"])
    expect_error(['--qtest', '/nonexistent/socket'], 3, ['--qtest', 'cannot connect'])
    expect_error(['-S'], 2, ['--qmp'])
    expect_error(['--qmp', 'tcp:localhost:4444'], 2, ['only unix sockets'])
    expect_error(['-qmp', 'unix:/tmp/gmm-x.sock,server,wait'], 2, ["'wait'"])
    expect_error(['--qmp', 'unix:'], 2, ['no path'])
    expect_error(['--bogus'], 2, ['--help'])
    expect_error(['stray'], 2, ['stray'])
    expect_error(['--cmdline', 'quiet'], 2, ['--kernel'])
    expect_error(['--memory', '64T'], 3, ['more than the host can give'])
    expect_error(['--numa', 'mem=64M,host-node=200'], 3, ['host-node=200'])
    nr = '/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages'
    if not os.path.exists(nr) or int(open(nr).read()) == 0:
        expect_error(['--hugepages', '1G', '--memory', '1G', '--memory-mode', 'lazy'], 3,
                     ['hugepages'])
    nr = '/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages'
    if not os.path.exists(nr) or int(open(nr).read()) == 0:
        for mode in ('gmm', 'lazy'):
            expect_error(['--hugepages', '2M', '--memory', '64M', '--memory-mode', mode], 3,
                         ['--hugepages 2M', 'nr_hugepages'])
    else:
        print('note: 2 MiB hugepages are free on this host; the not-reserved case did not run')

    with tempfile.TemporaryDirectory() as d:
        junk = os.path.join(d, 'junk')
        with open(junk, 'wb') as f:
            f.write(os.urandom(8192))
        expect_error(['--kernel', junk], 3, ['not a kernel'])
        empty = os.path.join(d, 'empty')
        open(empty, 'wb').close()
        expect_error(['--kernel', empty], 3, ['empty'])
        elf32 = os.path.join(d, 'elf32')
        with open(elf32, 'wb') as f:
            f.write(b'\x7fELF\x01\x01\x01' + bytes(200))
        expect_error(['--kernel', elf32], 3, ['not a 64-bit x86 executable ELF'])
        trunc = os.path.join(d, 'trunc')
        with open(VMM, 'rb') as src, open(trunc, 'wb') as f:
            f.write(src.read(100))
        expect_error(['--kernel', trunc], 3, ['not a 64-bit x86 executable ELF'])
        bz = os.path.join(d, 'bz')
        hdr = bytearray(4096)
        hdr[0x1f1] = 4
        hdr[0x202:0x206] = b'HdrS'
        hdr[0x206:0x208] = (0x20a).to_bytes(2, 'little')
        with open(bz, 'wb') as f:
            f.write(hdr)
        expect_error(['--kernel', bz], 3, ['no 64-bit entry'])
        expect_error(['--kernel', os.path.join(d, 'missing')], 3, ['cannot open'])
        expect_error(['--guest', junk], 3, ['not a 64-bit x86 executable ELF'])

    if not os.path.exists('/dev/kvm'):
        expect_error([], 3, ['/dev/kvm'])
        for mode in ('gmm', 'lazy', 'plain'):
            expect_error(['--memory-mode', mode, '--report-delay-ms', '0',
                          '--device-memory', '4M'], 3, ['/dev/kvm'])
    print('%d failures' % failures)
    return 1 if failures else 0


sys.exit(main())
