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
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from migrate.findings import Finding

UNUSED_CODE = "TFM901"

_DIRECTIVE = re.compile(
    r"#\s*tf-migrate:\s*(?P<kind>ignore-file|ignore)(?![\w-])\s*(?:\[(?P<codes>[^\]]*)\])?",
    re.IGNORECASE)


@dataclass
class LineSuppression:
    line: int
    col: int  # 1-based column of the comment
    codes: Optional[Tuple[str, ...]]  # None: every code
    text: str  # the directive as written


@dataclass
class Suppressions:
    lines: Dict[int, List[LineSuppression]] = field(default_factory=dict)
    file_all: bool = False
    file_codes: Tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.lines or self.file_all or self.file_codes)


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
    found = Suppressions()
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


def apply(findings: Sequence[Finding], suppressions: Suppressions, path: str,
          known_codes: Set[str], enabled_codes: Set[str], report_unused: bool) -> List[Finding]:
    """`findings` minus the suppressed ones, plus TFM901 for suppressions that hid nothing."""
    if not suppressions.lines:
        return list(findings)
    used: Set[Tuple[int, int, Optional[str]]] = set()  # (line, index, code or None for bare)
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
