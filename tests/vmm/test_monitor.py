#!/usr/bin/env python3
# tests/vmm/test_monitor.py - gmm-vmm's QMP monitor against running VMMs:
# the socket (mode 0600, what it refuses to replace), negotiation, ids,
# every command's reply shape, each error class, events reaching two
# clients, hostile clients (bad JSON, oversized requests, floods without
# reading, disconnects mid-request), the balloon commands through a fake
# balloon (gmm-vmm-test), stop/cont really pausing a running guest (the tick
# guest prints a line every ~10 ms while its vCPU runs), and the exit codes
# of quit (0), system_reset (5) and SIGTERM (143); and gmmctl.
# Usage: test_monitor.py GMM_VMM GMM_VMM_TEST TICK_GUEST GMMCTL
# (GMM_VMM may be GMM_VMM_TEST: it then runs without its fake balloon.)
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

VMM, VMM_TEST, TICK, GMMCTL = sys.argv[1:5]
TMP = tempfile.mkdtemp(prefix='gmm-monitor-')
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print('FAIL: ' + what, flush=True)
    return cond


class Qmp:
    """One QMP client on a unix socket; events are kept in self.events."""

    def __init__(self, path, negotiate=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        self.buf = b''
        self.events = []
        self.greeting = self.read()
        if negotiate:
            r = self.cmd('qmp_capabilities')
            check(r == {'return': {}}, 'qmp_capabilities answered %r' % r)

    def read(self):
        while b'\n' not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise EOFError('connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def reply(self):
        while True:
            obj = self.read()
            if 'event' in obj:
                self.events.append(obj)
            else:
                return obj

    def raw(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())
        return self.reply()

    def cmd(self, name, args=None, **extra):
        req = {'execute': name}
        if args is not None:
            req['arguments'] = args
        req.update(extra)
        return self.raw(json.dumps(req) + '\n')

    def ret(self, name, args=None):
        r = self.cmd(name, args)
        check('return' in r, '%s: %r' % (name, r))
        return r.get('return')

    def event(self, name, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            for e in self.events:
                if e['event'] == name:
                    self.events.remove(e)
                    return e
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                self.events.append(self.read())
            except socket.timeout:
                break
            finally:
                self.s.settimeout(20)
        return None

    def close(self):
        self.s.close()


class Vmm:
    """A gmm-vmm with --qmp; counts the tick guest's lines on stdout."""

    def __init__(self, binary, args, sock=None, qmp_arg=None, balloon=False):
        self.path = sock or os.path.join(TMP, 'qmp.sock')
        qmp = qmp_arg or ['--qmp', self.path]
        env = dict(os.environ)
        if not balloon:         # the sanitizer builds have one binary for both
            env['GMM_VMM_TEST_NO_BALLOON'] = '1'
        if 'ASAN_OPTIONS' in env:   # freed memory back soon: the RSS check
            env['ASAN_OPTIONS'] += ':quarantine_size_mb=16'
        self.p = subprocess.Popen([binary] + qmp + args, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self.ticks = 0
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        for _ in range(4000):     # until it listens, or has ended
            if self.p.poll() is not None:
                break
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.path)
                break
            except OSError:
                time.sleep(0.005)

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)
            if line.startswith('{"tick"'):
                self.ticks += 1

    def client(self, negotiate=True):
        return Qmp(self.path, negotiate)

    def wait(self, timeout=30):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
            check(False, 'gmm-vmm did not end')
        self.reader.join(5)
        self.stderr = self.p.stderr.read()
        return rc

    def rss_kib(self):
        with open('/proc/%d/status' % self.p.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        return 0


def base_args(extra=()):
    return ['--memory', '64M', '--report-delay-ms', '0'] + list(extra)


def error_class(r):
    return r.get('error', {}).get('class')


# ---- the socket ----

def test_socket():
    path = os.path.join(TMP, 'file')
    with open(path, 'w') as f:
        f.write('keep me')
    v = Vmm(VMM, base_args(['-S']), sock=path)
    rc = v.wait()
    check(rc == 3 and 'not a socket' in v.stderr, 'a regular file at --qmp: exit %d %r' % (rc, v.stderr))
    check(open(path).read() == 'keep me', 'the file at --qmp was touched')

    busy = os.path.join(TMP, 'busy.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(busy)
    listener.listen(1)
    v = Vmm(VMM, base_args(['-S']), sock=busy)
    rc = v.wait()
    check(rc == 3 and 'listens' in v.stderr, 'a live socket at --qmp: exit %d %r' % (rc, v.stderr))
    listener.close()            # now stale: the path stays, nobody listens

    v = Vmm(VMM, base_args(['-S']), qmp_arg=['-qmp', 'unix:%s,server,nowait' % busy], sock=busy)
    mode = os.stat(busy).st_mode & 0o777
    check(mode == 0o600, 'socket mode %o, want 600' % mode)
    c = v.client()
    check(c.ret('query-status') == {'status': 'prelaunch', 'running': False},
          'query-status after -S over a replaced stale socket')
    c.ret('quit')
    check(v.wait() == 0, 'quit: exit 0')
    check(not os.path.exists(busy), 'socket path left behind')

    p = subprocess.run([VMM, '-S'] + base_args(), capture_output=True, text=True,
                       env=dict(os.environ, GMM_VMM_TEST_NO_BALLOON='1'))
    check(p.returncode == 2 and '--qmp' in p.stderr, '-S without --qmp: exit %d' % p.returncode)


# ---- protocol, without a balloon ----

def check_greeting(c):
    g = c.greeting.get('QMP', {})
    q = g.get('version', {}).get('qemu', {})
    check(all(isinstance(q.get(k), int) for k in ('major', 'minor', 'micro')) and
          isinstance(g.get('version', {}).get('package'), str) and g.get('capabilities') == [],
          'greeting %r' % c.greeting)


def test_negotiation(v):
    c = v.client(negotiate=False)
    check_greeting(c)
    r = c.cmd('query-status', id=7)
    check(error_class(r) == 'CommandNotFound' and r.get('id') == 7, 'before negotiation: %r' % r)
    r = c.cmd('qmp_capabilities', {'enable': ['oob']})
    check(error_class(r) == 'GenericError', 'enable oob: %r' % r)
    check(c.cmd('qmp_capabilities', id='n') == {'return': {}, 'id': 'n'}, 'negotiation')
    r = c.cmd('qmp_capabilities')
    check(error_class(r) == 'CommandNotFound', 'second negotiation: %r' % r)
    for ident in (1, 'x', [1, {'a': None}], {'k': 'v'}, None, 2.5, True):
        r = c.cmd('query-kvm', id=ident)
        check('id' in r and r['id'] == ident and 'return' in r, 'id %r echoed: %r' % (ident, r))
    c.close()


def wait_vcpu_threads(c, n):
    """-S: the socket listens before the vCPU threads start; wait for them."""
    for _ in range(1000):
        cpus = c.ret('query-cpus-fast')
        if len(cpus) == n and all(x['thread-id'] > 0 for x in cpus):
            return
        time.sleep(0.01)


def test_shapes(v, c):
    wait_vcpu_threads(c, 2)
    st = c.ret('query-status')
    check(st == {'status': 'prelaunch', 'running': False}, 'query-status %r' % st)
    ver = c.ret('query-version')
    check(set(ver) == {'qemu', 'package'} and set(ver['qemu']) == {'major', 'minor', 'micro'},
          'query-version %r' % ver)
    names = {x['name'] for x in c.ret('query-commands')}
    want = {'qmp_capabilities', 'query-status', 'stop', 'cont', 'quit', 'system_powerdown',
            'system_reset', 'query-version', 'query-commands', 'query-kvm', 'query-cpus-fast',
            'balloon', 'query-balloon', 'qom-get', 'qom-set', 'query-memdev', 'query-memory-devices', 'x-gmm-buddyinfo',
            'x-gmm-pagetypeinfo', 'x-gmm-zoneinfo', 'x-gmm-extfrag', 'x-gmm-pcp-stats',
            'x-gmm-report-stats', 'x-gmm-guest-stats', 'x-gmm-compact', 'x-gmm-khugepaged'}
    check(names == want, 'query-commands: missing %s, extra %s' % (want - names, names - want))
    check(c.ret('query-kvm') == {'enabled': True, 'present': True}, 'query-kvm')
    cpus = c.ret('query-cpus-fast')
    check(len(cpus) == 2 and [x['cpu-index'] for x in cpus] == [0, 1] and
          all(x['thread-id'] > 0 and x['target'] == 'x86_64' and 'socket-id' in x['props']
              for x in cpus), 'query-cpus-fast %r' % cpus)
    mem = c.ret('query-memdev')
    check(len(mem) == 2 and sum(m['size'] for m in mem) == 64 << 20 and
          mem[0]['host-nodes'] == [0] and mem[0]['policy'] == 'bind' and
          mem[1]['policy'] == 'default' and all(m['share'] and not m['prealloc'] for m in mem),
          'query-memdev %r' % mem)
    bi = c.ret('x-gmm-buddyinfo')
    check(isinstance(bi, dict) and len(bi.get('zones', [])) == 2, 'x-gmm-buddyinfo %r' % bi)
    for name in ('x-gmm-pagetypeinfo', 'x-gmm-zoneinfo', 'x-gmm-extfrag'):
        r = c.ret(name)
        check(isinstance(r, dict) and r, '%s %r' % (name, r))
    pcp = c.ret('x-gmm-pcp-stats')
    # 2 vCPU threads, and a userfaultfd handler per vCPU (gmm-vmm's default fault path)
    check(pcp.get('threads') == 4, 'x-gmm-pcp-stats: 2 vCPU threads and 2 fault handlers attached: %r' % pcp)
    rep = c.ret('x-gmm-report-stats')
    check(rep.get('running') is False and 'free-reported' in rep, 'x-gmm-report-stats %r' % rep)
    gs = c.ret('x-gmm-guest-stats')
    check(gs.get('mode') == 'gmm' and gs.get('ram-bytes') == 64 << 20 and
          gs['huge-bytes'] <= gs['backed-bytes'] and 0 <= gs['huge-permille'] <= 1000 and
          gs['khugepaged']['running'] is False and set(gs['khugepaged']) == KHUGEPAGED_KEYS,
          'x-gmm-guest-stats %r' % gs)
    # the loader wrote the guest image: backed pages, moved while the vCPUs wait
    cp = c.ret('x-gmm-compact')
    check(set(cp) == {'migrated-pages', 'migrated-units', 'pinned', 'busy', 'no-target',
                      'compacted-pages', 'pgmigrate-success', 'pgmigrate-fail', 'write-stop',
                      'write-stop-reason', 'stop-batches', 'stop-fallbacks', 'stop-refused',
                      'stop-ns-mean', 'stop-ns-max', 'ns', 'khugepaged'} and
          cp['migrated-pages'] > 0 and cp['pgmigrate-success'] >= cp['migrated-pages'] and
          cp['write-stop'] == 'pause', 'x-gmm-compact %r' % cp)


def test_errors(c):
    cases = [
        ('{"execute": "nope"}', 'CommandNotFound', 'has not been found'),
        ('{"execute": 1}', 'GenericError', "'execute' must be a string"),
        ('{"arguments": {}}', 'GenericError', "lacks member 'execute'"),
        ('{"execute": "stop", "arguments": []}', 'GenericError', "'arguments' must be an object"),
        ('{"execute": "stop", "bogus": 1}', 'GenericError', "'bogus' is unexpected"),
        ('{"execute": "stop", "arguments": {"x": 1}}', 'GenericError', "'x' is unexpected"),
        ('{"execute": "balloon"}', 'GenericError', "'value' is missing"),
        ('{"execute": "balloon", "arguments": {"value": "1G"}}', 'GenericError', 'expected: integer'),
        ('{"execute": "balloon", "arguments": {"value": 1.5}}', 'GenericError', 'expected: integer'),
        ('{"execute": "balloon", "arguments": {"value": 1073741824}}', 'DeviceNotActive', 'No balloon'),
        ('{"execute": "query-balloon"}', 'DeviceNotActive', 'No balloon'),
        ('{"execute": "qom-get", "arguments": {"path": "/machine/peripheral/balloon0", '
         '"property": "guest-stats"}}', 'DeviceNotActive', 'No balloon'),
        ('{"execute": "qom-get", "arguments": {"path": "/machine/nothing", '
         '"property": "guest-stats"}}', 'DeviceNotFound', 'not found'),
        ('{"execute": "qom-set", "arguments": {"path": "/x", "property": "p"}}', 'GenericError',
         "'value' is missing"),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"enable": "yes"}}', 'GenericError',
         'expected: boolean'),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"pages_to_scan": -1}}', 'GenericError',
         "'pages_to_scan' expects 0 to"),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"max_ptes_none": 4294967296}}',
         'GenericError', "'max_ptes_none' expects 0 to"),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"max_ptes_none": 3}}', 'GenericError',
         'not running'),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"enable": true, "max_ptes_none": 512}}',
         'GenericError', 'max_ptes_none'),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"enable": false, "pages_to_scan": 8}}',
         'GenericError', 'enable false'),
        ('{"execute": "x-gmm-khugepaged", "arguments": {"scan": 1}}', 'GenericError',
         "'scan' is unexpected"),
        ('[1, 2]', 'GenericError', 'must be a JSON object'),
        ('"execute"', 'GenericError', 'must be a JSON object'),
        ('42 ', 'GenericError', 'must be a JSON object'),
        ('{"execute": "stop",}', 'GenericError', 'JSON parse error'),
        ('{"execute" "stop"}', 'GenericError', 'JSON parse error'),
        ('{"execute": "st\xffop"}', 'GenericError', 'JSON parse error'),
        ('[' * 100 + ']' * 100, 'GenericError', 'JSON parse error'),
        ('tru ', 'GenericError', 'JSON parse error'),
    ]
    for req, cls, text in cases:
        r = c.raw(req.encode('latin-1') + b'\n')
        check(error_class(r) == cls and text in r['error'].get('desc', ''),
              '%r: want %s "%s", got %r' % (req[:60], cls, text, r))
    r = c.cmd('query-status')
    check('return' in r, 'still answering after the bad requests: %r' % r)


