"""Take a `tf.estimator` `model_fn` apart so the model and training-loop rewrites can migrate it.

TF 2.16+ has no `tf.estimator`. A `model_fn(features, labels, mode, params)` mixes two things
the other rewrites already know how to migrate when they come separately:

* the *network*: the statements before the first mode branch (or before the loss reads
  `labels`); they only build layers and depend on the mode through
  `mode == tf.estimator.ModeKeys.TRAIN`;
* the *head*: loss, optimizer, `minimize`, `UPDATE_OPS`, the `EstimatorSpec` per mode.

`normalise_estimator` rewrites the module, still as TF1 code, into that separate shape:

* `model_fn` keeps its name but becomes the network alone, taking the training flag instead of
  the mode and returning the values the head reads (`return logits, predictions`); the model
  rewrite then turns it into `class ModelFn(tf.keras.Model)`;
* every call `spec = model_fn(features, labels, ModeKeys.X, params)` in the program is replaced
  by a call of the network and the head *specialised for that mode* (branches on the mode
  decided statically, the `EstimatorSpec` fields bound to names), and `spec.loss`,
  `spec.train_op`, `spec.predictions` by those names; the training-loop rewrite then turns the
  program into train steps.

It raises `Unmappable` for any shape it does not recognise; the caller then keeps the module
as it was. Nothing here decides alone whether the result is used: the rule trial-runs the
other two rewrites on it first (all or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from migrate.cst_utils import (SubstituteNames, bound_names, bound_names_in_order,
                               contains_return, name_uses, names_read)
from migrate.model_rewrite.layers import Unmappable
from migrate.training_rewrite.program import _calls_in

ESTIMATOR_SPEC = "tensorflow.estimator.EstimatorSpec"
# ModeKeys constants and the strings they stand for (`mode == 'train'` is common too).
MODE_KEYS = {"tensorflow.estimator.ModeKeys.TRAIN": "train",
             "tensorflow.estimator.ModeKeys.EVAL": "eval",
             "tensorflow.estimator.ModeKeys.PREDICT": "infer"}
SPEC_FIELDS = ("mode", "predictions", "loss", "train_op", "eval_metric_ops", "export_outputs",
               "training_chief_hooks", "training_hooks", "scaffold", "evaluation_hooks",
               "prediction_hooks")
_RENDER = cst.Module(body=[])


@dataclass
class ModelFn:
    """One estimator model_fn, taken apart."""

    name: str
    node: cst.FunctionDef
    params: List[str]
    features: str
    labels: Optional[str]
    mode: str
    network: List[cst.BaseStatement]
    head: List[cst.BaseStatement]
    outputs: List[str]
    flag: Optional[str]  # the network's training-flag parameter, when the network reads one
    defaults: Dict[str, cst.BaseExpression] = field(default_factory=dict)
    modes_used: Set[str] = field(default_factory=set)  # modes the program calls it with
    callers: Set[str] = field(default_factory=set)  # functions whose calls were inlined

    def modes_unused(self, resolve) -> List[str]:
        """Modes the model_fn handles that no program asks for (their code is not carried over)."""
        unused = []
        for mode in ("train", "eval", "infer"):
            if mode in self.modes_used:
                continue
            try:
                _specialise(self.head, self, mode, resolve)
            except Unmappable:
                continue
            unused.append({"infer": "PREDICT"}.get(mode, mode.upper()))
        return unused


def is_model_fn(func: cst.FunctionDef, resolve) -> bool:
    """Does `func` return a `tf.estimator.EstimatorSpec`?"""
    found = []

    class Returns(cst.CSTVisitor):
        def visit_FunctionDef(self, node):
            return node is func  # nested functions return their own things

        def visit_Return(self, node):
            if isinstance(node.value, cst.Call) and resolve(node.value.func) == ESTIMATOR_SPEC:
                found.append(node)

    func.visit(Returns())
    return bool(found)


def mode_of(node, resolve) -> Optional[str]:
    """'train' / 'eval' / 'infer' for a ModeKeys constant or its string, else None."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if value in MODE_KEYS.values() else None
    return MODE_KEYS.get(resolve(node) or "")


