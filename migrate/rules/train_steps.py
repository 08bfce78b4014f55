import ast
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from migrate.findings import BEHAVIOUR_CHANGE, EXACT, Finding
from migrate.model_rewrite.analysis import dotted
from migrate.model_rewrite.layers import Unmappable
from migrate.rules.train_steps_findings import TrainStepsFindings
from migrate.model_rewrite.arg_scopes import drop_dead_arg_scope_functions
from migrate.rules.model_classes import (_drop_unused_slim_aliases, _resolver, _tensorflow_alias,
                                         suppressed_functions)
from migrate.training_rewrite.optimizers import TF1_RMSPROP_CLASS
from migrate.training_rewrite.program import SESSIONS, ProgramConverter
from migrate.tree_index import external_functions

MARKER = "# tf-migrate: TFM401"
# Findings a converted training program resolves inside the converted function.
_RESOLVED_CODES = {"TFM201", "TFM202", "TFM203", "TFM205", "TFM206"}


class TrainSteps(TrainStepsFindings):
    """
    ## What it does
    Rewrites a TF1 training program -- placeholders, a graph built on them, an optimizer's
    `minimize` wrapped in `tf.control_dependencies(UPDATE_OPS)`, and a `tf.Session` loop
    feeding `feed_dict`s -- into TF2: a module-level `@tf.function` train step per train op
    (`GradientTape`, `apply_gradients`), taking the models, the optimizer and the fed values
    as arguments; a `make_optimizer()` factory with every hyper-parameter written out; and
    the loop calling the step. Placeholders become function arguments, `feed_dict` entries
    call arguments, the training-flag feed the `training` argument, fetches return values.
    `UPDATE_OPS`, `control_dependencies`, `global_variables_initializer` and the Session go.
    Also: `with tf.Graph().as_default():` around the program is unwrapped; `tf.train.Saver`
    becomes a `tf.train.Checkpoint` (saves through `tf.train.CheckpointManager`: the same
    `path-<step>` files, state file and `max_to_keep`; restores build the models and optimizer
    slots first, so resuming continues exactly); the global step becomes the optimizer's
    `iterations`; learning-rate decay functions become Keras schedules; regularization losses
    become the model's `losses`; scalar `tf.summary` v1 ops become TF2 summaries. A var_list
    filtered by variable name (`[v for v in t_vars if 'd_' in v.name]`, `v.name.startswith(...)`,
    `tf.get_collection(TRAINABLE_VARIABLES, scope='gen')`) trains the models all of whose TF1
    variable names it keeps, by the names the model rewrite keeps (`weights.py`); `var_list=D.vars`
    trains model `D` when its class's `vars` property returns the model's variables (what the
    model rewrite makes of a GAN network's scope filter). A train op minimizing an expression of
    graph values (WGAN's `minimize(-D_loss)`, `minimize(d_loss + g_loss)`, `compute_gradients(
    loss * 0.5)`) computes it inside the step's tape as `<op>_objective`; the step returns the loss
    the program fetched. A step that calls a model it does not
    train (a GAN's other network) with training=True updates that model's batch-norm statistics:
    TFM403 says what TF1 did -- not so with UPDATE_OPS scoped to the trained network or with no
    UPDATE_OPS run (TFM206), so too (except batch norms outside the step's loss) with all of the
    graph's; nothing is reported where every batch norm updated in place. The step's own locals
    (`tape`, `variables`, `gradients`) take a fresh name where the program's statements it copies
    use that name (`gradients = tf.gradients(...)` fetched after the step computes its own).
    `with tf.variable_scope("generator"):` around a model call (pix2pix's create_model()) is
    unwrapped: the model object takes the scope as its Keras name, so its weights keep the TF1
    variable names; `reuse=True` around the same model calls that object again; `tf.name_scope`
    is dropped (it never renamed variables). A variable, summary or non-model call inside such
    a block, or another model under a reused scope, leaves the program as it was.
    A Session opened without `with` (`sess = tf.Session()` / `tf.InteractiveSession()`, maybe
    before the graph, maybe closed with `sess.close()`) is the same program when it is only run;
    `op.run(feed_dict=...)` / `tensor.eval(...)` are its `sess.run`; its `config=` ConfigProto
    goes (it sets devices, threads and GPU memory, not results). Summaries of expressions are
    computed where they are fetched; a schedule's summary is the rate its step applied;
    `tf.Variable(0, trainable=False)` passed as `global_step=` is the optimizer's `iterations`.
    A program written at module level (from the first graph-building statement to the end of the
    script) or in the body of `if __name__ == "__main__":` converts the same way, all or nothing
    with its model functions: the steps (and definitions between its statements) go before it,
    its loop stays where it was. One that cannot (a function reading one of its names as a
    global, ...) is left as it was, `# tf-migrate: TFM401 <reason>` above its first statement.
    A program fed by a tf.data iterator (`images, labels = iterator.get_next()`) keeps its dataset
    code: the iterator becomes `iter(dataset)` (an initializable one is made, its dataset built
    again, at each initializer run), each run that read the element gets
    `images, labels = next(iterator)` before it, and `except tf.errors.OutOfRangeError` becomes
    `except StopIteration` (training_rewrite/datasets.py); queue runners and feedable iterators
    are left as they were.

    ## Why
    TF 2.16+ runs eagerly: placeholders fail, `get_collection(UPDATE_OPS)` returns `[]`, and
    a Session loop renamed to `tf.compat.v1` by `tf_upgrade_v2` does not run. The optimizer
    mapping keeps the numbers (measured on TF 2.21): Adam `epsilon=1e-8` (Keras default 1e-7
    moved weights by 2.5e-4 in 20 steps), Adagrad `epsilon=0.0` (bit-identical), RMSProp with
    TF1's accumulators starting at 1.0 (Keras starts at 0: loss 7 % apart after 20 steps),
    Adadelta `epsilon=1e-8`, and TF1's learning rates, which differ from Keras defaults.
    `tf.losses.*` become the `tf.nn` expressions with the same mean reduction.

    ## Example
    ```python
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    ...
    _, value = sess.run([train_op, loss], feed_dict={images: x, labels: y, is_training: True})
    ```
    becomes
    ```python
    @tf.function
    def train_step(model, optimizer, images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(...)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss
    ...
    value = train_step(model, optimizer, x, y)
    ```
    """

    # code, tokens, reported codes and `check`: TrainStepsFindings (libcst-free, for `check`)

    def rewrite(self, module: cst.Module, ctx) -> Tuple[cst.Module, List[Finding]]:
        resolve = _resolver(ctx)
        tf_alias = _tensorflow_alias(ctx)
        model_classes = _keras_model_classes(module, resolve)
        taken = _module_names(module)
        findings: List[Finding] = []
        new_body = []
        needs_rmsprop = False
        needs_os = False
        original_ranges = {n.name: (n.lineno, n.end_lineno) for n in ctx.tree.body
                           if isinstance(n, ast.FunctionDef)}
        suppressed = suppressed_functions(ctx, self.code)
        held_models = _held_model_functions(ctx)
        # Plain helpers the converted programs call, their TF1 spellings renamed (tf.log ->
        # tf.math.log): with the programs that need them only (ProgramConverter._validate).
        renamed: Dict[str, cst.FunctionDef] = {}
        plain: Optional[Dict[str, cst.FunctionDef]] = None
        for stmt in module.body:
            if not (isinstance(stmt, cst.FunctionDef) and _opens_session(stmt, resolve)) or \
                    stmt.name.value in suppressed:
                new_body.append(stmt)
                continue
            name = stmt.name.value
            start, end = original_ranges.get(name, (0, 0))
            try:
                _refuse_held_models(stmt, held_models)
                converter = ProgramConverter(stmt, resolve, tf_alias, model_classes, taken,
                                             module.default_indent, _default_names(module))
                converter.preserve_bugs = bool(getattr(self.options, "preserve_bugs", False))
                converter.forgotten_update_ops = any(f.code == "TFM206"  # TFM403's account
                                                     for f in getattr(ctx, "findings", []))
                converter.model_variables = dict(getattr(ctx, "model_variables", {}))
                converter.variable_properties = _variable_properties(module, model_classes)
                if plain is None:
                    plain = _plain_functions(module, resolve)
                    externals = external_functions(ctx, self.options)
                converter.module_functions = plain
                converter.external_functions = externals
                plan = converter.convert()
                if not any(f.code == "TFM206" for f in getattr(ctx, "findings", [])):
                    # Forgotten UPDATE_OPS only matter where there is a batch norm to update
                    # (the TFM206 finding counts them): otherwise the step is exact.
                    plan.notes = [(code, message) for code, message in plan.notes if code != "TFM206"]
                if not _has_batch_norm(ctx):
                    # Training-mode calls (a fetch, a model the step does not train) move no
                    # statistics without batch norms.
                    plan.notes = [(code, message) for code, message in plan.notes
                                  if code not in ("TFM403", "TFM404")]
            except Unmappable as exc:
                # The model rewrite's trial saw why, with the models converted (ModelClasses._settle).
                reason = getattr(ctx, "program_failures", {}).get(name) or str(exc)
                new_body.append(_mark(stmt, reason))
                findings.append(Finding(ctx.path, start, 1, "TFM401",
                                        f"`{name}` left unchanged: {reason}"))
                continue
            if getattr(self.options, "safe_only", False) and any(
                    code in _BEHAVIOUR_CODES for code, _ in plan.notes):
                reason = "a behaviour-change rewrite, skipped by --safe-only"
                new_body.append(_mark(stmt, reason))
                findings.append(Finding(ctx.path, start, 1, "TFM401", f"`{name}` left unchanged: {reason}"))
                continue
            needs_rmsprop |= plan.needs_tf1_rmsprop
            renamed.update(plan.renamed_helpers)
            needs_os |= plan.needs_os
            for source in plan.helpers:
                helper = cst.parse_statement(source, config=module.config_for_parsing)
                new_body.append(helper.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
            new_body.append(plan.new_function)
            behaviour = any(code in _BEHAVIOUR_CODES for code, _ in plan.notes)
            for code, message in plan.notes:
                if code in ("TFM403", "TFM404"):
                    findings.append(Finding(ctx.path, start, 1, code, message, fixed=True,
                                            rewrite_class=BEHAVIOUR_CHANGE))
            findings.append(Finding(ctx.path, start, 1, self.code,
                                    f"`{name}` now trains with GradientTape train steps",
                                    fixed=True, rewrite_class=BEHAVIOUR_CHANGE if behaviour else EXACT))
            for finding in getattr(ctx, "findings", []):
                if finding.code in _RESOLVED_CODES and start <= finding.line <= end:
                    kind = finding.rewrite_class or EXACT
                    if finding.code == "TFM206" and converter.preserve_bugs:
                        kind = EXACT  # the model rewrite kept the never-updated statistics
                    findings.append(Finding(finding.path, finding.line, finding.col, finding.code,
                                            finding.message, fixed=True, rewrite_class=kind))
        if renamed:
            new_body = [renamed.get(stmt.name.value, stmt) if isinstance(stmt, cst.FunctionDef)
                        and stmt.name.value in renamed and not _opens_session(stmt, resolve)
                        else stmt for stmt in new_body]
        if needs_rmsprop and "TF1RMSprop" not in taken:
            index = _first_definition_index(new_body)
            cls = cst.parse_statement(TF1_RMSPROP_CLASS, config=module.config_for_parsing)
            new_body.insert(index, cls.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
        if needs_os and not _imports_os(module):
            new_body = _with_import_os(new_body)
        module = module.with_changes(body=new_body)
        if any(f.code == self.code for f in findings):
            module = drop_dead_arg_scope_functions(module, ctx, resolve, self.options)
            module = _drop_unused_slim_aliases(module, ctx)
        return module, findings


def trial_convert_programs(module: cst.Module, ctx, options) -> Set[str]:
    """Names of the Session programs of `module` the training-loop rewrite would convert."""
    outcome = _trial_programs(module, ctx, options)
    return {name for name, reason in outcome.items() if reason is None}


def trial_program_failures(module: cst.Module, ctx, options) -> Dict[str, str]:
    """Session programs of `module` the training-loop rewrite would leave, with the reason."""
    return {name: reason for name, reason in _trial_programs(module, ctx, options).items()
            if reason is not None}


def _trial_programs(module: cst.Module, ctx, options) -> Dict[str, Optional[str]]:
    resolve = _resolver(ctx)
    tf_alias = _tensorflow_alias(ctx)
    model_classes = _keras_model_classes(module, resolve)
    names = _default_names(module)
    outcome: Dict[str, Optional[str]] = {}
    held = suppressed_functions(ctx, "TFM400")  # `rewrite` leaves these as they are
    held_models = _held_model_functions(ctx)
    plain: Optional[Dict[str, cst.FunctionDef]] = None
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in held:
            outcome[stmt.name.value] = "a suppression comment keeps it as it is"
        elif isinstance(stmt, cst.FunctionDef) and _opens_session(stmt, resolve):
            converter = ProgramConverter(stmt, resolve, tf_alias, model_classes, _module_names(module),
                                         module.default_indent, names)
            converter.preserve_bugs = bool(getattr(options, "preserve_bugs", False))
            # The TF1 variable names of the models the model rewrite made (var_list filters).
            converter.model_variables = dict(getattr(ctx, "model_variables", {}))
            converter.variable_properties = _variable_properties(module, model_classes)
            if plain is None:
                plain = _plain_functions(module, resolve)
                externals = external_functions(ctx, options)
            converter.module_functions = plain
            converter.external_functions = externals
            try:
                _refuse_held_models(stmt, held_models)
                converter.convert()
            except Unmappable as exc:
                outcome[stmt.name.value] = str(exc)
                continue
            outcome[stmt.name.value] = None
            # what the tree index promises other modules to rename (tree_index._promised_renames)
            ctx.__dict__.setdefault("program_external_calls", {})[stmt.name.value] = \
                set(converter.external_renames)
    return outcome


def _plain_functions(module: cst.Module, resolve) -> Dict[str, cst.FunctionDef]:
    """The module's top-level functions a program may call as plain functions: all but the
    Session programs (the model functions are classes by now, or refuse the program)."""
    return {stmt.name.value: stmt for stmt in module.body
            if isinstance(stmt, cst.FunctionDef) and not _opens_session(stmt, resolve)}


def _held_model_functions(ctx) -> Set[str]:
    """Model functions (TFM300 findings) a suppression keeps TF1 code (`suppressed_functions`)."""
    held = suppressed_functions(ctx, "TFM300")
    if not held:
        return held
    tree_lines = {n.lineno: n.name for n in ctx.tree.body if isinstance(n, ast.FunctionDef)}
    models = {tree_lines.get(f.line) for f in getattr(ctx, "findings", []) if f.code == "TFM300"}
    return held & models


def _refuse_held_models(func: cst.FunctionDef, held_models: Set[str]) -> None:
    """A train step cannot call a model function left TF1 code (it would build TF1 layers on
    every step, and their variables would not be trained): the program stays as it is too."""
    if not held_models:
        return
    called = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node):
            if isinstance(node.func, cst.Name) and node.func.value in held_models:
                called.append(node.func.value)

    func.visit(V())
    if called:
        # Not spelled `# tf-migrate: ignore`: the marker comment would read as a suppression.
        raise Unmappable(f"it calls `{called[0]}`, which a suppression comment keeps TF1 code")


def _mark(stmt: cst.FunctionDef, reason: str) -> cst.FunctionDef:
    reason = " ".join(reason.split())
    for line in stmt.leading_lines:
        if line.comment is not None and line.comment.value.startswith(MARKER):
            return stmt
    comment = cst.EmptyLine(comment=cst.Comment(f"{MARKER} left unchanged: {reason}"))
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, comment])


