"""How each TF1 layer call maps onto a Keras 3 layer: constructor, call, activation, names.

One table per API family. `map_layer_call` turns one TF1 call (its canonical
name, positional args and keyword args as libcst expressions, with slim
arg_scope defaults already merged in) into a `KerasLayer`: the constructor
source, how the layer is called, the activation to apply after it, and the
TF1 name it had (for the variable correspondence verify and checkpoint
conversion use).

Defaults that differ between TF1 and Keras are written out (slim's ReLU,
`padding="same"`, contrib batch-norm defaults); arguments with no Keras
equivalent raise `Unmappable`, which leaves the whole function unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from migrate import bn_mapping
from migrate.lazy_libcst import EmptyModule, cst  # `check` reads LAYER_APIS without libcst

_RENDER = EmptyModule()


def render(node) -> str:
    if isinstance(node, bn_mapping.Code):
        return node.text
    if isinstance(node, str):
        return node
    return _RENDER.code_for_node(node)


class Unmappable(Exception):
    """This call cannot be rewritten safely; the message says why."""


@dataclass
class KerasLayer:
    keras_class: str  # e.g. "Conv2D"
    ctor_args: List[Tuple[Optional[str], object]]  # (keyword or None, expr)
    tensor: object  # the input tensor expression
    training: object = None  # expr for `training=` when the layer takes it
    activation: object = None  # expr of a callable applied to the output
    tf1_name: object = None  # expr of the TF1 layer/scope name, if given
    auto_name: str = ""  # TF1's default name stem (dense, conv2d, batch_normalization, ...)
    # TF1 variable name -> Keras weight name inside this layer (slim renames them).
    weight_names: Dict[str, str] = field(default_factory=dict)
    batch_norm: Optional[bn_mapping.KerasBatchNorm] = None
    # A batch norm (and activation) the layer runs after itself (slim normalizer_fn).
    followed_by: Optional["KerasLayer"] = None

    custom_class: bool = False  # a class the rewrite defines in the module (not tf.keras.layers)

    def constructor(self, name_expr: Optional[str]) -> str:
        parts = []
        for key, value in self.ctor_args:
            parts.append(render(value) if key is None else f"{key}={render(value)}")
        if name_expr is not None:
            parts.append(f"name={name_expr}")
        prefix = "" if self.custom_class else "tf.keras.layers."
        return f"{prefix}{self.keras_class}({', '.join(parts)})"


def _literal(node):
    """Python value of a simple libcst literal, else bn_mapping.NOT_LITERAL."""
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.value) if isinstance(node, cst.Float) else int(node.value, 0)
    if isinstance(node, cst.SimpleString):
        return node.evaluated_value
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _literal(node.expression)
        if isinstance(inner, (int, float)):
            return -inner
    if isinstance(node, cst.Dict):
        out = {}
        for element in node.elements:
            if not isinstance(element, cst.DictElement):
                return bn_mapping.NOT_LITERAL
            key = _literal(element.key)
            if not isinstance(key, str):
                return bn_mapping.NOT_LITERAL
            out[key] = element.value
        return out
    if isinstance(node, (cst.List, cst.Tuple)):
        values = [_literal(e.value) for e in node.elements]
        if any(v is bn_mapping.NOT_LITERAL for v in values):
            return bn_mapping.NOT_LITERAL
        return values
    return bn_mapping.NOT_LITERAL


literal = _literal

# -- tf.layers ---------------------------------------------------------------------------------
# canonical name -> (Keras class, TF1 positional parameters after `inputs`, number of them Keras
# takes positionally in the same order, TF1 auto-name stem)
_TF_LAYERS = {
    "tensorflow.layers.conv1d": ("Conv1D", ("filters", "kernel_size", "strides", "padding",
                                            "data_format", "dilation_rate", "activation",
                                            "use_bias", "kernel_initializer", "bias_initializer",
                                            "kernel_regularizer", "bias_regularizer",
                                            "activity_regularizer", "kernel_constraint",
                                            "bias_constraint", "trainable", "name", "reuse"), 2, "conv1d"),
    "tensorflow.layers.conv2d": ("Conv2D", ("filters", "kernel_size", "strides", "padding",
                                            "data_format", "dilation_rate", "activation",
                                            "use_bias", "kernel_initializer", "bias_initializer",
                                            "kernel_regularizer", "bias_regularizer",
                                            "activity_regularizer", "kernel_constraint",
                                            "bias_constraint", "trainable", "name", "reuse"), 2, "conv2d"),
    "tensorflow.layers.conv3d": ("Conv3D", ("filters", "kernel_size", "strides", "padding",
                                            "data_format", "dilation_rate", "activation",
                                            "use_bias", "kernel_initializer", "bias_initializer",
                                            "kernel_regularizer", "bias_regularizer",
                                            "activity_regularizer", "kernel_constraint",
                                            "bias_constraint", "trainable", "name", "reuse"), 2, "conv3d"),
    "tensorflow.layers.conv2d_transpose": ("Conv2DTranspose", (
        "filters", "kernel_size", "strides", "padding", "data_format", "activation", "use_bias",
        "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
        "activity_regularizer", "kernel_constraint", "bias_constraint", "trainable", "name",
        "reuse"), 2, "conv2d_transpose"),
    "tensorflow.layers.dense": ("Dense", ("units", "activation", "use_bias", "kernel_initializer",
                                          "bias_initializer", "kernel_regularizer",
                                          "bias_regularizer", "activity_regularizer",
                                          "kernel_constraint", "bias_constraint", "trainable",
                                          "name", "reuse"), 1, "dense"),
    "tensorflow.layers.max_pooling2d": ("MaxPooling2D", ("pool_size", "strides", "padding",
                                                         "data_format", "name"), 2, "max_pooling2d"),
    "tensorflow.layers.average_pooling2d": ("AveragePooling2D", ("pool_size", "strides", "padding",
                                                                 "data_format", "name"), 2,
                                            "average_pooling2d"),
    "tensorflow.layers.max_pooling1d": ("MaxPooling1D", ("pool_size", "strides", "padding",
                                                         "data_format", "name"), 2, "max_pooling1d"),
    "tensorflow.layers.average_pooling1d": ("AveragePooling1D", ("pool_size", "strides", "padding",
                                                                 "data_format", "name"), 2,
                                            "average_pooling1d"),
    "tensorflow.layers.flatten": ("Flatten", ("name", "data_format"), 0, "flatten"),
    "tensorflow.layers.dropout": ("Dropout", ("rate", "noise_shape", "seed", "training", "name"), 1,
                                  "dropout"),
}
# Class forms: constructed without inputs, called later.
_TF_LAYER_CLASSES = {
    "tensorflow.layers.Dense": "Dense", "tensorflow.layers.Conv1D": "Conv1D",
    "tensorflow.layers.Conv2D": "Conv2D", "tensorflow.layers.Conv3D": "Conv3D",
    "tensorflow.layers.Conv2DTranspose": "Conv2DTranspose", "tensorflow.layers.Dropout": "Dropout",
    "tensorflow.layers.Flatten": "Flatten", "tensorflow.layers.MaxPooling2D": "MaxPooling2D",
    "tensorflow.layers.AveragePooling2D": "AveragePooling2D",
}
_TF1_ONLY_ARGS = {"reuse": "variable reuse is calling the same layer object again",
                  "_reuse": "variable reuse is calling the same layer object again"}

# -- contrib / slim -------------------------------------------------------------------------------
_SLIM_CONV = ("num_outputs", "kernel_size", "stride", "padding", "data_format", "rate",
              "activation_fn", "normalizer_fn", "normalizer_params", "weights_initializer",
              "weights_regularizer", "biases_initializer", "biases_regularizer", "reuse",
              "variables_collections", "outputs_collections", "trainable", "scope")
_SLIM_FC = ("num_outputs", "activation_fn", "normalizer_fn", "normalizer_params",
            "weights_initializer", "weights_regularizer", "biases_initializer",
            "biases_regularizer", "reuse", "variables_collections", "outputs_collections",
            "trainable", "scope")
_SLIM_POOL = ("kernel_size", "stride", "padding", "data_format", "outputs_collections", "scope")
_SLIM = {
    "tf_slim.conv2d": ("Conv2D", _SLIM_CONV, "Conv"),
    "tf_slim.convolution2d": ("Conv2D", _SLIM_CONV, "Conv"),
    "tf_slim.conv2d_transpose": ("Conv2DTranspose", _SLIM_CONV, "Conv2d_transpose"),
    "tf_slim.convolution2d_transpose": ("Conv2DTranspose", _SLIM_CONV, "Conv2d_transpose"),
    "tf_slim.fully_connected": ("Dense", _SLIM_FC, "fully_connected"),
    "tf_slim.max_pool2d": ("MaxPooling2D", _SLIM_POOL, "MaxPool2D"),
    "tf_slim.avg_pool2d": ("AveragePooling2D", _SLIM_POOL, "AvgPool2D"),
    "tf_slim.flatten": ("Flatten", ("outputs_collections", "scope"), "Flatten"),
    "tf_slim.dropout": ("Dropout", ("keep_prob", "noise_shape", "is_training",
                                    "outputs_collections", "scope", "seed"), "Dropout"),
}

# Initializers whose Keras 3 spelling is known (weights are transferred by verify anyway;
# these matter for training from scratch).
_INITIALIZERS = {
    "tf_slim.xavier_initializer": "tf.keras.initializers.GlorotUniform",
    "tf_slim.xavier_initializer_conv2d": "tf.keras.initializers.GlorotUniform",
    "tensorflow.glorot_uniform_initializer": "tf.keras.initializers.GlorotUniform",
    "tensorflow.glorot_normal_initializer": "tf.keras.initializers.GlorotNormal",
    "tensorflow.zeros_initializer": "tf.keras.initializers.Zeros",
    "tensorflow.ones_initializer": "tf.keras.initializers.Ones",
    "tensorflow.constant_initializer": "tf.keras.initializers.Constant",
    "tensorflow.truncated_normal_initializer": "tf.keras.initializers.TruncatedNormal",
    "tensorflow.random_normal_initializer": "tf.keras.initializers.RandomNormal",
    "tensorflow.random_uniform_initializer": "tf.keras.initializers.RandomUniform",
    "tensorflow.keras.initializers.he_normal": "tf.keras.initializers.HeNormal",
    # Same defaults in TF1 and Keras (scale 1, fan_in, truncated normal).
    "tensorflow.variance_scaling_initializer": "tf.keras.initializers.VarianceScaling",
    "tensorflow.initializers.variance_scaling": "tf.keras.initializers.VarianceScaling",
    "tensorflow.initializers.glorot_uniform": "tf.keras.initializers.GlorotUniform",
    "tensorflow.initializers.zeros": "tf.keras.initializers.Zeros",
}

LAYER_APIS = frozenset(_TF_LAYERS) | frozenset(_SLIM) | frozenset(
    n for n, api in bn_mapping.API_BY_CANONICAL.items() if api in (bn_mapping.LAYERS_FUNCTION,
                                                                   bn_mapping.CONTRIB))
LAYER_CLASS_APIS = frozenset(_TF_LAYER_CLASSES) | {"tensorflow.layers.BatchNormalization",
                                                   "keras.layers.BatchNormalization"}


def _bind(params: Sequence[str], args: Sequence[cst.Arg]) -> Dict[str, object]:
    bound: Dict[str, object] = {}
    positional = [a for a in args if a.keyword is None and not a.star]
    if any(a.star for a in args):
        raise Unmappable("*args/**kwargs in a layer call cannot be mapped statically")
    for name, arg in zip(params, positional):
        bound[name] = arg.value
    if len(positional) > len(params):
        raise Unmappable("more positional arguments than the TF1 signature has")
    for arg in args:
        if arg.keyword is not None:
            bound[arg.keyword.value] = arg.value
    return bound


def map_initializer(expr, resolve) -> object:
    if isinstance(expr, cst.Call):
        name = resolve(expr.func)
        if name in _INITIALIZERS:
            args = ", ".join(render(a).rstrip(", ") for a in expr.args)
            return bn_mapping.Code(f"{_INITIALIZERS[name]}({args})")
    name = resolve(expr)
    if name is not None and (name.startswith("tensorflow.") or name.startswith("tf_slim.")):
        raise Unmappable(f"initializer {render(expr)} has no known Keras 3 mapping")
    return expr


# TF1 regularizers -> Keras 3 regularizers with the same value. contrib/slim's
# l2_regularizer(scale) is scale * tf.nn.l2_loss(w) = scale * sum(w**2) / 2, Keras' l2(l) is
# l * sum(w**2): the Keras factor is scale / 2 (halving is exact in binary floating point).
# l1 is scale * sum(|w|) on both sides. TF1's tf.keras.regularizers were already Keras' formulas.
_REGULARIZERS = {
    "tf_slim.l2_regularizer": ("tf.keras.regularizers.l2", (("scale", "l2", 0.5, None),)),
    "tf_slim.l1_regularizer": ("tf.keras.regularizers.l1", (("scale", "l1", 1.0, None),)),
    "tf_slim.l1_l2_regularizer": ("tf.keras.regularizers.L1L2", (("scale_l1", "l1", 1.0, 1.0),
                                                                 ("scale_l2", "l2", 0.5, 1.0))),
}
_KERAS_REGULARIZERS = {
    "tensorflow.keras.regularizers.l2": "tf.keras.regularizers.l2",
    "tensorflow.keras.regularizers.L2": "tf.keras.regularizers.L2",
    "tensorflow.keras.regularizers.l1": "tf.keras.regularizers.l1",
    "tensorflow.keras.regularizers.L1": "tf.keras.regularizers.L1",
    "tensorflow.keras.regularizers.l1_l2": "tf.keras.regularizers.l1_l2",
    "tensorflow.keras.regularizers.L1L2": "tf.keras.regularizers.L1L2",
}


def _scaled(value, factor: float) -> str:
    if factor == 1.0:
        return render(value)
    number = _literal(value)
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        return repr(number * factor)
    text = render(value)
    if not isinstance(value, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
        text = f"({text})"
    return f"{factor!r} * {text}"


def map_regularizer(expr, resolve) -> object:
    """A TF1 weights/kernel regularizer -> the Keras 3 regularizer adding the same loss, or None."""
    if _literal(expr) is None:
        return None
    if isinstance(expr, cst.Call):
        name = resolve(expr.func)
        if name in _KERAS_REGULARIZERS:
            args = ", ".join(render(a).rstrip(", ") for a in expr.args)
            return bn_mapping.Code(f"{_KERAS_REGULARIZERS[name]}({args})")
        if name in _REGULARIZERS:
            keras, params = _REGULARIZERS[name]
            bound = _bind([p for p, _, _, _ in params] + ["scope"], expr.args)
            bound.pop("scope", None)
            parts = []
            for tf1, key, factor, default in params:
                if tf1 in bound:
                    parts.append(f"{key}={_scaled(bound.pop(tf1), factor)}")
                elif default is not None:
                    parts.append(f"{key}={default * factor!r}")
                else:
                    raise Unmappable(f"{render(expr.func)} without its scale")
            if bound:
                raise Unmappable(f"argument {sorted(bound)[0]} of {render(expr.func)} has no Keras mapping")
            return bn_mapping.Code(f"{keras}({', '.join(parts)})")
    name = resolve(expr.func if isinstance(expr, cst.Call) else expr)
    if name is not None and (name.startswith("tensorflow.") or name.startswith("tf_slim.")):
        raise Unmappable(f"regularizer {render(expr)} has no known Keras 3 mapping")
    return expr  # the program's own callable: Keras calls it on the weight as TF1 did


def map_layer_call(api: str, args: Sequence[cst.Arg], keywords: Dict[str, object], resolve,
                   scope_defaults=None) -> KerasLayer:
    """`keywords` holds slim arg_scope defaults (overridden by the call's own keywords);
    `scope_defaults(api)` gives them for another function (the normalizer_fn a slim layer calls,
    which the same arg_scopes configure)."""
    if api in _TF_LAYERS:
        return _map_tf_layer(api, args, resolve)
    if api in _SLIM:
        return _map_slim(api, args, keywords, resolve, scope_defaults)
    bn_api = bn_mapping.API_BY_CANONICAL.get(api)
    if bn_api in (bn_mapping.LAYERS_FUNCTION, bn_mapping.CONTRIB):
        rest = {k: v for k, v in keywords.items()}
        for arg in args:
            if arg.keyword is not None:
                rest[arg.keyword.value] = arg.value
        positional = [a.value for a in args if a.keyword is None]
        return map_batch_norm_layer(bn_api, positional, rest)
    raise Unmappable(f"no Keras mapping for {api}")


def map_batch_norm_layer(bn_api: str, positional, keywords) -> KerasLayer:
    mapping = bn_mapping.map_batch_norm(bn_api, positional, keywords, _literal)
    blocking = [a for a, _ in mapping.unsupported if a not in ("reuse", "_reuse", "_scope",
                                                               "variables_collections",
                                                               "outputs_collections")]
    if blocking:
        raise Unmappable(f"batch norm argument {blocking[0]} has no Keras 3 equivalent")
    name = mapping.kwargs.pop("name", None)
    ctor = list(mapping.kwargs.items())
    layer = KerasLayer("BatchNormalization", [(k, v) for k, v in ctor], mapping.inputs,
                       training=mapping.training, activation=mapping.activation, tf1_name=name,
                       auto_name="batch_normalization" if bn_api != bn_mapping.CONTRIB else "BatchNorm",
                       batch_norm=mapping)
    return layer


def _map_tf_layer(api, args, resolve) -> KerasLayer:
    keras_class, params, n_positional, auto = _TF_LAYERS[api]
    bound = _bind(("inputs",) + params, args)
    tensor = bound.pop("inputs", None)
    if tensor is None:
        raise Unmappable("layer call without an input tensor")
    for arg in list(bound):
        if arg in _TF1_ONLY_ARGS:
            bound.pop(arg)
    name = bound.pop("name", None)
    training = bound.pop("training", None) if keras_class == "Dropout" else None
    if keras_class == "Dropout" and training is None:
        training = bn_mapping.Code("False")  # tf.layers.dropout defaults to inference
    if "data_format" in bound and keras_class == "Flatten":
        pass
    for key in ("kernel_initializer", "bias_initializer"):
        if key in bound and _literal(bound[key]) is not None:
            bound[key] = map_initializer(bound[key], resolve)
        elif key in bound:
            bound.pop(key)  # None: TF1 used the default (glorot_uniform / zeros), as Keras does
    for key in ("kernel_regularizer", "bias_regularizer"):
        if key in bound:
            regularizer = map_regularizer(bound.pop(key), resolve)
            if regularizer is not None:
                bound[key] = regularizer
    if "activity_regularizer" in bound and _literal(bound["activity_regularizer"]) is not None:
        # tf.layers (Keras 2) divided the activity loss by the batch size; Keras 3 does not.
        raise Unmappable("activity_regularizer: TF1 divided its loss by the batch size, Keras 3 does not")
    bound.pop("activity_regularizer", None)
    ctor: List[Tuple[Optional[str], object]] = []
    present = set(bound)
    for index, param in enumerate(params):
        if param in bound:
            positional = index < n_positional and all(p in present for p in params[:index])
            ctor.append((None if positional else param, bound.pop(param)))
    if bound:
        raise Unmappable(f"argument {sorted(bound)[0]} of {api} has no Keras mapping")
    return KerasLayer(keras_class, ctor, tensor, training=training, tf1_name=name, auto_name=auto)


def _padding(padding, default: str) -> object:
    """slim's 'SAME'/'VALID' in Keras's lower case; a parameter (vgg's `fc_conv_padding`)
    is lowered where the layer is created."""
    value = default if padding is None else _literal(padding)
    if value in ("SAME", "VALID", "same", "valid"):
        return bn_mapping.Code(repr(value.lower()))
    if isinstance(padding, cst.Name) and value is bn_mapping.NOT_LITERAL:
        return bn_mapping.Code(f"{padding.value}.lower()")
    raise Unmappable("padding is not a literal")


def _map_slim(api, args, keywords, resolve, scope_defaults=None) -> KerasLayer:
    keras_class, params, auto = _SLIM[api]
    merged = dict(keywords)
    bound_call = _bind(("inputs",) + params, args)
    merged.update(bound_call)
    tensor = merged.pop("inputs", None)
    if tensor is None:
        raise Unmappable("layer call without an input tensor")
    name = merged.pop("scope", None)
    for key in ("reuse", "variables_collections", "outputs_collections"):
        merged.pop(key, None)
    ctor: List[Tuple[Optional[str], object]] = []
    layer = KerasLayer(keras_class, ctor, tensor, tf1_name=name, auto_name=auto)

    if keras_class in ("Conv2D", "Conv2DTranspose", "Dense"):
        ctor.append((None, merged.pop("num_outputs")))
        if keras_class != "Dense":
            ctor.append((None, merged.pop("kernel_size")))
            stride = merged.pop("stride", None)
            if stride is not None and _literal(stride) not in (1, [1, 1]):
                ctor.append(("strides", stride))
            ctor.append(("padding", _padding(merged.pop("padding", None), "SAME")))
            rate = merged.pop("rate", None)
            if rate is not None and _literal(rate) not in (1, [1, 1]):
                ctor.append(("dilation_rate", rate))
            data_format = merged.pop("data_format", None)
            if data_format is not None and _literal(data_format) not in (None, "NHWC"):
                if _literal(data_format) == "NCHW":
                    ctor.append(("data_format", bn_mapping.Code("'channels_first'")))
                else:
                    raise Unmappable("data_format is not a literal")
        normalizer = merged.pop("normalizer_fn", None)
        normalizer_params = merged.pop("normalizer_params", None)
        activation = merged.pop("activation_fn", bn_mapping.Code("tf.nn.relu"))
        if _literal(activation) is None:
            activation = None
        biases_initializer = merged.pop("biases_initializer", None)
        has_normalizer = normalizer is not None and _literal(normalizer) is not None
        use_bias = not has_normalizer and not (biases_initializer is not None
                                               and _literal(biases_initializer) is None)
        if not use_bias:
            ctor.append(("use_bias", bn_mapping.Code("False")))
        weights_initializer = merged.pop("weights_initializer", None)
        if weights_initializer is not None:
            ctor.append(("kernel_initializer", map_initializer(weights_initializer, resolve)))
        if biases_initializer is not None and use_bias:
            ctor.append(("bias_initializer", map_initializer(biases_initializer, resolve)))
        for tf1, keras in (("weights_regularizer", "kernel_regularizer"),
                           ("biases_regularizer", "bias_regularizer")):
            value = merged.pop(tf1, None)
            regularizer = map_regularizer(value, resolve) if value is not None else None
            if regularizer is not None and (keras == "kernel_regularizer" or use_bias):
                # Keras collects it in model.losses; the train step adds them where TF1 read
                # the REGULARIZATION_LOSSES collection.
                ctor.append((keras, regularizer))
        trainable = merged.pop("trainable", None)
        if trainable is not None:
            ctor.append(("trainable", trainable))
        layer.weight_names = {"weights": "kernel", "biases": "bias"}
        if has_normalizer:
            normalizer_api = resolve(normalizer)
            bn_api = bn_mapping.API_BY_CANONICAL.get(normalizer_api or "")
            if bn_api not in (bn_mapping.CONTRIB, bn_mapping.LAYERS_FUNCTION):
                raise Unmappable(f"normalizer_fn {render(normalizer)} is not a batch norm")
            params_value = {} if normalizer_params is None else _literal(normalizer_params)
            if not isinstance(params_value, dict):
                raise Unmappable("normalizer_params is not a dict literal")
            # slim calls normalizer_fn(outputs, **normalizer_params) inside the arg_scopes: their
            # defaults for the batch norm (data_format='NCHW') apply under normalizer_params.
            bn_keywords = {k: v for k, v in (scope_defaults(normalizer_api) if scope_defaults else {}).items()
                           if k not in ("scope", "reuse")}
            bn_keywords.update(params_value)
            bn = map_batch_norm_layer(bn_api, [], bn_keywords)
            bn.activation = activation
            layer.followed_by = bn
        else:
            layer.activation = activation
    elif keras_class in ("MaxPooling2D", "AveragePooling2D"):
        ctor.append((None, merged.pop("kernel_size")))
        stride = merged.pop("stride", bn_mapping.Code("2"))
        ctor.append(("strides", stride))
        ctor.append(("padding", _padding(merged.pop("padding", None), "VALID")))
        data_format = merged.pop("data_format", None)
        if data_format is not None and _literal(data_format) == "NCHW":
            # Keras 3 pools channels-first input on CPU too (transposing where TF cannot).
            ctor.append(("data_format", bn_mapping.Code("'channels_first'")))
        elif data_format is not None and _literal(data_format) not in ("NHWC", None):
            raise Unmappable("data_format is not a literal")
    elif keras_class == "Dropout":
        keep_prob = merged.pop("keep_prob", bn_mapping.Code("0.5"))
        value = _literal(keep_prob)
        keep_text = render(keep_prob)
        if not isinstance(keep_prob, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            keep_text = f"({keep_text})"
        rate = (bn_mapping.Code(repr(round(1 - value, 12))) if isinstance(value, (int, float))
                else bn_mapping.Code(f"1 - {keep_text}"))
        ctor.append(("rate", rate))
        for key in ("noise_shape", "seed"):
            if key in merged:
                ctor.append((key, merged.pop(key)))
        layer.training = merged.pop("is_training", bn_mapping.Code("True"))
    if merged:
        raise Unmappable(f"argument {sorted(merged)[0]} of {api} has no Keras mapping")
    return layer
