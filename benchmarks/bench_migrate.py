#!/usr/bin/env python
"""Benchmark tf-migrate against tf_upgrade_v2 on real trees (issue 7). Not a test.

On the same trees in one run: wall time and lines/s of

  * `tf-migrate check TREE` and `tf-migrate apply TREE --out DIR`, at `-j 1` and `-j <cores>`
    (real CLI subprocesses, so start-up is included, as a user sees it);
  * `tf_upgrade_v2 --intree TREE --outtree DIR` (ships inside the installed tensorflow);
  * the floor, in process, on the same files already read into memory:
    bare `libcst.parse_module(text).code` and `ast.parse(text)`.

Trees are read-only corpora found with importlib (never copied into the repository):
the `tensorflow` package's own Python sources and the `tf_slim` package. With
`--max-files N` a deterministic sample of N files per corpus (every k-th file of
the sorted list) is copied into a temporary directory so that every tool sees the
same, smaller tree. Targets (issue 7, measured at -j 1 against tf_upgrade_v2):
check >= 10x faster, apply >= 2x faster. Also, in a fresh process on the files `apply`
changes: tf-migrate's rewrite of them against libcst parse + the metadata the rewrites use
(positions) + `.code` + the name resolution they use (tf-migrate's, on `ast`): <= 2x; and the
peak RSS of each `apply -j N` worker (sampled from /proc), against a fixed bound.

    python benchmarks/bench_migrate.py                         # tf_slim + 300 tensorflow files
    python benchmarks/bench_migrate.py --max-files 0           # whole trees (tensorflow: minutes)
    python benchmarks/bench_migrate.py --corpus tf_slim --json out.json
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parent.parent
CHECK_TARGET = 10.0
APPLY_TARGET = 2.0
CHANGED_FILES_TARGET = 2.0  # rewrite of the changed files / their libcst + names floor
# Per-worker peak RSS: a worker holds one file's trees at a time plus the cross-file index, so
# its peak follows the largest file, not the size of the tree. Measured 45-65 MB on tf_slim
# (largest file 277 KB); 256 MB leaves room for larger files and is under half of what
# tf_upgrade_v2 holds before its first file (~540 MB, `import tensorflow`).
WORKER_RSS_BOUND_MB = 256.0
TEST_RULES = "tests.support.rewrite_rules"


@dataclass
class Measure:
    tool: str
    seconds: float
    lines_per_s: float
    rc: Optional[int] = None
    peak_rss_mb: Optional[float] = None
    note: str = ""
    cpu_seconds: Optional[float] = None  # user + sys of the process and its workers


@dataclass
class CorpusResult:
    corpus: str
    source: str
    files: int
    lines: int
    bytes: int
    measures: List[Measure] = field(default_factory=list)
    ratios: dict = field(default_factory=dict)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates without importing (tensorflow is slow)
    if spec is None or not spec.origin:
        raise SystemExit(f"{name} is not installed in this environment ({sys.executable})")
    return Path(spec.origin).parent


def python_files(root: Path) -> List[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return found


def prepare_tree(name: str, max_files: int, work: Path):
    """The tree every tool runs on: the package itself, or a sampled copy under `work`."""
    root = package_dir(name)
    files = python_files(root)
    if max_files and len(files) > max_files:
        step = len(files) / max_files
        files = [files[int(i * step)] for i in range(max_files)]
        tree = work / f"{name}-sample"
        for path in files:
            dest = tree / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        files = [tree / p.relative_to(root) for p in files]
        return tree, files, f"{len(files)}-file sample of {root}"
    return root, files, str(root)


def timed(cmd, env=None, cwd=None, children_peaks=None):
    """Run `cmd`; wall seconds, exit code, peak RSS (MB) of the largest process it waited
    for, stderr, and CPU seconds (user + sys, its waited-for workers included).

    CPU time is what a quiet machine's wall time would be for a one-process run; on this
    shared 2-core machine wall times vary ~2x with the load, CPU times much less.

    Linux carries the parent's RSS high-water mark into a child across fork/exec, so
    this process stays small (the floor runs in a child) and the tf-migrate start-up
    row shows the baseline. With a dict as `children_peaks`, the direct children of the
    process (the worker pool) are sampled from /proc every 50 ms and their peak RSS (VmHWM,
    MB) recorded by pid; the sampling costs CPU, so timed measures leave it off.
    """
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    stderr_chunks = []
    # Drain stderr in the background so a chatty tool cannot block on a full pipe.
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    done = threading.Event()
    sampler = None
    if children_peaks is not None:
        sampler = threading.Thread(target=_sample_children, args=(proc.pid, children_peaks, done),
                                   daemon=True)
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    reader.join()
    if sampler is not None:
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, proc.returncode, rss_kb / 1024.0, b"".join(stderr_chunks), cpu


def _sample_children(pid: int, peaks: dict, done) -> None:
    """VmHWM (peak RSS) of each direct child of `pid`, until `done`; monotonic, keep the last."""
    while not done.wait(0.05):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue  # exited between the two reads
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(child)] = max(peaks.get(int(child), 0.0), int(line.split()[1]) / 1024.0)


def cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def floor_measures(files: List[Path], lines: int, work: Path) -> List[Measure]:
    """ast and libcst on the same files, in a fresh process (keeps this one small, see timed)."""
    listing = work / "floor-files.txt"
    listing.write_text("\n".join(map(str, files)))
    proc = subprocess.run([sys.executable, __file__, "--floor", str(listing)], capture_output=True,
                          text=True, env=cli_env())
    if proc.returncode != 0:
        raise SystemExit(f"floor measurement failed:\n{proc.stderr}")
    out = []
    for tool, seconds, failed in json.loads(proc.stdout):
        out.append(Measure(tool, seconds, lines / seconds,
                           note=f"{failed} files did not parse" if failed else ""))
    return out


def _floor_child(listing: Path) -> None:
    import libcst

    texts = []
    for name in listing.read_text().splitlines():
        try:
            texts.append(Path(name).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            pass
    results = []
    for tool, work in (("ast.parse (floor)", ast.parse),
                       ("libcst.parse_module + .code (floor)", lambda t: libcst.parse_module(t).code)):
        failed = 0
        start = time.perf_counter()
        for text in texts:
            try:
                work(text)
            except Exception:
                failed += 1
        results.append((tool, time.perf_counter() - start, failed))
    print(json.dumps(results))


def changed_files_measures(tree: Path, work: Path, repeat: int, profile: bool) -> dict:
    """tf-migrate's rewrite of the files `apply` changes against their libcst + names floor."""
    cmd = [sys.executable, __file__, "--rewrite-cost", str(tree), "--repeat", str(repeat)]
    if profile:
        cmd.append("--profile")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), cwd=work)
    if proc.returncode != 0:
        raise SystemExit(f"changed-files measurement failed:\n{proc.stderr}")
    if profile:
        print(proc.stderr, end="")
    return json.loads(proc.stdout)


