"""`[tool.tf-migrate]` in pyproject.toml: discovery, every key, CLI precedence, errors (exit 2)."""

import json

import pytest
from click.testing import CliRunner

from migrate import config
from migrate.cli import cli
from tests.conftest import FIXTURES, TEST_RULES, run_cli

BN_SOURCE = (
    "import tensorflow as tf\n\n\n"
    "def model(x, is_training):\n"
    "    return tf.layers.batch_normalization(x, training=is_training)\n"
)
PROGRAM = (FIXTURES / "programs" / "cnn_bn.py").read_text()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def codes(result):
    return json.loads(result.output)["summary"]["findings_by_code"]


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "pkg" / "model.py").write_text(BN_SOURCE)
    (root / "tests" / "test_model.py").write_text(BN_SOURCE)
    (root / "third_party").mkdir()
    (root / "third_party" / "vendored.py").write_text(BN_SOURCE)
    return root


def write_config(root, body, name="pyproject.toml"):
    (root / name).write_text("[project]\nname = 'x'\n\n" + body)


def test_select_ignore_exclude_and_per_file_ignores_from_pyproject(proj):
    write_config(proj, """
[tool.tf-migrate]
ignore = ["TFM3"]
exclude = ["third_party"]

[tool.tf-migrate.per-file-ignores]
"tests/*" = ["TFM101"]
""")
    result = invoke("check", proj, "--format", "json")
    files = {f["path"]: f["findings"] for f in json.loads(result.output)["files"]}
    assert [f["code"] for f in files[str(proj / "src" / "pkg" / "model.py")]] == ["TFM101"]
    assert files[str(proj / "tests" / "test_model.py")] == []  # per-file-ignores
    assert str(proj / "third_party" / "vendored.py") not in files  # exclude
    # As in ruff, a path named on the command line is checked even when it matches `exclude`.
    named = invoke("check", proj / "third_party" / "vendored.py", "--format", "json")
    assert codes(named) == {"TFM101": 1}
    # found by walking up from a file deep in the tree, too
    assert codes(invoke("check", proj / "src" / "pkg" / "model.py", "--format", "json")) == {"TFM101": 1}


def test_cli_flags_override_the_file(proj):
    write_config(proj, '[tool.tf-migrate]\nselect = ["TFM3"]\nexclude = ["pkg"]\n')
    assert codes(invoke("check", proj / "src", "--format", "json")) == {}  # pkg excluded
    assert codes(invoke("check", proj / "src", "--exclude", "nothing", "--format", "json")) == {"TFM300": 1}
    assert codes(invoke("check", proj / "src", "--exclude", "x", "--select", "TFM101",
                        "--format", "json")) == {"TFM101": 1}


def test_isolated_and_explicit_config(proj, tmp_path):
    write_config(proj, '[tool.tf-migrate]\nselect = ["TFM101"]\n')
    assert codes(invoke("check", proj / "src", "--format", "json")) == {"TFM101": 1}
    assert codes(invoke("check", proj / "src", "--isolated", "--format", "json")) == {"TFM101": 1, "TFM300": 1}
    other = tmp_path / "elsewhere.toml"
    other.write_text('[tool.tf-migrate]\nselect = ["TFM300"]\n')
    assert codes(invoke("check", proj / "src", "--config", other, "--format", "json")) == {"TFM300": 1}


def test_a_pyproject_without_the_table_is_passed_over(proj):
    write_config(proj, '[tool.tf-migrate]\nselect = ["TFM300"]\n')
    write_config(proj / "src", "[tool.black]\nline-length = 100\n")
    assert config.find([str(proj / "src" / "pkg")]) == proj / "pyproject.toml"
    assert codes(invoke("check", proj / "src", "--format", "json")) == {"TFM300": 1}


@pytest.mark.parametrize("body, message", [
    ('[tool.tf-migrate]\nselekt = ["TFM1"]\n', "unknown key `selekt`"),
    ('[tool.tf-migrate]\nfused_bn = "exact"\n', "did you mean `fused-bn`?"),
    ('[tool.tf-migrate]\njobs = 0\n', "`jobs` must be a positive integer"),
    ('[tool.tf-migrate]\nfused-bn = "fast"\n', "`fused-bn` must be one of 'keras', 'exact'"),
    ('[tool.tf-migrate.verify]\nsteps = 5\nwarmup = 1\n', "[tool.tf-migrate.verify]: unknown key `warmup`"),
    ('[tool.tf-migrate.per-file-ignores]\n"a.py" = ["NOPE1"]\n', "unknown rule code"),
    ('[tool.tf-migrate]\nselect = ["NOPE1"]\n', "unknown rule code"),
    ('[tool.tf-migrate\n', "invalid TOML"),
])
def test_bad_configuration_is_a_clear_error_with_exit_2(proj, body, message):
    write_config(proj, body)
    result = run_cli("check", proj / "src")
    assert result.returncode == 2, result
    assert message in result.stderr.decode()
    assert result.stdout == b""