def test_hostile(v):
    other = v.client()
    rss0 = v.rss_kib()
    # oversized: an error, then the connection is closed
    c = v.client()
    c.s.sendall(b'{"execute": "' + b'a' * 70000 + b'"}\n')
    r = c.reply()
    check(error_class(r) == 'GenericError' and 'larger than' in r['error']['desc'], 'oversized: %r' % r)
    try:
        c.read()
        check(False, 'oversized: connection not closed')
    except (EOFError, ConnectionResetError):
        pass
    c.close()
    # mid-request disconnects
    for _ in range(20):
        c = v.client()
        c.s.sendall(b'{"execute": "query-sta')
        c.close()
    # a flood by a client that never reads: dropped once its replies pass 1 MiB
    c = v.client()
    c.s.setblocking(False)
    req = b'{"execute": "x-gmm-zoneinfo"}' * 64
    sent, dropped = 0, False
    end = time.time() + 60
    while time.time() < end and not dropped:
        try:
            sent += c.s.send(req)
        except BlockingIOError:
            time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
    check(dropped, 'a flooding client that never reads was not dropped (%d bytes sent)' % sent)
    c.close()
    # more clients than MONITOR_CLIENTS_MAX (64): the extra ones are closed;
    # open now: a, b (test_protocol) and other
    time.sleep(0.5)             # the dropped and vanished clients are gone
    conns, greeted, refused = [], 0, 0
    for _ in range(70):
        try:
            q = v.client(negotiate=False)
            conns.append(q)
            greeted += 1
        except (EOFError, ConnectionResetError):
            refused += 1
    check(greeted == 61 and refused == 9, '70 more clients next to three: %d greeted, %d refused' %
          (greeted, refused))
    for q in conns:
        q.close()
    time.sleep(0.2)
    # after the floods and the crowd, the others still answer
    check(other.cmd('query-status', id=1).get('id') == 1, 'another client answered after floods')
    rss1 = v.rss_kib()
    check(rss1 - rss0 < 32 * 1024, 'RSS grew %d KiB over the hostile clients' % (rss1 - rss0))
    other.close()


