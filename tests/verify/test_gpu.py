"""--device gpu|all: where no GPU exists verify runs on the CPU, says so and keeps its exit
code; where one exists both sides run on it and the GPU run is compared like the CPU one.

The GPU test skips with its reason on machines without a GPU (most CI machines)."""
import pytest

from migrate.verify.command import gpu_present
from verify_helpers import fixture, run_cli

pytestmark = pytest.mark.tf

HAS_GPU = gpu_present()


@pytest.mark.skipif(HAS_GPU, reason="a GPU exists here: the no-GPU fallback is checked on "
                                    "machines without one")
def test_device_gpu_without_a_gpu_runs_on_cpu_says_so_and_keeps_the_exit_code(tmp_path):
    report = str(tmp_path / "r.json")
    run = run_cli([fixture("cnn_update_ops", "old.py"),
                   fixture("cnn_update_ops", "bugs", "adam_default_epsilon.py"),
                   "--device", "gpu", "--steps", "6", "--report", report], report_path=report)
    assert run.code == 1, run  # the seeded bug is still caught: same exit code as on CPU
    assert "--device gpu: no GPU exists on this machine; ran on CPU only" in run.stdout, run
    (m,) = run.report["models"]
    assert m["device"] == "cpu" and m["status"] == "mismatch"


@pytest.mark.skipif(not HAS_GPU, reason="no GPU on this machine: verify's GPU path "
                                        "(--device gpu|all) runs only where one exists")
def test_device_all_verifies_on_cpu_and_gpu(tmp_path):
    report = str(tmp_path / "r.json")
    run = run_cli([fixture("cnn_update_ops", "old.py"), fixture("cnn_update_ops", "new.py"),
                   "--device", "all", "--report", report], report_path=report)
    assert run.code == 0, run
    assert "no GPU exists" not in run.stdout
    by_device = {m["device"]: m for m in run.report["models"]}
    assert set(by_device) == {"cpu", "gpu"}, run.report["models"]
    assert by_device["gpu"]["model"] == "cnn_update_ops[gpu]"
    for m in by_device.values():
        assert m["status"] in ("pass", "known-divergence"), m
