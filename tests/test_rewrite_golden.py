"""Golden before/after pairs for the model rewrite (fixtures/rewrite/*.before.py -> *.after.py).

Each output must equal its golden file, parse, stay unchanged when migrated again, and import and
build under TF 2.21 without legacy Keras. Regenerate with `--update-goldens` and review the diff.
"""

import json
import subprocess
import sys

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, REPO, cli_env

BEFORE = sorted((FIXTURES / "rewrite").glob("*.before.py"))


def migrate(text: bytes, path="x.py"):
    result = migrate_source(text, path, ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


@pytest.mark.parametrize("before", BEFORE, ids=lambda p: p.name.split(".")[0])
def test_rewrite_matches_golden_and_is_idempotent(before, update_goldens):
    after = before.with_name(before.name.replace(".before.py", ".after.py"))
    result = migrate(before.read_bytes(), before.name)
    produced = result.new_bytes if result.changed else before.read_bytes()
    if update_goldens:
        after.write_bytes(produced)
    assert produced == after.read_bytes()
    compile(produced, str(after), "exec")
    again = migrate(produced, after.name)
    assert not again.changed, "a second migration changed the output"


def test_unconvertible_functions_are_marked_once_and_reported():
    source = (FIXTURES / "rewrite" / "left_unchanged.before.py").read_bytes()
    result = migrate(source)
    text = result.new_bytes.decode()
    assert text.count("# tf-migrate: TFM301") == 5
    reasons = [f.message for f in result.findings if f.code == "TFM301"]
    assert len(reasons) == 5 and any("lambda" in r for r in reasons)  # different layers per branch
    assert any("`helper_bn` left unchanged: it is called by `uses_helper`" in r for r in reasons)
    assert any("virtual_batch_size" in r for r in reasons)
    # Only comment lines were added: every original line is still there, in order.
    original = source.decode().splitlines()
    assert [line for line in text.splitlines() if not line.startswith("# tf-migrate:")] == original


def test_fixed_findings_carry_their_rewrite_class():
    result = migrate((FIXTURES / "rewrite" / "tf_layers_family.before.py").read_bytes())
    classes = [(f.code, f.message.split("`")[1], f.rewrite_class) for f in result.findings
               if f.fixed and f.code == "TFM300"]
    # Model's 4-D batch norm ran fused in TF1 (Bessel correction differs); VolumeModel's was fused=False.
    assert ("TFM300", "model", "bounded") in classes
    assert ("TFM300", "volume_model", "exact") in classes
    assert any(f.code == "TFM302" and f.rewrite_class == "bounded" for f in result.findings)
    assert not result.manual


# Classes to build per fixture: (class, constructor kwargs, input shapes without batch).
BUILD = {
    "tf_layers_family": [("Model", {}, [[8, 8, 3]]), ("SequenceModel", {}, [[10, 4]]),
                         ("VolumeModel", {}, [[6, 6, 6, 2]])],
    "slim_family": [("Model", {}, [[8, 8, 3]])],
    "helpers_and_loops": [("Model", {}, [[16, 16, 3]]), ("ConvBnRelu", {"filters": 4}, [[8, 8, 3]])],
    "scopes_and_reuse": [("BuildTowers", {}, [[5], [5]]), ("Encoder", {}, [[5]])],
    "control_dependencies_counter": [("Model", {"counter": "variable"}, [[6, 6, 3]])],
    "train_loop": [("Net", {}, [[4]])],
    "cond_batch_norm": [("Model", {}, [[6]])],
    "scope_defaults": [("Build", {}, [[5], [5]])],
    "tf1_renames": [("Classifier", {}, [[4]])],
    "tf1_renames_helpers": [("Discriminator", {}, [[4]])],
    # Projections created in build() from the input's shape, both ways (3 -> 8 channels; 3 -> 3).
    "shape_conditions": [("Model", {}, [[8, 8, 3]]), ("Block", {"filters": 3}, [[8, 8, 3]])],
}
# Migrated training code to run end to end (module-level names of the migrated file).
RUN = {
    "train_loop": ["history, predictions = train(); assert len(history) == 3 and predictions.shape == (16, 2)",
                   "train_adagrad([np.ones((2, 4), 'float32')] * 2)",
                   "losses = train_momentum([np.ones((2, 4), 'float32')] * 2, np.array([0, 1], 'int32'));"
                   " assert len(losses) == 2 and float(losses[1]) > 0",
                   "train_clipped([np.ones((2, 4), 'float32')] * 2, np.array([0, 1], 'int32'))",
                   "train_grouped([np.ones((2, 4), 'float32')])"],
    # var_list=D.vars / compute_gradients(var_list=G.vars) on network objects: trained twice
    # in one process (fresh models and optimizers each time).
    "network_object_var_lists": ["dl, gl = train(); dl2, gl2 = train(2);"
                                 " assert float(dl) > 0 and float(gl) > 0 and float(dl2) > 0"],
    # Sessions without `with`: each trains and returns finite losses; the three variants train
    # the same model from different (random) weights, so only their shapes are compared.
    "session_without_with": [
        "data = np.random.RandomState(0).randn(6, 4).astype('float32'); labels = np.arange(6) % 2",
        "losses = train(data, labels); assert len(losses) == 3 and float(losses[-1]) < float(losses[0])",
        "assert np.isfinite(float(train_interactive(data, labels)))",
        "assert np.isfinite(float(train_configured(data, labels, steps=2)))",
        "assert np.isfinite(float(train_in_graph(data, labels)))"],
    # Summaries of expressions; a schedule's summary is the rate each step applied (TF1
    # computed it before the update counted the step), `sess.run(lr)` after it the next one.
    "summaries_expressions": [
        "assert float(train()) > 0",
        "assert np.allclose(train_decayed(), [0.1, 0.05, 0.05, 0.025])",
        "model, opt = Regression(), make_optimizer_2(); ones = np.ones((4, 3), 'float32');"
        " model(ones); opt.build(model.trainable_variables);"
        " applied = [float(train_step_2(model, opt, ones, np.ones((4, 1), 'float32'))[1]) for _ in range(3)];"
        " assert np.allclose(applied, [0.1, 0.1, 0.05]), applied"],
    # A module-level program: importing the module trains (3 steps).
    "module_level_program": ["assert float(value) > 0 and classifier.built"],
    # TF1 spellings renamed inside the converted model and train step (tf.math.log, keepdims=,
    # tf.cast, labels under tf.stop_gradient) run on TF 2 and train.
    "tf1_renames": ["assert np.isfinite(float(main()))"],
    # Plain helpers the converted model and train step call, renamed too (tf.math.log,
    # keepdims=, tf.cast, tf.math.rsqrt): they run on TF 2.
    "tf1_renames_helpers": ["assert np.isfinite(float(main()))"],
}

BUILD_SCRIPT = r"""
import importlib.util, json, os, sys
os.environ.pop("TF_USE_LEGACY_KERAS", None)
import numpy as np
import tensorflow as tf
spec = json.loads(sys.argv[1])
for path, classes in spec.items():
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3].replace(".", "_"), path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    for name, kwargs, shapes in classes:
        kwargs = {k: tf.Variable(0) if v == "variable" else v for k, v in kwargs.items()}
        obj = getattr(module, name)(**kwargs)
        inputs = [tf.constant(np.random.RandomState(0).randn(2, *s).astype("float32")) for s in shapes]
        train = obj(*inputs, training=True) if "training" in obj.call.__code__.co_varnames else obj(*inputs)
        infer = obj(*inputs, training=False) if "training" in obj.call.__code__.co_varnames else obj(*inputs)
        count_before = len(obj.weights)
        obj(*inputs, training=False) if "training" in obj.call.__code__.co_varnames else obj(*inputs)
        print(json.dumps({"class": name, "weights": len(obj.weights), "stable": count_before == len(obj.weights)}))
runs = json.loads(sys.argv[2])
for path, snippets in runs.items():
    module_spec = importlib.util.spec_from_file_location("run_" + os.path.basename(path)[:-3].replace(".", "_"), path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    namespace = dict(vars(module), np=np)
    for snippet in snippets:
        exec(snippet, namespace)
        print(json.dumps({"ran": snippet[:40]}))
"""


@pytest.mark.tf
def test_outputs_import_and_build_under_tf2_without_legacy_keras():
    pytest.importorskip("tensorflow")
    spec = {str(FIXTURES / "rewrite" / f"{name}.after.py"): classes for name, classes in BUILD.items()}
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    runs = {str(FIXTURES / "rewrite" / f"{name}.after.py"): snippets for name, snippets in RUN.items()}
    result = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, json.dumps(spec), json.dumps(runs)],
                            capture_output=True,
                            text=True, env=env, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    # (a module-level program prints its RESULT line when imported)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    built = [line for line in lines if "class" in line]
    assert len(built) == sum(len(c) for c in BUILD.values())
    assert len([line for line in lines if "ran" in line]) == sum(len(r) for r in RUN.values())
    assert all(b["weights"] > 0 and b["stable"] for b in built), built
