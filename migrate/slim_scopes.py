"""Static resolution of `slim.arg_scope` defaults for contrib/slim layer calls.

`slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm, ...)` changes
what every `slim.conv2d` call inside the `with` block does, without any sign at
the call site. Where the scope is lexical (the `with` encloses the call in the
same function) the effective arguments can be computed exactly as slim does:
outer scopes first, inner scopes override, the call's own keywords last.
Scopes entered through a variable or a function (`with arg_scope(sc):`) cannot
be resolved statically; `unresolved_scopes` reports them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from migrate.context import ModuleContext, literal_value

ARG_SCOPE = "tf_slim.arg_scope"

# Canonical slim/contrib layer functions that accept normalizer_fn.
SLIM_LAYERS = frozenset({
    "tf_slim.conv2d", "tf_slim.convolution2d", "tf_slim.convolution", "tf_slim.conv1d",
    "tf_slim.conv3d", "tf_slim.convolution1d", "tf_slim.convolution3d",
    "tf_slim.conv2d_transpose", "tf_slim.convolution2d_transpose", "tf_slim.conv3d_transpose",
    "tf_slim.separable_conv2d", "tf_slim.separable_convolution2d", "tf_slim.fully_connected",
    "tf_slim.conv2d_in_plane",
})


@dataclass
class EffectiveCall:
    call: ast.Call
    api: str  # canonical name of the layer function
    keywords: Dict[str, ast.AST] = field(default_factory=dict)  # merged, call wins
    scopes: List[ast.Call] = field(default_factory=list)  # arg_scope calls that contributed
    unresolved_scopes: List[ast.Call] = field(default_factory=list)


def _scope_ops(ctx: ModuleContext, scope_call: ast.Call) -> Optional[List[str]]:
    """Canonical names the arg_scope applies to, or None when not a literal list."""
    if not scope_call.args:
        return None
    ops = scope_call.args[0]
    if not isinstance(ops, (ast.List, ast.Tuple)):
        return None
    return [ctx.resolve(e) or "" for e in ops.elts]


def effective_call(ctx: ModuleContext, call: ast.Call, api: str) -> EffectiveCall:
    result = EffectiveCall(call, api)
    withs = list(ctx.enclosing(call, [ast.With]))
    for with_node in reversed(withs):  # outermost first
        for item in with_node.items:
            scope = item.context_expr
            if not (isinstance(scope, ast.Call) and ctx.resolve(scope.func) == ARG_SCOPE):
                continue
            ops = _scope_ops(ctx, scope)
            if ops is None:
                result.unresolved_scopes.append(scope)
                continue
            if api in ops:
                result.scopes.append(scope)
                for kw in scope.keywords:
                    if kw.arg is not None:
                        result.keywords[kw.arg] = kw.value
    for kw in call.keywords:
        if kw.arg is not None:
            result.keywords[kw.arg] = kw.value
    return result


def slim_layer_calls(ctx: ModuleContext):
    for call, qualified in ctx.calls_to(SLIM_LAYERS):
        yield effective_call(ctx, call, qualified)


def dict_literal_for(ctx: ModuleContext, node: ast.AST) -> Optional[Dict[str, ast.AST]]:
    """`{'k': v}` literal, or the literal a Name was last assigned in the same function."""
    value = literal_value(node)
    if isinstance(value, dict):
        return value
    if isinstance(node, ast.Name):
        scope = next(ctx.enclosing(node, [ast.FunctionDef, ast.AsyncFunctionDef]), ctx.tree)
        found = None
        for stmt in ast.walk(scope):
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == node.id
                    and stmt.lineno < node.lineno):
                candidate = literal_value(stmt.value)
                found = candidate if isinstance(candidate, dict) else None
        return found
    return None
