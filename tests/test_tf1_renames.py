"""TF1 spellings with an exact TF 2 equivalent are rewritten inside converted code (issue #3).

The renamer (`migrate/model_rewrite/tf1_renames.py`) on real libcst, its generated table
(`migrate/data/tf1_renames.json`, from tf_upgrade_v2) against the TF 2 symbol list, the golden
pairs `fixtures/rewrite/tf1_renames*.py` through the whole pipeline, and (`tf`) `verify` on the
converted pair. The converted program also runs on plain TF 2 in the golden batch
(tests/test_rewrite_golden.py RUN).
"""

import ast
import json
import re
import textwrap

import libcst as cst
import pytest

from migrate.model_rewrite.analysis import dotted
from migrate.model_rewrite.layers import Unmappable
from migrate.model_rewrite.tf1_renames import (rename_in_source, rename_tf1_spellings,
                                               renamed_helpers, tf2_spelling)
from migrate.model_rewrite.tf2_api import exists_in_tf2
from migrate.names import ImportResolver
from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, REPO, run_cli


def resolver_of(source: str):
    resolver = ImportResolver(ast.parse(source))

    def resolve(node):
        name = dotted(node)
        return resolver.resolve_dotted(name) if name else None

    return resolve


def rename(body: str, imports: str = "import tensorflow as tf\n") -> str:
    source = imports + textwrap.dedent(body)
    resolve = resolver_of(source)
    renamed = rename_tf1_spellings(cst.parse_module(source), resolve).code
    # what the converters call: a cheap look on `ast` first, which must not miss a change
    assert rename_in_source(source, resolve) == renamed
    return renamed[len(imports):]


@pytest.mark.parametrize("before, after", [
    # plain renames (tf_upgrade_v2's symbol table)
    ("y = tf.log(x)\n", "y = tf.math.log(x)\n"),
    ("z = tf.random_normal([2, 3], stddev=0.1)\n", "z = tf.random.normal([2, 3], stddev=0.1)\n"),
    ("z = tf.truncated_normal([2], seed=1)\n", "z = tf.random.truncated_normal([2], seed=1)\n"),
    ("z = tf.random_uniform([2], -1, 1)\n", "z = tf.random.uniform([2], -1, 1)\n"),
    ("d = tf.squared_difference(a, b)\n", "d = tf.math.squared_difference(a, b)\n"),
    ("f = tf.log\n", "f = tf.math.log\n"),  # a reference, not a call
    # keyword renames
    ("m = tf.reduce_mean(x, reduction_indices=[1], keep_dims=True)\n",
     "m = tf.reduce_mean(x, axis=[1], keepdims=True)\n"),
    ("p = tf.nn.softmax(x, dim=-1)\n", "p = tf.nn.softmax(x, axis=-1)\n"),
    ("e = tf.expand_dims(x, dim=1)\n", "e = tf.expand_dims(x, axis=1)\n"),
    # a renamed function whose keywords TF 2 renamed too
    ("l = tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=z, dim=1)\n",
     "l = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z, axis=1)\n"),
    ("i = tf.arg_max(x, dimension=1)\n", "i = tf.argmax(x, axis=1)\n"),
    # positional slots TF 2 reordered become keywords; a dropped hint goes
    ("s = tf.shape(x, 'shape', tf.int64)\n", "s = tf.shape(x, name='shape', out_type=tf.int64)\n"),
    ("c = tf.nn.conv2d(x, w, [1, 1, 1, 1], 'SAME', True, 'NHWC')\n",
     "c = tf.nn.conv2d(x, w, [1, 1, 1, 1], 'SAME', data_format='NHWC')\n"),
    ("c = tf.nn.conv2d(x, filter=w, strides=[1, 1, 1, 1], padding='SAME', use_cudnn_on_gpu=True)\n",
     "c = tf.nn.conv2d(x, filters=w, strides=[1, 1, 1, 1], padding='SAME')\n"),
    ("m = tf.multinomial(logits, 2, 7)\n", "m = tf.random.categorical(logits, 2, seed=7)\n"),
    # once one slot is a keyword, the later positional ones are too
    ("b = tf.batch_to_space(x, crops, 2, 'b2s')\n",
     "b = tf.batch_to_space(x, crops=crops, block_shape=2, name='b2s')\n"),
    # a renamed function's slots from TF1's own signature: TF 2 put fixed_length where name was
    ("r = tf.decode_raw(b, tf.uint8, True, 'raw')\n",
     "r = tf.io.decode_raw(b, tf.uint8, True, name='raw')\n"),
    # hand-written: tf.to_<type> -> tf.cast
    ("f = tf.to_float(x)\n", "f = tf.cast(x, tf.float32)\n"),
    ("f = tf.to_int32(x, 'ids')\n", "f = tf.cast(x, tf.int32, name='ids')\n"),
    ("f = tf.to_double(x=v, name='d')\n", "f = tf.cast(x=v, dtype=tf.float64, name='d')\n"),
    ("f = tf.to_int64(name='i', x=v)\n", "f = tf.cast(x=v, dtype=tf.int64, name='i')\n"),
    # hand-written: the v1 softmax cross entropy never backpropagated into its labels
    ("l = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z, dim=0)\n",
     "l = tf.nn.softmax_cross_entropy_with_logits(labels=tf.stop_gradient(y), logits=z, axis=0)\n"),
    # TF 2 names stay as they are
    ("y = tf.math.log(x) + tf.reduce_sum(x, axis=1, keepdims=True)\n",
     "y = tf.math.log(x) + tf.reduce_sum(x, axis=1, keepdims=True)\n"),
])
def test_tf1_spellings_become_their_tf2_equivalent(before, after):
    assert rename(before) == after
    if "_v2" not in before:  # (v2 takes v1's name: converted code is never converted again)
        assert rename(after) == after  # renaming twice changes nothing


