"""`--format text|json|sarif|github` and `-o FILE` for check, diff and apply, through the real CLI."""

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from migrate.cli import cli
from tests.conftest import FIXTURES, TEST_RULES, run_cli

SCHEMA_FILE = Path(__file__).parent / "sarif-schema-2.1.0.json"  # the official OASIS file, see its SOURCE.txt
SCHEMA = json.loads(SCHEMA_FILE.read_text())
PROGRAM = (FIXTURES / "programs" / "cnn_bn.py").read_text()
BN_SOURCE = (
    "import tensorflow as tf\n\n\n"
    "def model(x, is_training):\n"
    "    return tf.layers.batch_normalization(x, training=is_training)\n"
)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(PROGRAM)  # rewritten by the real model + training-loop rules
    (root / "model.py").write_text(BN_SOURCE)
    (root / "bad.py").write_text("import tensorflow as tf\ndef f(:\n    tf.layers.batch_normalization(x)\n")
    return root


# jsonschema checks "uri"/"uri-reference" formats only with optional packages that are not
# installed; these two checks hold the URIs we write to RFC 3986 without them.
_URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri-reference")
def _is_uri_reference(value):
    return bool(_URI_CHARS.match(value))


@FORMATS.checks("uri")
def _is_uri(value):
    return _is_uri_reference(value) and bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value))


VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=FORMATS)


def test_the_schema_is_the_official_sarif_2_1_0_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["$id"].endswith("/sarif-schema-2.1.0.json")
    assert SCHEMA["properties"]["version"]["enum"] == ["2.1.0"]
    # The whole published file, not a hand-written subset: every SARIF object is defined.
    assert len(SCHEMA["definitions"]) == 52 and "$comment" not in SCHEMA
    assert len(SCHEMA_FILE.read_bytes()) == 112318


def _sarif_validate(data):
    VALIDATOR.validate(data)
    run = data["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    for rule in rules:  # what GitHub code scanning shows for a rule
        assert rule["shortDescription"]["text"] and rule["help"]["text"] and rule["name"]
        assert rule["fullDescription"]["text"]
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    return run


@pytest.mark.parametrize("command", ["check", "diff", "apply"])
def test_sarif_validates_against_the_2_1_0_schema(project, tmp_path, command, monkeypatch):
    monkeypatch.chdir(project)
    out = tmp_path / "report.sarif"
    result = invoke(command, ".", "-j", "1", "--format", "sarif", "-o", out)
    assert result.exit_code == 2  # bad.py
    run = _sarif_validate(json.loads(out.read_text()))
    assert run["tool"]["driver"]["name"] == "tf-migrate"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert "model.py" in uris  # relative to the checkout, as code scanning wants
    assert run["invocations"][0]["executionSuccessful"] is False
    assert "bad.py" in json.dumps(run["invocations"][0]["toolExecutionNotifications"])
    if command == "check":
        assert {"TFM101", "TFM300"} <= {r["ruleId"] for r in run["results"]}
        rule = run["tool"]["driver"]["rules"][[r["id"] for r in run["tool"]["driver"]["rules"]].index("TFM101")]
        assert "## Why" in rule["help"]["markdown"]  # the rule docstring, one source
    else:
        # Applied rewrites that change numbers are notes with their class; exact ones are not listed.
        notes = [r for r in run["results"] if r["level"] == "note"]
        assert notes and all(r["properties"]["rewriteClass"] in ("bounded", "behaviour-change")
                             for r in notes)
        assert all(r["properties"]["safe"] is False for r in notes)


def test_sarif_goes_to_stdout_for_check(project):
    result = run_cli("check", project / "model.py", "--format", "sarif")
    assert result.returncode == 1
    _sarif_validate(json.loads(result.stdout))


def _errors(document):
    return [error.message for error in VALIDATOR.iter_errors(document)]


def test_the_schema_rejects_broken_sarif(project):
    """Our real output validates; the same document broken in one place each time does not."""
    result = invoke("check", project / "model.py", "--format", "sarif")
    good = json.loads(result.output)
    assert _errors(good) == [] and good["runs"][0]["results"]

    def broken(change):
        document = copy.deepcopy(good)
        change(document["runs"][0])
        return _errors(document)

    assert any("'message' is a required property" in e
               for e in broken(lambda run: run["results"][0].pop("message")))
    assert broken(lambda run: run["results"][0].update(level="warn"))  # not none/note/warning/error
    assert broken(lambda run: run["results"][0]["locations"][0]["physicalLocation"]["region"]
                  .update(startLine=0))  # lines count from 1
    assert broken(lambda run: run["tool"]["driver"].pop("name"))
    assert broken(lambda run: run["invocations"][0].pop("executionSuccessful"))
    assert broken(lambda run: run["results"][0].update(ruleIndex="0"))
    assert broken(lambda run: run["results"][0].update(unknownProperty=1))  # additionalProperties
    assert broken(lambda run: run["results"][0]["locations"][0]["physicalLocation"]
                  ["artifactLocation"].update(uri="a file.py"))  # a space is not a URI
    assert broken(lambda run: run["tool"]["driver"]["rules"].append(run["tool"]["driver"]["rules"][0]))


def test_sarif_uris_are_escaped(tmp_path, monkeypatch):
    odd = tmp_path / "sub dir" / "m\u00fcnchen #1.py"
    odd.parent.mkdir()
    odd.write_text(BN_SOURCE)
    monkeypatch.chdir(tmp_path)
    data = json.loads(invoke("check", ".", "--format", "sarif").output)
    run = _sarif_validate(data)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"sub%20dir/m%C3%BCnchen%20%231.py"}
    outside = json.loads(invoke("check", odd, "--format", "sarif").output)  # absolute path given
    assert _errors(outside) == []


