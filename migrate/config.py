"""`[tool.tf-migrate]` in `pyproject.toml`: find it, validate it, merge it with the command line.

Found like ruff finds `[tool.ruff]`: walk up from the paths on the command line (their
common directory; the working directory for stdin) to the first `pyproject.toml` that has a
`[tool.tf-migrate]` table. A `pyproject.toml` without the table is passed over. `--config
FILE` names the file; `--isolated` ignores configuration altogether. Command-line flags
override the file. Unknown keys and wrongly typed values are errors (exit 2).

    [tool.tf-migrate]
    select = ["TFM1", "TFM2"]
    ignore = ["TFM107"]
    exclude = ["third_party", "*_pb2.py"]   # with a `/`: relative to this file's directory
    jobs = 4
    fused-bn = "keras"            # or "exact"

    [tool.tf-migrate.per-file-ignores]
    "tests/*" = ["TFM2"]

    [tool.tf-migrate.verify]      # defaults for `tf-migrate verify`
    steps = 20
    batch-size = 8
    rtol = 1e-5
    atol = 1e-6
    device = "cpu"
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

from migrate.discovery import Exclude

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.9/3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:
        _toml = None

TABLE = "tool.tf-migrate"


class ConfigError(Exception):
    """A configuration problem; the CLI shows it and exits 2."""


def _str_list(value, key):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"`{key}` must be a list of strings, got {value!r}")
    return list(value)


def _positive_int(value, key):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"`{key}` must be a positive integer, got {value!r}")
    return value


def _number(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"`{key}` must be a non-negative number, got {value!r}")
    return float(value)


def _choice(*choices):
    def check(value, key):
        if value not in choices:
            raise ConfigError(f"`{key}` must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    return check


def _per_file_ignores(value, key):
    if not isinstance(value, dict):
        raise ConfigError(f"`{key}` must be a table of GLOB = [CODES], got {value!r}")
    return [(pattern, tuple(c.upper() for c in _str_list(codes, f"{key}.{pattern!r}")))
            for pattern, codes in value.items()]


_TOP_KEYS = {
    "select": _str_list,
    "ignore": _str_list,
    "exclude": _str_list,
    "per-file-ignores": _per_file_ignores,
    "jobs": _positive_int,
    "fused-bn": _choice("keras", "exact"),
}
_VERIFY_KEYS = {
    "steps": _positive_int,
    "batch-size": _positive_int,
    "rtol": _number,
    "atol": _number,
    "device": _choice("cpu", "gpu", "all"),
}


@dataclass
class Config:
    """The validated `[tool.tf-migrate]` table (empty when there is none)."""

    path: Optional[Path] = None  # the pyproject.toml it came from
    select: Optional[List[str]] = None
    ignore: Optional[List[str]] = None
    exclude: Optional[List[str]] = None
    per_file_ignores: List[Tuple[str, Tuple[str, ...]]] = field(default_factory=list)
    jobs: Optional[int] = None
    fused_bn: Optional[str] = None
    verify: Dict[str, Any] = field(default_factory=dict)  # keys with `_`, e.g. batch_size

    @property
    def root(self) -> Optional[Path]:
        """The project root: per-file-ignores globs are relative to it."""
        return self.path.parent.resolve() if self.path is not None else None

    def anchored_excludes(self) -> Tuple[Exclude, ...]:
        """`exclude`, anchored to the directory of the file it came from, as ruff does."""
        anchor = self.path.parent.absolute() if self.path is not None else None
        return tuple(Exclude(pattern, anchor) for pattern in self.exclude or ())


def _load_toml(path: Path) -> dict:
    if _toml is None:
        raise ConfigError(f"{path}: reading TOML needs Python 3.11+ or the `tomli` package")
    try:
        with open(path, "rb") as handle:
            return _toml.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _table(data: dict) -> Optional[dict]:
    tool = data.get("tool")
    if isinstance(tool, dict) and "tf-migrate" in tool:
        return tool["tf-migrate"]
    return None


def _validate(table, path: Path) -> Config:
    where = f"{path}: [{TABLE}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    config = Config(path=path)
    for key, value in table.items():
        if key == "verify":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: `verify` must be a table")
            for vkey, vvalue in value.items():
                if vkey not in _VERIFY_KEYS:
                    raise ConfigError(_unknown(f"{path}: [{TABLE}.verify]", vkey, _VERIFY_KEYS))
                try:
                    config.verify[vkey.replace("-", "_")] = _VERIFY_KEYS[vkey](vvalue, vkey)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: [{TABLE}.verify]: {exc}") from None
            continue
        if key not in _TOP_KEYS:
            raise ConfigError(_unknown(where, key, list(_TOP_KEYS) + ["verify"]))
        try:
            setattr(config, key.replace("-", "_"), _TOP_KEYS[key](value, key))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return config


def _unknown(where: str, key: str, known) -> str:
    hint = ""
    if key.replace("_", "-") in known:
        hint = f" (did you mean `{key.replace('_', '-')}`?)"
    return f"{where}: unknown key `{key}`{hint}; known keys: {', '.join(sorted(known))}"


def load(path) -> Config:
    """Read `[tool.tf-migrate]` from one file (`--config FILE`); an absent table is empty."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    table = _table(_load_toml(path))
    if table is None:
        if path.name == "pyproject.toml":
            return Config(path=path)
        table = _load_toml(path)  # a tf-migrate.toml style file: the keys at top level
    return _validate(table, path)


