"""Scope names computed in loops (pix2pix's `variable_scope("encoder_%d" % (len(layers) + 1))`)
and the static rank of a batch norm's input (a 2-D/3-D input was never fused in TF1).

Real libcst on real sources through the whole pipeline; the TF test builds the TF1 model under
the stand-in and its migration under plain TF 2 and compares their variable names."""

import ast
import json
import subprocess
import sys
import textwrap

import pytest

from migrate import bn_mapping, static_rank
from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from migrate.verify.weightmap import tf1_key
from tests.conftest import FIXTURES, REPO, cli_env

REWRITE = FIXTURES / "rewrite"


def migrate(source: str, **options):
    result = migrate_source(textwrap.dedent(source).encode(), "prog.py", ALL_RULES,
                            Options(rewrite=True, **options))
    assert result.error is None, result.error
    return result


def check(source: str):
    result = migrate_source(textwrap.dedent(source).encode(), "prog.py", ALL_RULES, Options())
    assert result.error is None, result.error
    return result.findings


ENCODER = """
    import tensorflow as tf


    def encoder(x, is_training):
        layers = []
        with tf.variable_scope("encoder_1"):
            layers.append(tf.layers.conv2d(x, 8, 4, strides=2, padding="same"))
        for filters in [16, 32]:
            with tf.variable_scope("encoder_%d" % (len(layers) + 1)):
                net = tf.layers.conv2d(layers[-1], filters, 4, strides=2, padding="same")
                net = tf.layers.batch_normalization(net, training=is_training)
                layers.append(net)
        return layers[-1]
"""


# -- computed scope names ------------------------------------------------------------------------
def test_computed_scope_names_each_iterations_layers_from_a_counter():
    text = migrate(ENCODER).new_text
    assert "# tf-migrate" not in text
    init = text.split("def __init__", 1)[1].split("def call", 1)[0]
    # `len(layers)` is a counter __init__ keeps: set where the list is, stepped after each append
    assert init.index("layers_count = 0") < init.index('name="encoder_1_conv2d"') \
        < init.index("layers_count += 1") < init.index("for filters in [16, 32]:")
    assert 'name="encoder_%d" % (layers_count + 1) + "_conv2d"' in init
    assert 'name="encoder_%d" % (layers_count + 1) + "_batch_normalization"' in init
    assert init.rstrip().count("layers_count += 1") == 2
    # call() keeps the list of tensors and its own len()
    assert "layers.append(net)" in text.split("def call", 1)[1]
    assert "variable_scope" not in text


def test_scope_named_from_a_tensor_stays_tf1():
    text = migrate("""
        import tensorflow as tf


        def net(x):
            for filters in [8, 16]:
                with tf.variable_scope("block_%s" % x.name):
                    x = tf.layers.conv2d(x, filters, 3)
            return x
    """).new_text
    assert "# tf-migrate: TFM301 left unchanged: variable_scope with a computed name" in text
    assert "def net(x):" in text


def test_list_grown_under_a_condition_is_no_counter():
    """An append under an `if` runs a number of times __init__ cannot follow: the scope name
    that reads `len(layers)` is refused, not computed from an empty list."""
    result = migrate("""
        import tensorflow as tf


        def net(x, is_training):
            layers = [x]
            for filters in [8, 16]:
                with tf.variable_scope("block_%d" % len(layers)):
                    y = tf.layers.conv2d(layers[-1], filters, 3)
                    if filters > 8:
                        layers.append(y)
            return layers[-1]
    """)
    assert "# tf-migrate: TFM301" in result.new_text
    assert "block_%d" % 0 not in result.new_text


def test_scopeless_helper_takes_the_name_of_its_variable_scope():
    """`with tf.variable_scope("encoder_1"): gen_conv(x)` makes `encoder_1/conv2d/kernel` in TF1:
    the helper's Keras object is named `encoder_1`; a second call in the same scope (TF1 numbers
    its layers `conv2d_1`) keeps Keras's own naming."""
    text = migrate("""
        import tensorflow as tf


        def gen_conv(x, filters):
            return tf.layers.conv2d(x, filters, 4, strides=2, padding="same")


        def generator(x):
            with tf.variable_scope("encoder_1"):
                x = gen_conv(x, 8)
                x = gen_conv(x, 8)
            for i, filters in enumerate([16, 32]):
                with tf.variable_scope("encoder_{}".format(i + 2)):
                    x = gen_conv(x, filters)
            return x
    """).new_text
    assert 'self.gen_conv = GenConv(filters=8, name="encoder_1")' in text
    assert "self.gen_conv_1 = GenConv(filters=8)" in text
    assert 'GenConv(filters=filters, name="encoder_{}".format(i + 2))' in text


