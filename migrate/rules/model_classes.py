import ast
import re
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from migrate.cst_utils import keyword_arg as _keyword_arg, name_uses, without_statements
from migrate.findings import BOUNDED, BEHAVIOUR_CHANGE, EXACT, Finding
from migrate.model_rewrite.arg_scopes import drop_dead_arg_scope_functions
from migrate.model_rewrite.call_site_scopes import CallSiteScope, call_site_scope
from migrate.model_rewrite import (analysis, fused_bn, network_classes, tf1_classes, usage,
                                   weights)
from migrate.model_rewrite.convert import ConvertedFunction, FunctionConverter, _RENDER
from migrate.bn_mapping import NOT_LITERAL
from migrate.model_rewrite.layers import LAYER_APIS, LAYER_CLASS_APIS, Unmappable, literal
from migrate.model_rewrite.tf2_api import exists_in_tf2
from migrate.model_rewrite.tf1_renames import rename_in_source, renamed_helpers
from migrate.rules.model_classes_findings import ModelClassesFindings

MARKER = "# tf-migrate: TFM301"
# Findings a class conversion resolves for the sites inside the converted function.
_RESOLVED_CODES = {"TFM101", "TFM102", "TFM103", "TFM104", "TFM105", "TFM106", "TFM107", "TFM204"}