def take_apart(func: cst.FunctionDef, resolve) -> ModelFn:
    params = [p.name.value for p in func.params.params]
    if func.params.star_arg not in (None, cst.MaybeSentinel.DEFAULT) or func.params.star_kwarg:
        raise Unmappable("a model_fn with *args or **kwargs")
    defaults = {p.name.value: p.default for p in func.params.params if p.default is not None}
    mode = "mode" if "mode" in params else None
    if mode is None:
        raise Unmappable("the model_fn has no `mode` parameter")
    features = "features" if "features" in params else params[0]
    labels = "labels" if "labels" in params else None
    body = list(func.body.body)
    docstring = body[:1] if body and _is_docstring(body[0]) else []
    body = body[len(docstring):]
    split = next((i for i, stmt in enumerate(body)
                  if contains_return(stmt) or (labels is not None and labels in names_read(stmt))), len(body))
    network, head = body[:split], body[split:]
    if not network:
        raise Unmappable("the model_fn builds nothing before its first mode branch")
    network, flag = _network_flag(network, mode, resolve)
    if mode in set().union(*(names_read(s) for s in network)):
        raise Unmappable("the network depends on the mode beyond the training flag")
    bound: List[str] = []
    for stmt in network:
        for name in bound_names_in_order(stmt):
            if name not in bound:
                bound.append(name)
    read_later: Set[str] = set()
    for stmt in head:
        read_later |= names_read(stmt)
    outputs = [name for name in bound if name in read_later]
    if not outputs:
        raise Unmappable("the head of the model_fn reads nothing the network computes")
    return ModelFn(func.name.value, func, params, features, labels, mode, docstring + network, head,
                   outputs, flag, defaults)


def network_function(fn: ModelFn) -> cst.FunctionDef:
    """The model_fn reduced to its network: `def model_fn(features, is_training, params)`."""
    new_params = []
    for param in fn.node.params.params:
        name = param.name.value
        if name == fn.mode:
            if fn.flag is not None:
                new_params.append(param.with_changes(name=cst.Name(fn.flag), default=None))
        elif name != fn.labels and (name == fn.features or name in _reads(fn.network)):
            new_params.append(param)
    if new_params:
        new_params[-1] = new_params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    value = ", ".join(fn.outputs)
    ret = cst.parse_statement(f"return {value}")
    body = fn.node.body.with_changes(body=[*fn.network, ret])
    return fn.node.with_changes(params=fn.node.params.with_changes(params=new_params), body=body)


def inline_call(fn: ModelFn, call: cst.Call, spec_name: str, taken: Set[str], resolve,
                tf_alias: str) -> Tuple[List[cst.BaseStatement], Dict[str, cst.BaseExpression]]:
    """The statements replacing `spec_name = model_fn(...)`, and `spec.<field>` -> expression."""
    bound = _bind(fn, call)
    mode_value = mode_of(bound[fn.mode], resolve)
    if mode_value is None:
        raise Unmappable("model_fn is called with a mode that is not a ModeKeys constant")
    training = mode_value == "train"
    fn.modes_used.add(mode_value)
    head, fields = _specialise(fn.head, fn, mode_value, resolve)
    # Locals of the inlined code must not clash with the program's names.
    local = set(fn.outputs) | bound_names(cst.Module(body=head))
    renames: Dict[str, cst.BaseExpression] = {}
    for name in sorted(local):
        new = name
        n = 2
        while new in taken:
            new, n = f"{name}_{n}", n + 1
        taken.add(new)
        if new != name:
            renames[name] = cst.Name(new)
    substitutions = dict(renames)
    if fn.flag is not None:  # the dropped `is_training = mode == ModeKeys.TRAIN`, decided
        substitutions[fn.flag] = cst.Name("True" if training else "False")
    for param in fn.params:
        if param == fn.mode:
            continue
        if param in bound:
            substitutions[param] = bound[param]
    rename = _Substituted(substitutions)
    out: List[cst.BaseStatement] = []
    call_args = []
    for param in fn.node.params.params:
        name = param.name.value
        if name == fn.mode:
            if fn.flag is not None:
                call_args.append("True" if training else "False")
        elif name != fn.labels and (name == fn.features or name in _reads(fn.network)):
            call_args.append(_RENDER.code_for_node(bound[name]))
    targets = ", ".join(_RENDER.code_for_node(renames.get(o, cst.Name(o))) for o in fn.outputs)
    out.append(cst.parse_statement(f"{targets} = {fn.name}({', '.join(call_args)})"))
    for stmt in head:
        out.append(stmt.visit(rename))
    exprs: Dict[str, cst.BaseExpression] = {}
    for key, value in fields.items():
        value = value.visit(rename)
        if not isinstance(value, cst.Name):
            name = key
            n = 2
            while name in taken:
                name, n = f"{key}_{n}", n + 1
            taken.add(name)
            out.append(cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))], value)]))
            value = cst.Name(name)
        exprs[key] = value
    return out, exprs


