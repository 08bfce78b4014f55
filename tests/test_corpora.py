"""Real third-party trees as read-only corpora (issue 7): `apply --out` never crashes.

The installed `tf_slim` package (TF1 slim code full of batch_norm) and the
installed `tensorflow` package's own Python tree are found with importlib and
only ever read: every run writes a mirror under tmp_path. For each: no
`internal error`, every output `.py` parses, and a second run over the output
changes nothing. tf_slim and a fixed sample of tensorflow run by default; the
whole tensorflow tree (~1,800 files) is `slow`.

All rules run, plus the test rewrite rule TFMT01, so the write path really rewrites.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import TEST_RULES, run_cli


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return Path(spec.origin).parent


def python_files(root: Path):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return out


def sample_tree(root: Path, dest: Path, count: int) -> Path:
    """A deterministic sample (every k-th file) copied out, keeping relative paths."""
    files = python_files(root)
    step = max(1, len(files) // count)
    for path in files[::step][:count]:
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def tree_digest(root: Path):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in python_files(root)}


def migrate_corpus(tree: Path, tmp_path: Path, jobs: int = 2, timeout: int = 600):
    first, second = tmp_path / "first", tmp_path / "second"
    before = tree_digest(tree)
    run = run_cli("apply", tree, "--out", first, "--rules-module", TEST_RULES, "-j", jobs, "-q",
                  timeout=timeout)
    stderr = run.stderr.decode(errors="replace")
    crashes = [line for line in stderr.splitlines() if "internal error" in line]
    assert not crashes, "\n".join(crashes[:20])
    assert run.returncode in (0, 1, 2), stderr
    input_errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert tree_digest(tree) == before, "the corpus was modified"

    unparsable = []
    for path in python_files(first):
        source = path.read_bytes()
        try:
            ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            unparsable.append(f"{path}: {exc}")
    # Files the tool reported as unreadable are copied as they were; everything else must parse.
    reported = {line.split(": error: ", 1)[0] for line in input_errors}
    unparsable = [u for u in unparsable
                  if str(tree / Path(u.split(": ", 1)[0]).relative_to(first)) not in reported]
    assert not unparsable, "\n".join(unparsable[:20])

    again = run_cli("apply", first, "--out", second, "--rules-module", TEST_RULES, "-j", jobs, "-q",
                    timeout=timeout)
    assert not [l for l in again.stderr.decode(errors="replace").splitlines() if "internal error" in l]
    changed = [rel for rel, data in tree_digest(second).items() if tree_digest_one(first, rel) != data]
    assert not changed, f"a second run changed: {changed[:20]}"
    assert set(tree_digest(second)) == set(tree_digest(first))
    return before, tree_digest(first), input_errors


def tree_digest_one(root: Path, rel: str) -> bytes:
    return (root / rel).read_bytes()


def test_tf_slim_package(tmp_path):
    root = package_dir("tf_slim")
    before, after, errors = migrate_corpus(root, tmp_path)
    assert errors == []  # tf_slim is plain Python 3 and UTF-8: nothing to refuse
    assert len(before) > 50
    changed = sum(before[rel] != after[rel] for rel in before)
    print(f"tf_slim: {len(before)} files, {changed} changed")


def test_tensorflow_package_sample(tmp_path):
    root = package_dir("tensorflow")
    tree = sample_tree(root, tmp_path / "tf-sample", 120)
    before, after, _ = migrate_corpus(tree, tmp_path)
    assert len(before) >= 100


@pytest.mark.slow
def test_tensorflow_package_whole_tree(tmp_path):
    root = package_dir("tensorflow")
    before, after, errors = migrate_corpus(root, tmp_path, jobs=os.cpu_count() or 1, timeout=3600)
    assert len(before) > 1000
    print(f"{len(before)} files, {sum(before[r] != after[r] for r in before)} changed, "
          f"{len(errors)} input errors")