def test_the_spelling_follows_the_module_alias():
    assert rename("y = tfv1.log(x)\n", "import tensorflow.compat.v1 as tfv1\n") == \
        "y = tfv1.math.log(x)\n"
    assert rename("y = nn.softmax(x, dim=1)\n", "from tensorflow import nn\n") == \
        "y = nn.softmax(x, axis=1)\n"
    # `from tensorflow import log`: its TF 2 name needs the module; refused, not guessed
    with pytest.raises(Unmappable, match="tensorflow module"):
        rename("y = tf.log(x) + log(x)\n", "import tensorflow as tf\nfrom tensorflow import log\n")


def test_non_tensorflow_names_are_not_touched():
    source = "y = np.log(x) + math.log(2) + self.log(x) + x.reduce_sum(keep_dims=True)\n"
    assert rename(source, "import numpy as np\nimport math\n") == source


@pytest.mark.parametrize("call, reason", [
    ("tf.image.resize_images(x, [8, 8])", "half-pixel centres"),
    ("tf.image.resize(x, [8, 8])", "half-pixel centres"),
    ("tf.cond(p, f, g, strict=True)", "dropped `strict`"),
    ("tf.nn.softmax_cross_entropy_with_logits(y, z)", "positional"),
    ("tf.reduce_sum(*args)", "reordered"),
    ("tf.nn.embedding_lookup(params, ids, 'mod')", "dropped `partition_strategy`"),
])
def test_calls_without_an_exact_tf2_spelling_refuse(call, reason):
    source = f"import tensorflow as tf\ny = {call}\n"
    with pytest.raises(Unmappable, match=re.escape(reason)):
        rename_in_source(source, resolver_of(source))


def test_the_generated_table_targets_plain_tf2_names_only():
    """The data file is tools/gen_tf1_renames.py's output: each target a public TF 2 name (never
    tf.compat.v1), each renamed name gone from TF 2, the non-exact renames left out."""
    tables = json.loads((REPO / "migrate" / "data" / "tf1_renames.json").read_text())
    assert len(tables["symbols"]) > 200
    for old, new in tables["symbols"].items():
        assert not exists_in_tf2(f"tensorflow.{old}"), old
        assert exists_in_tf2(f"tensorflow.{new}") and not new.startswith("compat."), (old, new)
    assert tf2_spelling("tensorflow.log") == "tensorflow.math.log"
    assert tf2_spelling("tensorflow.image.resize_images") is None
    assert tf2_spelling("tensorflow.Print") is None  # tf_upgrade_v2: tf.compat.v1.Print
    assert tables["keywords"]["reduce_sum"] == {"keep_dims": "keepdims",
                                                "reduction_indices": "axis"}
    assert "verify_shape" in tables["refused_keywords"]["constant"]


