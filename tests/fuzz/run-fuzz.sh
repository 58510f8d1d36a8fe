#!/bin/sh
# tests/fuzz/run-fuzz.sh FUZZER SEEDS ARGS... - run a libFuzzer binary on a
# fresh scratch corpus plus the read-only seed directory (meson's test()
# cannot run a custom target directly); the fuzzer's exit code is the result.
fuzzer=$1 seeds=$2
shift 2
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
"$fuzzer" "$@" "$work" "$seeds"
