"""Programs whose model is hand-made `tf.Variable` weights (no Keras class): verify runs NEW's
own variable statements (in `main()`, or at module level) up to the training loop, pairs the
variables with TF1's `Variable`, `Variable_1`, ... by creation order and shape, and hands the
train steps the objects NEW binds (`weights` dict, `theta_D` list). One verify run over the
two corpus programs' migrations (fixtures/verify/hand_made_vars) and a seeded bug."""
import os

import pytest

import ast
import textwrap

from migrate.verify.hand_made import map_by_order, setup_statements
from verify_helpers import ROOT, fixture, make_tree, run_module, tensor_rows

CORPUS = os.path.join(ROOT, "fixtures", "corpus")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("hand_made")
    mlp = os.path.join(CORPUS, "mlp_dropout_keep_prob.py")
    old_dir, new_dir = make_tree(str(base), {
        "mlp": (mlp, fixture("hand_made_vars", "mlp_new.py")),
        "gan": (os.path.join(CORPUS, "vanilla_gan_vars.py"),
                fixture("hand_made_vars", "gan_new.py")),
        "mlp_biases_not_trained": (mlp, fixture("hand_made_vars", "bugs",
                                                "mlp_biases_not_trained.py")),
        "gan_extra_variable": (os.path.join(CORPUS, "vanilla_gan_vars.py"),
                               fixture("hand_made_vars", "bugs", "gan_extra_variable.py"))})
    report = os.path.join(str(base), "report.json")
    return run_module([old_dir, new_dir, "--report", report, "--steps", "5"],
                      report_path=report)


@pytest.mark.tf
def test_hand_made_variable_programs_verify(run):
    for name, steps, nvars in (("mlp", ["train_optimizer_step"], 6),
                               ("gan", ["train_D_solver_step", "train_G_solver_step"], 8)):
        m = run.models[name]
        assert m["status"] == "pass", run
        passed = {t["tensor"] for t in tensor_rows(m, "PASS")}
        for step in steps:
            assert "loss/%s" % step in passed
        weights = {t for t in passed if t.startswith("weight/Variable")}
        assert len(weights) == nvars, (name, sorted(passed))
        assert any(t.startswith("gradient/") for t in passed)
    # the discriminator's step differentiates exactly TF1's var_list (theta_D)
    gan = {t["tensor"] for t in tensor_rows(run.models["gan"])}
    assert {"gradient/train_D_solver_step/Variable_%d" % i for i in (1, 2, 3)} <= gan
    assert not any(t.startswith("gradient/train_D_solver_step/Variable_4") for t in gan)


@pytest.mark.tf
def test_a_var_list_missing_variables_is_caught(run):
    assert run.code == 1, run
    m = run.models["mlp_biases_not_trained"]
    assert m["status"] == "mismatch"
    failed = {t["tensor"] for t in tensor_rows(m, "FAIL")}
    assert "loss/train_optimizer_step" in failed
    assert "weight/Variable_3" in failed  # biases['b1'] never moved on the new side


@pytest.mark.tf
def test_a_variable_count_disagreement_fails_loudly(run):
    m = run.models["gan_extra_variable"]
    assert m["status"] == "mismatch"
    notes = {t["tensor"]: t.get("note") for t in tensor_rows(m, "FAIL")}
    assert notes["inventory"] == "8 TF1 variables, 9 new variables, mapped: none"
    assert notes["inventory/extra"] == "new variable extra has no TF1 counterpart"


def test_map_by_order_refuses_to_guess():
    tf1 = [("Variable", [2, 3]), ("Variable_1", [3])]
    ok = map_by_order(tf1, [("w", [2, 3]), ("b", [3])])
    assert ok["mapping"] == {"Variable": 0, "Variable_1": 1} and not ok["shape_mismatch"]
    swapped = map_by_order(tf1, [("b", [3]), ("w", [2, 3])])
    assert [m[0] for m in swapped["shape_mismatch"]] == ["Variable", "Variable_1"]
    extra = map_by_order(tf1, [("w", [2, 3]), ("b", [3]), ("c", [1])])
    assert extra["mapping"] == {} and extra["unmapped_keras"] == ["w", "b", "c"]
    assert extra["unmapped_tf1"] == ["Variable", "Variable_1"]


def test_setup_stops_at_the_training_loop_not_at_a_loop_making_variables():
    body = ast.parse(textwrap.dedent("""
        W = []
        for i in range(3):
            W.append(tf.Variable(tf.zeros([i + 1])))
        opt = make_optimizer()
        for epoch in range(10):
            train_step(W, opt, data)
        print(W)
    """)).body
    setup = setup_statements(body, {"train_step"})
    assert [type(s).__name__ for s in setup] == ["Assign", "For", "Assign"]
