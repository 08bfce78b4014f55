import ast

from migrate.context import literal_value
from migrate.rules.base import Rule


class UpdatesCollectionsNone(Rule):
    """
    ## What it does
    Finds `updates_collections=None` given to contrib/slim `batch_norm`,
    directly, in `normalizer_params` or in an `arg_scope`.

    ## Why
    With `updates_collections=None` TF1 updated the moving averages in place,
    as control dependencies of the layer's output, on every training-mode run;
    nothing went to `UPDATE_OPS`. Keras 3 behaves the same way when the layer
    is called with `training=True`, so there is nothing to wire up and nothing
    to keep: the argument disappears. The site still takes contrib's own fused
    path (Bessel's correction with n = batch size for 2-D input).

    ## Example
    ```python
    net = tf.contrib.layers.batch_norm(net, updates_collections=None, is_training=is_training)
    ```
    """

    code = "TFM106"
    name = "updates-collections-none"
    summary = "`updates_collections=None`: in-place moving-average updates, as Keras 3 does"
    tokens = ("updates_collections",)

    MESSAGE = ("updates_collections=None: TF1 updated the moving averages in place on every "
               "training-mode run; Keras 3 does the same when called with training=True, so the "
               "argument is dropped")

    def check(self, ctx):
        for node in ctx.nodes:
            if isinstance(node, ast.keyword) and node.arg == "updates_collections":
                if literal_value(node.value) is None:
                    yield ctx.finding(node.value, self.code, self.MESSAGE)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if (isinstance(key, ast.Constant) and key.value == "updates_collections"
                            and literal_value(value) is None):
                        yield ctx.finding(key, self.code, self.MESSAGE)