def model_fn_names(module: cst.Module, resolve) -> List[str]:
    return [s.name.value for s in module.body if isinstance(s, cst.FunctionDef) and is_model_fn(s, resolve)]


def normalise_estimator(module: cst.Module, resolve, tf_alias: str,
                        only: Sequence[str]) -> Tuple[cst.Module, Dict[str, ModelFn], List[str]]:
    """(the module with the model_fns named in `only` taken apart and inlined, those model_fns,
    the functions that call them)."""
    model_fns: Dict[str, ModelFn] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in only:
            model_fns[stmt.name.value] = take_apart(stmt, resolve)
    if not model_fns:
        return module, {}, []
    new_body = []
    drivers = []
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in model_fns:
            new_body.append(network_function(model_fns[stmt.name.value]))
        elif isinstance(stmt, cst.FunctionDef):
            new = _inline_in_function(stmt, model_fns, resolve, tf_alias)
            if new is not stmt:
                drivers.append(stmt.name.value)
                for fn in model_fns.values():
                    if fn.name in names_read(stmt):
                        fn.callers.add(stmt.name.value)
            new_body.append(new)
        else:
            if names_read(stmt) & set(model_fns):
                raise Unmappable("model_fn is used outside a function that calls it")
            new_body.append(stmt)
    for fn in model_fns.values():
        if not fn.callers:
            # Its head would be lost: the programs that run it (an Estimator, another module)
            # are not here to receive it.
            raise Unmappable("no function of this module runs it as `spec = "
                             f"{fn.name}(..., ModeKeys.X, ...)` (an Estimator or another module does)")
    return module.with_changes(body=new_body), model_fns, drivers


# -- helpers ------------------------------------------------------------------------------------
def _inline_in_function(func: cst.FunctionDef, model_fns: Dict[str, ModelFn], resolve,
                        tf_alias: str) -> cst.FunctionDef:
    if not names_read(func) & set(model_fns):
        return func
    taken = bound_names(func) | names_read(func) | {p.name.value for p in func.params.params}
    specs: Dict[str, Dict[str, cst.BaseExpression]] = {}

    class Inline(cst.CSTTransformer):
        def leave_SimpleStatementLine(self, original, updated):
            if len(updated.body) != 1 or not isinstance(updated.body[0], cst.Assign):
                return updated
            assign = updated.body[0]
            value = assign.value
            if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)
                    and value.func.value in model_fns):
                return updated
            if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
                raise Unmappable("the EstimatorSpec of model_fn is not assigned to one name")
            spec = assign.targets[0].target.value
            if spec in specs:
                raise Unmappable(f"`{spec}` is assigned model_fn's EstimatorSpec twice")
            stmts, fields = inline_call(model_fns[value.func.value], value, spec, taken, resolve, tf_alias)
            specs[spec] = fields
            stmts[0] = stmts[0].with_changes(leading_lines=updated.leading_lines)
            return cst.FlattenSentinel(stmts)

    _refuse_estimator_driver(func, model_fns, resolve)
    before = name_uses(func, set(model_fns))
    func = func.visit(Inline())
    if before != len(specs):  # each inlined call leaves exactly one call of the network
        name = sorted(names_read(func) & set(model_fns))[0]
        raise Unmappable(f"`{name}` is used other than as `spec = {name}(...)`")

    class Fields(cst.CSTTransformer):
        def leave_Attribute(self, original, updated):
            if isinstance(original.value, cst.Name) and original.value.value in specs:
                fields = specs[original.value.value]
                key = original.attr.value
                if key not in fields:
                    raise Unmappable(f"`{original.value.value}.{key}` is not set for this mode")
                return fields[key]
            return updated

    func = func.visit(Fields())
    if names_read(func) & set(specs):
        raise Unmappable("an EstimatorSpec is used other than through its fields")
    return func