class ModelClasses(ModelClassesFindings):
    """
    ## What it does
    Rewrites each TF1 model-building function -- a function that builds layers
    with `tf.layers`, contrib/slim or batch norm, or calls another such
    function -- into a Keras 3 class: `tf.keras.Model` for the models the
    program builds, `tf.keras.layers.Layer` for helpers used inside them.
    Layers are created once in `__init__` and called in `call(inputs,
    training=False)`; the training flag parameter becomes Keras's `training`
    argument; configuration parameters become constructor arguments; loops
    that build layers become lists of layers; layers built only under a shape
    condition are created in `build(input_shape)`; variable scopes become
    layer names; slim `arg_scope` defaults are written out on each layer;
    `control_dependencies` around layers become program order. Callers create
    the model once and call it with `training=`.

    slim nets: `with tf.variable_scope(scope, 'vgg_a', [inputs]) as sc:` names
    the model; the end_points collection (`outputs_collections=` +
    `slim.utils.convert_collection_to_dict`) becomes a dict of the layer
    outputs keyed by their TF1 names (`self.name + '/conv1/conv1_1'`);
    `slim.repeat` becomes the layers slim names `conv1/conv1_1`, ...; the
    defaults of a caller's `with slim.arg_scope(vgg_arg_scope()):` (a literal
    arg_scope nest returning its scope, literal arguments, the same at every
    call site) are written out on the model's layers and the block goes, its
    `is_training` argument becoming the call's `training=`.

    A batch-norm wrapper class (DCGAN's `batch_norm(object)` with
    `__call__(x, train=True)`) becomes a Keras `Layer` of the same name that
    creates its `BatchNormalization` once; `call` keeps `__call__`'s
    parameters. A network class -- `__init__` only stores configuration and
    `__call__` builds the network (official ResNet's `Model`, GAN
    repositories' `Generator` with `reuse` and a `vars` property) --
    becomes a `tf.keras.Model` of the same name: the original constructor
    and configuration, the layers created once, `call(inputs, training=...)`;
    `reuse=True` is calling the same object again, a scope-filtering `vars`
    property returns `self.trainable_variables`, and callers pass
    `training=` by keyword. A model class whose methods build the graph and
    share it through `self` is left marked. A module-level object of a
    wrapper class (`g_bn0 = batch_norm(name='g_bn0')`) that one model
    function alone calls becomes its sub-layer, made in its `__init__` by the
    same constructor call. A helper built on `tf.get_variable` (DCGAN's
    `linear`) becomes a Layer creating its weights in `build(input_shape)`
    with `add_weight`, under their TF1 names.
    All or nothing, across the files of one run too: a function or class is
    converted only if no code that stays TF1 (a caller left unchanged, a
    class method, module-level code, another module) still uses it.

    ## Why
    In TF1 a model function runs once to build a graph, so each layer call
    creates its variables once. In TF2 the model runs every step: a layer
    created inside the function would get new variables on every call.
    Rewriting `tf.layers.batch_normalization(x)` into
    `tf.keras.layers.BatchNormalization()(x)` inside the function -- what a
    rename tool would do -- is therefore wrong, and this rule never emits it.
    A function it cannot convert safely is left unchanged, marked with
    `# tf-migrate: TFM301 <reason>` above its `def`, and reported.

    ## Example
    ```python
    def model(images, is_training):
        net = tf.layers.conv2d(images, 8, 3, padding="same", use_bias=False, name="conv1")
        net = tf.layers.batch_normalization(net, training=is_training, momentum=0.9, name="bn1")
        return tf.layers.dense(tf.layers.flatten(tf.nn.relu(net)), 10, name="logits")
    ```
    becomes
    ```python
    class Model(tf.keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv1 = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")
            self.bn1 = tf.keras.layers.BatchNormalization(momentum=0.9, name="bn1")
            self.flatten = tf.keras.layers.Flatten(name="flatten")
            self.logits = tf.keras.layers.Dense(10, name="logits")

        def call(self, images, training=False):
            net = self.conv1(images)
            net = self.bn1(net, training=training)
            return self.logits(self.flatten(tf.nn.relu(net)))
    ```
    """

    # code, tokens, reported codes and `check`: ModelClassesFindings (libcst-free, for `check`)

    # -- rewrite (libcst) ---------------------------------------------------------------------
    def rewrite(self, module: cst.Module, ctx) -> Tuple[cst.Module, List[Finding]]:
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        positions = wrapper.resolve(PositionProvider)
        resolve = _resolver(ctx)
        externals = _externals(ctx, self.options)
        functions, converted, failed = self.convert_all(module, ctx, resolve, externals)
        blocked = _blocked(ctx, self.options)
        _apply_blocks(converted, failed, blocked)
        # Class-based TF1 code (read by _apply, also in _settle's trial runs).
        self.classes, self.classes_failed = self.convert_classes(module, ctx, resolve, blocked)
        if not converted and not failed and not self.classes and not self.classes_failed:
            return module, []
        self._settle(module, ctx, positions, functions, converted, failed, externals)
        if _unpromised_renames(converted, failed, ctx, self.options):
            self._settle(module, ctx, positions, functions, converted, failed, externals)
        return self._apply(module, ctx, positions, functions, converted, failed, externals)

    def _settle(self, module, ctx, positions, functions, converted, failed, externals) -> None:
        """All or nothing per call graph: a converted function may only be called by converted
        functions, or by a training program the training-loop rewrite converts too. Otherwise the
        caller would keep TF1 code calling a class (half-converted) or a function that no longer
        exists (NameError); such functions are kept as they were and reported instead."""
        from migrate.rules.train_steps import _trial_programs

        def staying() -> Set[str]:
            return {n for n, i in functions.items() if not i.external and n not in converted}

        def rollback(name: str, reason: str) -> None:
            failed[name] = reason
            del converted[name]

        # Methods of classes (and module-level code) that call a model function stay TF1 code.
        networks = set(getattr(self, "networks", {}))
        for name, user in sorted(usage.users_outside(ctx.tree, set(converted), functions=False,
                                                     converted=set(converted) & networks).items()):
            rollback(name, f"it is used by {user}, which stays TF1 code")
        for _ in range(2 * len(functions) + 2):
            changed = self._settle_wrapper_objects(converted, rollback)
            for caller in sorted(staying()):
                if not functions[caller].is_model:
                    continue  # program callers: decided by the trial below
                for helper in sorted(functions[caller].calls_helpers):
                    if helper in converted:
                        rollback(helper, f"it is called by `{caller}`, which stays TF1 code")
                        changed = True
            for name in sorted(converted):
                blocked = [h for h in sorted(functions[name].calls_helpers)
                           if functions[h].is_model and not functions[h].external
                           and h not in converted]
                if blocked:
                    rollback(name, f"it calls `{blocked[0]}`, which is not converted")
                    changed = True
            if changed:
                continue
            # Functions that are not model functions but call converted models: only training
            # programs the training-loop rewrite converts may do that.
            callers = {n for n in staying() if not functions[n].is_model
                       and any(h in converted for h in functions[n].calls_helpers)}
            if not callers:
                return
            trial_module, _ = self._apply(module, ctx, positions, functions, converted, dict(failed),
                                          externals)
            outcome = _trial_programs(trial_module, ctx, self.options) \
                if "TFM400" in getattr(ctx, "active_codes", ()) else {}
            # The training rewrite's own reason, found with the models converted: once they are
            # rolled back, the final run could only say that the program calls no model.
            reasons = ctx.__dict__.setdefault("program_failures", {})
            for caller, reason in outcome.items():
                if reason is not None:
                    reasons.setdefault(caller, reason)
            blocked = callers - {name for name, reason in outcome.items() if reason is None}
            for caller in sorted(blocked):
                why = getattr(ctx, "program_failures", {}).get(caller)
                for helper in sorted(functions[caller].calls_helpers):
                    if helper in converted:
                        rollback(helper, f"it is called by `{caller}`, which stays TF1 code "
                                         + (f"({why})" if why else
                                            "(the training-loop rewrite cannot migrate it yet)"))
                        changed = True
            if not changed:
                return

    def _settle_wrapper_objects(self, converted, rollback) -> bool:
        """A model may take a wrapper object as a sub-layer only if the wrapper class becomes a
        Keras Layer, which needs every other object of it gone too (a TF1 function keeps
        calling a TF1 object); otherwise its models stay TF1 code. Whether one rolled back."""
        objects = getattr(self, "wrapper_objects", {})
        classes, classes_failed = getattr(self, "classes", {}), getattr(self, "classes_failed", {})
        changed = False
        for cls_name in sorted({o.class_name for o in objects.values()}):
            mine = [o for o in objects.values() if o.class_name == cls_name]
            staying = [o for o in mine if not o.users or any(u not in converted for u in o.users)]
            if cls_name in classes and not staying:
                continue
            why = (f"its object `{staying[0].name}` stays TF1 code" if staying else
                   f"it stays TF1 code ({classes_failed.get(cls_name, 'not converted')})")
            for obj in mine:
                for user in obj.users:
                    if user in converted:
                        rollback(user, f"it uses `{obj.name}`, an object of the TF1 class "
                                       f"`{cls_name}`, and {why}")
                        changed = True
        return changed

    def convert_classes(self, module: cst.Module, ctx, resolve, blocked=None):
        """Plain TF1 classes that build layers: (converted wrapper classes, reasons of the rest).

        A batch-norm wrapper class becomes a Keras Layer only if nothing that stays TF1 code
        uses it (its objects called in a TF1 graph would be Keras layers whose updates the
        graph never runs); model classes whose methods build the graph are left, marked."""
        results: Dict[str, tf1_classes.ConvertedWrapper] = {}
        failed: Dict[str, str] = {}
        forgotten = any(f.code == "TFM206" for f in getattr(ctx, "findings", []))
        suppressed = _suppressed_classes(ctx, self.code)
        networks = set(getattr(self, "networks", {})) | set(getattr(self, "network_failed", {}))
        for name, cls in tf1_classes.tf1_classes(module, resolve).items():
            if name in suppressed:
                continue  # `# tf-migrate: ignore[TFM300]` on the class line: left as it is
            if name in networks:
                continue  # a network class: converted (or refused) with the model functions
            try:
                result = tf1_classes.convert_wrapper(cls, resolve, module.default_indent,
                                                     self.options, forgotten)
                if blocked and name in blocked:
                    raise Unmappable(blocked[name])
                # Its module-level objects go once their model converts (checked in _apply).
                objects = {o.statement_line for o in getattr(self, "wrapper_objects", {}).values()}
                tree = ast.Module(body=[s for s in ctx.tree.body if s.lineno not in objects],
                                  type_ignores=[])
                users = usage.users_outside(tree, {name})
                if users:
                    raise Unmappable(f"it is used by {users[name]}, which stays TF1 code")
                kind = _kind_of_notes(result.notes)
                if getattr(self.options, "safe_only", False) and kind != EXACT:
                    raise Unmappable(f"a {kind} rewrite, skipped by --safe-only")
                results[name] = result
            except Unmappable as exc:
                failed[name] = str(exc)
        return results, failed

    def convert_all(self, module: cst.Module, ctx, resolve, externals=None):
        """(function infos, converted classes by name, reasons of the failures by name).

        Network classes (`network_classes`: one graph method such as `__call__`, configuration
        in `__init__`) take part as the model function their graph method is, under the class
        name: the same call graph, all-or-nothing settling and caller trial decide them."""
        networks, network_failed = _network_classes(module, ctx, resolve)
        analysed = module
        if networks:
            analysed = module.with_changes(body=[
                networks[s.name.value].function if isinstance(s, cst.ClassDef)
                and s.name.value in networks else s for s in module.body])
        self.wrapper_objects = _wrapper_objects(module, ctx, resolve)
        functions = analysis.analyse_module(analysed, resolve, externals, self.wrapper_objects)
        self.networks = {}
        for name, net in networks.items():
            info = functions.get(name)
            if info is None or not info.is_model:
                functions.pop(name, None)  # builds nothing: not a network class after all
                continue
            info.network_class = True
            info.class_name, info.base, info.called_from_program = name, "tf.keras.Model", True
            self.networks[name] = net
        indent = module.default_indent
        quote = _preferred_quote(ctx.text)
        converted: Dict[str, ConvertedFunction] = {}
        failed: Dict[str, str] = {}
        forgotten = any(f.code == "TFM206" for f in getattr(ctx, "findings", []))
        # A suppression in a function (bare, TFM300, or a layer-site code): no rewrite there, as
        # ruff's noqa drops the fix; nor a TFM301 marker, which would change its bytes too.
        suppressed = suppressed_functions(ctx, self.code)
        for name, info in functions.items():
            if info.is_program and not info.external and name not in suppressed \
                    and _builds_layers_itself(info, resolve):
                failed[name] = ("it also builds the training machinery (loss, optimizer, "
                                "EstimatorSpec...): the training-loop rewrite migrates it")
        tf1_objects = tf1_classes.tf1_objects(module, resolve)
        for name in self.networks:
            tf1_objects.pop(name, None)  # converted with the model functions (its own name)
        # TF1 classes imported from the tree; its functions that create nothing
        from migrate.tree_index import class_refs_for, external_functions, plain_functions_for

        index = getattr(self.options, "tree_index", None)
        # Plain functions of other files using TF1-only API: refused, or renamed in their file
        # (the calls are recorded here; `rewrite` checks the tree index promised each rename).
        tf1_plain = external_functions(ctx, self.options)
        tf1_plain.promised = None
        for local, (source, cls) in class_refs_for(index, getattr(ctx, "module_name", None),
                                                   ctx.tree).items():
            if "." not in local:
                tf1_objects.setdefault(local, f"the TF1 class `{cls}` of module `{source}`")
        self.network_failed = network_failed
        model_functions = {n for n, i in functions.items() if i.is_model and n not in self.networks}
        for name in _helpers_first(functions):
            info = functions[name]
            if name in suppressed:
                continue
            net = self.networks.get(name)
            blocked = [h for h in info.calls_helpers if functions[h].is_model
                       and (h in failed or h in suppressed)]
            try:
                if blocked:
                    raise Unmappable(f"it calls `{blocked[0]}`, which is not converted")
                owned = _owned_wrapper_objects(name, info, self.wrapper_objects)
                used = sorted(tf1_classes.mentioned(info.node, tf1_objects) - set(owned))
                why = getattr(ctx, "wrapper_objects_rejected", {})
                if used and used[0] in why:
                    raise Unmappable(f"it uses {tf1_objects[used[0]]} that {why[used[0]]}: only "
                                     "an object only model functions use becomes a sub-layer"
                                     if why[used[0]].endswith(" uses too") else
                                     f"it uses {tf1_objects[used[0]]}, which {why[used[0]]}: it "
                                     "stays a TF1 object")
                if used:
                    raise Unmappable(f"it uses {tf1_objects[used[0]]}: the rewrite does not make "
                                     "such objects sub-layers of the model yet")
                converter = FunctionConverter(info, functions, resolve, indent, self.options,
                                              forgotten_update_ops=forgotten)
                converter.preferred_quote = quote
                converter.imported_names = _non_tf_imports(ctx)
                converter.module_names = usage.top_level_names(ctx.tree) | set(functions) | \
                    plain_functions_for(index, getattr(ctx, "module_name", None), ctx.tree) | \
                    getattr(ctx, "plain_imports", set())
                converter.wrapper_objects = owned
                if net is not None:
                    _check_network(net, info, ctx, model_functions)
                result = converter.convert()
                if net is not None:
                    result.class_source = network_classes.class_source(
                        net, result.class_source, indent, info.training_param)
                # TF1 spellings with an exact TF2 name (tf.log, keep_dims=) are renamed in
                # the class; the others still refuse below.
                result.class_source = rename_in_source(result.class_source, resolve)
                result.external_renames = set()
                result.renamed_helpers = _validate(
                    result.class_source, ctx, module, resolve,
                    skip={n for n, i in functions.items() if i.is_model}, externals=tf1_plain,
                    external_calls=result.external_renames)
                kind = _rewrite_class(result)
                if getattr(self.options, "safe_only", False) and kind != EXACT:
                    raise Unmappable(f"a {kind} rewrite, skipped by --safe-only")
                converted[name] = result
            except Unmappable as exc:
                failed[name] = str(exc)
        return functions, converted, failed

    def _apply(self, module, ctx, positions, functions, converted, failed, externals):
        tf_alias = _tensorflow_alias(ctx)
        findings: List[Finding] = []
        new_body = []
        classes = getattr(self, "classes", {})
        classes_failed = dict(getattr(self, "classes_failed", {}))
        networks = set(getattr(self, "networks", {}))
        failed = dict(failed)
        for name, reason in getattr(self, "network_failed", {}).items():
            failed.setdefault(name, reason)
            networks.add(name)
        # Wrapper objects whose one model converted become its sub-layers; the others stay, and
        # so does their class (a TF1 function calling a Keras layer would be half-converted).
        objects = getattr(self, "wrapper_objects", {})
        gone = {n for n, o in objects.items() if o.users and all(u in converted for u in o.users)}
        classes = dict(classes)
        for obj_name, obj in sorted(objects.items()):
            if obj_name not in gone and obj.class_name in classes:
                del classes[obj.class_name]
                user = next((u for u in obj.users if u not in converted), None)
                classes_failed[obj.class_name] = (
                    f"its object `{obj_name}` is used by `{user}`, which stays TF1 code" if user
                    else f"its object `{obj_name}` is used by no function")
        gone_lines = {objects[n].statement_line for n in gone
                      if objects[n].class_name in classes}
        carry_into: Dict[int, List[cst.EmptyLine]] = {}  # new_body index -> comments it takes
        # Plain helpers the converted classes call, their TF1 spellings renamed (tf.log ->
        # tf.math.log): with the classes that need them only (_validate).
        renamed: Dict[str, cst.FunctionDef] = {}
        for result in converted.values():
            renamed.update(getattr(result, "renamed_helpers", {}))
        for stmt in module.body:
            if gone_lines and positions[stmt].start.line in gone_lines:
                # `g_bn0 = batch_norm(name='g_bn0')`: now made in its model's __init__; its
                # comments lead the next statement.
                if any(line.comment is not None for line in stmt.leading_lines):
                    carry_into.setdefault(len(new_body), []).extend(stmt.leading_lines)
                continue
            if isinstance(stmt, cst.ClassDef) and stmt.name.value in classes:
                result = classes[stmt.name.value]
                source = result.class_source
                if tf_alias != "tf":
                    source = re.sub(r"\btf\.keras\.", f"{tf_alias}.keras.", source)
                new_stmt = cst.parse_statement(source, config=module.config_for_parsing)
                new_body.append(new_stmt.with_changes(leading_lines=stmt.leading_lines))
                findings.extend(self._resolved_class(ctx, result, positions[stmt].start.line,
                                                     positions[stmt].end.line))
                continue
            if isinstance(stmt, cst.ClassDef) and stmt.name.value in classes_failed:
                reason = classes_failed[stmt.name.value]
                new_body.append(_mark_unconverted(stmt, reason))
                findings.append(Finding(ctx.path, positions[stmt].start.line, 1, "TFM301",
                                        f"`{stmt.name.value}` left unchanged: {reason}"))
                continue
            name = stmt.name.value if isinstance(stmt, cst.FunctionDef) or (
                isinstance(stmt, cst.ClassDef) and stmt.name.value in networks) else None
            if name in converted:
                source = converted[name].class_source
                if tf_alias != "tf":
                    source = re.sub(r"\btf\.keras\.", f"{tf_alias}.keras.", source)
                new_stmt = cst.parse_statement(source, config=module.config_for_parsing)
                new_body.append(new_stmt.with_changes(leading_lines=stmt.leading_lines))
                start = positions[stmt].start.line
                end = positions[stmt].end.line
                findings.extend(self._resolved(ctx, converted[name], start, end))
            elif name in failed:
                new_body.append(_mark_unconverted(stmt, failed[name]))
                findings.append(Finding(ctx.path, positions[stmt].start.line, 1, "TFM301",
                                        f"`{name}` left unchanged: {failed[name]}"))
            elif name in renamed:
                new_body.append(renamed[name])  # a plain helper the converted classes call
            else:
                new_body.append(_function_attribute_on_class(stmt, converted))
        for index, comments in carry_into.items():
            if comments and index < len(new_body):
                new_body[index] = new_body[index].with_changes(
                    leading_lines=[*comments, *new_body[index].leading_lines])
        if any(c.uses_fused_compat for c in [*converted.values(), *classes.values()]) and \
                not _defines(module, fused_bn.CLASS_NAME):
            source = fused_bn.SOURCE if tf_alias == "tf" else re.sub(r"\btf\.", f"{tf_alias}.", fused_bn.SOURCE)
            index = next((i for i, s in enumerate(new_body)
                          if isinstance(s, (cst.FunctionDef, cst.ClassDef))), len(new_body))
            compat = cst.parse_statement(source, config=module.config_for_parsing)
            new_body.insert(index, compat.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
        module = module.with_changes(body=new_body)
        # The TF1 variable scopes of each model, for var_list filters in its training program.
        ctx.model_variables = weights.tf1_variable_names(converted, functions)
        module = _export_classes(module, {n: c.info.class_name for n, c in converted.items()})
        module = _rewrite_callers(module, {n: c.info for n, c in converted.items()
                                           if n not in networks}, functions, _resolver(ctx))
        module = _rewrite_instance_calls(module, ctx, {n: c.info for n, c in converted.items()
                                                       if n in networks},
                                         getattr(self, "networks", {}))
        if converted:
            module = _import_helper_classes(module, converted, functions, externals or {})
        if converted or classes:
            module = drop_dead_arg_scope_functions(module, ctx, _resolver(ctx), self.options)
            module = _drop_unused_slim_aliases(module, ctx)
        return module, findings

    def _resolved_class(self, ctx, result, start: int, end: int) -> List[Finding]:
        kind = _kind_of_notes(result.notes)
        out = [Finding(ctx.path, start, 1, self.code,
                       f"class `{result.name}` became `{result.name}(tf.keras.layers.Layer)` "
                       "creating its batch norm once", fixed=True, rewrite_class=kind)]
        for code, message in dict(result.notes).items():
            out.append(Finding(ctx.path, start, 1, code, message, fixed=True,
                               rewrite_class=BOUNDED if code == "TFM302" else BEHAVIOUR_CHANGE))
        out.extend(resolved_findings(ctx, _RESOLVED_CODES, start, end))
        return out

    def _resolved(self, ctx, result: ConvertedFunction, start: int, end: int) -> List[Finding]:
        out = []
        info = result.info
        rewrite_class = _rewrite_class(result)
        out.append(Finding(ctx.path, start, 1, self.code,
                           f"`{info.name}` became `{info.class_name}({info.base})` with "
                           f"{len(result.layers)} layer(s)", fixed=True, rewrite_class=rewrite_class))
        for code, message in dict(result.notes).items():
            if code in ("TFM302", "TFM303", "TFM206", "TFM304"):
                kind = {"TFM302": BOUNDED, "TFM304": EXACT}.get(code, BEHAVIOUR_CHANGE)
                out.append(Finding(ctx.path, start, 1, code, message, fixed=True, rewrite_class=kind))
        out.extend(resolved_findings(ctx, _RESOLVED_CODES, start, end))
        return out


def resolved_findings(ctx, codes, start: int, end: int) -> List[Finding]:
    """The rules' findings with a code in `codes` on lines start..end, marked fixed: the sites
    a rewrite of those lines resolved."""
    return [Finding(f.path, f.line, f.col, f.code, f.message, fixed=True,
                    rewrite_class=f.rewrite_class or EXACT)
            for f in getattr(ctx, "findings", [])
            if f.code in codes and start <= f.line <= end]


def _resolver(ctx):
    def resolve(node) -> Optional[str]:
        name = analysis.dotted(node)
        return ctx.resolver.resolve_dotted(name) if name else None
    return resolve


def suppressed_functions(ctx, code: str) -> Set[str]:
    """Module-level functions a line suppression keeps out of the whole-function rewrite `code`
    (TFM300/TFM400): one anywhere in the function that is bare, names `code`, or names the code
    of a site finding on its line the rewrite would rewrite (`suppressions.held_functions`)."""
    from migrate.suppressions import held_functions, parse

    if "tf-migrate" not in ctx.text:
        return set()
    return set(held_functions(parse(ctx.text), code, getattr(ctx, "findings", []), ctx.tree))


def _suppressed_classes(ctx, code: str) -> Set[str]:
    """Module-level classes whose `class` line carries a suppression of `code` (or a bare one)."""
    if "tf-migrate" not in ctx.text:
        return set()
    from migrate.suppressions import parse

    lines = parse(ctx.text).lines
    return {node.name for node in ctx.tree.body if isinstance(node, ast.ClassDef)
            and any(s.codes is None or code in s.codes for s in lines.get(node.lineno, []))}


def _externals(ctx, options):
    from migrate.tree_index import externals_for

    index = getattr(options, "tree_index", None)
    return externals_for(index, getattr(ctx, "module_name", None), ctx.tree)


def _blocked(ctx, options) -> Dict[str, str]:
    """Functions of this module that another module of the tree keeps using as TF1 code."""
    index = getattr(options, "tree_index", None)
    module_name = getattr(ctx, "module_name", None)
    return dict(index.blocked.get(module_name, {})) if index is not None and module_name else {}


def _unpromised_renames(converted, failed, ctx, options) -> bool:
    """Roll back the classes calling a renamable plain function of another file (`center` on
    keep_dims=) that the tree index has not promised to rename: it saw no converted code call
    it, so this module's decision differs from the one the index made (and the function's
    module keeps its TF1 spellings). Whether one rolled back."""
    from migrate.tree_index import external_functions

    promised = external_functions(ctx, options).promised
    if promised is None:
        return False  # the tree index is being built: it records the calls (`_promised_renames`)
    rolled = False
    for name in sorted(converted):
        missing = sorted(getattr(converted[name], "external_renames", set()) - promised)
        if missing:
            module, function = missing[0]
            failed[name] = (f"it calls `{function}` of module `{module}`, whose TF1 spellings that "
                            "module renames only for code the tree index saw converted")
            del converted[name]
            rolled = True
    return rolled


def _apply_blocks(converted, failed, blocked) -> None:
    for name, reason in sorted(blocked.items()):
        if name in converted:
            del converted[name]
            failed[name] = reason


def _decide(text: str, ctx, options, externals, blocked):
    """What the file's own run converts: (cst module, functions, converted, failed)."""
    from migrate.rules import ALL_RULES

    module = cst.parse_module(text)
    resolve = _resolver(ctx)
    rule = ModelClasses(options)
    functions, converted, failed = rule.convert_all(module, ctx, resolve, externals)
    _apply_blocks(converted, failed, blocked or {})
    # The wrapper classes, as the file's own run decides them (their objects' models hang on it).
    rule.classes, rule.classes_failed = rule.convert_classes(module, ctx, resolve, blocked)
    if converted:
        # Same all-or-nothing decision as the file's own run, so importers see what it will do.
        ctx.active_codes = {r.code for r in ALL_RULES if r.applies_to_text(text)}
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        rule._settle(module, ctx, positions, functions, converted, failed, externals)
    return module, functions, converted, failed


def converted_external_calls(text: str, ctx, options, externals, blocked=None) -> Set[Tuple[str, str]]:
    """(module, function) of the plain functions of other files of the tree, renamable the TF 2
    way (tree_index.renamable), that the code this module's run converts calls: its model
    classes, and the Session programs the training-loop rewrite then converts (trial-run on the
    module as this rule leaves it). The tree index has their modules rename them."""
    from migrate.rules import ALL_RULES
    from migrate.rules.train_steps import _trial_programs

    module = cst.parse_module(text)
    ctx.active_codes = {r.code for r in ALL_RULES if r.applies_to_text(text)}
    calls: Set[Tuple[str, str]] = set()
    applied = module
    if externals or _rewrites(text, ctx, options):  # as staying_external_users
        resolve = _resolver(ctx)
        rule = ModelClasses(options)
        functions, converted, failed = rule.convert_all(module, ctx, resolve, externals)
        _apply_blocks(converted, failed, blocked or {})
        rule.classes, rule.classes_failed = rule.convert_classes(module, ctx, resolve, blocked)
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        if converted:
            rule._settle(module, ctx, positions, functions, converted, failed, externals)
        for result in converted.values():
            calls |= getattr(result, "external_renames", set())
        applied, _ = rule._apply(module, ctx, positions, functions, converted, dict(failed), externals)
    if "TFM400" in ctx.active_codes:
        ctx.program_external_calls = {}
        for name, reason in _trial_programs(applied, ctx, options).items():
            if reason is None:
                calls |= ctx.program_external_calls.get(name, set())
    return calls


def staying_external_users(text: str, ctx, options, externals, blocked=None) -> Dict[str, str]:
    """Helpers imported from other modules of the tree (their local names here) that code of
    this module keeps calling as functions after its own run -> the first such user."""
    converted: Set[str] = set()
    if externals or _rewrites(text, ctx, options):  # the file's own run: wants_rewrite
        converted = set(_decide(text, ctx, options, externals, blocked)[2])
    return usage.users_outside(ctx.tree, set(externals), converted)


def _rewrites(text: str, ctx, options) -> bool:
    """Whether the file's own run lets this rule rewrite the module (pipeline: the text
    prefilter, then a finding of the rule's check)."""
    rule = ModelClasses(options)
    return rule.applies_to_text(text) and any(True for _ in rule.check(ctx))


def convertible_functions(text: str, ctx, options, externals=None, blocked=None) -> list:
    """The functions of one module that the rewrite converts, as tree-index records."""
    from types import SimpleNamespace

    if not _rewrites(text, ctx, options):
        return []
    _, functions, converted, failed = _decide(text, ctx, options, externals, blocked)
    records = []
    for name, result in converted.items():
        info = result.info
        if getattr(info, "network_class", False):
            continue  # a class: other modules create and call its objects, never a function
        records.append(SimpleNamespace(
            name=name, class_name=info.class_name, base=info.base, params=tuple(info.params),
            defaults=tuple((p, _RENDER.code_for_node(v)) for p, v in info.defaults.items()),
            tensor_params=tuple(info.tensor_params), config_params=tuple(info.config_params),
            training_param=info.training_param, scope_param=info.scope_param,
            reuse_params=tuple(sorted(info.reuse_params)),
            scope_name=_RENDER.code_for_node(info.scope_name) if info.scope_name is not None else None,
            scope_default=(_RENDER.code_for_node(info.scope_default)
                           if info.scope_default is not None else None),
            scope_default_shared=info.scope_default_shared,
            mode_param=info.mode_param, mode_template=info.mode_template))
    return records


def _wrapper_objects(module: cst.Module, ctx, resolve) -> Dict[str, usage.WrapperObject]:
    """Module-level objects of the batch-norm wrapper classes that convert to Keras Layers
    (`g_bn0 = batch_norm(name='g_bn0')`), by name."""
    suppressed = _suppressed_classes(ctx, "TFM300")
    sources = {}
    for name, cls in tf1_classes.tf1_classes(module, resolve).items():
        if name in suppressed:
            continue
        try:
            sources[name] = tf1_classes.convert_wrapper(cls, resolve, module.default_indent).class_source
        except Unmappable:
            continue
    rejected: Dict[str, str] = {}
    found = usage.wrapper_objects(ctx.tree, sources, rejected, ctx.text) if sources else {}
    ctx.wrapper_objects_rejected = rejected  # why the others stay TF1 objects (convert_all)
    return found


def _owned_wrapper_objects(name: str, info, objects) -> Dict[str, usage.WrapperObject]:
    """The wrapper objects model function `name` calls, each to become its sub-layer: only an
    object no other function uses, called at one place (Unmappable otherwise)."""
    if not objects or info.node is None:
        return {}
    owned = {}
    for obj_name in sorted(tf1_classes.mentioned(info.node, set(objects))):
        obj = objects[obj_name]
        others = [u for u in obj.users if u != name]
        if others:
            raise Unmappable(f"it uses `{obj_name}`, an object of the TF1 class `{obj.class_name}` "
                             f"that `{others[0]}` uses too: one Keras sub-layer cannot belong "
                             "to two models")
        calls = [c for c in _calls_named(info.node, obj_name)]
        if len(calls) != 1 or name_uses(info.node, {obj_name}) != 1:
            raise Unmappable(f"it uses `{obj_name}`, an object of the TF1 class `{obj.class_name}`, "
                             "other than in one call")
        owned[obj_name] = obj
    return owned


def _calls_named(node, callee: str) -> List[cst.Call]:
    found: List[cst.Call] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            if isinstance(call.func, cst.Name) and call.func.value == callee:
                found.append(call)

    node.visit(V())
    return found


def _network_classes(module: cst.Module, ctx, resolve):
    """(candidate network classes by name, reasons of the plain TF1 classes of that shape that
    cannot convert). Batch-norm wrapper classes are left to `convert_classes`."""
    found: Dict[str, network_classes.NetworkClass] = {}
    failed: Dict[str, str] = {}
    suppressed = _suppressed_classes(ctx, "TFM300")
    functions = {s.name.value for s in module.body if isinstance(s, cst.FunctionDef)}
    for stmt in module.body:
        if not isinstance(stmt, cst.ClassDef) or stmt.name.value in suppressed:
            continue
        if not (tf1_classes.builds_tf1_layers(stmt, resolve) or tf1_classes.mentioned(stmt, functions)):
            continue
        try:
            tf1_classes.convert_wrapper(stmt, resolve, module.default_indent)
            continue  # a batch-norm wrapper class
        except Unmappable:
            pass
        try:
            net = network_classes.candidate(stmt, resolve, functions)
        except Unmappable as exc:
            if tf1_classes.builds_tf1_layers(stmt, resolve):
                failed[stmt.name.value] = str(exc)
            continue
        if net is not None:
            found[net.name] = net
    return found, failed


def _check_network(net, info, ctx, model_functions) -> None:
    """What the model function view of a network class must satisfy besides converting."""
    method = net.method.name.value
    if info.config_params:
        raise Unmappable(f"{method} takes configuration (`{info.config_params[0]}`): Keras calls "
                         "take tensors and the training flag")
    if info.scope_param or info.mode_param:
        raise Unmappable(f"{method}'s parameter `{info.scope_param or info.mode_param}` names the "
                         "scope or mode of each call")
    problem = network_classes.instance_problems(ctx.tree, net, model_functions)
    if problem:
        raise Unmappable(problem)
    if network_classes.uses_substring_filter(net):
        problem = network_classes.scope_filter_is_exact(net, ctx.text)
        if problem:
            raise Unmappable(problem)


def _rewrite_instance_calls(module: cst.Module, ctx, infos, networks) -> cst.Module:
    """Calls of the objects of converted network classes pass training= by keyword."""
    if not infos:
        return module
    objects = {}
    for obj, cls in network_classes.instance_names(ctx.tree, set(infos)).items():
        info, net = infos[cls], networks[cls]
        objects[obj] = network_classes.CallSignature(net.call_params, list(info.tensor_params),
                                                     info.training_param)
    return module.visit(network_classes.InstanceCallRewriter(objects))


def _export_classes(module: cst.Module, classes: Dict[str, str]) -> cst.Module:
    """`__all__ = ["conv_bn", ...]` -> `["ConvBn", ...]`: `from ops import *` must bind the class
    (and a name in `__all__` that no longer exists makes that import fail)."""
    if not classes:
        return module
    body = []
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                isinstance(stmt.body[0], cst.Assign) and isinstance(stmt.body[0].value, (cst.List, cst.Tuple)) and \
                any(isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in stmt.body[0].targets):
            assign = stmt.body[0]
            elements = []
            for element in assign.value.elements:
                value = element.value
                if isinstance(value, cst.SimpleString) and value.evaluated_value in classes:
                    quote = value.value[-1]
                    value = cst.SimpleString(f"{quote}{classes[value.evaluated_value]}{quote}")
                elements.append(element.with_changes(value=value))
            stmt = stmt.with_changes(body=[assign.with_changes(value=assign.value.with_changes(elements=elements))])
        body.append(stmt)
    return module.with_changes(body=body)


def _import_helper_classes(module, converted, functions, externals) -> cst.Module:
    """`from ops import conv_bn_relu` -> `from ops import ConvBnRelu` once the callers use the class."""
    used_externals = set()
    for result in converted.values():
        used_externals |= {h for h in result.info.calls_helpers if functions[h].external}
    renames = {local: externals[local][1] for local in used_externals
               if local in externals and "." not in local}
    if not renames:
        return module
    remaining: Dict[str, int] = {}

    class Uses(cst.CSTVisitor):
        def visit_Name(self, node):
            remaining[node.value] = remaining.get(node.value, 0) + 1

        def visit_ImportFrom(self, node):
            return False

    module.visit(Uses())

    class Renamer(cst.CSTTransformer):
        def leave_ImportFrom(self, original, updated):
            if isinstance(updated.names, cst.ImportStar):
                return updated
            names = []
            for alias in updated.names:
                local = alias.evaluated_alias or alias.evaluated_name
                if local in renames:
                    new = cst.ImportAlias(name=cst.Name(renames[local]))
                    if remaining.get(local, 0):
                        names.extend([alias, new])  # the function is still used here too
                    else:
                        names.append(new.with_changes(comma=alias.comma))
                else:
                    names.append(alias)
            if names:
                names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(names=names)

    return module.visit(Renamer())


def _helpers_first(functions) -> List[str]:
    order: List[str] = []
    seen: Set[str] = set()

    def visit(name, stack=()):
        if name in seen or name in stack:
            return
        for helper in sorted(functions[name].calls_helpers):
            if functions[helper].is_model:
                visit(helper, stack + (name,))
        seen.add(name)
        order.append(name)

    for name, info in functions.items():
        if info.is_model and not info.external:
            visit(name)
    return [name for name in order if not functions[name].external]


def _rewrite_class(result: ConvertedFunction) -> str:
    """exact, bounded (a named, measured divergence) or behaviour-change, from the notes."""
    return _kind_of_notes(result.notes)


def _kind_of_notes(notes) -> str:
    codes = {code for code, _ in notes}
    if codes & {"TFM303", "TFM206"}:
        return BEHAVIOUR_CHANGE
    return BOUNDED if "TFM302" in codes else EXACT


def _non_tf_imports(ctx) -> Set[str]:
    """Local names the module imports from anything but TensorFlow, slim and Keras."""
    names = set()
    for node in ctx.nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                local = (alias.asname or alias.name).split(".")[0]
                if local not in ctx.resolver.bindings:
                    names.add(local)
    return names


def _defines(module: cst.Module, name: str) -> bool:
    return any(isinstance(s, (cst.ClassDef, cst.FunctionDef)) and s.name.value == name for s in module.body)


def _preferred_quote(text: str) -> str:
    """The quote character most of the module's one-line string literals use (tokenize: a
    libcst visit of the whole module cost ~0.1 s a file)."""
    import io
    import tokenize

    counts = {"'": 0, '"': 0}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING:
                body = token.string.lstrip("rRbBuUfF")
                if body[:3] not in ("'" * 3, '"' * 3) and body[:1] in counts:
                    counts[body[0]] += 1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return '"' if counts['"'] > counts["'"] else "'"


def _builds_layers_itself(info, resolve) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node):
            if resolve(node.func) in LAYER_APIS | LAYER_CLASS_APIS:
                found.append(node)

    info.node.visit(V())
    return bool(found)


