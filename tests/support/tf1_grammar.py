"""A small grammar of TF1 model/training programs, as hypothesis strategies.

It produces the patterns the rules look for, in the spellings users write:
batch norm through tf.layers (function and class), tf.contrib.layers, slim
(direct, as `normalizer_fn` in `arg_scope`), with varied arguments and import
aliases; UPDATE_OPS collected and used through `control_dependencies` around
`minimize`, through `tf.group`, or forgotten. Around them sit "untouched"
blocks (helpers without TensorFlow, comments, odd formatting, tabs) that every
migration must leave byte for byte as they were: `Program.untouched` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from hypothesis import strategies as st

# (import lines, expression for the tf module, expression for slim or None)
IMPORTS = [
    ("import tensorflow as tf\n", "tf", None),
    ("import tensorflow.compat.v1 as tf\n", "tf", None),
    ("import tensorflow as tf\nslim = tf.contrib.slim\n", "tf", "slim"),
    ("import tensorflow as tf\nfrom tensorflow.contrib import slim\n", "tf", "slim"),
    ("import tensorflow as tf\nimport tensorflow.contrib.slim as slim\n", "tf", "slim"),
    ("import tensorflow as tf\nimport tf_slim as slim\n", "tf", "slim"),
    ("import tensorflow as tensorflow_v1\n", "tensorflow_v1", None),
    ("import tensorflow as tf\nimport tensorflow.contrib as tf_contrib\n", "tf", None),
]

UNTOUCHED_BLOCKS = [
    "def _count(items):\n    # no TensorFlow in here\n    return len( items )  # odd spacing kept\n",
    "def _tabbed(a, b):\n\tif a:\n\t\treturn a  # tab-indented\n\treturn b\n",
    "CONSTANTS = {\n    'lr': 1e-3,   # aligned\n    'steps' : 10,\n}\n",
    "# a comment block\n#   with indentation\n\n\n# and blank lines\n",
    "def _long(x,\n          y=(1,\n             2)):\n    return x \\\n        + y[0]\n",
    "class _Plain(object):\n    '''Docstring with caf\u00e9 and \u00fcmlauts.'''\n    pass\n",
    "_lambda = lambda v: (v,\n                     v)\n",
]


@dataclass
class Program:
    source: str
    untouched: List[str]  # blocks that must appear verbatim in every output


def _kwargs(draw, options):
    chosen = draw(st.lists(st.sampled_from(options), unique_by=lambda kv: kv[0], max_size=3))
    return "".join(f", {k}={v}" for k, v in chosen)


@st.composite
def batch_norm_call(draw, tf: str, slim, var: str, is_training: str):
    forms = ["layers", "layers_class", "contrib", "compat_layers"]
    if slim:
        forms += ["slim", "slim"]
    form = draw(st.sampled_from(forms))
    if form == "layers":
        extra = _kwargs(draw, [("momentum", "0.9"), ("epsilon", "1e-5"), ("fused", "False"),
                               ("name", "'bn'"), ("center", "True"), ("scale", "False")])
        return f"{var} = {tf}.layers.batch_normalization({var}, training={is_training}{extra})\n"
    if form == "compat_layers":
        return f"{var} = {tf}.compat.v1.layers.batch_normalization({var}, training={is_training})\n"
    if form == "layers_class":
        return (f"{var} = {tf}.layers.BatchNormalization(momentum=0.99)"
                f"({var}, training={is_training})\n")
    if form == "contrib":
        extra = _kwargs(draw, [("decay", "0.9"), ("scale", "True"), ("epsilon", "1e-3"),
                               ("updates_collections", "None"), ("scope", "'bn'"),
                               ("activation_fn", f"{tf}.nn.relu"), ("data_format", "'NCHW'")])
        return f"{var} = {tf}.contrib.layers.batch_norm({var}, is_training={is_training}{extra})\n"
    extra = _kwargs(draw, [("decay", "0.997"), ("scale", "True"), ("fused", "True"),
                           ("scope", "'bn'"), ("renorm", "True")])
    return f"{var} = {slim}.batch_norm({var}, is_training={is_training}{extra})\n"


@st.composite
def model_function(draw, tf: str, slim, index: int):
    name = f"model_{index}"
    lines = [f"def {name}(x, is_training):\n"]
    body = []
    for layer in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "dense", "bn", "bn", "relu"]))
        if kind == "conv":
            body.append(f"x = {tf}.layers.conv2d(x, {8 * (layer + 1)}, 3, padding='same')\n")
        elif kind == "dense":
            body.append(f"x = {tf}.layers.dense(x, {4 * (layer + 1)})\n")
        elif kind == "relu":
            body.append(f"x = {tf}.nn.relu(x)\n")
        else:
            body.append(draw(batch_norm_call(tf, slim, "x", "is_training")))
    if not any("atch" in line for line in body):  # every model has at least one batch norm
        body.append(draw(batch_norm_call(tf, slim, "x", "is_training")))
    if slim and draw(st.booleans()):
        scoped = [f"with {slim}.arg_scope([{slim}.conv2d], normalizer_fn={slim}.batch_norm,\n",
                  f"                    normalizer_params={{'is_training': is_training}}):\n",
                  f"    x = {slim}.conv2d(x, 8, [3, 3])\n"]
        body = scoped + body
    if draw(st.booleans()):
        # The seed anti-pattern: a batch norm built under control_dependencies([op]).
        body = ([f"counter = {tf}.assign_add({tf}.train.get_or_create_global_step(), 1)\n",
                 f"with {tf}.control_dependencies([counter]):\n",
                 "    " + draw(batch_norm_call(tf, slim, "x", "is_training"))] + body)
    lines += ["    " + line for line in body]
    lines.append("    return x\n")
    return name, "".join(lines)


@st.composite
def training_block(draw, tf: str, model: str):
    opt = draw(st.sampled_from([f"{tf}.train.AdamOptimizer(1e-3)",
                                f"{tf}.train.GradientDescentOptimizer(0.1)",
                                f"{tf}.train.MomentumOptimizer(0.1, 0.9)"]))
    lines = [
        "def train(features, labels):\n",
        f"    is_training = {tf}.placeholder_with_default(True, [])\n",
        f"    logits = {model}(features, is_training)\n",
        f"    loss = {tf}.reduce_mean({tf}.square(logits - labels))\n",
        f"    optimizer = {opt}\n",
    ]
    pattern = draw(st.sampled_from(["control_deps", "control_deps_key", "group", "forgotten"]))
    if pattern == "control_deps":
        lines += [f"    update_ops = {tf}.get_collection({tf}.GraphKeys.UPDATE_OPS)\n",
                  f"    with {tf}.control_dependencies(update_ops):\n",
                  "        train_op = optimizer.minimize(loss)\n"]
    elif pattern == "control_deps_key":
        lines += [f"    with {tf}.control_dependencies({tf}.get_collection("
                  f"{tf}.GraphKeys.UPDATE_OPS)):\n",
                  "        train_op = optimizer.minimize(loss)\n"]
    elif pattern == "group":
        lines += [f"    update_ops = {tf}.get_collection({tf}.GraphKeys.UPDATE_OPS)\n",
                  "    train_op = optimizer.minimize(loss)\n",
                  f"    train_op = {tf}.group(train_op, update_ops)\n"]
    else:
        lines += ["    train_op = optimizer.minimize(loss)\n"]
    lines.append("    return train_op, loss\n")
    return "".join(lines)


@st.composite
def tf1_programs(draw):
    imports, tf, slim = draw(st.sampled_from(IMPORTS))
    if imports.endswith("as tf_contrib\n"):
        slim = "tf_contrib.slim"
    untouched = draw(st.lists(st.sampled_from(UNTOUCHED_BLOCKS), unique=True, max_size=3))
    chunks = [draw(st.sampled_from(["", '"""A generated TF1 program."""\n'])), imports, "\n\n"]
    functions = []
    for index in range(draw(st.integers(1, 2))):
        name, text = draw(model_function(tf, slim, index))
        functions.append(name)
        chunks += [text, "\n\n"]
    chunks += [draw(training_block(tf, functions[-1])), "\n\n"]
    # Untouched blocks go between and after the TF code.
    positions = draw(st.lists(st.integers(0, len(chunks)), min_size=len(untouched),
                              max_size=len(untouched)))
    for block, position in sorted(zip(untouched, positions), key=lambda p: -p[1]):
        chunks.insert(position, "\n\n" + block + "\n\n")
    source = "".join(chunks)
    if draw(st.booleans()):
        source = source.rstrip("\n") + "\n"
    return Program(source, untouched)
