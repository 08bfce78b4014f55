from migrate.rules._update_ops import UPDATE_OPS_TOKENS, denotes_update_ops
from migrate.rules.base import Rule


class GroupUpdateOps(Rule):
    """
    ## What it does
    Finds `tf.group(train_op, update_ops)` and `tf.group(*update_ops)`.

    ## Why
    Grouping the minimize op with the update ops is the other TF1 way to run
    the batch-norm updates in each training step. Keras 3 layers update their
    moving statistics when called with `training=True`, so the group becomes
    just the optimizer step inside a GradientTape train step.

    ## Example
    ```python
    train_op = tf.group(optimizer.minimize(loss), *update_ops)
    ```
    """

    code = "TFM203"
    name = "group-update-ops"
    summary = "tf.group(train_op, update_ops) becomes the train step alone"
    tokens = UPDATE_OPS_TOKENS

    def check(self, ctx):
        for call, _ in ctx.calls_to(["tensorflow.group"]):
            args = list(call.args) + [kw.value for kw in call.keywords]
            if any(denotes_update_ops(ctx, arg) for arg in args):
                yield ctx.finding(
                    call, self.code,
                    "tf.group with UPDATE_OPS: the grouped update ops run the batch-norm statistics "
                    "updates; in TF2 they happen when the model is called with training=True, and the "
                    "group becomes the optimizer step of a GradientTape train step")