def _opens_session(func: cst.FunctionDef, resolve) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node):
            if resolve(node.func) in SESSIONS:
                found.append(node)

    func.visit(V())
    return bool(found)


def _keras_model_classes(module: cst.Module, resolve) -> Set[str]:
    classes = set()
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef):
            for base in stmt.bases:
                name = resolve(base.value) or dotted(base.value) or ""
                if name.endswith("Model") and "keras" in name:
                    classes.add(stmt.name.value)
    return classes


# What a Keras model's property may return to mean "the model's variables" in a var_list: the
# optimizer only trains the trainable ones, as TF1 skipped variables without a gradient.
_OWN_VARIABLES = ("self.trainable_variables", "self.variables", "self.trainable_weights",
                  "self.weights")


def _variable_properties(module: cst.Module, model_classes: Set[str]) -> Dict[str, Set[str]]:
    """Keras model class -> its properties that return the model's own variables
    (`@property def vars(self): return self.trainable_variables`, what the model rewrite makes
    of a GAN network's scope-filtering `vars`): `var_list=D.vars` trains model `D`."""
    found: Dict[str, Set[str]] = {}
    for stmt in module.body:
        if not (isinstance(stmt, cst.ClassDef) and stmt.name.value in model_classes):
            continue
        for member in stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else []:
            if not (isinstance(member, cst.FunctionDef) and len(member.decorators) == 1
                    and dotted(member.decorators[0].decorator) == "property"
                    and isinstance(member.body, cst.IndentedBlock)):
                continue
            body = [s for s in member.body.body if not (
                isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Expr)
                and isinstance(s.body[0].value, cst.SimpleString))]  # a docstring
            if len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine) and \
                    isinstance(body[0].body[0], cst.Return) and body[0].body[0].value is not None \
                    and dotted(body[0].body[0].value) in _OWN_VARIABLES:
                found.setdefault(stmt.name.value, set()).add(member.name.value)
    return found


