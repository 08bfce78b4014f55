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
from typing import Dict, List, Sequence, Tuple

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
