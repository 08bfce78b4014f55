import ast

from migrate import bn_mapping
from migrate.context import literal_value
from migrate.rules._batch_norm_sites import BN_TOKENS, BatchNormSite, describe_mapping, in_keras_class
from migrate.rules.base import Rule
from migrate.slim_scopes import dict_literal_for, slim_layer_calls

_BN_NAMES = [n for n, api in bn_mapping.API_BY_CANONICAL.items() if api is not None]


def normalizer_sites(ctx):
    """(EffectiveCall, BatchNormSite or None) for slim layer calls that run a batch norm."""
    for effective in slim_layer_calls(ctx):
        normalizer = effective.keywords.get("normalizer_fn")
        if normalizer is None or ctx.resolve(normalizer) not in _BN_NAMES:
            continue
        params = effective.keywords.get("normalizer_params")
        params_dict = {} if params is None else dict_literal_for(ctx, params)
        site = None
        if params_dict is not None:
            api = bn_mapping.API_BY_CANONICAL[ctx.resolve(normalizer)]
            keywords = {k: v for k, v in params_dict.items() if k != "inputs"}
            site = BatchNormSite(effective.call, api,
                                 bn_mapping.map_batch_norm(api, [], keywords, literal_value))
        yield effective, normalizer, site


class BatchNormAsNormalizer(Rule):
    """
    ## What it does
    Finds batch norms that run without a call of their own: slim/contrib
    layers (`slim.conv2d`, `fully_connected`, ...) whose `normalizer_fn` is a
    batch norm -- given at the call or inherited from a lexical
    `slim.arg_scope` -- and batch-norm functions passed around as values
    (`functools.partial(tf.layers.batch_normalization, ...)`, aliases,
    `arg_scope([slim.batch_norm], ...)` defaults).

    ## Why
    The batch norm still runs, inside the layer, but no call site shows it.
    Its arguments come from `normalizer_params` (contrib defaults otherwise:
    decay 0.999, scale False) and its updates go to `UPDATE_OPS` unless
    `updates_collections=None`. With a normalizer the layer also drops its
    bias. The model rewrite turns each such layer into the convolution
    (`use_bias=False`), an explicit Keras `BatchNormalization` and the
    activation; until then each of these sites is a TF1 batch norm.

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
    name = "batch-norm-as-normalizer"
    summary = "batch norm run through normalizer_fn / arg_scope / a reference, with no call of its own"
    tokens = BN_TOKENS

    def check(self, ctx):
        accounted = set()
        for effective, normalizer, site in normalizer_sites(ctx):
            accounted.add(normalizer)
            layer = effective.api.replace("tf_slim.", "slim.")
            origin = ("its normalizer_fn" if any(kw.value is normalizer for kw in effective.call.keywords)
                      else f"arg_scope at line {normalizer.lineno}")
            if site is None:
                detail = ("normalizer_params is not a dict literal: map decay/epsilon/scale by hand; "
                          "contrib defaults are momentum=0.999, epsilon=0.001, scale=False")
            else:
                detail = describe_mapping(site)
            yield ctx.finding(effective.call, self.code,
                              f"{layer} runs a batch norm from {origin}: {detail}")
        for node, qualified in ctx.references_to(_BN_NAMES):
            parent = ctx.parents.get(node)
            if (isinstance(parent, ast.Call) and parent.func is node) or node in accounted:
                continue  # a call (TFM101-TFM105), or a normalizer already reported per layer
            api = bn_mapping.API_BY_CANONICAL[qualified]
            if api == bn_mapping.KERAS_V2 and (not ctx.is_tf1_graph_code or in_keras_class(ctx, node)):
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
