#!/usr/bin/env python3
"""The signal handler under stress: programs run under libsprof.so, which
must finish (no deadlock: a time limit, with every thread's stack printed
when it is hit), exit as they would alone, and leave a trace that reads.

Usage:
  stress.py nomalloc --lib LIB --program NOMALLOC [--seconds S]
  stress.py threads --lib LIB --analyzer ANALYZER --program STRESS_THREADS
            --library LIBSTRESS [--seconds S] [--threads N] [--no-dlopen]
  stress.py early-sigaction --lib LIB --program EARLY_SIGACTION
  stress.py skip REASON

SPROF_STRESS_SECONDS overrides the threads mode's --seconds (e.g. 600 for a
long soak; raise meson's timeout with --timeout-multiplier). A
deadlock is told from slowness by the program's progress lines: none for
30 s, or a worker that finished no round for 30 s, fails the test at once.
When libsprof.so is built with AddressSanitizer (-Db_sanitize=address), the
ASan runtime is loaded before it (see profiled_env).
Exit status: 0 passed, 1 failed, 77 skipped (meson's convention).
"""
import argparse
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def asan_runtime(path):
    """The AddressSanitizer runtime path needs, as ldd resolves it, or None."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        match = re.match(r"\s*(libasan\.so\S*)\s+=>\s+(\S+)", line)
        if match:
            return match.group(2)
    return None


def profiled_env(lib, trace, settings, program):
    """The environment that profiles program. An ASan-built libsprof.so
    needs the ASan runtime loaded before it: a program built with ASan
    loads it itself (after the preload, which the runtime is told to
    accept); another gets it preloaded first."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SPROF_") and k != "LD_PRELOAD"}
    preload = [lib]
    runtime = asan_runtime(lib)
    if runtime:
        # The host program's own leaks are not ours to report. Later
        # options win, so these go last.
        options = [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]
        if asan_runtime(program):
            options.append("verify_asan_link_order=0")
        else:
            preload.insert(0, runtime)
        env["ASAN_OPTIONS"] = ":".join(o for o in options if o)
    env["LD_PRELOAD"] = " ".join(preload)
    env["SPROF_OUTPUT"] = trace
    env.update(settings)
    return env


def print_stacks(pid):
    """Every thread's stack of a hung process, when gdb is there."""
    gdb = shutil.which("gdb")
    if not gdb:
        print("  (no gdb here to show where the threads are)")
        return
    try:
        result = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx",
                                 "-ex", "thread apply all bt 30"],
                                capture_output=True, text=True, timeout=120)
        print(result.stdout[-200000:])
    except subprocess.SubprocessError as error:
        print(f"  (gdb failed: {error})")


def run_profiled(argv, env, limit, stall_limit=None):
    """Runs argv; fails, with every thread's stack printed, when it runs
    past the time limit, or (stall_limit) when its progress lines stop or
    report a worker stalled that long: a deadlock."""
    print(f"  running ({limit:.0f} s limit): {' '.join(argv)}")
    sys.stdout.flush()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    lines, errors = [], []
    readers = [threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True),
               threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    start = last_progress = time.monotonic()
    seen = 0
    hung = None
    while process.poll() is None:
        time.sleep(0.5)
        now = time.monotonic()
        for line in lines[seen:]:
            fields = line.split()
            if fields and fields[0] == "progress":
                last_progress = now
                if stall_limit and float(fields[3]) > stall_limit:
                    hung = f"a worker made no progress for {fields[3]} s"
        seen = len(lines)
        if now - start > limit:
            hung = f"no exit within {limit:.0f} s"
        elif stall_limit and now - last_progress > stall_limit:
            hung = f"no progress line for {now - last_progress:.0f} s"
        if hung:
            hung += f", {now - start:.0f} s into the run"
            print(f"FAIL: {hung}: a deadlock. Threads:")
            print_stacks(process.pid)
            process.kill()
            process.wait()
            raise Failure(f"the profiled program hung ({hung})")
    for reader in readers:
        reader.join(timeout=10)
    stdout, stderr = "".join(lines), "".join(errors)
    sys.stdout.write("".join(line for line in lines if not line.startswith("progress ")))
    if stderr:
        print(f"  stderr: {stderr.strip()[-4000:]}")
    if process.returncode < 0:
        raise Failure(f"the profiled program died of signal "
                      f"{signal.Signals(-process.returncode).name}")
    return process.returncode, stdout, stderr


