#!/usr/bin/env python3
"""The sprof benchmark harness (issue 6). Start it with bench/run.sh.

It builds sprof (scripts/build.sh) and its own small C helpers, runs six
benchmarks, prints their tables and rewrites the README section between the
`<!-- bench:start ... -->` and `<!-- bench:end -->` markers. Nothing in that
section is typed by hand.

How it measures, everywhere:
- every configuration of a benchmark runs several times, interleaved (each
  round runs every configuration once, in a rotated order), and the tables
  give medians; ratios are taken against the baseline run of the same round;
- CPU time, wall time and peak memory of a command come from wait4() in
  bench/measure.c, which includes the processes it waited for (gcc's cc1 and
  as) and keeps this Python process's memory out of the child's peak RSS;
- this kind of machine (a small shared virtual machine) slows down in spells
  when its neighbours are busy, which moves whole-run CPU times by 5-30%;
  where a small difference matters, a steadier measure is used beside the
  whole-run one and the tables say which (the median chunk of stackload, the
  tail of a run, callgrind's instruction counts, perf's shares), and a target
  whose rounds fall on both sides of it is marked as within the noise;
- the floor is bench/floor_preload.c: sprof's timer and signal (a perf_event
  task-clock counter per thread, F_SETSIG/F_SETOWN_EX) with an empty handler,
  keeping the signal unblocked in every thread as sprof does; section 1 also
  runs it with no signal (the timer alone) and with perf's SIGTRAP, to split
  a sample's cost between the timer and the signal;
- a missed real-program target reruns sprof keeping the interrupted
  address alone (SPROF_DEPTH=1, no unwinding), to measure what unwinding
  costs there;
- peers: gperftools' libprofiler (LD_PRELOAD, CPUPROFILE) and `perf record`,
  skipped (and said so) when they cannot be installed.

When a target is missed, the section says why: figures measured in the run
fill the explanations in CAUSES and FINDINGS below, which record what
profiling the profiler showed when this harness was written.

Python standard library only. Helpers and scratch files live in build/bench/.
"""
import argparse
import collections
import csv
import datetime
import gzip
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
BUILD = REPO / "build"
WORK = BUILD / "bench"
BIN = WORK / "bin"
DATA = WORK / "data"
RUNS = WORK / "runs"
README = REPO / "README.md"
START_MARKER = "<!-- bench:start"
END_MARKER = "<!-- bench:end -->"
GPERF_PACKAGES = ["libgoogle-perftools-dev", "google-perftools"]
GPERF_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/libprofiler.so",
    "/usr/lib/aarch64-linux-gnu/libprofiler.so",
    "/usr/lib64/libprofiler.so",
    "/usr/lib/libprofiler.so",
]


@dataclass
class Mode:
    name: str
    cost_reps: int          # rounds for the per-sample cost
    cost_seconds: float     # CPU of one stackload run without a profiler
    complete_reps: int      # rounds for completeness
    real_reps: int          # rounds for the real programs
    xz_mb: float            # size of the generated input for xz
    gcc_functions: int      # functions in the generated C file
    py_seconds: float       # CPU of the python3 workload
    growth_seconds: tuple   # CPU of the runs that show trace and memory growth
    exit_reps: int          # rounds for the exit cost
    script_functions: int   # functions in the large Python script
    c_program_functions: int  # functions in the exit benchmark's C program
    c_program_rounds: int     # times it runs each function (a round: about 10 ms of CPU)
    true_batches: int       # batches of /bin/true runs per configuration
    true_runs: int          # /bin/true runs per batch
    analyzer_samples: int   # samples in the synthetic trace
    analyzer_reps: int


MODES = {
    "quick": Mode("quick", cost_reps=5, cost_seconds=0.3, complete_reps=2, real_reps=3,
                  xz_mb=1, gcc_functions=40, py_seconds=1.0, growth_seconds=(1, 2, 4),
                  exit_reps=3, script_functions=1500, c_program_functions=3000,
                  c_program_rounds=100, true_batches=3, true_runs=20,
                  analyzer_samples=10_000_000, analyzer_reps=1),
    "full": Mode("full", cost_reps=15, cost_seconds=0.5, complete_reps=3, real_reps=9,
                 xz_mb=2.5, gcc_functions=120, py_seconds=2.5, growth_seconds=(4, 12, 36),
                 exit_reps=5, script_functions=3000, c_program_functions=3000,
                 c_program_rounds=200, true_batches=7, true_runs=20,
                 analyzer_samples=10_000_000, analyzer_reps=3),
    "long": Mode("long", cost_reps=21, cost_seconds=1.0, complete_reps=3, real_reps=5,
                 xz_mb=50, gcc_functions=1500, py_seconds=20.0, growth_seconds=(10, 20, 40),
                 exit_reps=5, script_functions=3000, c_program_functions=3000,
                 c_program_rounds=200, true_batches=9, true_runs=20,
                 analyzer_samples=10_000_000, analyzer_reps=3),
}

# stackload times its work in chunks of about this much CPU (see stackload.c).
CHUNK_SECONDS = 0.005
# A profiler that takes fewer samples than this per chunk (gperftools rides
# the tick: 1.25 a chunk at HZ=250) is measured on groups of neighbouring
# chunks that hold about this many. Otherwise the median chunk would be one
# with the commoner, smaller count of samples: 1 of 1.25 charged 20% less.
GROUP_SAMPLES = 8
# Profilers on setitimer (gperftools, and the floor on the same timer) take
# so few samples a run (the tick's rate) that what they add is lost in the
# drift between runs: they are measured within each run instead, on pairs of
# phases of this many chunks with SIGPROF open and blocked (stackload.c).
PHASED = ("itimer", "gperf")
PHASE_CHUNKS = 2

# What was found when a target was missed, by profiling the profiler (perf,
# callgrind, and sprof on itself) when this harness was written. Printed
# after "missed:" only when the target is missed in the run; {name} fields
# are filled with figures measured in the run (Harness.facts).
CAUSES = {
    "cost_vs_floor":
        "sprof's own work per sample is {instructions_sprof_10} (10 frames) to "
        "{instructions_sprof_100} (100 frames) instructions in its handler (callgrind), with no "
        "system call (by default it does not read its counter); a gap larger than that lies in "
        "this machine's noise: compare the rounds' middle halves",
    "completeness":
        "the measured CPU time holds time no sample stands for. By default (SPROF_KERNEL=0) "
        "time in system calls is not sampled: {unsampled_system} of the CPU at 4000 Hz with 4 "
        "threads, most of it the kernel delivering the sampling signals themselves (see the "
        "floor). And what a thread runs before its timer is armed is never sampled: the "
        "process's start ({main_loss_ms} ms in the main thread here), and in every other thread "
        "sprof's set-up ({thread_start_ms} ms of CPU per thread, see 5); a thread's first "
        "sample also makes libunwind's 256 KB per-thread cache",
    "trace_size":
        "python3 keeps reaching new code: {new_stacks} new frame-tree nodes per sample in the "
        "longest run (the interrupted instruction and the interpreter's frames keep changing), "
        "and every new address is named at exit ({names_per_sample} bytes per sample of names "
        "in that run); both taper off as the run gets longer, while a repeated stack costs one "
        "or two bytes, so the marginal size falls as the runs get longer",
    "analyzer_rate":
        "profiled with perf and callgrind (issue 6): the synthetic trace's 8 threads write "
        "{analyzer_stack_records} frame-table nodes, as each new table (2^20 nodes at most "
        "here) defines its stacks again, but they hold only about 1.3 M distinct paths. The "
        "analyzer maps every node, as it reads it, onto one tree of those paths (nearly always "
        "its parent's newest child, checked inline, with the memory asked for ahead) and "
        "computes the figures on that tree in one walk, so no stack is made. What is left is "
        "mostly instructions rather than waits on memory (callgrind: about 3 G for this trace, "
        "near three a cycle): two varints and a lookup per node, a table slot and a path per "
        "sample entry ({analyzer_read} of the CPU in reading the records, {analyzer_merge} in "
        "naming addresses and the walk), and the kernel zeroing the new pages of the frame "
        "tables (4 MB each) and of the tree: the cost grows with the nodes read, not with the "
        "distinct stacks",
}

# Per program of section 3: what profiling sprof on it showed.
FINDINGS = {
    "gcc -O2":
        "callgrind and strace on cc1 under sprof (when this harness was written): unw_backtrace "
        "caches unwinding per instruction address, and cc1's samples keep landing on new "
        "addresses in its 33 MB of code, so the interrupted frame itself nearly always takes "
        "libunwind's full DWARF step (finding the function's unwind entry and running its "
        "rules), several times the instructions of a sample on a steady "
        "stack (neither libunwind's API nor Debian's build has a setting that makes it "
        "cheaper: a larger cache cost more time than it saved); libunwind also blocked all "
        "signals around each of its locks, about twenty system calls a sample, now answered "
        "without the kernel inside one window per unwind, whose own blocking the handler's "
        "sa_mask now does (no system call a sample); and each cc1 process "
        "names its addresses at exit from the unwind tables since cc1 is stripped. That exit "
        "now locates each module's table once, and keeps of cc1's 29,000 dynamic symbols only "
        "those that contain a sampled address instead of sorting them all (callgrind on one cc1 "
        "exit with 10,000 samples, by hand, 2026-11-24: 67 M instructions before, 43 M after). perf annotate on cc1 under sprof (by hand, "
        "2026-11-24): the handler runs about as many instructions per sample as on stackload's "
        "100 frames (callgrind: about 11,000), yet takes several times as long: its hottest "
        "instruction is the load of libunwind's per-thread frame cache slot (a 256 KB hash "
        "table probed once per frame at a random place), a cache miss for nearly every frame "
        "once cc1 has run for a millisecond; the layout is libunwind's own",
}


def log(text):
    print(text, file=sys.stderr, flush=True)


# --- Running commands ---------------------------------------------------------

@dataclass
class Run:
    cpu: float
    user: float
    system: float
    wall: float
    maxrss_kb: int
    status: int                     # exit code, or -signal
    samples: int = None             # taken by the profiler, when it has one
    info: dict = field(default_factory=dict)


