"""slim arg_scope defaults a model function inherits from where it is called.

`slim.arg_scope` is dynamic: `with slim.arg_scope(vgg_arg_scope()): logits = vgg_a(images)`
changes every `slim.conv2d` that `vgg_a` (and the helpers it calls) builds, without a sign in
`vgg_a` itself. The converted Keras class creates its layers once, so it can take such defaults
only when they are static and the same at every call site:

* an *arg-scope function* (the slim `*_arg_scope()` convention) is a module-level function whose
  body is a nest of literal `with slim.arg_scope([ops], **defaults)` blocks returning the
  innermost scope (`as arg_sc: return arg_sc`), optionally after dict literals it passes as
  `normalizer_params`; called with literal arguments (or its defaults) it stands for those
  scopes with its parameters replaced by the arguments;
* a literal `with slim.arg_scope([ops], ...)` whose defaults read no local of the caller.

A model function called under scopes that differ between call sites, that cannot be resolved,
or that read the caller's locals keeps its `arg_scope_conflict` (the converter reports it),
as long as the scopes concern the layers it builds; scopes over other ops are irrelevant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from migrate import bn_mapping
from migrate.cst_utils import (SubstituteNames, bound_names, name_uses, names_read,
                               without_statements)
from migrate.model_rewrite.analysis import dotted

ARG_SCOPE = "tf_slim.arg_scope"
TRAINING = "training"  # the Keras call argument a scope's is_training flag becomes
# (canonical ops, keyword defaults) of one `with slim.arg_scope(...)`, outermost first.
Scope = Tuple[Tuple[str, ...], Dict[str, cst.BaseExpression]]
_RENDER = cst.Module(body=[])


@dataclass
class ArgScopeFunction:
    name: str
    params: List[str]
    defaults: Dict[str, cst.BaseExpression]
    scopes: List[Tuple[cst.BaseExpression, Dict[str, cst.BaseExpression]]]  # (ops list, keywords)
    dicts: Dict[str, cst.Dict] = field(default_factory=dict)  # `batch_norm_params = {...}`
    # A parameter read only as an `is_training` value (`resnet_arg_scope(is_training=True)`):
    # the model's run-time training flag, set per call site (`model(x, training=...)`).
    training_param: Optional[str] = None


class Unresolved(Exception):
    """The scope's defaults are not static; the message says why."""


def arg_scope_functions(module: cst.Module, resolve) -> Dict[str, ArgScopeFunction]:
    found: Dict[str, ArgScopeFunction] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and not stmt.decorators:
            parsed = _parse(stmt, resolve)
            if parsed is not None:
                found[stmt.name.value] = parsed
    return found


def _parse(func: cst.FunctionDef, resolve) -> Optional[ArgScopeFunction]:
    params = func.params
    if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None or params.kwonly_params or params.posonly_params:
        return None
    body = list(func.body.body) if isinstance(func.body, cst.IndentedBlock) else []
    if body and isinstance(body[0], cst.SimpleStatementLine) and len(body[0].body) == 1 and \
            isinstance(body[0].body[0], cst.Expr) and isinstance(body[0].body[0].value, cst.SimpleString):
        body = body[1:]  # docstring
    dicts: Dict[str, cst.Dict] = {}
    while body and isinstance(body[0], cst.SimpleStatementLine) and len(body[0].body) == 1 and \
            isinstance(body[0].body[0], cst.Assign) and len(body[0].body[0].targets) == 1 and \
            isinstance(body[0].body[0].targets[0].target, cst.Name) and \
            isinstance(body[0].body[0].value, cst.Dict):
        dicts[body[0].body[0].targets[0].target.value] = body[0].body[0].value
        body = body[1:]
    scopes = []
    while len(body) == 1 and isinstance(body[0], cst.With) and len(body[0].items) == 1:
        item = body[0].items[0]
        call = item.item
        if not (isinstance(call, cst.Call) and resolve(call.func) == ARG_SCOPE):
            return None
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) != 1 or positional[0].star or any(a.star for a in call.args) \
                or not isinstance(positional[0].value, (cst.List, cst.Tuple)):
            return None
        scopes.append((positional[0].value,
                       {a.keyword.value: a.value for a in call.args if a.keyword is not None}))
        inner = list(body[0].body.body)
        if len(inner) == 1 and isinstance(inner[0], cst.SimpleStatementLine) and \
                len(inner[0].body) == 1 and isinstance(inner[0].body[0], cst.Return):
            returned = inner[0].body[0].value
            if item.asname is not None and isinstance(returned, cst.Name) and \
                    isinstance(item.asname.name, cst.Name) and returned.value == item.asname.name.value:
                names = [p.name.value for p in params.params]
                defaults = {p.name.value: p.default for p in params.params if p.default is not None}
                return ArgScopeFunction(func.name.value, names, defaults, scopes, dicts,
                                        _training_param(func, names))
            return None
        body = inner
    return None


