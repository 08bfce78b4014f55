"""Session programs at module level and under `if __name__ == "__main__":` (TFM400).

Which statements are "the program" and when it is refused (migrate/module_programs.py), the
conversion through a pseudo-function (training_rewrite/module_program.py: lines of findings,
all or nothing, the TFM401 marker), and verify's import of such programs (the program is
deferred at import and run as the old side's entry point).
"""

import ast
import subprocess
import sys
import textwrap

import pytest

from migrate.module_programs import find_module_program
from migrate.pipeline import Options, _resolver_for, migrate_source
from migrate.rules import ALL_RULES
from migrate.verify import protocol
from tests.conftest import FIXTURES, cli_env, run_cli

MODEL = '''
import numpy as np
import tensorflow as tf


def net(x, training):
    h = tf.layers.dense(x, 4, use_bias=False, name="h")
    h = tf.layers.batch_normalization(h, training=training, name="bn")
    return tf.layers.dense(h, 2, name="out")
'''
PROGRAM = '''
x = tf.placeholder(tf.float32, [None, 3], name="x")
y = tf.placeholder(tf.int64, [None], name="y")
training = tf.placeholder(tf.bool, [], name="training")
logits = net(x, training)
loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
with tf.control_dependencies(update_ops):
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for step in range(2):
        value, _ = sess.run([loss, train_op], {x: np.ones((2, 3), np.float32), y: [0, 1], training: True})
    print("RESULT", value)
'''


def program_of(source):
    tree = ast.parse(source)
    return find_module_program(tree, _resolver_for(tree))


