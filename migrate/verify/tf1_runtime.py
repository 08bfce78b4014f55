"""TensorFlow 1.x emulation on TensorFlow 2.x for verify's old-side process.

Adapted from the acceptance suite's legacy runner (`shared/acceptance/run_tf1.py`,
written for this project); copied here because `migrate/` must stand alone.
What `install()` does:

1. `TF_USE_LEGACY_KERAS=1` before TensorFlow is imported (tf.layers / tf.keras are
   tf-keras, Keras 2).
2. `tensorflow.compat.v1` + `disable_v2_behavior()`: graph mode, placeholders,
   Session, ref variables, v1 control flow.
3. `tf_keras.legacy_tf_layers*` aliased to `tf_keras.src.legacy_tf_layers*`, and the
   private-TF symbols tf_slim reads that TF 2.21 moved are put back.
4. a `tf.contrib` stand-in: `.layers` = tf_slim layers + contrib initializers and
   regularizers, `.slim` = tf_slim, `.framework` = arg_scope/variable helpers.
5. a `tf.estimator` stand-in (ModeKeys + EstimatorSpec only) when TF has none.
6. `sys.modules['tensorflow'] = tensorflow.compat.v1`.

Only import this module in a process that has not imported TensorFlow yet.
"""

import collections
import importlib
import os
import sys
import types

LEGACY_LAYER_MODULES = ("", ".base", ".convolutional", ".core", ".normalization", ".pooling")
CONTRIB_LAYERS_EXTRAS = (
    "xavier_initializer", "xavier_initializer_conv2d", "variance_scaling_initializer",
    "l1_regularizer", "l2_regularizer", "l1_l2_regularizer", "sum_regularizer",
    "apply_regularization", "optimize_loss", "OPTIMIZER_CLS_NAMES",
    "summarize_activation", "summarize_activations", "summarize_collection",
    "summarize_tensor", "summarize_tensors", "group_norm", "instance_norm",
    "recompute_grad")
CONTRIB_FRAMEWORK_NAMES = (
    "arg_scope", "add_arg_scope", "has_arg_scope", "arg_scoped_arguments",
    "current_arg_scope", "get_variables", "get_model_variables", "get_local_variables",
    "get_trainable_variables", "get_variables_to_restore", "get_variables_by_name",
    "get_unique_variable", "model_variable", "variable", "add_model_variable",
    "get_or_create_global_step", "get_global_step", "create_global_step",
    "assign_from_checkpoint_fn", "filter_variables")
ESTIMATOR_SPEC_FIELDS = (
    "mode", "predictions", "loss", "train_op", "eval_metric_ops", "export_outputs",
    "training_chief_hooks", "training_hooks", "scaffold", "evaluation_hooks",
    "prediction_hooks")


def _module(name, doc, attrs):
    mod = types.ModuleType(name, doc)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


def _estimator_standin():
    class ModeKeys(object):
        TRAIN = "train"
        EVAL = "eval"
        PREDICT = "infer"

    base = collections.namedtuple("EstimatorSpec", ESTIMATOR_SPEC_FIELDS)

    class EstimatorSpec(base):
        __slots__ = ()

        def __new__(cls, mode, predictions=None, loss=None, train_op=None, **kwargs):
            if mode == ModeKeys.TRAIN and (loss is None or train_op is None):
                raise ValueError("EstimatorSpec: TRAIN mode needs loss and train_op.")
            if mode == ModeKeys.EVAL and loss is None:
                raise ValueError("EstimatorSpec: EVAL mode needs loss.")
            if mode == ModeKeys.PREDICT and predictions is None:
                raise ValueError("EstimatorSpec: PREDICT mode needs predictions.")
            fields = dict.fromkeys(ESTIMATOR_SPEC_FIELDS)
            fields.update(kwargs, mode=mode, predictions=predictions, loss=loss,
                          train_op=train_op)
            return base.__new__(cls, **fields)

    return _module("tensorflow.estimator",
                   "Stand-in for tf.estimator (absent in this TensorFlow): ModeKeys "
                   "and EstimatorSpec only.",
                   {"ModeKeys": ModeKeys, "EstimatorSpec": EstimatorSpec, "STANDIN": True})


def _restore_moved_symbols():
    from tensorflow.python.framework import indexed_slices, ops, tensor
    from tensorflow.python.ops import (array_ops, array_ops_stack, cond,
                                       control_flow_assert, control_flow_case,
                                       control_flow_ops, variable_scope, variable_v1,
                                       while_loop)
    moved = [(ops, "Tensor", tensor.Tensor),
             (ops, "IndexedSlices", indexed_slices.IndexedSlices),
             (control_flow_ops, "cond", cond.cond),
             (control_flow_ops, "case", control_flow_case.case),
             (control_flow_ops, "Assert", control_flow_assert.Assert),
             (control_flow_ops, "while_loop", while_loop.while_loop),
             (array_ops, "stack", array_ops_stack.stack),
             (array_ops, "unstack", array_ops_stack.unstack),
             (variable_scope, "variable", variable_v1.VariableV1)]
    for module, name, value in moved:
        if not hasattr(module, name):
            setattr(module, name, value)


_INSTALLED = []


def install():
    """Make `import tensorflow as tf` behave like TensorFlow 1.x; return tf (idempotent)."""
    if _INSTALLED:
        return _INSTALLED[0]
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow.compat.v1 as tf1
    tf1.disable_v2_behavior()
    _restore_moved_symbols()

    import tf_keras
    for suffix in LEGACY_LAYER_MODULES:
        mod = importlib.import_module("tf_keras.src.legacy_tf_layers" + suffix)
        sys.modules["tf_keras.legacy_tf_layers" + suffix] = mod
    tf_keras.legacy_tf_layers = sys.modules["tf_keras.legacy_tf_layers"]

    import tf_slim
    layer_attrs = {n: v for n, v in vars(tf_slim.layers).items()
                   if not n.startswith("_") and not isinstance(v, types.ModuleType)
                   and n not in ("absolute_import", "division", "print_function")}
    layer_attrs.update({n: getattr(tf_slim, n) for n in CONTRIB_LAYERS_EXTRAS
                        if hasattr(tf_slim, n)})
    layers = _module("tensorflow.contrib.layers", "tf.contrib.layers (tf_slim).", layer_attrs)
    framework = _module("tensorflow.contrib.framework", "tf.contrib.framework (tf_slim).",
                        {n: getattr(tf_slim, n) for n in CONTRIB_FRAMEWORK_NAMES
                         if hasattr(tf_slim, n)})
    sys.modules["tensorflow.contrib.slim"] = tf_slim
    contrib = _module("tensorflow.contrib", "tf.contrib stand-in (tf_slim).",
                      {"layers": layers, "slim": tf_slim, "framework": framework})
    estimator = None if hasattr(tf1, "estimator") else _estimator_standin()
    for api in {id(m): m for m in (tf1, tf1.compat.v1)}.values():
        api.contrib = contrib
        if estimator is not None:
            api.estimator = estimator

    tf1.layers.batch_normalization, tf1.layers.BatchNormalization
    tf1.keras.layers.BatchNormalization
    sys.modules["tensorflow"] = tf1
    _INSTALLED.append(tf1)
    return tf1