def _training_param(func: cst.FunctionDef, params: List[str]) -> Optional[str]:
    """The one parameter read only as `'is_training': p` in a dict or `is_training=p`."""
    flags: Dict[str, int] = {}

    class Flags(cst.CSTVisitor):
        def visit_DictElement(self, element):
            if isinstance(element.key, cst.SimpleString) and \
                    element.key.evaluated_value in ("is_training", "training") and \
                    isinstance(element.value, cst.Name):
                flags[element.value.value] = flags.get(element.value.value, 0) + 1

        def visit_Arg(self, arg):
            if arg.keyword is not None and arg.keyword.value == "is_training" and \
                    isinstance(arg.value, cst.Name):
                flags[arg.value.value] = flags.get(arg.value.value, 0) + 1

    func.body.visit(Flags())
    found = [p for p in params if flags.get(p) and flags[p] == name_uses(func.body, {p})]
    return found[0] if len(found) == 1 else None


def _static(expr) -> bool:
    from migrate.model_rewrite.layers import literal

    return literal(expr) is not bn_mapping.NOT_LITERAL


def resolve_call(asf: ArgScopeFunction, call: cst.Call, resolve) -> List[Scope]:
    """The scopes `asf(...)` enters, its parameters replaced by the call's literal arguments."""
    if any(a.star for a in call.args):
        raise Unresolved(f"`{asf.name}(*args)`")
    bound: Dict[str, cst.BaseExpression] = dict(asf.defaults)
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword is not None else (
            asf.params[index] if index < len(asf.params) else None)
        if key not in asf.params:
            raise Unresolved(f"`{_RENDER.code_for_node(call)}` passes an unknown argument")
        bound[key] = arg.value
    for param in asf.params:
        if param not in bound:
            raise Unresolved(f"`{_RENDER.code_for_node(call)}` leaves `{param}` unset")
        if not _static(bound[param]) and param != asf.training_param:
            raise Unresolved(f"`{_RENDER.code_for_node(call)}` passes `{param}` a computed value")
    if asf.training_param is not None:
        # The flag becomes the class's `training` argument; each caller passes its value.
        bound[asf.training_param] = cst.Name(TRAINING)
    values = dict(bound)
    for name, value in asf.dicts.items():
        values[name] = value.visit(SubstituteNames(bound))
    local = set(asf.params) | set(asf.dicts)
    out: List[Scope] = []
    for ops_node, keywords in asf.scopes:
        resolved = {k: v.visit(SubstituteNames(values)) for k, v in keywords.items()}
        out.append((_ops(ops_node, resolve), resolved))
        leaked = set().union(*(names_read(v) for v in resolved.values())) & local if resolved else set()
        if leaked:
            raise Unresolved(f"`{asf.name}` reads `{sorted(leaked)[0]}` where it is not static")
    return out


def _ops(ops_node, resolve) -> Tuple[str, ...]:
    return tuple(resolve(e.value) or "" for e in ops_node.elements)


