"""The CLI contract through click's runner and through a real subprocess."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import cli
from tests.conftest import FIXTURES, TEST_RULES, run_cli

BN_SOURCE = (
    "import tensorflow as tf\n\n\n"
    "def model(x, is_training):\n"
    "    return tf.layers.batch_normalization(x, training=is_training)\n"
)


@pytest.fixture
def tree(tmp_path):
    """A small repository: TF1 files, a TF2 file, a data file, a nested package, a link."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "model.py").write_text(BN_SOURCE)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "ops.py").write_text(BN_SOURCE.replace("model", "block"))
    (root / "pkg" / "tf2.py").write_text("import tensorflow as tf\nx = tf.constant(1)\n")
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "run.py").write_text("#!/usr/bin/env python\nprint('hi')\n")
    os.chmod(root / "run.py", 0o755)
    os.chmod(root / "model.py", 0o640)
    os.symlink("model.py", root / "alias.py")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "skipped.py").write_text(BN_SOURCE)
    (root / "build").mkdir()
    (root / "build" / "skipped.py").write_text(BN_SOURCE)
    return root


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


# -- check --------------------------------------------------------------------------------
def test_check_reports_path_line_col_code_and_exits_1(tree):
    result = invoke("check", tree, "-j", "1")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{tree / 'model.py'}:5:12: TFM101" in result.output
    assert any(line.startswith(f"{tree / 'pkg' / 'ops.py'}:5:12: TFM101 ") for line in lines)
    assert "skipped.py" not in result.output  # hidden dirs and build/ are not walked
    assert "alias.py" not in result.output  # a link inside the tree is its target, once
    assert lines[-1] == "Scanned 5 files: 4 findings in 2 files, 0 errors."


def test_check_exits_0_without_findings(tmp_path):
    (tmp_path / "a.py").write_text("import tensorflow as tf\n")
    result = invoke("check", tmp_path)
    assert result.exit_code == 0
    assert "Scanned 1 file: 0 findings in 0 files, 0 errors." in result.output


def test_check_exits_2_on_unparseable_input_and_goes_on(tmp_path):
    (tmp_path / "bad.py").write_text("import tensorflow as tf\ndef f(:\n  tf.layers.batch_normalization(x)\n")
    (tmp_path / "good.py").write_text(BN_SOURCE)
    result = run_cli("check", tmp_path)
    assert result.returncode == 2
    assert b"bad.py: error: syntax error at line 2" in result.stderr
    assert b"good.py:5:12: TFM101" in result.stdout


def test_check_json_lists_every_finding(tree):
    result = invoke("check", tree, "--format", "json")
    data = json.loads(result.output)
    assert data["summary"]["findings"] == 4  # a TFM101 and a TFM300 in each of two files
    finding = data["files"][0]["findings"][0]
    assert {"path", "line", "col", "code", "message", "fixed", "rewrite_class"} <= set(finding)


def test_select_and_ignore_by_code_prefix(tree):
    assert "TFM101" not in invoke("check", tree, "--ignore", "TFM1").output
    assert invoke("check", tree, "--select", "TFM2").exit_code == 0
    result = invoke("check", tree, "--select", "TFM101,TFM2")
    assert result.exit_code == 1


def test_unknown_rule_code_is_a_usage_error(tree):
    result = run_cli("check", tree, "--select", "XYZ9")
    assert result.returncode == 2
    assert b"unknown rule code" in result.stderr


def test_exclude_glob(tree):
    result = invoke("check", tree, "--exclude", "pkg")
    assert "ops.py" not in result.output and "model.py" in result.output
    result = invoke("check", tree, "--exclude", "model.py", "--exclude", "*/tf2.py")
    assert "model.py" not in result.output and "ops.py" in result.output


def test_missing_path_is_an_error_and_the_rest_still_runs(tree):
    result = run_cli("check", tree / "nope.py", tree / "model.py")
    assert result.returncode == 2
    assert b"nope.py: error: no such file or directory" in result.stderr
    assert b"model.py:5:12: TFM101" in result.stdout


# -- rules --------------------------------------------------------------------------------
def test_rules_lists_every_code_and_explains_one():
    listing = invoke("rules").output
    for code in ("TFM101", "TFM103", "TFM201", "TFM204", "TFM206"):
        assert code in listing
    explained = invoke("rules", "TFM103").output
    assert "## What it does" in explained and "## Why" in explained and "## Example" in explained
    assert "decay=0.999" in explained or "0.999" in explained
    assert invoke("rules", "tfm103").output == explained
    assert CliRunner().invoke(cli, ["rules", "TFM999"]).exit_code == 2


