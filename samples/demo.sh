#!/usr/bin/env bash
# demo.sh: run each sample pair (slow, then fast) under the sprof profiler,
# show where the time went, and measure before/after.
#
#   samples/demo.sh [BUILD_DIR]        (default: build)
#
# Every figure printed is measured in this run:
#   - the programs time their own computation (clock_gettime around it, per
#     computation) and print it on a "# time per computation" line;
#   - runstat (built with the samples) runs each program and reports the
#     process's wall time, CPU time (user + system) and peak RSS from wait4().
#     Process figures include start-up and the profiler's own work (its
#     writer thread and the symbolization at exit), which dominate the fast
#     runs; the per-computation times do not.
# Needs only bash, awk and the build: no GNU time.
set -euo pipefail

build=${1:-build}
if [[ ! -d $build ]]; then
    echo "demo.sh: no build directory '$build' (meson setup $build && ninja -C $build)" >&2
    exit 1
fi
build=$(cd "$build" && pwd)
lib=$build/preload/libsprof.so
analyze=$build/analyzer/sprof-analyze
bin=$build/samples
for file in "$lib" "$analyze" "$bin/sum" "$bin/fib" "$bin/fib-counted" "$bin/threads" "$bin/runstat"; do
    if [[ ! -e $file ]]; then
        echo "demo.sh: $file is missing: build first (ninja -C $build)" >&2
        exit 1
    fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sprof-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
demo_start=$(date +%s.%N)

# Sizes used below. The programs' own defaults are the seed's (sum: 10**6;
# fib: 35; threads: 35..38); repetitions only give the profiler more samples
# (it samples at 999 Hz, about one sample per millisecond of CPU).
SUM_N=1000000
SUM_REPEAT=50
FIB_N=35
FIB_NAIVE_REPEAT=5
FIB_MEMO_REPEAT=20000
FIB_COUNT_N=25

heading() {
    printf '\n==== %s ====\n' "$*"
}

# profiled NAME PROGRAM [ARG]...: runs PROGRAM under the profiler (trace
# $tmp/NAME.bin) inside runstat ($tmp/NAME.stat); output to $tmp/NAME.out
# and, indented, to the terminal.
profiled() {
    local name=$1
    shift
    printf '$ %s %s\n' "$(basename "$1")" "${*:2}"
    local status=0
    "$bin/runstat" "$tmp/$name.stat" \
        env SPROF_QUIET=1 SPROF_OUTPUT="$tmp/$name.bin" LD_PRELOAD="$lib" "$@" \
        >"$tmp/$name.out" || status=$?
    sed 's/^/    /' "$tmp/$name.out"
    if ((status != 0)); then
        echo "demo.sh: $(basename "$1") failed (exit status $status)" >&2
        exit 1
    fi
}

profile_table() {
    echo "  profile: sprof-analyze --sort cumulative --limit 8"
    "$analyze" "$tmp/$1.bin" --sort cumulative --limit 8 | sed 's/^/    /'
}

# fig NAME FIELD: from the program's "# main(): wall W s, CPU C s (...), peak
# RSS R MiB" line (wall | cpu | rss), or from runstat's line (pwall | pcpu |
# prss: the whole process, with the profiler's start-up and exit work).
fig() {
    case $2 in
    wall) sed -n 's/^# main(): wall \([0-9.]*\) s.*/\1/p' "$tmp/$1.out" ;;
    cpu) sed -n 's/^# main(): .*, CPU \([0-9.]*\) s.*/\1/p' "$tmp/$1.out" ;;
    rss) sed -n 's/^# main(): .*peak RSS \([0-9.]*\) MiB.*/\1/p' "$tmp/$1.out" ;;
    pwall) awk '{ printf "%.3f\n", $1 }' "$tmp/$1.stat" ;;
    pcpu) awk '{ printf "%.3f\n", $4 }' "$tmp/$1.stat" ;;
    prss) awk '{ printf "%.1f\n", $5 / 1024 }' "$tmp/$1.stat" ;;
    esac
}

# per_computation NAME FUNCTION: seconds per computation, from the program.
per_computation() {
    sed -n "s/.*time per computation:.*$2(*[0-9]*)* \([0-9.]*\) s.*/\1/p" "$tmp/$1.out" | head -n 1
}

