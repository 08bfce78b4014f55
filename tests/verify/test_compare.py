"""Unit tests of verify's pure-Python parts (no TensorFlow): closeness rule, weight
mapping, pairing conventions, spec parsing, exit codes."""
import os
import textwrap

import numpy as np
import pytest

from migrate.verify import command, compare, discover, weightmap
from verify_helpers import fixture


def test_close_rule_scales_absolute_part_by_reference_magnitude():
    ref = np.array([100.0, 0.0, -50.0])
    assert compare.close(ref + 1e-4, ref, rtol=0, arel=1e-5)        # 1e-4 <= 1e-5 * 100
    assert not compare.close(ref + 2e-3, ref, rtol=0, arel=1e-5)
    assert compare.close(ref * (1 + 1e-6), ref, rtol=1e-5, arel=0)


def test_metrics_report_needed_tolerance_and_ignore_tiny_elements_for_max_rel():
    ref = np.array([1.0, 1e-9, -2.0])
    a = np.array([1.0 + 1e-6, 3e-9, -2.0])
    m = compare.metrics(a, ref)
    assert m["max_abs"] == pytest.approx(1e-6)
    assert m["norm_rel"] == pytest.approx(5e-7)
    assert m["max_rel"] == pytest.approx(1e-6, rel=1e-3)   # 1e-9 element ignored
    t = m["needed"]
    assert compare.close(a, ref, t * 1.0001, t * 1.0001)
    assert not compare.close(a, ref, t * 0.9, t * 0.9)


def test_metrics_shape_mismatch_and_nonfinite():
    assert compare.metrics(np.zeros(3), np.zeros(4)) is None
    m = compare.metrics(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert m["nonfinite"] and not compare.close(np.array([np.nan]), np.array([1.0]), 1, 1)


def test_bessel_correction_matches_fused_ema():
    rng = np.random.RandomState(0)
    m, n, mv0 = 0.9, 72, np.ones(5)
    keras_mv, tf1_mv = mv0.copy(), mv0.copy()
    for _ in range(20):
        v = rng.rand(5) + 0.5
        keras_mv = m * keras_mv + (1 - m) * v
        tf1_mv = m * tf1_mv + (1 - m) * v * n / (n - 1.0)
    np.testing.assert_allclose(compare.bessel_corrected(keras_mv, mv0, m, 20, n), tf1_mv,
                               rtol=1e-12)


def test_weightmap_by_name_kinds_and_model_prefix():
    tf1 = [("fc0/weights", [3, 4]), ("fc0/biases", [4]), ("bn0/moving_mean", [4]),
           ("generator/fc1/kernel", [4, 2]), ("block0/a/conv/kernel", [3, 3, 2, 2])]
    keras = [("mlp/fc0/kernel", [3, 4]), ("mlp/fc0/bias", [4]), ("mlp/bn0/moving_mean", [4]),
             ("generator/fc1/kernel", [4, 2]), ("model/block0_a/conv/kernel", [3, 3, 2, 2])]
    res = weightmap.map_weights(tf1, keras)
    assert not res["unmapped_tf1"] and not res["unmapped_keras"]
    assert set(res["how"].values()) == {"name"}
    assert res["mapping"]["fc0/weights"] == 0


def test_weightmap_fails_loudly_on_leftovers_and_shapes():
    res = weightmap.map_weights([("conv/kernel", [3, 3, 1, 4]), ("bn/gamma", [4])],
                                [("model/conv/kernel", [3, 3, 1, 8])])
    assert res["unmapped_tf1"] == ["bn/gamma"]
    assert res["shape_mismatch"][0][:2] == ("conv/kernel", "model/conv/kernel")


def test_weightmap_order_fallback_only_for_equal_groups_and_spec_wins():
    res = weightmap.map_weights([("dense/kernel", [2, 2]), ("dense_1/kernel", [2, 2])],
                                [("model/a/kernel", [2, 2]), ("model/b/kernel", [2, 2])])
    assert res["how"] == {"dense/kernel": "order", "dense_1/kernel": "order"}
    res = weightmap.map_weights([("x/kernel", [2, 2])], [("model/a/kernel", [2, 2])],
                                {"x/kernel": "a/kernel"})
    assert res["how"] == {"x/kernel": "spec"}


def test_pairing_conventions():
    import ast
    old = ast.parse("def generator(z, t): pass\ndef discriminator(x, t): pass\ndef main(): pass")
    new = ast.parse("import tensorflow as tf\nclass Generator(tf.keras.Model): pass\n"
                    "class Discriminator(tf.keras.Model): pass\nclass Helper: pass")
    classes, pairs, unpaired = discover.pair_models(old, new)
    assert pairs == [{"old": "generator", "new": "Generator"},
                     {"old": "discriminator", "new": "Discriminator"}]
    old = ast.parse("def build_model(x): pass")
    new = ast.parse("import keras\nclass Net(keras.Model): pass")
    assert discover.pair_models(old, new)[1] == [{"old": "build_model", "new": "Net"}]


def test_plan_directory_mode_and_ids():
    models, problems = discover.plan(fixture("cnn_update_ops", "old.py"),
                                     fixture("cnn_update_ops", "new.py"))
    assert [m["id"] for m in models] == ["cnn_update_ops"] and not problems
    assert models[0]["pairs"] == [{"old": "model", "new": "Model"}]


def test_spec_parsing_and_errors(tmp_path):
    spec = discover.load_spec(fixture("unverifiable", "spec.toml"))
    assert spec["model"][0]["inputs"]["images"]["shape"] == [-1, 7, 7, 3]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[model]]\nentry = 'x'\n")
    with pytest.raises(discover.SpecError, match="unknown key"):
        discover.load_spec(str(bad))
    bad.write_text("[[model]\n")
    with pytest.raises(discover.SpecError, match="not valid TOML"):
        discover.load_spec(str(bad))


def test_exit_code_precedence():
    assert command.exit_code([{"status": "pass"}, {"status": "known-divergence"}]) == 0
    assert command.exit_code([{"status": "error"}, {"status": "mismatch"}]) == 1
    assert command.exit_code([{"status": "error"}, {"status": "pass"}]) == 3
    assert command.exit_code([{"status": "error", "internal": True}]) == 2


def test_usage_errors_exit_2(tmp_path):
    from verify_helpers import run_cli
    old, new = fixture("cnn_update_ops", "old.py"), fixture("cnn_update_ops", "new.py")
    r = run_cli([old, new, "--golden", old, "--save-golden", str(tmp_path / "g")])
    assert r.code == 2
    r = run_cli([old, str(tmp_path)])
    assert r.code == 2
    (tmp_path / "plain.py").write_text("x = 1\n")
    r = run_cli([str(tmp_path / "plain.py"), str(tmp_path / "plain.py")])
    assert r.code == 3  # no keras.Model subclass: nothing could be verified


def test_weightmap_outer_tf1_scope_may_become_the_model():
    res = weightmap.map_weights([("net/fc1/kernel", [2, 3]), ("net/bn1/gamma", [3])],
                                [("model/fc1/kernel", [2, 3]), ("model/bn1/gamma", [3])])
    assert res["how"] == {"net/fc1/kernel": "name", "net/bn1/gamma": "name"}