def scopes_of(item: cst.BaseExpression, resolve, asfs: Dict[str, ArgScopeFunction],
              function_locals: Set[str], training_name: Optional[str] = None) -> list:
    """The scopes a `with` item enters, each (ops or None when unknown, keyword defaults, why
    it cannot be moved into a class or None, the training flag it sets or None); [] when the
    item is no arg_scope. `training_name` is the enclosing model function's training flag:
    `slim.arg_scope([slim.batch_norm], is_training=is_training)` passes it on."""
    if not (isinstance(item, cst.Call) and resolve(item.func) == ARG_SCOPE):
        return []
    positional = [a for a in item.args if a.keyword is None]
    first = positional[0].value if len(positional) == 1 and not any(a.star for a in item.args) else None
    if isinstance(first, (cst.List, cst.Tuple)):
        keywords = {a.keyword.value: a.value for a in item.args if a.keyword is not None}
        training = None
        flagged = {k for k, v in keywords.items() if training_name is not None
                   and k in ("is_training", "training") and isinstance(v, cst.Name)
                   and v.value == training_name}
        if flagged:
            training = cst.Name(training_name)
            keywords = {k: cst.Name(TRAINING) if k in flagged else v for k, v in keywords.items()}
        read = set().union(*(names_read(v) for v in keywords.values())) if keywords else set()
        problem = None
        if read & function_locals:
            problem = (f"its defaults read `{sorted(read & function_locals)[0]}`, a local of the "
                       "calling function")
        return [(_ops(first, resolve), keywords, problem, training)]
    if isinstance(first, cst.Call) and isinstance(first.func, cst.Name) and first.func.value in asfs \
            and len(item.args) == 1:
        asf = asfs[first.func.value]
        try:
            scopes = resolve_call(asf, first, resolve)
        except Unresolved as exc:
            return [(None, {}, str(exc), None)]
        training = _bound(asf, first, asf.training_param) if asf.training_param else None
        return [(ops, keywords, None, training if _reads_training(keywords) else None)
                for ops, keywords in scopes]
    return [(None, {}, f"`with {_RENDER.code_for_node(item)}` enters defaults the rewrite cannot "
                       "read statically", None)]


def _bound(asf: ArgScopeFunction, call: cst.Call, param: str) -> Optional[cst.BaseExpression]:
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword is not None else asf.params[index]
        if key == param:
            return arg.value
    return asf.defaults.get(param)


def _reads_training(keywords) -> bool:
    return any(TRAINING in names_read(v) for v in keywords.values())


def render_scopes(scopes: List[Scope]) -> str:
    return repr([(ops, sorted((k, _RENDER.code_for_node(v)) for k, v in kw.items()))
                 for ops, kw in scopes])


def inherit(module: cst.Module, functions, resolve) -> None:
    """Set `inherited_scopes` / `arg_scope_conflict` on the model functions of `functions`, and
    `scope_training` (call -> the is_training value its arg_scope function was given)."""
    asfs = arg_scope_functions(module, resolve)
    sites: Dict[str, List[Tuple[str, cst.Call, list]]] = {}  # callee -> [(caller, call, scopes)]
    for name, info in functions.items():
        if info.external or info.node is None or name in asfs:
            continue
        function_locals = set(info.params) | bound_names(info.node)
        training_name = info.training_param if info.is_model else None
        _walk_sites(info.node.body, name, [], functions, resolve, asfs,
                    function_locals - {training_name}, sites, training_name)
    used = {name: _apis_used(name, functions, resolve) for name, info in functions.items()
            if info.is_model and not info.external}
    memo: Dict[str, object] = {}

    def context(name: str, stack=()) -> object:
        """Scopes `name` runs under (a list), or the reason they are unknown (a str)."""
        if name in memo:
            return memo[name]
        if name in stack:
            return "it is called recursively"
        seen: Dict[str, List[Scope]] = {}
        slim = any(api.startswith("tf_slim.") for api in used[name])
        for caller, call, scopes in sites.get(name, []):
            outer: object = []
            nested = functions[caller].is_model and not functions[caller].external and caller in used
            if nested:
                outer = context(caller, stack + (name,))
                if isinstance(outer, str):
                    memo[name] = outer
                    return outer
            candidates = [(ops, kw, None, None) for ops, kw in outer] + list(scopes)
            # A scope concerns the model when it configures an op the model (or another relevant
            # scope: `normalizer_fn=slim.batch_norm`) uses.
            apis = set(used[name])
            chosen: Set[int] = set()
            while True:
                more = {i for i, (ops, kw, _, _) in enumerate(candidates) if i not in chosen and (
                    (ops is None and slim) or (ops is not None and set(ops) & apis))}
                if not more:
                    break
                chosen |= more
                for i in more:
                    apis |= {resolve(n) for v in candidates[i][1].values() for n in _references(v)}
            relevant: List[Scope] = []
            flags = []
            for index, (ops, keywords, problem, training) in enumerate(candidates):
                if index not in chosen:
                    continue
                if problem is not None:
                    memo[name] = f"it is called inside an arg_scope: {problem}"
                    return memo[name]
                relevant.append((ops, keywords))
                if training is not None:
                    flags.append(training)
            if any(_reads_training(kw) for _, kw in relevant):
                rendered = {_RENDER.code_for_node(f) for f in flags}
                # Inside a model, only its own training flag (set here) can be passed on.
                inherited = nested and any(_reads_training(kw) for _, kw in outer)
                if inherited or len(rendered) != 1 or functions[name].training_param \
                        or functions[name].mode_param or TRAINING in functions[name].params:
                    memo[name] = ("its batch norms' is_training comes from an arg_scope function "
                                  "argument the rewrite cannot turn into its training flag here")
                    return memo[name]
                training_sites[name][id(call)] = flags[0]
            seen[render_scopes(relevant)] = relevant
        if len(seen) > 1:
            memo[name] = "its call sites run it under different slim.arg_scope defaults"
        else:
            memo[name] = next(iter(seen.values()), [])
        return memo[name]

    training_sites: Dict[str, Dict[int, cst.BaseExpression]] = {name: {} for name in used}
    for name in used:
        result = context(name)
        if isinstance(result, str):
            functions[name].arg_scope_conflict = result
        else:
            functions[name].inherited_scopes = result
            functions[name].scope_training = dict(training_sites[name])