def clean_environment():
    """The harness's environment without anything that would profile."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("SPROF_", "BENCH_FLOOR_", "CPUPROFILE")) or key == "LD_PRELOAD":
            del env[key]
    return env


BASE_ENV = clean_environment()


def execute(cmd, run_dir, env=None, stdout=None):
    """Runs cmd in run_dir with env added to its environment, through
    bench/measure.c: CPU, wall and peak memory from wait4()."""
    result = run_dir / "measure.txt"
    settings = ["%s=%s" % item for item in (env or {}).items()]
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    with open(run_dir / "stderr.txt", "wb") as err:
        subprocess.run([str(c) for c in [BIN / "measure", result] + settings + ["--"] + list(cmd)],
                       cwd=run_dir, env=BASE_ENV, stdin=subprocess.DEVNULL, stdout=out,
                       stderr=err)
    if stdout:
        out.close()
    try:
        wall, user, system, maxrss, code, signal, end = result.read_text().split()
    except (OSError, ValueError):
        return Run(cpu=0, user=0, system=0, wall=0, maxrss_kb=0, status=-1000)
    status = int(code) if int(signal) == 0 else -int(signal)
    run = Run(cpu=float(user) + float(system), user=float(user), system=float(system),
              wall=float(wall), maxrss_kb=int(maxrss), status=status)
    run.info["end"] = float(end)
    return run


_run_counter = 0


def new_run_dir():
    global _run_counter
    _run_counter += 1
    path = RUNS / ("r%05d" % _run_counter)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- Traces -------------------------------------------------------------------

REC_NAMES = {1: "process", 2: "module", 3: "thread", 4: "stack", 5: "samples", 6: "string",
             7: "symbol", 8: "summary", 9: "notice", 10: "end", 11: "call_counts",
             12: "frames", 13: "node_samples", 14: "chain", 15: "address_names"}
# What grows with the run: how stacks and their samples are written.
STREAM_TYPES = ("stack", "samples", "frames", "node_samples")


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def trace_stats(paths):
    """Bytes by record type, samples, entries, new stack nodes (FRAMES) or
    STACK records, named addresses, and the mean depth of the samples'
    stacks, over the given trace files."""
    stats = dict(bytes=0, by_type=collections.Counter(), samples=0, entries=0, stacks=0,
                 symbols=0, depth_sum=0)
    for path in paths:
        data = Path(path).read_bytes()
        stats["bytes"] += len(data)
        depth_of = {}       # version 1: stack id -> depth
        node_depth = {}     # table id -> [depth of each node id]
        chain_frames = {}   # chain id -> frames
        at = 32
        while at + 8 <= len(data):
            kind, size = struct.unpack_from("<II", data, at)
            if at + 8 + size > len(data):
                break
            end = at + 8 + size
            name = REC_NAMES.get(kind, "other")
            stats["by_type"][name] += 8 + size
            if kind == 4:
                stack_id, depth = struct.unpack_from("<IH", data, at + 8)
                depth_of[stack_id] = depth
                stats["stacks"] += 1
            elif kind == 5:
                _, count = struct.unpack_from("<II", data, at + 8)
                for i in range(count):
                    stack_id, n, _ = struct.unpack_from("<IIQ", data, at + 16 + 16 * i)
                    stats["samples"] += n
                    stats["depth_sum"] += n * depth_of.get(stack_id, 0)
                stats["entries"] += count
            elif kind == 12:
                table, p = read_varint(data, at + 8)
                first, p = read_varint(data, p)
                depths = node_depth.setdefault(table, [0])
                depths.extend([0] * (first - len(depths)))
                while p < end:
                    distance, p = read_varint(data, p)
                    _, p = read_varint(data, p)
                    distance >>= 1
                    depths.append(depths[len(depths) - distance] + 1 if distance else 1)
                    stats["stacks"] += 1
            elif kind == 13:
                table, p = read_varint(data, at + 8)
                _, p = read_varint(data, p)
                _, p = read_varint(data, p)
                depths = node_depth.get(table, [0])
                node = 0
                while p < end:
                    delta, p = read_varint(data, p)
                    node += delta >> 1
                    n = 1
                    if delta & 1:
                        n, p = read_varint(data, p)
                        if n & 1:
                            _, p = read_varint(data, p)
                        n >>= 1
                    stats["samples"] += n
                    stats["depth_sum"] += n * (depths[node] if node < len(depths) else 0)
                    stats["entries"] += 1
            elif kind == 7:
                stats["symbols"] += 1
            elif kind == 14:
                chain_id, _, frame_count = struct.unpack_from("<IIH", data, at + 8)
                chain_frames[chain_id] = frame_count
            elif kind == 15:
                p = at + 8
                while p < end:
                    _, p = read_varint(data, p)
                    chain_id, p = read_varint(data, p)
                    for _ in range(chain_frames.get(chain_id, 0)):
                        _, p = read_varint(data, p)
                    stats["symbols"] += 1
            at = end
    stats["mean_depth"] = stats["depth_sum"] / stats["samples"] if stats["samples"] else 0
    return stats


def trace_files(run_dir, name="trace.bin"):
    return sorted(p for p in run_dir.iterdir()
                  if p.name == name or p.name.startswith(name + "."))


def analyzer_summary(trace):
    out = subprocess.run([BIN / "sprof-analyze", trace, "--summary", "--format", "csv"],
                         capture_output=True, text=True, env=BASE_ENV)
    if out.returncode != 0:
        return None
    rows = [line.split(",", 1) for line in out.stdout.splitlines()[1:] if "," in line]
    return {key: value for key, value in rows}


def analyzer_threads(trace):
    """sprof-analyze --threads --format csv: a dict per thread."""
    out = subprocess.run([BIN / "sprof-analyze", trace, "--threads", "--format", "csv"],
                         capture_output=True, text=True, env=BASE_ENV)
    return list(csv.DictReader(out.stdout.splitlines())) if out.returncode == 0 else []


def gperf_samples(run_dir):
    """Samples and period of gperftools' legacy profiles (the run's and its
    children's): header words 0,3,0,period_us,0, then count,depth,pcs..."""
    samples, period_us, files = 0, 0, 0
    for path in run_dir.glob("gperf.prof*"):
        data = path.read_bytes()
        if len(data) < 40:
            continue
        files += 1
        words = struct.unpack_from("<5Q", data, 0)
        period_us = words[3]
        at = 40
        while at + 16 <= len(data):
            count, depth = struct.unpack_from("<2Q", data, at)
            if count == 0 and depth == 1:
                break
            samples += count
            at += 16 + 8 * depth
    return samples, period_us, files


# --- Profilers ------------------------------------------------------------------

class Profilers:
    """How to run a command under each configuration, and how to count what
    it sampled. Keys: none, floor, sprof, perf, gperf."""

    LABELS = {"none": "none", "floor": "floor", "sprof": "sprof", "perf": "perf record",
              "gperf": "gperftools", "sprof-kernel": "sprof, SPROF_KERNEL=1",
              "timer": "timer alone", "trap": "floor, SIGTRAP", "itimer": "floor, setitimer"}
    # The floor's variants (bench/floor_preload.c, BENCH_FLOOR_SIGNAL): the
    # counter's timer without a signal, and with perf's own SIGTRAP.
    FLOOR_SIGNALS = {"floor": "fasync", "timer": "none", "trap": "trap", "itimer": "itimer"}

    def __init__(self):
        self.missing = {}   # key -> why it is skipped
        self.gperf_lib = next((p for p in GPERF_CANDIDATES if Path(p).exists()), None)
        if not self.gperf_lib:
            self.missing["gperf"] = "gperftools' libprofiler.so not installed"
        if not shutil.which("perf"):
            self.missing["perf"] = "perf not installed"

    def available(self, key):
        return key not in self.missing

    def run(self, key, freq, cmd, run_dir, env=None, stdout=None, trace=False, wrapper=(),
            threads=False):
        """Runs cmd under profiler key at freq Hz (inside wrapper, such as
        valgrind, when given). Sets run.samples (None for none) and run.info;
        trace=True adds sprof's trace statistics."""
        env = dict(env or {})
        prefix = list(wrapper)
        if key in self.FLOOR_SIGNALS:
            env.update(LD_PRELOAD=str(BIN / "floor_preload.so"), BENCH_FLOOR_FREQ=str(freq),
                       BENCH_FLOOR_OUTPUT=str(run_dir / "floor.txt"),
                       BENCH_FLOOR_SIGNAL=self.FLOOR_SIGNALS[key])
        elif key in ("sprof", "sprof-kernel"):
            env.update(LD_PRELOAD=str(BIN / "libsprof.so"), SPROF_FREQ=str(freq),
                       SPROF_OUTPUT=str(run_dir / "trace.bin"), SPROF_QUIET="1")
            if key == "sprof-kernel":
                env["SPROF_KERNEL"] = "1"
        elif key == "gperf":
            env.update(LD_PRELOAD=self.gperf_lib, CPUPROFILE=str(run_dir / "gperf.prof"),
                       CPUPROFILE_FREQUENCY=str(freq))
        elif key == "perf":
            prefix += ["perf", "record", "-e", "cpu-clock", "-F", str(freq), "-g",
                       "-o", run_dir / "perf.data", "--"]
        run = execute(prefix + list(cmd), run_dir, env, stdout)
        if key in self.FLOOR_SIGNALS:
            lines = (run_dir / "floor.txt").read_text().split() if (run_dir / "floor.txt").exists() else []
            run.samples = sum(int(x) for x in lines[1::3])
            run.info["processes"] = len(lines) // 3
        elif key in ("sprof", "sprof-kernel"):
            traces = trace_files(run_dir)
            summary = analyzer_summary(run_dir / "trace.bin") if traces else None
            run.info["summary"] = summary
            run.samples = int(summary["samples"]) if summary else 0
            if trace and traces:
                run.info["trace"] = trace_stats(traces)
            if threads and traces:
                run.info["threads"] = analyzer_threads(run_dir / "trace.bin")
        elif key == "gperf":
            run.samples, period_us, _ = gperf_samples(run_dir)
            run.info["period_s"] = period_us / 1e6
        elif key == "perf":
            text = (run_dir / "stderr.txt").read_text(errors="replace")
            found = re.findall(r"\((\d+) samples\)", text)
            run.samples = int(found[-1]) if found else 0
        return run


def grouped_cost(run, base):
    """(CPU added, us per sample) of a stackload run against the run without
    a profiler in its round: the median group of neighbouring chunks against
    the base's, over the samples such a group holds (samples fall in
    proportion to CPU time). A group holds GROUP_SAMPLES samples or more;
    one chunk when the profiler samples that often. None when not measured."""
    chunks, base_chunks = run.info["chunk_times"], base.info["chunk_times"]
    if not (run.samples and chunks and base_chunks and run.info["work_cpu"]):
        return None
    size = max(1, math.ceil(GROUP_SAMPLES * len(chunks) / run.samples))

    def median_group(times):
        return median([sum(times[i:i + size]) for i in range(0, len(times) - size + 1, size)])

    with_profiler, without = median_group(chunks), median_group(base_chunks)
    if not (with_profiler and without):
        return None
    return (with_profiler / without - 1,
            (1 - without / with_profiler) * run.info["work_cpu"] / run.samples * 1e6)


def paired_phase_cost(run):
    """(CPU added, us per sample) of a stackload run in phases: the median
    pair's open phase against its closed one, over the samples an open phase
    holds (all the run's samples fall in open phases). None when not
    measured."""
    phases = run.info.get("phases") or []
    pairs = len(phases) // 2
    if not (run.samples and pairs):
        return None
    open_times, closed_times = phases[0:2 * pairs:2], phases[1:2 * pairs:2]
    added = median([o - c for o, c in zip(open_times, closed_times)])
    closed = median(closed_times)
    if not closed:
        return None
    return added / closed, added / (run.samples / pairs) * 1e6


def interleaved(configs, reps, run_one):
    """Runs every configuration once per round, in an order rotated each
    round; returns {config: [run of round 0, round 1, ...]}."""
    results = {c: [None] * reps for c in configs}
    for r in range(reps):
        k = r % len(configs)
        for c in configs[k:] + configs[:k]:
            results[c][r] = run_one(c, r)
    return results


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def quartiles(values, spec="%.0f"):
    """The middle half of values, as "low..high"."""
    values = sorted(v for v in values if v is not None)
    if len(values) < 3:
        return "n/a"
    q = statistics.quantiles(values, n=4)
    return (spec + ".." + spec) % (q[0], q[2])


def within_noise(values, references, factor):
    """True when, round by round, value - factor * reference changes sign
    inside the middle half of the rounds: the target then lies within the
    noise, whatever the medians say."""
    d = [v - factor * r for v, r in zip(values, references) if v is not None and r is not None]
    if len(d) < 3:
        return False
    q = statistics.quantiles(d, n=4)
    return q[0] <= 0 <= q[2]


NOISE_NOTE = " (within noise: round by round, the middle half of the rounds falls on both sides)"


def callgrind_inclusive(path, function_pattern):
    """Instructions spent in (and under) the function matching the pattern,
    from callgrind_annotate --inclusive=yes."""
    if not Path(path).exists():
        return None
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    best = None
    for line in out.splitlines():
        found = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if found and re.search(function_pattern, found.group(2) + " "):
            value = int(found.group(1).replace(",", ""))
            best = value if best is None else max(best, value)
    return best


# --- Formatting -------------------------------------------------------------------

def fmt(value, spec="{:.2f}", none="n/a"):
    return none if value is None else spec.format(value)


def markdown_table(headers, rows):
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return out


@dataclass
class Target:
    text: str           # what is aimed at
    met: bool           # None: could not be measured
    measured: str       # what was measured
    why: str = None     # what was found, said when missed


