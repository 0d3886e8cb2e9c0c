#!/usr/bin/env bash
# Installs what is missing, builds sprof, and runs every test.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh --test
scripts/build.sh
meson test -C build --print-errorlogs "$@"
