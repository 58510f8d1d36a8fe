#!/usr/bin/env python3
# tests/vmm/test_balloon_guest.py - the benchmark guest's own virtio-balloon
# driver (tests/guest/virtio.c) on /dev/kvm: it touches most of its RAM,
# asks the host's balloon control (balloon_ctl, as the monitor's `balloon`
# would) for half of it and follows num_pages; the test checks the balloon's
# size, `actual` as the host reports it, host memory going down, and the
# guest's verification of the pages it kept; then stats, a deflate and a
# re-touch of every page, and free page reporting of memory the guest gives
# up; and targets the host sets alone (--balloon target=, QMP's balloon).
# Usage: test_balloon_guest.py GMM_VMM [MODE...] (default: gmm plain).
# Exits 77 (skip) only where /dev/kvm is absent.
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

VMM = sys.argv[1]
MODES = sys.argv[2:] or ['gmm', 'plain']
RAM_MIB = 128
TOUCH_MIB = 112
FREE_MIB = 64
PAGE = 4096
WORKLOAD = ('touch=%d balloon=50 verify stats balloon=100 touch=%d verify free=%d verify'
            % (TOUCH_MIB, TOUCH_MIB, FREE_MIB))
failures = 0


def fail(what):
    global failures
    failures += 1
    print('FAIL: ' + what)


def boot(mode, workload, balloon='stats-period=1'):
    args = [VMM, '--memory', '%dM' % RAM_MIB, '--vcpus', '2', '--memory-mode', mode,
            '--guest-workload', workload]
    if balloon:
        args += ['--balloon=' + balloon]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    results, summary = [], None
    for line in p.stdout.splitlines():
        if line.startswith('{'):
            obj = json.loads(line)
            if obj.get('vmm') == 'summary':
                summary = obj
            else:
                results.append(obj)
    return p, results, summary


def lines(res, workload):
    return [r for r in res if r.get('workload') == workload]


def host_dropped(name, mode, line, mib):
    # gmm: frames leave the guest at once (backed now); plain: RSS
    if mode == 'gmm':
        got = (line['host_backed_before'] - line['host_backed']) * PAGE
    else:
        got = (line['host_rss_kib_before'] - line['host_rss_kib']) * 1024
    if got < mib * 0.9 * 2**20:
        fail('%s: host memory went down by %d KiB, expected about %.1f MiB: %s' %
             (name, got >> 10, mib, line))