def _tensorflow_alias(ctx) -> str:
    for local, bound in ctx.resolver.bindings.items():
        if bound == "tensorflow":
            return local
    return "tf"


def _validate(source: str, ctx, module: cst.Module, resolve, skip=frozenset(), externals=None,
              external_calls=None) -> Dict[str, cst.FunctionDef]:
    """Every TF name the class uses must exist in TF 2 (no tf.layers, no contrib, no slim), also
    inside the module's own helper functions it calls (`conv2d` built on tf.get_variable would
    create new variables on every call in TF2). A helper's TF1 spellings with an exact TF 2 name
    (DCGAN's `binary_cross_entropy` on tf.log) do not refuse: the helpers to rename with the
    class are returned (tf1_renames.renamed_helpers), applied by `_apply` only if it converts."""
    helpers = {s.name.value: s for s in module.body
               if isinstance(s, cst.FunctionDef) and s.name.value not in skip}
    renamed = renamed_helpers(source, helpers, resolve, lambda code: _validate_names(code, ctx),
                              externals=externals, external_calls=external_calls)
    _validate_names(source, ctx)
    return renamed


def _validate_names(source: str, ctx) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = ctx.resolver.resolve(node)
            if name is None:
                continue
            if name.startswith("tf_slim") or (name.startswith("tensorflow.") and not exists_in_tf2(name)):
                parent_chain = ast.unparse(node)
                if "keras" in parent_chain:
                    continue
                raise Unmappable(f"`{parent_chain}` has no TF2 equivalent the model rewrite knows")


