"""Notebooks through the real CLI: one program across cells, magics kept, JSON layout kept."""

import json
import shutil

import nbformat
import pytest
from click.testing import CliRunner

from migrate.cli import cli
from tests.conftest import FIXTURES, TEST_RULES, run_cli

NOTEBOOKS = FIXTURES / "notebooks"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def work(tmp_path):
    shutil.copytree(NOTEBOOKS, tmp_path / "nbs")
    return tmp_path / "nbs"


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_check_reports_cell_positions(work):
    result = invoke("check", work / "train_tf1.ipynb", "-j", "1")
    assert result.exit_code == 1
    assert f"{work / 'train_tf1.ipynb'}:cell_2:3:11: TFM101 " in result.output
    assert f"{work / 'train_tf1.ipynb'}:cell_3:14:18: TFM201 " in result.output
    data = json.loads(invoke("check", work / "train_tf1.ipynb", "--format", "json").output)
    finding = data["files"][0]["findings"][0]
    assert finding["file"] == str(work / "train_tf1.ipynb") and finding["cell"] == 2


def test_directories_are_walked_for_notebooks(work):
    result = invoke("check", work, "-j", "1")
    assert "train_tf1.ipynb:cell_2" in result.output
    assert result.output.splitlines()[-1].startswith("Scanned 2 files:")


def test_diff_is_per_cell_and_writes_nothing(work):
    before = (work / "train_tf1.ipynb").read_bytes()
    result = run_cli("diff", work / "train_tf1.ipynb")
    assert result.returncode == 1
    out = result.stdout.decode()
    assert f"--- a/{work / 'train_tf1.ipynb'}:cell_2\n+++ b/{work / 'train_tf1.ipynb'}:cell_2\n" in out
    assert "+class Classifier(tf.keras.Model):" in out
    assert ":cell_1" not in out and '"outputs"' not in out  # only edited cells, only their source
    assert (work / "train_tf1.ipynb").read_bytes() == before


def test_apply_migrates_across_cells_and_keeps_everything_else(work):
    path = work / "train_tf1.ipynb"
    before_text = path.read_text()
    before = json.loads(before_text)
    result = run_cli("apply", path)
    assert result.returncode == 0, result.stderr
    after_text = path.read_text()
    after = json.loads(after_text)
    nbformat.validate(nbformat.reads(after_text, as_version=nbformat.NO_CONVERT))
    edited = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert edited == [2, 4]  # the model cell and the training cell, nothing else
    for a, b in zip(before["cells"], after["cells"]):
        assert list(a) == list(b)  # key order
        assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert {k: v for k, v in before.items() if k != "cells"} == {k: v for k, v in after.items() if k != "cells"}
    # The model is defined in one cell and trained in another: one program.
    assert "class Classifier(tf.keras.Model):" in source(after["cells"][2])
    assert "classifier = Classifier()" in source(after["cells"][4])
    assert "tf.Session" not in source(after["cells"][4])
    # Magics are kept, the layout is nbformat's own (indent 1, trailing newline).
    assert source(after["cells"][1]).startswith("%matplotlib inline\n!pip list")
    assert source(after["cells"][5]) == "%%time\nmain()"
    assert source(after["cells"][6]).startswith("%%bash\n")
    assert source(after["cells"][7]) == "tf.layers.batch_normalization?"
    assert after_text.startswith('{\n "cells": [\n  {\n') and after_text.endswith("}\n")
    assert after_text == json.dumps(after, indent=1, ensure_ascii=False) + "\n"
    # Applying again changes nothing.
    assert run_cli("apply", path).returncode == 0
    assert path.read_text() == after_text
    assert run_cli("diff", path).returncode == 0


def test_a_notebook_with_nothing_to_change_keeps_its_bytes(work):
    path = work / "clean_tf2.ipynb"
    before = path.read_bytes()
    result = run_cli("apply", path)
    assert result.returncode == 0 and b"0 changed" in result.stdout
    assert path.read_bytes() == before


def _odd_notebook(path):
    """Not nbformat's layout: indent 2, ASCII escapes, string sources, no trailing newline."""
    nb = {"metadata": {"language_info": {"name": "python"}, "zeta": 1, "alpha": "é"},
          "nbformat": 4, "nbformat_minor": 5,
          "cells": [
              {"id": "b", "cell_type": "code", "source": "%load_ext autoreload\nimport tensorflow as tf",
               "metadata": {}, "outputs": [], "execution_count": None},
              {"id": "a", "cell_type": "code", "metadata": {"tags": ["x"]}, "execution_count": 3,
               "outputs": [{"output_type": "stream", "name": "stdout", "text": ["ünïcode\n"]}],
               "source": "def f(x, t):\n    # é\n    return tf.layers.batch_normalization(x, training=t)\n"},
          ]}
    path.write_text(json.dumps(nb, indent=2, ensure_ascii=True))
    return nb


def test_layout_is_kept_when_it_is_not_nbformats(tmp_path):
    path = tmp_path / "odd.ipynb"
    nb = _odd_notebook(path)
    result = run_cli("apply", path, "--rules-module", TEST_RULES, "--select", "TFMT01")
    assert result.returncode == 0, result.stderr
    nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("tf.layers", "tf.compat.v1.layers")
    assert path.read_text() == json.dumps(nb, indent=2, ensure_ascii=True)


def test_suppressions_and_errors_in_cells(tmp_path):
    path = tmp_path / "nb.ipynb"
    nb = _odd_notebook(path)
    nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("training=t)", "training=t)  # tf-migrate: ignore")
    path.write_text(json.dumps(nb, indent=1))
    result = invoke("check", path, "--ignore", "TFM3")
    assert result.exit_code == 0, result.output
    nb["cells"][0]["source"] = "import tensorflow as tf\ndef broken(:\n    tf.layers.batch_normalization(x)"
    path.write_text(json.dumps(nb, indent=1))
    before = path.read_bytes()
    result = run_cli("apply", path)
    assert result.returncode == 2
    assert f"{path}: error: syntax error at cell_1 line 2".encode() in result.stderr
    assert path.read_bytes() == before


def test_invalid_notebook_json_is_an_error_and_is_kept(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_bytes(b'{"cells": [')
    result = run_cli("apply", path)
    assert result.returncode == 2 and b"broken.ipynb: error: not a valid notebook" in result.stderr
    assert path.read_bytes() == b'{"cells": ['


def test_mirror_tree_migrates_notebooks(work, tmp_path):
    out = tmp_path / "out"
    result = run_cli("apply", work, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "class Classifier" in (out / "train_tf1.ipynb").read_text()
    assert (out / "clean_tf2.ipynb").read_bytes() == (work / "clean_tf2.ipynb").read_bytes()
