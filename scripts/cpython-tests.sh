#!/usr/bin/env bash
# A real-world check: part of CPython's own regression suite, run without
# and then under the profiler, results side by side. Needs Debian's
# libpython3.X-testsuite (installed here if missing). Takes a few minutes.
# Usage: scripts/cpython-tests.sh [TEST...]
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null || exit 1
python=/usr/bin/python3
version=$($python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! $python -c 'import test.test_os' 2>/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -qq "libpython${version}-testsuite" >/dev/null || exit 1
fi
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(test_threading test_subprocess test_os test_select test_signal)
work=$(mktemp -d)
chmod 755 "$work" # tests that drop privileges must still load the library
trap 'rm -rf "$work"' EXIT
# A background shell starts commands with SIGINT ignored, which fails
# CPython's SIGINT tests with or without a profiler: restore the default.
reset_int=()
env --default-signal=INT true 2>/dev/null && reset_int=(env --default-signal=INT)
# A copy, so that a rebuild meanwhile cannot change the library under test.
cp build/preload/libsprof.so build/preload/libsprof-names.so "$work/"
lib="$work/libsprof.so"
echo "CPython $($python -V 2>&1 | cut -d' ' -f2): ${tests[*]}"
(cd "$work" && "${reset_int[@]}" $python -m test -v "${tests[@]}" >"$work/plain.txt" 2>&1)
echo "without sprof: $(grep -E '^Tests result' "$work/plain.txt")"
grep -E '^(FAIL|ERROR):' "$work/plain.txt" | sed 's/^/  /'
(cd "$work" && SPROF_OUTPUT="$work/trace.bin" LD_PRELOAD="$lib" \
    "${reset_int[@]}" $python -m test -v "${tests[@]}" >"$work/profiled.txt" 2>&1)
echo "with sprof:    $(grep -E '^Tests result' "$work/profiled.txt")"
grep -E '^(FAIL|ERROR):' "$work/profiled.txt" | sed 's/^/  /'
build/analyzer/sprof-analyze "$work/trace.bin" --summary | grep -E '^(processes|samples) '