def test_same_helper_twice_in_one_computed_scope_is_refused():
    text = migrate("""
        import tensorflow as tf


        def gen_conv(x, filters):
            return tf.layers.conv2d(x, filters, 4, strides=2, padding="same")


        def generator(x):
            for i in range(2):
                with tf.variable_scope("encoder_%d" % i):
                    x = gen_conv(x, 8)
                    x = gen_conv(x, 8)
            return x
    """).new_text
    assert "TFM301 left unchanged: `gen_conv` called twice in one computed variable scope" in text


@pytest.mark.tf
def test_computed_scope_golden_has_the_tf1_variable_names():
    """The TF1 encoder (stand-in) and its migration (plain TF 2) name every variable alike:
    verify and convert-checkpoint pair them by name."""
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    old_script = textwrap.dedent(f"""
        import json, runpy
        from migrate.verify import tf1_runtime
        tf1_runtime.install()
        import tensorflow as tf
        module = runpy.run_path({str(REWRITE / 'computed_scopes.before.py')!r})
        x = tf.placeholder(tf.float32, [2, 16, 16, 3])
        module["encoder"](x, tf.placeholder_with_default(False, []))
        print(json.dumps(sorted(v.name[:-2] for v in tf.global_variables())))
    """)
    new_script = textwrap.dedent(f"""
        import json, runpy
        import tensorflow as tf
        module = runpy.run_path({str(REWRITE / 'computed_scopes.after.py')!r})
        model = module["Encoder"](name="model")
        model(tf.zeros([2, 16, 16, 3]), training=False)
        print(json.dumps(sorted(w.path.split("/", 1)[1] for w in model.weights)))
    """)
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    names = []
    for script in (old_script, new_script):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env, timeout=300, cwd=REPO)
        assert run.returncode == 0, run.stderr[-3000:]
        names.append(json.loads(run.stdout.strip().splitlines()[-1]))
    tf1, keras = names
    assert len(tf1) == len(keras) == 34
    # helpers named after their scope: the very TF1 names
    for name in ("encoder_1/conv2d/kernel", "head_1/batch_normalization/moving_variance"):
        assert name in tf1 and name in keras
    # layers inside the computed scope: `encoder_3_down` for TF1's `encoder_3/down`, the same
    # key for verify's and convert-checkpoint's name matching
    assert "encoder_3/down/kernel" in tf1 and "encoder_3_down/kernel" in keras
    assert sorted(map(tf1_key, tf1)) == sorted(map(tf1_key, keras))


# -- static rank of a batch norm's input -----------------------------------------------------------
def _tf_resolve(dotted):
    head, _, rest = dotted.partition(".")
    return f"tensorflow.{rest}" if head == "tf" and rest else None


BN_APIS = {n for n, a in bn_mapping.API_BY_CANONICAL.items() if a is not None}


@pytest.mark.parametrize("body, rank", [
    ("net = tf.layers.flatten(x)\nfor i in range(3):\n    net = tf.layers.dense(net, 8)\n"
     "    net = tf.layers.batch_normalization(net)\n    net = tf.nn.relu(net)", 2),
    ("y = tf.reshape(x, [-1, 4, 4, 2])\ny = tf.layers.batch_normalization(y)", 4),
    ("y = tf.reshape(x, [-1, 32])\ny = tf.layers.batch_normalization(y * 2.0 + 1)", 2),
    ("y = tf.layers.conv1d(x, 3, 3)\ny = tf.layers.batch_normalization(tf.nn.dropout(y, 0.5))", 3),
    ("y = tf.layers.batch_normalization(tf.concat([tf.layers.conv2d(x, 3, 3)] * 1, 3))", None),
    ("y = tf.layers.batch_normalization(tf.concat([tf.layers.conv2d(x, 3, 3), tf.layers.conv2d(x, 2, 1)], 3))", 4),
    ("y = tf.layers.batch_normalization(x)", None),  # a parameter: unknown
    # in order: the last assignment before the batch norm counts; branches join
    ("y = tf.layers.flatten(x)\ny = tf.layers.conv2d(x, 3, 3)\ny = tf.layers.batch_normalization(y)", 4),
    ("y = tf.layers.flatten(x)\nif x.shape[0]:\n    y = tf.layers.conv2d(x, 3, 3)\n"
     "y = tf.layers.batch_normalization(y)", None),
    ("y = tf.layers.dense(x, 3)\ny = tf.layers.batch_normalization(y)", None),  # dense of unknown
])
def test_static_rank_of_batch_norm_inputs(body, rank):
    func = ast.parse("def f(x):\n" + textwrap.indent(body, "    ")).body[0]
    assert static_rank.batch_norm_input_ranks(func, _tf_resolve, BN_APIS) == [rank]


