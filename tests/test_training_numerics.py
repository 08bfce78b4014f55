"""The training-loop rewrite keeps the numbers: the TF1 program under the TF1 stand-in vs its
migration under Keras 3, each in its own real subprocess, compared step by step.

Fixtures: fixtures/rewrite/lr_schedules.{before,after}.py (learning-rate decay schedules: TF1 reads
the global step before minimize(global_step=) increments it, a Keras schedule reads
optimizer.iterations before apply_gradients increments it; an off-by-one step would show in the
rates and in the losses); fixtures/rewrite/loss_expressions.* (train ops minimizing an expression
of graph values, `minimize(-D_loss)`: a wrong sign or dropped term would move the losses). The models use ones-initialised weights, so both sides start from the
same point without a weight transfer.
"""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES, REPO, cli_env

REGULARIZATION_FUNCTIONS = ["train_regularization_loss", "train_collection_add_n", "train_total_loss",
                            "train_regularization_list"]
# TF 2.21's tf.summary.scalar imports tensorboard (no longer a TensorFlow dependency).
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
# Programs naming their own tensors `gradients`/`variables` like the train step template's locals.
CLASH_FUNCTIONS = ["train_input_gradient_penalty", "train_scaled_gradients"]
# Train ops minimizing an expression of graph values (`minimize(-D_loss)`, `d_loss + 0.1 * g_loss`).
LOSS_EXPRESSION_FUNCTIONS = ["train_negated_hand_made", "train_sum_of_losses", "train_scaled_alone",
                             "train_negated_gradients"]
SCHEDULE_FUNCTIONS = ["train_exponential", "train_piecewise", "train_polynomial", "train_inverse_time",
                      "train_cosine", "train_cosine_restarts", "train_momentum_piecewise",
                      "train_nesterov_fed_rate"]

RUN = r"""
import glob, importlib.util, json, os, sys
side = sys.argv[1]
if side == "tf1":
    from migrate.verify import tf1_runtime
    tf = tf1_runtime.install()
else:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import tensorflow as tf
spec = json.loads(sys.argv[2])
results = {}
for path, calls in spec["calls"].items():
    stem = os.path.basename(path).split(".")[0]
    module_spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    for name, args in calls:
        if side == "tf1":
            with tf.Graph().as_default():
                parts = getattr(module, name)(*args)
        else:
            parts = getattr(module, name)(*args)
        if parts is not None:
            results[f"{stem}:{name}"] = [[float(v) for v in part] for part in parts]
for logdir in spec.get("events", []):
    # TF1 wrote simple_value, TF2 a tensor: read both as (tag, step) -> float.
    values = {}
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = value.simple_value if value.HasField("simple_value") else float(
                    tf.make_ndarray(value.tensor))
                values[f"{value.tag}@{event.step}"] = number
    results[f"events:{logdir}"] = values
print(json.dumps(results))
"""


