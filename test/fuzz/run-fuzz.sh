#!/usr/bin/env bash
# Runs the libFuzzer target on the trace reader and analysis for a while.
#
# Usage: run-fuzz.sh FUZZER [SECONDS [LIBFUZZER_OPTION...]]
#   FUZZER   build/test/fuzz/fuzz_trace, or "unavailable" (exit 77: skipped)
#   SECONDS  how long to fuzz (default 30; SPROF_FUZZ_SECONDS overrides it)
# Seeds are corpus/ and regressions/ beside this script; what the run finds
# goes into a scratch corpus, never into the source tree. Allocations over
# 64 MB and a resident size over 512 MB count as crashes: no field of a
# trace may make the analyzer allocate what it claims.
# Exit status: 0 nothing found, 1 a crash (its input is kept and printed),
# 77 skipped.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
fuzzer="${1:-unavailable}"
seconds="${SPROF_FUZZ_SECONDS:-${2:-30}}"
shift $(( $# < 2 ? $# : 2 ))

if [ "$fuzzer" = unavailable ] || [ ! -x "$fuzzer" ]; then
    echo "SKIP: no libFuzzer build (needs clang and its fuzzer runtime, Debian: clang libclang-rt-14-dev)"
    exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sprof-fuzz-XXXXXX")"
mkdir -p "$work/corpus" "$work/artifacts"
# The target's own checks trap; ASan and UBSan stop at the first error,
# but for the undefined behaviour known-bugs.supp lists (reported, not yet
# fixed: keep that file empty when they are).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$here/known-bugs.supp}"
unset DEBUGINFOD_URLS

echo "fuzzing for $seconds s: $fuzzer"
"$fuzzer" \
    -max_total_time="$seconds" \
    -rss_limit_mb=512 \
    -malloc_limit_mb=64 \
    -timeout=20 \
    -max_len=262144 \
    -dict="$here/trace.dict" \
    -artifact_prefix="$work/artifacts/" \
    -print_final_stats=1 \
    "$@" \
    "$work/corpus" "$here/corpus" "$here/regressions" 2>&1 | tee "$work/log" |
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' 
status=${PIPESTATUS[0]}

if [ "$status" -ne 0 ]; then
    echo "FAIL: the fuzzer exited $status; inputs kept in $work/artifacts:"
    ls -l "$work/artifacts"
    echo "Reproduce: $fuzzer $work/artifacts/<file>; then add the file to $here/regressions/"
    exit 1
fi
rm -rf "$work"
exit 0