class Facts(dict):
    """Figures for the causes' {fields}; a missing one shows as '?'."""

    def __missing__(self, key):
        return "?"


@dataclass
class Section:
    title: str
    lines: list = field(default_factory=list)
    targets: list = field(default_factory=list)

    def render(self, facts):
        out = ["### " + self.title, ""] + self.lines
        if self.targets:
            out.append("")
            for t in self.targets:
                if t.met is None:
                    verdict = "not measured"
                elif t.met:
                    verdict = "met"
                else:
                    verdict = "missed: " + (t.why.format_map(Facts(facts)) if t.why
                                            else "cause not investigated")
                out.append("- %s: %s. **%s**" % (t.text, t.measured, verdict))
        return out + [""]


class Harness:
    def __init__(self, mode, args):
        self.mode = mode
        self.args = args
        self.profilers = Profilers()
        self.problems = []          # broken results: the exit status is 1
        self.notes = []
        self.sections = []
        self.raw = {}
        self.kept_traces = {}       # name -> run dir, for later sections
        self.facts = {}             # measured figures the causes of misses quote (text)
        self.numbers = {}           # measured figures later benchmarks use
        self.machine = machine_description()

    def problem(self, text):
        log("PROBLEM: " + text)
        self.problems.append(text)

    def check(self, what, key, run, need_samples=True):
        """Records a broken result: a failed run of ours, or zero samples."""
        ours = key in ("none", "floor", "sprof", "sprof-kernel")
        if run.status != 0:
            text = "%s under %s exited with status %d" % (what, key, run.status)
            if ours:
                self.problem(text)
            else:
                self.notes.append(text)
        elif need_samples and key != "none" and not run.samples:
            text = "%s under %s took zero samples" % (what, key)
            if ours:
                self.problem(text)
            else:
                self.notes.append(text)

    # --- 1. Per-sample cost ------------------------------------------------------

    def stackload(self, key, freq, frames, threads, iterations, trace=False, wrapper=(),
                  thread_view=False, phases=0):
        """Runs bench/stackload.c; run.info gets work_cpu (s), chunks and
        median_chunk (s), and with phases (chunks a phase), the phases'
        times."""
        run_dir = new_run_dir()
        out = run_dir / "stackload.txt"
        cmd = [BIN / "stackload", frames, threads, iterations, self.chunk, out]
        if phases:
            cmd.append(phases)
        run = self.profilers.run(key, freq, cmd, run_dir, trace=trace, wrapper=wrapper,
                                 threads=thread_view)
        run.info.update(work_cpu=None, chunks=None, median_chunk=None, chunk_times=[])
        if out.exists():
            lines = out.read_text().splitlines()
            work_cpu, _, _, chunks, median_chunk, _ = lines[0].split()
            run.info.update(work_cpu=float(work_cpu), chunks=int(chunks),
                            median_chunk=float(median_chunk),
                            chunk_times=[float(x) for x in lines[1].split()] if len(lines) > 1 else [],
                            phases=[float(x) for x in lines[2].split()] if len(lines) > 2 else [])
        self.check("stackload %d frames, %d threads" % (frames, threads), key, run)
        run.info["run_dir"] = run_dir
        if not wrapper:
            shutil.rmtree(run_dir, ignore_errors=True)
        return run

    def calibrate_stackload(self):
        self.chunk = 1_000_000
        trial = 30_000_000
        runs = [self.stackload("none", 0, 10, 1, trial).info["work_cpu"] for _ in range(3)]
        per_iteration = min(runs) / trial
        self.iterations = int(self.mode.cost_seconds / per_iteration)
        self.chunk = max(1000, int(CHUNK_SECONDS / per_iteration))
        log("stackload: %d iterations for about %.1f s of CPU, in chunks of %d"
            % (self.iterations, self.mode.cost_seconds, self.chunk))

    def bench_cost(self):
        section = Section("1. Per-sample cost in the profiled program")
        peers = ["floor", "sprof"] + (["itimer", "gperf"] if self.profilers.available("gperf")
                                      else [])
        freqs = (999, 4000)
        # The floor split in two at 999 Hz: its timer alone, and the timer
        # with perf's SIGTRAP in place of the fasync signal.
        variants = {999: ["timer", "trap"]}
        peers_at = {f: peers[:1] + variants.get(f, []) + peers[1:] for f in freqs}
        configs = [("none", 0)] + [(p, f) for f in freqs for p in peers_at[f]]
        rows = []
        costs = {}
        rounds_cost = {}    # (frames, Hz, profiler) -> per-sample cost of each round
        noise = []
        for frames in (10, 100):
            log("1. per-sample cost, %d frames" % frames)
            results = interleaved(configs, self.mode.cost_reps,
                                  lambda c, r: self.stackload(
                                      c[0], c[1], frames, 1, self.iterations, trace=c[0] == "sprof",
                                      phases=PHASE_CHUNKS if c[0] in PHASED else 0))
            base = results[("none", 0)]
            whole = [r.info["work_cpu"] for r in base]
            self.raw["cost_base_%d" % frames] = dict(
                median_chunk=[r.info["median_chunk"] for r in base], work_cpu=whole)
            if all(whole):
                noise.append((max(whole) - min(whole)) / median(whole))
            per_sample, added_cpu = {}, {}
            for f in freqs:
                for p in peers_at[f]:
                    measured = [paired_phase_cost(r) if p in PHASED else grouped_cost(r, b)
                                for r, b in zip(results[(p, f)], base)]
                    rounds_cost[(frames, f, p)] = [m and m[1] for m in measured]
                    added_cpu[(f, p)] = median([m and m[0] for m in measured])
                    per_sample[(f, p)] = [x for x in rounds_cost[(frames, f, p)] if x is not None]
                    costs[(frames, f, p)] = median(per_sample[(f, p)])
            for f in freqs:
                floor = costs.get((frames, f, "floor"))
                for p in peers_at[f]:
                    runs = results[(p, f)]
                    if not any(r.samples for r in runs):
                        continue  # SIGTRAP from perf needs Linux 5.13
                    added = added_cpu[(f, p)]
                    cost = costs[(frames, f, p)]
                    depth = ""
                    if p == "sprof":
                        depth = fmt(median([r.info["trace"]["mean_depth"] for r in runs
                                            if "trace" in r.info]), "{:.0f}")
                    rows.append([frames, depth, f, Profilers.LABELS[p],
                                 fmt(median([r.samples for r in runs]), "{:.0f}"),
                                 fmt(added, "{:+.1%}"), fmt(cost, "{:.1f}"),
                                 quartiles(per_sample[(f, p)]),
                                 fmt(cost / floor if cost is not None and floor else None)])
        self.facts["cost_noise"] = max(noise) if noise else None
        floors = [costs.get((frames, 999, "floor")) for frames in (10, 100)]
        self.numbers["floor_us_999"] = median([x for x in floors if x and x > 0])
        self.facts["floor_us"] = fmt(self.numbers["floor_us_999"], "{:.0f} us")
        section.lines += [
            "stackload (bench/stackload.c) recurses to the given depth and spins through a fixed",
            "amount of work (%.1f s of CPU without a profiler), timing each chunk of about %.0f ms"
            % (self.mode.cost_seconds, CHUNK_SECONDS * 1e3),
            "with its thread's CPU clock. Per sample = (median chunk's CPU with the profiler -",
            "without it, same round) / samples in such a chunk: the median chunk is not thrown",
            "about by the spells when neighbours slow this virtual CPU down, which moved the whole",
            "run's CPU time by up to %s between rounds. A profiler that takes fewer than %d"
            % (fmt(self.facts["cost_noise"], "{:.0%}"), GROUP_SAMPLES),
            "samples a chunk is measured on groups of neighbouring chunks that hold %d: else the"
            % GROUP_SAMPLES,
            "median chunk would be one with the commoner, smaller count (at 999 Hz, 5 samples in",
            "most chunks, 4 or 6 in some). Medians of %d interleaved rounds, and the"
            % self.mode.cost_reps,
            "middle half of the rounds' values. *depth*: the mean depth of sprof's recorded",
            "stacks. Two variants of the floor split its cost, at 999 Hz: *timer alone* = the same",
            "counter with no signal (samples: its expiries); *floor, SIGTRAP* = the counter",
            "signalling with perf's own SIGTRAP (attr.sigtrap) in place of the fasync SIGPROF that",
            "sprof and the floor use.",
            "",
            "gperftools' timer (setitimer) fires at most once per kernel tick (%s), whatever"
            % ("HZ=%d" % self.machine["hz"] if self.machine["hz"] else "HZ unknown"),
            "rate is asked: about %d samples in a run of stackload, too few for what they add to"
            % round(self.mode.cost_seconds * (self.machine["hz"] or 250)),
            "stand out of the drift between runs. So gperftools, and *floor, setitimer* (the same empty handler",
            "as the floor, on gperftools' timer: its cost for the signal alone), are measured",
            "within each run: stackload works in pairs of %d-chunk phases, SIGPROF blocked in one"
            % PHASE_CHUNKS,
            "and open in the other (a pending signal arrives as the phase opens), and per sample",
            "= the median pair's (open - blocked) CPU / the samples an open phase takes. The",
            "tick's check of the timer runs in both phases; gperftools' set-up and exit are in",
            "neither, as sprof's are in neither of its figures.",
            ""]
        section.lines += markdown_table(
            ["frames", "depth", "Hz", "profiler", "samples", "CPU added", "us/sample",
             "middle half", "x floor"], rows)
        section.lines += [""] + self.cost_in_instructions()
        for frames in (10, 100):
            for f in freqs:
                s, fl = costs.get((frames, f, "sprof")), costs.get((frames, f, "floor"))
                ratio = s / fl if s is not None and fl else None
                noisy = within_noise(rounds_cost[(frames, f, "sprof")],
                                     rounds_cost[(frames, f, "floor")], 1.3)
                section.targets.append(Target(
                    "sprof within 1.3x of the floor, %d frames, %d Hz" % (frames, f),
                    None if ratio is None else ratio <= 1.3,
                    "%s us vs %s us, %sx%s" % (fmt(s, "{:.1f}"), fmt(fl, "{:.1f}"), fmt(ratio),
                                               NOISE_NOTE if noisy else ""),
                    CAUSES["cost_vs_floor"]))
        if "gperf" in peers:
            for f in freqs:
                s, g = costs.get((100, f, "sprof")), costs.get((100, f, "gperf"))
                ratio = s / g if s is not None and g else None
                noisy = within_noise(rounds_cost[(100, f, "sprof")],
                                     rounds_cost[(100, f, "gperf")], 0.5)
                section.targets.append(Target(
                    "sprof at most half of gperftools' cost per sample, 100 frames, %d Hz" % f,
                    None if ratio is None else ratio <= 0.5,
                    "%s us vs %s us, %sx%s" % (fmt(s, "{:.1f}"), fmt(g, "{:.1f}"), fmt(ratio),
                                               NOISE_NOTE if noisy else ""),
                    self.cost_vs_gperftools_cause(costs, f)))
        else:
            section.lines.append("")
            section.lines.append("gperftools skipped: " + self.profilers.missing["gperf"] + ".")
        self.raw["cost_us"] = {"%d/%d/%s" % k: v for k, v in costs.items()}
        self.sections.append(section)

    def cost_vs_gperftools_cause(self, costs, freq):
        """Where a sample's cost goes, at 100 frames: the floor and its two
        variants (999 Hz, both stack depths) split the timer's interrupts from
        the signal; the setitimer floor is gperftools' signal alone."""
        floor = median([costs.get((frames, 999, "floor")) for frames in (10, 100)])
        timer = median([costs.get((frames, 999, "timer")) for frames in (10, 100)])
        trap = median([costs.get((frames, 999, "trap")) for frames in (10, 100)])
        gperf = costs.get((100, freq, "gperf"))
        if floor is None or timer is None or not gperf:
            return None
        text = ("measured in section 1's floor rows: the floor (the same timer and signal, an "
                "empty handler) costs %.1f us a sample here, of which the counter's timer alone "
                "(no signal) costs %.1f us and the signal %.1f us: perf sends its fasync signal "
                "through an interrupt of its own (irq_work, an interrupt the CPU sends "
                "itself), which a virtual machine makes dear. gperftools' setitimer is driven by "
                "the kernel's tick, which fires anyway, so it pays for neither and takes a "
                "quarter of the samples (the tick's rate)" % (floor, timer, floor - timer))
        sprof, floor_here = costs.get((100, freq, "sprof")), costs.get((100, freq, "floor"))
        itimer = costs.get((100, freq, "itimer"))
        if None not in (sprof, floor_here, itimer):
            text += ("; above its own floor, a sample of sprof costs %.1f us and one of "
                     "gperftools %.1f us (its floor, *floor, setitimer*: %.1f us)"
                     % (sprof - floor_here, gperf - itimer, itimer))
        if floor > 0.5 * gperf:
            text += ("; the floor alone is %.0f%% of gperftools' whole sample, so no profiler "
                     "that samples above the tick's rate with a timer per thread can cost half "
                     "of gperftools' sample on this machine" % (100 * floor / gperf))
        if trap is not None:
            text += ("; perf's own SIGTRAP (attr.sigtrap), sent on the way back to user space, "
                     "costs %.1f us with the timer (the *floor, SIGTRAP* row): sprof does not use "
                     "it, because SIGTRAP belongs to debuggers (under gdb every sample would stop "
                     "the program)" % trap)
        return text

    def cost_in_instructions(self):
        """The handlers' own work, counted by callgrind: repeatable where time
        is not, but user space only (no signal delivery, no system calls)."""
        if not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
            return ["callgrind skipped: valgrind is not installed."]
        handlers = {"floor": r"floor_preload\.c:on_signal ", "sprof": r":sprof_sampler_on_signal "}
        rows = []
        for frames in (10, 100):
            log("1. handler instructions (callgrind), %d frames" % frames)
            row = [frames]
            for key in ("floor", "sprof"):
                points = []
                for iterations in (10_000_000, 40_000_000):
                    wrapper = ["valgrind", "--tool=callgrind",
                               "--callgrind-out-file=callgrind.out"]
                    run = self.stackload(key, 999, frames, 1, iterations, wrapper=wrapper)
                    out = run.info["run_dir"] / "callgrind.out"
                    points.append((run.samples or 0, callgrind_inclusive(out, handlers[key])))
                    shutil.rmtree(run.info["run_dir"], ignore_errors=True)
                (n0, i0), (n1, i1) = points
                value = (i1 - i0) / (n1 - n0) if n1 > n0 and i0 is not None and i1 is not None else None
                self.facts["instructions_%s_%d" % (key, frames)] = fmt(value, "{:,.0f}")
                row.append(fmt(value, "{:.0f}"))
            rows.append(row)
        return ["Instructions per sample in the signal handler, from `valgrind --tool=callgrind`",
                "(the increase between a short and a long run, over the increase in samples, so",
                "one-time costs drop out). User space only: the kernel's signal delivery is not in",
                "it (nor, with SPROF_KERNEL=1, the read() of the counter each sample then makes).",
                "gperftools cannot be measured so: its setitimer signal kills valgrind.",
                ""] + markdown_table(
                    ["frames", "floor instructions/sample", "sprof instructions/sample"], rows)

    # --- 2. Completeness ---------------------------------------------------------------

    def bench_completeness(self):
        section = Section("2. Completeness: the samples' CPU time / measured CPU time")
        peers = ["sprof", "sprof-kernel", "floor"] + (
            ["gperf"] if self.profilers.available("gperf") else [])
        freqs = (999, 4000)
        configs = [(p, f) for f in freqs for p in peers]
        rows = []
        for threads in (1, 4):
            log("2. completeness, %d threads" % threads)
            results = interleaved(configs, self.mode.complete_reps,
                                  lambda c, r: self.stackload(c[0], c[1], 10, threads,
                                                              4 * self.iterations,
                                                              thread_view=c[0] == "sprof"))
            unsampled = []
            # What each thread ran unsampled: its CPU time less its samples' time.
            main_loss, worker_loss = [], []
            for f in freqs:
                for run in results[("sprof", f)]:
                    for t in run.info.get("threads", []):
                        loss = float(t["cpu_seconds"]) - float(t["sampled_seconds"])
                        (main_loss if t["pid"] == t["tid"] else worker_loss).append(loss)
            if main_loss:
                self.facts["main_loss_ms"] = fmt(median(main_loss) * 1e3, "{:.1f}")
            if worker_loss:
                self.facts["thread_loss_ms"] = fmt(median(worker_loss) * 1e3, "{:.1f}")
            for f in freqs:
                row = [threads, f]
                values = {}
                for p in ("sprof", "sprof-kernel", "gperf", "floor"):
                    if p not in peers:
                        row.append("skipped")
                        continue
                    ratios = []
                    for run in results[(p, f)]:
                        if p.startswith("sprof") and run.info.get("summary"):
                            s = run.info["summary"]
                            ratios.append(float(s["sampled_seconds"]) / float(s["cpu_seconds"]))
                            if p == "sprof" and f == 4000 and threads == 4:
                                unsampled.append(float(s.get("unsampled_system_seconds", 0))
                                                 / float(s["cpu_seconds"]))
                        elif p == "gperf" and run.cpu:
                            ratios.append(run.samples * run.info["period_s"] / run.cpu)
                        elif p == "floor" and run.cpu:
                            ratios.append(run.samples / f / run.cpu)
                    values[p] = median(ratios)
                    row.append(fmt(values[p], "{:.3f}"))
                rows.append(row)
                if unsampled:
                    self.facts["unsampled_system"] = fmt(median(unsampled), "{:.1%}")
                section.targets.append(Target(
                    "sprof >= 0.97, %d thread%s, %d Hz" % (threads, "s" if threads > 1 else "", f),
                    None if values.get("sprof") is None else values["sprof"] >= 0.97,
                    fmt(values.get("sprof"), "{:.3f}"), CAUSES["completeness"]))
        section.lines += [
            "stackload, 10 frames, %.1f s of CPU split over the threads; medians of %d rounds."
            % (4 * self.mode.cost_seconds, self.mode.complete_reps),
            "sprof: sampled_seconds / cpu_seconds from `sprof-analyze --summary`; by default",
            "(SPROF_KERNEL=0) it samples user time only, while cpu_seconds includes system time;",
            "with SPROF_KERNEL=1 (permitted here) it counts both and weighs each sample by its",
            "counter. gperftools: samples x its period / CPU from wait4(). floor: signals",
            "delivered x period / CPU (what the timer itself delivers, user time only).",
            ""]
        section.lines += markdown_table(["threads", "Hz", "sprof", "sprof, SPROF_KERNEL=1",
                                         "gperftools", "floor signals"], rows)
        section.lines += ["", "CPU time sprof did not sample (a thread's CPU time less its samples' "
                          "time, medians): %s ms in the main thread, %s ms in each other thread."
                          % (self.facts.get("main_loss_ms", "?"),
                             self.facts.get("thread_loss_ms", "?"))]
        self.sections.append(section)

    # --- 3. Real programs ---------------------------------------------------------------

    def python_binary(self):
        for candidate in ("/usr/bin/python3", sys.executable):
            if candidate and Path(candidate).exists():
                return str(Path(candidate).resolve())
        return None

    def prepare_inputs(self):
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        log("generating the inputs in %s" % DATA)
        self.xz_input = DATA / ("text-%gMB.txt" % self.mode.xz_mb)
        write_text_input(self.xz_input, int(self.mode.xz_mb * 1024 * 1024))
        self.c_input = DATA / ("big-%d.c" % self.mode.gcc_functions)
        self.c_input.write_text(generate_c_file(self.mode.gcc_functions))
        self.large_script = DATA / ("large_script_%d.py" % self.mode.script_functions)
        self.large_script.write_text(generate_python_script(self.mode.script_functions))
        self.python = self.python_binary()
        self.c_program = None
        if shutil.which("gcc"):
            source = DATA / ("functions-%d.c" % self.mode.c_program_functions)
            source.write_text(generate_c_program(self.mode.c_program_functions,
                                                 self.mode.c_program_rounds))
            binary = DATA / source.stem
            if run_quiet(["gcc", "-O2", "-g", "-o", binary, source]).returncode == 0:
                self.c_program = binary
        # Rounds of bench/pywork.py for the CPU time wanted.
        run_dir = new_run_dir()
        trial = min(execute([self.python, BENCH / "pywork.py", 2], run_dir).cpu
                    for _ in range(2))
        self.py_round_seconds = trial / 2
        shutil.rmtree(run_dir, ignore_errors=True)

    def py_rounds(self, seconds):
        return max(1, round(seconds / self.py_round_seconds))

    def real_programs(self):
        programs = []
        if shutil.which("xz"):
            programs.append(("xz -9", "xz -9 on %g MB of generated log-like text%s" % (
                self.mode.xz_mb, "" if self.mode.name == "long" else
                " (50 MB with --long: xz -9 takes about a second per MB here)"),
                             lambda d: ["xz", "-9", "-T1", "-c", self.xz_input]))
        else:
            self.notes.append("xz is not installed: its rows are skipped")
        if self.python:
            rounds = self.py_rounds(self.mode.py_seconds)
            programs.append(("python3", "%s bench/pywork.py %d" % (self.python, rounds),
                             lambda d: [self.python, BENCH / "pywork.py", rounds]))
        if shutil.which("gcc"):
            programs.append(("gcc -O2", "gcc -O2 -c on a generated %d-line C file (gcc, cc1, as)"
                             % self.c_input.read_text().count("\n"),
                             lambda d: ["gcc", "-O2", "-c", self.c_input, "-o", d / "big.o"]))
        if shutil.which("xz"):
            programs.append(("xz -T2", "xz -6 -T2 --block-size=1MiB on the same text (2 threads)",
                             lambda d: ["xz", "-6", "-T2", "--block-size=1MiB", "-c",
                                        self.xz_input]))
        return programs

    def bench_real(self):
        section = Section("3. Overhead on real programs, at 999 Hz")
        peers = [p for p in ("floor", "sprof", "perf", "gperf") if self.profilers.available(p)]
        configs = ["none"] + peers
        rows, own_rows = [], []
        self.sprof_real_traces = {}
        for name, description, make_cmd in self.real_programs():
            log("3. real program: %s" % name)

            def run_one(key, r, make_cmd=make_cmd, name=name):
                run_dir = new_run_dir()
                run = self.profilers.run(key, 999, make_cmd(run_dir), run_dir,
                                         trace=key == "sprof")
                self.check(name, key, run)
                if key == "sprof" and "trace" in run.info:
                    self.sprof_real_traces[name] = run.info["trace"]
                shutil.rmtree(run_dir, ignore_errors=True)
                return run

            results = interleaved(configs, self.mode.real_reps, run_one)
            base = results["none"]
            row = [name, "%s / %s" % (fmt(median([r.cpu for r in base])),
                                      fmt(median([r.wall for r in base])))]
            added = {}
            for p in ("floor", "sprof", "perf", "gperf"):
                if p not in peers:
                    row.append("skipped")
                    continue
                added[p] = [r.cpu / b.cpu - 1 for r, b in zip(results[p], base) if b.cpu]
                cpu = median([r.cpu / b.cpu for r, b in zip(results[p], base) if b.cpu])
                wall = median([r.wall / b.wall for r, b in zip(results[p], base) if b.wall])
                row.append("%s / %s" % (fmt(cpu, "{:.3f}"), fmt(wall, "{:.3f}")))
            summaries = [r.info.get("summary") for r in results["sprof"]]
            accounted = median([float(x["sampled_seconds"]) / float(x["cpu_seconds"])
                                for x in summaries if x and float(x["cpu_seconds"])])
            row += [fmt(median([r.samples for r in results["sprof"]]), "{:.0f}"),
                    fmt(accounted, "{:.0%}")]
            rows.append(row)
            own = self.own_code_share(make_cmd) if self.profilers.available("perf") else None
            if own:
                own_rows.append([name, fmt(own["sampling"], "{:.2%}"), fmt(own["exit"], "{:.2%}")])
            s, fl = median(added.get("sprof", [])), median(added.get("floor", []))
            ok = None if s is None or fl is None else s <= 1.3 * max(fl, 0)
            # How much the baseline itself moved between rounds: when that is
            # more than a small part of what the floor adds, the rounds cannot
            # tell 1.3x of the floor from 1x.
            base_cpu = [b.cpu for b in base if b.cpu]
            spread = None
            if len(base_cpu) >= 3:
                q = statistics.quantiles(base_cpu, n=4)
                spread = (q[2] - q[0]) / median(base_cpu)
            noisy = within_noise(added.get("sprof", []), added.get("floor", []), 1.3) or (
                spread is not None and spread > 0.02)
            measured = "measured: sprof %s (rounds' middle half %s), floor %s (%s)" % (
                fmt(s, "{:+.1%}"), quartiles([100 * x for x in added.get("sprof", [])], "%+.1f%%"),
                fmt(fl, "{:+.1%}"), quartiles([100 * x for x in added.get("floor", [])], "%+.1f%%"))
            floor_us = self.numbers.get("floor_us_999")
            if noisy and own and floor_us:
                # The rounds cannot tell; judge on the steadier figures: the
                # floor's cost per sample (section 1) and sprof's own code (perf).
                floor_share = 999 * floor_us * 1e-6
                own_total = own["sampling"] + own["exit"]
                ok = own_total <= 0.3 * floor_share
                if spread is not None and spread > 0.02:
                    reason = ("the run without a profiler itself moved by %s between rounds "
                              "(middle half)" % fmt(spread, "{:.0%}"))
                else:
                    reason = ("round by round the two fall on both sides of 1.3x (the middle "
                              "halves above)")
                measured += ("; but %s, so this is judged on the steadier estimate: sprof's "
                             "own code took %.1f%% of the CPU (perf) against the floor's %.1f%% "
                             "(999 signals a second at %.0f us, section 1): %.2f of it, where 0.3 "
                             "is allowed. The estimate leaves out the kernel's part of sprof's "
                             "work and any effect of its handler on the program's caches"
                             % (reason, 100 * own_total, 100 * floor_share,
                                floor_us, own_total / floor_share))
            elif noisy:
                measured += NOISE_NOTE
            if accounted is not None and accounted < 0.5:
                measured += "; sprof sampled only %.0f%% of this program's CPU (see the notes)" % (
                    100 * accounted)
                self.notes.append("%s: sprof accounted for %.0f%% of the CPU time: %s." % (
                    name, 100 * accounted, FINDINGS.get(name, "not investigated")))
            why = None
            if ok is False:
                why = self.why_overhead(name, s, fl, own, accounted)
                for extra in (self.depth_effect(name, make_cmd),
                              self.program_slowdown(name, make_cmd)):
                    if extra:
                        why = (why + "; " if why else "") + extra
            section.targets.append(Target(
                "%s: sprof's added CPU at most 1.3x the floor's" % name, ok, measured, why))
            section.lines.append("- %s: %s" % (name, description))
            self.raw["real_" + name] = {k: [(r.cpu, r.wall, r.samples) for r in v]
                                        for k, v in results.items()}
        section.lines += [
            "",
            "CPU and wall time of the whole command (wait4, children included) with each",
            "profiler, as ratios to the run without one in the same round; medians of %d rounds."
            % self.mode.real_reps,
            "sprof includes its exit (naming addresses: SPROF_SYMBOLIZE=1, the default).",
            "perf record: `-e cpu-clock -F 999 -g`. gperftools: CPUPROFILE_FREQUENCY=999.",
            "*accounted*: sprof's sampled time / the process's measured CPU time (its summary).",
            "Where the run without a profiler moved by more than 2% between rounds (middle half),",
            "or the rounds of sprof and of 1.3 times the floor overlap, the rounds cannot tell the",
            "floor's 5% from 1.3 times it, and the target is judged on a steadier estimate",
            "instead, as its line says.",
            ""]
        section.lines += markdown_table(
            ["program", "without: CPU s / wall s", "floor CPU x / wall x", "sprof CPU x / wall x",
             "perf CPU x / wall x", "gperftools CPU x / wall x", "sprof samples", "accounted"],
            rows)
        if own_rows:
            section.lines += [
                "", "sprof's own code, as a share of the profiled run's CPU time, from a `perf record",
                "-F 4000` of one more sprof run: *sampling* = libunwind and sprof's handler and",
                "tables; *exit* = naming the addresses (libdw, libelf, sprof's symbolizer). The",
                "kernel's part (signal delivery, as for the floor; page faults; the writes every",
                "100 ms) is not in it.", ""]
            section.lines += markdown_table(["program", "sampling", "exit"], own_rows)
        for p in ("perf", "gperf"):
            if p in self.profilers.missing:
                section.lines.append("")
                section.lines.append("%s skipped: %s." % (Profilers.LABELS[p],
                                                           self.profilers.missing[p]))
        self.sections.append(section)

    def perf_report(self, settings, make_cmd, freq, sort):
        """perf report's table (--stdio, sample counts included) of make_cmd
        run under `perf record -e cpu-clock -F freq`, with settings (NAME=
        VALUE, relative paths in the run's directory) given to the command
        alone, not to perf; None if the run failed."""
        run_dir = new_run_dir()
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(freq), "-o",
               run_dir / "perf.data", "--", "env"] + list(settings) + make_cmd(run_dir)
        run = execute(cmd, run_dir)
        report = None
        if run.status == 0:
            report = subprocess.run(["perf", "report", "-i", run_dir / "perf.data", "-n",
                                     "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                                    capture_output=True, text=True, env=BASE_ENV).stdout
        else:
            self.notes.append("perf record of a profiled run failed (status %d)" % run.status)
        shutil.rmtree(run_dir, ignore_errors=True)
        return report

    def sprof_settings(self, *extra):
        """sprof at 999 Hz, quiet, its trace in the run's directory."""
        return ["LD_PRELOAD=%s" % (BIN / "libsprof.so"), "SPROF_FREQ=999",
                "SPROF_OUTPUT=trace.bin", "SPROF_QUIET=1"] + list(extra)

    def own_code_share(self, make_cmd):
        """Shares of a sprof-profiled run's CPU samples (perf record) in
        sprof's own code, split into sampling and exit (naming)."""
        report = self.perf_report(self.sprof_settings(), make_cmd, 4000, "dso,sym")
        if report is None:
            return None
        shares = dict(sampling=0.0, exit=0.0)
        for line in report.splitlines():
            found = re.match(r"\s*([\d.]+)%\s+\d+\s+(\S+)\s+\[.\]\s+(\S+)", line)
            if not found:
                continue
            share, dso, symbol = float(found.group(1)) / 100, found.group(2), found.group(3)
            if dso.startswith(("libdw", "libelf", "libsprof-names")):
                shares["exit"] += share
            elif dso.startswith("libunwind"):
                shares["sampling"] += share
            elif dso == "libsprof.so":
                exit_code = re.search(r"symboli|unwind_table|compare_symbols|module_symbols|"
                                      r"sort_symbols|merge_sort|symbol_before|string_table|sprof_map|find_slot|reader|"
                                      r"decoder|encoder|hash|chain_id|write_name", symbol)
                shares["exit" if exit_code else "sampling"] += share
        return shares

    def depth_effect(self, name, make_cmd):
        """How much of a missed program's cost is unwinding: sprof as usual
        against sprof keeping the interrupted address alone (SPROF_DEPTH=1,
        which does not unwind), interleaved with runs without a profiler."""
        log("3. %s: sprof's added CPU at SPROF_DEPTH=1" % name)

        def run_one(config, r):
            run_dir = new_run_dir()
            env = {"SPROF_DEPTH": "1"} if config == "depth1" else None
            run = self.profilers.run("none" if config == "none" else "sprof", 999,
                                     make_cmd(run_dir), run_dir, env=env)
            shutil.rmtree(run_dir, ignore_errors=True)
            return run

        results = interleaved(["none", "sprof", "depth1"], self.mode.real_reps, run_one)
        added = {c: median([r.cpu / b.cpu - 1 for r, b in zip(results[c], results["none"])
                            if b.cpu and r.status == 0])
                 for c in ("sprof", "depth1")}
        if added["sprof"] is None or added["depth1"] is None:
            return None
        return ("sprof keeping the interrupted address alone, without unwinding (SPROF_DEPTH=1), "
                "added %+.1f%% of CPU against %+.1f%% with whole stacks (medians of %d more "
                "interleaved rounds): the difference is libunwind's unwinding"
                % (100 * added["depth1"], 100 * added["sprof"], self.mode.real_reps))

    # Shared objects that are not the profiled program's own code.
    NOT_THE_PROGRAM = re.compile(r"^(\[kernel|\[vdso|\[unknown|libsprof\.so|libsprof-names\.so|floor_preload\.so|"
                                 r"libunwind|libdw|libelf|libc\.so|ld-linux|libm\.so)")

    def program_slowdown(self, name, make_cmd):
        """Whether the program's own code runs slower under sprof than under
        the floor: perf's CPU samples in the program's own objects (not libc,
        ld.so, the kernel or the profilers), interleaved rounds. Unwinding
        reads memory the program does not (unwind tables, libunwind's
        caches), which the program then finds missing from its caches."""
        if not self.profilers.available("perf"):
            return None
        log("3. %s: the program's own CPU samples, floor against sprof (perf)" % name)

        def run_one(key, r):
            settings = (self.sprof_settings("SPROF_SYMBOLIZE=0") if key == "sprof" else
                        ["LD_PRELOAD=%s" % (BIN / "floor_preload.so"), "BENCH_FLOOR_FREQ=999"])
            report = self.perf_report(settings, make_cmd, 10000, "dso")
            if report is None:
                return None
            own = 0
            for line in report.splitlines():
                found = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\S+)", line)
                if found and not self.NOT_THE_PROGRAM.match(found.group(2)):
                    own += int(found.group(1))
            return own

        results = interleaved(["floor", "sprof"], self.mode.real_reps, run_one)
        floor, sprof = median(results["floor"]), median(results["sprof"])
        if not floor or not sprof:
            return None
        text = ("the program's own code (outside libc, ld.so and the kernel) took %+.1f%% CPU "
                "samples under sprof against the floor (perf record -F 10000, medians of %d "
                "interleaved rounds: %d against %d)" % (100 * (sprof / floor - 1),
                                                        self.mode.real_reps, sprof, floor))
        if sprof > floor * 1.005:
            text += (": the program itself ran slower. Unwinding reads memory the program does "
                     "not (unwind tables, libunwind's caches), and this machine has no hardware "
                     "counters to show it, but evicting the program's data from the caches is "
                     "the likely cause")
        return text

    def why_overhead(self, name, sprof_added, floor_added, own, accounted):
        """What the measurements say about a missed overhead target."""
        parts = []
        if own:
            own_total = own["sampling"] + own["exit"]
            parts.append("sprof's own code took %.1f%% of the run's CPU (perf): %.1f%% unwinding "
                         "and recording samples, %.1f%% naming addresses at exit"
                         % (100 * own_total, 100 * own["sampling"], 100 * own["exit"]))
            floor_us = self.numbers.get("floor_us_999")
            if floor_us:
                floor_share = 999 * floor_us * 1e-6
                parts.append("sprof's own code alone %s the allowance (30%% of the floor's "
                             "%.1f%%)%s"
                             % ("stays within" if own_total <= 0.3 * floor_share else "exceeds",
                                100 * floor_share,
                                ": the rest of the measured gap is noise, or the handler's "
                                "effect on the program's caches, which the floor does not have"
                                if own_total <= 0.3 * floor_share else ""))
        finding = FINDINGS.get(name)
        if finding:
            parts.append(finding)
        if accounted is not None and accounted < 0.5:
            parts.append("sprof sampled only %.0f%% of the CPU time here" % (100 * accounted))
        return "; ".join(parts) if parts else None

    # --- 4. Trace size and memory -------------------------------------------------------

    def bench_growth(self):
        section = Section("4. Trace size and memory on longer runs")
        rows = []
        points = []
        for seconds in self.mode.growth_seconds:
            rounds = self.py_rounds(seconds)
            log("4. growth: python3 pywork.py %d" % rounds)
            runs = {}
            for key in ("none", "sprof"):
                run_dir = new_run_dir()
                run = self.profilers.run(key, 999, [self.python, BENCH / "pywork.py", rounds],
                                         run_dir, trace=True)
                self.check("python3 pywork.py %d" % rounds, key, run)
                runs[key] = run
                if key == "sprof":
                    self.kept_traces["python_long"] = run_dir / "trace.bin"
                else:
                    shutil.rmtree(run_dir, ignore_errors=True)
            t = runs["sprof"].info.get("trace")
            if not t or not t["samples"]:
                continue
            stream = sum(t["by_type"][kind] for kind in STREAM_TYPES)
            added = runs["sprof"].maxrss_kb - runs["none"].maxrss_kb
            points.append((t["samples"], t["bytes"], stream, added))
            self.facts["new_stacks"] = fmt(t["stacks"] / t["samples"], "{:.2f}")
            self.facts["names_per_sample"] = fmt(
                (t["by_type"]["address_names"] + t["by_type"]["chain"] + t["by_type"]["string"])
                / t["samples"], "{:.1f}")
            self.facts["depth"] = fmt(t["mean_depth"], "{:.0f}")
            rows.append([rounds, fmt(runs["none"].cpu), t["samples"], t["bytes"],
                         fmt(t["bytes"] / t["samples"], "{:.1f}"),
                         fmt(stream / t["samples"], "{:.1f}"),
                         fmt(t["stacks"] / t["samples"], "{:.3f}"),
                         runs["none"].maxrss_kb, runs["sprof"].maxrss_kb, added])
        section.lines += [
            "python3 bench/pywork.py for longer and longer runs, with and without sprof at 999 Hz.",
            "*all* = the whole trace file (with its names) per sample; *stream* = its FRAMES and",
            "NODE_SAMPLES records per sample (the stacks and their samples); *new nodes* = frame-",
            "tree nodes defined per sample. Peak RSS from wait4(), in KiB. The marginal size",
            "includes everything: new nodes, and the names of new addresses written at exit.",
            ""]
        section.lines += markdown_table(
            ["rounds", "CPU s", "samples", "trace bytes", "all B/sample", "stream B/sample",
             "new nodes/sample", "RSS without", "RSS with", "RSS added"], rows)
        marginal = None
        if len(points) >= 2 and points[-1][0] > points[0][0]:
            marginal = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
            section.lines += ["", "Marginal size (longest run minus shortest, per extra sample): "
                              "%.1f bytes/sample." % marginal]
        # The real programs' traces from section 3.
        if getattr(self, "sprof_real_traces", None):
            section.lines += ["", "The traces of section 3's runs:", ""]
            trows = []
            for name, t in self.sprof_real_traces.items():
                if t["samples"]:
                    stream = sum(t["by_type"][kind] for kind in STREAM_TYPES)
                    trows.append([name, t["samples"], t["bytes"],
                                  fmt(t["bytes"] / t["samples"], "{:.1f}"),
                                  fmt(stream / t["samples"], "{:.1f}"),
                                  fmt(t["mean_depth"], "{:.1f}")])
            section.lines += markdown_table(["program", "samples", "trace bytes", "all B/sample",
                                             "stream B/sample", "mean depth"], trows)
        section.targets.append(Target(
            "at most 4 bytes per sample, amortised on a long run (the marginal size)",
            None if marginal is None else marginal <= 4,
            fmt(marginal, "{:.1f} bytes/sample"), CAUSES["trace_size"]))
        if len(points) >= 2:
            growth = points[-1][3] - points[0][3]
            section.targets.append(Target(
                "resident memory added stays constant as the run gets longer",
                growth <= 1024,
                "added %d KiB at %d samples, %d KiB at %d samples"
                % (points[0][3], points[0][0], points[-1][3], points[-1][0]), None))
        self.raw["growth"] = points
        self.sections.append(section)

    # --- 5. Start and exit ------------------------------------------------------------------

    def exit_cost(self, cmd):
        """(CPU s, wall s, addresses named) that naming the addresses adds to
        a profiled run's exit: SPROF_SYMBOLIZE=1 against 0, paired by round,
        each timed from the program's last act (it writes its clocks to
        $BENCH_TAIL_OUTPUT) to its end, so the noise of the rest of the run
        drops out."""
        def run_one(symbolize, r):
            run_dir = new_run_dir()
            tail = run_dir / "tail.txt"
            run = self.profilers.run("sprof", 999, cmd, run_dir,
                                     env={"SPROF_SYMBOLIZE": symbolize,
                                          "BENCH_TAIL_OUTPUT": str(tail)},
                                     trace=symbolize == "1")
            self.check(Path(cmd[-1]).name, "sprof", run)
            run.info["tail_cpu"] = run.info["tail_wall"] = None
            if tail.exists():
                program_cpu, program_end = (float(x) for x in tail.read_text().split())
                run.info["tail_cpu"] = run.cpu - program_cpu
                run.info["tail_wall"] = run.info["end"] - program_end
            shutil.rmtree(run_dir, ignore_errors=True)
            return run

        results = interleaved(["1", "0"], self.mode.exit_reps, run_one)
        self.exit_runs = results
        pairs = list(zip(results["1"], results["0"]))
        cpu = median([a.info["tail_cpu"] - b.info["tail_cpu"] for a, b in pairs
                      if a.info["tail_cpu"] is not None and b.info["tail_cpu"] is not None])
        wall = median([a.info["tail_wall"] - b.info["tail_wall"] for a, b in pairs
                       if a.info["tail_wall"] is not None and b.info["tail_wall"] is not None])
        symbols = median([r.info["trace"]["symbols"] for r in results["1"] if "trace" in r.info])
        return cpu, wall, symbols

    def bench_start_exit(self):
        section = Section("5. Start and exit")
        exits = [("python3", [self.python, self.large_script])]
        if self.c_program:
            exits.append(("C", [self.c_program]))
        rows = []
        exit_ms = {}
        for label, cmd in exits:
            log("5. exit cost: %s" % " ".join(str(Path(c).name) for c in cmd))
            cpu, wall, symbols = self.exit_cost(cmd)
            exit_ms[label] = (cpu, wall)
            if label == "python3":
                what = ("exit: python3, %d-line script, SPROF_SYMBOLIZE=1 vs 0"
                        % self.large_script.read_text().count("\n"))
            else:
                what = ("exit: C program built with -g, %d functions in one unit, "
                        "SPROF_SYMBOLIZE=1 vs 0" % self.mode.c_program_functions)
            rows.append([what, fmt(median([r.cpu for r in self.exit_runs["0"]])),
                         fmt(None if cpu is None else cpu * 1e3, "{:+.0f}"),
                         fmt(None if wall is None else wall * 1e3, "{:+.0f}"),
                         "%s addresses named" % fmt(symbols, "{:.0f}")])

        log("5. start-up: /bin/true")
        true_path = shutil.which("true") or "/bin/true"
        configs = ["none", "floor", "sprof"]

        def batch(key, r):
            run_dir = new_run_dir()
            cpu = wall = 0.0
            for _ in range(self.mode.true_runs):
                run = self.profilers.run(key, 999, [true_path], run_dir)
                self.check("/bin/true", key, run, need_samples=False)
                cpu += run.cpu
                wall += run.wall
                for p in run_dir.glob("trace.bin*"):
                    p.unlink()
            shutil.rmtree(run_dir, ignore_errors=True)
            return (cpu / self.mode.true_runs, wall / self.mode.true_runs)

        batches = interleaved(configs, self.mode.true_batches, batch)
        base_cpu = median([b[0] for b in batches["none"]])
        base_wall = median([b[1] for b in batches["none"]])
        for key in ("floor", "sprof"):
            c = median([b[0] - n[0] for b, n in zip(batches[key], batches["none"])])
            w = median([b[1] - n[1] for b, n in zip(batches[key], batches["none"])])
            if key == "sprof":
                self.facts["startup_ms"] = fmt(None if c is None else c * 1e3, "{:.1f}")
            rows.append(["start + exit: %s under %s" % (true_path, Profilers.LABELS[key]),
                         fmt(base_cpu * 1e3, "{:.2f} ms"), fmt(c * 1e3, "{:+.2f}"),
                         fmt(w * 1e3, "{:+.2f}"), "without: wall %s ms" % fmt(base_wall * 1e3)])
        def threadstart_figures(threads, *mode):
            """bench/threadstart under each configuration, interleaved: the
            figure it writes, per run."""
            def one(key, r):
                run_dir = new_run_dir()
                out = run_dir / "figure.txt"
                run = self.profilers.run(key, 999, [BIN / "threadstart", threads, out] + list(mode),
                                         run_dir)
                self.check(" ".join(["threadstart"] + list(mode)), key, run, need_samples=False)
                value = float(out.read_text()) if out.exists() else None
                shutil.rmtree(run_dir, ignore_errors=True)
                return value
            return interleaved(configs, self.mode.true_batches, one)

        log("5. thread start")
        starts = threadstart_figures(50)
        base_start = median(starts["none"])
        for key in ("floor", "sprof"):
            added = median([a - b for a, b in zip(starts[key], starts["none"])
                            if a is not None and b is not None])
            if key == "sprof":
                self.facts["thread_start_ms"] = fmt(None if added is None else added * 1e3,
                                                    "{:.2f}")
            rows.append(["thread start: CPU before a new thread's code runs, under %s"
                         % Profilers.LABELS[key],
                         fmt(None if base_start is None else base_start * 1e3, "{:.3f} ms"),
                         fmt(None if added is None else added * 1e3, "{:+.2f}"), "", ""])
        log("5. waiting threads' memory")
        waiting = 100
        resident = threadstart_figures(waiting, "waiting")
        base_resident = median(resident["none"])
        for key in ("floor", "sprof"):
            added = median([(a - b) / waiting for a, b in zip(resident[key], resident["none"])
                            if a is not None and b is not None])
            rows.append(["memory: %d threads waiting, under %s" % (waiting, Profilers.LABELS[key]),
                         "", "", "",
                         "resident %s KiB per thread (without: %s MB in all)"
                         % (fmt(added, "{:+.0f}"),
                            fmt(None if base_resident is None else base_resident / 1024,
                                "{:.1f}"))])
        section.lines += [
            "Exit: the same profiled run with and without naming the addresses at exit",
            "(SPROF_SYMBOLIZE=1 vs 0), paired by round; medians of %d rounds. Timed from the"
            % self.mode.exit_reps,
            "program's last act (it writes its CPU and monotonic clocks) to the process's end,",
            "so the noise of the rest of the run drops out. The Python script is",
            "generated (build/bench/data/) and calls %d functions that use much of the standard"
            % self.mode.script_functions,
            "library. The C program (generated there too, gcc -O2 -g) runs %d small functions"
            % self.mode.c_program_functions,
            "%d times over: its samples land all over one large unit of debug information, each"
            % self.mode.c_program_rounds,
            "named with its function, file and line. Start-up: %d batches of %d runs of /bin/true per configuration, interleaved."
            % (self.mode.true_batches, self.mode.true_runs),
            "Thread start: bench/threadstart.c starts 50 threads one by one; each reads its own",
            "CPU clock first (medians of %d runs). Memory: the same program starts %d threads"
            % (self.mode.true_batches, waiting),
            "that wait, and reads its resident memory (VmRSS) while they all do (medians of %d runs)."
            % self.mode.true_batches,
            ""]
        section.lines += markdown_table(["what", "CPU without", "CPU added ms", "wall added ms",
                                         "note"], rows)
        for label, what in (("python3", "python3 running a large script"),
                            ("C", "a C program built with -g, many functions in one unit")):
            if label not in exit_ms:
                continue
            cpu, wall = exit_ms[label]
            section.targets.append(Target(
                "exit cost (naming addresses) at most 100 ms for " + what,
                None if cpu is None else cpu <= 0.100,
                "%s ms of CPU, %s ms of wall" % (fmt(None if cpu is None else cpu * 1e3, "{:.0f}"),
                                                 fmt(None if wall is None else wall * 1e3,
                                                     "{:.0f}")),
                None))
        self.raw["exit_cost"] = {label: dict(cpu=c, wall=w) for label, (c, w) in exit_ms.items()}
        self.sections.append(section)

    def profile_analyzer(self, trace, stack_records):
        """Profiles the analyzer on the synthetic trace with sprof itself, for
        the figures the analyzer's cause quotes."""
        log("6. profiling the analyzer with sprof")
        run_dir = new_run_dir()
        run = self.profilers.run("sprof", 999, [BIN / "sprof-analyze", trace], run_dir,
                                 stdout=run_dir / "table.txt")
        self.check("sprof-analyze", "sprof", run)
        self.facts["analyzer_stack_records"] = "{:,}".format(int(stack_records))
        out = subprocess.run([BIN / "sprof-analyze", run_dir / "trace.bin", "--format", "csv"],
                             capture_output=True, text=True, env=BASE_ENV).stdout
        # Functions that stay real frames under -O2 (what is inlined into
        # them is lost to the profile); each group's subtrees do not overlap.
        groups = {"analyzer_read": ("read_frames", "read_node_samples"),
                  "analyzer_merge": ("expand_path_addresses", "path_tree_add_figures")}
        shares = {}
        for row in csv.DictReader(out.splitlines()):
            for fact, names in groups.items():
                if row.get("function") in names:
                    shares[fact] = shares.get(fact, 0.0) + float(row["cumulative_percent"])
        for fact, share in shares.items():
            self.facts[fact] = "%.0f%%" % share
        shutil.rmtree(run_dir, ignore_errors=True)

    # --- 6. The analyzer ------------------------------------------------------------------------

    def bench_analyzer(self):
        section = Section("6. The analyzer")
        n = self.mode.analyzer_samples
        trace = DATA / ("synthetic-%d.bin" % n)
        log("6. analyzer: generating a %d-sample trace" % n)
        gen = subprocess.run([BIN / "gen_trace", trace, str(n)], capture_output=True, text=True)
        if gen.returncode != 0:
            self.problem("gen_trace failed: " + gen.stderr.strip())
            return
        samples, entries, stack_records, distinct, symbols, depth = gen.stdout.split()
        inputs = [("synthetic, %s samples, %s threads" % (samples, 8), trace, int(samples),
                   "%s entries, %s frame nodes (%s distinct stacks, mean depth %s), %s addresses"
                   % (entries, stack_records, distinct, depth, symbols))]
        real = self.kept_traces.get("python_long")
        if real and real.exists():
            t = trace_stats(trace_files(real.parent))
            inputs.append(("python3 pywork.py (section 4's longest)", real, t["samples"],
                           "%d entries, %d frame nodes, %d addresses" % (
                               t["entries"], t["stacks"], t["symbols"])))
        rows = []
        rate_synthetic = None
        for label, path, count, shape in inputs:
            log("6. analyzer on %s" % label)
            runs = []
            for _ in range(self.mode.analyzer_reps):
                run_dir = new_run_dir()
                run = execute([BIN / "sprof-analyze", path], run_dir, stdout=run_dir / "table.txt")
                if run.status != 0:
                    self.problem("sprof-analyze %s exited with status %d" % (path, run.status))
                runs.append(run)
                shutil.rmtree(run_dir, ignore_errors=True)
            cpu, wall = median([r.cpu for r in runs]), median([r.wall for r in runs])
            rate = count / cpu if cpu else None
            if path == trace:
                rate_synthetic = rate
            rows.append([label, fmt(path.stat().st_size / 1e6, "{:.1f}"), fmt(wall), fmt(cpu),
                         fmt(max(r.maxrss_kb for r in runs) / 1024, "{:.0f}"),
                         fmt(None if rate is None else rate / 1e6, "{:.2f}"), shape])
        section.lines += [
            "`sprof-analyze TRACE` (the default table), medians of %d runs. The synthetic trace"
            % self.mode.analyzer_reps,
            "comes from bench/gen_trace.c (the project's encoder): a 5000-function call tree,",
            "50000 stacks 6-60 frames deep with Zipf-like popularity, 8 threads, each with its",
            "own frame tables (at most 2^20 nodes, as in the preload), batches of 100 samples,",
            "every address named. Rate = samples / CPU time.",
            ""]
        section.lines += markdown_table(["trace", "MB", "wall s", "CPU s", "peak RSS MB",
                                         "M samples/s", "shape"], rows)
        # Exports of the synthetic trace.
        export_rows = []
        for fmt_name in ("csv", "folded", "pprof", "callgrind"):
            log("6. analyzer: --format %s" % fmt_name)
            runs = []
            for _ in range(self.mode.analyzer_reps):
                run_dir = new_run_dir()
                out = run_dir / "export.txt"
                run = execute([BIN / "sprof-analyze", trace, "--format", fmt_name], run_dir,
                              stdout=out)
                if run.status != 0:
                    self.problem("sprof-analyze --format %s exited with status %d"
                                 % (fmt_name, run.status))
                run.info["out_bytes"] = out.stat().st_size if out.exists() else 0
                runs.append(run)
                shutil.rmtree(run_dir, ignore_errors=True)
            export_rows.append(["--format " + fmt_name, fmt(median([r.wall for r in runs])),
                                fmt(median([r.cpu for r in runs])),
                                fmt(max(r.maxrss_kb for r in runs) / 1024, "{:.0f}"),
                                fmt(runs[-1].info["out_bytes"] / 1e6, "{:.1f}")])
        section.lines += ["", "Exports of the synthetic trace, medians of %d runs (pprof's is gzipped):"
                          % self.mode.analyzer_reps, ""]
        section.lines += markdown_table(["export", "wall s", "CPU s", "peak RSS MB",
                                         "output MB"], export_rows)
        self.profile_analyzer(trace, stack_records)
        section.targets.append(Target(
            "at least 10 million samples per second for the table (10 M-sample trace)",
            None if rate_synthetic is None else rate_synthetic >= 10e6,
            fmt(None if rate_synthetic is None else rate_synthetic / 1e6,
                "{:.2f} M samples/s"), CAUSES["analyzer_rate"]))
        if trace.exists() and not self.args.keep:
            trace.unlink()
        self.sections.append(section)


# --- Inputs ---------------------------------------------------------------------------------

def write_text_input(path, size):
    """Log-like text: lines from a few hundred templates with varying fields,
    so xz finds both repeats and noise."""
    r = random.Random(42)
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 9)))
             for _ in range(3000)]
    templates = [" ".join(r.choice(words) for _ in range(r.randint(4, 10))) for _ in range(300)]
    statuses = ("ok", "ok", "ok", "fail", "retry")
    written, stamp = 0, 1700000000
    with open(path, "w") as out:
        while written < size:
            lines = []
            for _ in range(1000):
                stamp += r.randint(0, 3)
                lines.append("%d host%02d %s id=%d status=%s\n" % (
                    stamp, r.randint(0, 20), r.choice(templates), r.randint(0, 99999),
                    r.choice(statuses)))
            chunk = "".join(lines)[:size - written]
            out.write(chunk)
            written += len(chunk)