def test_protocol():
    v = Vmm(VMM, ['-S', '--vcpus', '2', '--report-delay-ms', '0',
                  '--numa', 'mem=32M,host-node=0', '--numa', 'mem=32M'])
    test_negotiation(v)
    a, b = v.client(), v.client()
    test_shapes(v, a)
    test_errors(a)
    test_hostile(v)
    silent = v.client(negotiate=False)
    a.ret('system_powerdown')
    for who, c in (('a', a), ('b', b)):
        e = c.event('POWERDOWN')
        check(e is not None and set(e['timestamp']) == {'seconds', 'microseconds'},
              'POWERDOWN to client %s: %r' % (who, e))
    check(a.ret('stop') == {} and a.ret('query-status')['status'] == 'prelaunch',
          'stop in prelaunch keeps prelaunch')
    a.ret('quit')
    for who, c in (('a', a), ('b', b)):
        e = c.event('SHUTDOWN')
        check(e is not None and e.get('data') == {'guest': False, 'reason': 'host-qmp-quit'},
              'SHUTDOWN to client %s: %r' % (who, e))
    try:
        e = silent.read()
        check(False, 'an event reached a client that did not negotiate: %r' % e)
    except (EOFError, ConnectionResetError):
        pass
    rc = v.wait()
    check(rc == 0, 'quit: exit %d, want 0' % rc)


