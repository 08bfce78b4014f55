"""WGAN-family Session programs (migrate/training_rewrite/gan_ops.py): weight-clipping assign ops
run by sess.run, random tensors of the graph part, tf.gradients inside a loss (WGAN-GP).

Rewrites run real libcst on real sources; the TF checks run the migrated programs on plain
TF 2.21 and `tf-migrate verify` against the TF1 stand-in in real subprocesses.
"""

import ast
import re
import subprocess
import sys
import textwrap

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES, cli_env, run_cli

REWRITE = FIXTURES / "rewrite"
CORPUS = FIXTURES / "corpus"

HEADER = textwrap.dedent('''\
    import numpy as np
    import tensorflow as tf


    def generator(z, reuse=False):
        with tf.variable_scope("generator", reuse=reuse):
            return tf.layers.dense(z, 3, name="g_out")


    def critic(x, reuse=False):
        with tf.variable_scope("critic", reuse=reuse):
            return tf.layers.dense(tf.layers.dense(x, 4, name="d_fc"), 1, name="d_out")


    ''')


def _migrate(source: str):
    result = migrate_source(source.encode(), "program.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    text = result.new_bytes.decode() if result.changed else source
    return text, result.findings


def _program(graph: str, session: str, params: str = "") -> str:
    return HEADER + f"def train({params}):\n" + textwrap.indent(textwrap.dedent(graph), "    ") + \
        "    with tf.Session() as sess:\n        sess.run(tf.global_variables_initializer())\n" + \
        textwrap.indent(textwrap.dedent(session), "        ")


CRITIC_GRAPH = """\
real = tf.placeholder(tf.float32, [None, 3])
z = tf.placeholder(tf.float32, [None, 2])
d_loss = tf.reduce_mean(critic(generator(z))) - tf.reduce_mean(critic(real, reuse=True))
t_vars = tf.trainable_variables()
d_vars = [v for v in t_vars if v.name.startswith("critic")]
d_opt = tf.train.RMSPropOptimizer(5e-5).minimize(d_loss, var_list=d_vars)
"""
FEED = "{real: np.ones([2, 3]), z: np.ones([2, 2])}"


def _converted(source: str) -> str:
    text, findings = _migrate(source)
    assert not [f for f in findings if f.code in ("TFM301", "TFM401")], \
        [f.message for f in findings if f.code in ("TFM301", "TFM401")]
    ast.parse(text)
    again, _ = _migrate(text)
    assert again == text  # rewriting twice changes nothing
    return text


def _left_unchanged(source: str) -> str:
    """The TFM401 reason of the one program in `source`, which must stay exactly as it was."""
    text, findings = _migrate(source)
    reasons = [f.message for f in findings if f.code == "TFM401"]
    assert len(reasons) == 1, [f.message for f in findings]
    kept = [line for line in text.splitlines() if not line.startswith("# tf-migrate:")]
    assert kept == source.splitlines()
    return reasons[0]


# -- assign ops ---------------------------------------------------------------------------------
@pytest.mark.parametrize("clip, run", [
    ("clip = [p.assign(tf.clip_by_value(p, -0.01, 0.01)) for p in d_vars]", "sess.run(clip)"),
    ("clip = [tf.assign(p, tf.clip_by_value(p, -0.01, 0.01)) for p in d_vars]", "sess.run(clip)"),
    ("clip = tf.group(*[p.assign(tf.clip_by_value(p, -0.01, 0.01)) for p in d_vars])", "clip.run()"),
    ("clip = [p.assign(tf.clip_by_value(p, -0.01, 0.01)) for p in tf.trainable_variables('critic')]",
     "sess.run(clip)"),
])
def test_assign_ops_become_a_function_over_the_models_variables(clip, run):
    text = _converted(_program(CRITIC_GRAPH + clip + "\n", f"sess.run(d_opt, {FEED})\n{run}\n"))
    assert "def clip_step(critic):\n" in text
    assert "    for p in critic.trainable_variables:\n" \
           "        p.assign(tf.clip_by_value(p, -0.01, 0.01))\n" in text
    body = text.split("def train(")[1]
    assert re.search(r"train_d_opt_step\(.*\)\n\s+clip_step\(critic\)\n", body), body
    assert "sess" not in body and "tf.assign" not in text


def test_assign_ops_read_python_values_of_the_program_as_parameters():
    source = _program(CRITIC_GRAPH + "clip_d = [v.assign(tf.clip_by_value(v, -c, c)) for v in d_vars]\n",
                      f"sess.run(d_opt, {FEED})\nsess.run(clip_d)\n", params="c=0.05")
    text = _converted(source)
    assert "def clip_d_step(critic, c):" in text
    assert "clip_d_step(critic, c)" in text.split("def train(")[1]


def test_assign_ops_over_a_named_list_of_hand_made_variables_iterate_that_list():
    """wiseodd's WGAN: `clip_D = [p.assign(...) for p in theta_D]`, theta_D the var_list of
    hand-made critic weights (fixtures/rewrite/gan_weight_clipping.*, run in the TF check)."""
    text = (REWRITE / "gan_weight_clipping.after.py").read_text()
    assert "def clip_D_step(theta_D, c):\n" in text and "    for p in theta_D:\n" in text
    assert "clip_D_step(theta_D, c)" in text.split("def train_hand_made(")[1]
    assert "TFM401" not in text


def test_assign_ops_over_hand_made_variables_take_their_holders():
    """A var_list of hand-made tf.Variable weights (variable_models.py): the function iterates
    over the same list, its holders passed in."""
    source = textwrap.dedent("""\
        import numpy as np
        import tensorflow as tf


        def train():
            x = tf.placeholder(tf.float32, [None, 3])
            W = tf.Variable(tf.random_normal([3, 1], stddev=0.1))
            b = tf.Variable(tf.zeros([1]))
            loss = tf.reduce_mean(tf.matmul(x, W) + b)
            opt = tf.train.RMSPropOptimizer(5e-5).minimize(loss, var_list=[W, b])
            clip = [p.assign(tf.clip_by_value(p, -0.01, 0.01)) for p in [W, b]]
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(opt, {x: np.ones([2, 3])})
                sess.run(clip)
        """)
    text = _converted(source)
    assert "def clip_step(W, b):\n" in text and "    for p in [W, b]:\n" in text
    body = text.split("def train(")[1]
    assert body.rstrip().endswith("clip_step(W, b)")
    # the initial value is drawn once, where the variable is made (not in the step)
    assert "W = tf.Variable(tf.random.normal([3, 1], stddev=0.1))" in body


@pytest.mark.parametrize("clip, run, reason", [
    ("clip = [v.assign(tf.clip_by_value(v, -0.01, 0.01)) for v in tf.global_variables()]",
     "sess.run(clip)", "run over tf.global_variables"),
    ("clip = [v.assign(v * 0.5) for v in tf.trainable_variables(scope='encoder')]",
     "sess.run(clip)", "starts with 'encoder', which no model of the program owns"),
    ("clip = [v.assign(v * 0.5) for v in d_vars]", f"sess.run([d_opt, clip], {FEED})",
     "together with other fetches (TF1 ran them in no fixed order)"),
    ("clip = [v.assign(v * 0.5) for v in d_vars]", "values = sess.run(clip)",
     "the result of sess.run of the assign ops `clip` is used"),
    ("clip = [v.assign(v * d_loss) for v in d_vars]", "sess.run(clip)",
     "compute their values from graph tensors (`d_loss`)"),
])
def test_unsupported_assign_ops_are_left_unchanged_with_the_reason(clip, run, reason):
    source = _program(CRITIC_GRAPH + clip + "\n", f"sess.run(d_opt, {FEED})\n{run}\n")
    assert reason in _left_unchanged(source)


# -- random tensors and tf.gradients ------------------------------------------------------------
GP_GRAPH = """\
real = tf.placeholder(tf.float32, [4, 3])
z = tf.placeholder(tf.float32, [4, 2])
fake = generator(z)
alpha = tf.random_uniform([4, 1], 0., 1.)
x_hat = real + alpha * (fake - real)
{gradients}
d_loss = tf.reduce_mean(critic(fake, reuse=True)) - tf.reduce_mean(critic(real, reuse=True))
d_loss += 10. * tf.reduce_mean((tf.norm(grad, axis=1) - 1.) ** 2)
d_vars = tf.trainable_variables(scope="critic")
d_opt = tf.train.AdamOptimizer(1e-4).minimize(d_loss, var_list=d_vars)
"""


def test_gradient_penalty_becomes_a_nested_tape_with_alpha_drawn_in_the_step():
    source = _program(GP_GRAPH.format(gradients="grad = tf.gradients(critic(x_hat), x_hat)[0]"),
                      f"sess.run(d_opt, {FEED.replace('[2, ', '[4, ')})\n")
    text = _converted(source)
    step = text.split("def train_d_opt_step(")[1].split("\n\n")[0]
    assert "\n".join([
        "        alpha = tf.random.uniform([4, 1], 0., 1.)",
        "        x_hat = real + alpha * (fake - real)",
        "        with tf.GradientTape() as inner_tape:  # TF1's tf.gradients inside the loss",
        "            inner_tape.watch(x_hat)",
        "            gradient_target = critic(x_hat)",
        # tf.gradients(y, x) returned a list also for one x: the tape is given [x]
        "        grad = inner_tape.gradient(gradient_target, [x_hat])[0]"]) in step
    # `+=` on a tensor made a new one: the same as the plain assignment, inside the tape
    assert "d_loss = d_loss + (10. * tf.reduce_mean(" in step
    assert "alpha" not in text.split("def train(")[1]


def test_gradient_of_a_named_output_watches_from_the_input_on():
    gradients = "d_hat = critic(x_hat)\nscaled = 2. * d_hat\ngrad = tf.gradients([scaled], [x_hat])[0]"
    text = _converted(_program(GP_GRAPH.format(gradients=gradients),
                               f"sess.run(d_opt, {FEED.replace('[2, ', '[4, ')})\n"))
    assert "inner_tape.watch(x_hat)\n            d_hat = critic(x_hat)\n" \
           "            scaled = 2. * d_hat\n" \
           "            gradient_target = [scaled]\n" \
           "        grad = inner_tape.gradient(gradient_target, [x_hat])[0]\n" in text


def test_gradient_with_respect_to_a_fed_value_watches_it_as_a_tensor_of_its_dtype():
    """A placeholder as x: the step's input, already cast; a fetch helper's numpy value, cast
    to the placeholder's dtype so the tape can watch it (and float64 feeds do not mix in)."""
    graph = GP_GRAPH.format(gradients="grad = tf.gradients(critic(real), [real])[0]")
    text = _converted(_program(graph, f"sess.run(d_opt, {FEED.replace('[2, ', '[4, ')})\n"
                                      f"loss = sess.run(d_loss, {FEED.replace('[2, ', '[4, ')})\n"))
    step = text.split("def train_d_opt_step(")[1].split("\n\n")[0]
    assert "    with tf.GradientTape() as tape:\n        with tf.GradientTape() as inner_tape:" \
           "  # TF1's tf.gradients inside the loss\n            inner_tape.watch(real)\n" in step
    helper = text.split("def compute_d_loss(")[1].split("\n\n")[0]
    assert "    real = tf.cast(real, tf.float32)\n    with tf.GradientTape() as inner_tape:" in helper
    assert "inner_tape.watch(real)" in helper


@pytest.mark.parametrize("gradients, reason", [
    ("grad = tf.gradients(critic(x_hat), tf.trainable_variables())[0]",
     "tf.gradients with respect to `tf.trainable_variables()`, which is not a tensor the step "
     "computes or is fed"),
    ("grad = tf.gradients(critic(x_hat), [x_hat], grad_ys=[alpha])[0]",
     "tf.gradients with grad_ys argument"),
    ("g1 = tf.gradients(critic(x_hat), [x_hat])[0]\ngrad = tf.gradients(critic(real), [real])[0] + g1",
     "several tf.gradients in one train step"),
])
def test_unsupported_gradients_are_left_unchanged_with_the_reason(gradients, reason):
    source = _program(GP_GRAPH.format(gradients=gradients),
                      f"sess.run(d_opt, {FEED.replace('[2, ', '[4, ')})\n")
    assert reason in _left_unchanged(source)


def test_left_alone_fixture_names_each_reason():
    source = (REWRITE / "gan_ops_left_alone.before.py").read_text()
    _, findings = _migrate(source)
    reasons = sorted(f.message for f in findings if f.code == "TFM401")
    assert len(reasons) == 3, reasons
    assert "run over tf.global_variables" in reasons[0]
    assert "which no model of the program owns" in reasons[1]
    assert "tf.gradients with respect to `tf.trainable_variables()`" in reasons[2]


# -- TensorFlow ---------------------------------------------------------------------------------
CLIP_DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, sys.argv[1])
    import gan_weight_clipping as m
    print("RESULT", float(m.train_scoped()), float(m.train_grouped()), float(m.train_hand_made()))
    critic = m.Critic()
    critic(tf.zeros([1, 3]))
    for v in critic.trainable_variables:
        v.assign(tf.fill(v.shape, 3.0))
    m.clip_d_step(critic)
    print("CLIPPED", max(float(tf.reduce_max(tf.abs(v))) for v in critic.trainable_variables))
    m.clip_step(critic, 0.002)
    print("CLIPPED", max(float(tf.reduce_max(tf.abs(v))) for v in critic.trainable_variables))
    theta_D = [tf.Variable(tf.fill([3, 1], 3.0)), tf.Variable(tf.fill([1], -3.0))]  # hand-made weights
    m.clip_D_step(theta_D, 0.01)
    print("CLIPPED", max(float(tf.reduce_max(tf.abs(v))) for v in theta_D))
