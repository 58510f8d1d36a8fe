#!/usr/bin/env python3
"""scripts/test-summary.py - count meson test results from testlog JSON files.

    test-summary.py [--note TEXT]... [--failure TEXT]... TESTLOG.json...

Prints every skipped test with the reason it gave (its first output line
that says SKIP, else its last line), every failed test, each --note
(where suites ran), each --failure (a failure outside any test, such as the
emulated KVM host not booting; counted as a failed test), then
"N passed, N failed, N skipped"; exits 1 when anything failed or no test
ran at all."""
import argparse
import json


def skip_reason(t):
    out = ((t.get('stdout') or '') + '\n' + (t.get('stderr') or '')).splitlines()
    lines = [line.strip() for line in out if line.strip()]
    for line in lines:
        if 'SKIP' in line:
            return line
    return lines[-1] if lines else 'no reason given'


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--note', action='append', default=[])
    p.add_argument('--failure', action='append', default=[])
    p.add_argument('testlogs', nargs='*')
    args = p.parse_args()
    passed, failed, skipped = 0, len(args.failure), 0
    for path in args.testlogs:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                r = t.get('result')
                if r in ('OK', 'EXPECTEDFAIL'):
                    passed += 1
                elif r == 'SKIP':
                    skipped += 1
                    print(f"SKIPPED: {t['name']}: {skip_reason(t)}")
                else:
                    failed += 1
                    print(f"FAILED ({r}): {t['name']}")
    for text in args.failure:
        print(f'FAILED: {text}')
    for text in args.note:
        print(text)
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    return 1 if failed or passed == 0 else 0


raise SystemExit(main())
