"""The tf.estimator model_fn rewrite (TFM410): taken apart into a Keras model and the code of the
programs that call it; the migrated program runs on Keras 3, writes and restores its checkpoint,
and `verify` proves it computes what the TF1 program did."""

import json
import re
import subprocess
import sys

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES, select_rules
from tests.conftest import FIXTURES, cli_env, run_cli

BEFORE = FIXTURES / "rewrite" / "estimator_model_fn.before.py"
LEFT_ALONE = FIXTURES / "rewrite" / "estimator_left_alone.before.py"


def migrate(text: str, rules=ALL_RULES):
    result = migrate_source(text.encode(), "x.py", rules, Options(rewrite=True))
    assert result.error is None, result.error
    return result


def test_model_fn_becomes_a_model_and_its_heads_the_callers_code():
    result = migrate(BEFORE.read_text())
    text = result.new_text
    code = text.split('"""', 2)[2]  # after the module docstring
    assert "tf.estimator" not in code and "Saver" not in code and "Session" not in code
    assert "class CnnModelFn(tf.keras.Model)" in text
    # The TRAIN head is the train step; the PREDICT head the fetched expression; the EVAL head,
    # which no program asks for, is gone and the report says so.
    assert re.search(r"def train_step\(cnn_model_fn, optimizer, image_in, label_in\)", text)
    assert "tf.keras.optimizers.SGD(learning_rate=CONFIG[\"lr\"], momentum=0.9, nesterov=False)" in text
    assert "tf.nn.softmax(logits)" in text
    taken_apart = [f for f in result.findings if f.code == "TFM410"]
    assert len(taken_apart) == 1 and taken_apart[0].fixed
    assert "EVAL branch (called by no program) not carried over" in taken_apart[0].message
    # The program's own `loss` stays its own: the inlined loss got a fresh name.
    assert "loss = train_step(" in text and "loss_2 = tf.reduce_mean(" in text
    # UPDATE_OPS findings inside the model_fn are resolved by the rewrite.
    assert not [f for f in result.findings if not f.fixed]


def test_mode_branches_are_decided_per_caller():
    source = '''
import tensorflow as tf


def model_fn(features, labels, mode, params):
    logits = tf.layers.dense(features, 2)
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=logits)
    elif mode in (tf.estimator.ModeKeys.EVAL,):
        return tf.estimator.EstimatorSpec(mode, loss=tf.reduce_mean(logits))
    loss = tf.reduce_mean(tf.square(logits - labels))
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def evaluate(x, y):
    features = tf.placeholder(tf.float32, [None, 3])
    spec = model_fn(features, None, "eval", {})
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(spec.loss, feed_dict={features: x})
'''
    result = migrate(source)
    text = result.new_text
    assert "class ModelFn(tf.keras.Model)" in text
    assert "tf.reduce_mean(logits)" in text and "tf.square" not in text  # EVAL head only
    assert "def model_fn" not in text and "GradientDescent" not in text
    finding = next(f for f in result.findings if f.code == "TFM410")
    assert "PREDICT" in finding.message and "TRAIN" in finding.message


def test_model_fns_that_cannot_be_taken_apart_are_left_and_reported():
    source = LEFT_ALONE.read_text()
    result = migrate(source)
    reasons = {f.message.split("`")[1]: f.message for f in result.findings if f.code == "TFM411"}
    assert "handed to `tf.estimator.Estimator`" in reasons["model_fn"]
    assert "a return under a branch on something other than the mode" in reasons["branchy_model_fn"]
    # Only marker comments were added: every original line is still there, in order.
    assert [line for line in result.new_text.splitlines()
            if not line.startswith("# tf-migrate:")] == source.splitlines()


def test_without_the_training_loop_rewrite_nothing_is_taken_apart():
    rules = select_rules(ignore=["TFM400"])
    result = migrate(BEFORE.read_text(), rules)
    assert "EstimatorSpec" in (result.new_text or BEFORE.read_text())
    assert any(f.code == "TFM411" and "TFM400" in f.message for f in result.findings)


