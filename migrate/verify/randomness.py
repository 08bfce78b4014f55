"""Random ops a program calls itself (WGAN-GP's interpolation weight `alpha`, noise drawn in the
graph, `tf.Variable(tf.random_normal(...))` initial values) cannot be matched across TF1 and
TF2: TF1 drew them per sess.run from its graph-level seed, the migrated step draws them per call
from TF2's generator. During verification each becomes a *stateless* draw whose seed is derived
from its arguments (kind, shape, range or mean/stddev, dtype): the same values on both sides,
in the TF1 graph, eagerly and under tf.function (measured identical), and a fixed sample at
every step. Calls with identical arguments draw identical values. The report says so.

Only the API modules the programs read are patched (`tf.random_uniform`, `tf.random.uniform`
of `tensorflow.compat.v1` on the old side, of `tensorflow` on the new side): the initializers
of tf_keras and Keras 3 reach their random ops through other modules and stay as they are."""

import numbers
import zlib

RANDOM = {"sites": 0}

# attribute -> kind, on an API module and on its `random` submodule
_TOP = {"random_uniform": "uniform", "random_normal": "normal", "truncated_normal": "truncated"}
_SUB = {"uniform": "uniform", "normal": "normal", "truncated_normal": "truncated"}


def _static(value):
    """A hashable stand-in for an argument: its Python value, else a marker for a tensor (whose
    value is known eagerly but not in a graph: the seed then depends on the rest only)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Number):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_static(v) for v in value)
    return "<tensor>"


def _seed(*key):
    return [zlib.crc32(repr(key).encode()) & 0x7FFFFFFF, 0]


def disable_random_ops(tf, api):
    """Patch `api` (a TensorFlow API module: tensorflow.compat.v1, or tensorflow) and its
    `random` submodule; `tf` gives the dtypes."""
    from tensorflow.python.ops import stateless_random_ops as stateless

    def uniform(shape, minval=0, maxval=None, dtype=tf.float32, seed=None, name=None):
        RANDOM["sites"] += 1
        dtype = tf.as_dtype(dtype)
        if maxval is None and not dtype.is_integer:
            maxval = 1
        key = ("uniform", _static(shape), _static(minval), _static(maxval), dtype.name)
        return stateless.stateless_random_uniform(shape, _seed(*key), minval=minval,
                                                  maxval=maxval, dtype=dtype, name=name)

    def normal(shape, mean=0.0, stddev=1.0, dtype=tf.float32, seed=None, name=None):
        RANDOM["sites"] += 1
        dtype = tf.as_dtype(dtype)
        key = ("normal", _static(shape), _static(mean), _static(stddev), dtype.name)
        return stateless.stateless_random_normal(shape, _seed(*key), mean=mean, stddev=stddev,
                                                 dtype=dtype, name=name)

    def truncated(shape, mean=0.0, stddev=1.0, dtype=tf.float32, seed=None, name=None):
        RANDOM["sites"] += 1
        dtype = tf.as_dtype(dtype)
        key = ("truncated", _static(shape), _static(mean), _static(stddev), dtype.name)
        return stateless.stateless_truncated_normal(shape, _seed(*key), mean=mean, stddev=stddev,
                                                    dtype=dtype, name=name)

    made = {"uniform": uniform, "normal": normal, "truncated": truncated}
    for module, names in ((api, _TOP), (getattr(api, "random", None), _SUB)):
        if module is None:
            continue
        for attr, kind in names.items():
            if hasattr(module, attr):
                setattr(module, attr, made[kind])


def take_sites():
    """Sites counted since the last call (old side: ops built; new side: calls and traces)."""
    sites, RANDOM["sites"] = RANDOM["sites"], 0
    return sites
