#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tests/lib/test_symbols.py - libgmm as a library others link against.

1. The dynamic symbols libgmm.so defines are exactly the functions and
   objects declared in include/gmm/*.h: an internal symbol (buddy_*, pcp_*,
   ...) exported would let an embedder's own function of that name
   interpose on the library, a declared one missing would not link.
2. No two object files of the library call each other (directly or through
   others): the layering docs/architecture.md describes.

Usage: test_symbols.py LIBGMM_SO LIBGMM_A INCLUDE_DIR
"""
import collections
import glob
import os
import re
import subprocess
import sys


def declared(include_dir):
    """Names of the functions and objects the public headers declare."""
    names = set()
    for path in sorted(glob.glob(os.path.join(include_dir, 'gmm', '*.h'))):
        text = open(path).read()
        text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
        text = re.sub(r'^#.*$', '', text, flags=re.M)
        # static inline helpers are not library symbols
        text = re.sub(r'static inline[^{;]*\{.*?\n\}', '', text, flags=re.S)
        for m in re.finditer(r'^(?!struct|enum|union|typedef|static)'
                             r'(?:extern\s+)?[A-Za-z_][\w\s\*]*?\b(gmm_\w+)\s*[(;]',
                             text, re.M):
            names.add(m.group(1))
    return names


def exported(so):
    out = subprocess.run(['nm', '-D', '--defined-only', so], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] != 'A':  # 'A': version node names
            syms.add(parts[2].split('@')[0])
    return syms


def object_graph(archive):
    """Which object of the archive calls which (by defined/undefined symbols)."""
    out = subprocess.run(['nm', archive], check=True, capture_output=True,
                         text=True).stdout
    defs, undefs, obj = {}, collections.defaultdict(set), None
    for line in out.splitlines():
        if line.endswith(':'):
            obj = line[:-1].replace('.c.o', '')
            continue
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'TDBR':
            defs[parts[2]] = obj
        elif len(parts) == 2 and parts[0] == 'U':
            undefs[obj].add(parts[1])
    graph = collections.defaultdict(set)
    for o, us in undefs.items():
        for u in us:
            if u in defs and defs[u] != o:
                graph[o].add(defs[u])
    return graph


def find_cycle(graph):
    state = {}

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                c = visit(m, path + [m])
                if c:
                    return c
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [n])
            if c:
                return c
    return None


def main():
    so, archive, include_dir = sys.argv[1:4]
    api = declared(include_dir)
    syms = exported(so)
    fails = 0
    if len(api) < 50:
        print(f'FAIL: only {len(api)} declarations found in the headers')
        fails += 1
    extra = sorted(syms - api)
    missing = sorted(api - syms)
    if extra:
        print('FAIL: exported but not part of the documented API:', ' '.join(extra))
        fails += 1
    if missing:
        print('FAIL: declared in include/gmm but not exported:', ' '.join(missing))
        fails += 1
    print(f'{len(syms)} symbols exported, {len(api)} declared')
    cycle = find_cycle(object_graph(archive))
    if cycle:
        print('FAIL: library files call each other:', ' -> '.join(cycle))
        fails += 1
    else:
        print('no call cycle between the library\'s files')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
