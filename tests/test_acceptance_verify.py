"""The default migrations of the acceptance programs verify against the TF1 programs (exit 0),
and a migrated file whose Adam epsilon was changed to Keras's 1e-7 fails (exit 1)."""

import json

import pytest

from tests.conftest import ACCEPTANCE, run_cli

pytestmark = pytest.mark.tf

# Programs verify cannot take yet from the default migration, and why (see the issue notes).
NOT_YET = {
}
EXPECTED_DIVERGENCES = {
    "forgot_update_ops": {"forgotten-update-ops"},
    "gan_two_optimizers": {"scoped-update-ops"},
    # the tf.keras BN whose updates never ran in the TF1 graph; its learning rate is taken
    # from what the program fed, its counter variable from what it passed the model function
    "seed_antipattern": {"forgotten-update-ops"},
}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    if not ACCEPTANCE.is_dir():
        pytest.skip(f"../shared acceptance programs not found at {ACCEPTANCE}")
    pytest.importorskip("tf_keras", reason="verify's old side needs tf-keras (pip install '.[verify]')")
    out = tmp_path_factory.mktemp("migrated")
    old = tmp_path_factory.mktemp("old")
    for program in ACCEPTANCE.glob("*.py"):
        if program.stem not in NOT_YET:
            (old / program.name).write_bytes(program.read_bytes())
    result = run_cli("apply", old, "--out", out)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return old, out


def test_default_migrations_verify(migrated, tmp_path):
    old, new = migrated
    report = tmp_path / "report.json"
    result = run_cli("verify", old, new, "--report", report, timeout=1200)
    assert result.returncode == 0, result.stdout.decode()[-4000:] + result.stderr.decode()[-2000:]
    data = json.loads(report.read_text())
    models = {m["model"]: m for m in data["models"]}
    assert set(models) == {p.stem for p in old.glob("*.py")}
    for name, model in models.items():
        assert model["status"] in ("pass", "known-divergence"), (name, model["status"])
        expected = EXPECTED_DIVERGENCES.get(name)
        if expected:
            assert expected <= set(model["divergences"]), (name, model["divergences"])


def test_a_changed_adam_epsilon_in_the_migration_is_caught(migrated, tmp_path):
    old, new = migrated
    text = (new / "cnn_update_ops.py").read_text()
    assert "epsilon=1e-08" in text
    broken = tmp_path / "cnn_update_ops.py"
    broken.write_text(text.replace("epsilon=1e-08", "epsilon=1e-07"))
    result = run_cli("verify", old / "cnn_update_ops.py", broken, timeout=600)
    assert result.returncode == 1, result.stdout.decode()[-3000:]
    assert b"FAIL" in result.stdout
