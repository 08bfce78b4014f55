"""`.pre-commit-hooks.yaml`: each hook's entry runs the way pre-commit runs it (no network).

pre-commit installs the repository into a virtualenv, then runs `entry` + `args` + the staged
file names that match `types_or`, and fails the commit on a non-zero exit or on modified files.
"""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, REPO, cli_env

HOOKS = {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def run_hook(hook_id, files, cwd):
    hook = HOOKS[hook_id]
    argv = shlex.split(hook["entry"]) + list(hook.get("args", [])) + [str(f) for f in files]
    exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("tf-migrate console script not installed in this environment (pip install -e .)")
    return subprocess.run([exe, *argv[1:]], cwd=cwd, env=cli_env(), capture_output=True, timeout=120)


def test_hook_definitions():
    assert set(HOOKS) == {"tf-migrate-check", "tf-migrate-apply"}
    for hook in HOOKS.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"]
        assert hook["entry"].split()[0] == "tf-migrate"
        assert {"id", "name", "entry", "language"} <= set(hook)


@pytest.fixture
def staged(tmp_path):
    shutil.copy(FIXTURES / "programs" / "cnn_bn.py", tmp_path / "train.py")
    shutil.copy(FIXTURES / "notebooks" / "train_tf1.ipynb", tmp_path / "nb.ipynb")
    (tmp_path / "tf2.py").write_text("import tensorflow as tf\nx = tf.constant(1)\n")
    return tmp_path


def test_check_hook_fails_on_tf1_code_and_passes_on_clean_files(staged):
    result = run_hook("tf-migrate-check", ["train.py", "nb.ipynb", "tf2.py"], staged)
    assert result.returncode == 1
    assert b"train.py:15:1: TFM300" in result.stdout and b"nb.ipynb:cell_2:" in result.stdout
    assert run_hook("tf-migrate-check", ["tf2.py"], staged).returncode == 0


def test_apply_hook_rewrites_the_files_then_passes(staged):
    before = {p: (staged / p).read_bytes() for p in ("train.py", "nb.ipynb", "tf2.py")}
    first = run_hook("tf-migrate-apply", list(before), staged)
    assert first.returncode == 0, first.stderr
    changed = [p for p in before if (staged / p).read_bytes() != before[p]]
    assert changed == ["train.py", "nb.ipynb"]  # pre-commit fails the commit on these changes
    migrated = {p: (staged / p).read_bytes() for p in before}
    second = run_hook("tf-migrate-apply", list(before), staged)
    assert second.returncode == 0
    assert {p: (staged / p).read_bytes() for p in before} == migrated
    assert b"0 changed" in second.stdout
