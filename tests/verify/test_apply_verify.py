"""`tf-migrate apply --verify` through the real CLI: the migrated file whose model verifies is
written, one that cannot be verified is left byte for byte and reported (exit 3), in place
and into an --out mirror; verify settings come from [tool.tf-migrate.verify]."""
import shutil

import pytest

from tests.conftest import run_cli
from verify_helpers import fixture

pytestmark = pytest.mark.tf


def _project(base):
    src = base / "src"
    src.mkdir()
    shutil.copy(fixture("cnn_update_ops", "old.py"), src / "cnn.py")  # verifies
    shutil.copy(fixture("unverifiable", "old.py"), src / "unknown.py")  # unknown input shape
    (src / "notes.txt").write_text("not python\n")
    (base / "pyproject.toml").write_text("[tool.tf-migrate.verify]\nsteps = 4\n")
    return src


@pytest.fixture(scope="module")
def in_place(tmp_path_factory):
    base = tmp_path_factory.mktemp("inplace")
    src = _project(base)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = run_cli("apply", "--verify", src, "-j", "1", timeout=600)
    return src, before, result


def test_in_place_writes_only_the_verified_file(in_place):
    src, before, result = in_place
    err = result.stderr.decode()
    assert result.returncode == 3, err[-4000:]
    assert (src / "unknown.py").read_bytes() == before["unknown.py"]
    assert (src / "notes.txt").read_bytes() == before["notes.txt"]
    migrated = (src / "cnn.py").read_text()
    assert migrated != before["cnn.py"].decode() and "class Model(tf.keras.Model)" in migrated
    compile(migrated, "cnn.py", "exec")


def test_in_place_reports_each_decision_and_uses_the_config(in_place):
    src, _, result = in_place
    err = result.stderr.decode()
    assert "steps=4" in err  # [tool.tf-migrate.verify] steps
    assert "cnn.py: written: verified (known divergence: fused-bn-bessel)" in err
    held = [l for l in err.splitlines() if "unknown.py: held back, left unchanged" in l]
    assert held and "[model.inputs.images]" in held[0]
    assert "[apply --verify] 1 file(s) written, 1 held back" in err
    assert not list(src.glob("__pycache__"))


def test_out_mirror_gets_the_original_bytes_of_held_back_files(tmp_path):
    src = _project(tmp_path)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    result = run_cli("apply", "--verify", src, "--out", out, "-j", "1", timeout=600)
    assert result.returncode == 3, result.stderr.decode()[-4000:]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # input untouched
    assert sorted(p.name for p in out.iterdir()) == ["cnn.py", "notes.txt", "unknown.py"]
    assert (out / "unknown.py").read_bytes() == before["unknown.py"]
    assert (out / "notes.txt").read_bytes() == before["notes.txt"]
    assert "class Model(tf.keras.Model)" in (out / "cnn.py").read_text()


def test_verify_needs_files_not_stdin():
    result = run_cli("apply", "--verify", "-", input=b"import tensorflow as tf\n")
    assert result.returncode == 2
    assert b"--verify needs files or directories" in result.stderr
