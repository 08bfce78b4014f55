"""Jupyter notebooks: migrate the code cells together, as one program, and patch them back.

Cells are joined into one module (so a model defined in one cell and trained in another
is migrated as one program), each preceded by a boundary comment. IPython syntax is masked
first and restored after: a line magic or shell line (`%time x`, `!pip ...`, `x = !ls`,
`obj?`) becomes a placeholder name at the same indentation; a cell magic cell (`%%time`,
`%%capture`, ...) keeps its body as Python when the magic runs Python, and is left out of
the program otherwise (`%%bash`, `%%writefile`, ...).

Only the edited cells' `source` changes: the notebook is re-serialised from the original
JSON (key order, indent, `ensure_ascii`, trailing newline detected and checked to
reproduce the input byte for byte); a notebook with nothing to change keeps its bytes.
The result is validated with nbformat when it is installed. Findings are reported as
`nb.ipynb:cell_3:LINE:COL` (code cells counted from 1, lines within the cell).
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, Tuple

from migrate.findings import Finding
from migrate.pipeline import FileResult

SUFFIX = ".ipynb"
_BOUNDARY = "# tf-migrate:cell-boundary {} 7c1e"
_BOUNDARY_RE = re.compile(r"^# tf-migrate:cell-boundary (\d+) 7c1e$")
_PLACEHOLDER = "__tf_migrate_magic_{}__"
_PLACEHOLDER_RE = re.compile(r"^([ \t]*)__tf_migrate_magic_(\d+)__[ \t]*$")
# Cell magics whose body is Python.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_HELP = re.compile(r"^[A-Za-z_][\w.]*\?{1,2}$")  # `obj?`, `obj??`
_ASSIGN_MAGIC = re.compile(r"^[ \t]*[\w.,\s\[\]()]+=\s*[!%]")


class NotebookError(Exception):
    """A notebook that cannot be migrated; shown as `path: error: message`."""


def is_notebook(path: str) -> bool:
    return path.endswith(SUFFIX)


@dataclass
class NotebookResult(FileResult):
    """A FileResult whose diff is per cell."""

    cell_diffs: List[Tuple[str, str, str]] = field(default_factory=list)  # (label, old, new)


@dataclass
class _Cell:
    index: int  # position in nb["cells"]
    number: int  # 1-based among code cells (the N in cell_N)
    source: str  # original text
    masked: Optional[str]  # the Python we migrate; None: left out (non-Python cell magic)
    start: int = 0  # first line of the cell in the joined program (1-based)


def _is_magic_line(stripped: str) -> bool:
    return stripped.startswith(("%", "!", "?")) or bool(_HELP.match(stripped))


def _mask(source: str, magics: List[str]) -> Optional[str]:
    lines = source.splitlines(keepends=True)
    first = lines[0].strip() if lines else ""
    out = []
    if first.startswith("%%"):
        name = first[2:].split(None, 1)[0] if len(first) > 2 else ""
        if name not in PYTHON_CELL_MAGICS:
            return None
    for line in lines:
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        stripped = body.strip()
        if (stripped and (_is_magic_line(stripped) or _ASSIGN_MAGIC.match(body))
                and not _continues("".join(out))):
            indent = body[: len(body) - len(body.lstrip())]
            magics.append(stripped)
            out.append(f"{indent}{_PLACEHOLDER.format(len(magics) - 1)}{ending}")
        else:
            out.append(line)
    return "".join(out)


def _continues(text: str) -> bool:
    """Whether `text` ends inside a bracket, string or backslash continuation.

    A line starting with `%` there is Python (`"..." % (a, b)`), not a magic.
    """
    if not text.strip():
        return False
    try:
        for _ in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except tokenize.TokenError:
        return True
    except (SyntaxError, IndentationError):
        return False
    return text.rstrip("\r\n").endswith("\\")


def _unmask(text: str, magics: List[str], seen: set) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        match = _PLACEHOLDER_RE.match(body)
        if match:
            number = int(match.group(2))
            seen.add(number)
            line = f"{match.group(1)}{magics[number]}{line[len(body):]}"
        out.append(line)
    return "".join(out)


def _source_text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _split_source(text: str, like) -> object:
    if isinstance(like, list):
        return text.splitlines(keepends=True)
    return text


def _layout(raw: str, nb) -> dict:
    """json.dumps arguments that reproduce `raw` exactly, or raise NotebookError."""
    match = re.match(r"\{\r?\n([ \t]+)", raw)
    indent = match.group(1) if match else None
    if indent is not None and set(indent) == {" "}:
        indent = len(indent)
    for ensure_ascii in (False, True):
        kwargs = {"indent": indent, "ensure_ascii": ensure_ascii}
        if indent is None:
            kwargs["separators"] = (",", ":") if "\": " not in raw[:200] else (", ", ": ")
        text = json.dumps(nb, **kwargs)
        tail = raw[len(text):]
        if raw.startswith(text) and tail.strip() == "":
            kwargs["tail"] = tail
            return kwargs
    raise NotebookError("the notebook's JSON layout cannot be reproduced byte for byte "
                        "(hand-edited?); file left unchanged. Re-save it with Jupyter and retry")


def migrate_notebook(raw: bytes, path: str,
                     migrate_program: Callable[[bytes, str], FileResult]) -> NotebookResult:
    """Migrate a notebook's code cells; `migrate_program(source_bytes, path)` migrates Python."""
    result = NotebookResult(path=path)
    try:
        _migrate(raw, path, migrate_program, result)
    except NotebookError as exc:
        result.error = str(exc)
        result.findings = []
        result.new_bytes = None
        result.cell_diffs = []
    return result


