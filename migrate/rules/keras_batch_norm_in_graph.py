from migrate import bn_mapping
from migrate.findings import BEHAVIOUR_CHANGE
from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites
from migrate.rules.base import Rule


class KerasBatchNormInGraph(Rule):
    """
    ## What it does
    Finds `tf.keras.layers.BatchNormalization` used inside TF1 graph code (a
    module that also uses placeholders, sessions, `tf.layers`, collections or
    variable scopes).

    ## Why
    In a TF1 graph the (Keras 2) layer keeps its moving-average updates in
    `layer.updates`; it does **not** add them to `UPDATE_OPS`. Unless the
    program runs `layer.updates` itself, its moving mean and variance stay at
    their initial 0 and 1 for the whole run (measured in the legacy runtime).
    Keras 3 updates them whenever the layer is called with `training=True`, so
    the migrated program computes different inference outputs: a behaviour
    change the migration reports, and `--preserve-bugs` can keep with
    `momentum=1.0`. A hard-coded `training=True` also means the layer always
    normalises with batch statistics, in evaluation too.

    ## Example
    ```python
    net = tf.keras.layers.BatchNormalization(name="keras_bn")(net, training=True)
    ```
    """

    code = "TFM105"
    name = "keras-batch-norm-in-tf1-graph"
    summary = "Keras BatchNormalization in a TF1 graph never runs its updates via UPDATE_OPS"
    tokens = BN_TOKENS

    def check(self, ctx):
        for site in batch_norm_sites(ctx):
            if site.api == bn_mapping.KERAS_V2:
                yield ctx.finding(
                    site.call, self.code,
                    "tf.keras BatchNormalization in a TF1 graph: its updates are not in UPDATE_OPS, so "
                    "unless the program runs `layer.updates` its moving statistics never change; "
                    "Keras 3 updates them when called with training=True (behaviour change)",
                    rewrite_class=BEHAVIOUR_CHANGE)