def _rewrite_cost_child(tree: Path, repeat: int, profile: bool) -> None:
    """In a fresh process: find the files `apply` changes (one untimed pass over the tree,
    which also imports everything), then time, best of `repeat`, on those files only:

    * tf-migrate: `pipeline.migrate_source` as a worker runs it for `apply` (decode, `ast`
      findings, libcst parse, the rewrites, `.code`, the output re-parse), with the tree's
      cross-file index built beforehand as the runner does (its time reported apart);
    * the floor: `libcst.parse_module`, `MetadataWrapper.resolve(PositionProvider)` (the only
      libcst metadata the rewrites use), `.code`, plus the name resolution they use:
      `ast.parse` and tf-migrate's import resolver over every reference
      (`ModuleContext(...).references`; libcst's QualifiedNameProvider is never used).
    """
    import libcst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from migrate import discovery, rules as registry, tree_index
    from migrate.context import ModuleContext
    from migrate.pipeline import Options, migrate_source

    targets = [t for t in discovery.discover([str(tree)], with_mirror=True)
               if t.kind == discovery.PYTHON]
    options = Options(rewrite=True)
    start = time.perf_counter()
    options.tree_index = tree_index.build_index(targets, options)
    index_seconds = time.perf_counter() - start
    rules = registry.select_rules()
    items = []
    for target in targets:
        raw = Path(target.path).read_bytes()
        items.append((raw, target.display, options.tree_index.module_of(str(target.path))))
    changed = [item for item in items if migrate_source(item[0], item[1], rules, options, item[2]).changed]
    texts = [raw.decode("utf-8") for raw, _, _ in changed]
    lines = sum(text.count("\n") for text in texts)

    def rewrite_all():
        for raw, display, module_name in changed:
            migrate_source(raw, display, rules, options, module_name)

    def bare_floor():
        for text in texts:
            libcst.parse_module(text).code

    def floor():
        for display, text in zip((d for _, d, _ in changed), texts):
            module = libcst.parse_module(text)
            MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
            module.code
            ModuleContext(display, text, ast.parse(text)).references

    def best(work_fn):
        times = []
        for _ in range(max(repeat, 1)):
            start = time.perf_counter()
            work_fn()
            times.append(time.perf_counter() - start)
        return min(times)

    result = {"files": len(changed), "lines": lines, "index_seconds": index_seconds,
              "rewrite_seconds": best(rewrite_all), "floor_seconds": best(floor),
              "bare_floor_seconds": best(bare_floor)}
    if profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(rewrite_all)
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
            print(f"-- cProfile of the rewrite of the changed files, by {order}", file=sys.stderr)
            print(out.getvalue(), file=sys.stderr)
    print(json.dumps(result))