# ---- the balloon, through gmm-vmm-test's fake balloon ----

def test_balloon():
    v = Vmm(VMM_TEST, base_args(['-S']), balloon=True)
    a, b = v.client(), v.client()
    check(a.ret('query-balloon') == {'actual': 64 << 20}, 'query-balloon before')
    check(a.ret('balloon', {'value': 48 << 20}) == {}, 'balloon 48M')
    for who, c in (('a', a), ('b', b)):
        e = c.event('BALLOON_CHANGE')
        check(e is not None and e.get('data') == {'actual': 48 << 20},
              'BALLOON_CHANGE to client %s: %r' % (who, e))
    check(a.ret('query-balloon') == {'actual': 48 << 20}, 'query-balloon after')
    for bad in (0, -1, 65 << 20):
        r = a.cmd('balloon', {'value': bad})
        check(error_class(r) == 'GenericError', 'balloon %d: %r' % (bad, r))
    path = '/machine/peripheral/balloon0'
    st = a.ret('qom-get', {'path': path, 'property': 'guest-stats'})
    check(st.get('last-update') == 0 and len(st.get('stats', {})) == 16 and
          all(x == -1 for x in st['stats'].values()), 'guest-stats before polling %r' % st)
    check(a.ret('qom-get', {'path': path, 'property': 'guest-stats-polling-interval'}) == 0,
          'interval 0')
    check(a.ret('qom-set', {'path': path, 'property': 'guest-stats-polling-interval',
                            'value': 2}) == {}, 'qom-set interval')
    check(a.ret('qom-get', {'path': path, 'property': 'guest-stats-polling-interval'}) == 2,
          'interval 2')
    st = a.ret('qom-get', {'path': path, 'property': 'guest-stats'})['stats']
    check(st['stat-total-memory'] == 48 << 20 and st['stat-free-memory'] == 24 << 20 and
          st['stat-swap-in'] == -1, 'guest-stats %r' % st)
    for val, text in ((-1, 'greater than zero'), (1 << 33, 'too big'), (1 << 63, 'too big'),
                      ('2', 'expected: integer')):
        r = a.cmd('qom-set', {'path': path, 'property': 'guest-stats-polling-interval',
                              'value': val})
        check(error_class(r) == 'GenericError' and text in r['error']['desc'],
              'qom-set interval %r: %r' % (val, r))
    r = a.cmd('qom-set', {'path': path, 'property': 'guest-stats', 'value': 1})
    check(error_class(r) == 'GenericError', 'qom-set guest-stats: %r' % r)
    r = a.cmd('qom-get', {'path': path, 'property': 'nope'})
    check(error_class(r) == 'GenericError', 'qom-get unknown property: %r' % r)
    a.ret('system_reset')
    e = b.event('SHUTDOWN')
    check(e is not None and e['data'] == {'guest': False, 'reason': 'host-qmp-system-reset'},
          'SHUTDOWN after system_reset: %r' % e)
    rc = v.wait()
    check(rc == 5, 'system_reset: exit %d, want 5' % rc)


