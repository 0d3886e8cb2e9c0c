"""Shared by the test harnesses that preload libsprof.so: an ASan-built
libsprof.so must come after the ASan runtime in LD_PRELOAD, and the
programs' own leaks are not ours to report."""
import os
import subprocess


def asan_runtime(lib):
    """The AddressSanitizer runtime lib needs, as ldd resolves it, or None."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libasan.so") and len(parts) > 2:
            return parts[2]
    return None


def preload_settings(lib):
    """(LD_PRELOAD value, extra environment) for preloading lib."""
    runtime = asan_runtime(lib)
    if not runtime:
        return lib, {}
    return f"{runtime} {lib}", {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                                ":detect_leaks=0"}
