"""convert-checkpoint end to end: TF1 checkpoints made by training real programs a few
steps in the legacy process, converted by the real CLI, restored in TF2 and compared
(inference outputs through `--verify`, next-step losses when resuming training).

All TF work is batched: one TF1 process trains every checkpoint, one CLI run per program
converts it (with --verify), one TF1 and one TF2 process run every resume.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from migrate.checkpoint import slots
from migrate.checkpoint.command import convert_checkpoint
from migrate.verify import compare, runner

from . import ckpt_helpers as H

MOMENTUM = H.FIXTURES / "momentum_ema"
ACCEPTANCE_PROGRAMS = ("slim_arg_scope", "cnn_update_ops", "gan_two_optimizers",
                       "python_bool_training", "helper_blocks")
NO_SHARED = "../shared acceptance programs not found at %s (a user's clone has no ../shared)" % (
    H.SHARED_TF1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    programs = {"momentum_ema": (MOMENTUM / "old.py", MOMENTUM / "new.py")}
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
        proc = H.convert_cli(ckpts[mid], old, new, "--out", out, "--optimizer", "--verify",
                             "--format", "keras", *extra)
        converted[mid] = (proc, out)
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


def test_command_object():
    assert convert_checkpoint.name == "convert-checkpoint"


# -- conversion, accounted for and verified

def test_dry_run_accounts_for_every_variable(work):
    proc = H.convert_cli(work["ckpts"]["momentum_ema"], MOMENTUM / "old.py",
                         MOMENTUM / "new.py", "--dry-run")
    out = _ok(proc)
    table = [line.split()[0] for line in out.splitlines()[1:] if line and line[0] != " "]
    reader_names = _checkpoint_names(work["ckpts"]["momentum_ema"])
    for name in reader_names:
        assert name in table, (name, out)
    assert "net/fc1/kernel/Momentum" in out and "--optimizer" in out
    assert "global_step" in out and "ExponentialMovingAverage shadow" in out
    assert "net/bn1/moving_mean" in out and "net/bn1/moving_variance" in out
    assert "dry run: nothing written" in out


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
    proc = H.convert_cli(bad, MOMENTUM / "old.py", MOMENTUM / "new.py", "--out", out_dir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "net/extra_head/kernel" in proc.stdout and "does not exist in OLD's graph" in proc.stdout
    assert "net/logits/bias" in proc.stdout and "not in the checkpoint" in proc.stdout
    assert "net/fc1/bias: checkpoint shape [5]" in proc.stdout
    assert "FAIL: nothing written" in proc.stdout and not out_dir.exists()


# -- optimizer state: resume in TF1 vs resume in TF2

def test_resume_gives_the_same_next_step_losses(work):
    """Restore the TF1 checkpoint in the TF1 graph and the converted one in NEW, run the
    same 3 seeded train steps: losses agree (step 0 tests the weights, steps 1-2 the
    optimizer state), and a fresh TF2 optimizer (cold) would not."""
    resumable = [m for m in ("momentum_ema", "gan_two_optimizers", "slim_arg_scope",
                             "cnn_update_ops", "python_bool_training") if m in work["programs"]]
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
                     "checkpoint": str(out / "ckpt-1"), "steps": 3})
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
    if len(resumable) == 1:
        pytest.skip("only the fixture program ran; " + NO_SHARED)
