#!/usr/bin/env bash
# scripts/test.sh - set up, build, and run every test: the default suites,
# then the ASan+UBSan and TSan setups.  Prints "N passed, N failed, N skipped"
# and exits non-zero when any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
rm -f build/meson-logs/testlog*.json
meson test -C build --print-errorlogs --num-processes 2
meson test -C build --print-errorlogs --num-processes 2 --setup asan --suite asan
meson test -C build --print-errorlogs --num-processes 2 --setup tsan --suite tsan
python3 scripts/test-summary.py build/meson-logs/testlog*.json
