#!/usr/bin/env bash
# Installs what is missing, builds sprof, and profiles a bundled sample,
# printing its table.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
echo "== sprof: profiling samples/sum (the slow version builds a list first)"
out=$(mktemp -d)
SPROF_OUTPUT="$out/trace.bin" LD_PRELOAD="$PWD/build/preload/libsprof.so" \
    build/samples/sum --mode slow --repeat 30
build/analyzer/sprof-analyze "$out/trace.bin" --sort cumulative --limit 12
rm -rf "$out"
echo
echo "Next: samples/demo.sh runs all three optimizations, before and after."