def bench_corpus(name: str, args, work: Path) -> CorpusResult:
    tree, files, source = prepare_tree(name, args.max_files, work)
    lines = size = 0
    for path in files:
        data = path.read_bytes()
        lines += data.count(b"\n")
        size += len(data)
    result = CorpusResult(name, source, len(files), lines, size)
    env = cli_env()
    tfm = [sys.executable, "-m", "migrate"]
    extra = ["--rules-module", TEST_RULES] if args.test_rules else []
    largest = max((path.stat().st_size for path in files), default=0)
    print(f"\n== {name}: {source}: {len(files)} files, {lines} lines, largest file "
          f"{largest / 1024:.0f} KB", flush=True)

    def record(measure: Measure):
        result.measures.append(measure)
        print(f"  {measure.tool:<42} {measure.seconds:8.2f} s {measure.lines_per_s:10.0f} lines/s"
              + (f"  rc={measure.rc}" if measure.rc is not None else "")
              + (f"  peak {measure.peak_rss_mb:.0f} MB" if measure.peak_rss_mb else "")
              + (f"  cpu {measure.cpu_seconds:.2f} s" if measure.cpu_seconds is not None else "")
              + (f"  ({measure.note})" if measure.note else ""), flush=True)

    best = {}
    best_cpu = {}
    for jobs in args.jobs:
        for command in ("check", "apply"):
            times = []
            for rep in range(args.repeat):
                cmd = tfm + [command, str(tree), "-j", str(jobs), "-q", *extra]
                if command == "apply":
                    out = work / f"{name}-tfm-out-{jobs}-{rep}"
                    cmd += ["--out", str(out)]
                seconds, rc, rss, err, cpu = timed(cmd, env=env)
                crashes = err.count(b"internal error")
                errors = sum(1 for line in err.splitlines() if b": error: " in line)
                times.append((seconds, rc, rss, f"{errors} file errors, {crashes} internal errors", cpu))
                if command == "apply":
                    shutil.rmtree(out, ignore_errors=True)
            seconds, rc, rss, note, _ = min(times)
            cpu = min(t[4] for t in times)
            tool = f"tf-migrate {command}{' --out' if command == 'apply' else ''} -j {jobs}"
            best[(command, jobs)] = seconds
            best_cpu[(command, jobs)] = cpu
            record(Measure(tool, seconds, lines / seconds, rc, rss, note, cpu))

    upgrade = None  # tf_upgrade_v2's lines/s, over the files it really converted
    upgrade_startup = 0.0
    if not args.no_upgrade:
        out = work / f"{name}-upgrade-out"
        report = work / f"{name}-upgrade-report.txt"
        cmd = [sys.executable, "-m", "tensorflow.tools.compatibility.tf_upgrade_v2_main",
               "--intree", str(tree), "--outtree", str(out), "--reportfile", str(report)]
        # Best of --repeat, like the tf-migrate rows (the output of the last run is inspected).
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            runs.append(timed(cmd, env=env, cwd=work))
        seconds = min(run[0] for run in runs)
        upgrade_cpu = min(run[4] for run in runs)
        _, rc, rss, err, _ = runs[-1]
        written = [p.relative_to(out) for p in python_files(out)] if out.exists() else []
        # An abort leaves the file it died on written empty (or not at all): count only the
        # files whose output is non-empty or whose input was empty.
        done_lines = 0
        done = 0
        for rel in written:
            src = (tree / rel).read_bytes()
            if (out / rel).stat().st_size or not src:
                done += 1
                done_lines += src.count(b"\n")
        note = f"{done}/{len(files)} .py files converted"
        if rc != 0:
            last = [l for l in err.decode(errors="replace").splitlines() if l.strip()][-1:]
            note += (f"; ABORTED the tree (pasta crash: {last[0][:80] if last else '?'}); "
                     "lines/s counts converted files only")
        upgrade = done_lines / seconds
        upgrade_per_cpu = done_lines / upgrade_cpu
        record(Measure("tf_upgrade_v2 --intree/--outtree", seconds, upgrade, rc, rss, note, upgrade_cpu))
        upgrade_complete = rc == 0
        shutil.rmtree(out, ignore_errors=True)
        # Python start-up + `import tensorflow` is part of what a user waits for; show it apart.
        upgrade_startup, rc, rss, _, startup_cpu = timed(
            [sys.executable, "-c", "import tensorflow.tools.compatibility.tf_upgrade_v2"], env=env)
        record(Measure("  (of which start-up + import tensorflow)", upgrade_startup, 0.0, rc, rss,
                       cpu_seconds=startup_cpu))
        upgrade_work = max(seconds - upgrade_startup, 1e-9)
    tfm_startup, rc, rss, _, tfm_startup_cpu = timed(tfm + ["--version"], env=env)
    record(Measure("  (tf-migrate start-up alone)", tfm_startup, 0.0, rc, rss,
                   cpu_seconds=tfm_startup_cpu))

    for measure in floor_measures(files, lines, work):
        record(measure)

    # Peak RSS per worker: one more `apply -j N` run (N = the largest -j), its pool sampled.
    pool_jobs = max(args.jobs)
    worker_peak = None
    if pool_jobs > 1:
        peaks = {}
        out = work / f"{name}-tfm-out-memory"
        _, rc, rss, _, _ = timed(tfm + ["apply", str(tree), "-j", str(pool_jobs), "-q", *extra,
                                     "--out", str(out)], env=env, children_peaks=peaks)
        shutil.rmtree(out, ignore_errors=True)
        if peaks:
            worker_peak = max(peaks.values())
            record(Measure(f"  (apply -j {pool_jobs}: peak RSS per worker)", 0.0, 0.0, rc, worker_peak,
                           f"{len(peaks)} workers: "
                           + ", ".join(f"{mb:.0f}" for mb in sorted(peaks.values())) + " MB"))
    # At -j 1 the one process does a worker's work (and the parent's): its peak bounds a worker's.
    single = next(m for m in result.measures if m.tool == "tf-migrate apply --out -j 1") \
        if 1 in args.jobs else None
    if single is not None:
        worker_peak = max(worker_peak or 0.0, single.peak_rss_mb or 0.0)
    if worker_peak is not None:
        result.ratios["peak RSS per worker (MB)"] = worker_peak

    changed = changed_files_measures(tree, work, args.repeat, args.profile_rewrite)
    print(f"  changed files: {changed['files']} files, {changed['lines']} lines "
          f"(cross-file index of the tree: {changed['index_seconds']:.2f} s, not counted below)")
    if changed["files"]:
        for tool, key in (("tf-migrate rewrite (changed files)", "rewrite_seconds"),
                          ("libcst+positions+code+names (floor)", "floor_seconds"),
                          ("libcst parse+code (bare floor)", "bare_floor_seconds")):
            record(Measure(f"  {tool}", changed[key], changed["lines"] / changed[key]))
        result.ratios["changed files: rewrite / (libcst + positions + names) floor"] = (
            changed["rewrite_seconds"] / changed["floor_seconds"])
        result.ratios["changed files: rewrite / bare libcst floor"] = (
            changed["rewrite_seconds"] / changed["bare_floor_seconds"])

    if upgrade:
        bound = "" if upgrade_complete else " (tf_upgrade_v2 aborted: lines/s ratio)"
        for jobs in args.jobs:
            for command in ("check", "apply"):
                ours = lines / best[(command, jobs)]
                result.ratios[f"{command} -j {jobs}: tf_upgrade_v2 / tf-migrate{bound}"] = ours / upgrade
                if jobs == 1:
                    result.ratios[f"{command} -j 1, CPU time: tf_upgrade_v2 / tf-migrate{bound}"] = (
                        lines / best_cpu[(command, jobs)]) / upgrade_per_cpu
                if upgrade_complete:
                    result.ratios[f"{command} -j {jobs}, start-up excluded"] = upgrade_work / max(
                        best[(command, jobs)] - tfm_startup, 1e-9)
    floor = {m.tool: m.seconds for m in result.measures}
    libcst_floor = floor["libcst.parse_module + .code (floor)"]
    for jobs in args.jobs:
        result.ratios[f"apply -j {jobs} time / libcst floor"] = best[("apply", jobs)] / libcst_floor
        result.ratios[f"check -j {jobs} time / ast floor"] = best[("check", jobs)] / floor["ast.parse (floor)"]
    print("  ratios:")
    for key, value in result.ratios.items():
        verdict = ""
        if key.startswith("check -j 1: tf_upgrade_v2"):
            verdict = "  target >= 10x: " + ("met" if value >= CHECK_TARGET else "NOT met")
        elif key.startswith("check -j 1, CPU time: tf_upgrade_v2"):
            verdict = "  target >= 10x: " + ("met" if value >= CHECK_TARGET else "NOT met")
        elif key.startswith("apply -j 1, CPU time: tf_upgrade_v2"):
            verdict = "  target >= 2x: " + ("met" if value >= APPLY_TARGET else "NOT met")
        elif key.startswith("apply -j 1: tf_upgrade_v2"):
            verdict = "  target >= 2x: " + ("met" if value >= APPLY_TARGET else "NOT met")
        elif key.startswith("changed files: rewrite / (libcst"):
            verdict = "  target <= 2x: " + ("met" if value <= CHANGED_FILES_TARGET else "NOT met")
        if key == "peak RSS per worker (MB)":
            print(f"    {key:<60} {value:7.0f}  bound <= {WORKER_RSS_BOUND_MB:.0f} MB: "
                  + ("met" if value <= WORKER_RSS_BOUND_MB else "NOT met"))
            continue
        print(f"    {key:<60} {value:7.2f}x{verdict}")
    return result


