"""User code that hangs, exits, dies or prints becomes a clean per-model result.

One run, five models: the new side hangs, calls sys.exit, kills its process, prints to
stdout (must still verify); the old side hangs."""
import os

import pytest

from verify_helpers import fixture, make_tree, run_cli

pytestmark = pytest.mark.tf

TIMEOUT = "8"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("isolation")
    old_ok, new_ok = fixture("cnn_update_ops", "old.py"), fixture("cnn_update_ops", "new.py")
    cases = {
        "new_hangs": (old_ok, fixture("isolation", "new_hangs.py")),
        "new_exits": (old_ok, fixture("isolation", "new_exits.py")),
        "new_dies": (old_ok, fixture("isolation", "new_dies.py")),
        "new_prints": (old_ok, fixture("isolation", "new_prints.py")),
        "old_hangs": (fixture("isolation", "old_hangs.py"), new_ok),
    }
    old, new = make_tree(str(base), cases)
    report = os.path.join(str(base), "report.json")
    return run_cli([old, new, "--timeout", TIMEOUT, "--steps", "5", "--report", report],
                   report_path=report)


def test_exit_3_when_models_could_not_be_verified(run):
    assert run.code == 3, run


def test_hangs_time_out_per_model(run):
    for name, side in (("new_hangs", "new"), ("old_hangs", "old")):
        m = run.models[name]
        assert m["status"] == "error"
        assert "%s side timed out after %s s" % (side, TIMEOUT) in m["reason"]
        assert "[verify] %s: ERROR could not verify" % name in run.stdout


def test_sys_exit_is_a_clean_error(run):
    m = run.models["new_exits"]
    assert m["status"] == "error" and "sys.exit(3)" in m["reason"]
    assert "Traceback" not in m["reason"]


def test_user_prints_never_reach_the_report(run):
    assert run.models["new_prints"]["status"] in ("pass", "known-divergence")
    assert "NOISE-FROM-USER-CODE" not in run.stdout


def test_a_killed_process_is_an_error_for_that_model_only(run):
    m = run.models["new_dies"]
    assert m["status"] == "error"
    assert "process died while running this model (exit code 7)" in m["reason"]
    # the models after it (alphabetically: new_exits, new_hangs, new_prints) still ran
    assert run.models["new_prints"]["status"] in ("pass", "known-divergence")
