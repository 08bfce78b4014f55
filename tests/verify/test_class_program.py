"""A whole-program class (its __init__ builds placeholders, network and train op; Session
methods) migrated by the class-program rewrite verifies: the old side constructs the class as
its program does and reads the network's inputs/outputs from the object (`self.inputs`,
`self.logits`), the new side constructs NEW's class and uses its `network` attribute, its
optimizer factory `make_optimizer(self)` and the train step its methods call. One rewrite
(`apply`) and one verify run over three pairs: the migration, a copy with a changed Adam
epsilon, and a class whose networks were its methods (DCGAN: `self.generator = Generator(...)`
pairs with the old method `generator`, each call of it one network call)."""
import os
import shutil
import subprocess
import sys

import pytest

from verify_helpers import ROOT, fixture, run_module, tensor_rows

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("class_program"))
    old_dir, new_dir = os.path.join(base, "old"), os.path.join(base, "new")
    os.makedirs(old_dir)
    for name in ("classifier", "classifier_eps"):
        shutil.copy(fixture("class_program", "old.py"), os.path.join(old_dir, name + ".py"))
    # networks made from methods of the old class (carpedm20 DCGAN: `self.generator(z)`,
    # `self.discriminator(x, reuse=True)`), its Session made before the graph
    shutil.copy(os.path.join(ROOT, "fixtures", "corpus", "dcgan_class_methods.py"), old_dir)
    subprocess.run([sys.executable, "-m", "migrate", "apply", old_dir, "--out", new_dir, "-q"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    bug = os.path.join(new_dir, "classifier_eps.py")
    with open(bug) as f:
        text = f.read()
    assert "epsilon=1e-08" in text and "make_optimizer(self)" in text, text
    with open(bug, "w") as f:
        f.write(text.replace("epsilon=1e-08", "epsilon=1e-07"))
    report = os.path.join(base, "report.json")
    return run_module([old_dir, new_dir, "--report", report, "--steps", "10"],
                      report_path=report)


def test_class_program_pairs_and_passes(run):
    m = run.models["classifier"]
    assert m["status"] == "pass", run
    passed = {t["tensor"] for t in tensor_rows(m, "PASS")}
    # weights transferred (all mapped), forward in both modes, step-0 gradients, the loss at
    # each step, moving statistics and weights after training
    for name in ("inventory", "forward.infer/ClassifierNetwork:0",
                 "forward.train/ClassifierNetwork:0", "gradient/train_step/hidden/kernel",
                 "loss/train_step", "moving/bn/moving_mean", "moving/bn/moving_variance",
                 "weight/logits/kernel", "after.infer/ClassifierNetwork:0"):
        assert name in passed, (name, sorted(passed))
    loss = [t for t in m["tensors"] if t["tensor"] == "loss/train_step"][0]
    assert loss["shape"] == [10]


def test_changed_epsilon_in_make_optimizer_is_caught(run):
    assert run.code == 1, run
    m = run.models["classifier_eps"]
    assert m["status"] == "mismatch"
    failed = {t["tensor"] for t in tensor_rows(m, "FAIL")}
    # Adam's epsilon only shows where gradients are tiny (Keras's 1e-7 vs TF1's 1e-8)
    assert any(t.startswith("weight/") for t in failed), failed
    # the forward pass at the transferred initial weights is the same
    assert "forward.infer/ClassifierNetwork:0" not in failed


def test_networks_made_from_methods_of_the_old_class(run):
    """`self.generator = DCGANGenerator(...)` / `self.discriminator = DCGANDiscriminator(...)`
    pair with the old methods `DCGAN.generator` / `DCGAN.discriminator` (the discriminator
    called twice, on real and fake data); both networks come from one new DCGAN object, the
    optimizer factories get `lr`/`beta1` from the old `train()` that built the optimizers."""
    m = run.models["dcgan_class_methods"]
    # the known divergences of batch norm in a GAN (fused-bn-bessel, bn-update-order)
    assert m["status"] == "known-divergence", run
    assert not tensor_rows(m, "FAIL"), run
    passed = {t["tensor"] for t in tensor_rows(m, "PASS")}
    inventory = [t for t in m["tensors"] if t["tensor"] == "inventory"][0]
    assert "18 TF1 variables, 18 Keras weights" in str(inventory), inventory
    for name in ("forward.train/DCGANGenerator:0", "forward.infer/DCGANDiscriminator:1",
                 "loss/train_d_optim_step", "loss/train_g_optim_step",
                 "weight/generator/g_h1_lin/kernel", "weight/discriminator/d_h2_lin/kernel",
                 "moving/generator/g_bn0/moving_mean"):
        assert name in passed, (name, sorted(passed))
    assert any(t.startswith("gradient/train_d_optim_step/discriminator/") for t in passed)
    assert any(t.startswith("gradient/train_g_optim_step/generator/") for t in passed)