def generate_c_file(functions, seed=7):
    """A large C file of loops, switches and list walks: work for gcc -O2."""
    r = random.Random(seed)
    out = ["#include <stddef.h>\n#include <string.h>\n",
           "struct rec { int id; double w; char name[16]; struct rec *next; };\n"]
    for i in range(functions):
        k = r.randint(3, 9)
        cases = "".join("        case %d: acc = acc * %d + v[j] %s %d; break;\n"
                        % (c, r.randint(2, 99), r.choice("+-^|&"), r.randint(1, 999))
                        for c in range(k))
        out.append("""
static double helper_%(i)d(const double *a, size_t n, double s)
{
    double t = 0;
    for (size_t j = 0; j < n; j++)
        t += a[j] * s + (double)(j %% %(m)d);
    return t;
}

int fn_%(i)d(int *v, size_t n, struct rec *list, double *a)
{
    long acc = %(c)d;
    for (size_t j = 0; j < n; j++) {
        switch ((v[j] + (int)j) %% %(k)d) {
%(cases)s        default: acc ^= v[j]; break;
        }
    }
    for (struct rec *p = list; p; p = p->next) {
        if (strcmp(p->name, "n%(i)d") == 0)
            p->w += helper_%(i)d(a, n, p->w);
        else
            p->id += (int)(acc & %(mask)d);
    }
    return (int)(acc + helper_%(i)d(a, n / 2, 0.5));
}
""" % dict(i=i, m=r.randint(2, 50), c=r.randint(0, 100), k=k, cases=cases,
           mask=r.randint(1, 255)))
    out.append("int (*table[])(int *, size_t, struct rec *, double *) = {%s};\n"
               % ", ".join("fn_%d" % i for i in range(functions)))
    return "".join(out)


