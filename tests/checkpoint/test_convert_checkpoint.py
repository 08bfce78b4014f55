"""convert-checkpoint end to end: TF1 checkpoints made by training real programs a few
steps in the legacy process, converted by the real CLI, restored in TF2 and compared
(inference outputs through `--verify`, next-step losses when resuming training).

All TF work is batched: one TF1 process trains every checkpoint, one CLI run per program
converts it (with --verify), one TF1 and one TF2 process run every resume.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from migrate.checkpoint import slots
from migrate.checkpoint.command import convert_checkpoint
from migrate.verify import compare, runner

from . import ckpt_helpers as H

MOMENTUM = H.FIXTURES / "momentum_ema"
# fixture programs (no ../shared needed): old.py trained in TF1, new.py its `tf-migrate apply`
FIXTURE_PROGRAMS = ("momentum_ema", "adadelta", "adam_decay", "momentum_piecewise")
ACCEPTANCE_PROGRAMS = ("slim_arg_scope", "cnn_update_ops", "gan_two_optimizers",
                       "python_bool_training", "helper_blocks")
NO_SHARED = "../shared acceptance programs not found at %s (a user's clone has no ../shared)" % (
    H.SHARED_TF1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    programs = {name: (H.FIXTURES / name / "old.py", H.FIXTURES / name / "new.py")
                for name in FIXTURE_PROGRAMS}
    if H.SHARED_TF1.is_dir():
        migrated = root / "migrated"
        proc = subprocess.run([sys.executable, "-m", "migrate", "apply", str(H.SHARED_TF1),
                               "--out", str(migrated)], capture_output=True,
                              env=runner.side_env("new", "cpu"), timeout=300)
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        for name in ACCEPTANCE_PROGRAMS:
            programs[name] = (H.SHARED_TF1 / (name + ".py"), migrated / (name + ".py"))
    models = [H.plan(mid, old, new) for mid, (old, new) in programs.items()]
    tf1dir = root / "tf1"
    tf1dir.mkdir()
    ckpts = H.train_checkpoints(tf1dir, models, steps=3)
    converted = {}
    for mid, (old, new) in programs.items():
        out = root / ("out_" + mid)
        extra = ["--use-ema"] if mid == "momentum_ema" else []
        report = root / ("report_%s.json" % mid)
        proc = H.convert_cli(ckpts[mid], old, new, "--out", out, "--optimizer", "--verify",
                             "--format", "keras", "--report", report, *extra)
        converted[mid] = (proc, out)
        converted[mid + ".report"] = report
    return {"root": root, "programs": programs, "models": {m["id"]: m for m in models},
            "ckpts": ckpts, "converted": converted}


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


# -- formulas (no TensorFlow)

def test_adam_iterations_from_beta1_power():
    # TF1 starts beta1_power at beta1 and multiplies after each step: after k steps it is
    # beta1**(k+1); Keras counts completed steps.
    for k in (0, 1, 7, 250):
        assert slots.adam_iterations(np.float32(0.9) ** (k + 1), 0.9) == k
    with pytest.raises(slots.SlotError):
        slots.adam_iterations(0.5, 0.9)


def test_momentum_velocity_formula():
    # one more step from accum a with gradient g: TF1 w - lr*(mu*a + g); Keras with
    # m = -lr*a: w + (mu*m - lr*g). Same update.
    a, g, lr, mu, w = np.array([0.3, -2.0]), np.array([1.5, 0.25]), 0.05, 0.9, np.array([1., 2.])
    m = slots.momentum_velocity(a, lr)
    assert np.allclose(w - lr * (mu * a + g), w + (mu * m - lr * g))


def test_adadelta_state_carries_over_unchanged():
    # TF1 ApplyAdadelta: a <- rho*a + (1-rho)*g^2; d = sqrt(u+eps)/sqrt(a+eps)*g;
    # w <- w - lr*d; u <- rho*u + (1-rho)*d^2. Keras Adadelta writes delta = -d and adds
    # lr*delta; its accumulators are a and u. Same state, same next steps.
    rng = np.random.RandomState(0)
    rho, eps, lr = 0.9, 1e-6, 1.0
    a, u, w = rng.rand(4), rng.rand(4) * 1e-3, rng.randn(4)
    tf1 = (a.copy(), u.copy(), w.copy())
    keras = (a.copy(), u.copy(), w.copy())
    for _ in range(3):
        g = rng.randn(4)
        a1, u1, w1 = tf1
        a1 = rho * a1 + (1 - rho) * g * g
        d = np.sqrt(u1 + eps) / np.sqrt(a1 + eps) * g
        tf1 = (a1, rho * u1 + (1 - rho) * d * d, w1 - lr * d)
        a2, u2, w2 = keras
        a2 = rho * a2 + (1 - rho) * np.square(g)
        delta = -(np.sqrt(u2 + eps) * g) / np.sqrt(a2 + eps)
        keras = (a2, rho * u2 + (1 - rho) * np.square(delta), w2 + lr * delta)
    for x, y in zip(tf1, keras):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_unsupported_optimizer_is_named():
    with pytest.raises(slots.SlotError, match="optimizer FtrlOptimizer is not supported"):
        slots.convert(np, {"class": "FtrlOptimizer"}, None, [], {}, None, {}, {})


def test_command_object():
    assert convert_checkpoint.name == "convert-checkpoint"


# -- conversion, accounted for and verified

def test_dry_run_accounts_for_every_variable(work):
    proc = H.convert_cli(work["ckpts"]["momentum_ema"], MOMENTUM / "old.py",
                         MOMENTUM / "new.py", "--dry-run", "--report", "-")
    _ok(proc)
    # `--report -`: the JSON report alone on stdout, the table on stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "dry-run" and report["written"]["checkpoint"] is None
    out = proc.stderr
    table = [line.split()[0] for line in out.splitlines()[1:] if line and line[0] != " "]
    reader_names = _checkpoint_names(work["ckpts"]["momentum_ema"])
    for name in reader_names:
        assert name in table, (name, out)
    assert "net/fc1/kernel/Momentum" in out and "--optimizer" in out
    assert "global_step" in out and "ExponentialMovingAverage shadow" in out
    assert "net/bn1/moving_mean" in out and "net/bn1/moving_variance" in out
    assert "dry run: nothing written" in out
    fates = {v["name"]: v["fate"] for v in report["variables"]}
    assert sorted(fates) == sorted(reader_names)
    assert fates["net/fc1/kernel/Momentum"] == "skipped" and fates["net/fc1/kernel"] == "mapped"


def _report(work, mid):
    with open(work["converted"][mid + ".report"]) as f:
        return json.load(f)


def test_json_report_lists_every_variable_with_its_fate_key_and_verify_numbers(work):
    proc, out = work["converted"]["momentum_ema"]
    _ok(proc)
    report = _report(work, "momentum_ema")
    assert report["status"] == "converted" and report["exit_code"] == 0
    names = _checkpoint_names(work["ckpts"]["momentum_ema"])
    by_name = {v["name"]: v for v in report["variables"]}
    assert sorted(by_name) == sorted(names) and report["checkpoint_variables"] == len(names)
    kernel = by_name["net/fc1/kernel"]
    assert kernel["fate"] == "mapped" and kernel["target"] == "net/fc1/kernel"
    assert kernel["shape"] == [6, 12] and "EMA shadow" in kernel["how"]
    assert by_name["net/fc1/kernel/Momentum"]["target"].startswith("optimizer:")
    assert by_name["net/fc1/kernel/ExponentialMovingAverage"]["fate"] == "source"
    # every mapped variable names its key in the checkpoint that was written
    written = set(_checkpoint_names(report["written"]["checkpoint"]))
    mapped = [v for v in report["variables"] if v["fate"] == "mapped"]
    assert mapped and all(v["checkpoint_key"] in written for v in mapped), mapped
    assert report["optimizers"][0]["iterations"] == 3
    verify = report["verify"]
    assert verify["passed"] and verify["tolerance"]["rtol"] > 0
    assert {o["key"] for o in verify["outputs"]} == {"tf/out/model/0", "keras/out/model/0"}
    assert all(o["verdict"] == "PASS" and 0 <= o["max_abs"] < 1e-5 for o in verify["outputs"])


def test_step_decayed_learning_rate_continues_at_the_same_step(work):
    """tf.train.exponential_decay / piecewise_constant fed by the global step: TF1's rate
    evaluated in the restored graph equals NEW's LearningRateSchedule at the converted
    iterations (= TF1's global step), so the conversion is exact (the resume test shows the
    next losses agree)."""
    for mid, rate, source in (("adam_decay", 0.05 * 0.5 ** 3, "beta1_power"),
                              ("momentum_piecewise", 0.02, "global step")):
        proc, _ = work["converted"][mid]
        text = _ok(proc)
        opt = _report(work, mid)["optimizers"][0]
        assert opt["iterations"] == 3 and source in opt["iterations_source"], opt
        lr = opt["learning_rate"]
        assert lr["schedule"] and lr["verdict"] == "exact", lr
        assert lr["tf1"] == pytest.approx(rate, rel=1e-6) and lr["step"] == 3
        assert "the schedule continues at the same step (exact)" in text
    # NEW's TF1Momentum (the rewrite's optimizer for a changing rate) keeps TF1's accumulator.
    accumulators = [v for v in _report(work, "momentum_piecewise")["variables"]
                    if v["name"].endswith("/Momentum")]
    assert accumulators and all(v["how"] == "copied (same update rule)" for v in accumulators)
    assert all("accumulator" in v["target"] for v in accumulators), accumulators


def test_a_different_schedule_is_reported_not_exact(work):
    old = H.FIXTURES / "adam_decay" / "old.py"
    proc = H.convert_cli(work["ckpts"]["adam_decay"], old,
                         H.FIXTURES / "adam_decay" / "new_other_schedule.py", "--optimizer",
                         "--dry-run", "--report", "-")
    report = json.loads(_ok(proc))
    lr = report["optimizers"][0]["learning_rate"]
    assert lr["verdict"] == "differs" and lr["keras"] == pytest.approx(0.05 * 0.6 ** 3)
    assert "resumed training will differ" in proc.stderr


def _checkpoint_names(prefix):
    code = ("import sys, tensorflow as tf\n"
            "print('\\n'.join(sorted(tf.train.load_checkpoint(sys.argv[1])"
            ".get_variable_to_shape_map())))")
    proc = subprocess.run([sys.executable, "-c", code, str(prefix)], capture_output=True,
                          text=True, env=runner.side_env("new", "cpu"), timeout=120)
    return proc.stdout.split()


def test_momentum_ema_converted_and_verified(work):
    proc, out = work["converted"]["momentum_ema"]
    text = _ok(proc)
    assert "PASS: NEW restored from the converted checkpoint matches" in text
    assert "tf/out/model/0" in text and "keras/out/model/0" in text
    assert (out / "model.weights.h5").is_file() and (out / "checkpoint").is_file()
    assert "optimizer:iterations" not in text  # table only printed with --dry-run or errors


@pytest.mark.parametrize("name", ACCEPTANCE_PROGRAMS)
def test_acceptance_checkpoint_converted_and_verified(work, name):
    if name not in work["converted"]:
        pytest.skip(NO_SHARED)
    proc, out = work["converted"][name]
    text = _ok(proc)
    assert "PASS: NEW restored from the converted checkpoint matches" in text, text
    # Layers the rewrite builds in loops are also named attributes, so tf.train.Checkpoint sees
    # them all (Keras 3 does not follow list items).
    assert "invisible to tf.train.Checkpoint" not in text
    assert (out / "checkpoint").is_file()


def test_model_option_converts_one_network_of_a_gan(work):
    if "gan_two_optimizers" not in work["programs"]:
        pytest.skip(NO_SHARED)
    old, new = work["programs"]["gan_two_optimizers"]
    proc = H.convert_cli(work["ckpts"]["gan_two_optimizers"], old, new, "--model", "Generator",
                         "--optimizer", "--dry-run")
    out = _ok(proc)
    assert "generator/fc1/kernel/Adam " in out and "g_optimizer:adam" in out
    assert "discriminator/fc1/kernel " in out and "not selected" in out
    assert "d_optimizer" not in out


def test_verify_fails_loudly_on_a_wrong_migration(work, tmp_path):
    proc = H.convert_cli(work["ckpts"]["momentum_ema"], MOMENTUM / "old.py",
                         MOMENTUM / "new_wrong_epsilon.py", "--out", tmp_path / "o", "--verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL: NEW restored from the converted checkpoint DOES NOT match" in proc.stdout


def test_unaccounted_variables_are_errors(work, tmp_path):
    """A checkpoint with a variable OLD's graph does not have, a missing model variable and
    a wrong shape: exit 2, each named, nothing written."""
    src = work["ckpts"]["momentum_ema"]
    bad = tmp_path / "bad" / "model.ckpt"
    bad.parent.mkdir()
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        "r = tf.train.load_checkpoint(sys.argv[1])\n"
        "names = sorted(r.get_variable_to_shape_map())\n"
        "vals = {n: r.get_tensor(n) for n in names if n != 'net/logits/bias'}\n"
        "vals['net/fc1/bias'] = np.zeros([5], np.float32)\n"
        "vals['net/extra_head/kernel'] = np.zeros([2, 2], np.float32)\n"
        "ks = sorted(vals)\n"
        "tf.raw_ops.SaveV2(prefix=sys.argv[2], tensor_names=ks, shape_and_slices=['']*len(ks),"
        " tensors=[tf.constant(vals[k]) for k in ks])\n")
    subprocess.run([sys.executable, "-c", code, str(src), str(bad)], check=True,
                   env=runner.side_env("new", "cpu"), capture_output=True, timeout=120)
    out_dir = tmp_path / "o"
    report = tmp_path / "report.json"
    proc = H.convert_cli(bad, MOMENTUM / "old.py", MOMENTUM / "new.py", "--out", out_dir,
                         "--report", report)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "net/extra_head/kernel" in proc.stdout and "does not exist in OLD's graph" in proc.stdout
    assert "net/logits/bias" in proc.stdout and "not in the checkpoint" in proc.stdout
    assert "net/fc1/bias: checkpoint shape [5]" in proc.stdout
    assert "FAIL: nothing written" in proc.stdout and not out_dir.exists()
    data = json.loads(report.read_text())
    assert data["status"] == "error" and data["exit_code"] == 2
    fates = {v["name"]: (v["fate"], v.get("reason")) for v in data["variables"]}
    assert fates["net/extra_head/kernel"] == ("error", "not in OLD's graph")
    assert fates["net/fc1/bias"] == ("error", "shape differs from graph")
    assert any("net/logits/bias" in e for e in data["errors"])


# -- optimizer state: resume in TF1 vs resume in TF2

def test_resume_gives_the_same_next_step_losses(work):
    """Restore the TF1 checkpoint in the TF1 graph and the converted one in NEW, run the
    same 3 seeded train steps: losses agree (step 0 tests the weights, steps 1-2 the
    optimizer state), and a fresh TF2 optimizer (cold) would not."""
    resumable = [m for m in FIXTURE_PROGRAMS + ("gan_two_optimizers", "slim_arg_scope",
                                                "cnn_update_ops", "python_bool_training")
                 if m in work["programs"]]
    tf1dir = work["root"] / "resume"
    tf1dir.mkdir()
    models = []
    for mid in resumable:
        m = dict(work["models"][mid])
        m["ckpt"] = work["ckpts"][mid]
        m["use_ema"] = mid == "momentum_ema"  # converted with --use-ema
        models.append(m)
    tf1 = H.tf1_job(tf1dir, models, resume={"steps": 3})
    runs = []
    for mid in resumable:
        proc, out = work["converted"][mid]
        _ok(proc)
        runs.append({"id": mid, "new": str(work["programs"][mid][1]),
                     "pairs": work["models"][mid]["pairs"],
                     "tf1_json": str(tf1dir / ("%s.tf1.json" % mid)),
                     "tf1_npz": str(tf1dir / ("%s.tf1.npz" % mid)),
                     "checkpoint": str(out / "ckpt-1"), "steps": 3,
                     "reset_iterations": mid == "adam_decay"})
    tf2 = H.tf2_resume(work["root"], runs)
    rtol, arel = compare.DEFAULT_TOLERANCES["loss"]
    for mid in resumable:
        old = np.array(tf1[mid]["resume_losses"])
        warm, cold = np.array(tf2[mid]["warm"]), np.array(tf2[mid]["cold"])
        print("resume %s: max |warm - tf1| = %.3g, max |cold - tf1| = %.3g"
              % (mid, np.max(np.abs(warm - old)), np.max(np.abs(cold - old))))
        assert compare.close(warm, old, rtol, arel), (mid, old, warm)
        # the first loss sees only the restored weights; later ones the optimizer state
        assert compare.close(cold[:1], old[:1], rtol, arel), (mid, old, cold)
        assert not compare.close(cold, old, rtol, arel), (mid, old, cold)
        # the converted step count (TF1's 3 steps; 0 where TF1 kept no counter) + 3 resumed
        carried = [o["iterations"] or 0 for o in _report(work, mid)["optimizers"]]
        assert tf2[mid]["iterations"] == [it + 3 for it in carried], (mid, tf2[mid], carried)
        if mid in FIXTURE_PROGRAMS:
            assert carried == [3], (mid, carried)
    # a decayed rate: the same state with the step count dropped would not continue TF1's run
    reset = np.array(tf2["adam_decay"]["reset_iterations"])
    print("adam_decay with iterations reset to 0: max |diff| = %.3g"
          % np.max(np.abs(reset - np.array(tf1["adam_decay"]["resume_losses"]))))
    assert not compare.close(reset, np.array(tf1["adam_decay"]["resume_losses"]), rtol, arel)
    if len(resumable) == len(FIXTURE_PROGRAMS):
        pytest.skip("only the fixture programs ran; " + NO_SHARED)