def _migrate(raw, path, migrate_program, result: NotebookResult) -> None:
    try:
        text = raw.decode("utf-8")
        nb = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"not a valid notebook (JSON: {exc}); file left unchanged") from None
    if isinstance(nb, dict) and "worksheets" in nb:
        raise NotebookError("nbformat 3 notebook: convert it first (`jupyter nbconvert --to notebook "
                            "--nbformat 4`); file left unchanged")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("not a notebook (no `cells` list); file left unchanged")
    language = (nb.get("metadata", {}).get("language_info", {}) or {}).get("name", "python")
    if language not in ("python", "", None):
        return  # an R or Julia notebook: nothing for us

    magics: List[str] = []
    cells: List[_Cell] = []
    number = 0
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        source = _source_text(cell)
        cells.append(_Cell(index, number, source, _mask(source, magics)))

    parts, line = [], 1
    for cell in cells:
        if cell.masked is None:
            continue
        body = cell.masked if cell.masked.endswith("\n") or not cell.masked else cell.masked + "\n"
        parts.append(_BOUNDARY.format(cell.number) + "\n" + body)
        cell.start = line + 1
        line += 1 + body.count("\n")
    program = "".join(parts)
    if not program.strip():
        return

    inner = migrate_program(program.encode("utf-8"), path)
    if inner.error:
        raise NotebookError(_cell_error(inner.error, cells))
    result.findings = sorted(_to_cell(f, cells, path) for f in inner.findings)
    if not inner.changed:
        return

    new_sources = _split_cells(inner.new_text)
    by_number = {c.number: c for c in cells}
    if set(new_sources) != {c.number for c in cells if c.masked is not None}:
        raise NotebookError("internal error: the rewrite moved code across cell boundaries; "
                            "file left unchanged. Please report this with the notebook")
    seen: set = set()
    edits = {}
    for number, new in new_sources.items():
        cell = by_number[number]
        old_body = cell.masked if cell.masked.endswith("\n") or not cell.masked else cell.masked + "\n"
        if new == old_body:
            continue
        new = new.rstrip() + "\n" if new.strip() else ""
        if not cell.masked.endswith("\n"):
            new = new[:-1] if new.endswith("\n") else new
        edits[number] = _unmask(new, magics, seen)
    # Every magic in an edited cell must come back.
    for number in edits:
        wanted = {int(m.group(1)) for m in re.finditer(r"__tf_migrate_magic_(\d+)__",
                                                        by_number[number].masked)}
        if not wanted <= seen:
            raise NotebookError(f"internal error: the rewrite dropped an IPython magic in "
                                f"cell_{number}; file left unchanged. Please report this")
    if not edits:
        return

    layout = _layout(text, nb)
    tail = layout.pop("tail")
    for number, new in edits.items():
        cell = nb["cells"][by_number[number].index]
        cell["source"] = _split_source(new, cell.get("source", ""))
        result.cell_diffs.append((f"{path}:cell_{number}", by_number[number].source, new))
    new_text = json.dumps(nb, **layout) + tail
    _validate(new_text, path)
    result.new_bytes = new_text.encode("utf-8")
    result.old_text, result.new_text = text, new_text


def _split_cells(program: str) -> dict:
    cells, current, lines = {}, None, []
    for line in program.splitlines(keepends=True):
        match = _BOUNDARY_RE.match(line.rstrip("\r\n"))
        if match:
            if current is not None:
                cells[current] = "".join(lines)
            current, lines = int(match.group(1)), []
        elif current is None:
            # Code a rewrite put above the first cell (e.g. a new import) goes into it.
            lines.append(line)
        else:
            lines.append(line)
    if current is not None:
        cells[current] = "".join(lines)
    elif lines:
        raise NotebookError("internal error: the rewrite lost the cell boundaries; file left "
                            "unchanged. Please report this with the notebook")
    return cells


def _locate(line: int, cells: List[_Cell]) -> Tuple[Optional[_Cell], int]:
    owner = None
    for cell in cells:
        if cell.masked is not None and cell.start <= line:
            owner = cell
    if owner is None:
        return None, line
    return owner, line - owner.start + 1


def _to_cell(finding: Finding, cells: List[_Cell], path: str) -> Finding:
    cell, line = _locate(finding.line, cells)
    if cell is None:
        return replace(finding, path=path)
    extra = dict(finding.extra)
    extra.update({"notebook": path, "cell": cell.number})
    return replace(finding, path=f"{path}:cell_{cell.number}", line=max(line, 1), extra=extra)


def _cell_error(message: str, cells: List[_Cell]) -> str:
    match = re.search(r"\bline (\d+)", message)
    if not match:
        return message
    cell, line = _locate(int(match.group(1)), cells)
    if cell is None:
        return message
    return message[: match.start()] + f"cell_{cell.number} line {line}" + message[match.end():]


def _validate(text: str, path: str) -> None:
    try:
        import nbformat
    except ImportError:  # optional: the JSON was only patched, not restructured
        return
    try:
        nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
    except Exception as exc:  # nbformat.ValidationError and friends
        first = (str(exc).strip().splitlines() or [""])[0]
        raise NotebookError(f"internal error: the migrated notebook does not validate ({first}); "
                            "file left unchanged. Please report this") from None