@pytest.mark.tf
def test_migrated_estimator_program_runs_saves_restores_and_verifies(tmp_path):
    pytest.importorskip("tf_keras", reason="verify's old side needs tf-keras (pip install '.[verify]')")
    old = tmp_path / "old"
    new = tmp_path / "new"
    old.mkdir()
    (old / "estimator_program.py").write_bytes(BEFORE.read_bytes())
    applied = run_cli("apply", old, "--out", new)
    assert applied.returncode == 0, applied.stderr.decode()
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    ran = subprocess.run([sys.executable, str(new / "estimator_program.py")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    match = re.search(r"RESULT loss=(\S+) prob_sum=(\S+)", ran.stdout)
    assert match and abs(float(match.group(2)) - 4.0) < 1e-4, ran.stdout
    verified = run_cli("verify", old, new, "--format", "json", timeout=600)
    assert verified.returncode == 0, verified.stdout.decode()[-3000:] + verified.stderr.decode()[-2000:]
    report = json.loads(verified.stdout)
    (model,) = report["models"]
    assert model["status"] in ("pass", "known-divergence")
    assert set(model.get("divergences", [])) <= {"fused-bn-bessel"}


SAVER_SCRIPT = r"""
import importlib.util, json, os, sys, tempfile
import numpy as np
spec = importlib.util.spec_from_file_location("migrated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
directory = tempfile.mkdtemp()
latest = module.main(directory)
inputs = np.random.RandomState(1).rand(4, 3).astype("float32")
restored = np.asarray(module.predict(latest, inputs))
fresh = np.asarray(module.Model()(inputs, training=False))
print(json.dumps({"latest": os.path.basename(latest), "files": sorted(os.listdir(directory)),
                  "restored_again": bool(np.array_equal(restored, np.asarray(module.predict(latest, inputs)))),
                  "differs_from_fresh": bool(np.abs(restored - fresh).max() > 1e-6)}))
"""


@pytest.mark.tf
def test_saver_keeps_its_files_state_file_and_max_to_keep(tmp_path):
    migrated = tmp_path / "saver_program.py"
    migrated.write_bytes((FIXTURES / "rewrite" / "saver_checkpoints.after.py").read_bytes())
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    ran = subprocess.run([sys.executable, "-c", SAVER_SCRIPT, str(migrated)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    # TF1 wrote model.ckpt-<step> (+ .meta, a graph TF2 does not have), kept the newest 2 and
    # the `checkpoint` state file tf.train.latest_checkpoint reads.
    assert result["latest"] == "model.ckpt-5"
    assert result["files"] == ["checkpoint", "model.ckpt-4.data-00000-of-00001", "model.ckpt-4.index",
                               "model.ckpt-5.data-00000-of-00001", "model.ckpt-5.index"]
    assert result["restored_again"] and result["differs_from_fresh"]


RESUME_SCRIPT = r"""
import importlib.util, json, sys, tempfile
import keras
spec = importlib.util.spec_from_file_location("migrated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
keras.utils.set_random_seed(0)
directory = tempfile.mkdtemp()
if sys.argv[2] == "stop-and-resume":
    losses = module.train(directory, 3) + module.train(directory, 3)
elif sys.argv[2] == "twice":  # two fresh trainings in one process (one tf.function train step)
    losses = module.train(directory, 2) + module.train(tempfile.mkdtemp(), 2)
else:
    losses = module.train(directory, 6)
print(json.dumps([float(v) for v in losses]))
"""


@pytest.mark.tf
def test_restored_program_resumes_where_it_stopped(tmp_path):
    migrated = tmp_path / "resume_program.py"
    migrated.write_bytes((FIXTURES / "rewrite" / "saver_resume.after.py").read_bytes())
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    losses = {}
    for how in ("stop-and-resume", "straight", "twice"):
        ran = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(migrated), how],
                             capture_output=True, text=True, env=env, timeout=300)
        assert ran.returncode == 0, ran.stderr[-2000:]
        losses[how] = json.loads(ran.stdout.strip().splitlines()[-1])
    # 3 steps, stop, restore (weights, moving statistics, Adam slots and step), 3 more steps ==
    # 6 steps straight: nothing of the training state is lost in the checkpoint round trip.
    assert losses["stop-and-resume"] == pytest.approx(losses["straight"], rel=1e-5)
    # Models and optimizer slots are built before the first traced step, so a second training
    # with fresh objects in the same process runs (a tf.function creates variables only once).
    assert len(losses["twice"]) == 4 and all(v == v for v in losses["twice"])


@pytest.mark.tf
def test_tf1_estimator_checkpoint_converts_to_the_migrated_model(tmp_path):
    pytest.importorskip("tf_keras", reason="the TF1 side needs tf-keras (pip install '.[verify]')")
    from tests.checkpoint.ckpt_helpers import plan, train_checkpoints

    old = tmp_path / "old" / "estimator_program.py"
    new = tmp_path / "new" / "estimator_program.py"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_bytes(BEFORE.read_bytes())
    new.write_bytes(BEFORE.with_name("estimator_model_fn.after.py").read_bytes())
    ckpt = train_checkpoints(tmp_path, [plan("estimator", old, new)])["estimator"]
    converted = run_cli("convert-checkpoint", ckpt, old, new, "--out", tmp_path / "tf2",
                        "--optimizer", "--verify", timeout=600)
    output = converted.stdout.decode() + converted.stderr.decode()
    assert converted.returncode == 0, output[-3000:]
    assert "PASS" in output
