import ast

from migrate import bn_mapping
from migrate.rules._batch_norm_sites import BN_TOKENS
from migrate.rules.base import Rule


class BatchNormAsNormalizer(Rule):
    """
    ## What it does
    Finds a TF1 batch-norm function used as a value rather than called:
    `normalizer_fn=slim.batch_norm`, `slim.arg_scope([slim.batch_norm], ...)`,
    `functools.partial(tf.layers.batch_normalization, ...)`, or an alias.

    ## Why
    The batch norm still runs -- inside `slim.conv2d`, through the arg_scope
    defaults, or through the alias -- but no call site shows it. Its arguments
    come from `normalizer_params` or the enclosing `arg_scope`, and its updates
    go to `UPDATE_OPS` unless `updates_collections=None`. The model rewrite
    turns each such layer into an explicit Keras `BatchNormalization` after the
    convolution; until then, every layer built with it is a TF1 batch norm.

    ## Example
    ```python
    with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                        normalizer_params={"is_training": is_training, "decay": 0.95}):
        net = slim.conv2d(images, 8, [3, 3], scope="conv1")
    ```
    becomes `Conv2D(8, 3, padding="same", use_bias=False)` followed by
    `BatchNormalization(momentum=0.95, epsilon=0.001, center=True, scale=False)`
    and the ReLU, the batch norm called with `training=training`.
    """

    code = "TFM104"
    name = "batch-norm-as-value"
    summary = "batch norm passed as a value (normalizer_fn, arg_scope, partial) runs implicitly"
    tokens = BN_TOKENS

    def check(self, ctx):
        names = [n for n, api in bn_mapping.API_BY_CANONICAL.items() if api is not None]
        for node, qualified in ctx.references_to(names):
            parent = ctx.parents.get(node)
            if isinstance(parent, ast.Call) and parent.func is node:
                continue  # a call: reported by TFM101-TFM103/TFM105
            api = bn_mapping.API_BY_CANONICAL[qualified]
            if api == bn_mapping.KERAS_V2 and not ctx.is_tf1_graph_code:
                continue
            yield ctx.finding(node, self.code, self._message(ctx, node, parent, api))

    @staticmethod
    def _message(ctx, node, parent, api):
        if isinstance(parent, ast.keyword) and parent.arg == "normalizer_fn":
            return (f"{api} used as normalizer_fn: each layer built with it runs a TF1 batch norm "
                    "configured by normalizer_params; it becomes an explicit Keras BatchNormalization "
                    "(contrib defaults momentum=0.999, scale=False) called with training=")
        container = ctx.parents.get(parent) if isinstance(parent, (ast.List, ast.Tuple)) else None
        if isinstance(container, ast.Call) and (ctx.resolve(container.func) or "").endswith("arg_scope"):
            return (f"arg_scope sets defaults for {api}: every batch norm in this scope takes these "
                    "arguments; the migration writes them out on each Keras BatchNormalization")
        return (f"{api} referenced as a value: every call through it is a TF1 batch norm that must "
                "become a Keras BatchNormalization created once and called with training=")
