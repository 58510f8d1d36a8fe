#!/bin/sh
# tests/pcp/tsan-run.sh - run a ThreadSanitizer test binary.  Kernels with
# many mmap randomisation bits make TSan die with "unexpected memory
# mapping"; then run it again with ASLR disabled (setarch -R).
out=$(mktemp)
"$@" 2>"$out"
rc=$?
if grep -q "unexpected memory mapping\|FATAL: ThreadSanitizer" "$out"; then
	echo "tsan-run: TSan cannot map its shadow here; retrying under setarch -R" >&2
	rm -f "$out"
	exec setarch "$(uname -m)" -R "$@"
fi
cat "$out" >&2
rm -f "$out"
exit $rc
