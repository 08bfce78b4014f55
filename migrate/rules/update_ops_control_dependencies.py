import ast

from migrate.rules._update_ops import UPDATE_OPS_TOKENS, body_calls_method, denotes_update_ops
from migrate.rules.base import Rule

_TRAIN_METHODS = ("minimize", "apply_gradients")


def control_dependency_items(ctx, with_node):
    """The `tf.control_dependencies(...)` context expressions of a `with` statement."""
    for item in with_node.items:
        expr = item.context_expr
        if isinstance(expr, ast.Call) and ctx.resolve(expr.func) == "tensorflow.control_dependencies":
            yield expr
        elif (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)
              and expr.func.attr == "control_dependencies"):
            yield expr  # graph.control_dependencies(...)


class UpdateOpsControlDependencies(Rule):
    """
    ## What it does
    Finds `with tf.control_dependencies(update_ops):` blocks, usually around
    `optimizer.minimize(loss)` or `apply_gradients`.

    ## Why
    This is how TF1 made the train op run the batch-norm moving-average
    updates. TF2 has no graph to attach them to: the whole block becomes a
    `tf.GradientTape` train step in which the model is called with
    `training=True` (which updates the moving statistics) and
    `optimizer.apply_gradients` updates the weights. Left as is after
    `tf_upgrade_v2`, the block depends on an empty list under eager execution
    and the statistics silently stop updating.

    ## Example
    ```python
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.minimize(loss)
    ```
    becomes
    ```python
    @tf.function
    def train_step(model, optimizer, images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    ```
    """

    code = "TFM202"
    name = "update-ops-control-dependencies"
    summary = "control_dependencies(update_ops) around the train op becomes a GradientTape step"
    tokens = UPDATE_OPS_TOKENS

    def check(self, ctx):
        for node in ctx.nodes:
            if not isinstance(node, (ast.With, ast.AsyncWith)):
                continue
            for call in control_dependency_items(ctx, node):
                deps = call.args[0] if call.args else None
                if deps is None or not denotes_update_ops(ctx, deps):
                    continue
                if body_calls_method(node.body, _TRAIN_METHODS):
                    what = ("UPDATE_OPS wired into the train op with control_dependencies: in TF2 this "
                            "block becomes a GradientTape train step; the model called with "
                            "training=True updates the batch-norm statistics itself")
                else:
                    what = ("control_dependencies on UPDATE_OPS without a minimize/apply_gradients in "
                            "the block: check which op is meant to run the updates; in TF2 they run "
                            "whenever the layer is called with training=True")
                yield ctx.finding(call, self.code, what)