PY_SNIPPETS = [
    "acc += len(str(n * 7919 + {k}).zfill(12))",
    "acc += sum(i * i for i in range(n % 50 + {k} % 7))",
    "acc += len(re.sub(r'[aeiou]', '-', 'benchmark %d text {k}' % n))",
    "acc += len(json.dumps({{'k': n, 'v': [n, {k}]}}))",
    "acc += int(math.sqrt(n + {k}) * 100)",
    "acc += len(sorted([(n * 31 + i * {k}) % 97 for i in range(40)]))",
    "acc += len({{i % 13: i for i in range(n % 30 + {k} % 5)}})",
    "acc += len(set(range(n % 40)) & set(range({k} % 9, 25)))",
    "acc += len(hashlib.sha256(b'%d-{k}' % n).hexdigest())",
    "acc += len(zlib.compress(b'abc{k}' * (n % 20 + 1)))",
    "acc += struct.unpack('<I', struct.pack('<I', (n * {k}) & 0xffffffff))[0] % 7",
    "acc += collections.Counter('mississippi%d{k}' % n).most_common(1)[0][1]",
    "acc += len(list(itertools.permutations(range(n % 4 + 2))))",
    "acc += int(fractions.Fraction(n + {k}, 7) * 3)",
    "acc += int(decimal.Decimal(n + {k}) / decimal.Decimal(3))",
    "acc += datetime.date(2020, 1, 1 + (n + {k}) % 28).toordinal() % 11",
    "acc += len(textwrap.wrap('lorem ipsum dolor sit amet {k} ' * 3, 20))",
    "acc += len(unicodedata.normalize('NFKD', 'caf\\u00e9 %d {k}' % n))",
    "acc += bisect.bisect(list(range(0, 100, 3)), (n + {k}) % 100)",
    "acc += heapq.nsmallest(3, [(n * i + {k}) % 101 for i in range(30)])[0]",
    "acc += len(f'{{n:08x}}{{n / 3:.3f}}{{n!r}}{k}')",
    "acc += len(bytes(range((n + {k}) % 50)).hex())",
    "acc += len(' '.join(w.capitalize() for w in 'alpha beta gamma {k}'.split()))",
    "acc += len(base64.b64encode(b'x' * ((n + {k}) % 30)))",
    "acc += len(str(2 ** ((n + {k}) % 200)))",
    "acc += len(repr([1.5 * i for i in range({k} % 10 + 3)]))",
    "acc += len(array.array('d', range((n + {k}) % 20)).tobytes())",
    "acc += len(urllib.parse.quote('a b&c=%d {k}' % n))",
    "acc += len(copy.deepcopy({{'a': [n, {{'b': {k}}}]}}))",
    "acc += len(pickle.dumps((n, 'x{k}', [n])))",
    "acc += int(statistics.mean([n, n + 1, n + {k}]))",
    "acc += len(string.Template('$a-$b').substitute(a=n, b={k}))",
    "acc += len(difflib.SequenceMatcher(None, 'abcd%d' % n, 'abed{k}').get_opcodes())",
]


