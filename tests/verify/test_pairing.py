"""verify pairs what the rewrite generates for real programs: flags defined at import, model
objects passed under the program's own names, train steps named on a clash, a model function
called under two variable scopes with its mode set by a slim arg_scope.

One `apply` (libcst) and one verify run (one TF process per side) over:
fixtures/corpus/clipped_grads_flags.py (absl flags defined at import; the new side imports the
program once per variant, and the next program defines a `learning_rate` flag too),
fixtures/corpus/gan_network_objects.py (`train_d_optim_step(D, G, ...)`),
fixtures/verify/step_name_clash/old.py (steps `train_step_2`, `train_step_3`),
fixtures/corpus/slim_nchw.py (`small_net` built under `small_net` in training mode and under
`small_net_eval` in inference mode, both set by `slim.arg_scope`), and a copy of its migration
with one batch norm's epsilon changed (must fail in inference mode)."""
import ast
import os
import re
import subprocess
import sys

import pytest

from verify_helpers import FIXTURES, ROOT, run_module

from migrate.verify.discover import model_classes, step_model_arguments
from migrate.verify.new_worker import MAKER_RE, STEP_RE

CORPUS = os.path.join(ROOT, "fixtures", "corpus")
PROGRAMS = {
    "clipped_grads_flags": os.path.join(CORPUS, "clipped_grads_flags.py"),
    "gan_network_objects": os.path.join(CORPUS, "gan_network_objects.py"),
    "step_name_clash": os.path.join(FIXTURES, "step_name_clash", "old.py"),
    "slim_nchw": os.path.join(CORPUS, "slim_nchw.py"),
}
BROKEN = "slim_nchw_bn_epsilon"  # the migrated slim_nchw with one batch norm's epsilon 1e-3 -> 0.1


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    base = tmp_path_factory.mktemp("pairing")
    old, new = base / "old", base / "new"
    old.mkdir()
    for name, path in PROGRAMS.items():
        (old / (name + ".py")).write_bytes(open(path, "rb").read())
    apply = subprocess.run([sys.executable, "-m", "migrate", "apply", str(old), "--out", str(new),
                            "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert apply.returncode in (0, 1), apply.stdout + apply.stderr
    migrated = (new / "slim_nchw.py").read_text()
    broken = migrated.replace("epsilon=1e-3, center=True, scale=False, axis=1, "
                              "name='conv1_conv1_1_bn'",
                              "epsilon=0.1, center=True, scale=False, axis=1, "
                              "name='conv1_conv1_1_bn'")
    assert broken != migrated
    (new / (BROKEN + ".py")).write_text(broken)
    (old / (BROKEN + ".py")).write_bytes(open(PROGRAMS["slim_nchw"], "rb").read())
    return base, old, new


@pytest.fixture(scope="module")
def run(migrated):
    base, old, new = migrated
    report = str(base / "report.json")
    return run_module([str(old), str(new), "--report", report], report_path=report)


@pytest.mark.tf
def test_every_program_verifies(run):
    assert run.code == 1, run  # the broken copy only
    assert set(run.models) == set(PROGRAMS) | {BROKEN}, run
    for name, model in run.models.items():
        if name != BROKEN:
            assert model["status"] in ("pass", "known-divergence"), (name, run)


@pytest.mark.tf
def test_two_variable_scopes_are_two_models_and_arg_scope_sets_the_mode(run):
    """The training-mode call is compared with the first SmallNet, the inference-mode call
    (is_training=False from its arg_scope) with `SmallNet(name='small_net_eval')`; every TF1
    variable of both scopes has its Keras weight."""
    model = run.models["slim_nchw"]
    rows = {t["tensor"]: t for t in model["tensors"]}
    assert "20 TF1 variables, 20 Keras weights" in rows["inventory"]["note"], rows["inventory"]
    assert rows["forward.infer/SmallNet:0"]["status"] == "PASS"
    assert rows["forward.train/SmallNet:0"]["status"] == "PASS"
    assert rows["weight/small_net_eval/logits/weights"]["status"] == "PASS"
    broken = {t["tensor"]: t["status"] for t in run.models[BROKEN]["tensors"]}
    assert run.models[BROKEN]["status"] == "mismatch", broken
    assert broken["forward.infer/SmallNet:0"] == "FAIL", broken


@pytest.mark.tf
def test_flags_defined_at_import_survive_every_import(run):
    """Both variants ran (the noise floor is measured), and the step-0 gradients compared are
    the clipped ones both optimizers applied (TF1 apply_gradients, Keras optimizer.apply)."""
    model = run.models["clipped_grads_flags"]
    assert model.get("noise_floor") is not None, run
    grads = [t for t in model["tensors"] if t["tensor"].startswith("gradient/")]
    assert len(grads) == 6 and all(t["status"] == "PASS" for t in grads), grads


@pytest.mark.tf
def test_model_objects_pair_by_what_the_program_passes(run):
    model = run.models["gan_network_objects"]
    losses = {t["tensor"] for t in model["tensors"] if t["tensor"].startswith("loss/")}
    assert losses == {"loss/train_d_optim_step", "loss/train_g_optim_step"}, model["tensors"]


@pytest.mark.tf
def test_clash_suffixed_train_steps_are_paired_in_order(run):
    model = run.models["step_name_clash"]
    rows = {t["tensor"]: t["status"] for t in model["tensors"]}
    assert rows.get("loss/train_step_2") == "PASS" and rows.get("loss/train_step_3") == "PASS", rows


def test_step_names_the_rewrite_generates_are_the_ones_verify_accepts(migrated):
    """Every train step and optimizer factory the rewrite generated is found by verify's
    patterns; names the rewrite never generates on a clash (`_0`, `_1`, `_02`) are not."""
    _, _, new = migrated
    generated = set()
    for path in new.glob("*.py"):
        tree = ast.parse(path.read_bytes())
        generated |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                      and re.match(r"^(train|make)_", n.name)}
    assert {"train_step_2", "train_step_3", "make_train_optimizer"} <= generated, generated
    for name in generated:
        assert STEP_RE.match(name) or MAKER_RE.match(name), name
    for name in ("train_step_1", "train_step_0", "train_step_02", "train_d_step_x",
                 "make_optimizer_1", "train_steps"):
        assert not STEP_RE.match(name) and not MAKER_RE.match(name), name


def test_step_model_arguments_read_the_programs_own_calls(migrated):
    _, _, new = migrated
    tree = ast.parse((new / "gan_network_objects.py").read_bytes())
    found = step_model_arguments(tree, model_classes(tree))
    assert found["train_d_optim_step"] == {"D": "Discriminator", "G": "Generator"}
    assert found["train_g_optim_step"] == {"D": "Discriminator", "G": "Generator"}


def test_step_model_arguments_leave_out_what_is_ambiguous():
    tree = ast.parse(
        "class A(tf.keras.Model): pass\n"
        "class B(tf.keras.Model): pass\n"
        "def step(net, other, opt): pass\n"
        "def main():\n"
        "    a = A()\n"
        "    b = B()\n"
        "    step(a, b, opt)\n"
        "    step(b, other=b, opt=opt)\n"  # `net` is A in one call, B in the other
        "def rebinds():\n"
        "    m = A()\n"
        "    m = B()\n"  # one name, two classes in one scope
        "    step(m, *rest)\n")
    assert step_model_arguments(tree, ["A", "B"]) == {"step": {"other": "B"}}