# value NAME FUNCTION: the result printed as FUNCTION(n) = value.
value() {
    sed -n "s/^$2([0-9]*) = \([0-9]*\).*/\1/p" "$tmp/$1.out" | head -n 1
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'
}

ms() {
    awk -v s="$1" 'BEGIN { printf "%.6f", s * 1000 }'
}

table_head() {
    printf '  %-26s %16s | %-38s | %s\n' "" "per computation" \
        "main(): wall, CPU, peak RSS" "whole process under the profiler"
}

# row LABEL NAME [SECONDS_PER_COMPUTATION]
row() {
    local per=${3:-}
    [[ -n $per ]] && per="$(ms "$per") ms"
    printf '  %-26s %16s | %-38s | %s\n' "$1" "$per" \
        "$(fig "$2" wall) s, $(fig "$2" cpu) s, $(fig "$2" rss) MiB" \
        "$(fig "$2" pwall) s, $(fig "$2" pcpu) s, $(fig "$2" prss) MiB"
}

agree() {
    if [[ $1 == "$2" && -n $1 ]]; then
        echo "results agree ($1)"
    else
        echo "RESULTS DIFFER: '$1' vs '$2'"
        exit 1
    fi
}

echo "sprof samples demo: each slow/fast pair runs under LD_PRELOAD=$lib"
echo "(SPROF_QUIET=1, one trace per run); programs in $bin"

# ---------------------------------------------------------------- sum ----
heading "1. sum of 0..n-1: grow an array, then loop (slow) vs sum directly (fast)"
echo "Look for: under inefficient_sum, the grow step (grow_list, list_append, list_resize)"
echo "and the summing loop (sum_list); in the fast run, loop_sum alone."
profiled sum-slow "$bin/sum" --mode slow --repeat "$SUM_REPEAT" --time "$SUM_N"
profile_table sum-slow
profiled sum-fast "$bin/sum" --mode fast --repeat "$SUM_REPEAT" --time "$SUM_N"
profile_table sum-fast
slow=$(per_computation sum-slow inefficient_sum)
loop=$(per_computation sum-fast loop_sum)
closed=$(per_computation sum-fast closed_form_sum)
echo
echo "before/after, sum (n = $SUM_N, each computed $SUM_REPEAT times): $(agree "$(value sum-slow inefficient_sum)" "$(value sum-fast loop_sum)")"
table_head
row "slow  inefficient_sum" sum-slow "$slow"
row "fast  loop_sum" sum-fast "$loop"
printf '  %-26s %16s\n' "      closed_form_sum" "$(ms "$closed") ms"
echo "  speedup per computation: loop_sum $(ratio "$slow" "$loop")x, closed_form_sum $(ratio "$slow" "$closed")x;" \
    "main(): wall $(ratio "$(fig sum-slow wall)" "$(fig sum-fast wall)")x," \
    "CPU $(ratio "$(fig sum-slow cpu)" "$(fig sum-fast cpu)")x," \
    "peak RSS $(ratio "$(fig sum-slow rss)" "$(fig sum-fast rss)")x lower"

# ---------------------------------------------------------------- fib ----
heading "2. fib($FIB_N): naive recursion (slow) vs LRU-memoized, 128 entries (fast)"
echo "Look for: fib_naive with nearly all the self time; in the fast run, what is left is"
echo "the cache itself (cache_lookup, cache_insert and the lock around the table)."
profiled fib-slow "$bin/fib" --mode slow --count-calls --repeat "$FIB_NAIVE_REPEAT" --time "$FIB_N"
profile_table fib-slow
profiled fib-fast "$bin/fib" --mode fast --count-calls --repeat "$FIB_MEMO_REPEAT" --time "$FIB_N"
profile_table fib-fast
naive=$(per_computation fib-slow fib_naive)
memo=$(per_computation fib-fast fib_memo)
speedup=$(ratio "$naive" "$memo")
echo
echo "before/after, fib($FIB_N) (naive computed $FIB_NAIVE_REPEAT times, memoized $FIB_MEMO_REPEAT times, each from an empty cache): $(agree "$(value fib-slow fib_naive)" "$(value fib-fast fib_memo)")"
table_head
row "slow  fib_naive" fib-slow "$naive"
row "fast  fib_memo" fib-fast "$memo"
verdict=$(awk -v x="$speedup" 'BEGIN { print (x >= 100 ? "yes" : "NO") }')
echo "  speedup: memoized fib($FIB_N) is ${speedup}x faster than naive per computation" \
    "(at least 100x: $verdict). The processes' totals are not comparable: they ran" \
    "$FIB_NAIVE_REPEAT and $FIB_MEMO_REPEAT computations."

