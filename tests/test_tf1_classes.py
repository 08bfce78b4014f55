"""Class-based TF1 code (fixtures/rewrite/tf1_wrapper_classes.*, tf1_model_class.*).

A batch-norm wrapper class (DCGAN-tensorflow's `batch_norm(object)` with `__call__(x,
train=True)`) becomes a Keras Layer; a model class whose methods build the graph is left,
marked and reported, and so is everything it uses. The converted wrappers are built and called
under plain TF 2.21 (no TF_USE_LEGACY_KERAS), and compared with the TF1 original run in the
legacy stand-in (../shared/acceptance/run_tf1.py).
"""

import ast
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, SHARED, cli_env

WRAPPERS = FIXTURES / "rewrite" / "tf1_wrapper_classes"
MODEL_CLASS = FIXTURES / "rewrite" / "tf1_model_class"


def migrate(path, **options):
    result = migrate_source(path.read_bytes(), path.name, ALL_RULES, Options(rewrite=True, **options))
    assert result.error is None, result.error
    return result


def test_wrapper_classes_become_keras_layers_with_the_bn_mapping():
    result = migrate(WRAPPERS.with_suffix(".before.py"))
    text = result.new_bytes.decode()
    assert "class batch_norm(tf.keras.layers.Layer):" in text
    assert "class BatchNorm(tf.keras.layers.Layer):" in text
    # contrib: decay -> momentum as is, contrib defaults written out (bn_mapping), scope -> name.
    assert ("self.batch_norm = tf.keras.layers.BatchNormalization(\n            momentum=self.momentum,\n"
            "            epsilon=self.epsilon,\n            center=True,\n            scale=True,\n"
            "            name=self.name,\n        )") in text
    # `call` keeps __call__'s parameters: `bn(h, train=False)` callers keep working.
    assert "    def call(self, x, train=True):\n        return self.batch_norm(x, training=train)" in text
    assert "return tf.nn.relu(self.batch_norm(inputs, training=training))" in text
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("(", '"""')))
    assert "variable_scope" not in code and "tf.contrib" not in code
    fixed = {(f.code, f.rewrite_class) for f in result.findings if f.fixed}
    assert ("TFM300", "bounded") in fixed and ("TFM302", "bounded") in fixed  # fused in TF1
    assert not result.manual


def test_fused_bn_exact_uses_the_compat_layer():
    text = migrate(WRAPPERS.with_suffix(".before.py"), fused_bn="exact").new_bytes.decode()
    assert "class TF1FusedCompatBatchNormalization(tf.keras.layers.BatchNormalization):" in text
    assert "self.batch_norm = TF1FusedCompatBatchNormalization(" in text
    assert "fused_ranks=(2, 4)" in text and "fused_ranks=(4, 5)" in text  # contrib, tf.layers


def test_safe_only_leaves_bounded_wrappers_marked():
    result = migrate(WRAPPERS.with_suffix(".before.py"), safe_only=True)
    text = result.new_bytes.decode()
    assert text.count("# tf-migrate: TFM301 left unchanged: a bounded rewrite, skipped by --safe-only") == 2


def test_model_class_and_what_it_uses_are_left_marked_and_reported():
    before = MODEL_CLASS.with_suffix(".before.py").read_text()
    result = migrate(MODEL_CLASS.with_suffix(".before.py"))
    text = result.new_bytes.decode()
    reasons = {f.message.split("`")[1]: f.message for f in result.findings if f.code == "TFM301"}
    assert set(reasons) == {"batch_norm", "conv_bn", "DCGAN"}
    assert "used by class `DCGAN`, which stays TF1 code" in reasons["batch_norm"]
    assert "used by class `DCGAN`, which stays TF1 code" in reasons["conv_bn"]
    assert "a model class: its methods (`generator`)" in reasons["DCGAN"]
    # Only marker lines were added, each directly above its `class` / `def`.
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith("# tf-migrate:")] == before.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("# tf-migrate: TFM301"):
            assert lines[index + 1].startswith(("class ", "def "))


