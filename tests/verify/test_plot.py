"""`verify --plot FILE.png`: loss curves and per-tensor error bars in a real PNG; without
matplotlib the run still reports and says the plot was skipped."""
import os
import subprocess
import sys

import pytest

from verify_helpers import ROOT, fixture, run_module

pytestmark = pytest.mark.tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png_with_both_panels(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (pip install '.[verify]')")
    png, report = str(tmp_path / "verify.png"), str(tmp_path / "r.json")
    run = run_module([fixture("cnn_update_ops", "old.py"),
                      fixture("cnn_update_ops", "bugs", "adam_default_epsilon.py"),
                      "--steps", "6", "--plot", png, "--report", report], report_path=report)
    assert run.code == 1, run  # the seeded bug: plotted, and still exit 1
    with open(png, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 300 and len(data) > 20000
    (model,) = run.report["models"]
    (curve,) = model["loss_curves"]  # what the left panel draws
    assert len(curve["old"]) == len(curve["new"]) == 6
    assert curve["old"] != curve["new"]


def test_without_matplotlib_the_plot_is_skipped_with_a_message(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from migrate.verify.plot import write_plot\n"
            "print(write_plot(%r, [{'model': 'm', 'status': 'pass', 'tensors': []}]))"
            % str(tmp_path / "x.png"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--plot skipped: matplotlib is not installed" in out.stdout
    assert not os.path.exists(tmp_path / "x.png")
