"""Golden findings: each fixture under fixtures/check/ has a .expected file of `line:col: CODE` rows.

Regenerate with `pytest tests/test_rules_golden.py --update-goldens` and review the diff.
"""

from pathlib import Path

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES

CHECK_FIXTURES = sorted((FIXTURES / "check").glob("*.py"))
ALIAS_FIXTURES = sorted((FIXTURES / "aliases").glob("*.py"))


def findings_of(path: Path):
    result = migrate_source(path.read_bytes(), path.name, ALL_RULES, Options())
    assert result.error is None, result.error
    return result.findings


@pytest.mark.parametrize("path", CHECK_FIXTURES, ids=lambda p: p.stem)
def test_check_fixture_matches_golden(path, update_goldens):
    rows = [f"{f.line}:{f.col}: {f.code}" for f in findings_of(path)]
    expected_file = path.with_suffix(".expected")
    if update_goldens:
        expected_file.write_text("".join(r + "\n" for r in rows))
    assert expected_file.exists(), f"missing golden {expected_file}; run with --update-goldens"
    assert rows == expected_file.read_text().splitlines()


@pytest.mark.parametrize("path", ALIAS_FIXTURES, ids=lambda p: p.stem)
def test_every_import_alias_form_finds_the_one_batch_norm(path):
    findings = findings_of(path)
    bn = [f for f in findings if f.code in ("TFM101", "TFM103")]
    assert len(bn) == 1, findings
    source_line = path.read_text().splitlines()[bn[0].line - 1]
    assert "batch_norm" in source_line


def test_every_rule_has_a_fixture_that_triggers_it():
    seen = set()
    for path in CHECK_FIXTURES:
        seen.update(f.code for f in findings_of(path))
    # TFM901 (unused suppression) is checked by the runner, not migrate_source: tests/test_suppressions.py
    assert {rule.code for rule in ALL_RULES if not getattr(rule, "checked_by_runner", False)} <= seen


@pytest.mark.parametrize("name", ["not_tensorflow", "keras3_tf2_code", "shadowed_alias"])
def test_lookalikes_produce_no_findings(name):
    assert findings_of(FIXTURES / "check" / f"{name}.py") == []


def test_findings_carry_the_mapping_in_their_message():
    by_code = {}
    for finding in findings_of(FIXTURES / "check" / "contrib_batch_norm.py"):
        by_code.setdefault(finding.code, []).append(finding.message)
    first = by_code["TFM103"][0]
    assert "momentum=0.99" in first and "epsilon=1e-05" in first and "scale=True" in first
    assert "Bessel" in first
    second = by_code["TFM103"][1]
    assert "axis=1" in second and "followed by `tf.nn.relu`" in second
    assert any("zero_debias_moving_mean" in m for m in by_code["TFM107"])


def test_seed_antipattern_finding_explains_the_ordering():
    messages = [f.message for f in findings_of(FIXTURES / "check" / "control_dependencies_around_bn.py")
                if f.code == "TFM204"]
    assert len(messages) == 2  # direct, and through a helper function; not the identity block
    assert "every training step and every inference pass" in messages[0]


def test_slim_arg_scope_sites_are_resolved_per_layer_call():
    findings = [f for f in findings_of(FIXTURES / "check" / "normalizer_fn_arg_scope.py")
                if f.code == "TFM104"]
    lines = (FIXTURES / "check" / "normalizer_fn_arg_scope.py").read_text().splitlines()
    flagged = [lines[f.line - 1].strip() for f in findings]
    assert any("conv1" in line for line in flagged)
    assert any('"fc"' in line for line in flagged)
    assert any("explicit" in line for line in flagged)
    assert not any("conv_no_bn" in line or "outside_scope" in line for line in flagged)
    assert any("partial" in line for line in flagged)
    assert any("momentum=0.95" in f.message for f in findings)