def test_wrapper_with_more_than_a_batch_norm_becomes_a_network_model(tmp_path):
    """More than one batch norm in __call__: not a wrapper Layer, but a network class (its
    __init__ only stores configuration): a Keras Model keeping __call__'s flag default."""
    source = tmp_path / "ops.py"
    source.write_text(textwrap.dedent('''
        import tensorflow as tf


        class conv_bn(object):
            def __init__(self, filters, name):
                self.filters = filters
                self.name = name

            def __call__(self, x, train=True):
                h = tf.layers.conv2d(x, self.filters, 3, name=self.name + "_conv")
                return tf.layers.batch_normalization(h, training=train, name=self.name + "_bn")
    '''))
    text = migrate(source).new_bytes.decode()
    assert "class conv_bn(tf.keras.Model):" in text
    assert "def __init__(self, filters, name, **kwargs):\n        kwargs.setdefault(\"name\", name)" in text
    assert "    def call(self, x, training=True):\n        h = self.conv2d(x)\n" in text
    assert "TFM301" not in text


TF2_SCRIPT = r"""
import importlib.util, json, os, sys
assert "TF_USE_LEGACY_KERAS" not in os.environ
import numpy as np
import tensorflow as tf
spec = importlib.util.spec_from_file_location("migrated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x = np.load(sys.argv[2])
out = {}
bn = module.batch_norm(name="g_bn0")
y_default = bn(x)                 # TF1 default train=True: batch statistics, moving update
y_train = bn(x, train=True)       # the DCGAN call forms keep working
y_infer = bn(x, train=False)
out["weights"] = sorted(w.path.split("/")[-1] for w in bn.weights)
out["infer"] = np.asarray(y_infer).tolist()
out["train"] = np.asarray(y_train).tolist()
out["moving_mean"] = bn.batch_norm.moving_mean.numpy().tolist()
out["moving_variance"] = bn.batch_norm.moving_variance.numpy().tolist()
other = module.BatchNorm("bn2")
z = other(x, training=True)
out["relu_min"] = float(np.min(z))
out["bn2_weights"] = len(other.weights)
print(json.dumps(out))
"""

TF1_SCRIPT = r"""
import importlib.util, json, sys
sys.path.insert(0, sys.argv[3])
import run_tf1
tf = run_tf1.install()
import numpy as np
spec = importlib.util.spec_from_file_location("original", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x = np.load(sys.argv[2])
ph = tf.placeholder(tf.float32, x.shape)
bn = module.batch_norm(name="g_bn0")
y_default = bn(ph)  # TF1 default train=True
with tf.variable_scope(tf.get_variable_scope(), reuse=True):  # DCGAN's sampler reuses it so
    y_train = bn(ph, train=True)
    y_infer = bn(ph, train=False)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    sess.run(y_default, {ph: x})
    train = sess.run(y_train, {ph: x})
    infer = sess.run(y_infer, {ph: x})
    names = sorted(v.name.split("/")[-1].split(":")[0] for v in tf.global_variables())
    mean, var = sess.run(["g_bn0/moving_mean:0", "g_bn0/moving_variance:0"])
print(json.dumps({"weights": names, "infer": infer.tolist(), "train": train.tolist(),
                  "moving_mean": mean.tolist(), "moving_variance": var.tolist()}))
"""


