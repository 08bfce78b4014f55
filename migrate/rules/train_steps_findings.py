"""TFM400's findings, on `ast`, apart from its libcst rewrite (`train_steps.TrainSteps`).

The registry lists this class, so `check` never imports libcst (issue 7); runs that rewrite
load `TrainSteps`, its subclass, through `implementation`. The rule's docs are on
`TrainSteps`, next to the rewrite they describe.
"""

import ast

from migrate.rules.base import RewriteRule

# Same as `training_rewrite.program.SESSIONS` (a libcst module); tests/test_startup.py keeps
# the two equal.
SESSIONS = ("tensorflow.Session", "tensorflow.InteractiveSession")


class TrainStepsFindings(RewriteRule):
    implementation = "migrate.rules.train_steps:TrainSteps"
    code = "TFM400"
    name = "session-loop-to-train-step"
    reported_codes = {
        "TFM401": "a training program left unchanged, with the reason",
        "TFM403": "behaviour change: a GAN step now also updates the other network's batch norms",
        "TFM404": "behaviour change: a value fetched in training mode outside a train op now "
                  "updates batch-norm moving statistics",
    }
    summary = "TF1 Session training loop becomes GradientTape train steps"
    tokens = ("Session",)

    def check(self, ctx):
        for node, qualified in ctx.references:
            if qualified in SESSIONS:
                func = next(ctx.enclosing(node, [ast.FunctionDef]), None)
                if func is not None and ctx.parents.get(func) is ctx.tree:
                    yield ctx.finding(func, self.code,
                                      f"`{func.name}` runs a TF1 Session: its train ops become "
                                      "GradientTape train steps (tf-migrate apply)")
        # A Session program at module level or under `if __name__ == "__main__":`: converted as
        # a function program is (training_rewrite/module_program.py), or marked with the reason.
        if any(qualified in SESSIONS for _, qualified in ctx.references):
            from migrate.module_programs import find_module_program

            program = find_module_program(ctx.tree, ctx.resolve)
            if program is not None:
                yield ctx.finding(ctx.tree.body[program.start], self.code,
                                  "the module-level program runs a TF1 Session: its train ops "
                                  "become GradientTape train steps (tf-migrate apply)")
