"""--save-golden/--golden, --spec and exit code 3 for an unverifiable model, --device."""
import os

import pytest

from migrate.verify.command import gpu_present
from verify_helpers import fixture, run_cli

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("golden") / "cnn.golden.npz")
    run = run_cli([fixture("cnn_update_ops", "old.py"), fixture("cnn_update_ops", "new.py"),
                   "--save-golden", path, "--steps", "8", "--device", "all"])
    return path, run


def test_save_golden_run_passes_and_says_no_gpu(golden):
    path, run = golden
    assert run.code == 0, run
    assert os.path.getsize(path) > 0
    if not gpu_present():  # with a GPU, --device all runs there too (tests/verify/test_gpu.py)
        assert "no GPU exists on this machine" in run.stdout


def test_golden_catches_a_bug_without_running_tf1(golden, tmp_path):
    path, _ = golden
    report = str(tmp_path / "r.json")
    run = run_cli([fixture("cnn_update_ops", "old.py"),
                   fixture("cnn_update_ops", "bugs", "adam_default_epsilon.py"),
                   "--golden", path, "--report", report], report_path=report)
    assert run.code == 1, run
    assert "(golden)" in run.stdout and "steps=8" in run.stdout
    (m,) = run.report["models"]
    assert m["status"] == "mismatch"


def test_golden_correct_pair_passes(golden):
    path, _ = golden
    run = run_cli([fixture("cnn_update_ops", "old.py"), fixture("cnn_update_ops", "new.py"),
                   "--golden", path])
    assert run.code == 0, run


def test_unknown_input_shape_exits_3_naming_input_and_fix(tmp_path):
    report = str(tmp_path / "r.json")
    run = run_cli([fixture("unverifiable", "old.py"), fixture("unverifiable", "new.py"),
                   "--report", report], report_path=report)
    assert run.code == 3, run
    (m,) = run.report["models"]
    assert m["status"] == "error"
    assert "images" in m["reason"] and "[model.inputs.images]" in m["reason"]


def test_spec_supplies_the_shape(tmp_path):
    run = run_cli([fixture("unverifiable", "old.py"), fixture("unverifiable", "new.py"),
                   "--spec", fixture("unverifiable", "spec.toml")])
    assert run.code == 0, run
    assert "[verify] unknown_size: PASS" in run.stdout and "steps=5" in run.stdout


def test_scalar_runtime_value_is_taken_from_what_the_program_fed(tmp_path):
    old, new = fixture("runtime_lr", "old.py"), fixture("runtime_lr", "new.py")
    report = str(tmp_path / "r.json")
    run = run_cli([old, new, "--report", report], report_path=report)
    assert run.code == 0, run
    (m,) = run.report["models"]
    assert any("learning_rate = 0.01" in n for n in m["notes"]), m["notes"]
    # a spec value wins over the fed one (and is then used on both sides)
    report = str(tmp_path / "r2.json")
    run = run_cli([old, new, "--spec", fixture("runtime_lr", "spec.toml"), "--report", report],
                  report_path=report)
    assert run.code == 0, run
    assert "[verify] runtime_lr: PASS" in run.stdout
    (m,) = run.report["models"]
    assert not any("taken from what the old program fed" in n for n in m["notes"])


def test_scalar_runtime_value_never_fed_needs_the_spec():
    old, new = fixture("runtime_lr", "old_never_fed.py"), fixture("runtime_lr", "new.py")
    run = run_cli([old, new])
    assert run.code == 3, run
    assert "learning_rate" in run.stdout and "value = ..." in run.stdout
    run = run_cli([old, new, "--spec", fixture("runtime_lr", "spec.toml")])
    assert run.code == 0, run
