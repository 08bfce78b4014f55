from migrate import bn_mapping
from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites, describe_mapping
from migrate.rules.base import Rule


class LayersBatchNormalizationClass(Rule):
    """
    ## What it does
    Finds the class form `tf.layers.BatchNormalization(...)` (and
    `tf.compat.v1.layers.BatchNormalization`).

    ## Why
    Like the function form, the TF1 layer object adds its moving-average
    updates to `UPDATE_OPS` and is unavailable with Keras 3. Its arguments map
    one to one onto `tf.keras.layers.BatchNormalization`; the object must be
    created in the model's `__init__` and called with `training=`.

    ## Example
    ```python
    head_bn = tf.layers.BatchNormalization(momentum=0.9, name="head_bn")
    net = head_bn(net, training=is_training)
    ```
    becomes `self.head_bn = tf.keras.layers.BatchNormalization(momentum=0.9,
    name="head_bn")` in `__init__` and `net = self.head_bn(net, training=training)`
    in `call`.
    """

    code = "TFM102"
    name = "layers-batch-normalization-class"
    summary = "`tf.layers.BatchNormalization` must become a Keras BatchNormalization layer"
    tokens = BN_TOKENS

    def check(self, ctx):
        for site in batch_norm_sites(ctx):
            if site.api == bn_mapping.LAYERS_CLASS:
                message = describe_mapping(site).replace(
                    "called with `training=None`", "called with `training=` as before")
                yield ctx.finding(site.call, self.code, f"TF1 batch norm layer class: {message}")