""")


@pytest.mark.tf
def test_migrated_clipping_runs_on_plain_tf2_and_clips(tmp_path):
    (tmp_path / "gan_weight_clipping.py").write_bytes(
        (REWRITE / "gan_weight_clipping.after.py").read_bytes())
    env = cli_env()
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    run = subprocess.run([sys.executable, "-c", CLIP_DRIVER, str(tmp_path)], env=env,
                         capture_output=True, timeout=300)
    out = run.stdout.decode()
    assert run.returncode == 0, (out + run.stderr.decode())[-3000:]
    assert re.search(r"^RESULT -?\d\S* -?\d\S* -?\d", out, re.M)
    assert [float(x) for x in re.findall(r"^CLIPPED (\S+)", out, re.M)] == \
        pytest.approx([0.01, 0.002, 0.01], rel=1e-6)


@pytest.mark.tf
def test_verify_passes_on_the_gradient_penalty_program_with_randomness_disabled(tmp_path):
    """TF1's tf.gradients and the nested tape give the same critic gradients (alpha the same
    stateless sample on both sides, eager and tf.function on the new side: the noise floor)."""
    out = tmp_path / "new"
    apply = run_cli("apply", CORPUS / "wgan_gradient_penalty.py", "--out", out, "-q")
    assert apply.returncode in (0, 1), apply.stderr.decode()
    run = run_cli("verify", CORPUS / "wgan_gradient_penalty.py", out / "wgan_gradient_penalty.py",
                  timeout=600)
    text = (run.stdout + run.stderr).decode(errors="replace")
    assert run.returncode == 0, text[-3000:]
    # the critic's gradients, penalty included (the table truncates long tensor names)
    assert re.search(r"gradient/train_disc_step/discriminator/fc1/\S*\s+4x32 .* PASS", text), text[-3000:]
    assert not re.search(r"gradient/.* FAIL", text)
    assert "random ops of the program" in text and "fixed stateless sample" in text
