#!/usr/bin/env bash
# The cost of one call under the -finstrument-functions hooks of
# libsprof.so: median CPU time of interleaved runs with and without the
# preload (without it, glibc's no-op hooks run), divided by the calls.
# Usage: scripts/bench-call-hooks.sh [CALLS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-100000000}
runs=${2:-5}
scripts/build.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -finstrument-functions -o "$work/bench" scripts/bench_call_hooks.c

cpu_seconds() { # command... -> user+system seconds of the command
    local t
    t=$( { TIMEFORMAT='%U %S'; time "$@" >/dev/null; } 2>&1 | tail -1 )
    awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.4f\n", a[1] + a[2] }'
}

plain=() profiled=()
for _ in $(seq "$runs"); do
    plain+=("$(cpu_seconds "$work/bench" "$calls")")
    profiled+=("$(SPROF_QUIET=1 SPROF_FREQ=1 SPROF_OUTPUT="$work/t.bin" \
        LD_PRELOAD="$PWD/build/preload/libsprof.so" cpu_seconds "$work/bench" "$calls")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
p=$(median "${plain[@]}")
s=$(median "${profiled[@]}")
awk -v p="$p" -v s="$s" -v n="$calls" -v r="$runs" 'BEGIN {
    printf "calls per run: %d, runs: %d (interleaved), median CPU: %.3f s with no-op hooks, %.3f s with sprof'"'"'s\n", n, r, p, s
    printf "cost of the hooks per call (enter + exit): %.1f ns\n", (s - p) / n * 1e9
}'