# ---- stop and cont with a running guest ----

def wait_ticks(v, n, timeout=20):
    end = time.time() + timeout
    while v.ticks < n and time.time() < end:
        time.sleep(0.01)
    return v.ticks >= n


KHUGEPAGED_KEYS = {'running', 'pages_to_scan', 'scan_sleep_millisecs', 'alloc_sleep_millisecs',
                   'max_ptes_none', 'pages_scanned', 'full_scans', 'thp_collapse_alloc',
                   'thp_collapse_alloc_failed', 'pages_collapsed', 'pages_added'}


# ---- khugepaged: --khugepaged and x-gmm-khugepaged beside a running guest ----

def test_khugepaged():
    v = Vmm(VMM, base_args(['--khugepaged', '--guest', TICK, '--vcpus', '2']))
    c = v.client()
    k = c.ret('x-gmm-khugepaged')
    check(set(k) == KHUGEPAGED_KEYS and k['running'] is True and k['pages_to_scan'] == 4096 and
          k['scan_sleep_millisecs'] == 10000 and k['max_ptes_none'] == 0,
          '--khugepaged: running with the defaults: %r' % k)
    k = c.ret('x-gmm-khugepaged', {'pages_to_scan': 1024, 'scan_sleep_millisecs': 1})
    check(k['running'] is True and k['pages_to_scan'] == 1024 and
          k['scan_sleep_millisecs'] == 1 and k['alloc_sleep_millisecs'] == 60000,
          'x-gmm-khugepaged changes the controls: %r' % k)
    deadline = time.time() + 30
    while time.time() < deadline and c.ret('x-gmm-guest-stats')['khugepaged']['full_scans'] < 2:
        time.sleep(0.1)
    gs = c.ret('x-gmm-guest-stats')['khugepaged']
    check(gs['full_scans'] >= 2 and gs['pages_scanned'] >= 2 * (64 << 20) // 4096,
          'khugepaged scanned the guest twice: %r' % gs)
    check(wait_ticks(v, v.ticks + 20), 'the guest runs beside khugepaged (%d ticks)' % v.ticks)
    k = c.ret('x-gmm-khugepaged', {'enable': False})
    check(k['running'] is False and k['full_scans'] >= 2, 'enable false stops it: %r' % k)
    r = c.cmd('x-gmm-khugepaged', {'pages_to_scan': 8})
    check(error_class(r) == 'GenericError' and 'not running' in r['error']['desc'],
          'controls of a stopped khugepaged: %r' % r)
    k = c.ret('x-gmm-khugepaged', {'enable': True, 'max_ptes_none': 64})
    check(k['running'] is True and k['max_ptes_none'] == 64 and k['pages_to_scan'] == 4096,
          'enable true starts it again with the defaults and the controls given: %r' % k)
    c.ret('quit')
    check(v.wait() == 0, 'quit with khugepaged running')


