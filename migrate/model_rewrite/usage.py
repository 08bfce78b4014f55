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
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set


def users_outside(tree: ast.Module, names: Set[str], converted: Iterable[str] = (),
                  functions: bool = True) -> Dict[str, str]:
    """name -> its first user, for references to `names` (`f`, or dotted `ops.f`) outside the
    top-level functions and network classes in `converted`. Users are described as "`f`",
    "class `C`" or "module-level code"; with functions=False top-level functions are not looked
    at (a class in `converted` still is not a user: it becomes a Keras class too)."""
    converted = set(converted)
    found: Dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not functions or stmt.name in converted:
                continue
            user = f"`{stmt.name}`"
        elif isinstance(stmt, ast.ClassDef):
            if stmt.name in converted:
                continue  # a network class the model rewrite converts with its helpers
            user = f"class `{stmt.name}`"
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        elif function_attribute(stmt) in names:
            continue  # `vgg_a.default_image_size = 224`: set on the class instead (slim nets)
        else:
            user = f"module-level code (line {stmt.lineno})"
        for node in ast.walk(stmt):
            name = _referenced(node)
            if name in names:
                found.setdefault(name, user)
    return found


def function_attribute(stmt) -> Optional[str]:
    """`f` for a module-level `f.attr = <literal>` (slim's `vgg_a.default_image_size = 224`)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
            isinstance(stmt.targets[0], ast.Attribute) and isinstance(stmt.targets[0].value, ast.Name):
        try:
            ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        return stmt.targets[0].value.id
    return None


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


# -- module-level objects of batch-norm wrapper classes -----------------------------------------
@dataclass
class WrapperObject:
    """`g_bn0 = batch_norm(name='g_bn0')` at module level, of a wrapper class that converts to a
    Keras Layer (DCGAN-tensorflow): the one model function that calls it gets it as a sub-layer
    created in its __init__ with the same constructor call."""

    name: str
    class_name: str
    constructor: str  # source of the call, `batch_norm(name='g_bn0')`
    call_params: List[str]  # the wrapper's call() parameters after self: input first
    training_param: Optional[str]  # the one that becomes the batch norm's `training=`
    tf1_name: Optional[str]  # the batch norm's TF1 scope (relative to the caller's scope)
    statement_line: int  # line of the module-level assignment
    users: List[str] = field(default_factory=list)  # top-level functions that read it


def wrapper_objects(tree: ast.Module, wrapper_sources: Dict[str, str],
                    rejected: Optional[Dict[str, str]] = None,
                    text: Optional[str] = None) -> Dict[str, WrapperObject]:
    """Module-level objects of the wrapper classes in `wrapper_sources` (class -> the source of
    its Keras Layer) that only top-level functions use, made by a call with literal arguments
    (it runs in each model's __init__ then, not once at import). `rejected` receives the other
    objects of those classes with the reason."""
    rejected = {} if rejected is None else rejected
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)
               and n.name in wrapper_sources}
    found: Dict[str, WrapperObject] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in classes):
            continue
        call = stmt.value
        if not all(_is_literal(a) for a in call.args) or not all(
                k.arg is not None and _is_literal(k.value) for k in call.keywords):
            rejected[stmt.targets[0].id] = "is made from computed arguments"
            continue
        cls = classes[call.func.id]
        found[stmt.targets[0].id] = WrapperObject(
            stmt.targets[0].id, cls.name,
            (ast.get_source_segment(text, call) if text else None) or ast.unparse(call),
            _call_params(cls),
            _training_param(wrapper_sources[cls.name]),
            _object_tf1_name(cls, call, wrapper_sources[cls.name]), stmt.lineno)
    # Assigned once, and read only inside top-level functions.
    assigned: Dict[str, int] = {}
    for stmt in tree.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                assigned[node.id] = assigned.get(node.id, 0) + 1
    for name in [n for n in found if assigned.get(n, 0) != 1]:
        rejected[name] = "is assigned more than once"
        del found[name]
    outside = users_outside(tree, set(found), functions=False)
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and node.id in found and stmt.name not in found[node.id].users:
                    found[node.id].users.append(stmt.name)
    for name, user in outside.items():
        if user != f"module-level code (line {found[name].statement_line})":
            rejected[name] = f"{user} uses too"
            del found[name]
    return found


def _is_literal(node) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def _call_params(cls: ast.ClassDef) -> List[str]:
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__call__":
            return [a.arg for a in item.args.args[1:]]
    return []


def _training_param(layer_source: str) -> Optional[str]:
    """The call() parameter the converted wrapper passes as the batch norm's `training=`."""
    for node in ast.walk(ast.parse(layer_source)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "training" and isinstance(keyword.value, ast.Name):
                    return keyword.value.id
    return None


def _object_tf1_name(cls: ast.ClassDef, call: ast.Call, layer_source: str) -> Optional[str]:
    """The object's `name` where its batch norm's scope is it (`scope=self.name`, `self.name =
    name`): the constructor argument of __init__'s `name` parameter, or that one's default."""
    init = next((i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
    if init is None or "name=self.name" not in layer_source or \
            "super().__init__(name=name," not in layer_source:
        return None
    params = [a.arg for a in init.args.args[1:]]
    defaults = dict(zip(params[len(params) - len(init.args.defaults):], init.args.defaults))
    if "name" not in params:
        return None
    value = next((k.value for k in call.keywords if k.arg == "name"), None)
    index = params.index("name")
    if value is None and index < len(call.args):
        value = call.args[index]
    if value is None:
        value = defaults.get("name")
    literal = ast.literal_eval(value) if value is not None and _is_literal(value) else None
    return literal if isinstance(literal, str) else None
