"""Helpers defined in one module and used from another of the same tree (ops.py / model.py)."""

import filecmp
import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, cli_env, run_cli

BEFORE = FIXTURES / "rewrite_tree" / "before"
AFTER = FIXTURES / "rewrite_tree" / "after"


def tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_tree_migrates_to_the_golden_tree(tmp_path, jobs):
    out = tmp_path / "out"
    result = run_cli("apply", BEFORE, "--out", out, "-j", jobs)
    assert result.returncode == 0, result.stderr
    assert tree_bytes(out) == tree_bytes(AFTER)


def test_callers_in_another_module_use_the_helper_classes():
    model = (AFTER / "net" / "model.py").read_text()
    assert "from net.ops import ConvBnRelu" in model
    assert 'self.fc1 = ops.DenseBn(units=32, name="fc1")' in model
    assert "class ConvBnRelu(tf.keras.Model)" in (AFTER / "net" / "ops.py").read_text()


def test_second_run_changes_nothing():
    result = run_cli("diff", AFTER)
    assert result.returncode == 0, result.stdout.decode()


def test_single_file_without_its_tree_leaves_the_caller_marked():
    result = run_cli("apply", "-", input=(BEFORE / "net" / "model.py").read_bytes())
    assert result.returncode == 1  # the helpers are unknown: nothing half-converted
    assert b"def model(images, is_training):" in result.stdout


@pytest.mark.tf
def test_migrated_tree_builds_under_tf2():
    pytest.importorskip("tensorflow")
    env = cli_env(PYTHONPATH=str(AFTER), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    code = ("import numpy as np, tensorflow as tf\nfrom net.model import Model\n"
            "m = Model()\ny = m(np.zeros((2, 8, 8, 3), 'float32'), training=True)\n"
            "assert y.shape == (2, 10), y.shape\nprint(len(m.weights))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # stem and conv2: conv kernel + 4 BN weights each; fc1: kernel + 4; logits: kernel + bias.
    assert int(result.stdout.split()[-1]) == 17