# -- diff ---------------------------------------------------------------------------------
def test_diff_exits_0_when_nothing_would_change(tree):
    result = run_cli("diff", tree, "--ignore", "TFM3")
    assert result.returncode == 0
    assert result.stdout == b""


def test_diff_shows_a_unified_diff_and_writes_nothing(tree):
    before = (tree / "model.py").read_bytes()
    result = run_cli("diff", tree, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert result.returncode == 1
    out = result.stdout.decode()
    assert f"--- a/{tree / 'model.py'}" in out and f"+++ b/{tree / 'model.py'}" in out
    assert "-    return tf.layers.batch_normalization(" in out
    assert "+    return tf.compat.v1.layers.batch_normalization(" in out
    assert (tree / "model.py").read_bytes() == before
    assert b"Scanned 5 files: 2 would change" in result.stderr


def test_diff_color(tree):
    args = ("diff", tree / "model.py", "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert b"\x1b[" in run_cli(*args, "--color", "always").stdout
    assert b"\x1b[" not in run_cli(*args, "--color", "never").stdout
    assert b"\x1b[" not in run_cli(*args).stdout  # auto, and stdout is a pipe


def test_diff_json_embeds_the_diff(tree):
    result = run_cli("diff", tree / "model.py", "--rules-module", TEST_RULES, "--select", "TFMT01",
                     "--format", "json")
    data = json.loads(result.stderr.decode())  # diff reports on stderr, stdout stays a patch
    assert data["files"][0]["changed"] is True
    assert "+    return tf.compat.v1" in data["files"][0]["diff"]


# -- apply --------------------------------------------------------------------------------
def test_apply_in_place_rewrites_atomically_and_keeps_mode_and_links(tree):
    result = run_cli("apply", tree, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert result.returncode == 0, result.stderr
    assert "tf.compat.v1.layers.batch_normalization" in (tree / "model.py").read_text()
    assert stat.S_IMODE((tree / "model.py").stat().st_mode) == 0o640
    assert (tree / "alias.py").is_symlink() and os.readlink(tree / "alias.py") == "model.py"
    assert not list(tree.rglob("*.tf-migrate.tmp"))
    assert b"Scanned 5 files: 2 changed, 0 with findings needing manual work" in result.stdout


def test_apply_is_idempotent(tree):
    run_cli("apply", tree, "--rules-module", TEST_RULES, "--select", "TFMT01")
    snapshot = {p: p.read_bytes() for p in tree.rglob("*.py") if p.is_file()}
    second = run_cli("apply", tree, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert second.returncode == 0
    assert b"0 changed" in second.stdout
    assert {p: p.read_bytes() for p in tree.rglob("*.py") if p.is_file()} == snapshot
    assert run_cli("diff", tree, "--rules-module", TEST_RULES, "--select", "TFMT01").returncode == 0


def test_apply_exits_1_when_sites_are_left_for_manual_migration(tree):
    result = run_cli("apply", tree, "--ignore", "TFM3")
    assert result.returncode == 1
    assert b"model.py:5:12: TFM101" in result.stdout


def test_apply_out_mirrors_a_directory(tree, tmp_path):
    out = tmp_path / "out"
    result = run_cli("apply", tree, "--out", out, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert result.returncode == 0, result.stderr
    assert "tf.compat.v1" in (out / "model.py").read_text()
    assert "tf.compat.v1" not in (tree / "model.py").read_text()  # input untouched
    assert (out / "pkg" / "tf2.py").read_bytes() == (tree / "pkg" / "tf2.py").read_bytes()
    assert (out / "data.csv").read_bytes() == (tree / "data.csv").read_bytes()
    assert stat.S_IMODE((out / "run.py").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "model.py").stat().st_mode) == 0o640
    assert (out / "alias.py").is_symlink() and os.readlink(out / "alias.py") == "model.py"
    assert not (out / ".hidden").exists() and not (out / "build").exists()


def test_apply_out_with_one_file_and_with_several_paths(tree, tmp_path):
    run_cli("apply", tree / "model.py", "--out", tmp_path / "one", "--ignore", "TFM3")
    assert (tmp_path / "one" / "model.py").read_bytes() == (tree / "model.py").read_bytes()
    run_cli("apply", tree / "model.py", tree / "pkg", "--out", tmp_path / "many")
    assert (tmp_path / "many" / "model.py").is_file()
    assert (tmp_path / "many" / "pkg" / "ops.py").is_file()


def test_stdin_to_stdout(tmp_path):
    result = run_cli("apply", "-", "--rules-module", TEST_RULES, "--select", "TFMT01",
                     input=BN_SOURCE.encode())
    assert result.returncode == 0
    assert result.stdout == BN_SOURCE.replace("tf.layers", "tf.compat.v1.layers").encode()
    unchanged = b"print('no tensorflow here')\r\n"
    assert run_cli("apply", "-", input=unchanged).stdout == unchanged
    assert b"\n-:5:12: TFM101 " in run_cli("check", "-", input=BN_SOURCE.encode()).stdout


def test_jobs_2_gives_the_same_output_as_jobs_1(tmp_path):
    for i in range(12):
        (tmp_path / f"m{i:02d}.py").write_text(BN_SOURCE + f"\n# file {i}\n")
    (tmp_path / "broken.py").write_text("import tensorflow as tf\ndef f(:\n    tf.layers.batch_normalization\n")
    one = run_cli("check", tmp_path, "-j", "1")
    two = run_cli("check", tmp_path, "-j", "2")
    assert one.stdout == two.stdout and one.stderr == two.stderr and one.returncode == two.returncode == 2
    a, b = tmp_path.parent / "a", tmp_path.parent / "b"
    run_cli("apply", tmp_path, "--out", a, "-j", "1", "--rules-module", TEST_RULES)
    run_cli("apply", tmp_path, "--out", b, "-j", "2", "--rules-module", TEST_RULES)
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}


def test_rewrite_that_does_not_parse_is_discarded_and_reported(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import tensorflow as tf\nBROKEN_REWRITE_MARKER = 1\n")
    (tmp_path / "ok.py").write_text(BN_SOURCE)
    result = run_cli("apply", tmp_path, "--rules-module", TEST_RULES, "--select", "TFMT")
    assert result.returncode == 2
    assert b"m.py: error: internal error: the rewrite produced code that does not parse" in result.stderr
    assert path.read_text() == "import tensorflow as tf\nBROKEN_REWRITE_MARKER = 1\n"
    assert "tf.compat.v1" in (tmp_path / "ok.py").read_text()  # the run went on


def test_a_crashing_rule_is_an_internal_error_for_that_file_only(tmp_path):
    (tmp_path / "crash.py").write_text("CRASH_REWRITE_MARKER = 1\n")
    (tmp_path / "ok.py").write_text(BN_SOURCE)
    result = run_cli("apply", tmp_path, "--rules-module", TEST_RULES)
    assert result.returncode == 2
    assert b"crash.py: error: internal error (RuntimeError: deliberate crash" in result.stderr
    assert (tmp_path / "crash.py").read_text() == "CRASH_REWRITE_MARKER = 1\n"


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith(b"tf-migrate, version ")
    assert run_cli("--help").returncode == 0


def test_console_script_is_installed():
    exe = shutil.which("tf-migrate", path=str(Path(os.sys.executable).parent))
    if exe is None:
        pytest.skip("tf-migrate console script not installed in this environment (pip install -e .)")
    import subprocess
    assert subprocess.run([exe, "rules"], capture_output=True).returncode == 0


def test_untouched_fixtures_stay_byte_identical(tmp_path):
    work = tmp_path / "untouched"
    shutil.copytree(FIXTURES / "untouched", work)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    result = run_cli("apply", work, "--rules-module", TEST_RULES)
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


# -- rewrite options (issue 6): plumbed into pipeline.Options ------------------------------
def test_rewrite_flags_reach_the_rewrites(tmp_path):
    program = (FIXTURES / "programs" / "cnn_bn.py").read_text()
    (tmp_path / "prog.py").write_text(program)
    forgot = program.replace("    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)\n"
                             "    with tf.control_dependencies(update_ops):\n"
                             "        train_op = ", "    train_op = ")
    (tmp_path / "forgot.py").write_text(forgot)
    prog, bug = tmp_path / "prog.py", tmp_path / "forgot.py"
    assert "TF1FusedCompatBatchNormalization" not in invoke("diff", prog).output
    assert "TF1FusedCompatBatchNormalization" in invoke("diff", prog, "--fused-bn", "exact").output
    safe = invoke("diff", prog, "--safe-only").output
    assert "left unchanged: a bounded rewrite, skipped by --safe-only" in safe
    def added(result, text):
        return [line for line in result.output.splitlines() if line.startswith("+") and text in line]
    assert not added(invoke("diff", bug), "momentum=1.0")
    assert added(invoke("diff", bug, "--preserve-bugs"), "momentum=1.0")
    result = invoke("apply", prog, "--safe-only", "--fused-bn", "exact", "--preserve-bugs")
    assert result.exit_code == 0 and "class Classifier(tf.keras.Model)" in prog.read_text()
    assert CliRunner().invoke(cli, ["check", str(prog), "--safe-only"]).exit_code == 2  # apply/diff only
