"""Properties of the pipeline on generated and mutated programs (issue 7, hypothesis).

* Generated TF1 model/training programs (tests/support/tf1_grammar.py): `check`
  never crashes, `apply`'s output parses, applying again changes nothing and
  rewrites nothing, untouched regions are byte-identical.
* Mutation fuzzing of the fixture files (delete / duplicate / swap / cut lines):
  whatever the input, no exception escapes as a crash (`internal error`), and
  any output written parses.

All rules run, plus the test rewrite rules' TFMT01 (tf.layers.batch_normalization
-> tf.compat.v1...), in process through `migrate_source`, the function every
CLI worker runs. Small by default (~100 examples, well under 30 s); `make fuzz`
sets TF_MIGRATE_FUZZ_EXAMPLES=10000 and --run-slow for the long variant.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate import rules as rules_registry
from migrate.pipeline import Options, migrate_source
from tests.conftest import FIXTURES
from tests.support import rewrite_rules
from tests.support.tf1_grammar import tf1_programs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")
FUZZ_EXAMPLES = int(os.environ.get("TF_MIGRATE_FUZZ_EXAMPLES", "0") or 0)
LONG = FUZZ_EXAMPLES > 0
RULES = rules_registry.select_rules([], [], [rewrite_rules.CompatV1Rename])
CHECK = Options(rewrite=False)
APPLY = Options(rewrite=True)


def examples(default: int) -> int:
    return FUZZ_EXAMPLES or default


def run(raw: bytes, options: Options, path: str = "gen.py"):
    result = migrate_source(raw, path, RULES, options)
    assert result.error is None or "internal error" not in result.error, result.error
    return result


def common(default):
    return settings(max_examples=examples(default), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- generated programs ---------------------------------------------------------------------
@common(60)
@given(tf1_programs())
def test_generated_programs(program):
    raw = program.source.encode()
    ast.parse(raw)  # the grammar only makes valid Python

    checked = run(raw, CHECK)
    assert checked.error is None, checked.error
    assert not checked.changed  # check never rewrites
    assert checked.findings, "every generated program has at least one TF1 site"

    applied = run(raw, APPLY)
    assert applied.error is None, applied.error
    output = applied.new_bytes if applied.changed else raw
    ast.parse(output)
    text = output.decode()
    for block in program.untouched:
        assert text.count(block) >= program.source.count(block), f"untouched block changed:\n{block}"

    # Idempotence: a second apply writes nothing and fixes nothing.
    again = run(output, APPLY)
    assert again.error is None, again.error
    assert not again.changed, "a second apply changed the output"
    assert not [f for f in again.findings if f.fixed]
    # `check` on the output: nothing left that the rewrite rules would rewrite.
    assert not [f for f in run(output, CHECK).findings if f.code == rewrite_rules.CompatV1Rename.code]


# -- mutation fuzzing of the fixtures -------------------------------------------------------
def _fixture_files():
    files = []
    for sub in ("check", "rewrite", "aliases", "untouched", "bad_input"):
        files += sorted((FIXTURES / sub).glob("*.py"))
    return [p for p in files if p.stat().st_size < 200_000]


FIXTURE_FILES = _fixture_files()


@st.composite
def mutated_fixture(draw):
    path = draw(st.sampled_from(FIXTURE_FILES))
    lines = path.read_bytes().splitlines(keepends=True) or [b""]
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "cut", "indent", "dedent"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "cut":
            line = lines[i]
            lines[i] = line[:draw(st.integers(0, len(line)))]
        elif op == "indent":
            lines[i] = b"    " + lines[i]
        else:
            lines[i] = lines[i].lstrip(b" \t")
    return path.name, b"".join(lines)


@common(40)
@given(mutated_fixture())
def test_mutated_fixtures_never_crash(case):
    name, raw = case
    for options in (CHECK, APPLY):
        result = run(raw, options, path=name)
        if result.changed:
            ast.parse(result.new_bytes)


@pytest.mark.slow
@settings(max_examples=examples(2000), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(FIXTURE_FILES), st.binary(max_size=64), st.integers(0, 10_000))
def test_byte_level_corruption_never_crashes(path, junk, where):
    """Long variant only: arbitrary bytes spliced into a fixture."""
    raw = path.read_bytes()
    where = where % (len(raw) + 1)
    result = run(raw[:where] + junk + raw[where:], APPLY, path=path.name)
    if result.changed:
        ast.parse(result.new_bytes)


def test_fuzz_budget_is_read_from_the_environment():
    assert examples(7) == (FUZZ_EXAMPLES or 7)
    assert FIXTURE_FILES, f"no fixture files under {FIXTURES}"
