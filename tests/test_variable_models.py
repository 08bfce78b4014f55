"""Models made of hand-made tf.Variable weights (migrate/training_rewrite/variable_models.py).

Rewrites run real libcst on real sources. The TF check runs TF1 programs whose variables start
from numpy values under the TF1 stand-in and their migrations under plain TF 2.21: with the same
initial values the losses and the trained values must agree, which they only do when each train
step updates exactly the variables TF1's minimize updated.
"""

import ast
import re
import subprocess
import sys
import textwrap

import pytest

from migrate.module_programs import find_module_program
from migrate.names import ImportResolver
from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, REPO, cli_env

REWRITE = FIXTURES / "rewrite"
GAN = FIXTURES / "corpus" / "vanilla_gan_vars.py"


def _migrate(source: str):
    result = migrate_source(source.encode(), "program.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    text = result.new_bytes.decode() if result.changed else source
    return text, result.findings


def _function(text: str, name: str) -> str:
    tree = ast.parse(text)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_source_segment(text, node)


def _left_unchanged(source: str) -> str:
    text, findings = _migrate(source)
    reasons = [f.message for f in findings if f.code == "TFM401"]
    assert len(reasons) == 1, [f.message for f in findings]
    kept = [line for line in text.splitlines() if not line.startswith("# tf-migrate:")]
    assert kept == source.splitlines()
    return reasons[0]


HEADER = "import numpy as np\nimport tensorflow as tf\n\n\n"


def _program(graph: str, session: str = "for step in range(3):\n    sess.run(train_op, feed_dict={x: data, t: targets})\n") -> str:
    graph = INPUTS + textwrap.dedent(graph)
    return HEADER + "def train(data, targets):\n" + textwrap.indent(graph, "    ") + \
        "    with tf.Session() as sess:\n        sess.run(tf.global_variables_initializer())\n" + \
        textwrap.indent(textwrap.dedent(session), "        ")


INPUTS = """\
x = tf.placeholder(tf.float32, [None, 3])
t = tf.placeholder(tf.float32, [None, 1])
"""


# -- what converts --------------------------------------------------------------------------------
def test_default_var_list_is_every_trainable_variable_the_loss_reaches_in_creation_order():
    text, findings = _migrate(_program("""\
        first = tf.Variable(tf.zeros([1]))
        weights = {'a': tf.Variable(tf.ones([3, 2])), 'b': tf.Variable(tf.ones([2, 1]))}
        layers = [tf.Variable(tf.ones([1])), tf.Variable(tf.ones([1]))]
        unused = tf.Variable(tf.ones([1]))
        frozen = tf.Variable(2.0, trainable=False)
        out = tf.matmul(tf.matmul(x, weights['a']), weights['b']) * frozen + layers[0] * layers[1] + first
        loss = tf.reduce_mean(tf.square(out - t))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        """))
    assert not [f for f in findings if f.code == "TFM401"], findings
    step = _function(text, "train_step")
    # the holders it reads are parameters, like model objects; `unused` is not one
    assert step.startswith("@tf.function\ndef train_step(first, frozen, layers, weights, optimizer, x, t):") \
        or "def train_step(first, frozen, layers, weights, optimizer, x, t):" in step, step
    assert "variables = [first, *weights.values(), *layers]" in step  # not frozen, not unused
    train = _function(text, "train")
    assert "tf.Variable(tf.ones([3, 2]))" in train and "tf.placeholder" not in train
    assert "optimizer.build([first, *weights.values(), *layers])" in train


def test_var_list_is_exactly_the_listed_variables_and_the_others_are_still_read():
    text, _ = _migrate(_program("""\
        W = tf.Variable(tf.ones([3, 1]))
        b = tf.Variable(tf.zeros([1]))
        scale = tf.Variable(1.0)
        params = [W, b]
        penalty = 0.01 * tf.reduce_sum(tf.square(W))
        loss = tf.reduce_mean(tf.square(scale * tf.matmul(x, W) + b - t)) + penalty
        train_op = tf.train.AdamOptimizer(0.1).minimize(loss, var_list=params)
        """, "for step in range(3):\n    sess.run(train_op, feed_dict={x: data, t: targets})\n"
             "return sess.run(W)\n"))
    step = _function(text, "train_step")
    assert "def train_step(W, b, params, scale, optimizer, x, t):" in step
    # the penalty reads W only: it is recomputed in the step, not evaluated once
    assert "penalty = 0.01 * tf.reduce_sum(tf.square(W))" in step
    assert "variables = params" in step
    train = _function(text, "train")
    assert "params = [W, b]" in train and "return W.numpy()" in train


def test_saver_saves_the_hand_made_variables_made_before_it():
    text, _ = _migrate(_program("""\
        W = tf.Variable(tf.ones([3, 1]))
        loss = tf.reduce_mean(tf.square(tf.matmul(x, W) - t))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        saver = tf.train.Saver()
        """, "sess.run(train_op, feed_dict={x: data, t: targets})\nsaver.save(sess, '/tmp/model')\n"))
    train = _function(text, "train")
    assert "saver = tf.train.Checkpoint(optimizer=optimizer, W=W)" in train
    assert "saver.write('/tmp/model')" in train


def test_graph_values_built_inside_the_session_block_are_computed_where_they_run():
    # TensorFlow-Examples' tutorials define `accuracy` after training, inside the session
    text, findings = _migrate(_program("""\
        W = tf.Variable(tf.zeros([3, 1]))
        pred = tf.matmul(x, W)
        loss = tf.reduce_mean(tf.square(pred - t))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        """, """\
        sess.run(train_op, feed_dict={x: data, t: targets})
        error = tf.reduce_mean(tf.abs(pred - t))
        return error.eval({x: data, t: targets})
        """))
    assert not [f for f in findings if f.code == "TFM401"], findings
    helper = _function(text, "compute_error")
    assert "error = tf.reduce_mean(tf.abs(pred - t))" in helper
    # fed values converted to the placeholders' dtype, as TF1's feed did (raw ops do not cast)
    assert "return compute_error(W, tf.cast(data, tf.float32), tf.cast(targets, tf.float32))" \
        in _function(text, "train")


def test_module_level_program_whose_functions_read_the_variables_as_globals():
    source = GAN.read_text()
    text, findings = _migrate(source)
    assert not [f for f in findings if f.code == "TFM401"], findings
    tree = ast.parse(text)
    top = [ast.get_source_segment(text, s) for s in tree.body]
    # the variables and their lists stay module-level statements, made before the loop runs
    made = top.index("theta_D = [D_W1, D_W2, D_b1, D_b2]")
    loop = next(i for i, s in enumerate(top) if s.startswith("for it in range(6):"))
    assert "G_W1 = tf.Variable(xavier_init([4, 16]))" in top[:loop] and made < loop
    d_step = _function(text, "train_D_solver_step")
    assert "def train_D_solver_step(theta_D, D_solver_optimizer, X, Z):" in d_step
    assert "variables = theta_D" in d_step and "G_sample = generator(Z)" in d_step
    assert "variables = theta_G" in _function(text, "train_G_solver_step")
    code = text.split('"""', 2)[2]  # after the module docstring
    assert "tf.Session" not in code and "tf.placeholder" not in code


def test_default_var_list_of_a_module_level_program_follows_the_functions_it_calls():
    source = GAN.read_text().replace(", var_list=theta_G)", ")")
    text, findings = _migrate(source)
    assert not [f for f in findings if f.code == "TFM401"], findings
    g_step = _function(text, "train_G_solver_step")
    # G's loss reaches every weight through generator() and discriminator() (globals)
    assert ("variables = [D_W1, D_b1, D_W2, D_b2, G_W1, G_b1, G_W2, G_b2]") in g_step


def test_the_module_program_finder_allows_global_reads_of_hand_made_variables_only():
    source = GAN.read_text()
    tree = ast.parse(source)
    resolve = ImportResolver(tree).resolve
    assert find_module_program(tree, resolve).refusal is None
    other = source.replace("def generator(z):\n", "def generator(z):\n    print(G_sample)\n")
    tree = ast.parse(other)
    refusal = find_module_program(tree, ImportResolver(tree).resolve).refusal
    assert "`G_sample`, bound by the module-level program, is read by `generator`" in refusal


# -- what is left alone ---------------------------------------------------------------------------
@pytest.mark.parametrize("graph, reason", [
    ("W = tf.Variable(tf.ones([3, 1]))\nloss = tf.reduce_mean(tf.square(tf.matmul(x, W) - t))\n"
     "decay = tf.assign(W, W * 0.5)\ntrain_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)\n",
     "assigns to hand-made variables (`W`): TF1 ran that op only when fetched"),
    ("W = tf.Variable(tf.ones([3, 1]))\nW = tf.Variable(tf.zeros([3, 1]))\n"
     "loss = tf.reduce_mean(tf.square(tf.matmul(x, W) - t))\n"
     "train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)\n",
     "`W`, which holds hand-made variables, is bound more than once"),
    ("W = tf.Variable(tf.ones([3, 1]))\nloss = tf.reduce_mean(tf.square(tf.matmul(x, W) - t))\n"
     "start = tf.Variable(tf.reduce_mean(x))\n"
     "train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)\n",
     "the initial value of hand-made variable `start` reads `x`, a graph value"),
    ("W = tf.Variable(tf.ones([3, 1]), name='d_w')\nloss = tf.reduce_mean(tf.square(tf.matmul(x, W) - t))\n"
     "d_vars = [v for v in tf.trainable_variables() if 'd_' in v.name]\n"
     "train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=d_vars)\n",
     "in a program with hand-made tf.Variable weights"),
])
def test_left_unchanged_with_its_reason(graph, reason):
    message = _left_unchanged(_program(graph))
    assert reason in message, message


def test_left_alone_fixture_names_each_reason():
    _, findings = _migrate((REWRITE / "variable_models_left_alone.before.py").read_text())
    reasons = {re.match(r"`(\w+)`", f.message).group(1): f.message for f in findings
               if f.code == "TFM401"}
    assert "`W.assign(W * 0.5)` assigns to hand-made variables" in reasons["train_with_shrink"]
    assert "bound more than once" in reasons["train_rebound"]


# -- TF1 (stand-in) and TF2 train the same variables the same way ---------------------------------
FUNCTION_PROGRAM = textwrap.dedent('''\
    import numpy as np
    import tensorflow as tf


    def mlp(x, weights, biases):
        hidden = tf.nn.relu(tf.matmul(x, weights['h1']) + biases['b1'])
        return tf.matmul(hidden, weights['out']) + biases['out']


    def main():
        rng = np.random.RandomState(1)
        x = tf.placeholder(tf.float32, [None, 4])
        y = tf.placeholder(tf.float32, [None, 2])
        weights = {'h1': tf.Variable(rng.randn(4, 8).astype(np.float32) * 0.5),
                   'out': tf.Variable(rng.randn(8, 2).astype(np.float32) * 0.5)}
        biases = {'b1': tf.Variable(np.zeros(8, np.float32)), 'out': tf.Variable(np.zeros(2, np.float32))}
        scale = tf.Variable(1.5)
        logits = scale * mlp(x, weights, biases)
        cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits, labels=y))
        train_op = tf.train.AdamOptimizer(0.05).minimize(
            cost, var_list=[weights['h1'], weights['out'], biases['b1'], biases['out']])
        tune_op = tf.train.GradientDescentOptimizer(0.1).minimize(cost)
        data = rng.randn(32, 4).astype(np.float32)
        labels = np.eye(2)[(data[:, 0] > 0).astype(int)].astype(np.float32)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for step in range(5):
                _, loss = sess.run([train_op, cost], feed_dict={x: data, y: labels})
            kept_scale = sess.run(scale)
            for step in range(3):
                sess.run(tune_op, feed_dict={x: data, y: labels})
            final = sess.run(cost, feed_dict={x: data, y: labels})
            tuned_scale = sess.run(scale)
            correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1))
            accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
            acc = accuracy.eval({x: data, y: labels})
        print('RESULT %.6f %.6f %.6f %.6f %.6f' % (loss, kept_scale, final, tuned_scale, acc))


    if __name__ == '__main__':
        main()
    ''')

MODULE_PROGRAM = textwrap.dedent('''\
    import numpy as np
    import tensorflow as tf

    init = np.random.RandomState(2)


    def start(*shape):
        return (init.randn(*shape) * 0.3).astype(np.float32)


    X = tf.placeholder(tf.float32, shape=[None, 6])
    D_W1 = tf.Variable(start(6, 16))
    D_b1 = tf.Variable(np.zeros(16, np.float32))
    D_W2 = tf.Variable(start(16, 1))
    D_b2 = tf.Variable(np.zeros(1, np.float32))
    theta_D = [D_W1, D_W2, D_b1, D_b2]
    Z = tf.placeholder(tf.float32, shape=[None, 4])
    G_W1 = tf.Variable(start(4, 16))
    G_b1 = tf.Variable(np.zeros(16, np.float32))
    G_W2 = tf.Variable(start(16, 6))
    G_b2 = tf.Variable(np.zeros(6, np.float32))
    theta_G = [G_W1, G_W2, G_b1, G_b2]


    def generator(z):
        return tf.nn.sigmoid(tf.matmul(tf.nn.relu(tf.matmul(z, G_W1) + G_b1), G_W2) + G_b2)


    def discriminator(x):
        logit = tf.matmul(tf.nn.relu(tf.matmul(x, D_W1) + D_b1), D_W2) + D_b2
        return tf.nn.sigmoid(logit)


    D_real = discriminator(X)
    D_fake = discriminator(generator(Z))
    D_loss = -tf.reduce_mean(tf.log(D_real + 1e-8) + tf.log(1. - D_fake + 1e-8))
    G_loss = -tf.reduce_mean(tf.log(D_fake + 1e-8))
    D_solver = tf.train.AdamOptimizer(0.01).minimize(D_loss, var_list=theta_D)
    G_solver = tf.train.AdamOptimizer(0.01).minimize(G_loss, var_list=theta_G)
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    rng = np.random.RandomState(0)
    for it in range(6):
        X_mb = rng.rand(8, 6).astype(np.float32)
        _, D_loss_curr = sess.run([D_solver, D_loss], feed_dict={X: X_mb, Z: rng.uniform(-1., 1., size=[8, 4])})
        _, G_loss_curr = sess.run([G_solver, G_loss], feed_dict={Z: rng.uniform(-1., 1., size=[8, 4])})
    print('RESULT %.6f %.6f %.6f' % (D_loss_curr, G_loss_curr, sess.run(G_b2)[0]))
    ''')

DRIVER = textwrap.dedent("""
    import sys, runpy
    if sys.argv[1] == "old":
        from migrate.verify import tf1_runtime
        tf1_runtime.install()
    for path in sys.argv[2:]:
        runpy.run_path(path, run_name="__main__")
""")


def _results(side: str, paths, tmp_path):
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    run = subprocess.run([sys.executable, "-c", DRIVER, side, *map(str, paths)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    return [[float(v) for v in line.split()[1:]] for line in run.stdout.splitlines()
            if line.startswith("RESULT ")]


@pytest.mark.tf
def test_tf1_and_migrated_programs_train_the_same_variables_the_same_way(tmp_path):
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    old, new = [], []
    for name, source in (("function_program", FUNCTION_PROGRAM), ("module_program", MODULE_PROGRAM)):
        migrated, findings = _migrate(source)
        assert not [f for f in findings if f.code == "TFM401"], findings
        assert "tf.Session" not in migrated
        (tmp_path / f"{name}_old.py").write_text(source)
        (tmp_path / f"{name}_new.py").write_text(migrated)
        old.append(tmp_path / f"{name}_old.py")
        new.append(tmp_path / f"{name}_new.py")
    before, after = _results("old", old, tmp_path), _results("new", new, tmp_path)
    assert len(before) == len(after) == 2
    for tf1, tf2 in zip(before, after):
        assert tf2 == pytest.approx(tf1, rel=1e-4, abs=1e-5), (tf1, tf2)
    # scale is not in the Adam op's var_list: unchanged by it, then trained by the default one
    assert before[0][1] == 1.5 and before[0][3] != 1.5
