"""TFM420: tf.app.flags / tf.app.run -> absl. The TF1 script under the TF1 stand-in and its
migration under plain TF 2, run as real scripts with the same command line, print the same."""

import subprocess
import sys

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, REPO, cli_env

REWRITE = FIXTURES / "rewrite"
RUN_OLD = ("import runpy, sys; from migrate.verify import tf1_runtime; tf1_runtime.install(); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _script(args, old: bool):
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    command = [sys.executable, "-c", RUN_OLD, *args] if old else [sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def _result_line(proc):
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]


@pytest.mark.tf
@pytest.mark.parametrize("name, argv", [
    ("app_flags", ["--steps=7", "--learning_rate", "0.5", "--verbose", "extra_arg"]),
    ("app_flags_aliases", []),
])
def test_migrated_script_parses_the_same_command_line(name, argv):
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    old = _result_line(_script([str(REWRITE / f"{name}.before.py"), *argv], old=True))
    new = _result_line(_script([str(REWRITE / f"{name}.after.py"), *argv], old=False))
    assert old and old == new
    if name == "app_flags":
        assert old == ["RESULT 3.5 /tmp/run ['extra_arg']"]


@pytest.mark.tf
def test_absl_rejects_an_undefined_flag_that_tf_app_run_ignored():
    """The behaviour change TFM420 reports for tf.app.run."""
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    argv = ["--steps=2", "--no_such_flag=1"]
    old = _script([str(REWRITE / "app_flags.before.py"), *argv], old=True)
    new = _script([str(REWRITE / "app_flags.after.py"), *argv], old=False)
    assert old.returncode == 0 and "RESULT" in old.stdout
    assert new.returncode != 0 and "no_such_flag" in new.stderr


def _migrate(source: str):
    result = migrate_source(source.encode(), "x.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


def test_imports_are_added_once_and_existing_absl_imports_are_reused():
    source = ("import tensorflow as tf\nfrom absl import flags\n\n"
              "tf.app.flags.DEFINE_integer('n', 1, 'n')\ntf.flags.DEFINE_integer('m', 2, 'm')\n")
    text = _migrate(source).new_bytes.decode()
    assert text.count("from absl import flags") == 1 and "tf." not in text.split("\n", 2)[2]
    assert not _migrate(text).changed


def test_a_module_that_binds_flags_elsewhere_gets_an_aliased_import():
    source = ("import tensorflow as tf\n\n\ndef parse(flags):\n    return flags\n\n\n"
              "tf.app.flags.DEFINE_integer('n', 1, 'n')\n")
    text = _migrate(source).new_bytes.decode()
    assert "from absl import flags as absl_flags" in text
    assert "absl_flags.DEFINE_integer('n', 1, 'n')" in text and "return flags" in text


def test_run_without_main_is_reported_not_rewritten():
    result = _migrate((REWRITE / "app_flags_left_alone.before.py").read_text())
    assert not result.changed
    manual = [f for f in result.findings if f.code == "TFM420" and not f.fixed]
    assert len(manual) == 1 and "defines none" in manual[0].message


def test_rule_docs_are_printed():
    from tests.conftest import run_cli

    proc = run_cli("rules", "TFM420")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert "## What it does" in out and "absl" in out and "## Example" in out


def test_a_suppressed_line_is_kept():
    source = ("import tensorflow as tf\n\n"
              "tf.app.flags.DEFINE_integer('n', 1, 'n')  # tf-migrate: ignore[TFM420]\n"
              "tf.app.flags.DEFINE_integer('m', 2, 'm')\n")
    text = _migrate(source).new_bytes.decode()
    assert "tf.app.flags.DEFINE_integer('n', 1, 'n')  # tf-migrate: ignore[TFM420]" in text
    assert "\nflags.DEFINE_integer('m', 2, 'm')" in text