MLP = """
    import tensorflow as tf


    def mlp(x, is_training):
        net = tf.layers.flatten(x)
        net = tf.layers.dense(net, 32, name="fc1")
        net = tf.layers.batch_normalization(net, training=is_training, name="bn1")
        return tf.layers.dense(tf.nn.relu(net), 10, name="logits")
"""


def test_batch_norm_after_dense_is_reported_and_rewritten_exact():
    finding = next(f for f in check(MLP) if f.code == "TFM101")
    assert "its input is 2-D, which TF1 never ran fused" in finding.message
    assert "bounded" not in finding.message
    result = migrate(MLP)
    assert not any(f.code == "TFM302" for f in result.findings)
    assert all(f.rewrite_class == "exact" for f in result.findings if f.code == "TFM300")
    exact = migrate(MLP, fused_bn="exact").new_text
    assert "TF1FusedCompatBatchNormalization" not in exact
    assert 'self.bn1 = tf.keras.layers.BatchNormalization(name="bn1")' in exact


def test_batch_norm_after_conv_stays_bounded():
    source = MLP.replace("net = tf.layers.flatten(x)", "net = tf.layers.conv2d(x, 4, 3)").replace(
        'net = tf.layers.dense(net, 32, name="fc1")', "net = tf.nn.relu(net)")
    finding = next(f for f in check(source) if f.code == "TFM101")
    assert "fused in TF1 for 4-D input" in finding.message
    assert any(f.code == "TFM302" for f in migrate(source).findings)
    assert "TF1FusedCompatBatchNormalization(fused_ranks=(4, 5)" in migrate(source, fused_bn="exact").new_text


def test_scope_name_the_same_every_iteration_is_refused():
    """`variable_scope("enc_%d" % depth)` re-enters one scope per iteration: TF1 numbered the
    layers inside (`conv2d`, `conv2d_1`), which per-iteration Keras names cannot repeat."""
    text = migrate("""
        import tensorflow as tf


        def net(x, depth=2):
            for filters in [8, 16]:
                with tf.variable_scope("enc_%d" % depth):
                    x = tf.layers.conv2d(x, filters, 3)
            return x
    """).new_text
    assert "TFM301 left unchanged: a variable_scope name that is the same in every iteration" in text


def test_helper_parameter_takes_the_rank_its_callers_give():
    """`fc_bn(flat, 32)` in every call: `fc_bn`'s input is 2-D, and so is what it returns."""
    source = """
        import tensorflow as tf


        def fc_bn(x, units, is_training):
            h = tf.layers.dense(x, units)
            return tf.layers.batch_normalization(h, training=is_training)


        def model(images, is_training):
            net = tf.layers.flatten(images)
            net = fc_bn(net, 32, is_training)
            net = fc_bn(net, 16, is_training)
            net = tf.layers.batch_normalization(net, training=is_training)
            return tf.layers.dense(net, 10)
    """
    messages = [f.message for f in check(source) if f.code == "TFM101"]
    assert len(messages) == 2 and all("its input is 2-D" in m for m in messages)
    result = migrate(source)
    assert "# tf-migrate" not in result.new_text
    assert not any(f.code == "TFM302" for f in result.findings)
    # called with a 4-D value somewhere, the helper's input rank is unknown: bounded as before
    mixed = source.replace("net = tf.layers.batch_normalization(net, training=is_training)",
                           "fc_bn(tf.layers.conv2d(images, 3, 3), 4, is_training)")
    assert any(f.code == "TFM302" for f in migrate(mixed).findings)