def generate_python_script(functions, seed=11):
    """A large Python script: many functions, each a few snippets that use
    different parts of the interpreter and the standard library."""
    r = random.Random(seed)
    out = ['"""Generated by bench/bench.py: a large script for the exit-cost benchmark."""',
           "import array, base64, bisect, collections, copy, datetime, decimal, difflib",
           "import fractions, hashlib, heapq, itertools, json, math, pickle, re, statistics",
           "import string, struct, textwrap, unicodedata, urllib.parse, zlib", ""]
    for i in range(functions):
        out.append("def f%d(n):" % i)
        out.append("    acc = %d" % i)
        for snippet in r.sample(PY_SNIPPETS, 4):
            out.append("    " + snippet.format(k=r.randint(1, 999)))
        out.append("    return acc")
        out.append("")
    out.append("FUNCTIONS = [%s]" % ", ".join("f%d" % i for i in range(functions)))
    out += ["", "total = 0", "for n in range(6):", "    for f in FUNCTIONS:",
            "        total += f(n)", "print(total)",
            "# The harness times what comes after this line: the interpreter's and the",
            "# profiler's exit.",
            "import os, time",
            "with open(os.environ['BENCH_TAIL_OUTPUT'], 'w') as tail:",
            "    tail.write('%r %r\\n' % (time.process_time(), time.clock_gettime(time.CLOCK_MONOTONIC)))",
            ""]
    return "\n".join(out)


