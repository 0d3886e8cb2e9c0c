#!/usr/bin/env bash
# Builds sprof with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-sanitized/ and runs the tests that make sense there:
#   unit    the format, reader, tables and arithmetic (sanitized directly)
#   fuzz    saved hostile inputs replayed through the sanitized analyzer,
#           every size field at 4 GB, hostile names through the sanitized
#           sprof-analyze, and a short libFuzzer run (its own clang build)
#   stress  the sanitized libsprof.so preloaded (after the ASan runtime,
#           which stress.py puts first) into the stress programs
#   e2e     the end-to-end tests, with the ASan runtime preloaded before
#           the sanitized libsprof.so (e2e.py sees to it); the few checks
#           that ASan itself changes (its own SIGSEGV handler, its stack
#           redzones, its quarantine) are skipped there, each saying why
#   samples the samples' tests (their demo, which measures speed, is not a
#           test and is not run)
#
# Usage: scripts/test-sanitized.sh [MESON_TEST_ARGS...]
#   SPROF_SANITIZED_BUILD=DIR  build directory (default: build-sanitized)
# Any sanitizer report fails the test that produced it (halt_on_error);
# UBSan reports of bugs known and not yet fixed are listed, one by one, in
# test/fuzz/known-bugs.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build="${SPROF_SANITIZED_BUILD:-build-sanitized}"

scripts/install-deps.sh --test
if [ ! -f "$build/build.ninja" ]; then
    # b_lundef=false: with clang the sanitizer runtime is not linked into
    # shared objects, so libsprof.so has undefined __asan_* symbols.
    meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$build"

# Leaks are reported for the analyzer and the tests (exit paths free what
# they allocate), but not for programs that libsprof.so is preloaded into:
# stress.py turns detect_leaks off for those.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$root/test/fuzz/known-bugs.supp}"

if [ $# -eq 0 ]; then
    set -- --suite unit --suite fuzz --suite stress --suite e2e --suite samples
fi
# Sanitized code runs several times slower: give every test more time.
meson test -C "$build" --print-errorlogs --timeout-multiplier 3 "$@"
