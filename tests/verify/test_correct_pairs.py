"""Correct hand-written migrations verify with exit 0, through `python -m migrate.verify`.

One verify run over six pairs (one TF process per side)."""
import json
import os
import re
import shutil

import pytest

from verify_helpers import fixture, make_tree, run_module, tensor_rows

pytestmark = pytest.mark.tf

CASES = ("cnn_update_ops", "contrib_mlp", "cnn_rmsprop", "forgot_update_ops",
         "null_grad_adam", "dropout_mlp", "keep_prob_call")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("correct")
    old, new = make_tree(str(base), {c: (fixture(c, "old.py"), fixture(c, "new.py"))
                                     for c in CASES})
    report = os.path.join(str(base), "report.json")
    run = run_module([old, new, "--report", report, "--keep-workdir"], report_path=report)
    kept = re.search(r"work directory kept: (\S+)", run.stdout)
    run.new_side = {}  # model -> the new worker's own record (variants, trace counts)
    if kept:
        for case in CASES:
            path = os.path.join(kept.group(1), "cpu", case + ".new.json")
            if os.path.exists(path):
                with open(path) as f:
                    run.new_side[case] = json.load(f)
        shutil.rmtree(kept.group(1), ignore_errors=True)
    return run


def test_exit_0_and_a_pass_line_per_model(run):
    assert run.code == 0, run
    for case in CASES:
        assert "[verify] %s: PASS" % case in run.stdout, run
    assert "Traceback" not in run.stdout


def test_text_table_has_polygraphy_columns(run):
    header = [l for l in run.stdout.splitlines() if l.strip().startswith("tensor")][0]
    for col in ("shape", "max abs", "max rel", "norm rel", "tol", "needed", "result"):
        assert col in header


def test_cnn_update_ops_fused_bessel_is_named_and_proven(run):
    m = run.models["cnn_update_ops"]
    assert m["status"] == "known-divergence" and m["divergences"] == ["fused-bn-bessel"]
    known = tensor_rows(m, "KNOWN")
    assert {t["tensor"] for t in known} == {"moving/bn1/moving_variance",
                                           "moving/bn2/moving_variance",
                                           "after.infer/Model:0"}
    assert all("correct" in t["note"] for t in known)
    # everything else passes at the numerics.md tolerances
    passed = {t["tensor"] for t in tensor_rows(m, "PASS")}
    for name in ("forward.infer/Model:0", "forward.train/Model:0", "loss/train_step",
                 "gradient/train_step/conv1/kernel", "weight/logits/kernel",
                 "moving/bn1/moving_mean", "inventory"):
        assert name in passed


def test_measured_errors_of_the_correct_pair_are_float_noise(run):
    m = run.models["cnn_update_ops"]
    for t in tensor_rows(m, "PASS"):
        if t["category"] == "inventory":
            continue
        assert t["norm_rel"] < 2e-5, t
    assert m["noise_floor"] is not None and m["noise_floor"] < 1e-5


def test_contrib_defaults_and_2d_fused_path(run):
    m = run.models["contrib_mlp"]
    assert m["status"] == "known-divergence" and m["divergences"] == ["fused-bn-bessel"]
    notes = " ".join(m["notes"])
    assert "fc0/biases" in notes  # null-gradient biases before BN left out (D5)


def test_rmsprop_with_tf1_slot_init_passes_exactly(run):
    assert run.models["cnn_rmsprop"]["status"] == "pass"


def test_forgotten_update_ops_is_known_divergence_proven_by_momentum_1(run):
    m = run.models["forgot_update_ops"]
    assert m["status"] == "known-divergence", m
    assert m["divergences"] == ["forgotten-update-ops"]
    proof = m["proof"]["forgotten-update-ops"]
    assert proof["layers"] == ["bn0", "bn1"] and proof["tensors"] > 10
    assert any("momentum=1.0" in n for n in m["notes"])
    known = {t["tensor"] for t in tensor_rows(m, "KNOWN")}
    assert "moving/bn0/moving_mean" in known and "after.infer/Model:0" in known
    assert "loss/train_step" not in known


def test_null_gradient_bias_under_adam_is_frozen_on_both_sides(run):
    m = run.models["null_grad_adam"]
    assert m["status"] == "known-divergence" and m["divergences"] == ["null-gradient-adam"]
    assert any("fc/bias" in n for n in m["notes"])
    names = {t["tensor"] for t in m["tensors"]}
    assert "weight/fc/bias" not in names and "weight/fc/kernel" in names
    assert all(t["status"] == "PASS" for t in m["tensors"])


def test_dropout_is_disabled_on_both_sides_and_said_so(run):
    m = run.models["dropout_mlp"]
    assert m["status"] == "pass"
    assert any(n.startswith("dropout disabled") for n in m["notes"])


def test_call_parameter_fed_by_an_unknown_rank_placeholder_gets_the_fed_value(run):
    """`keep_prob = tf.placeholder(tf.float32)` (no shape) fed 0.8 at the first step: NEW's
    call(x, keep_prob) is built and compared with that value, and the report says so."""
    m = run.models["keep_prob_call"]
    assert m["status"] == "pass", m
    assert any("keep_prob = 0.8" in n for n in m["notes"]), m["notes"]
    assert {t["tensor"] for t in tensor_rows(m, "PASS")} >= {"forward.infer/Mlp:0",
                                                           "after.infer/Mlp:0"}


def test_each_traced_train_step_is_traced_once(run):
    """A retrace (a Python scalar argument, variables made on the first call) costs a whole
    trace per model; the traced runs build their optimizers first, so one trace is all."""
    assert set(run.new_side) == set(CASES), run
    for case, meta in run.new_side.items():
        traced = [v for v in meta["variants"] if not v["eager"]]
        assert traced, (case, meta["variants"])
        for variant in traced:
            assert variant["traces"] and set(variant["traces"].values()) == {1}, (case, variant)
