#!/bin/sh
# tests/vmm/fuzz_qmp.sh - build the monitor's libFuzzer target with clang
# (ASan + UBSan; libgmm comes from the gcc build) and run it.
# Usage: fuzz_qmp.sh SRCDIR LIBGMM_A VERSION OUTDIR [libFuzzer options...]
# e.g. the CI run (meson test fuzz-qmp): -runs=200000; the long run of
# docs/monitor.md: -runs=10000000 -jobs=1.
set -eu
FUZZ_SANITIZE=${FUZZ_SANITIZE-address,undefined}
src=$1 lib=$2 version=$3 out=$4
shift 4
major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}; micro=${rest#*.}
mkdir -p "$out/corpus"
clang -std=c17 ${FUZZ_OPT:--O1} -g -D_GNU_SOURCE -Wall -Wextra -Werror \
	-fsanitize=fuzzer${FUZZ_SANITIZE:+,$FUZZ_SANITIZE} -fno-sanitize-recover=all \
	-DGMM_VERSION_MAJOR="$major" -DGMM_VERSION_MINOR="$minor" -DGMM_VERSION_MICRO="$micro" \
	-I"$src/include" -I"$src/vmm" -I"$src/virtio" $(pkg-config --cflags json-c) \
	"$src/tests/vmm/fuzz_qmp.c" "$src/tests/vmm/fake_balloon.c" \
	"$src/vmm/qmp.c" "$src/vmm/qmp_cmds.c" "$src/vmm/balloon_ctl.c" \
	"$src/vmm/guestmem.c" "$src/vmm/guestmem_anon.c" "$src/vmm/guestmem_gmm.c" \
	"$src/vmm/guestmem_uffd.c" "$src/vmm/guestmem_devram.c" "$src/virtio/vmem.c" "$src/virtio/virtio_pci.c" \
	"$src/virtio/virtqueue.c" "$src/vmm/pci.c" "$src/vmm/evloop.c" "$src/vmm/irq.c" "$src/vmm/bus.c" \
	"$lib" $(pkg-config --libs json-c liburcu-qsbr) -lm -lpthread \
	-o "$out/fuzz-qmp"
# the seeds first; the corpus directory grows across runs
exec "$out/fuzz-qmp" -max_len=4096 -timeout=10 "$@" "$out/corpus" "$src/tests/vmm/qmp_corpus"