def _mark_unconverted(stmt: cst.FunctionDef, reason: str) -> cst.FunctionDef:
    reason = " ".join(reason.split())
    for line in stmt.leading_lines:
        if line.comment is not None and line.comment.value.startswith(MARKER):
            return stmt  # already marked (idempotent)
    comment = cst.EmptyLine(comment=cst.Comment(f"{MARKER} left unchanged: {reason}"))
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, comment])


# -- callers ------------------------------------------------------------------------------------
class _CallerRewriter(cst.CSTTransformer):
    """In program code: create each model once (before its first use), call it with training=."""

    def __init__(self, converted, functions, resolve=None):
        super().__init__()
        self.converted = converted
        self.functions = functions
        self.resolve = resolve or (lambda node: None)
        self.scopes: List[Optional[CallSiteScope]] = []  # the with blocks around the call
        self.objects: Dict[str, str] = {}  # key (function + config args) -> object name
        self.pending: List[List[cst.BaseStatement]] = []
        self.inserts: List[Dict[int, List[str]]] = []

    def _block_stmts(self, body):
        return body

    def visit_FunctionDef(self, node):
        self.objects_stack = getattr(self, "objects_stack", [])
        self.objects_stack.append(self.objects)
        self.objects = {}
        return True

    def leave_FunctionDef(self, original, updated):
        self.objects = self.objects_stack.pop()
        return updated

    def visit_IndentedBlock(self, node):
        self.inserts.append({})
        return True

    def leave_IndentedBlock(self, original, updated):
        inserts = self.inserts.pop()
        return updated.with_changes(body=self._with_inserts(updated.body, inserts))

    def visit_Module(self, node):
        self.inserts.append({})
        return True

    def leave_Module(self, original, updated):
        inserts = self.inserts.pop()
        return updated.with_changes(body=self._with_inserts(updated.body, inserts))

    def _with_inserts(self, body, inserts):
        if not inserts:
            return body
        out = []
        for index, stmt in enumerate(body):
            new = [cst.parse_statement(text) for text in inserts.get(index, [])]
            if new:
                # The statement's blank lines and comments now lead the inserted block.
                new[0] = new[0].with_changes(leading_lines=stmt.leading_lines)
                stmt = stmt.with_changes(leading_lines=[])
            out.extend(new)
            out.append(stmt)
        return out

    def visit_SimpleStatementLine(self, node):
        self.current = node
        return True

    def visit_With(self, node):
        self.scopes.append(call_site_scope(node, self.resolve))
        return True

    def leave_With(self, original, updated):
        self.scopes.pop()
        return updated

    def _call_site_scope(self, info) -> Optional[CallSiteScope]:
        """The one literal `tf.variable_scope` around this call that names a model without a
        scope of its own (module docstring of call_site_scopes); None otherwise."""
        if info.scope_name is not None or info.scope_param:
            return None  # the model opens its own scope: TF1 nests them, a Keras name cannot
        variable_scopes = [s for s in self.scopes if s is not None and s.kind == "variable"]
        if len(variable_scopes) != 1 or variable_scopes[0].name is None:
            return None  # nested or computed scopes: the training rewrite refuses the block
        return variable_scopes[0]

    def leave_Call(self, original, updated):
        func = original.func
        if not (isinstance(func, cst.Name) and func.value in self.converted):
            return updated
        info = self.converted[func.value]
        if info.base != "tf.keras.Model":
            return updated
        bound: Dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(updated.args):
            if arg.star:
                return updated
            key = arg.keyword.value if arg.keyword is not None else (
                info.params[index] if index < len(info.params) else None)
            if key is None:
                return updated
            bound[key] = arg.value
        config = [(p, bound[p]) for p in info.config_params if p in bound]
        scope = bound.get(info.scope_param) if info.scope_param else None
        if scope is not None and not (isinstance(scope, cst.Name) and scope.value == "None"):
            config.append(("name", scope))
        site_scope = self._call_site_scope(info)
        if site_scope is not None:
            quoted = f'"{site_scope.name}"' if '"' not in site_scope.name and "\\" not in site_scope.name \
                else repr(site_scope.name)
            config.append(("name", cst.SimpleString(quoted)))
        config_text = ", ".join(f"{p}={_RENDER.code_for_node(v)}" for p, v in config)
        shared = info.shares_variables or (site_scope is not None and site_scope.reuse)
        key = f"{info.name}({config_text})" + ("" if shared else f"#{len(self.objects)}")
        obj = self.objects.get(key)
        if obj is None:
            taken = set(self.objects.values())
            obj, n = info.name, 2
            while obj in taken:
                obj, n = f"{info.name}_{n}", n + 1
            self.objects[key] = obj
            if site_scope is not None:
                self.objects.setdefault(f"{info.name}({config_text})", obj)  # for reuse=True
            if self.inserts:
                block_inserts = self.inserts[-1]
                block_inserts.setdefault(self._statement_index(), []).append(
                    f"{obj} = {info.class_name}({config_text})")
        # Keras 3 takes only the input positionally; other run-time values go by keyword.
        args = [cst.Arg(bound[p]) if i == 0 else _keyword_arg(p, bound[p])
                for i, p in enumerate(p for p in info.tensor_params if p in bound)]
        training = bound.get(info.training_param) if info.training_param else None
        if info.scope_training:
            # `with slim.arg_scope(net_arg_scope(is_training=True)):` around this call.
            if id(original) not in info.scope_training:
                raise RuntimeError(f"no arg_scope training flag recorded for a call of {info.name}")
            training = info.scope_training[id(original)]
        if training is None and info.training_param and \
                isinstance(info.defaults.get(info.training_param), cst.Name) and \
                info.defaults[info.training_param].value in ("True", "False"):
            # `def generator(z, train=True)` called as `generator(z)`: TF1 built it in training
            # mode, and Keras's call() defaults to training=False.
            training = info.defaults[info.training_param]
        if training is None and info.mode_param and info.mode_param in bound:
            training = cst.parse_expression(
                info.mode_template.format(_RENDER.code_for_node(bound[info.mode_param])))
        if training is not None:
            args.append(_keyword_arg("training", training))
        return updated.with_changes(func=cst.Name(obj), args=args)

    def _statement_index(self) -> int:
        return self._index_stack[-1] if getattr(self, "_index_stack", None) else 0

    def on_visit(self, node):
        # Track the index of the statement being visited in its block, for inserts.
        if isinstance(node, (cst.IndentedBlock, cst.Module)):
            self._block_stack = getattr(self, "_block_stack", [])
            self._block_stack.append(node)
        parent_blocks = getattr(self, "_block_stack", [])
        if parent_blocks and isinstance(node, cst.BaseStatement):
            block = parent_blocks[-1]
            body = block.body
            for index, stmt in enumerate(body):
                if stmt is node:
                    self._index_stack = getattr(self, "_index_stack", [])
                    self._index_stack.append(index)
                    break
        return super().on_visit(node)

    def on_leave(self, original, updated):
        if isinstance(original, (cst.IndentedBlock, cst.Module)):
            self._block_stack.pop()
        parent_blocks = getattr(self, "_block_stack", [])
        if parent_blocks and isinstance(original, cst.BaseStatement) and \
                any(stmt is original for stmt in parent_blocks[-1].body):
            self._index_stack.pop()
        return super().on_leave(original, updated)


