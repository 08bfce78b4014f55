from migrate.rules._batch_norm_sites import BN_TOKENS, batch_norm_sites
from migrate.rules.base import Rule


class UnmappableBatchNormArgument(Rule):
    """
    ## What it does
    Reports each argument of a TF1 batch norm that has no Keras 3
    `BatchNormalization` equivalent: `virtual_batch_size`, `adjustment`,
    `zero_debias_moving_mean`, `batch_weights`, `reuse`, collections, and
    anything passed through `**kwargs`. Also reports `trainable=False` and a
    non-literal `trainable` (often `trainable=is_training`).

    ## Why
    The migration never drops an argument silently. A site with such an
    argument is left for manual migration with this finding, or rewritten
    only where the argument provably has no effect (e.g. `reuse`, which
    becomes calling the same layer object again). In Keras 3 `trainable=False`
    on a BatchNormalization also switches it to inference mode, unlike TF1.

    ## Example
    ```python
    tf.layers.batch_normalization(x, training=t, virtual_batch_size=8)
    ```
    """

    code = "TFM107"
    name = "unmappable-batch-norm-argument"
    summary = "batch-norm argument with no Keras 3 equivalent"
    tokens = BN_TOKENS

    def check(self, ctx):
        for site in batch_norm_sites(ctx):
            for argument, why in site.mapping.unsupported:
                yield ctx.finding(site.call, self.code, f"`{argument}` has no Keras 3 equivalent: {why}")
            for note in site.mapping.notes:
                if note.startswith("trainable"):
                    yield ctx.finding(site.call, self.code, note)
