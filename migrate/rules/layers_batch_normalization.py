from migrate import bn_mapping
from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites, describe_mapping
from migrate.rules.base import Rule


class LayersBatchNormalization(Rule):
    """
    ## What it does
    Finds `tf.layers.batch_normalization(x, training=...)` (also spelled
    `tf.compat.v1.layers.batch_normalization`, or through any import alias).

    ## Why
    The function creates its variables when the graph is built and puts its
    moving-average updates in the `UPDATE_OPS` collection, which only run if the
    train op depends on them. In TF 2.16+ (Keras 3) `tf.compat.v1.layers` no
    longer exists. The Keras 3 layer must be created once and called with an
    explicit `training` flag; it updates its moving statistics itself whenever
    it is called with `training=True`. The defaults of both layers are the same
    (momentum 0.99, epsilon 0.001, center and scale on). On 4-D input TF1 used
    the fused kernel, which applies Bessel's correction n/(n-1) to the moving
    variance; Keras 3 does not, a bounded divergence that `verify` names. Where the
    function makes the input's rank clear (after `flatten`, a `dense` of a 2-D
    value, `tf.reshape` to a literal shape, `conv1d`, element-wise ops; see
    `migrate/static_rank.py`) and it is neither 4 nor 5, TF1 never fused it: the
    site is reported, and rewritten, exact.

    ## Example
    ```python
    def model(x, is_training):
        x = tf.layers.batch_normalization(x, training=is_training, momentum=0.9, name="bn1")
    ```
    becomes (model rewrite)
    ```python
    class Model(tf.keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.bn1 = tf.keras.layers.BatchNormalization(momentum=0.9, name="bn1")

        def call(self, x, training=False):
            return self.bn1(x, training=training)
    ```
    """

    code = "TFM101"
    name = "layers-batch-normalization"
    summary = "`tf.layers.batch_normalization` must become a Keras BatchNormalization layer"
    tokens = BN_TOKENS

    def check(self, ctx):
        for site in batch_norm_sites(ctx):
            if site.api == bn_mapping.LAYERS_FUNCTION:
                yield ctx.finding(site.call, self.code,
                                  f"TF1 batch norm (tf.layers): {describe_mapping(site)}")
