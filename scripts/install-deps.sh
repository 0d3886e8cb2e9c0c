#!/usr/bin/env bash
# Installs what building sprof needs, on Debian or Ubuntu; with --test,
# also what its tests use (clang and its fuzzer runtime, for the libFuzzer
# target, which otherwise skips; Go and pprof's source, from which the pprof
# export's test builds a real pprof to read it back; valgrind, whose
# callgrind_annotate reads the callgrind export back). Installs only what is
# missing; uses sudo when not root.
set -euo pipefail

packages=(gcc g++ meson ninja-build pkg-config libunwind-dev libdw-dev libelf-dev zlib1g-dev
          python3 util-linux)
optional=()
if [ "${1:-}" = "--test" ]; then
    optional=(clang libclang-rt-14-dev golang-go golang-github-google-pprof-dev valgrind)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
optional_missing=()
for p in "${optional[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || optional_missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ ${#optional_missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
for p in "${optional_missing[@]}"; do
    # Optional: where a release names it differently, the tests that need
    # it skip.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" \
        >/dev/null 2>&1 || echo "install-deps: $p not available; the tests that need it skip"
done