def test_pause():
    v = Vmm(VMM, base_args(['-S', '--guest', TICK, '--vcpus', '2']))
    a, b = v.client(), v.client()
    time.sleep(0.5)
    check(v.ticks == 0, 'the guest ran %d ticks before cont (-S)' % v.ticks)
    check(a.ret('cont') == {}, 'cont')
    for who, c in (('a', a), ('b', b)):
        check(c.event('RESUME') is not None, 'RESUME to client %s' % who)
    check(a.ret('query-status') == {'status': 'running', 'running': True}, 'running after cont')
    check(wait_ticks(v, 20), 'the guest made no progress after cont (%d ticks)' % v.ticks)
    for rnd in range(3):
        check(a.ret('stop') == {}, 'stop')
        for who, c in (('a', a), ('b', b)):
            check(c.event('STOP') is not None, 'STOP to client %s' % who)
        check(a.ret('query-status') == {'status': 'paused', 'running': False}, 'paused')
        time.sleep(0.2)         # lines printed before the vCPUs parked
        frozen = v.ticks
        time.sleep(1.0)
        check(v.ticks == frozen, 'round %d: the guest ran %d ticks while paused' %
              (rnd, v.ticks - frozen))
        check(a.ret('cont') == {}, 'cont')
        check(wait_ticks(v, frozen + 10), 'round %d: no progress after cont' % rnd)
    v.p.send_signal(signal.SIGTERM)
    e = a.event('SHUTDOWN')
    check(e is not None and e['data'] == {'guest': False, 'reason': 'host-signal'},
          'SHUTDOWN after SIGTERM: %r' % e)
    rc = v.wait()
    check(rc == 128 + signal.SIGTERM, 'SIGTERM: exit %d' % rc)

    # quit while paused ends the VMM at once with exit 0
    v = Vmm(VMM, base_args(['--guest', TICK]))
    a = v.client()
    check(wait_ticks(v, 5), 'the guest runs without -S')
    a.ret('stop')
    a.ret('quit')
    rc = v.wait()
    check(rc == 0 and 'quit by the monitor' in ''.join(v.lines), 'quit while paused: exit %d' % rc)


