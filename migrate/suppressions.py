"""Inline suppressions, ruff `# noqa` style.

    x = slim.batch_norm(h)  # tf-migrate: ignore[TFM103]
    y = f(x)                # tf-migrate: ignore[TFM101, TFM204]
    z = g(x)                # tf-migrate: ignore          (every code on this line)
    # tf-migrate: ignore-file                             (the whole file: no findings, no rewrite)
    # tf-migrate: ignore-file[TFM3]                       (these rules are off for the file)

A line suppression hides the findings reported on its line. A suppression that hides
nothing (or names an unknown or disabled code) is itself reported as TFM901, when TFM901
is selected, like ruff's RUF100. File-level suppressions act before the rules run, so
they also keep `apply` from rewriting; they are never reported as unused.

Whole-function rewrites (TFM300 model function -> Keras class, TFM400 Session program ->
train steps) re-render every line of the function they convert, so, as ruff's noqa drops
the fix of a suppressed line, a line suppression anywhere in a module-level function (its
decorators through its last line) keeps that function as it is when it is bare, names the
rewrite's code, or names the code of a site finding on its line that the rewrite would
rewrite (`FUNCTION_REWRITES`: `ignore[TFM101]` on a batch norm line). The held function's own
finding of that rewrite (on its `def` line) is hidden with it, and the suppression counts as
used. A site code with no finding on its line holds nothing (it is an unused suppression).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from migrate.findings import Finding

UNUSED_CODE = "TFM901"

# The finding codes of the sites each whole-function rewrite rewrites (the codes it reports
# back as fixed inside a converted function; tests keep these equal to the rules' own sets).
MODEL_SITE_CODES = frozenset({"TFM101", "TFM102", "TFM103", "TFM104", "TFM105", "TFM106",
                              "TFM107", "TFM204"})
TRAINING_SITE_CODES = frozenset({"TFM201", "TFM202", "TFM203", "TFM205", "TFM206"})
# A training program is re-rendered whole too, layer sites included.
FUNCTION_REWRITES = {"TFM300": MODEL_SITE_CODES,
                     "TFM400": TRAINING_SITE_CODES | MODEL_SITE_CODES}

_DIRECTIVE = re.compile(
    r"#\s*tf-migrate:\s*(?P<kind>ignore-file|ignore)(?![\w-])\s*(?:\[(?P<codes>[^\]]*)\])?",
    re.IGNORECASE)


@dataclass
class LineSuppression:
    line: int
    col: int  # 1-based column of the comment
    codes: Optional[Tuple[str, ...]]  # None: every code
    text: str  # the directive as written


@dataclass(frozen=True)
class FunctionSpan:
    name: str
    def_line: int  # the line of `def` (where the rewrite's finding is reported)
    first: int  # its first decorator's line, or `def_line`
    last: int


@dataclass
class Suppressions:
    lines: Dict[int, List[LineSuppression]] = field(default_factory=dict)
    file_all: bool = False
    file_codes: Tuple[str, ...] = ()
    text: str = ""  # the source parsed, for the module-level functions' spans
    _spans: Optional[List[FunctionSpan]] = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.lines or self.file_all or self.file_codes)

    def function_spans(self, tree: Optional[ast.Module] = None) -> List[FunctionSpan]:
        """Module-level functions (from `tree`, or parsed from the text once); [] if unparsable."""
        if self._spans is None:
            if tree is None:
                try:
                    tree = ast.parse(self.text)
                except (SyntaxError, ValueError):
                    tree = ast.Module(body=[], type_ignores=[])
            self._spans = [
                FunctionSpan(node.name, node.lineno,
                             min([node.lineno] + [d.lineno for d in node.decorator_list]),
                             node.end_lineno or node.lineno)
                for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return self._spans


def _codes(raw: Optional[str]) -> Optional[Tuple[str, ...]]:
    if raw is None:
        return None
    codes = tuple(c.strip().upper() for c in raw.split(",") if c.strip())
    return codes or None


def _comments(text: str) -> Iterable[Tuple[int, int, str]]:
    """(line, 0-based col, comment text) of every comment; a line scan if tokenizing fails."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.start[1], tok.string
        return
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    for number, line in enumerate(text.splitlines(), 1):
        index = line.find("#")
        if index >= 0:
            yield number, index, line[index:]


def parse(text: str) -> Suppressions:
    found = Suppressions(text=text)
    if "tf-migrate" not in text:
        return found
    for line, col, comment in _comments(text):
        for match in _DIRECTIVE.finditer(comment):
            codes = _codes(match.group("codes"))
            if match.group("kind").lower() == "ignore-file":
                if codes is None:
                    found.file_all = True
                else:
                    found.file_codes += codes
            else:
                found.lines.setdefault(line, []).append(
                    LineSuppression(line, col + match.start() + 1, codes, match.group(0)))
    return found


def _matches(code: str, codes: Optional[Sequence[str]]) -> bool:
    return codes is None or code in codes