def _function_attribute_on_class(stmt, converted):
    """`vgg_a.default_image_size = 224` -> `VggA.default_image_size = 224` (usage.py lets such
    module-level statements through): the function no longer exists, its class does."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
            isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1:
        target = stmt.body[0].targets[0].target
        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and \
                target.value.value in converted and literal(stmt.body[0].value) is not NOT_LITERAL:
            new_target = target.with_changes(
                value=cst.Name(converted[target.value.value].info.class_name))
            return stmt.with_changes(body=[stmt.body[0].with_changes(
                targets=[stmt.body[0].targets[0].with_changes(target=new_target)])])
    return stmt


def _rewrite_callers(module: cst.Module, converted, functions, resolve=None) -> cst.Module:
    if not converted:
        return module
    return module.visit(_CallerRewriter(converted, functions, resolve))


def _drop_unused_slim_aliases(module: cst.Module, ctx) -> cst.Module:
    """Remove `slim = tf.contrib.slim` / `import tensorflow.contrib.slim as slim` once nothing uses
    them: contrib does not exist in TF2, so the module could not even be imported."""
    used: Dict[str, int] = {}

    class Uses(cst.CSTVisitor):
        def visit_Name(self, node):
            used[node.value] = used.get(node.value, 0) + 1

        def visit_Attribute(self, node):
            node.value.visit(self)
            return False

    module.visit(Uses())

    def binds_only_slim(stmt) -> List[str]:
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return []
        small = stmt.body[0]
        names: List[str] = []
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                isinstance(small.targets[0].target, cst.Name):
            dotted_value = analysis.dotted(small.value)
            resolved = ctx.resolver.resolve_dotted(dotted_value) if dotted_value else None
            if resolved and resolved.startswith("tf_slim"):
                names.append(small.targets[0].target.value)
        elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
            for alias in small.names:
                local = alias.evaluated_alias or alias.evaluated_name.split(".")[0]
                full = alias.evaluated_name if isinstance(small, cst.Import) else (
                    f"{analysis.dotted(small.module) or ''}.{alias.evaluated_name}")
                from migrate.names import canonical
                if not canonical(full).startswith("tf_slim") or isinstance(small, cst.Import) and \
                        alias.asname is None:
                    return []
                names.append(local)
        return names

    def unused_alias(stmt) -> bool:
        names = binds_only_slim(stmt)
        # The binding itself is one use of each name.
        return bool(names) and all(used.get(n, 0) <= 1 for n in names)

    return without_statements(module, unused_alias)
