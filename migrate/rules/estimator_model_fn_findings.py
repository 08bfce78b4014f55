"""TFM410's findings, on `ast`, apart from its libcst rewrite (`estimator_model_fn.EstimatorModelFn`).

The registry lists this class, so `check` never imports libcst (issue 7); runs that rewrite
load `EstimatorModelFn`, its subclass, through `implementation`. The rule's docs are on
`EstimatorModelFn`, next to the rewrite they describe.
"""

import ast
from typing import Set

from migrate.rules.base import RewriteRule

# Same as `training_rewrite.estimator.ESTIMATOR_SPEC` (a libcst module); tests/test_startup.py
# keeps the two equal.
ESTIMATOR_SPEC = "tensorflow.estimator.EstimatorSpec"


class EstimatorModelFnFindings(RewriteRule):
    implementation = "migrate.rules.estimator_model_fn:EstimatorModelFn"
    code = "TFM410"
    name = "estimator-model-fn"
    reported_codes = {
        "TFM411": "an estimator model_fn left unchanged, with the reason",
    }
    summary = "tf.estimator model_fn becomes a Keras model and train steps"
    tokens = ("EstimatorSpec",)

    def check(self, ctx):
        seen: Set[str] = set()
        for node, qualified in ctx.references:
            if qualified != ESTIMATOR_SPEC:
                continue
            func = next(ctx.enclosing(node, [ast.FunctionDef]), None)
            if func is None or ctx.parents.get(func) is not ctx.tree or func.name in seen:
                continue
            seen.add(func.name)
            yield ctx.finding(func, self.code,
                              f"`{func.name}` is a tf.estimator model_fn (no tf.estimator in TF 2.16+): "
                              "its network becomes a Keras model and the programs calling it train "
                              "steps (tf-migrate apply)")