def check_inflate(name, mode, bal, verify, touched):
    half = RAM_MIB * 2**20 // 2
    if bal['target_pages'] != half // PAGE or bal['balloon_pages'] != half // PAGE or \
       bal['inflated'] != half // PAGE or bal['errors']:
        fail('%s: balloon to half: %s' % (name, bal))
    if bal['host_actual'] != half:
        fail('%s: host says actual %d, expected %d' % (name, bal['host_actual'], half))
    kept = sum(v['pages'] for v in verify)
    if any(v['bad'] for v in verify) or not touched - half // PAGE <= kept < touched:
        fail('%s: guest verified %d of %d touched pages with %d in the balloon: %s' %
             (name, kept, touched, half // PAGE, verify))
    # what the host gets back: the touched pages that went into the balloon
    # (the balloon takes the top of each vCPU's slice, touch its bottom)
    if (touched - kept) * PAGE < half // 2:
        fail('%s: only %d touched pages went into the balloon' % (name, touched - kept))
    host_dropped(name, mode, bal, (touched - kept) * PAGE / 2**20)


def check_rest(name, mode, res, summ, touched):
    stats, bal, verify, free = (lines(res, 'stats'), lines(res, 'balloon'),
                                lines(res, 'verify'), lines(res, 'free'))
    if len(stats) != 1 or stats[0]['updates'] < 2 or stats[0]['errors'] or \
       summ['balloon_stats_updates'] < 2:
        fail('%s: stats: %s, host saw %d updates' % (name, stats, summ['balloon_stats_updates']))
    if bal[1]['balloon_pages'] or bal[1]['deflated'] != RAM_MIB * 128 or \
       bal[1]['host_actual'] != RAM_MIB * 2**20:
        fail('%s: deflate: %s' % (name, bal[1]))
    again = verify[2:4]
    if sum(v['pages'] for v in again) != touched or any(v['bad'] for v in again):
        fail('%s: re-touched after deflate, verified %s' % (name, again))
    if len(free) != 1 or free[0]['reported'] != FREE_MIB * 2**20 or free[0]['errors']:
        fail('%s: free page reporting: %s' % (name, free))
    else:
        host_dropped(name + ' reporting', mode, free[0], FREE_MIB)
    last = verify[4:6]
    if sum(v['pages'] for v in last) != touched - FREE_MIB * 256 or any(v['bad'] for v in last):
        fail('%s: after reporting, verified %s' % (name, last))
    if summ['balloon_reported_bytes'] != FREE_MIB * 2**20 or summ['balloon_pages'] or \
       summ['balloon_broken'] or not summ['balloon_discard_calls']:
        fail('%s: summary: %s' % (name, summ))


def check_mode(mode):
    name = 'balloon/%s' % mode
    p, res, summ = boot(mode, WORKLOAD)
    print('--- %s: exit %d' % (name, p.returncode))
    print(p.stdout.strip())
    if p.returncode != 0 or summ is None or summ['verdict'] != 'pass':
        fail('%s: exit %d: %s' % (name, p.returncode, p.stderr.strip()[-400:]))
        return
    touched = sum(t['pages'] for t in lines(res, 'touch')[:2])
    bal, verify = lines(res, 'balloon'), lines(res, 'verify')
    if touched != TOUCH_MIB * 256 or len(bal) != 2 or len(verify) != 6:
        fail('%s: %d pages touched, %d balloon and %d verify lines' %
             (name, touched, len(bal), len(verify)))
        return
    check_inflate(name, mode, bal[0], verify[0:2], touched)
    check_rest(name, mode, res, summ, touched)


def check_no_device():
    # the driver finds no device: the guest says so and fails
    p, res, summ = boot('plain', 'balloon=50', balloon=None)
    print('--- no balloon: exit %d' % p.returncode)
    if p.returncode != 1 or summ is None or summ['verdict'] != 'fail':
        fail('a balloon workload without a balloon: exit %d, %s' % (p.returncode, summ))


def check_follow(mode):
    # a target the host set alone (at boot: --balloon target=): the guest
    # follows num_pages
    logical = RAM_MIB * 3 // 4
    p, res, summ = boot(mode, 'touch=16 follow=1 verify', 'target=%dM' % logical)
    fol = lines(res, 'follow')
    print('--- follow/%s: exit %d, %s' % (mode, p.returncode, fol))
    want = (RAM_MIB - logical) * 256
    if p.returncode != 0 or len(fol) != 1 or fol[0]['balloon_pages'] != want or \
       fol[0]['inflated'] != want or fol[0]['host_actual'] != logical * 2**20 or \
       summ['balloon_pages'] != want:
        fail('follow/%s: exit %d, %s, summary %s' % (mode, p.returncode, fol, summ))


def qmp_lines(path):
    """Connect to gmm-vmm's QMP socket (it appears once gmm-vmm is up) and
    negotiate; return the socket and a reader of its JSON lines."""
    end = time.time() + 30
    while not os.path.exists(path) and time.time() < end:
        time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile('r')
    f.readline()  # greeting
    s.sendall(b'{"execute":"qmp_capabilities"}\n')
    return s, lambda: json.loads(f.readline())


def check_qmp(mode):
    # the monitor's `balloon` while the guest follows num_pages: the guest
    # inflates, BALLOON_CHANGE reports the new actual, the stats it sent
    # arrive in qom-get guest-stats
    logical = RAM_MIB // 2
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'qmp')
        args = [VMM, '--memory', '%dM' % RAM_MIB, '--memory-mode', mode, '--qmp', path,
                '--balloon=stats-period=1', '--guest-workload', 'touch=16 follow=6 verify']
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        changes, stats = [], None
        try:
            s, read = qmp_lines(path)
            read()
            s.sendall(json.dumps({'execute': 'balloon', 'arguments': {
                'value': logical * 2**20}}).encode() + b'\n')
            while not changes or changes[-1] != logical * 2**20:
                obj = read()
                if obj.get('event') == 'BALLOON_CHANGE':
                    changes.append(obj['data']['actual'])
            s.sendall(b'{"execute":"qom-get","arguments":{"path":'
                      b'"/machine/peripheral/balloon0","property":"guest-stats"}}\n')
            while stats is None:
                obj = read()
                stats = obj.get('return')
            s.close()
        except (OSError, ValueError) as e:
            fail('qmp/%s: %s' % (mode, e))
        out, err = p.communicate(timeout=120)
    fol = [json.loads(x) for x in out.splitlines() if '"workload":"follow"' in x]
    print('--- qmp/%s: exit %d, %d BALLOON_CHANGE events, last %s, follow %s' %
          (mode, p.returncode, len(changes), changes[-1:], fol))
    want = (RAM_MIB - logical) * 256
    if p.returncode != 0 or len(fol) != 1 or fol[0]['balloon_pages'] != want or \
       fol[0]['host_actual'] != logical * 2**20:
        fail('qmp/%s: exit %d (%s), follow %s' % (mode, p.returncode, err.strip()[-300:], fol))
    if not stats or stats['stats'].get('stat-total-memory') != RAM_MIB * 2**20:
        fail('qmp/%s: guest-stats %s' % (mode, stats))


def main():
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the guest balloon test did not run')
        return 77
    for mode in MODES:
        check_mode(mode)
        check_follow(mode)
        check_qmp(mode)
    check_no_device()
    print('%d failures' % failures)
    return 1 if failures else 0


sys.exit(main())