def summary(analyzer, trace):
    result = subprocess.run([analyzer, trace, "--summary", "--format", "csv"],
                            capture_output=True, text=True, timeout=300)
    check(result.returncode == 0,
          f"sprof-analyze --summary exited {result.returncode}: {result.stderr.strip()}")
    check(result.stderr == "", f"sprof-analyze warned: {result.stderr.strip()}")
    return {row["key"]: row["value"] for row in csv.DictReader(io.StringIO(result.stdout))}


def nomalloc(args, workdir):
    """Taking a sample never calls the allocator, with either timer."""
    for timer in ("perf", "cputime"):
        print(f"SPROF_TIMER={timer}")
        env = profiled_env(args.lib, os.path.join(workdir, f"nomalloc-{timer}.bin"),
                           {"SPROF_TIMER": timer, "SPROF_FREQ": "4000", "SPROF_QUIET": "1"},
                           args.program)
        status, _, _ = run_profiled([args.program, str(args.seconds)], env, args.seconds + 120)
        check(status != 3, f"SPROF_TIMER={timer}: the sampling handler called the allocator")
        check(status == 0, f"SPROF_TIMER={timer}: nomalloc exited {status}")


def threads(args, workdir):
    """16 threads allocating, throwing and loading code at 4000 Hz: no
    deadlock, no crash, and a trace that reads."""
    trace = os.path.join(workdir, "stress.bin")
    env = profiled_env(args.lib, trace, {"SPROF_FREQ": "4000"}, args.program)
    argv = [args.program, args.library, str(args.seconds), str(args.threads)]
    if args.no_dlopen:
        argv.append("no-dlopen")
    status, _, stderr = run_profiled(argv, env, args.seconds * 2 + 180, stall_limit=30)
    check(status == 0, f"stress_threads exited {status}")
    check(stderr.count("sprof: ") == 1 and "written to" in stderr,
          f"expected the one sprof line on stderr, got {stderr!r}")
    s = summary(args.analyzer, trace)
    print(f"  trace: {s['samples']} samples, {s['threads']} threads, "
          f"{s['lost_samples']} lost, {float(s['sampled_seconds']):.1f} s sampled of "
          f"{float(s['cpu_seconds']):.1f} s CPU")
    check(int(s["samples"]) > 0, "the trace holds no samples")
    check(int(s["threads"]) > 1, "the workers were not sampled")
    # The table reads too, and names the workers' functions.
    table = subprocess.run([args.analyzer, trace, "--format", "csv"], capture_output=True,
                           text=True, timeout=300)
    check(table.returncode == 0, f"sprof-analyze exited {table.returncode}")
    names = {row["function"] for row in csv.DictReader(io.StringIO(table.stdout))}
    check(any("compute" in name for name in names),
          f"the workers' functions are missing; have {sorted(names)[:15]}")


def early_sigaction(args, workdir):
    """A library constructor's sigaction, run before libsprof.so started,
    works as without the profiler."""
    env = profiled_env(args.lib, os.path.join(workdir, "early.bin"), {"SPROF_QUIET": "1"},
                       args.program)
    status, _, _ = run_profiled([args.program], env, 120)
    check(status == 0, f"early_sigaction exited {status}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["nomalloc", "threads", "early-sigaction", "skip"])
    parser.add_argument("reason", nargs="?", default="")
    parser.add_argument("--lib")
    parser.add_argument("--analyzer")
    parser.add_argument("--program")
    parser.add_argument("--library")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--no-dlopen", action="store_true",
                        help="threads mode: leave the library alone")
    args = parser.parse_args()
    if args.mode == "skip":
        print(f"SKIP: {args.reason}")
        return SKIP
    if args.mode == "threads" and os.environ.get("SPROF_STRESS_SECONDS"):
        args.seconds = float(os.environ["SPROF_STRESS_SECONDS"])
    workdir = tempfile.mkdtemp(prefix=f"sprof-stress-{args.mode}-")
    try:
        {"nomalloc": nomalloc, "threads": threads,
         "early-sigaction": early_sigaction}[args.mode](args, workdir)
    except Failure as failure:
        print(f"FAIL: {failure}")
        print(f"(files kept in {workdir})")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