def _walk_sites(node, caller, stack, functions, resolve, asfs, function_locals, sites,
                training_name=None) -> None:
    """Record each call of a module model function with the arg_scopes around it."""
    args = (functions, resolve, asfs, function_locals, sites, training_name)
    if isinstance(node, cst.With):
        entered = list(stack)
        for item in node.items:
            _walk_sites(item, caller, stack, *args)
            entered += scopes_of(item.item, resolve, asfs, function_locals, training_name)
        _walk_sites(node.body, caller, entered, *args)
        return
    if isinstance(node, cst.Call):
        key = dotted(node.func)
        if key in functions and functions[key].is_model and key != caller:
            sites.setdefault(key, []).append((caller, node, list(stack)))
    for child in node.children:
        _walk_sites(child, caller, stack, *args)


def _references(node) -> List[cst.BaseExpression]:
    """The names and dotted names (`slim.batch_norm`) an expression mentions."""
    found: List[cst.BaseExpression] = []

    class V(cst.CSTVisitor):
        def visit_Attribute(self, attribute):
            found.append(attribute)

        def visit_Name(self, name):
            found.append(name)

    node.visit(V())
    return found




def _apis_used(name: str, functions, resolve, seen=None) -> Set[str]:
    """Canonical names a model function and the module helpers it calls refer to."""
    seen = set() if seen is None else seen
    if name in seen or functions[name].node is None:
        return set()
    seen.add(name)
    found: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Attribute(self, node):
            api = resolve(node)
            if api:
                found.add(api)

        def visit_Name(self, node):
            api = resolve(node)
            if api:
                found.add(api)

    functions[name].node.visit(V())
    for helper in functions[name].calls_helpers:
        if helper in functions:
            found |= _apis_used(helper, functions, resolve, seen)
    return found


def drop_dead_arg_scope_functions(module: cst.Module, ctx, resolve, options=None) -> cst.Module:
    """Remove `*_arg_scope()` functions the rewrite left unused: the module used them (in `with
    slim.arg_scope(f()):` blocks the model classes absorbed) and no longer does, and no other
    module of the run mentions them. They are slim code, which TF2 cannot even import."""
    import ast
    import os
    import re

    candidates = set(arg_scope_functions(module, resolve))
    if not candidates:
        return module
    used_before: Dict[str, int] = {}
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in candidates:
            used_before[node.id] = used_before.get(node.id, 0) + 1
    dead = {name for name in candidates if used_before.get(name) and not any(
        name in names_read(stmt) for stmt in module.body
        if not (isinstance(stmt, cst.FunctionDef) and stmt.name.value == name))}
    if not dead:
        return module
    index = getattr(options, "tree_index", None)
    here = os.path.realpath(str(getattr(ctx, "path", "")))
    stem = os.path.splitext(os.path.basename(here))[0]
    for path in (getattr(index, "modules", None) or {}):
        if path == here:
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return module
        # Another module that may import this one and mentions the function keeps it.
        if re.search(rf"\b{re.escape(stem)}\b", text):
            dead = {name for name in dead if not re.search(rf"\b{re.escape(name)}\b", text)}
    return without_statements(
        module, lambda stmt: isinstance(stmt, cst.FunctionDef) and stmt.name.value in dead)
