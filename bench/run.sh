#!/usr/bin/env bash
# The benchmark harness (issue 6): builds what it needs, runs the benchmarks,
# prints the tables and rewrites the README's benchmark section.
#
#   bench/run.sh            full run (about 15 minutes)
#   bench/run.sh --quick    fewer and shorter runs (about 3 minutes)
#   bench/run.sh --long     the issue's input sizes (xz on 50 MB; about an hour)
#   bench/run.sh --help     every option
#
# Not a timed test, and CI does not run it. Exits non-zero when a result is
# clearly broken (a crash, zero samples).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -qq python3 >/dev/null
fi
exec python3 bench/bench.py "$@"