def test_github_annotations(project):
    result = invoke("check", project, "-j", "1", "--format", "github")
    lines = result.output.splitlines()
    assert f"::warning file={project / 'model.py'},line=5,col=12,title=TFM101::TF1 batch norm" in result.output
    assert any(line.startswith(f"::error file={project / 'bad.py'},title=tf-migrate::syntax error")
               for line in lines)
    assert all(line.startswith("::") or line.endswith("left unchanged") for line in lines)
    assert not any(line.startswith("Scanned") for line in lines)  # annotations only
    assert result.exit_code == 2


def test_github_escapes_properties_and_data(tmp_path):
    odd = tmp_path / "a,b:c.py"
    odd.write_text(BN_SOURCE)
    result = invoke("check", odd, "--format", "github")
    assert "file=" + str(odd).replace(":", "%3A").replace(",", "%2C") + ",line=5" in result.output


def test_github_diff_keeps_the_patch_on_stdout(project):
    result = run_cli("diff", project / "model.py", "--format", "github", "--rules-module", TEST_RULES,
                     "--select", "TFMT01")
    assert result.returncode == 1
    assert result.stdout.startswith(b"--- a/")
    assert result.stderr == b""  # nothing left to do, no errors: no annotation


def test_json_lists_every_finding_and_rewrite_with_its_safety(project):
    result = invoke("apply", project / "train.py", "-j", "1", "--format", "json")
    data = json.loads(result.output)
    entry = data["files"][0]
    assert entry["changed"] is True
    rewrites = entry["rewrites"]
    assert rewrites and all(r["fixed"] for r in rewrites)
    for finding in entry["findings"]:
        assert {"path", "file", "line", "col", "code", "message", "fixed", "rewrite_class",
                "safe"} <= set(finding)
        if finding["fixed"]:
            assert finding["safe"] is (finding["rewrite_class"] == "exact")
    classes = {r["rewrite_class"] for r in rewrites}
    assert "bounded" in classes  # fused batch norm: the Bessel divergence
    summary = data["summary"]
    assert summary["rewrites"] == len(rewrites)
    assert sum(summary["rewrites_by_class"].values()) == len(rewrites)


def test_json_check_marks_behaviour_changes_unsafe(tmp_path):
    # Forgotten UPDATE_OPS: the migrated program starts updating the moving statistics.
    source = PROGRAM.replace("    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)\n"
                             "    with tf.control_dependencies(update_ops):\n"
                             "        train_op = ", "    if True:\n        train_op = ")
    (tmp_path / "forgot.py").write_text(source)
    data = json.loads(invoke("check", tmp_path / "forgot.py", "--format", "json").output)
    findings = data["files"][0]["findings"]
    forgotten = [f for f in findings if f["rewrite_class"] == "behaviour-change"]
    assert forgotten and all(f["safe"] is False for f in forgotten)


def test_text_names_rewrites_that_change_numbers(project):
    result = invoke("diff", project / "train.py", "-j", "1")
    assert "TFM300 [rewritten, bounded]" in result.output
    verbose = invoke("diff", project / "train.py", "-j", "1", "--verbose")
    assert "[rewritten, exact]" in verbose.output
    assert f"{project / 'train.py'}: would change" in verbose.output


def test_verbose_lists_every_file(project):
    result = run_cli("check", project, "-j", "1", "--verbose")
    err = result.stderr.decode()
    assert f"{project / 'model.py'}: 2 findings" in err
    assert f"{project / 'bad.py'}: error" in err
    assert run_cli("check", project, "-q", "-v").returncode == 2  # usage error


def test_quiet_drops_the_summary(project):
    result = invoke("check", project / "model.py", "-q")
    assert "Scanned" not in result.output and "TFM101" in result.output


def test_output_file_leaves_the_terminal_quiet(project, tmp_path):
    out = tmp_path / "r.json"
    result = invoke("check", project / "model.py", "--format", "json", "-o", out)
    assert result.output == "" and result.exit_code == 1
    assert json.loads(out.read_text())["summary"]["findings"] == 2


def test_no_color_when_not_a_tty_or_no_color(project):
    args = ("check", project / "model.py")
    assert b"\x1b[" not in run_cli(*args).stdout
    assert b"\x1b[" in run_cli(*args, "--color", "always").stdout
    env_result = CliRunner(env={"NO_COLOR": "1"}).invoke(cli, [*map(str, args), "--color", "auto"])
    assert "\x1b[" not in env_result.output
