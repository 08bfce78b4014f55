"""Helpers for the verify tests (a uniquely named module: `conftest` names clash): fixture trees, CLI runs, the shared/ checkout.

Runs are expensive (two TensorFlow processes, ~3-6 s each), so every test module makes
one verify run over a directory tree holding all its cases (one process per side) in
a module-scoped fixture, and its tests read that run's JSON report.
"""
import json
import os
import shutil
import subprocess
import sys

from click.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures", "verify")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


def make_tree(base, cases):
    """cases: {name: (old file, new file)} -> (old dir, new dir) with name.py in each."""
    old_dir, new_dir = os.path.join(base, "old"), os.path.join(base, "new")
    os.makedirs(old_dir)
    os.makedirs(new_dir)
    for name, (old, new) in cases.items():
        shutil.copy(old, os.path.join(old_dir, name + ".py"))
        shutil.copy(new, os.path.join(new_dir, name + ".py"))
    return old_dir, new_dir


class Run(object):
    def __init__(self, code, stdout, stderr, report_path=None):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.report = None
        if report_path and os.path.exists(report_path):
            with open(report_path) as f:
                self.report = json.load(f)
        self.models = {m["model"]: m for m in (self.report or {}).get("models", [])}

    def __repr__(self):
        return "Run(code=%r)\n--stdout--\n%s\n--stderr--\n%s" % (
            self.code, self.stdout[-6000:], self.stderr[-3000:])


def run_cli(args, report_path=None):
    """Invoke the click command object in-process (workers are real subprocesses)."""
    from migrate.verify.command import verify
    runner = CliRunner()
    try:
        result = runner.invoke(verify, list(args), catch_exceptions=False)
        stderr = result.stderr
    except TypeError:  # pragma: no cover - older click
        result = runner.invoke(verify, list(args), catch_exceptions=False)
        stderr = ""
    return Run(result.exit_code, result.stdout, stderr, report_path)


def run_module(args, report_path=None, timeout=600):
    """Run `python -m migrate.verify` as a separate process."""
    proc = subprocess.run([sys.executable, "-m", "migrate.verify"] + list(args), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, report_path)


def tensor_rows(model, status=None):
    return [t for t in model["tensors"] if status is None or t["status"] == status]

