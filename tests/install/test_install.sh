#!/usr/bin/env bash
# tests/install/test_install.sh BUILD_DIR SOURCE_DIR - install libgmm into a
# scratch directory, check that every public header compiles on its own,
# and build and run a program against the installed library with pkg-config.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --destdir "$tmp/root" >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
pcdir=$(dirname "$(find "$tmp/root" -name gmm.pc | head -n 1)")
export PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$tmp/root
inc=$tmp/root$prefix/include

for h in "$inc"/gmm/*.h; do
	name=gmm/$(basename "$h")
	printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$name" "$name" > "$tmp/h.c"
	cc -std=c17 -Wall -Wextra -Werror -pedantic-errors -I"$inc" -c "$tmp/h.c" -o "$tmp/h.o" ||
		{ echo "FAIL: $name does not compile on its own"; exit 1; }
done
echo "ok: every public header compiles on its own (C17, -pedantic-errors)"

cc -std=c17 -Wall -Wextra -Werror "$src/tests/install/embed.c" -o "$tmp/embed" \
	$(pkg-config --cflags --libs gmm)
LD_LIBRARY_PATH=$(dirname "$(find "$tmp/root" -name libgmm.so.0 | head -n 1)") "$tmp/embed"
echo "ok: an outside program builds with pkg-config and runs against the installed library"
