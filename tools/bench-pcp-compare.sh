#!/bin/sh
# tools/bench-pcp-compare.sh - run the cache benchmarks of the RCU design
# (bench-pcp) and of the spinlock-per-cache design (bench-pcp-spin) in one
# run and print them side by side with ratios.
# usage: bench-pcp-compare.sh [BENCH_PCP BENCH_PCP_SPIN [extra bench args]]
# Without arguments it runs the two programs of the build directory
# (build/ next to tools/, or $GMM_BUILD).
set -e
usage() {
	echo "usage: $0 [BENCH_PCP BENCH_PCP_SPIN [extra bench-pcp args]]"
	echo "  default: ${GMM_BUILD:-build}/tools/bench-pcp and bench-pcp-spin"
}
case "$1" in
-h|--help) usage; exit 0 ;;
esac
if [ $# -ge 2 ]; then
	rcu=$1
	spin=$2
	shift 2
elif [ $# -eq 0 ]; then
	build=${GMM_BUILD:-$(dirname "$0")/../build}
	rcu=$build/tools/bench-pcp
	spin=$build/tools/bench-pcp-spin
else
	usage >&2
	exit 2
fi
for b in "$rcu" "$spin"; do
	if [ ! -x "$b" ]; then
		echo "bench-pcp-compare.sh: $b is not an executable (build first: ninja -C build)" >&2
		exit 2
	fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$rcu" --pair --drain "$@" >"$tmp/rcu"
"$spin" --pair --drain "$@" >"$tmp/spin"
echo "# owner fast path: cached order-0 pair, ns (allocate N, free N)"
printf '%-8s %10s %10s %12s\n' N rcu_ns spin_ns spin/rcu
awk 'NR==FNR && /^[0-9]/ { r[$1] = $2; next }
     /^[0-9]/ && ($1 in r) { printf "%-8s %10.1f %10.1f %11.2fx\n", $1, r[$1], $2, $2 / r[$1] }' \
	"$tmp/rcu" "$tmp/spin"
echo "# remote drain latency (median of 41), us"
printf '%-5s %-8s %-6s %12s %12s %12s\n' mode threads pages rcu_us spin_us rcu/spin
awk 'NR==FNR && /^drain / { r[$2 " " $3 " " $4] = $6; next }
     /^drain / { k = $2 " " $3 " " $4; if (k in r)
	printf "%-5s %-8s %-6s %12.1f %12.1f %11.2fx\n", $2, $3, $4, r[k], $6, r[k] / $6 }' \
	"$tmp/rcu" "$tmp/spin"
