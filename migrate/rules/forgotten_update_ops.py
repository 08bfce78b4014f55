import ast

from migrate import bn_mapping
from migrate.findings import BEHAVIOUR_CHANGE
from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites
from migrate.rules._update_ops import update_ops_names
from migrate.rules.base import Rule
from migrate.rules.implicit_update_ops import _IMPLICIT

_TRAIN_METHODS = ("minimize", "apply_gradients")


class ForgottenUpdateOps(Rule):
    """
    ## What it does
    Finds train ops (`optimizer.minimize`, `apply_gradients`) in a module that
    builds batch norms whose updates go to `UPDATE_OPS`, when nothing in the
    module ever reads that collection (no `get_collection(UPDATE_OPS)`, no
    `create_train_op`, no `layer.updates`).

    ## Why
    This is the classic TF1 bug: the moving mean and variance never update,
    stay at 0 and 1, and inference normalises with them (measured: outputs off
    by 10-95 abs after 20 steps against a correct program). Keras 3 always
    updates them when called with `training=True`, so the migrated program
    computes different inference outputs: a **behaviour change**, reported per
    site. `--preserve-bugs` keeps the TF1 behaviour exactly with
    `momentum=1.0` on the affected layers (measured: zero difference).

    ## Example
    ```python
    net = tf.layers.batch_normalization(net, training=is_training)
    ...
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)  # UPDATE_OPS never run
    ```
    """

    code = "TFM206"
    name = "forgotten-update-ops"
    summary = "batch-norm updates never run: the train op ignores UPDATE_OPS"
    tokens = BN_TOKENS

    def check(self, ctx):
        collected = [s for s in batch_norm_sites(ctx)
                     if s.api in (bn_mapping.LAYERS_FUNCTION, bn_mapping.LAYERS_CLASS)
                     or (s.api == bn_mapping.CONTRIB and not s.mapping.updates_inline)]
        if not collected or self._reads_update_ops(ctx):
            return
        for node in ctx.nodes:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _TRAIN_METHODS):
                yield ctx.finding(
                    node, self.code,
                    f"this train op never runs UPDATE_OPS, so the moving statistics of the "
                    f"{len(collected)} batch norm(s) in this module stay at 0/1 in TF1; Keras 3 updates "
                    "them when called with training=True, which changes inference outputs (behaviour "
                    "change; --preserve-bugs keeps TF1's numbers with momentum=1.0)",
                    rewrite_class=BEHAVIOUR_CHANGE)

    @staticmethod
    def _reads_update_ops(ctx) -> bool:
        if update_ops_names(ctx):
            return True
        for node, qualified in ctx.references:
            if qualified == "tensorflow.GraphKeys.UPDATE_OPS" or qualified in _IMPLICIT:
                return True
        for node in ctx.nodes:
            if isinstance(node, ast.Attribute) and node.attr == "updates":
                return True
            if isinstance(node, ast.Constant) and node.value == "update_ops":
                return True
        return False