def guest_discards(c):
    st = c.ret('x-gmm-guest-stats')
    return st.get('discards', -1) if isinstance(st, dict) else -1


def wait_discards(c, above, timeout=60):
    end = time.time() + timeout
    n = guest_discards(c)
    while n <= above and time.time() < end:
        time.sleep(0.05)
        n = guest_discards(c)
    return n


def test_pause_benchmark_guest():
    """stop/cont on the built-in benchmark guest: its churn workload discards
    pages through the host port without end; the count freezes while the VM
    is stopped and moves again after cont."""
    v = Vmm(VMM, ['--memory', '64M', '--vcpus', '2', '--guest-workload',
                  'touch=8 verify rounds=1000000 churn=2 verify'])
    a = v.client()
    n = wait_discards(a, 0)
    check(n > 0, 'the benchmark guest never discarded (%d)' % n)
    for rnd in range(2):
        check(a.ret('stop') == {}, 'stop')
        check(a.event('STOP') is not None, 'STOP event')
        frozen = guest_discards(a)
        time.sleep(1.0)
        now = guest_discards(a)
        check(now == frozen, 'round %d: the benchmark guest discarded %d pages while paused' %
              (rnd, now - frozen))
        check(a.ret('cont') == {}, 'cont')
        n = wait_discards(a, now)
        check(n > now, 'round %d: the benchmark guest made no progress after cont' % rnd)
    a.ret('quit')
    rc = v.wait()
    check(rc == 0, 'quit: exit %d' % rc)


# ---- gmmctl ----

def gmmctl(v, *args):
    return subprocess.run([GMMCTL, v.path] + list(args), capture_output=True, text=True,
                          timeout=30)


def test_gmmctl():
    v = Vmm(VMM_TEST, base_args(['-S']), balloon=True)
    ev = subprocess.Popen([GMMCTL, v.path, 'events'], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)             # let it negotiate before the events
    p = gmmctl(v, 'query-balloon')
    check(p.returncode == 0 and 'actual 67108864 ' in p.stdout, 'gmmctl query-balloon: %r' % p.stdout)
    p = gmmctl(v, 'balloon', '40M')
    check(p.returncode == 0, 'gmmctl balloon 40M: %d %r' % (p.returncode, p.stderr))
    check('(40 MiB)' in gmmctl(v, 'query-balloon').stdout, 'balloon 40M took')
    p = gmmctl(v, 'balloon', '1G')
    check(p.returncode == 1 and p.stderr.startswith('gmmctl: GenericError: '),
          'gmmctl balloon over RAM: %d %r' % (p.returncode, p.stderr))
    p = gmmctl(v, 'balloon', '12X')
    check(p.returncode == 2, 'gmmctl balloon 12X: exit %d' % p.returncode)
    p = gmmctl(v, 'stats')
    check(p.returncode == 0 and 'state:      prelaunch' in p.stdout and 'reporting:' in p.stdout and
          'balloon:    actual 40 MiB' in p.stdout and 'buddyinfo:' in p.stdout, 'gmmctl stats: %r' % p.stdout)
    p = gmmctl(v, 'raw', '{"execute": "query-kvm"}')
    check(p.returncode == 0 and json.loads(p.stdout)['return'] == {'enabled': True, 'present': True},
          'gmmctl raw: %r' % p.stdout)
    p = gmmctl(v, 'raw', '{"execute": "qom-get", "arguments": {"path": "/x", "property": "y"}}')
    check(p.returncode == 1 and 'DeviceNotFound: ' in p.stderr, 'gmmctl raw error: %r' % p.stderr)
    p = gmmctl(v, 'query-status')
    check(p.returncode == 0 and json.loads(p.stdout)['status'] == 'prelaunch', 'gmmctl query-status')
    p = gmmctl(v, 'nonsense')
    check(p.returncode == 1 and 'CommandNotFound' in p.stderr, 'gmmctl unknown command')
    gmmctl(v, 'quit')
    out = ev.communicate(timeout=30)[0]
    names = [json.loads(line)['event'] for line in out.splitlines()]
    check(names == ['BALLOON_CHANGE', 'SHUTDOWN'], 'gmmctl events: %r' % names)
    check(v.wait() == 0, 'quit through gmmctl')
    p = subprocess.run([GMMCTL, os.path.join(TMP, 'none.sock'), 'query-status'], capture_output=True)
    check(p.returncode == 3, 'gmmctl without a monitor: exit %d' % p.returncode)


