"""Benchmark `tf-migrate verify`: wall time and peak RSS for 1 and 10 models.

    .venv/bin/python benchmarks/bench_verify.py [--models 1,10] [--steps 20] [--json FILE]

Each run verifies N copies of fixtures/verify/cnn_update_ops (old.py/new.py) in one
`python -m migrate.verify OLD_DIR NEW_DIR` process, so all models share one process per
side. Peak RSS is the largest single process (parent or worker; ru_maxrss of children).
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
        proc = subprocess.run([sys.executable, "-m", "migrate.verify",
                               os.path.join(base, "old"), os.path.join(base, "new"),
                               "--steps", str(steps)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        wall = time.time() - t0
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        m = re.search(r"old side ([\d.]+) s.*new side ([\d.]+) s", proc.stdout)
        return {"models": n, "steps": steps, "exit_code": proc.returncode,
                "wall_s": round(wall, 2),
                "old_side_s": float(m.group(1)) if m else None,
                "new_side_s": float(m.group(2)) if m else None,
                "peak_rss_mib": round(rss_kib / 1024.0, 1)}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="1,10")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = [bench(int(n), args.steps) for n in args.models.split(",")]
    print("%7s %6s %5s %8s %10s %10s %13s" % ("models", "steps", "exit", "wall s",
                                              "old side s", "new side s", "peak RSS MiB"))
    for r in rows:
        print("%7d %6d %5d %8.2f %10s %10s %13.1f" % (
            r["models"], r["steps"], r["exit_code"], r["wall_s"], r["old_side_s"],
            r["new_side_s"], r["peak_rss_mib"]))
    if len(rows) > 1 and rows[0]["models"] != rows[-1]["models"]:
        extra = (rows[-1]["wall_s"] - rows[0]["wall_s"]) / (rows[-1]["models"] - rows[0]["models"])
        print("marginal cost per extra model: %.2f s" % extra)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