def test_jobs_and_fused_bn_from_the_file(proj, tmp_path):
    (proj / "train.py").write_text(PROGRAM)
    write_config(proj, '[tool.tf-migrate]\njobs = 2\nfused-bn = "exact"\n')
    exact = run_cli("diff", proj / "train.py")
    keras = run_cli("diff", proj / "train.py", "--fused-bn", "keras")
    assert exact.returncode == keras.returncode == 1
    assert exact.stdout != keras.stdout  # the file's fused-bn reached the rewrite; the flag overrides
    assert exact.stdout == run_cli("diff", proj / "train.py", "--isolated", "--fused-bn", "exact").stdout


def test_verify_defaults_are_exposed(proj):
    write_config(proj, """
[tool.tf-migrate.verify]
steps = 5
batch-size = 4
rtol = 1e-4
atol = 0
device = "gpu"
""")
    defaults = config.verify_defaults([str(proj / "src")])
    assert defaults == {"steps": 5, "batch_size": 4, "rtol": 1e-4, "atol": 0.0, "device": "gpu"}
    assert config.verify_defaults([str(proj / "src")], isolated=True) == {}
    assert config.verify_defaults([str(proj.parent)]) == {}  # nothing above the project


def test_per_file_ignores_also_stop_rewrites(proj):
    write_config(proj, '[tool.tf-migrate.per-file-ignores]\n"model.py" = ["TFMT01"]\n')
    result = invoke("diff", proj / "src", proj / "tests", "--rules-module", TEST_RULES,
                    "--select", "TFMT01", "-j", "1")
    assert "test_model.py" in result.output and "pkg/model.py" not in result.output


# -- `exclude` anchored like ruff's ---------------------------------------------------------------
def checked(result):
    """The files a JSON report lists, relative to nothing (as given)."""
    return sorted(f["path"] for f in json.loads(result.stdout)["files"])


def test_config_exclude_with_a_slash_is_relative_to_the_pyproject(proj, tmp_path):
    (proj / "src" / "pkg" / "gen").mkdir()
    (proj / "src" / "pkg" / "gen" / "ops.py").write_text(BN_SOURCE)
    write_config(proj, '[tool.tf-migrate]\nexclude = ["src/pkg/gen", "tests/*.py"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Walking a subdirectory, from a working directory outside the project: still anchored.
    files = checked(run_cli("check", proj / "src", proj / "tests", "--format", "json", cwd=elsewhere))
    assert files == [str(proj / "src" / "pkg" / "model.py")]
    # From the project root, with relative paths, the same.
    files = checked(run_cli("check", "src", "tests", "--format", "json", cwd=proj))
    assert files == ["src/pkg/model.py"]


def test_config_exclude_is_not_relative_to_the_walked_directory(proj):
    # `pkg/*.py` names <project>/pkg, which does not exist: src/pkg/model.py is still checked
    # (before anchoring it was excluded when `src` was the directory walked).
    write_config(proj, '[tool.tf-migrate]\nexclude = ["pkg/*.py"]\n')
    files = checked(run_cli("check", "src", "--format", "json", cwd=proj))
    assert files == ["src/pkg/model.py"]
    # A pattern without a slash matches that name at any depth, as in ruff.
    write_config(proj, '[tool.tf-migrate]\nexclude = ["pkg", "test_*.py"]\n')
    assert checked(run_cli("check", ".", "--format", "json", cwd=proj)) == ["third_party/vendored.py"]


def test_a_nested_pyproject_anchors_its_own_exclude(proj):
    write_config(proj / "src", '[tool.tf-migrate]\nexclude = ["pkg/model.py"]\n')
    assert checked(run_cli("check", "src", "--format", "json", cwd=proj)) == []
    write_config(proj / "src", '[tool.tf-migrate]\nexclude = ["src/pkg/model.py"]\n')  # not under src/src
    assert checked(run_cli("check", "src", "--format", "json", cwd=proj)) == ["src/pkg/model.py"]


def test_command_line_exclude_is_relative_to_the_working_directory(proj):
    # As ruff: `--exclude` with a slash is anchored to the working directory ...
    files = checked(run_cli("check", "src", "tests", "--exclude", "src/pkg/*.py", "--format", "json",
                            cwd=proj))
    assert files == ["tests/test_model.py"]
    # ... and, as before, also matches relative to each directory walked.
    files = checked(run_cli("check", "src", "--exclude", "pkg/*.py", "--format", "json", cwd=proj))
    assert files == []
    # It replaces the file's `exclude` (a flag overrides the file).
    write_config(proj, '[tool.tf-migrate]\nexclude = ["src"]\n')
    assert checked(run_cli("check", ".", "--format", "json", cwd=proj)) == \
        ["tests/test_model.py", "third_party/vendored.py"]
    assert len(checked(run_cli("check", ".", "--exclude", "third_party", "--format", "json", cwd=proj))) == 2
