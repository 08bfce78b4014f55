"""Convert a module-level Session program as if it were a function.

The model rewrite (ModelClasses) and the training-loop rewrite (TrainSteps) convert Session
programs that are module-level functions, all or nothing (`_settle` trial-runs the program with
the models converted). A script whose program runs at module level, or under
`if __name__ == "__main__":` (`migrate.module_programs` finds it), goes through the same
machinery: its program statements are wrapped in a pseudo-function `def _tfm_module_program():`,
every rule runs on that text, and, if the training-loop rewrite converted the pseudo-function,
its converted body is put back where the program was (the train steps, helpers and classes the
rewrite generates stay before it as module-level definitions). If it did not convert, the
wrapped run is discarded, the file is migrated as it is (its model functions then stay TF1
code, since module-level code uses them) and the program is marked
`# tf-migrate: TFM401 left unchanged: <reason>`.

Definitions between the program's statements (`hoisted`) move before the pseudo-function.
Findings keep the lines of the original text (`_line_map`, statement by statement); the `def`
line takes the place of the blank line above the program where there is one.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import Callable, List, Optional, Tuple

import libcst as cst

from migrate.findings import Finding
from migrate.module_programs import PSEUDO_FUNCTION, ModuleProgram, find_module_program

MARKER = "# tf-migrate: TFM401"
Outcome = Tuple[Optional[str], List[Finding]]  # (new text or None when unchanged, findings)


def migrate_module_program(text: str, path: str, run: Callable[[str], Outcome],
                           resolver_for: Callable[[ast.Module], Callable]) -> Optional[Outcome]:
    """The outcome of migrating `text` when it has a module-level Session program; None when
    it has none (the caller migrates it as usual). `run(text)` migrates one text."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    program = find_module_program(tree, resolver_for(tree))
    if program is None:
        return None
    name = PSEUDO_FUNCTION
    while _binds(tree, name):
        name += "_"
    reason = program.refusal or _spans_cells(text, program)
    if reason is None:
        module = cst.parse_module(text)
        wrapped, took_blank, to_original = _wrap(module, program, name)
        new_text, findings = run(wrapped.code)
        converted = any(f.code == "TFM400" and f.fixed and f"`{name}`" in f.message
                        for f in findings)
        if converted and new_text is not None:
            if_main = module.body[program.start] if program.if_main else None
            unwrapped = _unwrap(cst.parse_module(new_text), name, if_main, took_blank)
            if unwrapped is not None:
                return unwrapped, [_remap(f, to_original, program.first_line, name) for f in findings]
            reason = "its converted statements could not be put back at module level"
        else:
            reason = next((_strip(f.message, name) for f in findings if f.code == "TFM401"
                           and f"`{name}`" in f.message), None) or \
                "the training-loop rewrite cannot migrate it"
    new_text, findings = run(text)
    marked = _mark(new_text if new_text is not None else text, tree, program, reason)
    if marked is None:
        return new_text, findings
    finding = Finding(path, program.first_line, 1, "TFM401",
                      f"the module-level program left unchanged: {reason}")
    return (marked if marked != text else None), sorted({*findings, finding})


