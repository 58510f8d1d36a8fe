#!/usr/bin/env python3
# tests/vmm/test_boot.py - boots the benchmark guest on /dev/kvm: touch,
# churn and verify on 1 and 2 vCPUs, in gmm mode (the default, run first)
# and the lazy and plain baselines, on a 2-node layout; checks the guest's
# own results and that the host's fault, backing and discard counts agree
# with what the guest touched; that a page lost behind the guest's back is
# detected; and that user mode's port I/O works in every encoding.
# Exits 77 (skip) only where /dev/kvm is absent.
import json
import os
import subprocess
import sys

VMM = sys.argv[1]
TOUCH_MIB = 32
CHURN_MIB = 8
# pages the guest itself needs besides the workload: image, stacks, page
# tables, per-slice generation maps, device tree, boot tables
OVERHEAD_PAGES = 1024
IO_CHECKS = 9   # tests/guest/user.c: do_iotest
failures = 0


def fail(what):
    global failures
    failures += 1
    print('FAIL: ' + what)


def boot(mode, vcpus, workload, extra=()):
    args = [VMM, '--numa', 'mem=64M', '--numa', 'mem=64M', '--vcpus', str(vcpus),
            '--guest-workload', workload] + list(extra)
    if mode != 'gmm':
        args += ['--memory-mode', mode]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    results, summary = [], None
    for line in p.stdout.splitlines():
        if not line.startswith('{'):
            continue
        obj = json.loads(line)
        if obj.get('vmm') == 'summary':
            summary = obj
        else:
            results.append(obj)
    return p, results, summary


def stop_reason(p):
    # gmm-vmm's stop line ("gmm-vmm: <reason> (exit N)") on either stream
    for line in (p.stdout + p.stderr).splitlines():
        if line.startswith('gmm-vmm: ') and line.endswith(')') and '(exit ' in line:
            return line
    return 'no stop line; stderr %r' % p.stderr.strip()


def check_run(mode, vcpus):
    name = '%s/%d vcpu' % (mode, vcpus)
    p, res, summ = boot(mode, vcpus, 'touch=%d verify churn=%d verify' % (TOUCH_MIB, CHURN_MIB))
    print('--- %s: exit %d' % (name, p.returncode))
    print(p.stdout.strip())
    if p.returncode != 0 or summ is None:
        fail('%s: exit %d: %s' % (name, p.returncode, stop_reason(p)))
        return
    touch = [r for r in res if r.get('workload') == 'touch']
    verify = [r for r in res if r.get('workload') == 'verify']
    verdict = [r for r in res if r.get('workload') == 'verdict']
    if len(touch) != vcpus or len(verify) != 2 * vcpus:
        fail('%s: %d touch and %d verify lines' % (name, len(touch), len(verify)))
    pages = sum(r['pages'] for r in touch)
    if pages != TOUCH_MIB * 256:
        fail('%s: guest touched %d pages, asked %d' % (name, pages, TOUCH_MIB * 256))
    if sorted(r['node'] for r in touch) != sorted(v % 2 for v in range(vcpus)):
        fail('%s: vCPUs did not work on their own nodes' % name)
    if any(r['bad'] or r['errors'] for r in verify) or not verdict or \
       verdict[0]['result'] != 'pass' or summ['verdict'] != 'pass':
        fail('%s: guest found errors' % name)
    checked = sum(r['pages'] for r in verify[-vcpus:])
    if checked != pages:
        fail('%s: guest verified %d pages of %d' % (name, checked, pages))
    churned = CHURN_MIB * 256
    if mode == 'gmm':
        check_gmm(name, summ, pages, churned)
    elif mode == 'lazy':
        lo, hi = pages + churned, pages + churned + OVERHEAD_PAGES
        if not lo <= summ['faults'] <= hi:
            fail('%s: host faulted %d pages, guest touched %d (+%d re-touched)' %
                 (name, summ['faults'], pages, churned))
        if summ['discards'] != churned:
            fail('%s: host discarded %d pages, guest asked %d' % (name, summ['discards'], churned))
    else:
        if summ['faults'] != 0:
            fail('%s: plain memory faulted %d pages' % (name, summ['faults']))
        if summ['rss_kib'] < TOUCH_MIB * 1024:
            fail('%s: RSS %d KiB below the %d MiB touched' % (name, summ['rss_kib'], TOUCH_MIB))


def check_gmm(name, summ, pages, churned):
    # a fault backs a 2 MiB block where it can: fewer faults than pages
    if not 1 <= summ['faults'] <= pages + churned + OVERHEAD_PAGES:
        fail('%s: %d gmm faults for %d pages touched' % (name, summ['faults'], pages))
    if not pages <= summ['backed'] <= summ['memory_mib'] * 256:
        fail('%s: gmm backed %d pages, guest touched %d' % (name, summ['backed'], pages))
    if summ['discards'] != churned:
        fail('%s: gmm discarded %d pages, guest asked %d' % (name, summ['discards'], churned))
    if summ['mode'] != 'gmm' or summ['huge_bytes'] > summ['backed'] * 4096 or \
       summ['buddyinfo_before'] is None or summ['buddyinfo_after'] is None:
        fail('%s: gmm summary incomplete: %r' % (name, summ))


def check_iotest():
    # every in/out encoding from user mode (a #GP the guest performs on
    # kvm_pvm, a direct exit elsewhere): widths, data, and stepping over
    p, res, summ = boot('plain', 2, 'iotest')
    io = [r for r in res if r.get('workload') == 'iotest']
    print('--- iotest: exit %d, %s' % (p.returncode, io))
    if p.returncode != 0 or len(io) != 1 or io[0]['checks'] != IO_CHECKS or io[0]['errors']:
        fail('iotest: exit %d (%s), results %s' % (p.returncode, stop_reason(p), io))


def check_lost_page():
    for mode in ('gmm', 'plain', 'lazy'):
        p, res, summ = boot(mode, 1, 'touch=4 verify', ['--x-lose-page'])
        verify = [r for r in res if r.get('workload') == 'verify']
        print('--- lost page, %s: exit %d, verify %s' % (mode, p.returncode, verify))
        if p.returncode not in (0, 1) or not verify:
            fail('%s: the lost-page run did not get to verify: exit %d: %s' %
                 (mode, p.returncode, stop_reason(p)))
        elif p.returncode != 1 or verify[0]['bad'] != 1:
            fail('%s: a lost page went unnoticed' % mode)


def check_virtio_mem():
    # a virtio-mem device: its region in a memslot of its own above RAM (a
    # failed KVM_SET_USER_MEMORY_REGION stops gmm-vmm) and pool memory on
    # guest node 1 leave the guest's own RAM as it was
    p, res, summ = boot('gmm', 1, 'touch=16 verify',
                        ['--virtio-mem', 'id=vm0,size=256M,node=1,requested-size=64M'])
    verify = [r for r in res if r.get('workload') == 'verify']
    print('--- virtio-mem: exit %d, verify %s' % (p.returncode, verify))
    if p.returncode != 0 or len(verify) != 1 or verify[0]['bad']:
        fail('virtio-mem: exit %d (%s), verify %s' % (p.returncode, stop_reason(p), verify))


def main():
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the KVM boot tests did not run')
        return 77
    for mode in ('gmm', 'lazy', 'plain'):
        for vcpus in (1, 2):
            check_run(mode, vcpus)
    check_iotest()
    check_lost_page()
    check_virtio_mem()
    print('%d failures' % failures)
    return 1 if failures else 0


sys.exit(main())