def _refuse_estimator_driver(func: cst.FunctionDef, model_fns, resolve) -> None:
    """A model_fn handed to `tf.estimator.Estimator` (or TPUEstimator) is run by the Estimator's
    own train/evaluate/predict loops, which TF 2.16+ no longer has: say so, by name."""
    for call in _calls_in(func):
        callee = resolve(call.func) or ""
        if not callee.startswith("tensorflow.") or not callee.endswith("Estimator"):
            continue
        for arg in call.args:
            if isinstance(arg.value, cst.Name) and arg.value.value in model_fns:
                raise Unmappable(
                    f"`{arg.value.value}` is handed to `{callee.replace('tensorflow.', 'tf.', 1)}`, "
                    "whose train/evaluate/predict loops TF 2.16+ no longer has; the rewrite "
                    "migrates a model_fn called as `spec = model_fn(..., ModeKeys.X, ...)`: "
                    "write that loop (or a Keras fit) by hand")


def _Substituted(substitutions):
    """Names -> the call's arguments; `{'lr': lr}['lr']` (a dict literal passed as `params`,
    then subscripted) folds to `lr`."""
    class Substituted(SubstituteNames):
        def leave_Subscript(self, original, updated):
            if isinstance(updated.value, cst.Dict) and len(updated.slice) == 1 and \
                    isinstance(updated.slice[0].slice, cst.Index):
                key = updated.slice[0].slice.value
                if isinstance(key, cst.SimpleString):
                    for element in updated.value.elements:
                        if isinstance(element, cst.DictElement) and \
                                isinstance(element.key, cst.SimpleString) and \
                                element.key.evaluated_value == key.evaluated_value:
                            return element.value
            return updated

    return Substituted(substitutions)


def _bind(fn: ModelFn, call: cst.Call) -> Dict[str, cst.BaseExpression]:
    bound: Dict[str, cst.BaseExpression] = {}
    for index, arg in enumerate(call.args):
        if arg.star:
            raise Unmappable("model_fn called with *args")
        if arg.keyword is not None:
            bound[arg.keyword.value] = arg.value
        elif index < len(fn.params):
            bound[fn.params[index]] = arg.value
        else:
            raise Unmappable("model_fn called with too many arguments")
    for name, default in fn.defaults.items():
        bound.setdefault(name, default)
    missing = [p for p in fn.params if p not in bound]
    if missing:
        raise Unmappable(f"model_fn called without `{missing[0]}`")
    for name, value in bound.items():
        if not _pure(value):
            raise Unmappable(f"model_fn called with a computed `{name}` (bind it to a name first)")
    return bound


def _pure(node) -> bool:
    """An argument that may be repeated where the parameter is read (no calls)."""
    found = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call):
            found.append(call)

    node.visit(Calls())
    return not found


def _specialise(stmts: Sequence[cst.BaseStatement], fn: ModelFn, mode: str, resolve):
    """The head's statements for one mode, and the EstimatorSpec fields it returns."""
    out: List[cst.BaseStatement] = []
    for stmt in stmts:
        if isinstance(stmt, cst.If):
            decided = _decide(stmt.test, fn, mode, resolve)
            if decided is None:
                if contains_return(stmt):
                    raise Unmappable("a return under a branch on something other than the mode")
                out.append(stmt)
                continue
            branch = stmt.body.body if decided else _else_body(stmt.orelse)
            inner, fields = _specialise(branch, fn, mode, resolve)
            out.extend(inner)
            if fields is not None:
                return out, fields
            continue
        if isinstance(stmt, cst.SimpleStatementLine) and any(isinstance(s, cst.Return) for s in stmt.body):
            value = next(s for s in stmt.body if isinstance(s, cst.Return)).value
            if not (isinstance(value, cst.Call) and resolve(value.func) == ESTIMATOR_SPEC):
                raise Unmappable("the model_fn returns something other than an EstimatorSpec")
            return out, _spec_fields(value)
        if contains_return(stmt):
            raise Unmappable("an EstimatorSpec returned inside a loop or with block")
        if fn.mode in names_read(stmt):
            raise Unmappable("the model_fn reads the mode outside a branch on it")
        out.append(stmt)
    if stmts is fn.head:
        raise Unmappable(f"the model_fn returns no EstimatorSpec for mode {mode!r}")
    return out, None