def _run(side: str, spec) -> dict:
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    result = subprocess.run([sys.executable, "-c", RUN, side, json.dumps(spec)], capture_output=True,
                            text=True, env=env, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras", reason="the TF1 stand-in needs tf-keras")
    rewrite = FIXTURES / "rewrite"
    logs = tmp_path_factory.mktemp("summaries")
    old_logs, new_logs = str(logs / "tf1"), str(logs / "keras3")

    def calls(side, logdir):
        spec = {str(rewrite / f"lr_schedules.{side}.py"): [[n, []] for n in SCHEDULE_FUNCTIONS],
                str(rewrite / f"regularization.{side}.py"): [[n, []] for n in REGULARIZATION_FUNCTIONS],
                str(rewrite / f"step_template_clashes.{side}.py"): [[n, []] for n in CLASH_FUNCTIONS],
                str(rewrite / f"loss_expressions.{side}.py"): [[n, []] for n in LOSS_EXPRESSION_FUNCTIONS]}
        if HAS_TENSORBOARD:
            spec[str(rewrite / f"summaries.{side}.py")] = [["train", [logdir]]]
        return spec

    old = _run("tf1", {"calls": calls("before", old_logs)})
    new = _run("keras3", {"calls": calls("after", new_logs),
                          "events": [old_logs, new_logs] if HAS_TENSORBOARD else []})
    if HAS_TENSORBOARD:
        old["events"] = new.pop(f"events:{old_logs}")
        new["events"] = new.pop(f"events:{new_logs}")
    return old, new


@pytest.mark.tf
@pytest.mark.parametrize("name", SCHEDULE_FUNCTIONS)
def test_learning_rate_schedule_matches_tf1_step_for_step(runs, name):
    old, new = runs
    old_losses, old_rates = old[f"lr_schedules:{name}"]
    new_losses, new_rates = new[f"lr_schedules:{name}"]
    assert len(old_losses) == len(new_losses) == 12
    # The rates read before each step: same values at the same steps (no off-by-one).
    np.testing.assert_allclose(new_rates, old_rates, rtol=1e-6, atol=0)
    if old_rates:
        assert len(set(np.round(old_rates, 7))) > 1, "the schedule must actually change the rate"
    # The losses follow the rates: equal up to float32 rounding after 12 steps.
    np.testing.assert_allclose(new_losses, old_losses, rtol=1e-5, atol=1e-7)


@pytest.mark.tf
@pytest.mark.parametrize("name", REGULARIZATION_FUNCTIONS)
def test_regularization_losses_match_tf1(runs, name):
    old, new = runs
    old_losses, old_extra = old[f"regularization:{name}"]
    new_losses, new_extra = new[f"regularization:{name}"]
    assert len(old_losses) == len(new_losses) == 6
    # Step 0: same weights, so the loss values themselves (regularization term included) agree to
    # float32 rounding; later steps drift by rounding only (Adam: 2.2e-6 relative after 6 steps).
    np.testing.assert_allclose(new_losses[0], old_losses[0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(new_losses, old_losses, rtol=1e-5, atol=0)
    np.testing.assert_allclose(new_extra, old_extra, rtol=1e-5, atol=0)


@pytest.mark.tf
@pytest.mark.parametrize("name", LOSS_EXPRESSION_FUNCTIONS)
def test_minimized_loss_expressions_match_tf1(runs, name):
    """The expression is differentiated inside the step's tape: a wrong sign or a dropped term
    would send the training elsewhere, so the fetched losses would part from TF1's."""
    old, new = runs
    old_losses, old_extra = old[f"loss_expressions:{name}"]
    new_losses, new_extra = new[f"loss_expressions:{name}"]
    assert len(old_losses) == len(new_losses) == 5
    assert len(set(np.round(old_losses, 6))) > 1, "training must move the loss"
    np.testing.assert_allclose(new_losses, old_losses, rtol=1e-5, atol=0)
    np.testing.assert_allclose(new_extra, old_extra, rtol=1e-5, atol=0)


@pytest.mark.tf
@pytest.mark.parametrize("name", CLASH_FUNCTIONS)
def test_program_names_like_the_step_template_locals_keep_their_values(runs, name):
    """`gradients`/`variables` of the program, fetched or read after the template computes its
    own: the migrated step runs and returns the program's tensors, with TF1's losses."""
    old, new = runs
    old_losses, old_fetched = old[f"step_template_clashes:{name}"]
    new_losses, new_fetched = new[f"step_template_clashes:{name}"]
    assert len(old_losses) == len(new_losses) == 6
    assert old_losses[-1] < old_losses[0]  # it trains
    np.testing.assert_allclose(new_losses, old_losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new_fetched, old_fetched, rtol=1e-5, atol=1e-7)


@pytest.mark.tf
def test_regularization_term_is_large_enough_to_be_seen(runs):
    """Without the regularization (or with Keras' l2 at TF1's scale) the losses would differ."""
    old, _ = runs
    _, (final_reg,) = old["regularization:train_collection_add_n"]
    assert final_reg > 0.05


@pytest.mark.tf
def test_scalar_summaries_write_the_same_events(runs):
    if not HAS_TENSORBOARD:
        pytest.skip("TF2's tf.summary.scalar needs the tensorboard package (pip install tensorboard)")
    old, new = runs
    tags = {key.split("@")[0] for key in old["events"]}
    assert tags == {"loss", "mean_abs_error"}
    assert sorted(old["events"]) == sorted(new["events"]) and len(old["events"]) == 10
    for key, value in old["events"].items():
        np.testing.assert_allclose(new["events"][key], value, rtol=1e-5, err_msg=key)
