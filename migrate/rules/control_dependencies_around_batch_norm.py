import ast

from migrate import bn_mapping
from migrate.rules._batch_norm_sites import BN_TOKENS
from migrate.rules._update_ops import denotes_update_ops
from migrate.rules.base import Rule
from migrate.rules.update_ops_control_dependencies import control_dependency_items

# How deep to follow calls into module-level helper functions.
_HELPER_DEPTH = 3


class ControlDependenciesAroundBatchNorm(Rule):
    """
    ## What it does
    Finds `with tf.control_dependencies([op]):` blocks whose body builds a
    batch norm (directly, or through a helper function of the same module),
    where `op` is not the update-op collection.

    ## Why
    In TF1 every op created inside the block -- the normalisation *and* its
    moving-average update ops -- gets a control dependency on `op`, so `op`
    runs every time anything touches the batch-norm output: each training step
    and each inference pass. This is a real, measured ordering (a counter
    incremented this way counts forward passes, train and eval). Users often
    believe it means something else, e.g. that it orders the updates after the
    loss. The model rewrite keeps the TF1 meaning as program order: `op` runs
    first, then the layer, as plain statements in `call`.

    ## Example
    ```python
    count_forward = tf.assign_add(forward_counter, 1)
    with tf.control_dependencies([count_forward]):
        net = tf.layers.batch_normalization(net, training=is_training)
    ```
    becomes, in the model's `call`,
    ```python
    self.forward_counter.assign_add(1)
    net = self.bn1(net, training=training)
    ```
    """

    code = "TFM204"
    name = "control-dependencies-around-batch-norm"
    summary = "control_dependencies around a batch norm orders every op it builds after the dependency"
    tokens = BN_TOKENS

    def check(self, ctx):
        for node in ctx.nodes:
            if not isinstance(node, (ast.With, ast.AsyncWith)):
                continue
            for call in control_dependency_items(ctx, node):
                deps = call.args[0] if call.args else None
                if deps is None or denotes_update_ops(ctx, deps):
                    continue
                if self._builds_batch_norm(ctx, node.body, _HELPER_DEPTH, set()):
                    deps_text = ast.unparse(deps)
                    yield ctx.finding(
                        call, self.code,
                        f"control_dependencies({deps_text}) around a batch norm: every op the block "
                        f"builds, the normalisation and its moving-average updates included, waits for "
                        f"{deps_text}, so it runs on every training step and every inference pass that "
                        "uses this layer (it does not order the updates after the loss); the migration "
                        "keeps this as program order: the dependency first, then the layer")

    def _builds_batch_norm(self, ctx, body, depth, seen) -> bool:
        names = {n for n, api in bn_mapping.API_BY_CANONICAL.items() if api is not None}
        for stmt in body:
            for node in ast.walk(stmt):
                if not isinstance(node, ast.Call):
                    continue
                if ctx.resolve(node.func) in names:
                    return True
                helper = node.func.id if isinstance(node.func, ast.Name) else None
                if depth and helper in ctx.functions and helper not in seen:
                    seen.add(helper)
                    if self._builds_batch_norm(ctx, ctx.functions[helper].body, depth - 1, seen):
                        return True
        return False
