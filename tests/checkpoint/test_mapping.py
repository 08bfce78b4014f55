"""convert-checkpoint's pure-Python parts: checkpoint paths, name mapping, classification."""

from __future__ import annotations

import pytest

from migrate.checkpoint import mapping
from migrate.checkpoint.command import CheckpointError, resolve_checkpoint


def test_resolve_checkpoint_forms(tmp_path):
    (tmp_path / "model.ckpt-7.index").write_bytes(b"")
    (tmp_path / "model.ckpt-7.data-00000-of-00001").write_bytes(b"")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    prefix = str(tmp_path / "model.ckpt-7")
    assert resolve_checkpoint(str(tmp_path)) == prefix
    assert resolve_checkpoint(prefix) == prefix
    assert resolve_checkpoint(prefix + ".index") == prefix
    assert resolve_checkpoint(prefix + ".data-00000-of-00001") == prefix
    with pytest.raises(CheckpointError):
        resolve_checkpoint(str(tmp_path / "nothing"))


def test_slim_batchnorm_and_outer_scope_map_by_name():
    tf1 = [("net/conv1/weights", [3, 3, 1, 8]), ("net/conv1/BatchNorm/beta", [8]),
           ("net/conv1/BatchNorm/moving_mean", [8]), ("net/logits/biases", [4])]
    keras = [("model/conv1/kernel", [3, 3, 1, 8]), ("model/conv1_bn/beta", [8]),
             ("model/conv1_bn/moving_mean", [8]), ("model/logits/bias", [4])]
    res = mapping.map_model_weights(tf1, keras)
    assert {n: keras[i][0] for n, i in res["mapping"].items()} == {
        "net/conv1/weights": "model/conv1/kernel",
        "net/conv1/BatchNorm/beta": "model/conv1_bn/beta",
        "net/conv1/BatchNorm/moving_mean": "model/conv1_bn/moving_mean",
        "net/logits/biases": "model/logits/bias"}
    assert set(res["how"].values()) == {"name"}
    assert not res["unmapped_tf1"] and not res["unmapped_keras"]


def test_classify_every_non_model_variable():
    meta = {"vars": [{"name": "fc/kernel"}],
            "train_ops": [{"class": "AdamOptimizer", "slots": {"fc/kernel": {
                "m": "fc/kernel/Adam", "v": "fc/kernel/Adam_1"}},
                "non_slot": {"beta1_power": "beta1_power"}, "created": []}],
            "global_step": ["global_step"], "ema": ["fc/kernel/ExponentialMovingAverage"],
            "other_vars": ["counter"]}
    ckpt = {n: [] for n in ("fc/kernel", "fc/kernel/Adam", "fc/kernel/Adam_1", "beta1_power",
                            "global_step", "fc/kernel/ExponentialMovingAverage", "counter",
                            "stray/thing")}
    kinds = {n: k for n, (k, _) in mapping.classify(ckpt, meta).items()}
    assert kinds == {"fc/kernel/Adam": "slot", "fc/kernel/Adam_1": "slot",
                     "beta1_power": "counter", "global_step": "global_step",
                     "fc/kernel/ExponentialMovingAverage": "ema", "counter": "other",
                     "stray/thing": "unknown"}


def test_verify_maps_slim_batchnorm_by_name_not_order():
    """verify's matcher normalises TF1 names with the model rewrite's correspondence, so a
    slim `conv1/BatchNorm/*` meets `conv1_bn/*` by name even where creation order and
    shapes could not tell two batch norms apart."""
    from migrate.verify import weightmap
    tf1 = [("conv2/BatchNorm/beta", [8]), ("conv1/BatchNorm/beta", [8]),
           ("conv1/weights", [3, 3, 1, 8]), ("conv1/kernel_extra/weights", [2])]
    keras = [("model/conv1_bn/beta", [8]), ("model/conv2_bn/beta", [8]),
             ("model/conv1/kernel", [3, 3, 1, 8]), ("model/conv1_kernel_extra/kernel", [2])]
    res = weightmap.map_weights(tf1, keras, {"conv1/kernel_extra/weights":
                                             "conv1_kernel_extra/kernel"})
    assert {n: keras[i][0] for n, i in res["mapping"].items()} == {
        "conv2/BatchNorm/beta": "model/conv2_bn/beta",
        "conv1/BatchNorm/beta": "model/conv1_bn/beta",
        "conv1/weights": "model/conv1/kernel",
        "conv1/kernel_extra/weights": "model/conv1_kernel_extra/kernel"}
    assert res["how"]["conv2/BatchNorm/beta"] == "name"
    assert res["how"]["conv1/kernel_extra/weights"] == "spec"
