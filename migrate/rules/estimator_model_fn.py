import ast
from typing import Dict, List, Tuple

import libcst as cst

from migrate.findings import EXACT, Finding
from migrate.model_rewrite.layers import Unmappable
from migrate.rules.estimator_model_fn_findings import EstimatorModelFnFindings
from migrate.training_rewrite.estimator import (ModelFn, model_fn_names,
                                                normalise_estimator)


class EstimatorModelFn(EstimatorModelFnFindings):
    """
    ## What it does
    Migrates a `tf.estimator` `model_fn(features, labels, mode, params)` and the programs that
    call it with a `ModeKeys` constant (`spec = model_fn(feats, y, ModeKeys.TRAIN, params)`,
    then `sess.run(spec.train_op, ...)`, `spec.predictions[...]`). The network part of the
    model_fn -- the statements before its first mode branch -- becomes a Keras model class
    (through the model rewrite, TFM300) called with `training=` for the mode; the head --
    loss, optimizer, `minimize`, `UPDATE_OPS` -- is specialised for the mode each program
    asks for and becomes that program's train step (through the training-loop rewrite,
    TFM400), `tf.train.Saver` a `tf.train.Checkpoint`. All or nothing: unless the model and
    every program calling it can be migrated, nothing changes and the reason is reported
    (TFM411).

    ## Why
    TF 2.16+ has no `tf.estimator`: `EstimatorSpec`, `ModeKeys` and `Estimator` are gone, so
    an estimator program renamed to `tf.compat.v1` does not run. The mode branches of a
    model_fn are decided by the caller, so each program gets exactly the code TF1 built for
    its mode: numbers stay the same (the optimizer and loss mappings of TFM400 apply).
    Branches no program asks for (often EVAL with `tf.metrics`) are not carried over; the
    report says so.

    ## Example
    ```python
    def model_fn(features, labels, mode, params):
        is_training = mode == tf.estimator.ModeKeys.TRAIN
        net = tf.layers.dense(features['x'], 16, use_bias=False)
        net = tf.layers.batch_normalization(net, training=is_training)
        logits = tf.layers.dense(tf.nn.relu(net), params['n_classes'])
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions={'logits': logits})
        loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
        ...
    ```
    becomes `class ModelFn(tf.keras.Model)` whose `call(features, training=False)` returns
    `logits`, plus a `train_step(model, optimizer, x, y)` for each program that trains it.
    """

    # code, tokens, reported codes and `check`: EstimatorModelFnFindings (libcst-free, for `check`)

    def rewrite(self, module: cst.Module, ctx) -> Tuple[cst.Module, List[Finding]]:
        from migrate.rules.model_classes import _resolver, _tensorflow_alias

        resolve, tf_alias = _resolver(ctx), _tensorflow_alias(ctx)
        lines = {n.name: n.lineno for n in ctx.tree.body if isinstance(n, ast.FunctionDef)}
        candidates = model_fn_names(module, resolve)
        if not candidates:
            return module, []
        failed: Dict[str, str] = {}
        rewrites_selected = {"TFM300", "TFM400"} <= set(getattr(ctx, "active_codes", set()))
        # A suppression that keeps the model or training rewrite out of a model_fn keeps this
        # rewrite out too (it would hand the model_fn to both).
        from migrate.rules.model_classes import suppressed_functions

        for code in ("TFM300", "TFM400"):
            for name in suppressed_functions(ctx, code) & set(candidates):
                failed.setdefault(name, f"a `# tf-migrate: ignore` comment keeps it ({code})")
        # Each model_fn on its own first, so one that cannot be migrated does not hold back
        # the others; then the ones that can, together.
        for name in candidates:
            if name not in failed:
                try:
                    trial = normalise_estimator(module, resolve, tf_alias, [name])
                    if not rewrites_selected:
                        raise Unmappable("it needs the model rewrite (TFM300) and the training-loop "
                                         "rewrite (TFM400) selected")
                    self._trial(*trial, ctx)
                except Unmappable as exc:
                    failed[name] = str(exc)
        ok = [name for name in candidates if name not in failed]
        normalised = module
        model_fns: Dict[str, ModelFn] = {}
        drivers: List[str] = []
        if ok:
            try:
                normalised, model_fns, drivers = normalise_estimator(module, resolve, tf_alias, ok)
                self._trial(normalised, model_fns, drivers, ctx)
            except Unmappable as exc:
                failed.update({name: str(exc) for name in ok})
                normalised, model_fns = module, {}
        findings = [Finding(ctx.path, lines.get(name, 1), 1, "TFM411", f"`{name}` left unchanged: {reason}")
                    for name, reason in failed.items()]
        for name, fn in model_fns.items():
            unused = fn.modes_unused(resolve)
            dropped = (f"; its {'/'.join(unused)} branch{'es' if len(unused) > 1 else ''} "
                       "(called by no program) not carried over") if unused else ""
            callers = ", ".join(f"`{d}`" for d in drivers if d in fn.callers)
            findings.append(Finding(ctx.path, lines.get(name, 1), 1, self.code,
                                    f"`{name}` taken apart: network -> Keras model, head -> the code of "
                                    f"{callers}{dropped}", fixed=True, rewrite_class=EXACT))
            findings.extend(_resolved_inside(ctx, name))
        return normalised, findings

    def _trial(self, normalised: cst.Module, model_fns: Dict[str, ModelFn], drivers: List[str],
               ctx) -> None:
        """Raise Unmappable unless the model rewrite converts every taken-apart model_fn and the
        training-loop rewrite every program that calls one."""
        from migrate.rules.model_classes import ModelClasses
        from migrate.rules.train_steps import trial_program_failures

        # The trial runs on the taken-apart module: its programs' failure reasons are not the
        # final module's (ModelClasses keeps them on ctx for the training-loop rewrite).
        saved = ctx.__dict__.pop("program_failures", None)
        try:
            after_models, _ = ModelClasses(self.options).rewrite(normalised, ctx)
        finally:
            ctx.__dict__.pop("program_failures", None)
            if saved is not None:
                ctx.program_failures = saved
        left = [s.name.value for s in after_models.body
                if isinstance(s, cst.FunctionDef) and s.name.value in model_fns]
        if left:
            reason = _marker_reason(after_models, left[0])
            raise Unmappable(f"its network cannot become a Keras class ({reason})")
        failures: Dict[str, str] = trial_program_failures(after_models, ctx, self.options)
        for driver in drivers:
            if driver in failures:
                raise Unmappable(f"`{driver}`, which calls it, cannot be migrated: {failures[driver]}")


def _resolved_inside(ctx, name: str) -> List[Finding]:
    """UPDATE_OPS findings inside the model_fn: its head became train steps, where they go."""
    from migrate.rules.model_classes import resolved_findings
    from migrate.rules.train_steps import _RESOLVED_CODES

    node = next((n for n in ctx.tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    return resolved_findings(ctx, _RESOLVED_CODES, node.lineno, node.end_lineno) if node else []


def _marker_reason(module: cst.Module, name: str) -> str:
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
            for line in stmt.leading_lines:
                if line.comment is not None and "TFM301" in line.comment.value:
                    return line.comment.value.split("left unchanged:", 1)[-1].strip()
    return "see TFM301"