def _holding_codes(sup: LineSuppression, rewrite_code: str,
                   site_codes_on_line: Set[str]) -> Tuple[Optional[str], ...]:
    """The codes (None for a bare suppression) by which `sup` holds back `rewrite_code`: a bare
    one, the rewrite's own code, or a site code with a finding on its line (a stale site code
    holds nothing: it is reported as unused instead)."""
    if sup.codes is None:
        return (None,)
    sites = FUNCTION_REWRITES[rewrite_code] & site_codes_on_line
    return tuple(c for c in sup.codes if c == rewrite_code or c in sites)


def _codes_by_line(findings: Iterable[Finding]) -> Dict[int, Set[str]]:
    by_line: Dict[int, Set[str]] = {}
    for finding in findings:
        by_line.setdefault(finding.line, set()).add(finding.code)
    return by_line


def _holds(suppressions: Suppressions, span: FunctionSpan, rewrite_code: str,
           by_line: Dict[int, Set[str]]) -> Dict[Tuple[int, int], Tuple[Optional[str], ...]]:
    """{(line, index): holding codes} of the suppressions in `span` that hold it back."""
    holding = {}
    for line in range(span.first, span.last + 1):
        for index, sup in enumerate(suppressions.lines.get(line, ())):
            codes = _holding_codes(sup, rewrite_code, by_line.get(line, set()))
            if codes:
                holding[(line, index)] = codes
    return holding


def held_functions(suppressions: Suppressions, rewrite_code: str, findings: Iterable[Finding],
                   tree: Optional[ast.Module] = None) -> Dict[str, FunctionSpan]:
    """Module-level functions a line suppression keeps out of the whole-function rewrite
    `rewrite_code` (TFM300 or TFM400), by name. `findings`: the rules' findings of the file."""
    held: Dict[str, FunctionSpan] = {}
    if not suppressions.lines:
        return held
    by_line = _codes_by_line(findings)
    for span in suppressions.function_spans(tree):
        if _holds(suppressions, span, rewrite_code, by_line):
            held[span.name] = span
    return held


def _hide_held_functions(findings: Sequence[Finding], suppressions: Suppressions,
                         used: Set[Tuple[int, int, Optional[str]]]) -> List[Finding]:
    """`findings` minus each held function's own rewrite finding on its `def` line; the
    suppressions that held a function that had one are marked used."""
    hidden: Set[Finding] = set()
    by_line = _codes_by_line(findings)
    for rewrite_code in FUNCTION_REWRITES:
        held = held_functions(suppressions, rewrite_code, findings)
        for finding in findings:
            span = held.get(_function_at(finding, held))
            if finding.code != rewrite_code or span is None:
                continue
            hidden.add(finding)
            for (line, index), codes in _holds(suppressions, span, rewrite_code, by_line).items():
                used.update((line, index, code) for code in codes)
    return [f for f in findings if f not in hidden]


def _function_at(finding: Finding, held: Dict[str, FunctionSpan]) -> Optional[str]:
    return next((name for name, span in held.items() if span.def_line == finding.line), None)


def apply(findings: Sequence[Finding], suppressions: Suppressions, path: str,
          known_codes: Set[str], enabled_codes: Set[str], report_unused: bool) -> List[Finding]:
    """`findings` minus the suppressed ones, plus TFM901 for suppressions that hid nothing."""
    if not suppressions.lines:
        return list(findings)
    used: Set[Tuple[int, int, Optional[str]]] = set()  # (line, index, code or None for bare)
    findings = _hide_held_functions(findings, suppressions, used)
    kept: List[Finding] = []
    for finding in findings:
        hit = False
        for index, sup in enumerate(suppressions.lines.get(finding.line, ())):
            if _matches(finding.code, sup.codes):
                used.add((sup.line, index, None if sup.codes is None else finding.code))
                hit = True
        if not hit:
            kept.append(finding)
    if not report_unused:
        return kept
    unused: List[Finding] = []
    for line, sups in suppressions.lines.items():
        for index, sup in enumerate(sups):
            if sup.codes is None:
                if (line, index, None) not in used:
                    unused.append(Finding(path, line, sup.col, UNUSED_CODE,
                                          "unused suppression: `# tf-migrate: ignore` hides nothing "
                                          "on this line; remove it"))
                continue
            for code in sup.codes:
                if (line, index, code) in used:
                    continue
                if code not in known_codes:
                    why = "not a tf-migrate rule code"
                elif code not in enabled_codes:
                    why = "rule not enabled in this run"
                else:
                    why = f"no {code} finding on this line"
                unused.append(Finding(path, line, sup.col, UNUSED_CODE,
                                      f"unused suppression of {code} ({why}); remove it"))
    # A TFM901 finding can itself be suppressed on its line (ignore[TFM901] or a bare ignore
    # that hid something else).
    result = kept + [u for u in unused if not _self_suppressed(u, suppressions)]
    return sorted(result)


def _self_suppressed(finding: Finding, suppressions: Suppressions) -> bool:
    return any(sup.codes is not None and UNUSED_CODE in sup.codes
               for sup in suppressions.lines.get(finding.line, ()))


def drop_file_codes(rules, suppressions: Suppressions):
    """The rules left once `ignore-file[CODES]` has turned some off for this file."""
    if not suppressions.file_codes:
        return list(rules)
    return [r for r in rules if not any(r.code.startswith(c) for c in suppressions.file_codes)]
