"""Session programs written at module level, found on `ast` (no libcst: verify uses this too).

Many TF1 scripts (tutorials, research code) define their model functions and then build the
graph and run the `tf.Session` loop at module level, or in the body of an
`if __name__ == "__main__":` block. The training-loop rewrite converts Session programs that
are functions; such a module's program is converted as if it were one
(`training_rewrite/module_program.py` wraps it in a pseudo-function, runs the rules, and puts
the converted statements back). This module decides which statements are "the program":

* the body of an `if __name__ == "__main__":` block that opens a Session, when nothing before
  it at module level builds graph;
* otherwise everything from the first module-level statement that builds graph (calls a
  TensorFlow API other than flags, logging and data helpers, or a class or function of the
  module) to the end of the module, when a statement of it opens a Session.

Functions and classes defined between the program's statements (placeholders first, then
`def conv_net`) are `hoisted`: they move before it. A function body and module level differ,
so some programs are refused with a precise reason (`ModuleProgram.refusal`): names the
program binds that a function or class of the module reads (they would become local names of
the pseudo-function) or that a definition between its statements evaluates (a decorator, a
default value), names it binds that earlier module-level statements bind too, and `global`
statements.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Set

SESSION_APIS = ("tensorflow.Session", "tensorflow.InteractiveSession")
# TensorFlow calls that set up a script without building graph: they may stay before the
# program at module level (and a function of the module may read what they bind).
_NOT_GRAPH_PREFIXES = ("tensorflow.app.flags", "tensorflow.flags", "tensorflow.logging",
                       "tensorflow.examples", "tensorflow.gfile", "tensorflow.io.gfile",
                       "tensorflow.keras.datasets", "tensorflow.contrib.learn.datasets",
                       "tensorflow.compat.v1.logging", "tensorflow.compat.v1.flags",
                       "tensorflow.app.run", "tensorflow.compat.v1.app")
PSEUDO_FUNCTION = "_tfm_module_program"


@dataclass
class ModuleProgram:
    """The module-level program of a module: `tree.body[start:end]`, or the body of the
    `if __name__ == "__main__":` statement `tree.body[start]` when `if_main`."""

    start: int
    end: int
    if_main: bool
    first_line: int  # line of the first statement of the region (the `if` for if_main)
    refusal: Optional[str] = None
    bound: Set[str] = field(default_factory=set)  # names the program binds
    hoisted: List[int] = field(default_factory=list)  # definitions between its statements

    def statements(self, tree: ast.Module) -> List[ast.stmt]:
        if self.if_main:
            return list(tree.body[self.start].body)
        return [s for i, s in enumerate(tree.body[self.start:self.end], self.start)
                if i not in self.hoisted]


def find_module_program(tree: ast.Module, resolve: Callable[[ast.AST], Optional[str]]
                        ) -> Optional[ModuleProgram]:
    """The module-level Session program of `tree`, or None (`resolve`: node -> dotted API)."""
    body = tree.body
    definitions = {s.name for s in body if isinstance(s, _DEFINITIONS)}
    session_at = next((i for i, s in enumerate(body) if not isinstance(s, _DEFINITIONS)
                       and not _is_if_main(s) and _opens_session(s, resolve)), None)
    if_main_at = next((i for i, s in enumerate(body) if _is_if_main(s)
                       and _opens_session(s, resolve)), None)
    if session_at is None and if_main_at is None:
        return None
    graph_at = next((i for i, s in enumerate(body) if not isinstance(s, _DEFINITIONS)
                     and not _is_if_main(s) and _builds_graph(s, resolve, definitions)), None)
    if session_at is None:
        program = ModuleProgram(if_main_at, if_main_at + 1, True, body[if_main_at].lineno)
        if graph_at is not None and graph_at < if_main_at:
            program.refusal = (f"its graph is built at module level (line {body[graph_at].lineno}) "
                               "and trained under `if __name__ == \"__main__\":`")
            return program
        if body[if_main_at].orelse:
            program.refusal = "its `if __name__ == \"__main__\":` block has an `else:`"
            return program
        later = [s for s in body[if_main_at + 1:] if not isinstance(s, (ast.Import, ast.ImportFrom))]
        if later:
            program.refusal = (f"module-level code follows its `if __name__ == \"__main__\":` "
                               f"block (line {later[0].lineno})")
            return program
    else:
        start = graph_at if graph_at is not None and graph_at <= session_at else session_at
        program = ModuleProgram(start, len(body), False, _first_line(body[start]))
        # Definitions between its statements (the tutorial style: placeholders, then `def
        # conv_net`, then the loss) move before it: defining a function or class binds its name
        # and runs nothing else when what it evaluates then reads none of the program's names.
        program.hoisted = [i for i in range(start, len(body)) if isinstance(body[i], _DEFINITIONS)]
    statements = program.statements(tree)
    program.bound = _bound_names(statements)
    for index in program.hoisted:
        definition = body[index]
        evaluated = [*definition.decorator_list, *getattr(definition, "bases", []),
                     *(k.value for k in getattr(definition, "keywords", []))]
        if not isinstance(definition, ast.ClassDef):
            evaluated += [*definition.args.defaults, *(d for d in definition.args.kw_defaults if d)]
        read = sorted({n.id for e in evaluated for n in ast.walk(e) if isinstance(n, ast.Name)}
                      & program.bound)
        if read:
            program.refusal = (f"`{definition.name}` (line {definition.lineno}), defined between "
                               f"its statements, reads `{read[0]}` when it is defined")
            return program
    for node in _walk_all(statements):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            program.refusal = f"it has a `global` statement (line {node.lineno})"
            return program
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            program.refusal = (f"it defines `{node.name}` (line {node.lineno}) inside the "
                               "program")
            return program
    before = {body[i].name for i in program.hoisted}
    for stmt in body[:program.start]:
        before |= _bound_names([stmt]) if not isinstance(stmt, _DEFINITIONS) else {stmt.name}
    clash = sorted(program.bound & before)
    if clash:
        program.refusal = (f"it binds `{clash[0]}` again, which module-level code before it "
                           "binds too")
        return program
    # Hand-made weights (`G_W1 = tf.Variable(...)`, read by `def generator(z)` as a global) stay
    # module-level statements of the converted program (training_rewrite/variable_models.py).
    hand_made = _hand_made_variables(statements, resolve)
    for stmt in body:
        if isinstance(stmt, _DEFINITIONS):
            read = sorted((_global_reads(stmt) & program.bound) - hand_made)
            if read:
                program.refusal = (f"`{read[0]}`, bound by the module-level program, is read by "
                                   f"`{stmt.name}` (line {stmt.lineno}) as a global: it would "
                                   "become a local name of the converted program")
                return program
    return program


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _hand_made_variables(statements, resolve) -> Set[str]:
    """Names the program binds once, at its top level, to `tf.Variable(...)`, a dict or list
    literal of them, or a list literal of such names (a var_list such as `theta_D`)."""
    def is_variable(node) -> bool:
        return isinstance(node, ast.Call) and resolve(node.func) == "tensorflow.Variable"

    stores: dict = {}
    for node in _walk_all(statements):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            stores[node.id] = stores.get(node.id, 0) + 1
    found: Set[str] = set()
    for stmt in statements:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stores[stmt.targets[0].id] == 1):
            continue
        value = stmt.value
        values = (list(value.values) if isinstance(value, ast.Dict) else
                  list(value.elts) if isinstance(value, (ast.List, ast.Tuple)) else [value])
        if values and (all(is_variable(v) for v in values) or (
                isinstance(value, ast.List) and all(isinstance(v, ast.Name) and v.id in found
                                                    for v in values))):
            found.add(stmt.targets[0].id)
    return found


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return min([stmt.lineno, *(d.lineno for d in decorators or [])])


def _is_if_main(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    sides = [test.left, *test.comparators]
    return (len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _walk_all(statements):
    for stmt in statements:
        yield from ast.walk(stmt)


def _opens_session(stmt: ast.stmt, resolve) -> bool:
    return any(isinstance(n, ast.Call) and resolve(n.func) in SESSION_APIS for n in ast.walk(stmt))


def _builds_graph(stmt: ast.stmt, resolve, definitions: Set[str]) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return False
    for node in ast.walk(stmt):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in definitions:
            return True
        api = resolve(node.func) or ""
        if api.startswith("tensorflow") and not api.startswith(_NOT_GRAPH_PREFIXES):
            return True
    return False


def _bound_names(statements) -> Set[str]:
    names: Set[str] = set()
    for node in _walk_all(statements):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    # Comprehension variables are their own scope in Python 3.
    for node in _walk_all(statements):
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            for generator in node.generators:
                for target in ast.walk(generator.target):
                    if isinstance(target, ast.Name) and not _bound_elsewhere(target.id, statements, node):
                        names.discard(target.id)
    return names


def _bound_elsewhere(name: str, statements, comprehension) -> bool:
    inside = {id(n) for n in ast.walk(comprehension)}
    return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
               and id(n) not in inside for n in _walk_all(statements))


def _global_reads(definition: ast.stmt) -> Set[str]:
    """Names a function or class reads from the module's globals (loads of names it does not
    bind itself, at any depth; `global x` names count as read)."""
    local: Set[str] = set()
    reads: Set[str] = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else local).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            local.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node is not definition:
            local.add(node.name)
        elif isinstance(node, ast.Global):
            reads.update(node.names)
    for node in ast.walk(definition):
        if isinstance(node, ast.Global):
            local.difference_update(node.names)
    return reads - local
