from migrate.rules.base import Rule

_IMPLICIT = {
    "tf_slim.learning.create_train_op": "slim.learning.create_train_op",
    "tf_slim.create_train_op": "create_train_op",
    "tensorflow.contrib.training.create_train_op": "tf.contrib.training.create_train_op",
    "tf_slim.optimize_loss": "tf.contrib.layers.optimize_loss",
}


class ImplicitUpdateOps(Rule):
    """
    ## What it does
    Finds train-op helpers that run the `UPDATE_OPS` collection implicitly:
    `slim.learning.create_train_op`, `tf.contrib.training.create_train_op`,
    `tf.contrib.layers.optimize_loss`.

    ## Why
    No `control_dependencies` appears in the program, yet the batch-norm
    statistics are updated because the helper adds the collection as a
    dependency of the train op (and creates and increments the global step).
    The migration must keep both: a GradientTape train step calling the model
    with `training=True`, and `optimizer.iterations` for the global step. The
    helper also returns the *loss* as the train op's value.

    ## Example
    ```python
    train_op = slim.learning.create_train_op(loss, optimizer)
    loss_value = sess.run(train_op, feed_dict=feed)
    ```
    """

    code = "TFM205"
    name = "implicit-update-ops"
    summary = "train-op helper runs UPDATE_OPS implicitly"
    tokens = ("create_train_op", "optimize_loss")

    def check(self, ctx):
        for call, qualified in ctx.calls_to(_IMPLICIT):
            yield ctx.finding(
                call, self.code,
                f"{_IMPLICIT[qualified]} runs the UPDATE_OPS collection implicitly and increments the "
                "global step: in TF2 this becomes a GradientTape train step (model called with "
                "training=True) returning the loss, with optimizer.iterations as the step")
