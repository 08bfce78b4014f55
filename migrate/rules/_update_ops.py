"""Shared by the UPDATE_OPS rules: recognise expressions that denote the update-op collection."""

from __future__ import annotations

import ast
from typing import Set

from migrate.context import ModuleContext, literal_value

UPDATE_OPS_TOKENS = ("UPDATE_OPS", "update_ops", ".updates")
_COLLECTION_GETTERS = ("tensorflow.get_collection", "tensorflow.get_collection_ref",
                       "tensorflow.Graph.get_collection")
_UPDATE_OPS_KEY = "tensorflow.GraphKeys.UPDATE_OPS"


def is_update_ops_key(ctx: ModuleContext, node: ast.AST) -> bool:
    return ctx.resolve(node) == _UPDATE_OPS_KEY or literal_value(node) == "update_ops"


def is_collection_read(ctx: ModuleContext, node: ast.AST) -> bool:
    """`tf.get_collection(tf.GraphKeys.UPDATE_OPS, ...)` and spellings of it."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    getter = ctx.resolve(func) in _COLLECTION_GETTERS or (
        isinstance(func, ast.Attribute) and func.attr in ("get_collection", "get_collection_ref"))
    if not getter:
        return False
    key = node.args[0] if node.args else next(
        (kw.value for kw in node.keywords if kw.arg in ("key", "name")), None)
    return key is not None and is_update_ops_key(ctx, key)


def update_ops_names(ctx: ModuleContext) -> Set[str]:
    """Names assigned an update-op collection anywhere in the module."""
    cached = getattr(ctx, "_update_ops_names", None)
    if cached is not None:
        return cached
    names: Set[str] = set()
    for node in ctx.nodes:
        if isinstance(node, ast.Assign) and denotes_update_ops(ctx, node.value, names):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
    ctx._update_ops_names = names
    return names


def denotes_update_ops(ctx: ModuleContext, node: ast.AST, names: Set[str] = None) -> bool:
    """True when `node` is (or contains, as list element / operand) the update ops."""
    if names is None:
        names = update_ops_names(ctx)
    if is_collection_read(ctx, node):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute) and node.attr == "updates":
        return True  # Keras layer/model `.updates` in a TF1 graph
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return any(denotes_update_ops(ctx, e, names) for e in node.elts)
    if isinstance(node, ast.Starred):
        return denotes_update_ops(ctx, node.value, names)
    if isinstance(node, ast.BinOp):
        return denotes_update_ops(ctx, node.left, names) or denotes_update_ops(ctx, node.right, names)
    return False


def body_calls_method(body, method_names) -> bool:
    for stmt in body:
        for node in ast.walk(stmt):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in method_names):
                return True
    return False
