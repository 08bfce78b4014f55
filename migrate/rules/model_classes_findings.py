"""TFM300's findings, on `ast`, apart from its libcst rewrite (`model_classes.ModelClasses`).

The registry lists this class, so `check` never imports libcst (issue 7); runs that rewrite
load `ModelClasses`, its subclass, through `implementation`. The rule's docs are on
`ModelClasses`, next to the rewrite they describe.
"""

import ast

from migrate.model_rewrite.layers import LAYER_APIS, LAYER_CLASS_APIS
from migrate.rules.base import RewriteRule


class ModelClassesFindings(RewriteRule):
    implementation = "migrate.rules.model_classes:ModelClasses"
    code = "TFM300"
    name = "model-function-to-class"
    # Codes this rule reports besides its own (`tf-migrate rules TFM302` explains them here).
    reported_codes = {
        "TFM301": "a model function left unchanged, with the reason",
        "TFM302": "bounded: a batch norm TF1 ran fused (Bessel's n/(n-1) moving-variance correction)",
        "TFM303": "behaviour change: a tf.keras batch norm whose updates TF1 never ran",
        "TFM304": "--preserve-bugs kept never-updated statistics with momentum=1.0",
    }
    summary = "TF1 model-building function becomes a Keras Model/Layer class"
    tokens = ("layers", "slim", "batch_norm", "BatchNormalization")

    @classmethod
    def applies_to_tree(cls, ctx, index) -> bool:
        """A module whose model functions call only helpers imported from other files of the
        tree: converting those helpers into classes converts these functions too."""
        from migrate.tree_index import externals_for

        return bool(externals_for(index, getattr(ctx, "module_name", None), ctx.tree))

    def wants_rewrite(self, ctx, findings) -> bool:
        return bool(findings) or self.applies_to_tree(ctx, getattr(self.options, "tree_index", None))

    def check(self, ctx):
        apis = LAYER_APIS | LAYER_CLASS_APIS
        builders = {}
        classes = {}
        for node, qualified in ctx.references:
            if qualified not in apis:
                continue
            if qualified == "keras.layers.BatchNormalization" and not ctx.is_tf1_graph_code:
                continue
            if _named_in_arg_scope(ctx, node):
                continue  # `slim.arg_scope([slim.conv2d], ...)` names a layer, builds none
            func = next(ctx.enclosing(node, [ast.FunctionDef]), None)
            if func is not None and ctx.parents.get(func) is ctx.tree:
                builders.setdefault(func.name, func)
                continue
            # Class-based TF1 code (DCGAN style): a plain class whose methods build layers.
            cls = next(ctx.enclosing(node, [ast.ClassDef]), None)
            if cls is not None and ctx.parents.get(cls) is ctx.tree and not cls.keywords and \
                    all(isinstance(b, ast.Name) and b.id == "object" for b in cls.bases):
                classes.setdefault(cls.name, cls)
        for name, func in builders.items():
            yield ctx.finding(func, self.code,
                              f"`{name}` builds TF1 layers: it becomes a Keras class whose layers are "
                              "created once and called with training= (tf-migrate apply)")
        for name, cls in classes.items():
            yield ctx.finding(cls, self.code,
                              f"class `{name}` builds TF1 layers in its methods: a batch-norm wrapper "
                              "class becomes a Keras Layer, a network object (`__call__` builds "
                              "the network) a Keras Model, a model class is left marked for "
                              "manual migration (tf-migrate apply)")


def _named_in_arg_scope(ctx, node) -> bool:
    """Whether `node` is an argument of a `slim.arg_scope(...)` call (an op list or a default)."""
    parent = ctx.parents.get(node)
    while parent is not None and not isinstance(parent, (ast.Call, ast.stmt)):
        parent = ctx.parents.get(parent)
    return isinstance(parent, ast.Call) and parent.func is not node \
        and ctx.resolve(parent.func) == "tf_slim.arg_scope"

