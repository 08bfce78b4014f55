"""`# tf-migrate: ignore[...]`, bare `ignore`, `ignore-file` and TFM901, through the real CLI."""

import json

from click.testing import CliRunner

from migrate.cli import cli
from tests.conftest import TEST_RULES, run_cli

HEAD = "import tensorflow as tf\n\n\ndef model(x, t):\n"
BN = "tf.layers.batch_normalization(x, training=t)"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def findings(path, *extra):
    data = json.loads(invoke("check", path, "--format", "json", "--ignore", "TFM3", *extra).output)
    return [(f["line"], f["code"], f["message"]) for f in data["files"][0]["findings"]]


def test_ignore_one_code_several_codes_and_bare(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD
                    + f"    a = {BN}  # tf-migrate: ignore[TFM101]\n"         # line 5
                    + f"    b = {BN}  # tf-migrate: ignore[TFM101, TFM204]\n"  # line 6
                    + f"    c = {BN}  # tf-migrate: ignore\n"                  # line 7
                    + f"    d = {BN}  # tf-migrate: ignore[tfm102]\n"          # line 8
                    + f"    return {BN}\n")                                      # line 9
    got = findings(path)
    assert [(line, code) for line, code, _ in got] == [
        (6, "TFM901"), (8, "TFM101"), (8, "TFM901"), (9, "TFM101")]
    assert "unused suppression of TFM204 (no TFM204 finding on this line)" in got[0][2]
    assert "unused suppression of TFM102" in got[2][2]


def test_bare_ignore_that_hides_nothing_and_unknown_codes(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD + "    y = 1  # tf-migrate: ignore\n"
                    + "    z = 2  # tf-migrate: ignore[XYZ9]\n" + f"    return {BN}\n")
    got = findings(path)
    assert (5, "TFM901") in [(l, c) for l, c, _ in got]
    assert any(c == "TFM901" and "not a tf-migrate rule code" in m for _, c, m in got)
    # A disabled rule's code is reported as such (ruff's "non-enabled"), TFM901 can be turned off.
    assert not [c for _, c, _ in findings(path, "--ignore", "TFM901") if c == "TFM901"]
    assert not [c for _, c, _ in findings(path, "--select", "TFM1") if c == "TFM901"]


def test_disabled_rule_code(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD + f"    return {BN}  # tf-migrate: ignore[TFM101]\n")
    got = findings(path, "--ignore", "TFM101")
    assert [(c, "rule not enabled in this run" in m) for _, c, m in got] == [("TFM901", True)]


def test_a_suppression_in_a_string_is_not_a_suppression(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD + f"    s = '# tf-migrate: ignore'; return {BN}\n")
    assert [c for _, c, _ in findings(path)] == ["TFM101"]


def test_ignore_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("# tf-migrate: ignore-file\n" + HEAD + f"    return {BN}\n")
    assert findings(path) == []
    result = invoke("apply", path, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert result.exit_code == 0 and "tf.compat.v1" not in path.read_text()  # not rewritten either


def test_ignore_file_with_codes_turns_those_rules_off_for_the_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("# tf-migrate: ignore-file[TFMT01]\n" + HEAD + f"    return {BN}\n")
    result = invoke("diff", path, "--rules-module", TEST_RULES, "--select", "TFMT01,TFM101")
    assert result.exit_code == 0 and "TFM101" in result.output and "+++" not in result.output


def test_suppressed_findings_let_apply_exit_0(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD + f"    return {BN}  # tf-migrate: ignore[TFM101]\n")
    assert run_cli("apply", path, "--ignore", "TFM3").returncode == 0
    path.write_text(HEAD + f"    return {BN}\n")
    assert run_cli("apply", path, "--ignore", "TFM3").returncode == 1


def test_jobs_1_and_jobs_2_agree(tmp_path):
    for i in range(8):
        (tmp_path / f"m{i}.py").write_text(
            HEAD + f"    a = {BN}  # tf-migrate: ignore[TFM101]\n"
            + f"    b = 1  # tf-migrate: ignore[TFM10{i % 3}]\n" + f"    return {BN}\n")
    (tmp_path / "skip.py").write_text("# tf-migrate: ignore-file\n" + HEAD + f"    return {BN}\n")
    one = run_cli("check", tmp_path, "-j", "1")
    two = run_cli("check", tmp_path, "-j", "2")
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout and one.stderr == two.stderr
    assert one.stdout.count(b"TFM901") == 8 and b"skip.py" not in one.stdout


def test_stdin_honours_suppressions():
    source = HEAD + f"    return {BN}  # tf-migrate: ignore\n"
    result = run_cli("check", "-", "--ignore", "TFM3", input=source.encode())
    assert result.returncode == 0, result.stdout
