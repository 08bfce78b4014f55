"""`# tf-migrate: ignore[...]`, bare `ignore`, `ignore-file` and TFM901, through the real CLI."""

import ast
import json

from click.testing import CliRunner

from migrate.cli import cli
from tests.conftest import FIXTURES, TEST_RULES, run_cli

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


# -- a line suppression inside a function keeps the whole-function rewrite off it ----------------
INNER = FIXTURES / "suppressions" / "inner_line.before.py"
HELD = ("tower", "encoder", "head", "train_tower")


def _functions(text):
    tree = ast.parse(text)
    return {node.name: ast.get_source_segment(text, node) for node in tree.body
            if isinstance(node, ast.FunctionDef)}


def _json(*args):
    result = invoke(*args, "--format", "json")
    return json.loads(result.output)["files"][0]


def test_inner_line_suppression_keeps_the_function_and_its_neighbours_are_rewritten(tmp_path):
    path = tmp_path / "inner_line.py"
    path.write_bytes(INNER.read_bytes())
    entry = _json("apply", path)
    text = path.read_text()
    assert text.encode() == (FIXTURES / "suppressions" / "inner_line.after.py").read_bytes()
    before, after = _functions(INNER.read_text()), _functions(text)
    for name in HELD:
        assert after[name] == before[name], f"{name} changed"  # byte-identical, comments included
    assert "classifier" not in after and "class Classifier(tf.keras.Model):" in text
    assert "tf.GradientTape()" in after["train_step"] and "tf.Session" not in after["main"]
    compile(text, str(path), "exec")
    codes = [(f["line"], f["code"], f["fixed"]) for f in entry["findings"]]
    assert not [c for c in codes if c[1] == "TFM901"]
    assert not [c for c in codes if c[1] == "TFM300" and not c[2]]  # held: no "becomes a class"
    reasons = [f["message"] for f in entry["findings"] if f["code"] == "TFM401"]
    assert reasons == ["`train_tower` left unchanged: it calls `tower`, which a suppression "
                       "comment keeps TF1 code"]
    again = invoke("apply", path)  # idempotent, and the TFM401 marker is no suppression
    assert path.read_text() == text and "TFM901" not in again.output


def test_check_hides_the_held_functions_rewrite_finding(tmp_path):
    entry = _json("check", INNER)
    found = {(f["line"], f["code"]) for f in entry["findings"]}
    lines = INNER.read_text().splitlines()
    def_line = {name: lines.index(next(l for l in lines if l.startswith(f"def {name}("))) + 1
                for name in ("classifier", "tower", "encoder", "head", "main", "train_tower")}
    assert (def_line["classifier"], "TFM300") in found and (def_line["main"], "TFM400") in found
    for name in ("tower", "encoder", "head"):
        assert (def_line[name], "TFM300") not in found
    assert (def_line["train_tower"], "TFM400") in found  # held only by what apply finds out
    assert not [code for _, code in found if code == "TFM901"]
    # The suppressed batch norm is hidden; the unsuppressed one in the held `encoder` is not.
    bn_lines = [n for n, l in enumerate(lines, 1) if "batch_normalization" in l]
    assert [n for n in bn_lines if (n, "TFM101") in found] == [bn_lines[0], bn_lines[2]]


def test_training_site_suppression_keeps_the_program_and_its_model(tmp_path):
    program = (FIXTURES / "programs" / "cnn_bn.py").read_text()
    marked = program.replace("    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)\n",
                             "    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)"
                             "  # tf-migrate: ignore[TFM201]\n")
    assert marked != program
    path = tmp_path / "train.py"
    path.write_text(marked)
    entry = _json("apply", path)
    text = path.read_text()
    assert _functions(text)["main"] == _functions(marked)["main"]
    # All or nothing: the model `main` calls stays a function too, marked and reported.
    assert "class Classifier" not in text and text.count("# tf-migrate: TFM301") == 1
    assert [line for line in text.splitlines() if not line.startswith("# tf-migrate: TFM301")] \
        == marked.splitlines()
    codes = {f["code"] for f in entry["findings"]}
    assert "TFM901" not in codes and "TFM301" in codes and "TFM400" not in codes


def test_a_stale_site_code_holds_nothing(tmp_path):
    # No TFM102 finding on the conv line: the suppression is unused and the function converted.
    source = (HEAD + "    h = tf.layers.conv2d(x, 4, 3, name='c')  # tf-migrate: ignore[TFM102]\n"
              + f"    return {BN}\n")
    path = tmp_path / "m.py"
    path.write_text(source)
    entry = _json("apply", path)
    assert "class Model(tf.keras.Model)" in path.read_text()
    assert [f["code"] for f in entry["findings"] if f["code"] == "TFM901"] == ["TFM901"]


def test_a_suppression_in_a_plain_function_still_reports_unused(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(HEAD + f"    return {BN}\n\n\ndef helper(a):\n    return a + 1  # tf-migrate: ignore\n")
    got = findings(path)
    assert [(line, code) for line, code, _ in got] == [(5, "TFM101"), (9, "TFM901")]


def test_site_codes_are_the_rewrites_own():
    from migrate.rules import model_classes, train_steps
    from migrate import suppressions

    assert suppressions.MODEL_SITE_CODES == model_classes._RESOLVED_CODES
    assert suppressions.TRAINING_SITE_CODES == train_steps._RESOLVED_CODES
