#!/usr/bin/env python3
"""scripts/test-summary.py - count meson test results from testlog JSON files.

Prints every skipped or failed test, then "N passed, N failed, N skipped";
exits 1 when a test failed or no test ran at all."""
import json
import sys

passed, failed, skipped = 0, 0, 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            r = t.get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
                print(f"SKIPPED: {t['name']}")
            else:
                failed += 1
                print(f"FAILED ({r}): {t['name']}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