def _module_names(module: cst.Module) -> Set[str]:
    names = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for target in small.targets:
                        if isinstance(target.target, cst.Name):
                            names.add(target.target.value)
    return names


_BEHAVIOUR_CODES = ("TFM206", "TFM403", "TFM404")
_BATCH_NORM_SITES = ("TFM101", "TFM102", "TFM103", "TFM104", "TFM105")


def _has_batch_norm(ctx) -> bool:
    return any(f.code in _BATCH_NORM_SITES for f in getattr(ctx, "findings", []))


def _imports_os(module: cst.Module) -> bool:
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Import):
            for alias in stmt.body[0].names:
                bound = alias.asname.name.value if alias.asname else dotted(alias.name)
                if bound == "os" and dotted(alias.name) == "os":
                    return True
    return False


def _with_import_os(body) -> list:
    """`import os` before the module's first import (after its docstring and __future__)."""
    def is_import(stmt):
        return isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom))

    def is_future(stmt):
        return is_import(stmt) and isinstance(stmt.body[0], cst.ImportFrom) and \
            isinstance(stmt.body[0].module, cst.Name) and stmt.body[0].module.value == "__future__"

    index = next((i for i, stmt in enumerate(body) if is_import(stmt) and not is_future(stmt)), None)
    new = cst.parse_statement("import os\n")
    if index is None:
        index = next((i for i, stmt in enumerate(body) if not is_future(stmt) and not (
            i == 0 and isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr))),
            len(body))
        return [*body[:index], new, *body[index:]]
    first = body[index]
    return [*body[:index], new.with_changes(leading_lines=first.leading_lines),
            first.with_changes(leading_lines=[]), *body[index + 1:]]


def _first_definition_index(body) -> int:
    for index, stmt in enumerate(body):
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return index
    return len(body)


def _default_names(module: cst.Module):
    """class -> the name its __init__ gives by default (`kwargs.setdefault("name", "generator")`)."""
    names = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.ClassDef):
            continue

        class V(cst.CSTVisitor):
            def visit_Call(self, node):
                if (dotted(node.func) == "kwargs.setdefault" and len(node.args) == 2
                        and isinstance(node.args[0].value, cst.SimpleString)
                        and node.args[0].value.evaluated_value == "name"
                        and isinstance(node.args[1].value, cst.SimpleString)):
                    names[stmt.name.value] = node.args[1].value.evaluated_value

        stmt.visit(V())
    return names
