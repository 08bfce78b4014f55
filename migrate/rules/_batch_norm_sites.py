"""Shared by the batch-norm rules: find every TF1 batch-norm site and map it to Keras 3."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Dict, Iterator, Optional

from migrate import bn_mapping, static_rank
from migrate.bn_mapping import KerasBatchNorm
from migrate.context import ModuleContext, call_arguments, literal_value

BN_TOKENS = ("batch_norm", "BatchNormalization")


@dataclass
class BatchNormSite:
    call: ast.Call
    api: str  # one of bn_mapping's API names
    mapping: KerasBatchNorm


def _to_source(value) -> str:
    return ast.unparse(value) if isinstance(value, ast.AST) else repr(value)


def batch_norm_sites(ctx: ModuleContext) -> Iterator[BatchNormSite]:
    """Calls that construct (or build and apply) a TF1 batch-norm layer."""
    names = [n for n, api in bn_mapping.API_BY_CANONICAL.items() if api is not None]
    ranks: Dict[int, Dict[int, Optional[int]]] = {}  # id(function or module) -> input ranks
    params: list = []  # the module's parameter ranks, computed once when a site needs them
    for call, qualified in ctx.calls_to(names):
        api = bn_mapping.API_BY_CANONICAL[qualified]
        if api == bn_mapping.KERAS_V2 and (not ctx.is_tf1_graph_code or in_keras_class(ctx, call)):
            continue  # Keras code in a TF2 program or a Keras class is already migrated
        args, keywords = call_arguments(call)
        mapping = bn_mapping.map_batch_norm(api, args, keywords, literal_value)
        if mapping.may_be_fused:
            scope = next(ctx.enclosing(call, [ast.FunctionDef, ast.AsyncFunctionDef]), ctx.tree)
            if not params:
                params.extend(static_rank.module_context(ctx.tree, ctx.resolver.resolve_dotted))
            if id(scope) not in ranks:
                ranks[id(scope)] = static_rank.function_ranks(
                    scope, params[1], params[0].get(getattr(scope, "name", None)), names)
            bn_mapping.apply_input_rank(mapping, ranks[id(scope)].get(id(call)))
        yield BatchNormSite(call, api, mapping)


def describe_mapping(site: BatchNormSite) -> str:
    """One sentence: the Keras 3 layer this site becomes, and how TF1 ran it."""
    mapping = site.mapping
    ctor = bn_mapping.render_constructor(mapping, _to_source)
    parts = [f"becomes `{ctor}` created once and called with "
             f"`training={_render(mapping.training)}`"]
    if mapping.activation is not None:
        parts.append(f"followed by `{_render(mapping.activation)}`")
    text = ", ".join(parts)
    if mapping.fused == "always":
        text += ("; TF1 ran it fused: Keras 3 skips Bessel's n/(n-1) correction of the moving "
                 "variance (bounded divergence, about 1/(n-1) relative)")
    elif mapping.unfused_by_rank:
        text += (f"; its input is {mapping.input_rank}-D, which TF1 never ran fused: the moving "
                 "variance matches exactly")
    elif mapping.fused == "rank":
        text += ("; fused in TF1 for 4-D input: Keras 3 skips Bessel's n/(n-1) correction of "
                 "the moving variance there (bounded divergence)")
    return text


def _render(value: Optional[object]) -> str:
    if value is None:
        return "None"
    if isinstance(value, bn_mapping.Code):
        return value.text
    return _to_source(value)


def in_keras_class(ctx: ModuleContext, node: ast.AST) -> bool:
    """Inside a class deriving from a Keras Layer/Model (TF2-style code, even in a TF1 module)."""
    for cls in ctx.enclosing(node, [ast.ClassDef]):
        for base in cls.bases:
            name = ctx.resolve(base) or ""
            if name.startswith("keras.") or name.split(".")[-1] in ("Layer", "Model"):
                return True
    return False
