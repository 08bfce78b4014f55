"""Find the files a run works on, and where each goes in an `--out` mirror.

Directories are walked for `*.py` and `*.ipynb`; hidden directories, `.venv`, `venv`,
`build`, `site-packages`, `__pycache__` and `node_modules` are skipped, as are
paths matching exclude globs (`Exclude`). Symbolic links are never followed out of the
tree: a link to a file inside the tree is processed as that file (once), a link
elsewhere is reported and left alone, and a mirror keeps links as links.
Explicitly named files are processed whatever their extension, as ruff does.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, List, Optional, Sequence

DEFAULT_SKIP_DIRS = frozenset({".venv", "venv", "build", "site-packages", "__pycache__",
                               "node_modules"})
PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")  # notebooks: migrate.notebooks

PYTHON = "python"  # migrate it
OTHER = "other"  # copy it into a mirror
SYMLINK = "symlink"  # recreate it in a mirror
DIRECTORY = "directory"  # create it in a mirror
PROBLEM = "problem"  # report it


@dataclass(frozen=True)
class Target:
    kind: str
    path: Optional[Path]  # on disk (None for stdin)
    display: str  # as shown in reports
    dest: Optional[PurePosixPath] = None  # relative destination in an --out mirror
    message: Optional[str] = None  # for PROBLEM / outside-tree symlinks
    is_error: bool = True  # PROBLEM: error (exit 2) or warning

    @property
    def is_stdin(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class Exclude:
    """An exclude glob and the directory it is anchored to, as ruff anchors them.

    A pattern without a `/` (`third_party`, `*_pb2.py`) matches a file or directory of that
    name anywhere; one with a `/` (`src/gen/*.py`) matches paths under `anchor` only. The
    `exclude` of a `pyproject.toml` is anchored to that file's directory; `--exclude` to the
    working directory (ruff) and, as before, to each directory walked.
    """

    pattern: str
    anchor: Optional[Path] = None  # None: a command-line pattern

    @property
    def glob(self) -> str:
        pattern = self.pattern.rstrip("/") or self.pattern
        return pattern[2:] if pattern.startswith("./") else pattern

    def anchored(self) -> str:
        """The pattern as an absolute glob."""
        base = self.anchor if self.anchor is not None else Path.cwd()
        return Path(os.path.normpath(os.path.join(base, self.glob))).as_posix()

    def matches(self, path: Path, rel: PurePosixPath) -> bool:
        """`path` (as walked) is excluded; `rel` is it relative to the directory walked."""
        glob = self.glob
        if "/" not in glob and (fnmatch.fnmatch(rel.name, glob)
                                or any(fnmatch.fnmatch(part, glob) for part in rel.parts)):
            return True
        if self.anchor is None and fnmatch.fnmatch(rel.as_posix(), glob):
            return True  # the walked directory's relative path (before ruff's anchoring)
        return fnmatch.fnmatch(Path(os.path.abspath(path)).as_posix(), self.anchored())


def _excludes(excludes: Sequence) -> List[Exclude]:
    """Plain strings are command-line patterns."""
    return [e if isinstance(e, Exclude) else Exclude(e) for e in excludes]


def _excluded(path: Path, rel: PurePosixPath, excludes: Sequence[Exclude]) -> bool:
    return any(exclude.matches(path, rel) for exclude in excludes)


def _skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in DEFAULT_SKIP_DIRS


def _display(path: Path) -> str:
    text = str(path)
    return text[2:] if text.startswith("./") else text


def _symlink_problem(path: Path) -> Optional[str]:
    """Why a symlink cannot be followed, or None when it resolves."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop, not followed"
        if exc.errno == errno.ENOENT:
            return f"broken symlink to {os.readlink(path)!r}, not followed"
        return f"cannot follow symlink: {exc.strerror}"
    except RuntimeError:
        return "symlink loop, not followed"
    return None


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _special_file(path: Path) -> Optional[str]:
    """Why `path` (followed if a link) is not a regular file we can read, or None.

    Reading a named pipe blocks until someone writes to it, so it must never
    reach a worker; a device or socket is not source code either.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # reported later, when the file is read
    for test, what in _SPECIAL_KINDS:
        if test(mode):
            return f"not a regular file ({what}), skipped"
    return None


def discover(paths: Sequence[str], excludes: Sequence = (), with_mirror: bool = False) -> List[Target]:
    """Every target named by `paths`, in a stable order.

    `excludes`: `Exclude`s, or strings for command-line patterns. With `with_mirror`,
    non-Python files, links and directories are returned too, each with its destination
    under the mirror root.
    """
    excludes = _excludes(excludes)
    targets: List[Target] = []
    seen_real = set()
    prefix_with_name = len(paths) > 1
    for raw in paths:
        if raw == "-":
            targets.append(Target(PYTHON, None, "-", PurePosixPath("stdin.py")))
            continue
        root = Path(raw)
        base = PurePosixPath(root.name) if prefix_with_name else PurePosixPath()
        if root.is_symlink() and not root.exists():
            targets.append(Target(PROBLEM, root, _display(root), message=_symlink_problem(root)))
        elif root.is_dir():
            targets.extend(_walk(root, base, excludes, with_mirror, seen_real))
        elif root.exists() and _special_file(root):
            targets.append(Target(PROBLEM, root, _display(root), message=_special_file(root)))
        elif root.exists():
            real = os.path.realpath(root)
            if real not in seen_real:
                seen_real.add(real)
                targets.append(Target(PYTHON, root, _display(root), PurePosixPath(root.name)
                                      if not prefix_with_name else base))
        else:
            targets.append(Target(PROBLEM, root, _display(root), message="no such file or directory"))
    if with_mirror and prefix_with_name:
        targets = _refuse_clashing_destinations(targets)
    return targets


def _refuse_clashing_destinations(targets: List[Target]) -> List[Target]:
    """Several PATHs with the same name would overwrite each other in the mirror: refuse the later."""
    owners = {}
    kept: List[Target] = []
    for target in targets:
        if target.dest is None or target.is_stdin or target.kind == DIRECTORY:
            kept.append(target)
            continue
        first = owners.setdefault(target.dest, target)
        if first is target:
            kept.append(target)
        else:
            kept.append(Target(PROBLEM, target.path, target.display, message=(
                f"its --out destination {target.dest.as_posix()!r} is already taken by "
                f"{first.display}; not processed (give the paths distinct names)")))
    return kept


def _walk(root: Path, base: PurePosixPath, excludes, with_mirror, seen_real) -> Iterator[Target]:
    root_real = os.path.realpath(root)
    if with_mirror:
        yield Target(DIRECTORY, root, _display(root), base)

    def on_error(exc: OSError) -> None:
        problems.append(Target(PROBLEM, Path(exc.filename), _display(Path(exc.filename)),
                               message=f"cannot read directory: {exc.strerror}"))

    problems: List[Target] = []
    for dirpath, dirnames, filenames, in os.walk(root, onerror=on_error):
        yield from problems
        problems.clear()
        here = Path(dirpath)
        rel_dir = PurePosixPath(here.relative_to(root).as_posix())
        keep = []
        for name in sorted(dirnames):
            path = here / name
            rel = rel_dir / name
            if _skipped_dir(name) or _excluded(path, rel, excludes):
                continue
            if path.is_symlink():
                if with_mirror:
                    yield Target(SYMLINK, path, _display(path), base / rel)
                continue
            keep.append(name)
            if with_mirror:
                yield Target(DIRECTORY, path, _display(path), base / rel)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            rel = rel_dir / name
            excluded = _excluded(path, rel, excludes)
            is_python = name.endswith(PYTHON_SUFFIXES)
            if path.is_symlink():
                problem = _symlink_problem(path)
                if with_mirror:
                    yield Target(SYMLINK, path, _display(path), base / rel)
                if excluded or not is_python:
                    continue
                if problem:
                    yield Target(PROBLEM, path, _display(path), message=problem)
                    continue
                real = os.path.realpath(path)
                if os.path.commonpath([real, root_real]) != root_real:
                    yield Target(PROBLEM, path, _display(path), is_error=False,
                                 message="symlink to a file outside the tree, not followed")
                # A link inside the tree: its target is processed as itself.
                continue
            special = None if excluded else _special_file(path)
            if special and (is_python or with_mirror):
                # Never opened: reading a FIFO would hang the run. Python-named ones are errors.
                yield Target(PROBLEM, path, _display(path), message=special, is_error=is_python)
                continue
            if is_python and not excluded:
                real = os.path.realpath(path)
                if real in seen_real:
                    continue
                seen_real.add(real)
                yield Target(PYTHON, path, _display(path), base / rel)
            elif with_mirror:
                yield Target(OTHER, path, _display(path), base / rel)
    yield from problems
