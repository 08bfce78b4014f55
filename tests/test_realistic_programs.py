"""Realistic TF1 programs (not the acceptance floor): migrated by `apply`, then proven by
`verify` against the TF1 program. One verify run for the module."""

import json

import pytest

from tests.conftest import FIXTURES, run_cli

pytestmark = pytest.mark.tf

# fixtures/rewrite/<name>.before.py programs with a main() verify can drive.
PROGRAMS = ["unet_skips"]


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    pytest.importorskip("tf_keras", reason="verify's old side needs tf-keras (pip install '.[verify]')")
    old = tmp_path_factory.mktemp("old")
    new = tmp_path_factory.mktemp("new")
    for name in PROGRAMS:
        (old / f"{name}.py").write_bytes((FIXTURES / "rewrite" / f"{name}.before.py").read_bytes())
    applied = run_cli("apply", old, "--out", new)
    assert applied.returncode == 0, applied.stderr.decode()
    result = run_cli("verify", old, new, "--format", "json", timeout=900)
    return result.returncode, json.loads(result.stdout)


def test_every_program_verifies(verified):
    code, report = verified
    statuses = {m["model"]: m["status"] for m in report["models"]}
    assert code == 0, statuses
    assert set(statuses) == set(PROGRAMS)
    assert all(s in ("pass", "known-divergence") for s in statuses.values()), statuses


def test_unet_divergences_are_the_named_ones(verified):
    _, report = verified
    (unet,) = [m for m in report["models"] if m["model"] == "unet_skips"]
    assert set(unet.get("divergences", [])) <= {"fused-bn-bessel", "null-gradient-adam"}
