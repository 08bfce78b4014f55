"""Small libcst helpers the rewrites share: which names a target binds, which names a node reads."""

from __future__ import annotations

from typing import Dict, List, Set, Type, TypeVar

import libcst as cst


def target_names(target) -> List[str]:
    """Names bound by an assignment or loop target (`a`, `a, b`, `[a, (b, c)]`)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        names: List[str] = []
        for element in target.elements:
            names.extend(target_names(element.value))
        return names
    return []


def assigned_names(stmt, augmented: bool = False) -> List[str]:
    """Names a simple statement line assigns (with `augmented`, `+=` and annotated ones too)."""
    names: List[str] = []
    if isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    names.extend(target_names(target.target))
            elif augmented and isinstance(small, (cst.AugAssign, cst.AnnAssign)):
                names.extend(target_names(small.target))
    return names


def bound_names(node) -> Set[str]:
    """Every name an assignment or a for-loop inside `node` binds."""
    return set(bound_names_in_order(node))


def bound_names_in_order(node) -> List[str]:
    """The names assignments and for-loops inside `node` bind, in source order (repeats kept)."""
    names: List[str] = []

    class Binds(cst.CSTVisitor):
        def visit_AssignTarget(self, target):
            names.extend(target_names(target.target))

        def visit_For(self, loop):
            names.extend(target_names(loop.target))

    node.visit(Binds())
    return names


class _Reads(cst.CSTVisitor):
    """Calls `on_read(name)` for each variable name read (a `cst.Name`): not attribute names,
    not keyword-argument names."""

    def __init__(self, on_read):
        super().__init__()
        self.on_read = on_read

    def visit_Name(self, name):
        self.on_read(name)

    def visit_Attribute(self, attribute):
        attribute.value.visit(self)
        return False

    def visit_Arg(self, arg):
        arg.value.visit(self)
        return False


def names_read(node) -> Set[str]:
    """Variable names a node reads: not attribute names, not keyword-argument names."""
    names: Set[str] = set()
    node.visit(_Reads(lambda name: names.add(name.value)))
    return names


def name_reads(node) -> List[cst.Name]:
    """The `cst.Name` nodes of the variable names `node` reads (as `names_read` sees reads)."""
    found: List[cst.Name] = []
    node.visit(_Reads(found.append))
    return found


def contains_return(stmt) -> bool:
    """Whether `stmt` holds a `return` of its own function (not of a nested def or lambda)."""
    found = []

    class Returns(cst.CSTVisitor):
        def visit_FunctionDef(self, node):
            return False

        def visit_Lambda(self, node):
            return False

        def visit_Return(self, node):
            found.append(node)

    stmt.visit(Returns())
    return bool(found)


def name_uses(node, names: Set[str]) -> int:
    """How many times `node` reads one of `names` (as `names_read` sees reads)."""
    found: List[str] = []
    node.visit(_Reads(lambda name: found.append(name) if name.value in names else None))
    return len(found)


def without_statements(module: cst.Module, drop) -> cst.Module:
    """`module` without the top-level statements `drop(stmt)` is true for; the comment lines
    above a dropped statement move to the next statement kept, so no comment is lost."""
    body = []
    carried: List[cst.EmptyLine] = []
    for stmt in module.body:
        if drop(stmt):
            carried.extend(line for line in stmt.leading_lines if line.comment is not None)
            continue
        if carried:
            stmt = stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines])
            carried = []
        body.append(stmt)
    return module.with_changes(body=body)


def keyword_arg(name: str, value: cst.BaseExpression) -> cst.Arg:
    """`name=value`, spaced as PEP 8 wants for keyword arguments (no spaces around `=`)."""
    return cst.Arg(value=value, keyword=cst.Name(name),
                   equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))


_Node = TypeVar("_Node", bound=cst.CSTNode)


def nodes_of(node, kind: Type[_Node]) -> List[_Node]:
    """Every node of type `kind` inside `node` (itself included), in source order."""
    found: List[_Node] = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, current) -> bool:
            if isinstance(current, kind):
                found.append(current)
            return True

    node.visit(Collect())
    return found


class SubstituteNames(cst.CSTTransformer):
    """Variable names -> expressions (never attribute names or keyword names)."""

    def __init__(self, mapping: Dict[str, cst.BaseExpression]):
        super().__init__()
        self.mapping = mapping

    def leave_Name(self, original, updated):
        return self.mapping.get(original.value, updated)

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword) if original.keyword else updated
