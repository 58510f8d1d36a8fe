#!/bin/sh
# tools/bench-pcp-insn.sh - instructions per frame of gmm_alloc_bulk() and
# gmm_free_bulk() against single gmm_alloc() and gmm_free(), attached and
# unattached, counted by Valgrind callgrind (exact, unlike timings on a
# shared machine).  Runs `bench-pcp --insn N` under callgrind for each N
# and prints the inclusive instruction count of each phase per frame, and
# single/bulk ratios (allocations, frees, and alloc+free).
# usage: bench-pcp-insn.sh [N ...]   (default 16 64 256 1024; N divides 65536)
# The program is ${GMM_BUILD:-build}/tools/bench-pcp next to tools/.
set -e
build=${GMM_BUILD:-$(dirname "$0")/../build}
bench=$build/tools/bench-pcp
if [ ! -x "$bench" ]; then
	echo "bench-pcp-insn.sh: $bench is not an executable (build first: ninja -C build)" >&2
	exit 2
fi
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
	echo "bench-pcp-insn.sh: needs valgrind and callgrind_annotate" >&2
	exit 2
fi
[ $# -gt 0 ] || set -- 16 64 256 1024
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '%-5s %-10s | %8s %8s %6s | %8s %8s %6s | %6s\n' N thread bulk_a single_a ratio \
	bulk_f single_f ratio pair
for n in "$@"; do
	frames=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" --insn "$n" \
		2>/dev/null | sed -n 's/^insn N [0-9]* frames per phase \([0-9]*\)$/\1/p')
	[ -n "$frames" ] || { echo "bench-pcp-insn.sh: bench-pcp --insn $n failed" >&2; exit 1; }
	callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
	awk -v n="$n" -v frames="$frames" '
		/insn_(bulk|single)_(alloc|free)/ {
			c = $1; gsub(",", "", c)
			match($0, /insn_[a-z_]*/)
			ir[substr($0, RSTART, RLENGTH)] = c / frames
		}
		function row(th, s) {
			ba = ir["insn_bulk_alloc" s]; sa = ir["insn_single_alloc" s]
			bf = ir["insn_bulk_free" s]; sf = ir["insn_single_free" s]
			if (!ba || !bf) { print "missing phase counts" > "/dev/stderr"; exit 1 }
			printf "%-5s %-10s | %8.1f %8.1f %5.2fx | %8.1f %8.1f %5.2fx | %5.2fx\n",
			       n, th, ba, sa, sa / ba, bf, sf, sf / bf, (sa + sf) / (ba + bf)
		}
		END { row("attached", ""); row("unattached", "_unattached") }'
done
echo "# instructions per frame (inclusive, callgrind); ratio = single / bulk"