def _last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.tf
def test_converted_wrapper_builds_runs_and_matches_tf1(tmp_path):
    """The migrated wrapper imports and runs under plain TF 2.21; against the TF1 original (legacy
    stand-in) on the same input: same variables, same training-mode output, moving statistics
    after two training calls equal up to fused TF1's Bessel factor on the variance (n/(n-1),
    the bounded TFM302 divergence), inference output close accordingly."""
    pytest.importorskip("tensorflow")
    x = np.random.RandomState(0).randn(8, 4, 4, 3).astype(np.float32) * 2 + 1
    np.save(tmp_path / "x.npy", x)
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    new = subprocess.run([sys.executable, "-c", TF2_SCRIPT, str(WRAPPERS.with_suffix(".after.py")),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert new.returncode == 0, new.stderr[-3000:]
    tf2 = _last_json(new.stdout)
    assert tf2["weights"] == ["beta", "gamma", "moving_mean", "moving_variance"]
    assert tf2["relu_min"] >= 0.0 and tf2["bn2_weights"] == 4

    shared = SHARED / "acceptance"
    if not (shared / "run_tf1.py").is_file():
        pytest.skip(f"the TF1 stand-in ../shared/acceptance/run_tf1.py is not at {shared}: "
                    "TF1 comparison skipped (the TF2 half above ran)")
    old = subprocess.run([sys.executable, "-c", TF1_SCRIPT, str(WRAPPERS.with_suffix(".before.py")),
                          str(tmp_path / "x.npy"), str(shared)], capture_output=True, text=True,
                         env=cli_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""), timeout=300)
    assert old.returncode == 0, old.stderr[-3000:]
    tf1 = _last_json(old.stdout)
    assert tf1["weights"] == tf2["weights"]
    np.testing.assert_allclose(tf2["train"], tf1["train"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tf2["moving_mean"], tf1["moving_mean"], rtol=1e-5, atol=1e-6)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    # TF1 (fused) fed n/(n-1)*var into the moving variance, Keras 3 feeds var: after two
    # updates from 1.0 with decay 0.9, moving = 0.81 + 0.19*c*var (c = n/(n-1) in TF1, 1 in Keras).
    tf1_var, tf2_var = np.array(tf1["moving_variance"]), np.array(tf2["moving_variance"])
    np.testing.assert_allclose((tf1_var - 0.81) / (tf2_var - 0.81), n / (n - 1), rtol=1e-4)
    np.testing.assert_allclose(tf2["infer"], tf1["infer"], rtol=1e-2, atol=1e-2)
    # --fused-bn exact removes that divergence: inference output within verify's 1e-5.
    exact = tmp_path / "exact.py"
    exact.write_bytes(migrate(WRAPPERS.with_suffix(".before.py"), fused_bn="exact").new_bytes)
    run = subprocess.run([sys.executable, "-c", TF2_SCRIPT, str(exact), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    tf2_exact = _last_json(run.stdout)
    np.testing.assert_allclose(tf2_exact["moving_variance"], tf1["moving_variance"], rtol=1e-5)
    np.testing.assert_allclose(tf2_exact["infer"], tf1["infer"], rtol=1e-5, atol=1e-5)


def test_suppression_on_the_class_line_keeps_the_class(tmp_path):
    source = tmp_path / "ops.py"
    text = WRAPPERS.with_suffix(".before.py").read_text().replace(
        "class batch_norm(object):", "class batch_norm(object):  # tf-migrate: ignore[TFM300]")
    source.write_text(text)
    from tests.conftest import run_cli
    result = run_cli("apply", source, "--out", tmp_path / "out", "--format", "json")
    out = (tmp_path / "out" / "ops.py").read_text()
    assert "class batch_norm(object):  # tf-migrate: ignore[TFM300]" in out
    assert "class BatchNorm(tf.keras.layers.Layer):" in out
    findings = json.loads(result.stdout.decode())["files"][0]["findings"]
    assert not [f for f in findings if f["code"] in ("TFM301", "TFM901")], findings


NETWORK = FIXTURES / "rewrite" / "tf1_network_class"
NETWORK_LEFT = FIXTURES / "rewrite" / "tf1_network_class_left_alone"


def test_network_class_becomes_a_keras_model_called_with_training():
    """`__init__` stores configuration, `__call__(x, training, reuse)` builds the network: the
    class keeps its name and constructor, reuse goes (one object is one set of variables), the
    helper it calls converts with it, and the program trains it in a train step."""
    result = migrate(NETWORK.with_suffix(".before.py"))
    text = result.new_bytes.decode()
    assert "class Encoder(tf.keras.Model):" in text
    assert '    def __init__(self, units=4, name="encoder", **kwargs):\n' \
           '        kwargs.setdefault("name", name)\n        super().__init__(**kwargs)\n' \
           '        self.units = units\n' in text
    assert "    def call(self, x, training=False):" in text
    assert "    def vars(self):\n        return self.trainable_variables" in text
    assert "class ConvBn(tf.keras.layers.Layer):" in text  # no longer held back by the class
    assert "encoder(x, training=False)" in text and "reuse" not in text.split("def main")[1]
    assert "def train_step(encoder, optimizer, images):" in text
    assert not result.manual
    fixed = {f.message.split(" became")[0] for f in result.findings if f.fixed and f.code == "TFM300"}
    assert "`Encoder`" in fixed


def test_network_classes_that_are_graph_code_stay_marked_with_the_reason():
    result = migrate(NETWORK_LEFT.with_suffix(".before.py"))
    reasons = {f.message.split("`")[1]: f.message for f in result.findings if f.code == "TFM301"}
    assert "__init__ calls `tf.placeholder`" in reasons["Classifier"]
    assert "stores self.hidden" in reasons["Stateful"]
    assert "'d' in v.name" in reasons["Discriminator"]
    text = result.new_bytes.decode()
    assert text.count("# tf-migrate: TFM301") == 3 and "tf.keras" not in text


def test_network_class_used_by_a_module_level_program_converts_with_it(tmp_path):
    """The same program written at module level (no main()) converts as the function program
    does (training_rewrite/module_program.py): the class, its helpers and the loop."""
    source = NETWORK.with_suffix(".before.py").read_text()
    body = source.split("def main():\n")[1].split("\n\nif __name__")[0]
    flat = source.split("def main():\n")[0] + textwrap.dedent(body) + "\n"
    path = tmp_path / "module_level.py"
    path.write_text(flat)
    text = migrate(path).new_bytes.decode()
    assert "tf.keras.Model" in text and "tf.Session" not in text
    assert "# tf-migrate: TFM301" not in text and "_tfm_module_program" not in text
    assert not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(text).body)


WRAPPER_OBJECTS = FIXTURES / "rewrite" / "module_wrapper_objects"


def test_wrapper_objects_become_sub_layers_of_their_one_model(tmp_path):
    """DCGAN-tensorflow: `g_bn0 = batch_norm(name='g_bn0')` at module level, called by one model
    function: made in that model's __init__ by the same call, the assignment gone, the class a
    Keras Layer; the TF1 scope of its batch norm stays `<model>/g_bn0`."""
    path = tmp_path / "gan.py"
    path.write_bytes(WRAPPER_OBJECTS.with_suffix(".before.py").read_bytes())
    text = migrate(path).new_bytes.decode()
    tree = ast.parse(text)
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    assert not assigned & {"g_bn0", "d_bn1"}
    assert "self.g_bn0 = batch_norm(name='g_bn0')" in text
    assert "self.d_bn1 = batch_norm(epsilon=1e-3, name='d_bn1')" in text  # the call as written
    assert "class batch_norm(tf.keras.layers.Layer)" in text
    assert "    scope.reuse_variables()" not in text and "tf-migrate: TFM30" not in text


def test_wrapper_object_of_a_model_left_unchanged_keeps_its_class_tf1(tmp_path):
    """All or nothing: the model that calls the object stays TF1 code (its caller does), so the
    object stays and so does its class -- a TF1 function never calls a Keras layer."""
    source = WRAPPER_OBJECTS.with_suffix(".before.py").read_text().replace(
        "linear(tf.layers.flatten(h1), 1, 'd_h1_lin')",
        "tf.layers.dense(tf.layers.flatten(h1), 1, name='d_h1_lin')")
    source += ("\n\ndef build(z):\n    out = generator(z)\n"
               "    tf.add_to_collection('outputs', out)\n    return out\n")
    path = tmp_path / "gan.py"
    path.write_text(source)
    result = migrate(path)
    text = result.new_bytes.decode()
    reasons = {f.message.split("`")[1]: f.message for f in result.findings if f.code == "TFM301"}
    assert "it is called by `build`, which stays TF1 code" in reasons["generator"]
    # the discriminator would convert, but its `d_bn1` needs the class converted, and the
    # class's other object `g_bn0` stays with the generator
    assert reasons["discriminator"].endswith(
        "it uses `d_bn1`, an object of the TF1 class `batch_norm`, and its object `g_bn0` stays "
        "TF1 code")
    assert "which stays TF1 code" in reasons["batch_norm"] and "its object `" in reasons["batch_norm"]
    assert "g_bn0 = batch_norm(name='g_bn0')\n" in text
    assert "d_bn1 = batch_norm(epsilon=1e-3, name='d_bn1')\n" in text
    assert "class batch_norm(object)" in text and "tf.keras" not in text