def migrate(source: str):
    result = migrate_source(source.encode(), "script.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


# -- which statements, which refusals ------------------------------------------------------------
def test_program_starts_at_the_first_graph_statement_after_flags_and_constants():
    source = MODEL + "\nFLAGS = tf.app.flags.FLAGS\nsteps = 3\n" + PROGRAM
    program = program_of(source)
    assert program.refusal is None and not program.if_main
    first = ast.parse(source).body[program.start]
    assert ast.unparse(first).startswith("x = tf.placeholder")
    assert {"x", "loss", "train_op", "sess", "value"} <= program.bound


def test_if_main_body_is_the_program():
    body = textwrap.indent(PROGRAM, "    ")
    program = program_of(MODEL + '\nif __name__ == "__main__":\n' + body)
    assert program.if_main and program.refusal is None


@pytest.mark.parametrize("source, reason", [
    (MODEL + "\nz = tf.placeholder(tf.float32)\n\ndef later(value=z):\n    return value\n" + PROGRAM,
     "`later` (line 13), defined between its statements, reads `z` when it is defined"),
    (MODEL.replace("tf.layers.dense(x, 4", "tf.layers.dense(y_global, 4")
     + "\ny_global = tf.placeholder(tf.float32, [None, 3])\n" + PROGRAM,
     "`y_global`, bound by the module-level program, is read by `net`"),
    (MODEL + "\nscale = 1\n" + PROGRAM.replace("update_ops =", "scale = 2\nupdate_ops ="),
     "it binds `scale` again, which module-level code before it binds too"),
    (MODEL + PROGRAM.replace("with tf.Session() as sess:", "global step\nwith tf.Session() as sess:"),
     "it has a `global` statement"),
    (MODEL + PROGRAM.split("with tf.Session")[0] + '\nif __name__ == "__main__":\n    with tf.Session() as s:\n        pass\n',
     "its graph is built at module level"),
])
def test_refusals_name_the_reason(source, reason):
    program = program_of(source)
    assert program is not None and reason in (program.refusal or ""), program


def test_definitions_between_its_statements_move_before_it():
    """The tutorial style: placeholders first, then the model function, then the loss."""
    head, tail = PROGRAM.split("logits = net(x, training)\n")
    source = MODEL.split("\n\ndef net")[0] + "\n" + head + "\n\ndef net" + \
        MODEL.split("\n\ndef net")[1] + "\n\nlogits = net(x, training)\n" + tail
    program = program_of(source)
    assert program.refusal is None and len(program.hoisted) == 1
    result = migrate(source)
    text = result.new_bytes.decode()
    assert "class Net(tf.keras.Model)" in text and "tf.Session" not in text
    assert text.index("class Net") < text.index("def train_step") < text.index("net = Net(")
    lines = source.splitlines()
    [model] = [f for f in result.findings if f.code == "TFM300"]
    assert lines[model.line - 1].startswith("def net(")
    [bn] = [f for f in result.findings if f.code == "TFM101"]
    assert "batch_normalization" in lines[bn.line - 1]
    assert not migrate(text).changed


def test_function_programs_are_not_module_programs():
    assert program_of(MODEL + "\n\ndef main():\n" + textwrap.indent(PROGRAM, "    ")) is None


# -- conversion ------------------------------------------------------------------------------------
@pytest.mark.parametrize("blank_line", [True, False])
def test_converted_program_keeps_finding_lines(blank_line):
    source = MODEL + ("\n" if blank_line else "# the program\n") + PROGRAM
    result = migrate(source)
    assert result.changed
    text = result.new_bytes.decode()
    tree = ast.parse(text)
    assert not any(isinstance(n, ast.FunctionDef) and n.name.startswith("_tfm") for n in tree.body)
    assert "tf.Session" not in text and "train_step(" in text
    lines = source.splitlines()
    for finding in result.findings:
        if finding.code in ("TFM201", "TFM202"):
            assert "update_ops" in lines[finding.line - 1].lower(), finding
    step = [f for f in result.findings if f.code == "TFM400"]
    assert len(step) == 1 and step[0].fixed and "module-level program" in step[0].message
    assert lines[step[0].line - 1].startswith("x = tf.placeholder")
    assert not migrate(text).changed


def test_if_main_program_stays_under_its_guard():
    source = MODEL + '\n\nif __name__ == "__main__":\n' + textwrap.indent(PROGRAM, "    ")
    text = migrate(source).new_bytes.decode()
    guard = ast.parse(text).body[-1]
    assert isinstance(guard, ast.If) and "__main__" in ast.unparse(guard.test)
    assert "train_step(" in ast.unparse(guard) and "Session" not in text


def test_refused_program_is_marked_once_and_everything_stays():
    source = (FIXTURES / "rewrite" / "module_level_program_left_alone.before.py").read_text()
    result = migrate(source)
    text = result.new_bytes.decode()
    assert [l for l in text.splitlines() if not l.startswith("# tf-migrate:")] == source.splitlines()
    marker = [l for l in text.splitlines() if l.startswith("# tf-migrate: TFM401")]
    assert len(marker) == 1 and "`inputs`" in marker[0]
    [finding] = [f for f in result.findings if f.code == "TFM401"]
    assert finding.line == source.splitlines().index(
        'inputs = tf.placeholder(tf.float32, [None, 3], name="inputs")') + 1
    assert any(f.code == "TFM301" and "module-level code" in f.message for f in result.findings)
    assert not migrate(text).changed


def test_program_the_training_rewrite_cannot_convert_leaves_the_models_too():
    # A fetch the rewrite does not know how to return: the program stays, so the model too.
    source = MODEL + PROGRAM.replace("value, _ = sess.run([loss, train_op]",
                                     "value, _ = sess.run([tf.trace(loss), train_op]")
    result = migrate(source)
    text = result.new_bytes.decode() if result.changed else source
    if "def net(" not in text:
        pytest.skip("the training-loop rewrite converts this program now; pick another refusal")
    assert "tf.Session" in text and "# tf-migrate: TFM401" in text
    assert any(f.code == "TFM401" and f.message.startswith("the module-level program")
               for f in result.findings)


# -- verify: the program is deferred at import -----------------------------------------------------
def test_import_defers_the_module_program(tmp_path):
    path = tmp_path / "script.py"
    path.write_text("RAN = []\n\ndef build():\n    RAN.append('graph')\n    return 1\n\n"
                    "graph = build()\nimport tensorflow as tf\nwith tf.Session() as sess:\n    pass\n")
    module = protocol.import_program(str(path), "_tfm_test_", "deferred")
    assert module.RAN == [] and not hasattr(module, "graph")
    assert protocol.entry_function(module) is not None
    assert protocol.entry_function(module, "build")() == 1 and module.RAN == ["graph"]


@pytest.mark.tf
def test_verify_passes_on_a_converted_module_level_program():
    before = FIXTURES / "rewrite" / "module_level_program.before.py"
    after = FIXTURES / "rewrite" / "module_level_program.after.py"
    run = run_cli("verify", before, after, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr).decode(errors="replace")[-3000:]


def test_notebook_program_over_several_cells_is_marked_not_moved(tmp_path):
    import json

    program = PROGRAM.strip("\n").split("\n")
    split = next(i for i, line in enumerate(program) if line.startswith("with tf.Session"))
    cells = [MODEL.strip("\n"), "\n".join(program[:split]), "\n".join(program[split:])]
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                           "outputs": [], "source": c.splitlines(True)} for c in cells],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook, indent=1))
    run = run_cli("diff", path)
    out = (run.stdout + run.stderr).decode()
    assert "internal error" not in out and "0 errors" in out, out
    assert "TFM401 the module-level program left unchanged: its statements span several" in out
    cells[1] += "\n" + cells.pop()
    notebook["cells"] = notebook["cells"][:2]
    notebook["cells"][1]["source"] = cells[1].splitlines(True)
    path.write_text(json.dumps(notebook, indent=1))
    out = run_cli("diff", path).stdout.decode()
    assert "+for step in range(2):" in out and "-with tf.Session() as sess:" in out, out