def main(argv=None) -> int:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", choices=["tensorflow", "tf_slim"],
                        help="corpus to run (repeatable; default: both)")
    parser.add_argument("--max-files", type=int, default=300,
                        help="sample at most N files per corpus (0: whole tree; default 300)")
    parser.add_argument("--jobs", type=lambda s: [int(j) for j in s.split(",")],
                        default=sorted({1, cores}), help=f"comma-separated -j values (default 1,{cores})")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per measure, tf_upgrade_v2 included (best kept)")
    parser.add_argument("--no-upgrade", action="store_true", help="skip tf_upgrade_v2")
    parser.add_argument("--test-rules", action="store_true",
                        help=f"also load {TEST_RULES} (TFMT01 rewrites tf.layers.batch_normalization)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--profile-rewrite", action="store_true",
                        help="print a cProfile of the rewrite of the changed files")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # internal: child mode
    parser.add_argument("--rewrite-cost", type=Path, help=argparse.SUPPRESS)  # internal: child mode
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)  # with --rewrite-cost
    args = parser.parse_args(argv)
    if args.floor:
        _floor_child(args.floor)
        return 0
    if args.rewrite_cost:
        _rewrite_cost_child(args.rewrite_cost, args.repeat, args.profile)
        return 0
    corpora = args.corpus or ["tf_slim", "tensorflow"]
    print(f"machine: {platform.machine()}, {cores} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="tf-migrate-bench-") as tmp:
        for name in corpora:
            results.append(bench_corpus(name, args, Path(tmp)))
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "python": platform.python_version(),
                                         "results": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