def _migrate(path):
    result = migrate_source(path.read_bytes(), path.name, ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


def test_converted_code_has_no_tf1_spelling_left():
    result = _migrate(FIXTURES / "rewrite" / "tf1_renames.before.py")
    text = result.new_bytes.decode()
    assert "tf-migrate: TFM" not in text and not result.manual
    text = re.sub(r"#.*", "", text[text.index("import numpy"):])  # the code, no comments
    for tf1 in ("tf.log(", "keep_dims", "reduction_indices", "tf.to_float", "tf.to_int32",
                "tf.squared_difference", "tf.arg_max", "dim=", "tf.rsqrt"):
        assert tf1 not in text, tf1
    assert "labels=tf.stop_gradient(onehot)" in text


def test_names_without_an_exact_equivalent_still_refuse_and_leave_code_alone():
    before = FIXTURES / "rewrite" / "tf1_renames_left_alone.before.py"
    result = _migrate(before)
    reasons = {f.message.split("`")[1]: f.message for f in result.findings
               if f.code in ("TFM301", "TFM401")}
    assert "half-pixel centres" in reasons["upsampler"]
    assert "tf.Print has no TF2 mapping" in reasons["train_printing"]
    assert "train_printing" in reasons["scorer"]
    # Only marker comments were added: `log_loss` (no model function) keeps tf.log/keep_dims.
    text = result.new_bytes.decode()
    assert [line for line in text.splitlines() if not line.startswith("# tf-migrate:")] == \
        before.read_text().splitlines()


def _functions(text: str) -> dict:
    """Top-level function name -> its source text (comments above it included)."""
    module = cst.parse_module(text)
    return {s.name.value: module.code_for_node(s) for s in module.body
            if isinstance(s, cst.FunctionDef)}


def test_plain_helpers_called_by_converted_code_are_renamed_with_it():
    """A loss helper the train step calls, a helper the model calls through another: renamed,
    the rest of their code as it was; a helper no converted code calls stays byte for byte."""
    before = FIXTURES / "rewrite" / "tf1_renames_helpers.before.py"
    result = _migrate(before)
    text = result.new_bytes.decode()
    assert "tf-migrate: TFM" not in text and not result.manual
    old, new = _functions(before.read_text()), _functions(text)
    assert "Discriminator(tf.keras.Model)" in text and "def train_step(" in text
    assert new["log_likelihood"] == old["log_likelihood"]  # tf.log, keep_dims: no caller converts
    assert new["_relu"] == old["_relu"] and new["normalize"] == old["normalize"]
    assert new["binary_cross_entropy"] == old["binary_cross_entropy"].replace(
        "tf.to_float(targets)", "tf.cast(targets, tf.float32)").replace(
        "tf.log(", "tf.math.log(").replace("reduction_indices=", "axis=").replace(
        "keep_dims=", "keepdims=")
    assert new["_inverse_norm"] == old["_inverse_norm"].replace("tf.rsqrt(", "tf.math.rsqrt(") \
        .replace("reduction_indices=", "axis=").replace("keep_dims=", "keepdims=")
    for name in ("binary_cross_entropy", "_inverse_norm"):
        assert new[name] != old[name]


def test_helpers_of_code_left_alone_keep_their_tf1_spellings():
    """A helper without an exact TF 2 spelling refuses its caller, with the reason; the helpers
    of every caller left alone (`center`: its model converts on its own, but the program calling
    it does not) keep their bytes, though their tf.log / keep_dims= have exact renames."""
    before = FIXTURES / "rewrite" / "tf1_renames_helpers_left_alone.before.py"
    result = _migrate(before)
    reasons = {f.message.split("`")[1]: f.message for f in result.findings
               if f.code in ("TFM301", "TFM401")}
    assert "it calls `upsample`, which uses TF1-only API: tf.image.resize_images" in \
        reasons["decoder"]
    assert "it calls `printed`, which uses TF1-only API: tf.Print" in reasons["train_scorer"]
    assert "train_scorer" in reasons["scorer"]
    text = result.new_bytes.decode()
    assert [line for line in text.splitlines() if not line.startswith("# tf-migrate:")] == \
        before.read_text().splitlines()


def _helper_renames(source: str, check=lambda code: None) -> dict:
    resolve = resolver_of(source)
    module = cst.parse_module(source)
    helpers = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    caller = helpers.pop("caller")
    found = renamed_helpers(module.code_for_node(caller), helpers, resolve, check)
    return {name: module.code_for_node(node).lstrip("\n") for name, node in found.items()}


def test_helper_renames_follow_calls_only():
    source = textwrap.dedent("""\
        import tensorflow as tf


        def inner(x):
            return tf.log(x)


        def outer(x):
            return inner(x) * 2


        def shadowed(x):
            return tf.log(x)


        def unused(x):
            return tf.log(x)


        def caller(x, shadowed):
            local = tf.to_float
            return outer(x) + shadowed(x) + local(x)
        """)
    assert _helper_renames(source) == {"inner": "def inner(x):\n    return tf.math.log(x)\n"}


def test_a_helper_refusal_names_the_chain_of_calls():
    source = textwrap.dedent("""\
        import tensorflow as tf


        def inner(x):
            return tf.cond(x > 0, lambda: x, lambda: -x, strict=True)


        def outer(x):
            return tf.log(inner(x))


        def caller(x):
            return outer(x)
        """)
    with pytest.raises(Unmappable, match=re.escape(
            "it calls `outer`, which uses TF1-only API: it calls `inner`, which uses TF1-only "
            "API: tf.cond(strict=...)")):
        _helper_renames(source)

    def no_print(code):  # the converter's check of the TF1-only names without a rename
        if "tf.Print" in code:
            raise Unmappable("tf.Print has no TF2 mapping yet")

    with pytest.raises(Unmappable, match="it calls `outer`.*tf.Print"):
        _helper_renames(source.replace("tf.cond(x > 0, lambda: x, lambda: -x, strict=True)",
                                       "tf.Print(x, [x])"), no_print)


@pytest.mark.tf
@pytest.mark.parametrize("name", ["tf1_renames", "tf1_renames_helpers"])
def test_converted_pair_verifies(name):
    """`verify` runs the TF1 program (stand-in) and the converted one and compares losses,
    gradients, weights and batch-norm statistics step by step."""
    old = FIXTURES / "rewrite" / f"{name}.before.py"
    new = FIXTURES / "rewrite" / f"{name}.after.py"
    run = run_cli("verify", old, new, timeout=600)
    output = (run.stdout + run.stderr).decode(errors="replace")
    assert run.returncode == 0, output[-3000:]
    assert re.search(r"loss/train_step .* PASS", output), output[-3000:]


def test_a_file_no_rewrite_converts_keeps_its_tf1_spellings_byte_for_byte():
    """No global rename: TF1 code that no rewrite converts is not touched at all."""
    source = (b"import tensorflow as tf\r\n\r\n\r\ndef log_loss(p):\r\n"
              b"    return -tf.reduce_mean(tf.log(p + 1e-6), keep_dims=True)  # TF1\r\n\r\n\r\n"
              b"def noise(n):\r\n    return tf.to_float(tf.random_normal([n, 4]) > 0)\r\n")
    result = migrate_source(source, "ops.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None and not result.changed


# -- helpers of another file of the tree (ops.py / model.py) --------------------------------------
TREE_OPS = '''import tensorflow as tf


def binary_cross_entropy(preds, targets, eps=1e-8):
    return tf.reduce_mean(-(targets * tf.log(preds + eps) + (1. - targets) * tf.log(1. - preds + eps)))


def center(h):
    return h - tf.reduce_mean(h, reduction_indices=[1], keep_dims=True)


def log_likelihood(preds, eps=1e-8):
    return tf.reduce_mean(tf.log(preds + eps), keep_dims=True)


def printed(loss):
    return tf.Print(loss, [loss], "loss: ")


def lrelu(x, leak=0.2):
    return tf.maximum(x, leak * x)


def dense_bn(x, units, is_training, name):
    h = tf.layers.dense(x, units, use_bias=False, name=name)
    return tf.layers.batch_normalization(h, training=is_training, name=name + "_bn")
'''
TREE_MODEL = '''import numpy as np
import tensorflow as tf
from pkg import ops
from pkg.ops import *


def discriminator(x, is_training):
    h = lrelu(center({features}))
    return tf.nn.sigmoid(tf.layers.dense(h, 1, name="d_out"))


def main():
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    probs = discriminator(x, True)
    loss = {loss}
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    data = np.random.RandomState(0).randn(16, 4).astype(np.float32)
    labels = (data[:, :1] > 0).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(3):
            _, value = sess.run([train_op, loss], feed_dict={{x: data, y: labels}})
    return value
'''


def _ops_tree(root, loss="ops.binary_cross_entropy(probs, y)",
              features='dense_bn(x, 8, is_training, "d_fc")'):
    for rel, text in {"pkg/__init__.py": "", "pkg/ops.py": TREE_OPS,
                      "pkg/model.py": TREE_MODEL.format(loss=loss, features=features)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_helper_of_another_file_is_renamed_in_its_file(tmp_path, jobs):
    """The model (through `from pkg.ops import *`) and its train step (through `from pkg import
    ops`)
    convert; the helpers they call are renamed in ops.py, decided by the tree index before any
    file is written (the same for every -j); `log_likelihood`, which no converted code calls,
    keeps its bytes."""
    src = _ops_tree(tmp_path / "src")
    result = run_cli("apply", src, "--out", tmp_path / "out", "-j", jobs)
    assert result.returncode == 0 and not result.stderr, result.stdout.decode()[-2000:]
    model = (tmp_path / "out" / "pkg" / "model.py").read_text()
    assert "class Discriminator(tf.keras.Model)" in model and "def train_step(" in model
    assert "tf-migrate: TFM" not in model
    old, new = _functions(TREE_OPS), _functions((tmp_path / "out" / "pkg" / "ops.py").read_text())
    assert new["binary_cross_entropy"] == old["binary_cross_entropy"].replace("tf.log(", "tf.math.log(")
    assert new["center"] == old["center"].replace("reduction_indices=", "axis=").replace(
        "keep_dims=", "keepdims=")
    for name in ("log_likelihood", "printed", "lrelu"):
        assert new[name] == old[name], name
    assert "dense_bn" not in new  # DenseBn, a class now
    again = run_cli("diff", tmp_path / "out")  # rewriting twice changes nothing
    assert again.returncode == 0, again.stdout.decode()[-2000:]


@pytest.mark.parametrize("loss, features, reason", [
    # the program stays TF1 (tf.Print): its model rolls back, and nothing calls the helpers
    # (the tree index blocks dense_bn first: the reason reported is the resulting one)
    ("tf.Print(binary_cross_entropy(probs, y), [probs])", 'dense_bn(x, 8, is_training, "d_fc")',
     None),
    # a helper of another file without an exact TF 2 spelling refuses its caller, with why
    ("printed(binary_cross_entropy(probs, y))", 'tf.layers.dense(x, 8, name="d_fc")',
     "it calls `printed` of module `pkg.ops`, which uses TF1-only API: tf.Print has no TF2 "
     "mapping yet"),
])
def test_helpers_of_another_file_stay_when_their_callers_do(tmp_path, loss, features, reason):
    src = _ops_tree(tmp_path / "src", loss, features)
    result = run_cli("apply", src, "--out", tmp_path / "out", "--format", "json")
    assert not result.stderr, result.stderr
    report = json.loads(result.stdout.decode())
    messages = [f["message"] for e in report["files"] for f in e["findings"] if f["code"] == "TFM401"]
    assert messages and (reason is None or any(reason in m for m in messages)), messages
    old, new = _functions(TREE_OPS), _functions((tmp_path / "out" / "pkg" / "ops.py").read_text())
    for name in ("binary_cross_entropy", "center", "log_likelihood", "printed", "lrelu"):
        assert new[name] == old[name], name  # every plain helper keeps its bytes
    assert "def discriminator(" in (tmp_path / "out" / "pkg" / "model.py").read_text()


@pytest.mark.tf
def test_a_tree_with_renamed_helpers_trains_under_tf2(tmp_path):
    import subprocess
    import sys

    from tests.conftest import cli_env

    src = _ops_tree(tmp_path / "src")
    assert run_cli("apply", src, "--out", tmp_path / "out").returncode == 0
    env = cli_env(PYTHONPATH=str(tmp_path / "out"), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    code = "import numpy as np\nfrom pkg.model import main\nassert np.isfinite(float(main()))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