def generate_c_program(functions, rounds, seed=13):
    """A C program of many small functions in one file (one DWARF unit when
    built with -g), each run in turn, that writes its CPU and monotonic
    clocks to $BENCH_TAIL_OUTPUT as its last act: its samples land on
    addresses all over the unit, each of which the exit names."""
    r = random.Random(seed)
    out = ["/* Generated by bench/bench.py: the C program of the exit-cost benchmark. */",
           "#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>",
           "#include <time.h>", "", "volatile uint64_t sink;", ""]
    for i in range(functions):
        out.append("__attribute__((noinline)) static uint64_t f%d(uint64_t x)" % i)
        out.append("{")
        out.append("    for (int k = 0; k < %d; k++) {" % r.randint(1500, 2500))
        out.append("        x = x * %dull + %d;" % (r.randrange(3, 1 << 30, 2), i))
        out.append("        x ^= x >> %d;" % r.randint(7, 29))
        out.append("    }")
        out.append("    return x;")
        out.append("}")
        out.append("")
    out.append("static uint64_t (*const functions[])(uint64_t) = {%s};"
               % ", ".join("f%d" % i for i in range(functions)))
    out += ["", "static double seconds(clockid_t clock)", "{",
            "    struct timespec ts;", "    clock_gettime(clock, &ts);",
            "    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;", "}", "",
            "int main(void)", "{", "    uint64_t x = 1;",
            "    for (int round = 0; round < %d; round++)" % rounds,
            "        for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)",
            "            x = functions[i](x);",
            "    sink = x;",
            "    /* The harness times what comes after this: the profiler's exit. */",
            "    FILE *tail = fopen(getenv(\"BENCH_TAIL_OUTPUT\"), \"w\");",
            "    if (!tail)", "        return 1;",
            "    fprintf(tail, \"%.9f %.9f\\n\", seconds(CLOCK_PROCESS_CPUTIME_ID),",
            "            seconds(CLOCK_MONOTONIC));",
            "    return fclose(tail) != 0;", "}", ""]
    return "\n".join(out)


