"""A non-editable install (`pip install tf-migrate`) must carry the data files the tool reads.

Python files are found by `packages.find`; anything else under migrate/ (the generated TF API
tables) ships only if `[tool.setuptools.package-data]` names it. Forgetting it breaks every
rewrite of an installed tool, and an editable install (what `make test` uses) never notices.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_under_migrate_is_declared_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["migrate"]
    package = ROOT / "migrate"
    data_files = [p.relative_to(package).as_posix() for p in package.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc")
                  and "__pycache__" not in p.parts]
    assert data_files, "expected the generated API tables under migrate/data/"
    undeclared = [f for f in data_files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not undeclared, f"not in [tool.setuptools.package-data]: {undeclared}"