def _start_dir(paths: Sequence[str]) -> Path:
    dirs = []
    for raw in paths:
        if raw == "-":
            continue
        path = Path(raw).absolute()
        dirs.append(str(path if path.is_dir() else path.parent))
    if not dirs:
        return Path.cwd()
    try:
        return Path(os.path.commonpath(dirs))
    except ValueError:  # different drives
        return Path(dirs[0])


def find(paths: Sequence[str]) -> Optional[Path]:
    """The first pyproject.toml with a `[tool.tf-migrate]` table, walking up from `paths`."""
    here = _start_dir(paths)
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                if _table(_load_toml(candidate)) is not None:
                    return candidate
            except ConfigError:
                # Only a file that is ours may stop the run; an unreadable unrelated one may not.
                if b"tf-migrate" in _read_bytes(candidate):
                    raise
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def resolve(paths: Sequence[str], config_file: Optional[str] = None, isolated: bool = False) -> Config:
    """The configuration for a run over `paths`."""
    if isolated:
        return Config()
    if config_file is not None:
        return load(config_file)
    found = find(paths)
    return load(found) if found is not None else Config()


def verify_defaults(paths: Sequence[str] = (), config_file: Optional[str] = None,
                    isolated: bool = False) -> Dict[str, Any]:
    """`[tool.tf-migrate.verify]` as a dict (`steps`, `batch_size`, `rtol`, `atol`, `device`).

    Only the keys the file sets are present; the verify command keeps its own defaults
    for the rest and its flags override these. Raises ConfigError on a bad file.
    """
    return dict(resolve(paths, config_file, isolated).verify)


def per_file_ignored_codes(path: str, config: Config) -> Tuple[str, ...]:
    """Codes `per-file-ignores` turns off for `path` (globs relative to the config's directory)."""
    if not config.per_file_ignores or path == "-":
        return ()
    absolute = Path(path).absolute()
    root = config.root
    try:
        rel = PurePosixPath(absolute.relative_to(root).as_posix()) if root else PurePosixPath(path)
    except ValueError:
        rel = PurePosixPath(Path(path).as_posix())
    codes: List[str] = []
    for pattern, pattern_codes in config.per_file_ignores:
        pattern = pattern[2:] if pattern.startswith("./") else pattern
        if (fnmatch.fnmatch(rel.as_posix(), pattern) or fnmatch.fnmatch(rel.name, pattern)
                or fnmatch.fnmatch(absolute.as_posix(), pattern)):
            codes.extend(pattern_codes)
    return tuple(codes)
