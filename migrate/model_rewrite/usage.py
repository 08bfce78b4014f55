"""Who uses a model function outside the code the rewrite converts.

The model rewrite is all or nothing: a function that becomes a class must not keep a user that
stays TF1 code, or that user calls a name that no longer exists (NameError, ImportError). Calls
between top-level functions are followed by the analysis; this module finds the other users: a
method of a class (the DCGAN style: `def generator(self, z): ... conv_bn(h, ...)`), module-level
code, and -- for helpers imported from another module of the tree -- any function of the
importer that the rewrite leaves as it is.
"""

from __future__ import annotations

import ast
from typing import Dict, Iterable, Optional, Set


def users_outside(tree: ast.Module, names: Set[str], converted: Iterable[str] = (),
                  functions: bool = True) -> Dict[str, str]:
    """name -> its first user, for references to `names` (`f`, or dotted `ops.f`) outside the
    top-level functions in `converted`. Users are described as "`f`", "class `C`" or
    "module-level code"; with functions=False top-level functions are not looked at."""
    converted = set(converted)
    found: Dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not functions or stmt.name in converted:
                continue
            user = f"`{stmt.name}`"
        elif isinstance(stmt, ast.ClassDef):
            user = f"class `{stmt.name}`"
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        else:
            user = f"module-level code (line {stmt.lineno})"
        for node in ast.walk(stmt):
            name = _referenced(node)
            if name in names:
                found.setdefault(name, user)
    return found


def _referenced(node) -> Optional[str]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            return ".".join([node.id, *reversed(parts)])
    return None


def top_level_names(tree: ast.Module) -> Set[str]:
    """Names the module's own top-level statements bind (defs, classes, assignments, imports
    other than `*`, loop and with targets)."""
    names: Set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*")
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return names
