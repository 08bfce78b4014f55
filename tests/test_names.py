"""Name resolution: every import spelling of one TF API resolves to the same canonical name."""

import ast

import pytest

from migrate.names import ImportResolver, canonical

CONTRIB_BN = "tf_slim.batch_norm"
LAYERS_BN = "tensorflow.layers.batch_normalization"


def resolve(source: str, expr: str):
    resolver = ImportResolver(ast.parse(source))
    return resolver.resolve(ast.parse(expr, mode="eval").body)


@pytest.mark.parametrize("source, expr, expected", [
    ("import tensorflow as tf", "tf.layers.batch_normalization", LAYERS_BN),
    ("import tensorflow.compat.v1 as tf", "tf.layers.batch_normalization", LAYERS_BN),
    ("import tensorflow as tf", "tf.compat.v1.layers.batch_normalization", LAYERS_BN),
    ("from tensorflow import layers", "layers.batch_normalization", LAYERS_BN),
    ("from tensorflow.compat import v1 as tf", "tf.layers.batch_normalization", LAYERS_BN),
    ("from tensorflow.compat.v1 import layers", "layers.batch_normalization", LAYERS_BN),
    ("import tensorflow", "tensorflow.layers.batch_normalization", LAYERS_BN),
    ("from tensorflow.contrib import slim", "slim.batch_norm", CONTRIB_BN),
    ("import tensorflow.contrib.slim as slim", "slim.batch_norm", CONTRIB_BN),
    ("import tensorflow as tf\nslim = tf.contrib.slim", "slim.batch_norm", CONTRIB_BN),
    ("import tensorflow.contrib as tf_contrib", "tf_contrib.layers.batch_norm", CONTRIB_BN),
    ("import tf_slim as slim", "slim.batch_norm", CONTRIB_BN),
    ("import tf_slim as slim", "slim.layers.batch_norm", CONTRIB_BN),
    ("from tensorflow.contrib.layers import batch_norm", "batch_norm", CONTRIB_BN),
    ("import tensorflow as tf", "tf.contrib.layers.batch_norm", CONTRIB_BN),
    ("import tensorflow.compat.v1 as tf", "tf.contrib.slim.batch_norm", CONTRIB_BN),
    ("import tensorflow as tf", "tf.contrib.framework.arg_scope", "tf_slim.arg_scope"),
    ("import tensorflow as tf", "tf.keras.layers.BatchNormalization", "keras.layers.BatchNormalization"),
    ("import tensorflow as tf\nlayers = tf.layers", "layers.batch_normalization", LAYERS_BN),
    ("try:\n    import tensorflow.compat.v1 as tf\nexcept ImportError:\n    import tensorflow as tf",
     "tf.layers.batch_normalization", LAYERS_BN),
    ("def f():\n    import tensorflow as tf", "tf.layers.batch_normalization", LAYERS_BN),
])
def test_every_spelling_resolves_to_the_canonical_api(source, expr, expected):
    assert resolve(source, expr) == expected


@pytest.mark.parametrize("source, expr", [
    ("import mylib as tf", "tf.layers.batch_normalization"),
    ("from . import layers", "layers.batch_normalization"),
    ("import layers", "layers.batch_normalization"),
    ("import tensorflow as tf\nslim = tf.contrib.slim\nslim = object()", "slim.batch_norm"),
    ("", "tf.layers.batch_normalization"),
    ("import tensorflow as tf", "self.tf.layers.batch_normalization"),
])
def test_names_that_are_not_tensorflow_do_not_resolve(source, expr):
    assert resolve(source, expr) is None


def test_module_level_import_wins_over_an_import_inside_a_function():
    source = "import tensorflow.compat.v1 as tf\ndef f():\n    import numpy as tf\n"
    assert resolve(source, "tf.layers.dense") == "tensorflow.layers.dense"


def test_canonical_is_idempotent():
    for name in ("tensorflow.compat.v1.contrib.slim.batch_norm", "tf_slim.layers.layers.batch_norm",
                 "tensorflow.keras.layers.Dense", "tensorflow.layers.dense"):
        assert canonical(canonical(name)) == canonical(name)
