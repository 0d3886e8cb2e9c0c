#!/usr/bin/env bash
# Regenerates the seed corpus (corpus/) from a build: real traces of the
# e2e programs run under the preload, kept small (low rates, short runs),
# and the synthetic ones fuzz_seeds writes. Run it after a format change;
# then replay them (meson test --suite fuzz) and commit corpus/.
#
# Usage: test/fuzz/make-corpus.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:?usage: make-corpus.sh BUILD_DIR}" && pwd)"
lib="$build/preload/libsprof.so"
programs="$build/test/e2e"
corpus="$here/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

profile() { # NAME SETTINGS... -- PROGRAM ARGS...
    local name="$1"; shift
    local settings=()
    while [ "$1" != -- ]; do settings+=("$1"); shift; done
    shift
    env -u LD_PRELOAD "${settings[@]}" LD_PRELOAD="$lib" SPROF_QUIET=1 \
        SPROF_OUTPUT="$work/$name.bin" "$@" >/dev/null
}

profile real-split SPROF_FREQ=200 -- "$programs/split" 30
profile real-threads SPROF_FREQ=100 -- "$programs/threads"
profile real-recurse-truncated SPROF_FREQ=200 SPROF_DEPTH=12 -- "$programs/recurse" 100
profile real-unsymbolized-cputime SPROF_FREQ=200 SPROF_SYMBOLIZE=0 SPROF_TIMER=cputime \
    -- "$programs/split" 30
profile real-family SPROF_FREQ=300 -- sh -c "'$programs/split' 20; true"
for child in "$work"/real-family.bin.*; do
    mv "$child" "$work/real-family-child.bin"
done
# A killed run: no SUMMARY, no END, symbolized by the analyzer.
env -u LD_PRELOAD LD_PRELOAD="$lib" SPROF_QUIET=1 SPROF_FREQ=500 \
    SPROF_OUTPUT="$work/real-killed.bin" "$programs/spin" >/dev/null &
sleep 0.4
kill -KILL $! 2>/dev/null || true
wait $! 2>/dev/null || true

# Traces that name their own addresses get module paths that exist
# nowhere, so the inputs the fuzzer derives from them do not spend 0.1 s
# each in libdw when a mutation drops a SYMBOL record. The killed and the
# unsymbolized traces keep theirs: they are the seeds of that path.
for name in real-split real-threads real-recurse-truncated real-family real-family-child; do
    python3 - "$work/$name.bin" <<'PY'
import struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
out, at = bytearray(data[:32]), 32
while at + 8 <= len(data):
    kind, size = struct.unpack_from("<II", data, at)
    payload = data[at + 8:at + 8 + size]
    if kind == 2:  # MODULE: 32 bytes, the build-id, then the path
        fixed = 32 + struct.unpack_from("<I", payload, 4)[0]
        length = struct.unpack_from("<I", payload, fixed)[0]
        name = payload[fixed + 4:fixed + 4 + length]
        if name.startswith(b"/"):
            name = b"/nonexistent" + name
        payload = payload[:fixed] + struct.pack("<I", len(name)) + name
    out += struct.pack("<II", kind, len(payload)) + payload
    at += 8 + size
open(path, "wb").write(bytes(out))
PY
done

"$build/test/fuzz/fuzz_seeds" "$work" >/dev/null
rm -f "$corpus"/*.bin
cp "$work"/*.bin "$corpus/"
ls -l "$corpus"
