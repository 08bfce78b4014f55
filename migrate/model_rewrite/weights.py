"""The TF1-variable <-> Keras-weight correspondence the model rewrite creates.

The rewrite keeps TF1's names: a variable scope becomes the name of the model
or of a nested Layer, and each layer keeps its TF1 name, so a Keras 3 weight
path such as `net/block0/a/conv/kernel` is the TF1 variable
`net/block0/a/conv/kernel:0`. Three systematic differences remain, and this
module is the one place that knows them (verify and checkpoint conversion use
it):

* Keras prefixes every path with the top model's name; a TF1 model function
  without a whole-body scope had none;
* slim/contrib layers name their variables `weights`/`biases` (Keras:
  `kernel`/`bias`), and a batch norm run through `normalizer_fn` lives in the
  sub-scope `<layer>/BatchNorm` (Keras: the sibling layer `<layer>_bn`);
* layers built in a loop without a static name get Keras's automatic names;
  they are matched by creation order and shape.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

_SLIM_RENAMES = (("/weights", "/kernel"), ("/biases", "/bias"))


def normalise_tf1_name(name: str) -> str:
    name = re.sub(r":\d+$", "", name)
    name = re.sub(r"/BatchNorm/", "_bn/", name)
    for old, new in _SLIM_RENAMES:
        if name.endswith(old):
            name = name[: -len(old)] + new
    return name


def match_weights(tf1: Sequence[Tuple[str, Tuple[int, ...]]],
                  keras: Sequence[Tuple[str, Tuple[int, ...]]]) -> Tuple[Dict[str, str], List[str], List[str]]:
    """Pair TF1 variables with Keras weights.

    `tf1` and `keras` are (name, shape) in creation order. Returns
    ({keras path: tf1 name}, unmatched TF1 names, unmatched Keras paths).
    Names are compared after `normalise_tf1_name`, first exactly, then with the
    Keras model prefix removed, then by creation order among same-shaped,
    same-kind (kernel, bias, gamma, ...) leftovers.
    """
    tf1_by_norm = {normalise_tf1_name(n): (n, tuple(s)) for n, s in tf1}
    pairs: Dict[str, str] = {}
    used = set()
    for path, shape in keras:
        for candidate in (path, path.split("/", 1)[-1]):
            hit = tf1_by_norm.get(candidate)
            if hit is not None and hit[0] not in used and tuple(hit[1]) == tuple(shape):
                pairs[path] = hit[0]
                used.add(hit[0])
                break
    left_tf1 = [(n, tuple(s)) for n, s in tf1 if n not in used]
    left_keras = [(p, tuple(s)) for p, s in keras if p not in pairs]
    still_keras = []
    for path, shape in left_keras:
        kind = path.rsplit("/", 1)[-1]
        for index, (name, tf1_shape) in enumerate(left_tf1):
            if tf1_shape == shape and normalise_tf1_name(name).rsplit("/", 1)[-1] == kind:
                pairs[path] = name
                del left_tf1[index]
                break
        else:
            still_keras.append(path)
    return pairs, [n for n, _ in left_tf1], still_keras


# Trainable TF1 variables of a layer are `<layer scope>/<one of these>` (Dense/Conv kernel and
# bias, batch-norm gamma/beta, slim weights/biases): every one is assumed, which can only make
# a var_list filter decision stricter.
TRAINABLE_SUFFIXES = ("kernel", "bias", "gamma", "beta", "weights", "biases", "depthwise_kernel",
                      "pointwise_kernel", "embeddings")
VARIABLE_RECORD = "tf.Variable"  # a LayerRecord of a tf.get_variable weight (convert.py)


def tf1_variable_names(converted, functions) -> Dict[str, Optional[List[str]]]:
    """Keras model class -> the names (without `:0`) its trainable TF1 variables may have
    (`generator/g_h0/kernel`, `discriminator/d_h2_lin/Matrix`), from the layers and weights
    the model rewrite created; None where one is not static (a loop, a computed name, a helper
    from another module). TrainSteps decides var_list filters on variable names on these."""
    layers = tf1_layer_paths(converted, functions)
    return {cls: None if paths is None else [
        path[len(VARIABLE_RECORD) + 1:] if path.startswith(VARIABLE_RECORD + ":") else f"{path}/{suffix}"
        for path in paths for suffix in ((None,) if path.startswith(VARIABLE_RECORD + ":")
                                         else TRAINABLE_SUFFIXES)] for cls, paths in layers.items()}


def tf1_layer_paths(converted, functions) -> Dict[str, Optional[List[str]]]:
    """Keras model class -> the TF1 scopes of its layers (`generator/g_h0`), and
    `tf.Variable:<name>` for a tf.get_variable weight, or None where one is not static."""
    by_class = {result.info.class_name: name for name, result in converted.items()}

    def paths(name: str, seen=()) -> Optional[List[str]]:
        result = converted.get(name)
        if result is None or name in seen:
            return None
        out: List[str] = []
        for record in result.layers:
            helper = by_class.get(record.keras_class)
            if helper is not None and helper != name:
                info = functions[helper]
                scope = record.tf1_name
                if scope is None and info.scope_name is not None and info.scope_param is None:
                    scope = _literal_text(info.scope_name)
                if scope is None:
                    # No scope of its own: its auto-named layers were uniquified among the
                    # caller's, which this record does not know.
                    return None
                inner = paths(helper, seen + (name,))
                if inner is None:
                    return None
                out.extend(_joined(scope, p) for p in inner)
            elif record.tf1_name is None or record.in_loop:
                return None
            elif record.keras_class == VARIABLE_RECORD:
                out.append(f"{VARIABLE_RECORD}:{record.tf1_name}")
            else:
                out.append(record.tf1_name)
        return out

    found: Dict[str, Optional[List[str]]] = {}
    for name, result in converted.items():
        info = result.info
        if info.base != "tf.keras.Model":
            continue
        inner = paths(name)
        scope = None
        if info.scope_name is not None:
            scope = _literal_text(info.scope_name) if info.scope_param is None else None
            if scope is None:
                found[info.class_name] = None  # named by the caller
                continue
        found[info.class_name] = None if inner is None else [_joined(scope, p) for p in inner]
    return found


def _joined(scope: Optional[str], path: str) -> str:
    """`scope/path`, keeping the `tf.Variable:` mark of a get_variable weight in front."""
    if not scope:
        return path
    if path.startswith(VARIABLE_RECORD + ":"):
        return f"{VARIABLE_RECORD}:{scope}/{path[len(VARIABLE_RECORD) + 1:]}"
    return f"{scope}/{path}"


def _literal_text(expr) -> Optional[str]:
    import libcst as cst

    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None