def test_virtio_mem():
    v = Vmm(VMM, base_args(['-S', '--virtio-mem', 'id=vm0,size=256M,requested-size=32M']))
    c = v.client()
    devs = c.ret('query-memory-devices')
    check(len(devs) == 1 and devs[0]['type'] == 'virtio-mem' and
          set(devs[0]['data']) == {'id', 'memaddr', 'node', 'requested-size', 'size', 'max-size',
                                   'block-size', 'memdev'} and
          devs[0]['data']['requested-size'] == 32 << 20, 'query-memory-devices %r' % devs)
    p = gmmctl(v, 'virtio-mem', 'vm0', '128M')
    check(p.returncode == 0, 'gmmctl virtio-mem vm0 128M: %d %r' % (p.returncode, p.stderr))
    r = c.ret('qom-get', {'path': '/machine/peripheral/vm0', 'property': 'requested-size'})
    check(r == 128 << 20, 'requested-size after gmmctl: %r' % r)
    p = gmmctl(v, 'memory-devices')
    check(p.returncode == 0 and 'vm0: virtio-mem at 0x' in p.stdout and
          'requested 128 MiB, max 256 MiB' in p.stdout, 'gmmctl memory-devices: %r' % p.stdout)
    p = gmmctl(v, 'virtio-mem', 'vm0', '3M')
    check(p.returncode == 1 and 'block-size' in p.stderr, 'gmmctl virtio-mem 3M: %r' % p.stderr)
    p = gmmctl(v, 'virtio-mem', 'vm0', 'lots')
    check(p.returncode == 2, 'gmmctl virtio-mem lots: exit %d' % p.returncode)
    c.ret('quit')
    check(v.wait() == 0, 'quit with a virtio-mem device')


# ---- quit and SIGTERM with the device-level test driver (--qtest) ----

def start_qtest(name):
    """A gmm-vmm --qtest with --qmp; its qtest connection and the Vmm."""
    qpath = os.path.join(TMP, name)
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(qpath)
    lst.listen(1)
    lst.settimeout(20)
    v = Vmm(VMM, ['--qtest', qpath] + base_args())
    conn, _ = lst.accept()
    lst.close()
    os.unlink(qpath)
    conn.settimeout(20)
    conn.sendall(b'mem\n')
    check(conn.recv(4096).startswith(b'OK'), 'qtest mem answered')
    return conn, v


def test_qtest_quit():
    conn, v = start_qtest('qtest-quit.sock')
    c = v.client()
    c.ret('quit')
    rc = v.wait()
    check(rc == 0, 'QMP quit in qtest mode: exit %d, want 0 (%r)' % (rc, v.stderr))
    check(c.event('SHUTDOWN') is not None, 'no SHUTDOWN event after quit in qtest mode')
    check(conn.recv(4096) == b'', 'the qtest connection stays open after quit')
    check(not os.path.exists(v.path), 'socket path left behind after quit in qtest mode')
    conn.close()
    conn, v = start_qtest('qtest-term.sock')
    v.p.send_signal(signal.SIGTERM)
    rc = v.wait()
    check(rc == 128 + signal.SIGTERM, 'SIGTERM in qtest mode: exit %d, want 143' % rc)
    check(not os.path.exists(v.path), 'socket path left behind after SIGTERM in qtest mode')
    conn.close()


def main():
    if not os.path.exists('/dev/kvm'):
        print('SKIP: no /dev/kvm - the monitor tests need a running gmm-vmm')
        return 77
    for t in (test_socket, test_protocol, test_balloon, test_khugepaged, test_pause,
              test_pause_benchmark_guest, test_gmmctl, test_virtio_mem, test_qtest_quit):
        print('--- ' + t.__name__, flush=True)
        t()
    print('%d failures' % failures)
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
