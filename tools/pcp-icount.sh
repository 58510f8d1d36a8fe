#!/bin/sh
# SPDX-License-Identifier: MIT
# tools/pcp-icount.sh [PCP_ICOUNT_BINARY] - instructions per cached order-0
# alloc+free pair (Valgrind callgrind, deterministic): for N = 1, 64, 1024,
# the instructions of gmm_alloc() and gmm_free() and everything they call,
# difference of two run lengths (R and 2R rounds) over the pairs between.
set -eu
bin=${1:-build/tools/pcp-icount}
command -v valgrind >/dev/null || { echo "pcp-icount.sh: valgrind is not installed" >&2; exit 1; }
[ -x "$bin" ] || { echo "pcp-icount.sh: no $bin (build first)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Instructions collected while inside $2.. of a run of N=$1 with R=$3 rounds.
ir() {
	n=$1; r=$2; shift 2
	toggles=
	for f in "$@"; do toggles="$toggles --toggle-collect=$f"; done
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file="$out/cg" $toggles \
		"$bin" "$n" "$r" >/dev/null 2>&1
	t=$(sed -n 's/^totals: *//p; s/^summary: *//p' "$out/cg" | head -1)
	[ -n "$t" ] || { echo "pcp-icount.sh: no count from valgrind" >&2; exit 1; }
	echo "$t"
}

printf '%-6s %8s %10s %9s\n' N pair gmm_alloc gmm_free
for n in 1 64 1024; do
	r=$((65536 / n)); [ "$r" -ge 16 ] || r=16
	res=
	for fns in "gmm_alloc gmm_free" gmm_alloc gmm_free; do
		# shellcheck disable=SC2086
		a=$(ir "$n" "$r" $fns); b=$(ir "$n" $((2 * r)) $fns)
		res="$res $(awk -v a="$a" -v b="$b" -v p=$((r * n)) 'BEGIN { printf "%.1f", (b - a) / p }')"
	done
	# shellcheck disable=SC2086
	printf '%-6s %8s %10s %9s\n' "$n" $res
done
