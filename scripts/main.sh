#!/usr/bin/env bash
# scripts/main.sh - set up, build, and run gmm's main job: boot gmm-vmm
# (256 MiB of lazily backed gmm memory on 2 vCPUs, a touch, churn and
# verify workload, then the guest's balloon driver: to half the RAM and
# back, stats, free page reporting of 64 MiB it gives up) and show its
# summary.  With a usable /dev/kvm it runs
# on this machine; without one it runs inside the emulated KVM host
# (tests/kvmhost/kvmhost.py, QEMU TCG: it works, but no figure it prints
# means anything).  GMM_KVM=native|nested|off forces the choice
# (scripts/kvm-where.sh); off shows the allocator demonstration instead (a
# mixed-mobility fragmentation run, buddyinfo and pagetypeinfo before and
# after, with mobility grouping on and off).  Extra arguments go to the
# program run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/kvm-where.sh
# Hard limit for the run inside the emulated host, in seconds.
NESTED_TIMEOUT=900

where=$(kvm_where main)
echo "main: setting up (packages and build; the first run takes a minute or two)"
scripts/setup.sh 2>&1 | sed -u 's/^/  /'
vmm=(build/vmm/gmm-vmm --memory 256M --vcpus 2 --memory-mode gmm --balloon=stats-period=1
     --guest-workload "touch=224 verify churn=32 verify balloon=50 verify stats balloon=100 free=64 verify"
     "$@")
case $where in
native)
	echo "main: booting the benchmark guest on this machine's /dev/kvm"
	exec "${vmm[@]}" ;;
nested)
	echo "main: UNDER EMULATION: no usable /dev/kvm here, so the guest runs in an" \
	     "emulated KVM host (QEMU TCG, nested SVM): it must pass, but its timings mean nothing"
	exec tests/kvmhost/kvmhost.py --checkout "$PWD" --timeout $NESTED_TIMEOUT -- "${vmm[@]}" ;;
off)
	echo "main: GMM_KVM=off: not booting a VM; showing the allocator demonstration instead"
	exec build/tools/gmm-stat --demo "$@" ;;
esac
