#!/usr/bin/env bash
# Configures (once) and builds sprof into ./build. Extra arguments go to
# `meson setup` the first time, e.g. -Db_sanitize=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
    meson setup build "$@" >/dev/null
fi
ninja -C build
