"""Schedules, regularizers and summaries in the training-loop rewrite: what is rewritten, what is
left alone and why (real libcst on the golden fixtures; the numbers are in
tests/test_training_numerics.py)."""

import re

import pytest

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import FIXTURES

REWRITE = FIXTURES / "rewrite"


def _migrate(source: str):
    result = migrate_source(source.encode(), "x.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


def _reasons(name: str):
    text = (REWRITE / f"{name}.after.py").read_text()
    return re.findall(r"# tf-migrate: TFM401 left unchanged: (.*)", text)


def test_schedules_on_another_step_are_left_alone_with_their_reason():
    reasons = _reasons("lr_schedules_left_alone")
    assert len(reasons) == 3
    assert any("not the global step its optimizer increments" in r for r in reasons)  # epoch placeholder
    assert any("which its optimizer does not increment" in r for r in reasons)  # no global_step=
    assert any("natural_exp_decay has no exact Keras 3 counterpart" in r for r in reasons)


def test_every_schedule_becomes_a_keras_schedule_of_the_optimizer():
    text = (REWRITE / "lr_schedules.after.py").read_text()
    for keras in ("ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
                  "CosineDecay(", "CosineDecayRestarts"):
        assert f"tf.keras.optimizers.schedules.{keras}" in text
    assert not re.search(r"tf\.train\.\w+_decay|piecewise_constant\(|global_step", text)
    assert "optimizer.learning_rate.numpy()" in text  # sess.run(learning_rate)
    assert text.count("class TF1Momentum(") == 1  # two Momentum programs, one class


@pytest.mark.parametrize("scale, expected", [("1e-4", "tf.keras.regularizers.l2(l2=5e-05)"),
                                             ("WEIGHT_DECAY", "tf.keras.regularizers.l2(l2=0.5 * WEIGHT_DECAY)"),
                                             ("scale=2 * WD", "tf.keras.regularizers.l2(l2=0.5 * (2 * WD))")])
def test_l2_regularizer_scale_is_halved_for_keras(scale, expected):
    source = ("import tensorflow as tf\n\nWEIGHT_DECAY = 1e-4\nWD = 1e-4\n\n\ndef net(x):\n"
              f"    return tf.layers.dense(x, 2, kernel_regularizer=tf.contrib.layers.l2_regularizer({scale}))\n")
    text = _migrate(source).new_bytes.decode()
    assert expected in text


def test_unknown_tf_regularizer_leaves_the_model_unchanged():
    source = ("import tensorflow as tf\n\n\ndef net(x):\n"
              "    return tf.layers.dense(x, 2, kernel_regularizer=tf.contrib.layers.sum_regularizer([]))\n")
    result = _migrate(source)
    assert any(f.code == "TFM301" and "sum_regularizer" in f.message for f in result.findings)


def test_regularization_reads_become_model_losses_in_the_tape():
    text = (REWRITE / "regularization.after.py").read_text()
    assert "loss = xent + sum(mlp.losses)" in text
    assert "tf.add_n([xent] + mlp.losses)" in text  # get_total_loss: LOSSES + regularization
    assert "get_collection" not in text and "get_regularization" not in text and "get_total_loss" not in text
    reasons = _reasons("regularization_left_alone")
    assert any("named 'discriminator'" in r for r in reasons)
    assert any("not assigned to a name of its own" in r for r in reasons)


def test_converted_summaries_are_reported_fixed_and_the_others_stay_manual():
    fixed = _migrate((REWRITE / "summaries.before.py").read_text())
    assert [f for f in fixed.findings if f.code == "TFM430" and not f.fixed] == []
    assert len([f for f in fixed.findings if f.code == "TFM430" and f.fixed]) == 5
    left = _migrate((REWRITE / "summaries_left_alone.before.py").read_text())
    manual = [f for f in left.findings if f.code == "TFM430" and not f.fixed]
    assert len(manual) == 7  # evaluate_only: 3 sites, train_with_histogram: 4
    assert any("histogram" in r for r in _reasons("summaries_left_alone"))


def test_training_mode_fetch_outside_the_train_op_is_a_reported_behaviour_change():
    from migrate.pipeline import Options, migrate_source
    from migrate.rules import ALL_RULES
    from tests.conftest import FIXTURES

    source = (FIXTURES / "rewrite" / "session_eval_fetches.before.py").read_text()

    def findings(text):
        result = migrate_source(text.encode(), "x.py", ALL_RULES, Options(rewrite=True))
        assert result.error is None and result.changed, result.error
        return {f.code: f for f in result.findings}

    with_bn = findings(source)
    assert with_bn["TFM404"].rewrite_class == "behaviour-change" and "loss_op" in with_bn["TFM404"].message
    assert with_bn["TFM400"].rewrite_class == "behaviour-change"
    # Without a batch norm a training-mode forward pass changes nothing: exact, no TFM404.
    without_bn = findings(source.replace(
        "        conv1 = tf.layers.batch_normalization(conv1, training=is_training)\n", ""))
    assert "TFM404" not in without_bn and without_bn["TFM400"].rewrite_class == "exact"


def test_var_list_by_substring_pairs_only_a_model_of_exactly_that_name():
    from migrate.pipeline import Options, migrate_source
    from migrate.rules import ALL_RULES

    source = '''import tensorflow as tf


def generator(z, is_training):
    with tf.variable_scope("generator"):
        net = tf.layers.dense(z, 8, name="fc")
        return tf.layers.batch_normalization(net, training=is_training, name="bn")


def discriminator(x, is_training, reuse=False):
    with tf.variable_scope("discriminator", reuse=reuse):
        return tf.layers.dense(x, 1, name="out")


def main(noise, real):
    z = tf.placeholder(tf.float32, [None, 4])
    x = tf.placeholder(tf.float32, [None, 8])
    fake = generator(z, True)
    d_loss = tf.reduce_mean(discriminator(fake, True) - discriminator(x, True, reuse=True))
    g_loss = -tf.reduce_mean(discriminator(fake, True, reuse=True))
    t_vars = tf.trainable_variables()
    d_vars = [v for v in t_vars if 'discriminator' in v.name]
    g_vars = [v for v in t_vars if 'GENERATOR_FILTER' in v.name]
    d_op = tf.train.AdamOptimizer(1e-3).minimize(d_loss, var_list=d_vars)
    g_op = tf.train.AdamOptimizer(1e-3).minimize(g_loss, var_list=g_vars)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(d_op, {z: noise, x: real})
        sess.run(g_op, {z: noise})
'''

    def migrate(text):
        result = migrate_source(text.encode(), "x.py", ALL_RULES, Options(rewrite=True))
        assert result.error is None, result.error
        return result

    converted = migrate(source.replace("GENERATOR_FILTER", "generator"))
    assert "discriminator.trainable_variables" in converted.new_text
    assert "generator.trainable_variables" in converted.new_text
    # 'g_' matches no model name exactly: which variables it meant is unknown, so nothing changes.
    left = migrate(source.replace("GENERATOR_FILTER", "g_"))
    assert not any(f.code == "TFM400" and f.fixed for f in left.findings)
    assert "tf.Session()" in (left.new_text or source)


GAN_BY_NAMES = '''import tensorflow as tf


def generator(z, train=True):
    with tf.variable_scope("generator"):
        net = tf.layers.dense(z, 8, name="g_fc")
        net = tf.layers.batch_normalization(net, training=train, name="g_bn")
        return tf.layers.dense(net, 8, name="g_out")


def discriminator(x, reuse=False):
    with tf.variable_scope("discriminator", reuse=reuse):
        return tf.layers.dense(tf.layers.dense(x, 4, name="d_fc"), 1, name="d_out")


def main(noise, real):
    z = tf.placeholder(tf.float32, [None, 4])
    x = tf.placeholder(tf.float32, [None, 8])
    fake = generator(z)

    def sce(logits, labels):
        return tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=labels)

    d_real = discriminator(x)
    d_fake = discriminator(fake, reuse=True)
    d_loss = tf.reduce_mean(sce(d_real, tf.ones_like(d_real)) + sce(d_fake, tf.zeros_like(d_fake)))
    g_loss = tf.reduce_mean(sce(d_fake, tf.ones_like(d_fake)))
    D_FILTER
    G_FILTER
    d_op = tf.train.AdamOptimizer(1e-3).minimize(d_loss, var_list=d_vars)
    g_op = tf.train.AdamOptimizer(1e-3).minimize(g_loss, var_list=g_vars)
    with tf.Session() as sess:
        tf.global_variables_initializer().run()
        sess.run(d_op, {z: noise, x: real})
        sess.run(g_op, {z: noise})
'''


def _gan(d_filter, g_filter):
    text = GAN_BY_NAMES.replace("D_FILTER", d_filter).replace("G_FILTER", g_filter)
    result = migrate_source(text.encode(), "gan.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    return result


@pytest.mark.parametrize("d_filter, g_filter", [
    # DCGAN-tensorflow: a substring of the layer names the model rewrite keeps
    ("t_vars = tf.trainable_variables()\n    d_vars = [v for v in t_vars if 'd_' in v.name]",
     "g_vars = [v for v in tf.trainable_variables() if 'g_' in v.name]"),
    # the collection filtered by scope (re.match: a prefix), and trainable_variables(scope)
    ("d_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope='discriminator')",
     "g_vars = tf.trainable_variables('gen')"),
    # the global variables: only the trainable ones among them get gradients
    ("d_vars = [v for v in tf.global_variables() if v.name.startswith('discriminator/')]",
     "g_vars = tf.get_collection(tf.GraphKeys.GLOBAL_VARIABLES, 'generator')"),
])
def test_var_list_filters_map_to_the_models_by_tf1_variable_names(d_filter, g_filter):
    result = _gan(d_filter, g_filter)
    text = result.new_text
    assert "tf.Session" not in text and "tf-migrate: TFM401" not in text, text
    steps = dict(re.findall(r"def (train_\w+_step)\(.*?\n(?:.*\n)*?    variables = (.*)", text))
    assert steps == {"train_d_op_step": "discriminator.trainable_variables",
                     "train_g_op_step": "generator.trainable_variables"}, steps
    # the program's own loss helper is defined again in each step; `initializer().run()` goes
    assert text.count("    def sce(logits, labels):") >= 2
    assert "global_variables_initializer" not in text
    # generator(z) built with train=True in TF1: the step passes the default explicitly
    assert "fake = generator(z, training=True)" in text


@pytest.mark.parametrize("d_filter, reason", [
    # 'fc' is in d_fc's names but not in d_out's: only some of the discriminator's variables
    ("d_vars = [v for v in tf.trainable_variables() if 'fc' in v.name]",
     "are only some of the variables of `discriminator`"),
    # a scope with regex characters is a pattern, not a name
    ("d_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope='disc.*')",
     "with a list the rewrite cannot map to a model"),
])
def test_var_list_filter_selecting_part_of_a_model_leaves_the_program(d_filter, reason):
    result = _gan(d_filter, "g_vars = [v for v in tf.trainable_variables() if 'g_' in v.name]")
    left = [f for f in result.findings if f.code == "TFM401"]
    assert left and reason in left[0].message, [f.message for f in result.findings]
    assert "tf.Session()" in (result.new_text or "")


def test_call_site_variable_scopes_name_the_model_objects():
    # `with tf.variable_scope("generator"): fake = generator(z)`: the object takes the scope as
    # its Keras name, and reuse=True around the discriminator calls the same object again.
    text = (REWRITE / "call_site_scopes.after.py").read_text()
    assert 'generator = Generator(name="generator")' in text
    assert text.count("Discriminator(name=\"discriminator\")") == 1
    assert "variable_scope" not in text and "name_scope" not in text
    assert "variables = discriminator.trainable_variables" in text  # startswith("discriminator/")
    assert "variables = generator.trainable_variables" in text


def test_call_site_scopes_that_would_lose_variable_names_are_left_alone_with_their_reason():
    reasons = _reasons("call_site_scopes_left_alone")
    assert len(reasons) == 2
    assert any("`tf.get_variable` inside variable_scope(\"autoencoder\")" in r for r in reasons)
    assert any("reuse=True around a model no earlier variable_scope(\"net\") created" in r
               for r in reasons)


def test_one_model_under_two_scopes_without_reuse_is_two_objects():
    source = ("import tensorflow as tf\n\n\ndef net(x):\n    return tf.layers.dense(x, 2, name='fc')\n\n\n"
              "def train():\n    x = tf.placeholder(tf.float32, [None, 3], name='x')\n"
              "    with tf.variable_scope('a'):\n        ya = net(x)\n"
              "    with tf.variable_scope('b'):\n        yb = net(x)\n"
              "    loss = tf.reduce_mean(ya - yb)\n"
              "    a_vars = [v for v in tf.trainable_variables() if v.name.startswith('a/')]\n"
              "    op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=a_vars)\n"
              "    with tf.Session() as sess:\n        sess.run(tf.global_variables_initializer())\n"
              "        sess.run(op, feed_dict={x: [[1.0, 2.0, 3.0]]})\n")
    text = _migrate(source).new_bytes.decode()
    assert 'net = Net(name="a")' in text and 'net_2 = Net(name="b")' in text
    assert "variables = net.trainable_variables" in text  # var_list: the variables under a/


def test_auto_reuse_call_site_scopes_share_one_object_and_a_repeated_scope_is_refused():
    before = (REWRITE / "call_site_scopes.before.py").read_text()
    auto = before.replace('variable_scope("discriminator", reuse=True)',
                          'variable_scope("discriminator", reuse=tf.AUTO_REUSE)').replace(
        'variable_scope("discriminator"):', 'variable_scope("discriminator", reuse=tf.AUTO_REUSE):')
    assert auto.count("AUTO_REUSE") == 2
    text = _migrate(auto).new_bytes.decode()
    assert text.count('Discriminator(name="discriminator")') == 1 and "variable_scope" not in text
    twice = before.replace('variable_scope("discriminator", reuse=True)', 'variable_scope("discriminator")')
    result = _migrate(twice)
    assert any(f.code == "TFM401" and "builds a second model of that name" in f.message
               for f in result.findings)


def test_step_template_locals_never_shadow_the_program_names():
    """The program's own `gradients`/`variables` (fetched, or read by the gradient processing)
    keep their names; the template's locals take fresh ones. The numbers are compared with TF1
    in tests/test_training_numerics.py (one batched run)."""
    text = (REWRITE / "step_template_clashes.after.py").read_text()
    assert "gradients_2 = tape.gradient(loss, variables)" in text
    assert "return loss, gradients\n" in text  # the input gradient the program fetched
    assert "variables_2 = regression.trainable_variables" in text
    assert "scaled = [(g / (1.0 + variables), v) for g, v in grads_and_vars]" in text
    assert "return loss, variables\n" in text
    source = (REWRITE / "step_template_clashes.before.py").read_text()
    source = re.sub(r"(?<!\.)\bgradients\b", "grad_x", re.sub(r"\bvariables\b", "spread", source))
    plain = _migrate(source).new_bytes.decode()  # without the clash: the template's usual names
    assert "gradients = tape.gradient(loss, variables)" in plain and "_2 = tape" not in plain


@pytest.mark.parametrize("wrap, says", [
    # all of the graph's UPDATE_OPS: TF1's d step updated the generator's statistics too
    ("with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):",
     "Keras updates its batch-norm statistics, as TF1 did: the train op ran all of the graph's UPDATE_OPS"),
    # scoped to the discriminator: the generator's statistics did not move in TF1's d step
    ("with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope='discriminator')):",
     "which the TF1 program's scoped UPDATE_OPS did not"),
    ("update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, 'discriminator')\n"
     "    with tf.control_dependencies(update_ops):",
     "which the TF1 program's scoped UPDATE_OPS did not"),
    # none (forgotten, TFM206): TF1 never updated them
    ("if True:", None),
])
def test_gan_step_batch_norm_note_says_what_tf1_updated(wrap, says):
    source = GAN_BY_NAMES.replace("D_FILTER", "d_vars = tf.trainable_variables('discriminator')") \
        .replace("G_FILTER", "g_vars = tf.trainable_variables('generator')")
    d_op = "    d_op = tf.train.AdamOptimizer(1e-3).minimize(d_loss, var_list=d_vars)\n"
    if wrap != "if True:":
        source = source.replace(d_op, f"    {wrap}\n    {d_op}")
    result = migrate_source(source.encode(), "gan.py", ALL_RULES, Options(rewrite=True))
    assert result.error is None, result.error
    notes = [f.message for f in result.findings if f.code == "TFM403"
             and f.message.startswith("train_d_op_step calls generator with training=True:")]
    assert len(notes) == 1, [f.message for f in result.findings]
    if says is None:
        assert "which TF1 never did: the train op ran no UPDATE_OPS" in notes[0]
        assert any(f.code == "TFM206" for f in result.findings)
    else:
        assert says in notes[0], notes[0]
