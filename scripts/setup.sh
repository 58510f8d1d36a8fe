#!/usr/bin/env bash
# scripts/setup.sh - install gmm's build and test dependencies (Debian 12,
# as root) and configure and build the meson build directory ./build.
# The test packages are QEMU, Debian's kernel and busybox-static: the
# emulated KVM host (tests/kvmhost/kvmhost.py) and the Linux boot test need
# them.  When another apt or dpkg holds its lock, setup waits for it.
set -euo pipefail
cd "$(dirname "$0")/.."
# How long to wait for another apt/dpkg to release its lock, in seconds.
APT_LOCK_WAIT=900

pkgs=(meson ninja-build pkg-config gcc libc6-dev python3
      liburcu-dev libfdt-dev libjson-c-dev libnuma-dev
      qemu-system-x86 linux-image-amd64 busybox-static
      clang libclang-rt-14-dev socat strace)

# apt-get with its arguments, waiting while another apt or dpkg holds a lock.
apt_get() {
	local start=$SECONDS waited=0 out rc
	while :; do
		rc=0
		out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 \
			"$@" 2>&1) || rc=$?
		if [ $rc -eq 0 ] || ! grep -q -e 'Could not get lock' -e 'Unable to acquire' <<<"$out"; then
			printf '%s\n' "$out" | grep -v -e '^Get:' -e '^Hit:' -e '^Ign:' || true
			return $rc
		fi
		if [ $waited -ge $APT_LOCK_WAIT ]; then
			printf '%s\n' "$out" >&2
			echo "setup: apt/dpkg lock still held after ${waited} s; giving up" >&2
			return $rc
		fi
		echo "setup: another apt or dpkg holds its lock; waiting (${waited} s so far)"
		sleep 10
		waited=$((SECONDS - start))
	done
}

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: these packages are missing and installing them needs root: ${missing[*]}" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]} (this takes a minute or two)"
	apt_get update -q
	apt_get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -f build/build.ninja ]; then
	echo "setup: configuring ./build"
	meson setup build
fi
echo "setup: building"
ninja -C build
