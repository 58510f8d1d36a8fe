#!/usr/bin/env bash
# scripts/test.sh - set up, build, and run every test: the default suites,
# the suites that need KVM (kvm, linux) where GMM_KVM puts them
# (scripts/kvm-where.sh: on /dev/kvm, or all in one boot of the emulated
# KVM host), then the ASan+UBSan and TSan setups.  Prints every failed and
# skipped test (with the reason) and "N passed, N failed, N skipped"; exits
# non-zero when any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/kvm-where.sh
# Hard limit for the one boot of the emulated KVM host (each test inside
# also has its own meson timeout).
NESTED_TIMEOUT=1500
# Meson timeouts are set for native runs; the emulated host is slower.
NESTED_TIMEOUT_MULTIPLIER=3

where_kvm=$(kvm_where kvm) && where_linux=$(kvm_where linux) || exit 1
scripts/setup.sh || exit 1
rm -f build/meson-logs/testlog*.json

# Suites the native default run leaves out, and what runs where.
outer=() nested=() native_linux=0 notes=()
for s in kvm linux; do
	where=where_$s
	case ${!where} in
	nested)
		outer+=(--no-suite "$s")
		nested+=(--suite "$s")
		notes+=(--note "suite $s: in the emulated KVM host (GMM_KVM=${GMM_KVM:-auto})") ;;
	off)
		outer+=(--no-suite "$s")
		notes+=(--note "suite $s: NOT RUN (GMM_KVM=off)") ;;
	native)
		[ "$s" = linux ] && native_linux=1
		notes+=(--note "suite $s: on this machine's /dev/kvm") ;;
	esac
done

meson test -C build --print-errorlogs --num-processes 2 "${outer[@]}"
if [ $native_linux = 1 ]; then
	meson test -C build --print-errorlogs --suite linux --logbase testlog-linux
fi
if [ ${#nested[@]} -gt 0 ]; then
	echo "test: running ${nested[*]} in one boot of the emulated KVM host" \
	     "(QEMU TCG; its timings mean nothing)"
	start=$SECONDS
	for attempt in 1 2; do
		tests/kvmhost/kvmhost.py --checkout "$PWD" --timeout $NESTED_TIMEOUT -- \
			meson test -C build --no-rebuild --print-errorlogs --num-processes 2 \
			--timeout-multiplier $NESTED_TIMEOUT_MULTIPLIER \
			--logbase testlog-nested "${nested[@]}"
		rc=$?
		# 125: the emulated host itself died (QEMU TCG's nested SVM has
		# reset it mid-run, with no panic): not a test result, so once
		# more from the start; a second death is a failure
		[ $rc -eq 125 ] && [ $attempt -eq 1 ] || break
		echo "test: the emulated KVM host died (kvmhost exit 125); running the nested suites once more"
		notes+=(--note "emulated KVM host: died once (kvmhost exit 125), the nested suites ran again")
	done
	notes+=(--note "emulated KVM host: $((SECONDS - start)) s from boot to power-off")
	# kvmhost's own failures (tests/kvmhost/kvmhost.py): 124 its hard
	# timeout, 125 the host did not boot; meson's status counts failed tests.
	if [ $rc -eq 124 ] || [ $rc -eq 125 ] || [ ! -s build/meson-logs/testlog-nested.json ]; then
		notes+=(--failure "emulated KVM host: kvmhost exit $rc, no complete results (see its output above)")
	fi
fi
meson test -C build --print-errorlogs --num-processes 2 --setup asan --suite asan
meson test -C build --print-errorlogs --num-processes 2 --setup tsan --suite tsan
python3 scripts/test-summary.py "${notes[@]}" build/meson-logs/testlog*.json