# Exact calls, from sprof's own call counts: fib built with
# -finstrument-functions (fib-counted), one computation each.
echo "  exact calls of fib($FIB_COUNT_N), from sprof's call counts (fib-counted: built with -finstrument-functions):"
for mode in slow fast; do
    SPROF_QUIET=1 SPROF_OUTPUT="$tmp/fib-counted-$mode.bin" LD_PRELOAD="$lib" \
        "$bin/fib-counted" --mode "$mode" "$FIB_COUNT_N" >/dev/null
    "$analyze" "$tmp/fib-counted-$mode.bin" --format csv |
        awk -F'","|^"|",|,"' -v mode="$mode" '
            $2 ~ /^fib_(naive|memo)$/ {
                n = split($0, f, ",")
                calls = f[n - 1]; primitive = f[n]
                printf "    %-5s %-9s ncalls %s/%s\n", mode, $2, calls, primitive
            }'
done

# ------------------------------------------------------------ threads ----
heading "3. fib(35..38): one after another (slow) vs a pool of 4 worker threads (fast)"
echo "Look for: the same fib_naive time, reached from main in the serial run and from"
echo "worker_main in the pool; the per-thread view splits it over fib-worker-0..3."
profiled threads-slow "$bin/threads" --mode slow --time
profile_table threads-slow
profiled threads-fast "$bin/threads" --mode fast --time
profile_table threads-fast
echo "  per-thread view: sprof-analyze --threads"
"$analyze" "$tmp/threads-fast.bin" --threads | sed 's/^/    /'
echo
serial_results=$(sed -n 's/^\(fib([0-9]*) = [0-9]*\).*/\1/p' "$tmp/threads-slow.out" | paste -sd, | sed 's/,/, /g')
pool_results=$(sed -n 's/^\(fib([0-9]*) = [0-9]*\).*/\1/p' "$tmp/threads-fast.out" | paste -sd, | sed 's/,/, /g')
echo "before/after, fib(35..38) with fib_naive: $(agree "$serial_results" "$pool_results")"
table_head
row "slow  serial, main thread" threads-slow
row "fast  pool of 4 workers" threads-fast
parallel=$(ratio "$(fig threads-fast cpu)" "$(fig threads-fast wall)")
echo "  speedup: main() wall $(ratio "$(fig threads-slow wall)" "$(fig threads-fast wall)")x" \
    "for about the same CPU ($(fig threads-slow cpu) s serial, $(fig threads-fast cpu) s in the pool)."
echo "  Parallelism in the pool (CPU / wall): $parallel on $(getconf _NPROCESSORS_ONLN) CPUs" \
    "(at most about 2 here: fib(38) alone is 45% of the work)."
if awk -v p="$parallel" 'BEGIN { exit !(p >= 1.3) }'; then
    echo "  C threads ran the CPU-bound work in parallel; under CPython's GIL the pool's wall time" \
        "would have been no better than the serial run's."
else
    echo "  This run got little parallelism: other processes were using the CPUs. On an idle" \
        "machine the pool's wall time drops well below its CPU time."
fi

heading "3b. the seed's own pairing: the LRU-memoized fib called from the pool"
echo "All workers share one LRU table; a mutex guards each lookup and insert, never the"
echo "recursion (see README-samples.md). Each task takes microseconds, so one worker often"
echo "drains the whole queue before the others start."
profiled threads-memo "$bin/threads" --mode both --fn memo --time

demo_end=$(date +%s.%N)
echo
echo "demo finished in $(awk -v a="$demo_start" -v b="$demo_end" 'BEGIN{printf "%.1f", b - a}') s"
