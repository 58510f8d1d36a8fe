#!/usr/bin/env bash
# scripts/main.sh - set up, build, and run gmm's main job: the allocator
# demonstration (a mixed-mobility fragmentation run, buddyinfo and
# pagetypeinfo before and after, with mobility grouping on and off).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
exec build/tools/gmm-stat --demo "$@"
