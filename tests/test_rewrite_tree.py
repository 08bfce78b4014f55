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
    # 1: legacy/ keeps TF1 code that is reported (left unchanged), no error.
    assert result.returncode == 1 and not result.stderr, result.stderr
    assert tree_bytes(out) == tree_bytes(AFTER)


def test_callers_in_another_module_use_the_helper_classes():
    model = (AFTER / "net" / "model.py").read_text()
    assert "from net.ops import ConvBnRelu" in model
    assert 'self.fc1 = ops.DenseBn(units=32, name="fc1")' in model
    assert "class ConvBnRelu(tf.keras.Model)" in (AFTER / "net" / "ops.py").read_text()


def test_star_import_uses_the_helper_class_and_all_names_it():
    ops = (AFTER / "gan" / "ops.py").read_text()
    model = (AFTER / "gan" / "model.py").read_text()
    assert "class ConvBnLrelu(tf.keras.Model)" in ops
    # `from gan.ops import *` binds what __all__ lists: the class, not the old function.
    assert '__all__ = ["ConvBnLrelu", "lrelu"]' in ops
    assert "from gan.ops import *" in model
    assert 'self.d_conv1 = ConvBnLrelu(filters=8, name="d_conv1")' in model
    assert "conv_bn_lrelu" not in model


def test_helper_used_by_tf1_code_of_another_module_stays_a_function():
    ops = (AFTER / "legacy" / "ops.py").read_text()
    model = (AFTER / "legacy" / "model.py").read_text()
    # `classifier` (tf.get_variable with a regularizer) stays TF1, marked, and calls
    # ops.dense_bn: dense_bn stays, marked,
    # and so does `head`, which builds on it; conv_block, used only by converted code, converts.
    assert ("# tf-migrate: TFM301 left unchanged: it is used by `classifier` of module "
            "`legacy.model`, which stays TF1 code\ndef dense_bn(") in ops
    assert ("# tf-migrate: TFM301 left unchanged: it calls `dense_bn`, which is not converted\n"
            "def head(") in ops
    assert "class ConvBlock(tf.keras.Model)" in ops
    assert "return ops.dense_bn(tf.matmul(feats, w), 32, is_training, \"fc\")" in model
    assert 'self.block1 = ops.ConvBlock(filters=8, name="block1")' in model


def test_blocked_helper_is_reported(tmp_path):
    result = run_cli("apply", BEFORE, "--out", tmp_path / "out", "--format", "json")
    report = __import__("json").loads(result.stdout.decode())
    left = {(os.path.basename(os.path.dirname(e["path"])), f["message"].split("`")[1])
            for e in report["files"] for f in e["findings"]
            if f["code"] == "TFM301" and "left unchanged" in f["message"]}
    assert left == {("legacy", "dense_bn"), ("legacy", "head"), ("legacy", "classifier"),
                    ("dcgan", "batch_norm"), ("dcgan", "DCGAN")}


def test_wrapper_class_used_by_a_tf1_class_of_another_module_stays():
    ops = (AFTER / "dcgan" / "ops.py").read_text()
    # `from ops import *` in dcgan/model.py means the sibling dcgan/ops.py (script directory on
    # sys.path, as DCGAN-tensorflow runs): its TF1 model class keeps the TF1 wrapper.
    assert ("# tf-migrate: TFM301 left unchanged: it is used by class `DCGAN` of module "
            "`dcgan.model`, which stays TF1 code\nclass batch_norm(object):") in ops
    assert (AFTER / "dcgan" / "model.py").read_text().count("# tf-migrate: TFM301") == 1


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


@pytest.mark.tf
def test_star_imported_and_partly_blocked_trees_build_under_tf2():
    pytest.importorskip("tensorflow")
    env = cli_env(PYTHONPATH=str(AFTER), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    code = ("import numpy as np\nfrom gan.model import Discriminator\n"
            "from legacy.model import Features\n"
            "d = Discriminator()\ny = d(np.zeros((2, 16, 16, 3), 'float32'), training=True)\n"
            "assert y.shape == (2, 1), y.shape\n"
            "f = Features()\nz = f(np.zeros((2, 4, 4, 3), 'float32'), training=False)\n"
            "assert z.shape == (2, 4 * 4 * 8), z.shape\n"
            "print(len(d.weights), len(f.weights))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # Discriminator: 2 x (conv kernel + bias + 4 BN) + dense kernel + bias; Features: 2 + 4.
    assert result.stdout.split()[-2:] == ["14", "6"]


def _tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


OPS = '''import tensorflow as tf
{all}

def dense_bn(x, units, is_training, name):
    with tf.variable_scope(name):
        x = tf.layers.dense(x, units, use_bias=False, name="dense")
        return tf.layers.batch_normalization(x, training=is_training, name="bn")
'''


def test_session_program_in_another_module_keeps_the_helper(tmp_path):
    """The training-loop rewrite does not migrate a program calling an imported helper yet, so
    the helper must stay a function (before: ops.py had DenseBn, train.py still imported
    dense_bn -- ImportError)."""
    src = _tree(tmp_path / "src", {
        "pkg/__init__.py": "",
        "pkg/ops.py": OPS.format(all=""),
        "pkg/train.py": '''import tensorflow as tf

from pkg.ops import dense_bn


def main():
    x = tf.placeholder(tf.float32, [None, 4])
    is_training = tf.placeholder(tf.bool, [])
    loss = tf.reduce_mean(dense_bn(x, 3, is_training, "fc"))
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, feed_dict={x: [[1.0] * 4], is_training: True})
'''})
    result = run_cli("apply", src, "--out", tmp_path / "out")
    assert result.returncode == 1 and not result.stderr, result.stderr
    ops = (tmp_path / "out" / "pkg" / "ops.py").read_text()
    assert ("# tf-migrate: TFM301 left unchanged: it is used by `main` of module `pkg.train`, "
            "which stays TF1 code\ndef dense_bn(") in ops
    assert "from pkg.ops import dense_bn" in (tmp_path / "out" / "pkg" / "train.py").read_text()


def test_star_import_from_a_module_with_a_computed_all_keeps_its_helpers(tmp_path):
    src = _tree(tmp_path / "src", {
        "pkg/__init__.py": "",
        "pkg/ops.py": OPS.format(all='__all__ = ["dense_" + "bn"]'),
        "pkg/model.py": '''import tensorflow as tf

from pkg.ops import *  # noqa: F403


def model(x, is_training):
    net = dense_bn(x, 8, is_training, "fc1")  # noqa: F405
    return tf.layers.dense(net, 2, name="logits")
'''})
    result = run_cli("apply", src, "--out", tmp_path / "out")
    assert not result.stderr, result.stderr
    ops = (tmp_path / "out" / "pkg" / "ops.py").read_text()
    assert "`pkg.ops.__all__` is not a literal list the rewrite can update\ndef dense_bn(" in ops
    model = (tmp_path / "out" / "pkg" / "model.py").read_text()
    assert "dense_bn(x, 8, is_training, \"fc1\")" in model  # nothing half-converted