def wrapped_text(text: str, resolver_for: Callable[[ast.Module], Callable]) -> Optional[str]:
    """`text` with its module-level program wrapped in the pseudo-function, as the file's own
    run first tries it (None when it has none, or one that is refused): the tree index decides
    which helpers of other modules the program may use from this text."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    program = find_module_program(tree, resolver_for(tree))
    if program is None or program.refusal is not None or _spans_cells(text, program):
        return None
    name = PSEUDO_FUNCTION
    while _binds(tree, name):
        name += "_"
    return _wrap(cst.parse_module(text), program, name)[0].code


def _spans_cells(text: str, program: ModuleProgram) -> Optional[str]:
    """A notebook's cells are joined into one module with boundary comments (notebooks.py);
    the conversion moves statements, so a program must lie in one cell."""
    from migrate.notebooks import _BOUNDARY_RE

    lines = text.splitlines()[program.first_line:]
    if any(_BOUNDARY_RE.match(line) for line in lines):
        return "its statements span several notebook cells (the rewrite would move code across them)"
    return None


def _binds(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name or
               isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
               for n in ast.walk(tree))


def _strip(message: str, name: str) -> str:
    prefix = f"`{name}` left unchanged: "
    return message[len(prefix):] if message.startswith(prefix) else message


# -- wrapping ------------------------------------------------------------------------------------
def _wrap(module: cst.Module, program: ModuleProgram, name: str
          ) -> Tuple[cst.Module, bool, Callable[[int], int]]:
    """(the module with the program in `def name():` -- the definitions between its statements
    moved before it --, whether the `def` took the place of the blank line above the program,
    wrapped line -> original line)."""
    body = list(module.body)
    if program.if_main:
        statement = body[program.start]
        function = cst.FunctionDef(name=cst.Name(name), params=cst.Parameters(),
                                   body=statement.body, leading_lines=statement.leading_lines)
        body[program.start] = function
        wrapped = module.with_changes(body=body)
        return wrapped, False, _line_map(module, wrapped, function, {}, program.first_line)
    hoisted = [body[i] for i in program.hoisted]
    region = [s for i, s in enumerate(body[program.start:program.end], program.start)
              if i not in program.hoisted]
    first = region[0]
    leading = list(first.leading_lines)
    took_blank = bool(leading) and leading[-1].comment is None
    if took_blank:
        leading.pop()  # the `def` line takes the place of the blank line above the program
    moved_first = first.with_changes(leading_lines=[])
    function = cst.FunctionDef(
        name=cst.Name(name), params=cst.Parameters(),
        body=cst.IndentedBlock(body=[moved_first, *region[1:]]), leading_lines=leading)
    wrapped = module.with_changes(body=[*body[:program.start], *hoisted, function])
    return wrapped, took_blank, _line_map(module, wrapped, function, {id(moved_first): first},
                                          program.first_line)


def _line_map(original: cst.Module, wrapped: cst.Module, function: cst.FunctionDef,
              replaced, def_line: int) -> Callable[[int], int]:
    """Wrapped line -> original line, statement by statement (a statement keeps its lines;
    the `def` line maps to the program's first line)."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    before = MetadataWrapper(original, unsafe_skip_copy=True).resolve(PositionProvider)
    after = MetadataWrapper(wrapped, unsafe_skip_copy=True).resolve(PositionProvider)
    spans = []
    statements = [s for s in wrapped.body if s is not function] + list(function.body.body)
    for statement in statements:
        source = replaced.get(id(statement), statement)
        if source in before and statement in after:
            where = after[statement]
            spans.append((where.start.line, where.end.line, before[source].start.line))
    function_line = after[function].start.line

    def to_original(line: int) -> int:
        for start, end, original_start in spans:
            if start <= line <= end:
                return original_start + line - start
        return def_line if line == function_line else line

    return to_original


def _unwrap(module: cst.Module, name: str, if_main: Optional[cst.If],
            took_blank: bool) -> Optional[str]:
    """The module with the pseudo-function replaced by its body (in `if_main`, the original
    `if __name__ == \"__main__\":` statement, when it was one); None when that cannot be."""
    index = next((i for i, s in enumerate(module.body)
                  if isinstance(s, cst.FunctionDef) and s.name.value == name), None)
    if index is None:
        return None
    function = module.body[index]
    statements = list(function.body.body)
    for statement in statements:
        if _has_top_level(statement, (cst.Return, cst.Global, cst.Nonlocal)):
            return None
    if if_main is not None:
        restored = [if_main.with_changes(body=function.body, leading_lines=function.leading_lines)]
    else:
        if not statements:
            return None
        leading = list(function.leading_lines)
        if took_blank:
            leading.append(cst.EmptyLine())  # the blank line the `def` took
        first = statements[0]
        own = list(first.leading_lines)
        if own and all(line.comment is None for line in own):
            # Blank lines the conversion left above its first statement (the statements above
            # it went): they go above the program's comments, not between them and it.
            comments = next((i for i, line in enumerate(leading) if line.comment is not None),
                            len(leading))
            combined = [cst.EmptyLine()] * max(comments, len(own)) + leading[comments:]
        else:
            combined = [*leading, *own]
        if index > 0 and isinstance(module.body[index - 1], (cst.FunctionDef, cst.ClassDef)):
            # Two blank lines after the train steps defined above it (PEP 8), also where the
            # statements that carried them (placeholders) went.
            blanks = next((i for i, line in enumerate(combined) if line.comment is not None),
                          len(combined))
            combined = [cst.EmptyLine()] * max(0, 2 - blanks) + combined
        restored = [first.with_changes(leading_lines=combined), *statements[1:]]
        if function.body.footer and index == len(module.body) - 1:
            # Comments after the program's last statement: the module's again.
            module = module.with_changes(footer=[*function.body.footer, *module.footer])
        elif function.body.footer:
            return None
    body = [*module.body[:index], *restored, *module.body[index + 1:]]
    new_text = module.with_changes(body=body).code
    # Markers of other functions may name the pseudo-function ("it is called by ..."): say what it is.
    new_text = "".join(line.replace(f"`{name}`", "the module-level program")
                       if line.lstrip().startswith("# tf-migrate:") else line
                       for line in new_text.splitlines(keepends=True))
    try:
        ast.parse(new_text)
    except SyntaxError:
        return None
    return new_text


def _has_top_level(statement: cst.CSTNode, kinds) -> bool:
    """Whether `statement` holds one of `kinds` outside nested functions and classes."""
    found = []

    class V(cst.CSTVisitor):
        def visit_FunctionDef(self, node):
            return False

        def visit_ClassDef(self, node):
            return False

        def on_visit(self, node):
            if isinstance(node, kinds):
                found.append(node)
            return super().on_visit(node)

    statement.visit(V())
    return bool(found)


def _remap(finding: Finding, to_original: Callable[[int], int], first_line: int,
           name: str) -> Finding:
    line = first_line if f"`{name}`" in finding.message else to_original(finding.line)
    message = finding.message.replace(f"`{name}`", "the module-level program")
    return replace(finding, line=line, message=message)


# -- the marker of a program left unchanged ------------------------------------------------------
def _mark(text: str, original: ast.Module, program: ModuleProgram, reason: str) -> Optional[str]:
    """`text` with the TFM401 marker above the program's first statement (found again by its
    syntax tree: the other rules leave module-level code as it is); None when it is not found."""
    reason = " ".join(reason.split())
    wanted = ast.dump(original.body[program.start])
    module = cst.parse_module(text)
    for index, stmt in enumerate(module.body):
        try:
            tree = ast.parse(module.code_for_node(stmt.with_changes(leading_lines=[])))
        except SyntaxError:
            continue
        if len(tree.body) != 1 or ast.dump(tree.body[0]) != wanted:
            continue
        if any(line.comment is not None and line.comment.value.startswith(MARKER)
               for line in stmt.leading_lines):
            return text
        comment = cst.EmptyLine(comment=cst.Comment(f"{MARKER} left unchanged: {reason}"))
        marked = stmt.with_changes(leading_lines=[*stmt.leading_lines, comment])
        return module.with_changes(body=[*module.body[:index], marked, *module.body[index + 1:]]).code
    return None
