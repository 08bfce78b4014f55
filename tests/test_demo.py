"""`make demo` (python -m migrate.demo) runs end to end and shows both RESULT lines."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.tf


def test_demo_migrates_the_bundled_program_and_shows_old_and_new_results():
    pytest.importorskip("tf_keras", reason="the old program needs tf-keras (pip install '.[verify]')")
    result = subprocess.run([sys.executable, "-m", "migrate.demo"], capture_output=True, text=True,
                            cwd=REPO, env=cli_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "class Classifier(tf.keras.Model)" in out  # the diff
    assert "Scanned 1 file: 0 findings in 0 files, 0 errors." in out  # nothing left to migrate
    assert out.count("RESULT first_loss=") == 2, out[-2000:]
    assert "cnn_bn: PASS" in out  # verify: the migration computes what the TF1 program did