def _else_body(orelse) -> Sequence[cst.BaseStatement]:
    if orelse is None:
        return []
    if isinstance(orelse, cst.If):  # elif
        return [orelse]
    return orelse.body.body


def _decide(test, fn: ModelFn, mode: str, resolve) -> Optional[bool]:
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = _decide(test.expression, fn, mode, resolve)
        return None if inner is None else not inner
    if isinstance(test, cst.Name) and test.value == fn.flag:
        return mode == "train"
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1
            and isinstance(test.left, cst.Name) and test.left.value == fn.mode):
        return None
    operator = test.comparisons[0].operator
    comparator = test.comparisons[0].comparator
    if isinstance(operator, (cst.Equal, cst.NotEqual, cst.Is, cst.IsNot)):
        other = mode_of(comparator, resolve)
        if other is None:
            return None
        return (other == mode) == isinstance(operator, (cst.Equal, cst.Is))
    if isinstance(operator, (cst.In, cst.NotIn)) and isinstance(comparator, (cst.Tuple, cst.List, cst.Set)):
        values = [mode_of(e.value, resolve) for e in comparator.elements]
        if None in values:
            return None
        return (mode in values) == isinstance(operator, cst.In)
    return None


def _spec_fields(call: cst.Call) -> Dict[str, cst.BaseExpression]:
    fields: Dict[str, cst.BaseExpression] = {}
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword else (SPEC_FIELDS[index] if index < len(SPEC_FIELDS) else None)
        if key is None or arg.star:
            raise Unmappable("EstimatorSpec with arguments the rewrite cannot read")
        if key != "mode":
            fields[key] = arg.value
    return fields


def _network_flag(network, mode: str, resolve) -> Tuple[List[cst.BaseStatement], Optional[str]]:
    """Drop `is_training = mode == ModeKeys.TRAIN` (its name becomes the flag parameter) and turn
    other `mode == ModeKeys.TRAIN` tests of the network into that flag."""
    flag = None
    kept = []
    for stmt in network:
        if flag is None and isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 \
                and isinstance(stmt.body[0].targets[0].target, cst.Name) \
                and _training_test(stmt.body[0].value, mode, resolve) is True:
            flag = stmt.body[0].targets[0].target.value
            continue
        kept.append(stmt)
    if flag is not None and any(flag in bound_names(s) for s in kept):
        raise Unmappable(f"the training flag `{flag}` is assigned again")
    tests = []

    class Tests(cst.CSTTransformer):
        def leave_Comparison(self, original, updated):
            polarity = _training_test(original, mode, resolve)
            if polarity is None:
                return updated
            tests.append(polarity)
            name = cst.Name(flag or "is_training")
            return name if polarity else cst.UnaryOperation(cst.Not(), name)

    kept = [s.visit(Tests()) for s in kept]
    if tests and flag is None:
        flag = "is_training"
    elif flag is not None and not any(flag in names_read(s) for s in kept):
        flag = None  # the network computes the flag but never uses it
    return kept, flag


def _training_test(node, mode: str, resolve) -> Optional[bool]:
    """True for `mode == ModeKeys.TRAIN`, False for `mode != ModeKeys.TRAIN`, else None."""
    if not (isinstance(node, cst.Comparison) and len(node.comparisons) == 1
            and isinstance(node.left, cst.Name) and node.left.value == mode):
        return None
    operator = node.comparisons[0].operator
    if mode_of(node.comparisons[0].comparator, resolve) != "train":
        return None
    if isinstance(operator, (cst.Equal, cst.Is)):
        return True
    if isinstance(operator, (cst.NotEqual, cst.IsNot)):
        return False
    return None


def _reads(stmts) -> Set[str]:
    names: Set[str] = set()
    for stmt in stmts:
        names |= names_read(stmt)
    return names


def _is_docstring(stmt) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))
