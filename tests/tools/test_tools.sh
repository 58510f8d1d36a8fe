#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/tools/test_tools.sh - the tools as a newcomer meets them: --help
# prints usage and runs nothing, unknown arguments are refused, gmm-stat
# --json prints one JSON document, gmmctl refuses bad arguments before it
# connects.
# usage: test_tools.sh BUILD_DIR SOURCE_DIR
build=$1
src=$2
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# expect STATUS PATTERN CMD...: exit status and a line of output (stdout+stderr)
expect() {
	want=$1
	pattern=$2
	shift 2
	"$@" >"$tmp/out" 2>&1
	got=$?
	[ "$got" = "$want" ] || fail "$* exited $got, expected $want"
	grep -q -- "$pattern" "$tmp/out" || fail "$* printed no '$pattern'"
}

for json_args in "all" "buddyinfo" "zoneinfo extfrag"; do
	# shellcheck disable=SC2086
	"$build/tools/gmm-stat" --size 256M --json $json_args >"$tmp/json" ||
		fail "gmm-stat --json $json_args failed"
	python3 -m json.tool "$tmp/json" >/dev/null ||
		fail "gmm-stat --json $json_args is not one JSON document"
done
"$build/tools/gmm-stat" --size 256M --json all >"$tmp/all"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert set(d) == {"buddyinfo", "pagetypeinfo", "zoneinfo", "extfrag", "compact", "pageblocks",
                  "khugepaged"}, d.keys()' "$tmp/all" ||
	fail "gmm-stat --json all: not keyed by view"

expect 0 "usage: bench-alloc" "$build/tools/bench-alloc" --help
expect 2 "unknown argument" "$build/tools/bench-alloc" --bogus
expect 2 "positive number" "$build/tools/bench-alloc" frag --steps 0
expect 0 "theoretical maximum" "$build/tools/bench-alloc" frag --steps 20000
expect 0 "usage: bench-backing" "$build/tools/bench-backing" --help
grep -q prealloc "$tmp/out" && fail "bench-backing --help ran a benchmark"
expect 2 "bad argument" "$build/tools/bench-backing" --bogus
expect 0 "usage: bench-collapse" "$build/tools/bench-collapse" --help
grep -q "khugepaged on" "$tmp/out" && fail "bench-collapse --help ran a benchmark"
expect 2 "usage: bench-collapse" "$build/tools/bench-collapse" --ram 3
expect 2 "usage: bench-collapse" "$build/tools/bench-collapse" --write-stop freeze
"$build/tools/gmm-stat" --size 256M --guest 16M --json khugepaged >"$tmp/khuge" ||
	fail "gmm-stat --guest 16M khugepaged failed"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert d["pages_collapsed"] == 8 and d["guest_huge_bytes"] == 16 << 20, d' "$tmp/khuge" ||
	fail "gmm-stat --guest: khugepaged did not collapse the 8 chunks"
expect 2 "bad value" "$build/tools/gmm-stat" --guest 3M
expect 0 "usage:" sh "$src/tools/bench-pcp-compare.sh" --help
expect 2 "usage:" sh "$src/tools/bench-pcp-compare.sh" only-one
export GMM_BUILD="$tmp/nothing"
expect 2 "not an executable" sh "$src/tools/bench-pcp-compare.sh"
unset GMM_BUILD

# gmmctl checks its arguments before it connects: a bad one is exit 2 and
# its reason, with no VMM (and no socket) anywhere
nosock="$tmp/no-vmm.sock"
expect 2 "bad size 'lots'" "$build/tools/gmmctl" "$nosock" balloon lots
expect 2 "bad size '-1G'" "$build/tools/gmmctl" "$nosock" balloon -1G
expect 2 "bad size '3Q'" "$build/tools/gmmctl" "$nosock" virtio-mem vm0 3Q
expect 2 "bad device id" "$build/tools/gmmctl" "$nosock" virtio-mem "a b" 1G
expect 2 "not a JSON object" "$build/tools/gmmctl" "$nosock" raw '{"execute":'
expect 2 "not a JSON object" "$build/tools/gmmctl" "$nosock" raw '[1]'
expect 2 "bad command name" "$build/tools/gmmctl" "$nosock" 'query status'
expect 2 "Usage: gmmctl" "$build/tools/gmmctl" "$nosock" balloon
# good arguments get as far as the missing socket (exit 3)
expect 3 "cannot connect" "$build/tools/gmmctl" "$nosock" balloon 512M
expect 3 "cannot connect" "$build/tools/gmmctl" "$nosock" virtio-mem vm0 0

if [ "$fails" -ne 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "tools: ok"
