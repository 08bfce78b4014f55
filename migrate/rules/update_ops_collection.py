from migrate.rules._update_ops import is_collection_read
from migrate.rules.base import Rule


class UpdateOpsCollection(Rule):
    """
    ## What it does
    Finds reads of the update-op collection:
    `tf.get_collection(tf.GraphKeys.UPDATE_OPS)` (with or without `scope=`),
    `get_collection_ref`, and `graph.get_collection("update_ops")`.

    ## Why
    Graph collections do not exist in TF2. Under eager execution
    `tf.compat.v1.get_collection(UPDATE_OPS)` silently returns `[]`, so code
    that `tf_upgrade_v2` merely renamed stops updating its batch-norm
    statistics without any error. In TF2 a Keras `BatchNormalization` updates
    its moving mean and variance itself when called with `training=True`: the
    collection read disappears in the training-loop rewrite. A `scope=` filter
    (GANs) becomes "the sub-model this train step calls with training=True".

    ## Example
    ```python
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = optimizer.minimize(loss)
    ```
    """

    code = "TFM201"
    name = "update-ops-collection"
    summary = "UPDATE_OPS collection read: collections do not exist in TF2"
    tokens = ("UPDATE_OPS", "update_ops")

    def check(self, ctx):
        for node in ctx.nodes:
            if is_collection_read(ctx, node):
                scoped = any(kw.arg == "scope" for kw in node.keywords) or len(node.args) > 1
                extra = (" The scope filter becomes the sub-model called with training=True in that "
                         "train step." if scoped else "")
                yield ctx.finding(
                    node, self.code,
                    "UPDATE_OPS collection read: graph collections do not exist in TF2 (under eager "
                    "`get_collection` returns []); Keras BatchNormalization updates its moving "
                    "statistics itself when called with training=True, so this read disappears in "
                    "a GradientTape train step." + extra)
