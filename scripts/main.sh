#!/usr/bin/env bash
# scripts/main.sh - set up, build, and run gmm's main job: with /dev/kvm,
# boot gmm-vmm (256 MiB of lazily backed gmm memory on 2 vCPUs, a touch,
# churn and verify workload, then the guest's balloon driver: to half the
# RAM and back, stats, and free page reporting of 64 MiB it gives up) and
# show its summary; without /dev/kvm, say so
# loudly and run the allocator demonstration instead (a mixed-mobility
# fragmentation run, buddyinfo and pagetypeinfo before and after, with
# mobility grouping on and off).  Extra arguments go to the program run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
if [ -e /dev/kvm ]; then
	exec build/vmm/gmm-vmm --memory 256M --vcpus 2 --memory-mode gmm \
		--balloon=stats-period=1 --guest-workload \
		"touch=224 verify churn=32 verify balloon=50 verify stats balloon=100 free=64 verify" "$@"
fi
echo "SKIP: /dev/kvm is absent on this machine: cannot boot a VM; showing the allocator demonstration instead"
exec build/tools/gmm-stat --demo "$@"
