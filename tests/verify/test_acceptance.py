"""verify on hand-written migrations of ../shared/acceptance/tf1 programs.

The OLD side is the acceptance program itself; the NEW side is in
fixtures/verify/acceptance/. Skips (visibly) when ../shared is absent."""
import os

import pytest

from verify_helpers import fixture, make_tree, run_cli

pytestmark = pytest.mark.tf

EXPECTED = {
    "helper_blocks": ["fused-bn-bessel"],
    "gan_two_optimizers": ["scoped-update-ops"],
    "python_bool_training": [],
    "slim_arg_scope": [],
    "contrib_inplace_updates": ["fused-bn-bessel"],
    "cnn_update_ops": ["fused-bn-bessel"],
    "contrib_batch_norm": ["fused-bn-bessel"],
    "forgot_update_ops": ["forgotten-update-ops"],
    # tf.keras BN inside the TF1 graph whose updates never ran, plus a fused BN
    "seed_antipattern": ["fused-bn-bessel", "forgotten-update-ops"],
    # model_fn returns a TRAIN EstimatorSpec: outputs are the logits of its loss, and
    # there is no inference-mode call to compare
    "estimator_model_fn": [],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_dir):
    base = tmp_path_factory.mktemp("acceptance")
    cases = {n: (os.path.join(shared_dir, "acceptance", "tf1", n + ".py"),
                 fixture("acceptance", n + ".py")) for n in EXPECTED}
    old, new = make_tree(str(base), cases)
    # no spec: seed_antipattern's run-time learning rate is taken from what it feeds
    report = os.path.join(str(base), "report.json")
    return run_cli([old, new, "--report", report], report_path=report)


def test_all_hand_migrations_verify_with_exit_0(run):
    assert run.code == 0, run


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_status_and_named_divergences(run, name):
    m = run.models[name]
    assert m["divergences"] == EXPECTED[name], m
    assert m["status"] == ("known-divergence" if EXPECTED[name] else "pass")


def test_gan_losses_and_weights_match_only_moving_stats_differ(run):
    m = run.models["gan_two_optimizers"]
    known = [t for t in m["tensors"] if t["status"] == "KNOWN"]
    assert known and all(t["category"] in ("moving", "after") for t in known)
    names = {t["tensor"] for t in m["tensors"] if t["status"] == "PASS"}
    assert {"loss/train_d_step", "loss/train_g_step",
            "weight/generator/fc1/kernel", "weight/discriminator/fc1/kernel",
            "gradient/train_g_step/generator/fc1/kernel"} <= names
    assert m["proof"]["scoped-update-ops"]["layers"] == ["discriminator/bn1", "generator/bn1"]


def test_slim_create_train_op_and_rmsprop_slots(run):
    m = run.models["slim_arg_scope"]
    names = {t["tensor"] for t in m["tensors"]}
    assert "weight/conv1/weights" in names and "moving/conv1/BatchNorm/moving_mean" in names
    assert not any("global_step" in n for n in names)


def test_estimator_train_spec_is_verified_in_training_mode_only(run):
    m = run.models["estimator_model_fn"]
    assert any("only called in training mode" in n for n in m["notes"])
    names = {t["tensor"] for t in m["tensors"]}
    assert "forward.train/Model:0" in names and "loss/train_step" in names
    assert not any(n.startswith(("forward.infer", "after.infer")) for n in names)


def test_seed_antipattern_learning_rate_comes_from_what_the_program_fed(run):
    m = run.models["seed_antipattern"]
    fed = [n for n in m["notes"] if n.startswith("run-time value(s) taken from what the old")]
    assert fed and "learning_rate = 0.2" in fed[0], m["notes"]
