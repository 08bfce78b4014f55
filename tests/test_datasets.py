"""tf.data iterators in Session programs -> TF2 iteration (migrate/training_rewrite/datasets.py).

Rewrites run real libcst on real sources; the TF checks run the TF1 programs under the TF1
stand-in and their migrations under plain TF 2.21, and compare what depends only on the data
order (which elements each run pulled, how many runs an epoch had): the weights differ, since
TF1 and Keras draw initial weights differently.
"""

import json
import re
import subprocess
import sys
import textwrap

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, REPO, cli_env

REWRITE = FIXTURES / "rewrite"
CORPUS_PROGRAM = FIXTURES / "corpus" / "dataset_cnn.py"

HEADER = textwrap.dedent('''\
    import numpy as np
    import tensorflow as tf


    def net(inputs):
        return tf.layers.dense(inputs, 2, name="out")


    ''')


def _migrate(source: str):
    result = migrate_source(source.encode(), "program.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    text = result.new_bytes.decode() if result.changed else source
    return text, result.findings


def _left_unchanged(source: str) -> str:
    """The TFM401 reason of the one program in `source`, which must stay exactly as it was."""
    text, findings = _migrate(source)
    reasons = [f.message for f in findings if f.code == "TFM401"]
    assert len(reasons) == 1, [f.message for f in findings]
    kept = [line for line in text.splitlines() if not line.startswith("# tf-migrate:")]
    assert kept == source.splitlines()
    return reasons[0]


def _program(graph: str, session: str) -> str:
    return HEADER + "def train(x, y):\n" + textwrap.indent(textwrap.dedent(graph), "    ") + \
        "    with tf.Session() as sess:\n        sess.run(tf.global_variables_initializer())\n" + \
        textwrap.indent(textwrap.dedent(session), "        ")


ONE_SHOT = """\
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
iterator = dataset.make_one_shot_iterator()
inputs, targets = iterator.get_next()
loss = tf.reduce_mean(tf.square(net(inputs) - targets))
train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
"""


# -- what converts --------------------------------------------------------------------------------
def test_each_run_that_reads_the_iterator_pulls_one_element_shared_by_its_fetches():
    text, _ = _migrate(_program(ONE_SHOT + textwrap.dedent("""\
        scale = tf.placeholder(tf.float32, [])
        doubled = scale * 2.0
        """), """\
        for step in range(3):
            _, value, batch = sess.run([train_op, loss, targets])
        twice = sess.run(doubled, feed_dict={scale: 1.5})
        last = sess.run(loss)
        return value, batch, twice, last
        """))
    ast_text = text.split("def train(x, y):")[1]
    assert "iterator = iter(dataset)" in ast_text
    # the train run and the loss run pull (one element each); the run of `doubled` does not
    assert ast_text.count("inputs, targets = next(iterator)") == 2
    lines = [line.strip() for line in ast_text.splitlines()]
    train_call = next(i for i, line in enumerate(lines) if line.startswith("value, batch = train_step("))
    assert lines[train_call - 1] == "inputs, targets = next(iterator)"
    assert "twice = 1.5 * 2.0" in lines
    assert lines[lines.index("twice = 1.5 * 2.0") + 1] == "inputs, targets = next(iterator)"
    assert "return loss, targets" in text  # the fetched labels come from the same element
    assert "make_one_shot_iterator" not in text and "get_next" not in text


def test_initializable_iterator_is_made_at_each_initializer_run():
    text, _ = _migrate(_program("""\
        xs = tf.placeholder(tf.float32, [None, 3])
        ys = tf.placeholder(tf.float32, [None, 2])
        dataset = tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(8, seed=1).batch(4)
        iterator = tf.data.make_initializable_iterator(dataset)
        init = iterator.initializer
        inputs, targets = iterator.get_next()
        loss = tf.reduce_mean(tf.square(net(inputs) - targets))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        """, """\
        for epoch in range(2):
            sess.run(init, feed_dict={xs: x, ys: y * 2})
            while True:
                try:
                    sess.run(train_op)
                except tf.errors.OutOfRangeError:
                    break
        """))
    body = text.split("def train(x, y):")[1]
    assert "y_value" not in body  # `y * 2` is read once by the rebuilt dataset: bound first
    assert re.search(r"ys_value = y \* 2\n\s+dataset = tf\.data\.Dataset\.from_tensor_slices"
                     r"\(\(x, ys_value\)\)\.shuffle\(8, seed=1\)\.batch\(4\)\n\s+iterator = iter\(dataset\)\n"
                     r"\s+for inputs, targets in iterator:\n\s+train_step\(", body), body
    assert "placeholder" not in body and "OutOfRangeError" not in body


def test_out_of_range_handler_becomes_stop_iteration():
    text, _ = _migrate(_program(ONE_SHOT, """\
        steps = 0
        try:
            while True:
                sess.run(train_op)
                steps += 1
        except tf.errors.OutOfRangeError as error:
            print("stopped", error)
        return steps
        """))
    assert "except StopIteration as error:" in text
    assert "inputs, targets = next(iterator)" in text


def test_default_session_initializer_run_and_module_level_program():
    text, _ = _migrate(HEADER + textwrap.dedent("""\
        def train(x, y):
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
            iterator = dataset.make_initializable_iterator()
            inputs, targets = iterator.get_next()
            loss = tf.reduce_mean(tf.square(net(inputs) - targets))
            train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
            sess = tf.InteractiveSession()
            tf.global_variables_initializer().run()
            iterator.initializer.run()
            train_op.run()
        """))
    assert re.search(r"iterator = iter\(dataset\)\n\s+inputs, targets = next\(iterator\)\n"
                     r"\s+train_step\(net, optimizer, inputs, targets\)", text), text
    module_level = HEADER + textwrap.dedent("""\
        x = np.ones([8, 3], np.float32)
        y = np.zeros([8, 2], np.float32)
        inputs, targets = tf.data.make_one_shot_iterator(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()).get_next()
        loss = tf.reduce_mean(tf.square(net(inputs) - targets))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for step in range(3):
                _, value = sess.run([train_op, loss])
        """)
    text, _ = _migrate(module_level)
    assert "iterator = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat())" in text
    assert "    inputs, targets = next(iterator)\n    value = train_step(" in text


def test_device_block_around_the_input_pipeline_is_unwrapped():
    graph = textwrap.dedent("""\
        # the input pipeline on the CPU
        with tf.device("/cpu:0"):
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
            inputs, targets = dataset.make_one_shot_iterator().get_next()
        """)
    text, _ = _migrate(_program(graph + ONE_SHOT.split("\n", 3)[3],
                                "sess.run(train_op)\n"))
    assert re.search(r"# the input pipeline on the CPU\n\s+dataset = tf\.data\.Dataset.*\n"
                     r"\s+iterator = iter\(dataset\)\n", text), text
    assert "tf.device" not in text
    # model code inside the block: the block placed more than the pipeline
    graph = graph.replace("get_next()\n", "get_next()\n    loss = tf.reduce_mean(net(inputs))\n")
    message = _left_unchanged(_program(graph + ONE_SHOT.split("\n", 4)[4],
                                       "sess.run(train_op)\n"))
    assert "a with block in the graph-building code" in message


def test_tensors_from_a_function_the_rewrite_does_not_follow_are_refused():
    """`images, labels = input_fn()` (official models' style): the step must not read the
    program's local as an undefined global."""
    source = HEADER + textwrap.dedent("""\
        def input_fn(x, y):
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
            return dataset.make_one_shot_iterator().get_next()


        def train(x, y):
            inputs, targets = input_fn(x, y)
            loss = tf.reduce_mean(tf.square(net(inputs) - targets))
            train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(train_op)
        """)
    assert "train_step would read `inputs`, a value of the program" in _left_unchanged(source)


# -- what stays as it was, and why ----------------------------------------------------------------
@pytest.mark.parametrize("graph, session, reason", [
    (ONE_SHOT + "more_inputs, more_targets = iterator.get_next()\n", "sess.run(train_op)\n",
     "get_next() called twice on `iterator`"),
    ("""\
     xs = tf.placeholder(tf.float32, [None, 3])
     dataset = tf.data.Dataset.from_tensor_slices(xs).batch(4)
     inputs = dataset.make_one_shot_iterator().get_next()
     loss = tf.reduce_mean(net(inputs))
     train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
     """, "sess.run(train_op, feed_dict={xs: x})\n",
     "a dataset made of the placeholder `xs` outside an initializable iterator"),
    (ONE_SHOT, "try:\n    print(x)\nexcept tf.errors.OutOfRangeError:\n    pass\nsess.run(train_op)\n",
     "`except tf.errors.OutOfRangeError` around code that pulls from no tf.data iterator"),
    (ONE_SHOT, "print(sess.run(loss), sess.run(loss))\n",
     "two sess.run calls in one statement both pull from `iterator`"),
    (ONE_SHOT + "print_iterator(iterator)\n", "sess.run(train_op)\n",
     "the iterator `iterator` used as a value"),
    (ONE_SHOT, "sess.run(train_op, feed_dict={inputs: x})\n",
     "feed_dict feeds `inputs`, a tensor of a tf.data iterator's get_next()"),
    ("""\
     dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
     iterator = dataset.make_initializable_iterator()
     inputs, targets = iterator.get_next()
     loss = tf.reduce_mean(tf.square(net(inputs) - targets))
     train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
     """, "x = x * 2\nsess.run(iterator.initializer)\nsess.run(train_op)\n",
     "the dataset of `iterator` reads `x`, which the program assigns again"),
    ("""\
     dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
     iterator = dataset.make_initializable_iterator()
     inputs, targets = iterator.get_next()
     loss = tf.reduce_mean(tf.square(net(inputs) - targets))
     train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
     other = tf.data.make_one_shot_iterator(dataset)
     """, "sess.run(iterator.initializer)\nsess.run(train_op)\n",
     "the dataset `dataset` of the initializable iterator `iterator` is used besides that iterator"),
])
def test_unsupported_shapes_are_left_unchanged_with_the_reason(graph, session, reason):
    message = _left_unchanged(_program(graph, session))
    assert reason in message, message


def test_left_alone_fixture_names_each_reason():
    _, findings = _migrate((REWRITE / "dataset_iterator_left_alone.before.py").read_text())
    reasons = {re.match(r"`(\w+)`", f.message).group(1): f.message for f in findings
               if f.code == "TFM401"}
    assert "queue-based input (tf.train.slice_input_producer)" in reasons["train_with_queues"]
    assert "feedable iterator (tf.data.Iterator.from_string_handle)" in reasons["train_with_handle"]
    assert "feed_dict feeds `inputs`" in reasons["train_with_fed_batch"]


# -- TF1 (stand-in) and TF2 pull the same elements ------------------------------------------------
DRIVER = textwrap.dedent("""
    import json, sys
    if sys.argv[1] == "old":
        from migrate.verify import tf1_runtime
        tf1_runtime.install()
    import importlib.util, runpy, contextlib, io
    import numpy as np
    spec = importlib.util.spec_from_file_location("program", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.RandomState(0)
    x = rng.randn(20, 4).astype(np.float32)
    y = rng.randint(0, 3, 20).astype(np.int64)
    import tensorflow as tf
    if sys.argv[1] == "old":
        out = {}
        for name, call in [("one_shot", lambda: module.train_one_shot(x, y, 5)[1]),
                           ("epochs", lambda: len(module.train_epochs(x, y, 2))),
                           ("until_done", lambda: module.train_until_done(x, y))]:
            with tf.Graph().as_default():
                tf.set_random_seed(0)
                out[name] = call()
    else:
        tf.random.set_seed(0)
        out = {"one_shot": module.train_one_shot(x, y, 5)[1],
               "epochs": len(module.train_epochs(x, y, 2)),
               "until_done": module.train_until_done(x, y)}
    lines = io.StringIO()
    with contextlib.redirect_stdout(lines):
        runpy.run_path(sys.argv[3], run_name="__main__")
    out["corpus"] = re.search(r"steps=\\d+ label_sum=\\d+", lines.getvalue()).group(0)
    if sys.argv[1] == "old":  # verify's graph capture: get_next() gives named placeholders
        from migrate.verify.tf1_graph import STATE, install_hooks
        install_hooks(tf)
        with tf.Graph().as_default():
            STATE.active = True
            images, labels = tf.data.make_one_shot_iterator(
                tf.data.Dataset.from_tensor_slices((x, y)).batch(4)).get_next()
            STATE.active = False
            out["verify_inputs"] = [images.op.type, images.shape.as_list(), labels.dtype.name,
                                    sorted(STATE.placeholder_vars.items())]
    print("JSON " + json.dumps(out))
""").replace("import json, sys", "import json, re, sys")


def _pulled(side: str, fixture, corpus_program, tmp_path):
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    driver = tmp_path / "driver.py"  # a file: verify's hook reads the get_next() line
    driver.write_text(DRIVER)
    run = subprocess.run([sys.executable, str(driver), side, str(fixture), str(corpus_program)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("JSON "))
    return json.loads(line[5:])


@pytest.mark.tf
def test_tf1_and_migrated_programs_pull_the_same_elements(tmp_path):
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    migrated, _ = _migrate(CORPUS_PROGRAM.read_text())
    corpus_after = tmp_path / "dataset_cnn.py"
    corpus_after.write_text(migrated)
    old = _pulled("old", REWRITE / "dataset_iterator.before.py", CORPUS_PROGRAM, tmp_path)
    new = _pulled("new", REWRITE / "dataset_iterator.after.py", corpus_after, tmp_path)
    # verify generates and pairs a tf.data program's inputs like placeholders
    assert old.pop("verify_inputs") == ["Placeholder", [None, 4], "int64",
                                        [["images", "images"], ["labels", "labels"]]]
    assert old == new
    # 5 runs x 8 labels of a seeded shuffle; 2 epochs x 3 batches; 2 x 20 / 8 -> 6 runs
    assert old["epochs"] == 6 and old["until_done"] == 6 and old["one_shot"] > 0
    assert old["corpus"] == "steps=6 label_sum=8932"
