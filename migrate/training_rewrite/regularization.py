"""TF1's REGULARIZATION_LOSSES collection -> the Keras models' `losses`, inside the train step.

TF1 layers built with `kernel_regularizer=`/`weights_regularizer=` put one loss tensor per weight
into the REGULARIZATION_LOSSES collection, and a program added them to its loss by reading the
collection. The migrated layers carry the same regularizers (migrate/model_rewrite/layers.py maps
the scale so the values are equal), and Keras 3 computes them from the current weights each time
`model.losses` is read -- so reading it inside the GradientTape, after the model call, gives the
same loss and the same gradients:

* `tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES[, scope])`,
  `tf.losses.get_regularization_losses([scope])` -> `model.losses` (a list, as before);
* `tf.losses.get_regularization_loss([scope])` -> `sum(model.losses)` (TF1 returned 0.0 for an
  empty collection; so does `sum`);
* `tf.losses.get_total_loss()` -> `tf.add_n([<each tf.losses.* loss>] + model.losses)`, the
  LOSSES collection (every `tf.losses.*` result, in program order) plus the regularization.

A `scope` selects the model whose Keras name is that scope (the GAN case); anything the rewrite
cannot pin to models raises `Unmappable`.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import libcst as cst

from migrate.model_rewrite.layers import Unmappable, literal, render

REGULARIZATION_KEY = "tensorflow.GraphKeys.REGULARIZATION_LOSSES"
_COLLECTIONS = ("tensorflow.get_collection", "tensorflow.get_collection_ref")
_LIST_READERS = ("tensorflow.losses.get_regularization_losses",)
_SUM_READERS = ("tensorflow.losses.get_regularization_loss",)
_TOTAL = "tensorflow.losses.get_total_loss"
_NOT_ADDED = ("tensorflow.losses.get_", "tensorflow.losses.Reduction")


def _argument(call: cst.Call, name: str, position: int):
    for index, arg in enumerate(call.args):
        if (arg.keyword is not None and arg.keyword.value == name) or (arg.keyword is None and index == position):
            return arg.value
    return None


def _is_regularization_collection(call: cst.Call, resolve) -> bool:
    if resolve(call.func) not in _COLLECTIONS or not call.args:
        return False
    key = call.args[0].value
    return resolve(key) == REGULARIZATION_KEY or literal(key) == "regularization_losses"


def reads_regularization(node, resolve) -> bool:
    found = []

    class Finder(cst.CSTVisitor):
        def visit_Call(self, call):
            api = resolve(call.func)
            if api in _LIST_READERS + _SUM_READERS + (_TOTAL,) or _is_regularization_collection(call, resolve):
                found.append(call)

    node.visit(Finder())
    return bool(found)


def collected_losses(graph: Sequence[cst.SimpleStatementLine], resolve) -> List[str]:
    """Names of the program's `tf.losses.*` results: TF1's LOSSES collection, in program order."""
    names = []
    for stmt in graph:
        small = stmt.body[0]
        direct = None
        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call) and len(small.targets) == 1 \
                and isinstance(small.targets[0].target, cst.Name):
            direct = small.value
        calls = []

        class Finder(cst.CSTVisitor):
            def visit_Call(self, call):
                api = resolve(call.func) or ""
                if api.startswith("tensorflow.losses.") and not api.startswith(_NOT_ADDED):
                    calls.append(call)

        stmt.visit(Finder())
        for call in calls:
            if call is not direct:
                raise Unmappable("tf.losses.get_total_loss with a tf.losses result that is not "
                                 "assigned to a name of its own")
            names.append(small.targets[0].target.value)
    return names


class RegularizationLosses(cst.CSTTransformer):
    """Rewrites the reads of REGULARIZATION_LOSSES in one graph expression."""

    def __init__(self, resolve, tf_alias: str, models_in_scope: Callable[[Optional[str]], List[str]],
                 losses: Callable[[], List[str]]):
        super().__init__()
        self.resolve = resolve
        self.tf = tf_alias
        self.models_in_scope = models_in_scope
        self.losses = losses

    def _model_losses(self, scope_node) -> str:
        scope = None
        if scope_node is not None:
            scope = literal(scope_node)
            if scope is not None and not isinstance(scope, str):
                raise Unmappable(f"regularization losses of scope {render(scope_node)}, not a string literal")
        models = self.models_in_scope(scope.rstrip("/") if scope else None)
        if not models:
            raise Unmappable("regularization losses read where no migrated model "
                             f"{'is named ' + repr(scope) if scope else 'is built'}")
        return " + ".join(f"{m}.losses" for m in models)

    def leave_Call(self, original, updated):
        api = self.resolve(original.func)
        if _is_regularization_collection(original, self.resolve):
            return cst.parse_expression(self._model_losses(_argument(original, "scope", 1)))
        if api in _LIST_READERS:
            return cst.parse_expression(self._model_losses(_argument(original, "scope", 0)))
        if api in _SUM_READERS:
            return cst.parse_expression(f"sum({self._model_losses(_argument(original, 'scope', 0))})")
        if api == _TOTAL:
            add = _argument(original, "add_regularization_losses", 0)
            if add is not None and literal(add) not in (True, False):
                raise Unmappable("get_total_loss(add_regularization_losses=...) not a literal")
            scope = _argument(original, "scope", 2)
            if scope is not None and literal(scope) is not None:
                raise Unmappable("get_total_loss(scope=...): the LOSSES collection of one scope")
            names = self.losses()
            if not names:
                raise Unmappable("tf.losses.get_total_loss without any tf.losses.* loss")
            total = f"[{', '.join(names)}]"
            if add is None or literal(add) is True:
                total += f" + {self._model_losses(None)}"
            return cst.parse_expression(f"{self.tf}.add_n({total})")
        return updated
