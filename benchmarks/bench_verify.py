"""Benchmark `tf-migrate verify`: wall time and peak RSS for 1 and 10 models.

    .venv/bin/python benchmarks/bench_verify.py [--models 1,10] [--steps 20] [--repeat N]
                                                [--json FILE]

Each run verifies N copies of fixtures/verify/cnn_update_ops (old.py/new.py) in one
`python -m migrate.verify OLD_DIR NEW_DIR` process, so all models share one process per
side (and the two sides run at once, model by model). Peak RSS is the largest single
process (parent or worker; ru_maxrss of children, so a later row includes earlier ones).
Per model, from the workers' own records: the old side's seconds (build + drive) and the
new side's seconds and CPU seconds (all variants), averaged over the models after the
first (the first pays the warm-up), i.e. what an extra model costs each side.
With --repeat N each row is run N times and the least disturbed run (lowest wall time) is
kept: on a shared machine the others only add what other work took.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = os.path.join(ROOT, "fixtures", "verify", "cnn_update_ops")


def bench(n, steps):
    base = tempfile.mkdtemp(prefix="bench-verify-")
    try:
        for side in ("old", "new"):
            os.makedirs(os.path.join(base, side))
            for i in range(n):
                shutil.copy(os.path.join(PAIR, side + ".py"),
                            os.path.join(base, side, "m%02d.py" % i))
        t0 = time.time()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "migrate.verify",
                               os.path.join(base, "old"), os.path.join(base, "new"),
                               "--steps", str(steps), "--keep-workdir"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        m = re.search(r"old side ([\d.]+) s.*new side ([\d.]+) s", proc.stdout)
        kept = re.search(r"work directory kept: (\S+)", proc.stdout)
        per_model = _per_model(kept.group(1)) if kept else {}
        if kept:
            shutil.rmtree(kept.group(1), ignore_errors=True)
        return dict({"models": n, "steps": steps, "exit_code": proc.returncode,
                     "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "old_side_s": float(m.group(1)) if m else None,
                     "new_side_s": float(m.group(2)) if m else None,
                     "peak_rss_mib": round(rss_kib / 1024.0, 1)}, **per_model)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _per_model(workdir):
    """Mean per-model cost of each side after the first model, from the worker records."""
    old, old_cpu, new, cpu = [], [], [], []
    for i in range(1, 1000):
        base = os.path.join(workdir, "cpu", "m%02d" % i)
        if not os.path.exists(base + ".new.json"):
            break
        with open(base + ".old.json") as f:
            meta = json.load(f)
        old.append(meta.get("timing_s") or 0.0)
        old_cpu.append(meta.get("cpu_s") or 0.0)
        with open(base + ".new.json") as f:
            meta = json.load(f)
        new.append(meta.get("timing_s") or 0.0)
        cpu.append(sum(v.get("cpu_s", 0.0) for v in meta.get("variants", [])))
    if not new:
        return {}
    mean = lambda xs: round(sum(xs) / len(xs), 2)  # noqa: E731
    return {"old_per_model_s": mean(old), "old_per_model_cpu_s": mean(old_cpu),
            "new_per_model_s": mean(new),
            "new_per_model_cpu_s": mean(cpu)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="1,10")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per row; the one with the lowest wall time is reported")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for n in args.models.split(","):
        runs = [bench(int(n), args.steps) for _ in range(max(1, args.repeat))]
        rows.append(min(runs, key=lambda r: r["wall_s"]))
    print("%7s %6s %5s %8s %8s %10s %10s %13s %12s %12s" % (
        "models", "steps", "exit", "wall s", "CPU s", "old side s", "new side s",
        "peak RSS MiB", "old/model s", "new/model s"))
    for r in rows:
        print("%7d %6d %5d %8.2f %8.2f %10s %10s %13.1f %12s %12s" % (
            r["models"], r["steps"], r["exit_code"], r["wall_s"], r["cpu_s"], r["old_side_s"],
            r["new_side_s"], r["peak_rss_mib"],
            "%s (%s cpu)" % (r.get("old_per_model_s", "-"), r.get("old_per_model_cpu_s", "-")),
            "%s (%s cpu)" % (r.get("new_per_model_s", "-"), r.get("new_per_model_cpu_s", "-"))))
    if len(rows) > 1 and rows[0]["models"] != rows[-1]["models"]:
        extra = (rows[-1]["wall_s"] - rows[0]["wall_s"]) / (rows[-1]["models"] - rows[0]["models"])
        extra_cpu = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / (rows[-1]["models"]
                                                           - rows[0]["models"])
        print("marginal cost per extra model: %.2f s wall, %.2f s CPU (all processes; "
              "CPU does not depend on what else the machine runs)" % (extra, extra_cpu))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
