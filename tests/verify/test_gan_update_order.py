"""GANs whose discriminator runs on real and fake data in one train step (bn-update-order,
extra-update-ops), through one verify run over four hand-written pairs.

TF1 applies the two updates of one moving statistic in one Session.run in an order drawn
afresh per run; verify's old side applies them in program order, the order Keras uses, and
the statistics must then match. A G step whose UPDATE_OPS also ran discriminator(real) is
proven by a TF1 re-run without those updates. A new program that calls the discriminator in
the other order must still fail: the divergence is proven, not a loosened tolerance."""
import os

import pytest

from verify_helpers import fixture, make_tree, run_cli, tensor_rows

pytestmark = pytest.mark.tf

CASES = {
    # tf.layers BN under a training-flag placeholder (updates inside tf.cond, ref variables);
    # every UPDATE_OPS under both train ops
    "gan_all_updates": ("old.py", "new.py"),
    # python training=True, resource variables, G step with the generator's UPDATE_OPS only
    "gan_scoped_updates": ("old_scoped.py", "new.py"),
    # contrib batch norm updated in place (updates_collections=None) under the flag: mean and
    # variance updates share one tf.cond per call
    "gan_contrib_inplace": ("old_contrib.py", "new.py"),
    # seeded difference: the new D step calls discriminator(fake) before discriminator(real)
    "gan_reversed": ("old.py", "new_reversed.py"),
}
D_STATS = ("discriminator/bn1/moving_mean", "discriminator/bn1/moving_variance")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("gan_update_order")
    old, new = make_tree(str(base), {name: (fixture("gan_update_order", o),
                                            fixture("gan_update_order", n))
                                     for name, (o, n) in CASES.items()})
    report = os.path.join(str(base), "report.json")
    return run_cli([old, new, "--report", report], report_path=report)


def _rows(model, prefix):
    return {t["tensor"]: t for t in model["tensors"] if t["tensor"].startswith(prefix)}


def test_exit_1_only_for_the_reversed_order(run):
    assert run.code == 1, run
    assert run.models["gan_all_updates"]["status"] == "known-divergence", run
    assert run.models["gan_scoped_updates"]["status"] == "known-divergence", run
    assert run.models["gan_contrib_inplace"]["status"] == "known-divergence", run
    assert run.models["gan_reversed"]["status"] == "mismatch", run


def test_two_updates_per_step_are_chained_in_program_order_and_named(run):
    for name in ("gan_all_updates", "gan_scoped_updates", "gan_contrib_inplace"):
        m = run.models[name]
        assert "bn-update-order" in m["divergences"], m["divergences"]
        proof = m["proof"]["bn-update-order"]
        assert sorted(proof) == sorted(D_STATS)
        for stat in D_STATS:
            first, second = proof[stat]["updates"]
            # creation order: the call on real data (discriminator/...) before the one on
            # fake data (discriminator_1/...)
            assert first.startswith("discriminator/") and second.startswith("discriminator_1/")
            assert 0 in proof[stat]["train_ops"]  # the D step
        assert any("bn-update-order" in n and "program order" in n for n in m["notes"])


def test_losses_weights_and_gradients_match_only_moving_stats_are_named(run):
    for name in ("gan_all_updates", "gan_scoped_updates", "gan_contrib_inplace"):
        m = run.models[name]
        assert not tensor_rows(m, "FAIL")
        for row in tensor_rows(m, "KNOWN"):
            assert row["category"] in ("moving", "after"), row
        losses = _rows(m, "loss/")
        assert set(losses) == {"loss/train_d_step", "loss/train_g_step"}
        assert all(r["status"] == "PASS" for r in losses.values())
        assert all(r["status"] == "PASS" for r in _rows(m, "weight/").values())


def test_g_step_updates_of_an_unused_call_are_proven_by_a_rerun_without_them(run):
    m = run.models["gan_all_updates"]
    assert m["divergences"] == ["extra-update-ops", "bn-update-order"]
    proof = m["proof"]["extra-update-ops"]
    assert proof["train_ops"] == {"train_g_step": list(D_STATS)}
    assert proof["worst_norm_rel"] < 1e-4
    for stat in D_STATS:
        row = _rows(m, "moving/" + stat)["moving/" + stat]
        # the plain TF1 run really differs (the G step updated D from real data too) ...
        assert row["divergence"] == "extra-update-ops" and row["norm_rel"] > 1e-2
        assert "program order" in row["note"]


def test_scoped_g_step_combines_with_the_update_order(run):
    m = run.models["gan_scoped_updates"]
    assert m["divergences"] == ["scoped-update-ops", "bn-update-order"]
    assert "extra-update-ops" not in m.get("proof", {})


def test_in_place_updates_count_every_update_for_the_bessel_correction(run):
    m = run.models["gan_contrib_inplace"]
    assert m["divergences"] == ["fused-bn-bessel", "bn-update-order"]
    mean = _rows(m, "moving/discriminator/bn1/moving_mean")["moving/discriminator/bn1/moving_mean"]
    assert mean["divergence"] == "bn-update-order" and mean["max_abs"] < 1e-5
    var = _rows(m, "moving/discriminator/bn1/moving_variance")[
        "moving/discriminator/bn1/moving_variance"]
    # two updates in each D step and one (discriminator(fake)) in each G step, 20 steps
    assert var["divergence"] == "fused-bn-bessel" and "k=60" in var["note"]
    assert "bn-update-order" in var["note"]


def test_reversed_order_in_the_new_program_is_reported_not_excused(run):
    m = run.models["gan_reversed"]
    failing = {t["tensor"] for t in tensor_rows(m, "FAIL")}
    assert {"moving/" + s for s in D_STATS} <= failing
    # everything but the discriminator's moving statistics (and what reads them) matches
    assert all(t.startswith(("moving/discriminator/", "after.infer/Discriminator"))
               for t in failing), failing
    assert "bn-update-order" not in m["divergences"]
    assert "[verify] gan_reversed: FAIL" in run.stdout
