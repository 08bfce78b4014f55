"""Start-up cost of `check`: it never imports libcst (nor numpy, nor multiprocessing at -j 1).

Findings run on `ast`; importing libcst alone costs ~0.15 s, which on a tree like `tf_slim` is
what separated `check -j 1` from 10x faster than `tf_upgrade_v2` (issue 7,
benchmarks/README.md). These tests run the real CLI in a subprocess and read the names in
`sys.modules` when it exits, lazy imports made while files were processed included, so a rule
module that imports libcst at module level (or in `check`) fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrate import rules as rules_registry
from migrate.rules.base import RewriteRule

ROOT = Path(__file__).resolve().parent.parent
# Golden before/after pairs: every rule of the registry has sites here (model functions,
# Session loops, estimators, batch norms, UPDATE_OPS), so every `check` runs.
FIXTURES = ROOT / "fixtures" / "rewrite"
# The real CLI, plus a hook that writes the names in sys.modules when the process exits (after
# click's sys.exit): what was imported at start-up and while files were processed.
_HOOK = """
import atexit, sys
def _dump(path=sys.argv.pop(1)):
    with open(path, "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))
atexit.register(_dump)
from migrate.cli import main
sys.argv[0] = "tf-migrate"
main()
"""


def _run_cli(tmp_path, *args: str):
    modules_file = tmp_path / "modules.txt"
    proc = subprocess.run([sys.executable, "-c", _HOOK, str(modules_file), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    imported = set(modules_file.read_text().split("\n"))
    return proc, imported, proc.stderr


def _top_level(modules):
    return {name.split(".")[0] for name in modules}


@pytest.fixture(scope="module")
def check_run(tmp_path_factory):
    return _run_cli(tmp_path_factory.mktemp("check"), "check", "--isolated", "-j", "1", "--format", "json", str(FIXTURES))


def test_check_never_imports_libcst(check_run):
    proc, imported, stderr = check_run
    assert proc.returncode == 1, stderr  # findings: the rules ran
    assert "migrate.rules" in imported  # the log is read correctly
    heavy = _top_level(imported) & {"libcst", "numpy", "tensorflow"}
    assert not heavy, (f"`check` imported {sorted(heavy)}: find the importer with "
                       "`python -X importtime -m migrate check ...`")
    # -j 1 migrates in this process: no worker pool, so no multiprocessing either.
    assert "multiprocessing" not in _top_level(imported)


def test_check_still_reports_the_rules_whose_rewrite_needs_libcst(check_run):
    proc, _, stderr = check_run
    codes = set(re.findall(r'"code": "(TFM\d+)"', proc.stdout))
    # These findings come from the libcst-free halves of the rules that rewrite with libcst.
    assert {"TFM300", "TFM400", "TFM410"} <= codes, (codes, stderr)


def test_rewriting_runs_load_the_libcst_half(tmp_path):
    """The same detection sees libcst when a run rewrites (the test above can fail)."""
    proc, imported, stderr = _run_cli(
        tmp_path, "diff", "--isolated", "-j", "1", "--select", "TFM300",
        str(FIXTURES / "tf_layers_family.before.py"))
    assert proc.returncode == 1, stderr  # something would change
    assert "class " in proc.stdout  # a model function became a Keras class
    assert {"libcst", "migrate.rules.model_classes"} <= imported


@pytest.mark.parametrize("rule", [r for r in rules_registry.ALL_RULES if issubclass(r, RewriteRule)],
                         ids=lambda r: r.code)
def test_registry_rule_and_its_rewriting_class_agree(rule):
    rewriting = rule.rewriting_class()
    assert issubclass(rewriting, rule)
    assert (rewriting.code, rewriting.tokens, rewriting.name) == (rule.code, rule.tokens, rule.name)
    assert rewriting.rewrite is not RewriteRule.rewrite, f"{rule.code} has no rewrite"
    assert "## What it does" in rule.docs()  # the docs of a split rule come from its rewrite


def test_names_the_findings_and_the_rewrites_match_agree():
    """The libcst-free findings modules repeat two constants of the libcst rewrite modules."""
    from migrate.rules.estimator_model_fn_findings import ESTIMATOR_SPEC
    from migrate.rules.train_steps_findings import SESSIONS
    from migrate.training_rewrite import estimator, program

    assert SESSIONS == program.SESSIONS
    assert ESTIMATOR_SPEC == estimator.ESTIMATOR_SPEC


def test_verify_and_convert_checkpoint_are_listed_and_load_on_demand(tmp_path):
    proc, imported, stderr = _run_cli(tmp_path, "--help")
    assert proc.returncode == 0, stderr
    assert "verify" in proc.stdout and "convert-checkpoint" in proc.stdout
    assert "migrate.verify.command" in imported  # --help lists them, so it loads them
    proc, imported, stderr = _run_cli(tmp_path, "rules")
    assert proc.returncode == 0, stderr
    assert not {"migrate.verify.command", "numpy"} & imported
