"""A program with no loss verify can pair (inference code: a model and a Session, no
optimizer) is trained on the synthetic loss mean(square(outputs)) with plain SGD on both
sides, so gradients and BN updates are still compared. One verify run over two pairs."""
import os

import pytest

from verify_helpers import fixture, make_tree, run_module, tensor_rows

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("synthetic")
    old = fixture("no_train_op", "old.py")
    old_dir, new_dir = make_tree(str(base), {
        "no_train_op": (old, fixture("no_train_op", "new.py")),
        "keras_momentum": (old, fixture("no_train_op", "bugs", "keras_momentum.py"))})
    report = os.path.join(str(base), "report.json")
    return run_module([old_dir, new_dir, "--report", report, "--steps", "10"],
                      report_path=report)


def test_correct_migration_passes_on_the_synthetic_loss(run):
    m = run.models["no_train_op"]
    assert m["status"] == "known-divergence", run
    assert m["divergences"] == ["fused-bn-bessel"]
    (synthetic,) = m["synthetic_loss"]
    assert synthetic["optimizer"] == "SGD" and synthetic["learning_rate"] == 0.01
    assert synthetic["model"] == "model" and synthetic["new"] == "Model"
    assert any("synthetic loss mean(square(outputs))" in n for n in m["notes"])
    passed = {t["tensor"] for t in tensor_rows(m, "PASS")}
    # gradients, the loss curve, weights and BN moving means are all exercised
    for name in ("gradient/synthetic_step_Model/bn/beta",
                 "gradient/synthetic_step_Model/conv/kernel",
                 "loss/synthetic_step_Model", "weight/bn/gamma", "moving/bn/moving_mean"):
        assert name in passed, name
    loss = [t for t in m["tensors"] if t["tensor"] == "loss/synthetic_step_Model"][0]
    assert loss["shape"] == [10]


def test_a_bug_only_training_shows_is_caught(run):
    assert run.code == 1, run
    m = run.models["keras_momentum"]
    assert m["status"] == "mismatch"
    failed = {t["tensor"] for t in tensor_rows(m, "FAIL")}
    assert "moving/bn/moving_mean" in failed
    # the forward pass at the initial weights cannot see the momentum
    assert "forward.train/Model:0" not in failed and "forward.infer/Model:0" not in failed