# --- Setup -----------------------------------------------------------------------------------

def run_quiet(cmd, **kwargs):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def apt_install(packages):
    """Installs Debian packages when possible (root, or sudo without a
    password). Returns True when they are installed afterwards."""
    if not shutil.which("apt-get"):
        return False
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages
    if run_quiet(cmd, env=env).returncode == 0:
        return True
    run_quiet(prefix + ["apt-get", "update", "-qq"], env=env)
    return run_quiet(cmd, env=env).returncode == 0


def install_tools(args):
    wanted = []
    if not shutil.which("xz"):
        wanted.append("xz-utils")
    if not shutil.which("gcc"):
        wanted.append("gcc")
    if not any(Path(p).exists() for p in GPERF_CANDIDATES):
        wanted += GPERF_PACKAGES
    if not shutil.which("perf"):
        wanted.append("linux-perf")
    if wanted and not args.no_install:
        log("installing: " + " ".join(wanted))
        if not apt_install(wanted):
            # One at a time, so that one missing package does not stop the others.
            for p in wanted:
                apt_install([p])


def build(args):
    """Builds sprof (scripts/build.sh) and the helpers, and snapshots the
    library and analyzer, so a rebuild by someone else mid-run cannot mix
    versions."""
    lib, analyzer = BUILD / "preload" / "libsprof.so", BUILD / "analyzer" / "sprof-analyze"
    if not args.no_build or not (lib.exists() and analyzer.exists()):
        if not (BUILD / "build.ninja").exists():
            subprocess.run([REPO / "scripts" / "install-deps.sh"], check=True)
        log("building sprof (scripts/build.sh)")
        subprocess.run([REPO / "scripts" / "build.sh"], check=True, stdout=subprocess.DEVNULL)
    BIN.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lib, BIN / "libsprof.so")
    # libsprof.so loads the library that names addresses from its own directory.
    shutil.copy2(lib.parent / "libsprof-names.so", BIN / "libsprof-names.so")
    shutil.copy2(analyzer, BIN / "sprof-analyze")
    cflags = ["-O2", "-g", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
    helpers = [
        (["gcc"] + cflags + ["-o", BIN / "measure", BENCH / "measure.c"]),
        (["gcc"] + cflags + ["-pthread", "-o", BIN / "stackload", BENCH / "stackload.c"]),
        (["gcc"] + cflags + ["-pthread", "-o", BIN / "threadstart", BENCH / "threadstart.c"]),
        (["gcc"] + cflags + ["-shared", "-fPIC", "-fvisibility=hidden", "-pthread", "-o",
                             BIN / "floor_preload.so", BENCH / "floor_preload.c", "-ldl"]),
        (["gcc"] + cflags + ["-I", REPO / "include", "-I", REPO / "common", "-o",
                             BIN / "gen_trace", BENCH / "gen_trace.c",
                             REPO / "common" / "trace_codec.c", REPO / "common" / "hash_map.c",
                             "-lm"]),
    ]
    for cmd in helpers:
        subprocess.run([str(c) for c in cmd], check=True)


def machine_description():
    model = "unknown CPU"
    virtual = False
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and " hypervisor" in line:
            virtual = True
    hz = None
    config_text = ""
    try:
        if Path("/proc/config.gz").exists():
            config_text = gzip.open("/proc/config.gz", "rt").read()
        elif Path("/boot/config-" + platform.release()).exists():
            config_text = Path("/boot/config-" + platform.release()).read_text()
    except OSError:
        pass
    found = re.search(r"^CONFIG_HZ=(\d+)", config_text, re.M)
    if found:
        hz = int(found.group(1))
    distro = ""
    if Path("/etc/os-release").exists():
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        distro = found.group(1) if found else ""
    try:
        paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    except OSError:
        paranoid = "?"
    return dict(model=model, cores=os.cpu_count(), kernel=platform.release(), hz=hz,
                distro=distro, virtual=virtual, paranoid=paranoid, root=os.geteuid() == 0)


def sprof_revision():
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"
    status = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", ".",
                             ":!bench", ":!README.md"], capture_output=True, text=True).stdout
    return head + (" with uncommitted changes" if status.strip() else "")


def render(harness, machine, started, elapsed, load_start, load_end, revision):
    m = machine
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    kind = "virtual machine" if m["virtual"] else "machine"
    hz = "HZ=%d" % m["hz"] if m["hz"] else "HZ unknown"
    kernel_time = "perf_event_paranoid=%s%s; sprof and the floor sample user time only (sprof's " \
        "default, SPROF_KERNEL=0) unless said" % (m["paranoid"], ", run as root" if m["root"] else "")
    out = [
        "Written by `bench/run.sh%s` on %s (%s mode, %.1f minutes) for sprof %s, on a %s: %s, "
        "%d cores, %s, Linux %s, %s; %s. Load average %.2f at the start and %.2f at the end: "
        "other work shared the machine, which is why every figure is a median of interleaved "
        "runs and every ratio is against a baseline from the same round."
        % ("" if harness.mode.name == "full" else " --" + harness.mode.name, when,
           harness.mode.name, elapsed / 60, revision, kind, m["model"], m["cores"],
           m["distro"] or "Linux", m["kernel"], hz, kernel_time, load_start, load_end),
        ""]
    for section in harness.sections:
        out += section.render(harness.facts)
    if harness.notes:
        out += ["Notes:", ""] + ["- " + n for n in harness.notes] + [""]
    if harness.problems:
        out += ["**Broken results:**", ""] + ["- " + p for p in harness.problems] + [""]
    return out


def rewrite_readme(lines):
    text = README.read_text()
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        log("README.md has no benchmark markers: not rewritten")
        return False
    start_line_end = text.index("\n", start) + 1
    body = "\n".join(lines).rstrip("\n") + "\n"
    README.write_text(text[:start_line_end] + body + text[end:])
    return True


def main():
    parser = argparse.ArgumentParser(description="sprof's benchmark harness (issue 6).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer, shorter runs (~3 minutes)")
    group.add_argument("--long", action="store_true",
                       help="the issue's sizes: xz on 50 MB, a 1500-function C file (~1 hour)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README.md")
    parser.add_argument("--no-install", action="store_true", help="never call apt-get")
    parser.add_argument("--no-build", action="store_true",
                        help="use build/ as it is (still built when missing)")
    parser.add_argument("--only", default="1,2,3,4,5,6",
                        help="comma-separated benchmarks to run (no README rewrite unless all)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic trace")
    args = parser.parse_args()
    mode = MODES["quick" if args.quick else "long" if args.long else "full"]
    only = {int(x) for x in args.only.split(",") if x.strip()}

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    install_tools(args)
    build(args)
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    revision = sprof_revision()

    h = Harness(mode, args)
    h.prepare_inputs()
    h.calibrate_stackload()
    steps = {1: h.bench_cost, 2: h.bench_completeness, 3: h.bench_real, 4: h.bench_growth,
             5: h.bench_start_exit, 6: h.bench_analyzer}
    for number in sorted(only):
        steps[number]()

    elapsed = time.monotonic() - t0
    lines = render(h, h.machine, started, elapsed, load_start, os.getloadavg()[0], revision)
    text = "\n".join(lines)
    print(text)
    (WORK / "report.md").write_text(text + "\n")
    (WORK / "results.json").write_text(json.dumps(h.raw, indent=1, default=str) + "\n")
    if h.problems:
        log("%d broken result(s): README.md not rewritten; the report is in %s"
            % (len(h.problems), WORK / "report.md"))
        return 1
    if args.no_readme or only != set(steps):
        log("README.md not rewritten (%s)" % ("--no-readme" if args.no_readme else "--only"))
    elif rewrite_readme(lines):
        log("README.md's benchmark section rewritten")
    shutil.rmtree(RUNS, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
