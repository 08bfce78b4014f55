"""Helpers for the convert-checkpoint tests: TF1 checkpoints made by training real programs
in the legacy subprocess, TF1 and TF2 resumes, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from migrate.verify import discover, protocol, runner

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "checkpoint"
SHARED_TF1 = REPO.parent / "shared" / "acceptance" / "tf1"


def plan(mid, old, new):
    models, problems = discover.plan(str(old), str(new))
    assert not problems, problems
    m = models[0]
    m["id"] = mid
    return m


def tf1_job(workdir, models, **extra):
    """Run the TF1 worker once for several programs; returns {id: meta}."""
    job = {"workdir": str(workdir), "models": models, "seed": 0, "batch_size": 8}
    job.update(extra)
    path = os.path.join(str(workdir), "tf1job_%d.json" % len(os.listdir(str(workdir))))
    protocol.save_json(path, job)
    proc = subprocess.run([sys.executable, "-m", "migrate.checkpoint.tf1_worker", path],
                          env=runner.side_env("old", "cpu"), capture_output=True, text=True,
                          timeout=600)
    out = {}
    for m in models:
        meta_path = os.path.join(str(workdir), "%s.tf1.json" % m["id"])
        assert os.path.isfile(meta_path), proc.stderr[-3000:]
        out[m["id"]] = protocol.load_json(meta_path)
        assert "error" not in out[m["id"]], out[m["id"]]["error"]
    return out


def train_checkpoints(workdir, models, steps=3):
    """Train each program `steps` seeded steps in the legacy process and save with
    tf.compat.v1.train.Saver; returns {id: checkpoint prefix}."""
    metas = tf1_job(workdir, models, train_save={"steps": steps, "dir": str(workdir)})
    return {mid: meta["checkpoint"] for mid, meta in metas.items()}


def tf2_resume(workdir, runs):
    job = {"runs": runs, "out": os.path.join(str(workdir), "tf2_resume.out.json")}
    path = os.path.join(str(workdir), "tf2_resume.json")
    protocol.save_json(path, job)
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("tf2_resume.py")),
                           path], env=runner.side_env("new", "cpu"), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    with open(job["out"]) as f:
        return json.load(f)


def convert_cli(*args, timeout=600):
    """`python -m migrate.checkpoint ARGS` as a user runs it; returns CompletedProcess (text)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "migrate.checkpoint", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)
