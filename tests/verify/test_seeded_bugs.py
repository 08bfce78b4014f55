"""Each seeded migration bug exits 1 and names the tensor that differs.

One verify run (click CliRunner, real worker subprocesses) over every bug variant."""
import os

import pytest

from verify_helpers import SHARED, fixture, make_tree, run_cli

pytestmark = pytest.mark.tf

BUGS = {
    # name: (old program, new program, tensors the report must name as differing)
    "adam_default_epsilon": ("cnn_update_ops", "bugs/adam_default_epsilon.py",
                             ["weight/conv1/kernel", "loss/train_step"]),
    "missing_training": ("cnn_update_ops", "bugs/missing_training.py",
                         ["loss/train_step", "gradient/train_step/conv1/kernel"]),
    "one_minus_decay": ("cnn_update_ops", "bugs/one_minus_decay.py",
                        ["moving/bn1/moving_mean", "moving/bn1/moving_variance"]),
    "dropped_layer": ("cnn_update_ops", "bugs/dropped_layer.py",
                      ["inventory/bn2/gamma", "inventory/bn2/moving_mean"]),
    "keras_defaults": ("contrib_mlp", "bugs/keras_defaults.py",
                       ["inventory/mlp/bn0/gamma", "moving/bn0/moving_mean"]),
    "rmsprop_slot_init": ("cnn_rmsprop", "bugs/rmsprop_slot_init.py",
                          ["loss/train_step", "weight/hidden/kernel"]),
}


SHARED_GAN = os.path.join(SHARED, "acceptance", "tf1", "gan_two_optimizers.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bugs")
    cases = {n: (fixture(o, "old.py"), fixture(o, p)) for n, (o, p, _) in BUGS.items()}
    if os.path.exists(SHARED_GAN):
        # issue 5: a migrated acceptance file with its Adam epsilon changed to 1e-7 fails
        src = open(fixture("acceptance", "gan_two_optimizers.py")).read()
        bad = src.replace("epsilon=1e-8", "epsilon=1e-7")
        assert bad != src
        path = os.path.join(str(base), "gan_eps.py")
        with open(path, "w") as f:
            f.write(bad)
        cases["gan_adam_epsilon_1e7"] = (SHARED_GAN, path)
    old, new = make_tree(str(base), cases)
    report = os.path.join(str(base), "report.json")
    return run_cli([old, new, "--format", "json", "--report", report], report_path=report)


def test_exit_1(run):
    assert run.code == 1, run
    assert run.report["exit_code"] == 1


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_is_a_mismatch_naming_the_tensor(run, name):
    m = run.models[name]
    assert m["status"] == "mismatch", m.get("reason")
    failing = {t["tensor"] for t in m["tensors"] if t["status"] == "FAIL"}
    for tensor in BUGS[name][2]:
        assert tensor in failing, (tensor, sorted(failing))
    assert BUGS[name][2][0] in m["reason"] or any(
        t in m["reason"] for t in BUGS[name][2])


def test_adam_epsilon_is_caught_by_weights_not_loosened_by_the_noise_floor(run):
    m = run.models["adam_default_epsilon"]
    row = [t for t in m["tensors"] if t["tensor"] == "weight/conv2/kernel"][0]
    assert row["status"] == "FAIL" and row["norm_rel"] > 1e-4
    assert row["floor"] is not None and row["arel"] == pytest.approx(1e-4)


def test_json_report_shape(run):
    doc = run.report
    assert doc["tool"] == "tf-migrate verify"
    for m in doc["models"]:
        assert m["status"] in ("pass", "known-divergence", "mismatch", "error")
        assert isinstance(m["divergences"], list)
        for t in m["tensors"]:
            assert {"tensor", "category", "status"} <= set(t)
            if t["category"] != "inventory" and "max_abs" in t:
                assert {"shape", "max_rel", "norm_rel", "needed", "rtol", "arel"} <= set(t)


def test_acceptance_gan_with_adam_epsilon_1e7_fails(run):
    if "gan_adam_epsilon_1e7" not in run.models:
        pytest.skip("../shared/acceptance is absent: acceptance copy not checked")
    m = run.models["gan_adam_epsilon_1e7"]
    assert m["status"] == "mismatch"
    failing = {t["tensor"] for t in m["tensors"] if t["status"] == "FAIL"}
    assert any(t.startswith("weight/") for t in failing), failing
