"""Whole-program TF1 classes (placeholders in __init__, Session methods) -> a Keras network,
an optimizer and TF2 train steps (migrate/training_rewrite/class_program.py).

Real libcst on real sources; the converted programs run on plain TF 2.21 in one subprocess."""

import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CORPUS_PROGRAM = ROOT / "fixtures" / "corpus" / "class_based_model.py"
GOLDEN_AFTER = ROOT / "fixtures" / "rewrite" / "class_program.after.py"


def migrate(text: str, path="x.py"):
    result = migrate_source(text.encode(), path, ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return (result.new_text if result.changed else text), result.findings


def test_corpus_class_program_converts_completely_and_idempotently():
    new, findings = migrate(CORPUS_PROGRAM.read_text())
    assert "tf-migrate:" not in new
    code = new.split('"""', 2)[2]  # after the module docstring, which names the TF1 patterns
    for tf1 in ("placeholder", "Session", "global_variables_initializer", "tf.layers.",
                "UPDATE_OPS", "tf.train.Optimizer", "set_random_seed", "tf.Variable"):
        assert tf1 not in code, tf1
    assert "class ModelNetwork(tf.keras.Model):" in new
    assert "class Model(object):" in new  # the program class keeps its name and methods
    assert "def train_step(self, x, y):" in new and "def predict(self, x):" in new
    assert "self.network = ModelNetwork(self.config)" in new
    assert "model.train_step(x, y)" in new and "model.predict(x)" in new
    # The train step keeps its own name apart from the method that calls it.
    assert re.search(r"^def train_step_fn\(network, optimizer, x, y\):", new, re.M)
    fixed = {f.code for f in findings if f.fixed}
    assert {"TFM300", "TFM400", "TFM101"} <= fixed
    assert not [f for f in findings if not f.fixed and f.code in ("TFM301", "TFM401")]
    again, _ = migrate(new)
    assert again == new


def test_session_methods_return_numpy_like_sess_run():
    new, _ = migrate(CORPUS_PROGRAM.read_text())
    assert "return self.network(x, training=False).numpy()" in new
    assert "loss = train_step_fn(self.network, self.optimizer, x, y).numpy()" in new


# A Python bool training flag, a Saver method, the caller under `if __name__ == "__main__":`.
_SAVER_PROGRAM = """\
import numpy as np
import tensorflow as tf


class Model(object):
    def __init__(self, checkpoint, is_training=True, lr=0.1):
        self.checkpoint = checkpoint
        self.is_training = is_training
        self.x = tf.placeholder(tf.float32, [None, 4])
        h = tf.layers.dense(self.x, 8, name="h")
        h = tf.layers.batch_normalization(h, training=self.is_training, name="bn")
        self.out = tf.layers.dense(h, 1, name="out")
        self.loss = tf.reduce_mean(tf.square(self.out - 1.0))
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(update_ops):
            self.train_op = tf.train.AdamOptimizer(lr).minimize(self.loss)
        self.saver = tf.train.Saver()

    def step(self, sess, x):
        loss, _ = sess.run([self.loss, self.train_op], {self.x: x})
        return loss

    def save(self, sess):
        self.saver.save(sess, self.checkpoint)


if __name__ == "__main__":
    model = Model("ckpt/model")
    data = np.random.RandomState(0).randn(8, 4).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        losses = [model.step(sess, data) for _ in range(5)]
        model.save(sess)
    print("RESULT first_loss=%.6f last_loss=%.6f eval_mean=0" % (losses[0], losses[-1]))
"""


# The class opens its own Session in __init__ (common in RL code): methods run `self.sess`.
_OWN_SESSION_PROGRAM = """\
import numpy as np
import tensorflow as tf


class QNetwork(object):
    def __init__(self, n_actions, lr=0.01):
        self.n_actions = n_actions
        self.states = tf.placeholder(tf.float32, [None, 4], name="states")
        self.targets = tf.placeholder(tf.float32, [None, n_actions], name="targets")
        hidden = tf.layers.dense(self.states, 16, activation=tf.nn.relu, name="hidden")
        self.q_values = tf.layers.dense(hidden, n_actions, name="q")
        self.loss = tf.reduce_mean(tf.square(self.targets - self.q_values))
        self.train_op = tf.train.RMSPropOptimizer(lr).minimize(self.loss)
        self.sess = tf.Session()
        self.sess.run(tf.global_variables_initializer())

    def predict(self, states):
        return self.sess.run(self.q_values, feed_dict={self.states: states})

    def update(self, states, targets):
        loss, _ = self.sess.run([self.loss, self.train_op],
                                feed_dict={self.states: states, self.targets: targets})
        return loss


def main():
    tf.set_random_seed(0)
    q = QNetwork(2)
    s = np.random.RandomState(0).randn(8, 4).astype(np.float32)
    losses = [q.update(s, np.ones((8, 2), np.float32)) for _ in range(5)]
    print("RESULT first_loss=%.6f last_loss=%.6f eval_mean=%.6f"
          % (losses[0], losses[-1], q.predict(s).mean()))


if __name__ == "__main__":
    main()
"""


def test_a_class_that_opens_its_own_session_converts():
    new, _ = migrate(_OWN_SESSION_PROGRAM)
    assert "tf-migrate:" not in new and "Session" not in new and "self.sess" not in new
    assert "self.network = QNetworkNetwork(n_actions)" in new
    assert "def predict(self, states):" in new and "def update(self, states, targets):" in new
    assert "return self.network(states).numpy()" in new
    assert migrate(new)[0] == new


def test_a_class_that_uses_its_own_session_otherwise_stays():
    source = _OWN_SESSION_PROGRAM.replace(
        "    def update(self", "    def close(self):\n        self.sess.close()\n\n    def update(self")
    new, findings = migrate(source)
    reason = "`close` uses the class's Session for more than `.run(...)` and a Saver"
    assert f"# tf-migrate: TFM301 left unchanged: {reason}\nclass QNetwork(object):" in new
    assert "self.sess = tf.Session()" in new


def test_saver_methods_and_a_main_block_convert():
    new, _ = migrate(_SAVER_PROGRAM)
    assert "tf-migrate:" not in new and "Session" not in new and "placeholder" not in new
    assert "self.network = ModelNetwork(self.is_training)" in new
    assert "def save(self):" in new and "model.save()" in new
    assert "losses = [model.step(data) for _ in range(5)]" in new


def test_converted_class_programs_run_on_plain_tf2(tmp_path):
    new, _ = migrate(CORPUS_PROGRAM.read_text())
    (tmp_path / "class_based_model.py").write_text(new)
    (tmp_path / "class_program.py").write_text(GOLDEN_AFTER.read_text())
    (tmp_path / "saver_program.py").write_text(migrate(_SAVER_PROGRAM)[0])
    (tmp_path / "own_session.py").write_text(migrate(_OWN_SESSION_PROGRAM)[0])
    driver = textwrap.dedent("""
        import runpy, sys
        for path in sys.argv[1:]:
            print("==", path, flush=True)
            runpy.run_path(path, run_name="__main__")
    """)
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    run = subprocess.run([sys.executable, "-c", driver, str(tmp_path / "class_based_model.py"),
                          str(tmp_path / "class_program.py"), str(tmp_path / "saver_program.py"),
                          str(tmp_path / "own_session.py")],
                         env=env, capture_output=True, timeout=600, cwd=str(tmp_path))
    out = run.stdout.decode()
    assert run.returncode == 0, (out + run.stderr.decode())[-3000:]
    results = re.findall(r"RESULT first_loss=(\S+) last_loss=(\S+) eval_mean=(\S+)", out)
    assert len(results) == 4, out
    for first, last, _ in results:
        assert float(last) < float(first)  # it trains
    # predict returns the softmax over 3 classes: its mean is exactly 1/3.
    assert abs(float(results[1][2]) - 1 / 3) < 1e-5
    assert list((tmp_path / "ckpt").glob("model*.index"))  # the Saver method wrote it


def test_a_model_function_called_from_init_converts_too():
    source = textwrap.dedent("""\
        import tensorflow as tf


        def net(x, is_training):
            h = tf.layers.dense(x, 8, name="hidden")
            h = tf.layers.batch_normalization(h, training=is_training, name="bn")
            return tf.layers.dense(tf.nn.relu(h), 2, name="out")


        class Trainer(object):
            def __init__(self, lr):
                self.lr = lr
                self.x = tf.placeholder(tf.float32, [None, 4])
                self.y = tf.placeholder(tf.int32, [None])
                self.training = tf.placeholder(tf.bool, [])
                self.logits = net(self.x, self.training)
                self.loss = tf.losses.sparse_softmax_cross_entropy(self.y, self.logits)
                with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
                    self.train_op = tf.train.MomentumOptimizer(self.lr, 0.9).minimize(self.loss)

            def step(self, sess, x, y):
                _, loss = sess.run([self.train_op, self.loss], {self.x: x, self.y: y, self.training: True})
                return loss


        def main(x, y):
            trainer = Trainer(0.1)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return [trainer.step(sess, x, y) for _ in range(3)]
        """)
    new, findings = migrate(source)
    assert "tf-migrate:" not in new and "Session" not in new
    assert "class Net(tf.keras.Model):" in new
    assert "self.net = Net()" in new
    assert "def step(self, x, y):" in new
    assert "[trainer.step(x, y) for _ in range(3)]" in new


_PROGRAM = """\
import tensorflow as tf


class Model(object):
    def __init__(self):
        self.x = tf.placeholder(tf.float32, [None, 4])
        self.out = tf.layers.dense(self.x, 1, name="out")
        self.loss = tf.reduce_mean(tf.square(self.out))
        self.train_op = tf.train.GradientDescentOptimizer(0.1).minimize(self.loss)

    def step(self, sess, x):
        return sess.run([self.train_op, self.loss], {self.x: x})[1]
{extra_method}

{caller}
"""

_REFUSED = {
    "two_sessions": ("", """\
def main(x):
    model = Model()
    with tf.Session() as first:
        first.run(tf.global_variables_initializer())
        model.step(first, x)
    with tf.Session() as second:
        second.run(tf.global_variables_initializer())
        model.step(second, x)
""", "opens its Session other than with one"),
    "object_passed_on": ("", """\
def fit(model, sess, x):
    return model.step(sess, x)


def main(x):
    model = Model()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return fit(model, sess, x)
""", "passes its `Model` object on"),
    "session_used_elsewhere": ("", """\
def main(x):
    model = Model()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        model.step(sess, x)
        return sess.run(tf.constant(1.0))
""", "uses its Session for more than the methods of `Model`"),
    "graph_after_init": ("""
    def extend(self, sess):
        self.extra = tf.layers.dense(self.out, 1, name="extra")
        sess.run(tf.variables_initializer(tf.global_variables()))
""", """\
def main(x):
    model = Model()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        model.extend(sess)
        return model.step(sess, x)
""", "`extend` builds graph ops after __init__"),
}


@pytest.mark.parametrize("case", sorted(_REFUSED))
def test_unsupported_class_programs_stay_marked_with_the_reason(case):
    extra, caller, reason = _REFUSED[case]
    source = _PROGRAM.replace("{extra_method}", extra).replace("{caller}", caller)
    new, findings = migrate(source)
    class_start = source.index("class Model(object):")
    class_end = source.index("\n\n\n", class_start)
    # The class is as it was, marked; its callers keep their Session (the ordinary run may
    # mark them too, but never rewrites them).
    assert source[class_start:class_end] in new
    marker = new.splitlines()[new.splitlines().index("class Model(object):") - 1]
    assert marker.startswith("# tf-migrate: TFM301 left unchanged: "), marker
    assert reason in marker
    assert "tf.Session()" in new
    assert any(f.code == "TFM301" and reason in f.message and not f.fixed for f in findings)
    again, _ = migrate(new)
    assert again == new


def test_a_class_that_only_calls_model_functions_is_marked_too():
    source = textwrap.dedent("""\
        import tensorflow as tf


        def net(x):
            return tf.layers.dense(x, 2, name="out")


        class Model(object):
            def __init__(self):
                self.x = tf.placeholder(tf.float32, [None, 4])
                self.net = net(self.x)
                self.loss = tf.reduce_mean(tf.square(self.net))
                self.train_op = tf.train.GradientDescentOptimizer(0.1).minimize(self.loss)

            def step(self, sess, x):
                return sess.run([self.train_op, self.loss], {self.x: x})[1]


        def main(x):
            model = Model()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return model.step(sess, x)
        """)
    new, findings = migrate(source)
    reason = "its tensor `self.net` has the name of the module's `net`, which its code also reads"
    assert f"# tf-migrate: TFM301 left unchanged: {reason}\nclass Model(object):" in new
    assert any(f.code == "TFM301" and f.line == 8 and reason in f.message for f in findings)
    assert migrate(new)[0] == new


def test_a_class_another_module_imports_stays(tmp_path):
    tree = tmp_path / "pkg"
    tree.mkdir()
    (tree / "model.py").write_text(CORPUS_PROGRAM.read_text())
    (tree / "train.py").write_text(textwrap.dedent("""\
        import tensorflow as tf
        from model import Model, Config


        def run(x, y):
            model = Model(Config())
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return model.train_step(sess, x, y)
        """))
    run = run_cli("apply", tree, "--out", tmp_path / "out")
    assert (tmp_path / "out" / "model.py").exists(), run.stderr.decode()[-2000:]
    out = (tmp_path / "out" / "model.py").read_text()
    assert ("# tf-migrate: TFM301 left unchanged: another module of the tree imports this "
            "module and may use it with a Session\nclass Model(object):") in out
    assert "def train_step(self, sess, x, y):" in out


def test_a_suppression_on_the_class_keeps_it():
    source = CORPUS_PROGRAM.read_text().replace(
        "class Model(object):", "class Model(object):  # tf-migrate: ignore[TFM300]")
    new, _ = migrate(source)
    assert "class Model(object):  # tf-migrate: ignore[TFM300]" in new
    assert "self._add_placeholders()" in new and "def train_step(self, sess, x, y):" in new
    assert "model.train_step(sess, x, y)" in new


_TF1_SIDE = """\
import numpy as np, tensorflow as tf
import old_prog as P
tf.set_random_seed(9)
rng = np.random.RandomState(9)
model = P.Model(P.Config())
x = rng.randn(32, 6).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    np.savez("init.npz", **{v.name.split(":")[0].replace("/", "__"): sess.run(v)
                            for v in tf.global_variables()})
    losses = [model.train_step(sess, x, y) for _ in range(6)]
    out = model.predict(sess, x)
print("VALUES", " ".join("%.7g" % v for v in losses + [float(out.mean())]))
"""
_TF2_SIDE = """\
import numpy as np, tensorflow as tf
import new_prog as P
rng = np.random.RandomState(9)
model = P.Model(P.Config())
x = rng.randn(32, 6).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
model.network(x[:1], training=False)
init = np.load("init.npz")
for weight in model.network.weights:  # model/fc1/kernel in TF1, <network>/fc1/kernel here
    key = "model__" + weight.path.split("/", 1)[1].replace("/", "__")
    weight.assign(init[key])
losses = [model.train_step(x, y) for _ in range(6)]
out = model.predict(x)
print("VALUES", " ".join("%.7g" % v for v in losses + [float(out.mean())]))
"""


def test_converted_class_program_matches_tf1_after_weight_transfer(tmp_path, acceptance_dir):
    """The TF1 class program (legacy stand-in) and its conversion (plain TF 2.21), started from
    the same weights: the same losses step by step and the same predictions (RMSProp
    accumulators at 1.0, batch norm in training and inference mode, the global step)."""
    new, _ = migrate(CORPUS_PROGRAM.read_text())
    (tmp_path / "old_prog.py").write_text(CORPUS_PROGRAM.read_text())
    (tmp_path / "new_prog.py").write_text(new)
    (tmp_path / "tf1_side.py").write_text(_TF1_SIDE)
    (tmp_path / "tf2_side.py").write_text(_TF2_SIDE)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    old = subprocess.run([sys.executable, str(acceptance_dir.parent / "run_tf1.py"), "tf1_side.py"],
                         cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert old.returncode == 0, old.stderr.decode()[-3000:]
    env.pop("TF_USE_LEGACY_KERAS", None)
    new_run = subprocess.run([sys.executable, "tf2_side.py"], cwd=tmp_path, env=env,
                             capture_output=True, timeout=300)
    assert new_run.returncode == 0, new_run.stderr.decode()[-3000:]
    values = [re.search(r"^VALUES (.*)$", run.stdout.decode(), re.M).group(1).split()
              for run in (old, new_run)]
    assert len(values[0]) == 7
    for tf1_value, tf2_value in zip(*values):
        assert float(tf2_value) == pytest.approx(float(tf1_value), rel=1e-5, abs=1e-6)


def test_a_fit_loop_returns_numpy_and_mean_squared_error_keeps_its_mean():
    source = textwrap.dedent("""\
        import tensorflow as tf


        class Regressor(object):
            def __init__(self, lr=0.1):
                self.x = tf.placeholder(tf.float32, [None, 4])
                self.y = tf.placeholder(tf.float32, [None, 1])
                self.out = tf.layers.dense(self.x, 1, name="out")
                self.loss = tf.losses.mean_squared_error(self.y, self.out)
                self.train_op = tf.train.AdamOptimizer(lr).minimize(self.loss)

            def fit(self, sess, data, labels, epochs=2, batch=4):
                history = []
                for _ in range(epochs):
                    for i in range(0, len(data), batch):
                        _, loss = sess.run([self.train_op, self.loss],
                                           {self.x: data[i:i + batch], self.y: labels[i:i + batch]})
                        history.append(loss)
                return history


        def main(data, labels):
            model = Regressor()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return model.fit(sess, data, labels)
        """)
    new, _ = migrate(source)
    assert "tf-migrate:" not in new
    assert "def fit(self, data, labels, epochs=2, batch=4):" in new
    assert ("loss = train_step(self.network, self.optimizer, data[i:i + batch], "
            "labels[i:i + batch]).numpy()") in new
    # TF2's tf.losses (Keras) has no mean_squared_error: TF1's mean, written out.
    assert "loss = tf.reduce_mean(tf.math.squared_difference(out, y))" in new


def test_methods_that_hand_their_session_on_lose_it_too():
    source = textwrap.dedent("""\
        import tensorflow as tf


        class Model(object):
            def __init__(self):
                self.x = tf.placeholder(tf.float32, [None, 4])
                self.out = tf.layers.dense(self.x, 1, name="out")
                self.loss = tf.reduce_mean(tf.square(self.out - 1.0))
                self.train_op = tf.train.GradientDescentOptimizer(0.1).minimize(self.loss)

            def train_step(self, sess, x):
                _, loss = sess.run([self.train_op, self.loss], {self.x: x})
                return loss

            def fit(self, sess, batches, epochs=2):
                return [self.train_step(sess, b) for _ in range(epochs) for b in batches]

            def run(self, session, batches):
                return self.fit(session, batches, epochs=1)


        def main(batches):
            model = Model()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return model.fit(sess, batches) + model.run(sess, batches)
        """)
    new, _ = migrate(source)
    assert "tf-migrate:" not in new and "sess" not in new.replace("Session", "")
    assert "def fit(self, batches, epochs=2):" in new
    assert "return [self.train_step(b) for _ in range(epochs) for b in batches]" in new
    assert "def run(self, batches):" in new and "return self.fit(batches, epochs=1)" in new
    assert "return model.fit(batches) + model.run(batches)" in new


# -- layer-building methods taking tensors (carpedm20/DCGAN-tensorflow) ----------------------------
DCGAN_PROGRAM = ROOT / "fixtures" / "corpus" / "dcgan_class_methods.py"
METHODS_GOLDEN = ROOT / "fixtures" / "rewrite" / "class_program_methods"


def test_layer_building_methods_become_networks_made_once():
    new, findings = migrate(DCGAN_PROGRAM.read_text())
    assert "tf-migrate:" not in new
    code = new.split('"""', 2)[2]
    for tf1 in ("placeholder", "Session", "global_variables_initializer", "variable_scope",
                "reuse=", "tf.layers.", "tf.train.AdamOptimizer(", "self.sess"):
        assert tf1 not in code, tf1
    assert "class DCGANGenerator(tf.keras.Model):" in new
    assert "class DCGANDiscriminator(tf.keras.Model):" in new
    # One object each: the TF1 `reuse=True` call is the same object called again.
    assert "self.generator = DCGANGenerator(self.g_bn0, self.data_dim)" in new
    assert "self.discriminator = DCGANDiscriminator(self.d_bn1)" in new
    assert "class batch_norm(tf.keras.layers.Layer):" in new
    # The caller's Session is gone from the constructor and the caller.
    assert "def __init__(self, batch_size=8, z_dim=4, data_dim=6):" in new
    assert "dcgan = DCGAN()" in new and "dcgan.train(5)" in new
    # Optimizers train() built from its own parameters: made at the start of train().
    assert re.search(r"def train\(self, steps, lr=0\.0002, beta1=0\.5\):\n"
                     r"\s+d_optim_optimizer = make_d_optim_optimizer\(beta1, lr\)", new)
    finding = next(f for f in findings if f.code == "TFM300" and "class `DCGAN`" in f.message)
    assert finding.fixed and "`generator` a `DCGANGenerator(tf.keras.Model)`" in finding.message
    assert "ran the variable initializer on each call" in finding.message
    again, _ = migrate(new)
    assert again == new


def test_optimizers_a_method_builds_from_configuration_are_made_once():
    new, _ = migrate((METHODS_GOLDEN.parent / (METHODS_GOLDEN.name + ".before.py")).read_text())
    init = new[new.index("class GAN(object):"):new.index("def train(self, steps):")]
    assert "self.d_optim_optimizer = make_d_optim_optimizer(self)" in init
    assert "self.generator = GANGenerator()" in init
    assert "def __init__(self, learning_rate=0.001, z_dim=4):" in init
    assert "gan = GAN()" in new


def test_layer_building_methods_train_on_plain_tf2_like_tf1(tmp_path, acceptance_dir):
    """Converted (plain TF 2.21) and TF1 (legacy stand-in): both train, with losses of the same
    size (the initial weights differ: no weight transfer here)."""
    golden = METHODS_GOLDEN.parent / (METHODS_GOLDEN.name + ".after.py")
    (tmp_path / "dcgan_new.py").write_text(migrate(DCGAN_PROGRAM.read_text())[0])
    (tmp_path / "gan_new.py").write_text(golden.read_text())
    driver = textwrap.dedent("""
        import runpy, sys
        for path in sys.argv[1:]:
            runpy.run_path(path, run_name="__main__")
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    old = subprocess.run([sys.executable, str(acceptance_dir.parent / "run_tf1.py"),
                          str(METHODS_GOLDEN.parent / (METHODS_GOLDEN.name + ".before.py"))],
                         cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert old.returncode == 0, old.stderr.decode()[-3000:]
    env.pop("TF_USE_LEGACY_KERAS", None)
    new_run = subprocess.run([sys.executable, "-c", driver, "dcgan_new.py", "gan_new.py"],
                             cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert new_run.returncode == 0, new_run.stderr.decode()[-3000:]
    new_results = re.findall(r"RESULT d_loss=(\S+) g_loss=(\S+)", new_run.stdout.decode())
    old_results = re.findall(r"RESULT d_loss=(\S+) g_loss=(\S+)", old.stdout.decode())
    assert len(new_results) == 2 and len(old_results) == 1
    # A small learning rate: both stay near the losses of an undecided discriminator.
    for d_loss, g_loss in (new_results[1], old_results[0]):
        assert float(d_loss) == pytest.approx(2 * math.log(2), abs=0.4)
        assert float(g_loss) == pytest.approx(math.log(2), abs=0.3)
    assert all(math.isfinite(float(v)) for v in new_results[0])


_METHOD_REFUSALS = {
    "stores_state": ("""
    def generator(self, z):
        self.h = tf.layers.dense(z, 4, name="h")
        return tf.layers.dense(self.h, 2, name="out")
""", "`self.generator(...)`, a method that stores `self.h`"),
    "called_after_init": ("""
    def generator(self, z):
        return tf.layers.dense(z, 2, name="out")

    def sample(self, sess, z):
        return sess.run(self.generator(self.z), {self.z: z})
""", "`sample` calls the layer-building method `generator` after __init__"),
    # carpedm20's `sampler`: the generator's weights again, under its scope with reuse.
    "reuses_another_methods_weights": ("""
    def generator(self, z):
        with tf.variable_scope("generator") as scope:
            scope.reuse_variables()
            return tf.layers.dense(z, 2, name="out")
""", "`self.generator(...)`, a method that reuses variables unconditionally"),
}


@pytest.mark.parametrize("case", sorted(_METHOD_REFUSALS))
def test_layer_building_methods_it_cannot_convert_keep_the_class(case):
    method, reason = _METHOD_REFUSALS[case]
    source = textwrap.dedent("""\
        import tensorflow as tf


        class Gen(object):
            def __init__(self):
                self.z = tf.placeholder(tf.float32, [None, 3])
                self.out = self.generator(self.z)
                self.loss = tf.reduce_mean(tf.square(self.out))
                self.train_op = tf.train.GradientDescentOptimizer(0.1).minimize(self.loss)

            def step(self, sess, z):
                return sess.run([self.train_op, self.loss], {self.z: z})[1]
        """) + textwrap.indent(textwrap.dedent(method), "    ") + textwrap.dedent("""


        def main(z):
            gen = Gen()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                return gen.step(sess, z)
        """)
    new, findings = migrate(source)
    marker = new.splitlines()[new.splitlines().index("class Gen(object):") - 1]
    assert marker.startswith("# tf-migrate: TFM301 left unchanged: ") and reason in marker, marker
    class_text = source[source.index("class Gen(object):"):source.index("\n\n\ndef main")]
    assert class_text in new
    again, _ = migrate(new)
    assert again == new
