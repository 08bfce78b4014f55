"""Reading source files without losing a byte.

A file is decoded with the encoding Python itself would use (PEP 263 coding
cookie, UTF-8 BOM, else UTF-8) and encoded back the same way, so a rewrite
changes only the characters a rule changed: BOM, CRLF line endings, tabs and
non-ASCII text of untouched code come out exactly as they went in.
"""

from __future__ import annotations

import ast
import codecs
import io
import re
import sys
import tokenize
from dataclasses import dataclass


class SourceError(Exception):
    """A file that cannot be migrated; the message is shown as `path: error: <message>`."""


@dataclass(frozen=True)
class SourceText:
    text: str
    encoding: str  # codec name as given to str.encode; "utf-8-sig" keeps a BOM

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding)


def decode_source(raw: bytes) -> SourceText:
    """Decode `raw` as Python would; raise SourceError when it cannot be decoded."""
    if b"\x00" in raw:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        raise SourceError(f"cannot determine the file's encoding: {exc}") from None
    try:
        codecs.lookup(encoding)
        text = raw.decode(encoding)
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r} in the coding cookie") from None
    except UnicodeDecodeError as exc:
        hint = ""
        if encoding == "utf-8":
            hint = (" (the file's coding cookie says utf-8)" if _has_coding_cookie(raw)
                    else " (add a PEP 263 coding cookie if it is another encoding)")
        raise SourceError(
            f"not valid {encoding} at byte {exc.start}{hint}; file left unchanged"
        ) from None
    if encoding == "utf-8-sig":
        # str.decode('utf-8-sig') drops the BOM; encode('utf-8-sig') puts it back.
        pass
    if text.encode(encoding) != raw:
        # Some codecs are not round-trip safe; never write a file we could not reproduce.
        raise SourceError(f"encoding {encoding!r} does not round-trip this file; file left unchanged")
    return SourceText(text=text, encoding=encoding)


_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+", re.M)


def _has_coding_cookie(raw: bytes) -> bool:
    head = raw.split(b"\n", 2)[:2]
    return any(_COOKIE.match(line) for line in head)


# Syntax this interpreter may be too old for: (pattern on the bad line, what, Python version).
_NEWER_PYTHON_HINTS = (
    (re.compile(r"^\s*type\s+\w+\s*(\[.*\])?\s*="), "PEP 695 `type` statement", (3, 12)),
    (re.compile(r"^\s*(async\s+)?def\s+\w+\s*\["), "PEP 695 generic function", (3, 12)),
    (re.compile(r"^\s*class\s+\w+\s*\["), "PEP 695 generic class", (3, 12)),
    (re.compile(r"\bf(\"|').*\{[^}]*\1"), "f-string reusing its own quotes (PEP 701)", (3, 12)),
)

_PY2_HINTS = (
    (re.compile(r"^\s*print\s+[^\s(=]", re.M), "print statement"),
    (re.compile(r"^\s*print\s*$", re.M), "print statement"),
    (re.compile(r"^\s*exec\s+[\"'\w]", re.M), "exec statement"),
    (re.compile(r"except\s+[\w.]+\s*,\s*\w+\s*:"), "`except X, e:`"),
    (re.compile(r"^\s*raise\s+[\w.]+\s*,", re.M), "`raise E, msg`"),
    (re.compile(r"\b0[0-7]+\b"), "old octal literal"),
    (re.compile(r"\bur[\"']"), "ur'' string prefix"),
    (re.compile(r"<>"), "`<>` operator"),
    (re.compile(r"`[^`\n]+`"), "backtick repr"),
)


def parse_python(text: str, filename: str) -> ast.Module:
    """ast.parse with a clear, one-line error, naming Python 2 syntax when that is the cause."""
    try:
        return ast.parse(text, filename=filename, type_comments=False)
    except SyntaxError as exc:
        raise SourceError(describe_syntax_error(text, exc)) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SourceError(f"cannot parse: {type(exc).__name__}: {exc}") from None


def describe_syntax_error(text: str, exc: SyntaxError) -> str:
    where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
    bad_line = ""
    if exc.lineno:
        lines = text.splitlines()
        if 0 < exc.lineno <= len(lines):
            bad_line = lines[exc.lineno - 1]
    for pattern, what in _PY2_HINTS:
        if pattern.search(bad_line or "") or (not bad_line and pattern.search(text)):
            return (
                f"Python 2 syntax ({what}) at {where}; tf-migrate reads Python 3 only: "
                "convert the file first (e.g. `python -m lib2to3` or `futurize`); file left unchanged"
            )
    for pattern, what, version in _NEWER_PYTHON_HINTS:
        if sys.version_info < version and pattern.search(bad_line):
            needs = ".".join(map(str, version))
            running = ".".join(map(str, sys.version_info[:2]))
            return (f"syntax error at {where}: {exc.msg} ({what} needs Python {needs}+, "
                    f"tf-migrate is running on Python {running}); file left unchanged")
    return f"syntax error at {where}: {exc.msg}; file left unchanged"
