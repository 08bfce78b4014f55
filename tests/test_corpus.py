"""Realistic TF1 programs (fixtures/corpus/) in the styles of public repositories.

Each program imitates one real-world pattern (its module docstring says which) and runs under
the TF1 stand-in, printing one `RESULT ...` line. `apply --out` over the whole corpus must:

(a) never print an `internal error`;
(b) write outputs that parse, and a second `apply` over them changes nothing;
(e) leave a function it cannot convert exactly as it was, with a `# tf-migrate: TFM301/TFM401`
    marker and a reported finding -- nothing half-converted, and no converted function whose
    old name is still used by code left unchanged (in the same file or via `from ops import *`);
    a function whose TF1 scope uses `reuse=tf.AUTO_REUSE` stays one model per caller (one set
    of weights, as in TF1);
(c) the programs that convert completely run on plain TF 2.21 (no TF_USE_LEGACY_KERAS) and print
    RESULT -- one TF subprocess for all of them (`tf`);
(d) `verify` on those pairs exits 0 (`tf`, `slow`).

Known problems are `xfail(strict=True)` with the problem named, so a fix flips them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, cli_env, run_cli

CORPUS = FIXTURES / "corpus"
PROGRAMS = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.py"))
PY2 = {"py2_print_script.py"}
# Programs the tool converts completely (no TFM301/TFM401 left); each must run on plain TF2.
CONVERTS = {"conv_autoencoder.py", "mnist_deep_keep_prob.py", "resnet_block_functions.py",
            "l2_regularized_cnn.py",  # a local regularizer copied into __init__
            "resnet_v2_scope.py",
            "official_resnet_class.py",  # a network class: __call__ builds it (TFM300)
            "estimator_cnn_model_fn.py",  # through the estimator model_fn rewrite (TFM410)
            # GANs: module-level batch_norm wrapper objects -> sub-layers, get_variable helpers
            # (`linear`, pix2pix's conv/deconv in ops.py) -> Layers with build(), var_lists
            # filtered by variable name ('d_' in v.name, get_collection(..., scope='gen'))
            "dcgan_bn_class.py", "dcgan_bn_class_layers.py", "gan_conv_transpose_auto_reuse.py",
            "dcgan_split/model.py",
            # pix2pix U-Net: loops under `variable_scope("encoder_%d" % (len(layers) + 1))`
            "pix2pix_unet.py",
            # pix2pix create_model(): `with tf.variable_scope("generator"):` at the call sites,
            # the discriminator under a second variable_scope(..., reuse=True)
            "pix2pix_call_site_scopes.py",
            # network objects: var_list=D.vars, a property returning the model's variables
            "gan_network_objects.py",
            # summaries of a schedule, a tf.Variable global step, clipped gradients, absl flags
            "clipped_grads_flags.py",
            # slim nets: `with slim.arg_scope(net_arg_scope()):` around the net resolved into it
            "slim_vgg_style.py", "slim_vgg_end_points.py", "slim_nchw.py",
            # Session programs at module level / under `if __name__ == "__main__":` (TFM400)
            "module_level_cnn_script.py", "if_main_mlp_script.py",
            # a class that is the program: placeholders and train op built in __init__,
            # `train_step(self, sess, ...)` methods -> a Keras network + train steps
            "class_based_model.py",
            # carpedm20's DCGAN: `self.discriminator(self.G, reuse=True)` methods taking
            # tensors, optimizers built in train(), the caller's Session kept as `self.sess`
            "dcgan_class_methods.py",
            # tf.data: an initializable iterator restarted each epoch, OutOfRangeError loop
            "dataset_cnn.py",
            # WGAN: `sess.run(clip_D)` of assign ops on the critic's variables; WGAN-GP: a
            # random alpha drawn per step, tf.gradients in the loss -> a nested GradientTape
            "wgan_weight_clipping.py", "wgan_gradient_penalty.py",
            # hand-made tf.Variable weights: dicts passed to the model function, module-level
            # globals read by generator/discriminator with var_list=theta_D (variable_models.py)
            "mlp_dropout_keep_prob.py", "vanilla_gan_vars.py"}
MARKER = re.compile(r"#\s*tf-migrate:\s*(TFM301|TFM401)\b")

HALF_CONVERTED = ("caller rewrite edits a function it then marks TFM401 'left unchanged': "
                  "`f = F()` + `f(x, training=...)` inserted into TF1 placeholder/Session code "
                  "(migrate/rules/model_classes.py _CallerRewriter runs on failed functions)")
DANGLING = ("a helper converted to a class while its caller is left unchanged: the caller still "
            "calls the old function name (NameError)")
AUTO_REUSE = ("reuse=tf.AUTO_REUSE scope called twice becomes two model instances (two sets of "
              "weights; the sampler uses an untrained generator): wrong output")
TF1_INSIDE = ("generator converted to a Keras class although it calls module-level `g_bn0 = "
              "batch_norm(...)` objects wrapping tf.contrib.layers.batch_norm (TF1-only, "
              "variables untracked by Keras; TFM103 says it 'becomes' BatchNormalization but "
              "the class is never converted)")
DEFAULT_DROPPED = ("the training flag's default is dropped: generator(z, train=True) becomes "
                   "call(self, z, train) and the caller's `generator(z)` raises TypeError "
                   "(even under the TF1 stand-in)")
DOES_NOT_RUN_KEEP_PROB = ("does not run on TF2: keep_prob became a positional call() argument and "
                          "the train step calls `deepnn(x, 1.0)`; Keras 3 refuses non-tensor "
                          "positional arguments (ValueError)")
UNVERIFIABLE_UNKNOWN_RANK = ("verify exits 3: `tf.placeholder(tf.bool)` (no shape) training "
                             "flag has 'unknown rank'")
UNVERIFIABLE_UNNAMED = ("verify exits 3: unnamed placeholders (`Placeholder`, `Placeholder_1`) do not "
                        "pair with train-step parameters; verify should pair them by the Python "
                        "variable the program assigns them to")

XFAIL = {}


def params(check, programs=PROGRAMS):
    out = []
    for program in programs:
        reason = XFAIL.get((check, program))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(program, id=program, marks=marks))
    return out


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    first, second = root / "first", root / "second"
    run = run_cli("apply", CORPUS, "--out", first, "--format", "json", timeout=600)
    report = json.loads(run.stdout.decode())
    again = run_cli("apply", first, "--out", second, "-q", timeout=600)
    findings = {}
    errors = {}
    for entry in report["files"]:
        rel = Path(entry["path"]).resolve().relative_to(CORPUS.resolve()).as_posix()
        findings[rel] = entry["findings"]
        errors[rel] = entry["error"]
    return {"first": first, "second": second, "run": run, "again": again,
            "findings": findings, "errors": errors}


def _source(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


# -- (a) ----------------------------------------------------------------------------------------
def test_no_internal_error(migrated):
    for run in (migrated["run"], migrated["again"]):
        stderr = run.stderr.decode(errors="replace")
        crashes = [line for line in stderr.splitlines() if "internal error" in line]
        assert not crashes, "\n".join(crashes)
        assert run.returncode in (0, 1, 2), stderr


def test_every_program_reported(migrated):
    assert set(migrated["findings"]) == set(PROGRAMS)
    for program in PROGRAMS:
        if program in PY2:
            assert "Python 2" in (migrated["errors"][program] or "")
        else:
            assert migrated["errors"][program] is None, migrated["errors"][program]


def test_programs_that_convert(migrated):
    """The set of completely converted programs is what CONVERTS says (update it when a fix
    converts more)."""
    converted = set()
    for program in PROGRAMS:
        if program in PY2 or not re.search(r"__main__|\bSession\(", _source(CORPUS / program)):
            continue  # helper modules (dcgan_split/ops.py) are not programs
        out = _source(migrated["first"] / program)
        if out != _source(CORPUS / program) and not MARKER.search(out):
            converted.add(program)
    assert converted == CONVERTS


# -- (b) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("program", params("parses"))
def test_output_parses(migrated, program):
    out = migrated["first"] / program
    if program in PY2:
        assert out.read_bytes() == (CORPUS / program).read_bytes()
        return
    ast.parse(out.read_bytes(), filename=str(out))


@pytest.mark.parametrize("program", params("idempotent"))
def test_second_apply_changes_nothing(migrated, program):
    assert (migrated["second"] / program).read_bytes() == (migrated["first"] / program).read_bytes()


# -- (e) ----------------------------------------------------------------------------------------
def _top_functions(tree: ast.Module):
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _marked_functions(source: str):
    """Top-level defs and classes whose line above carries a TFM301/TFM401 marker: name -> code."""
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            above = node.lineno - 2 - len(node.decorator_list)
            if above >= 0:
                match = MARKER.search(lines[above])
                if match:
                    out[node.name] = match.group(1)
    return out


@pytest.mark.parametrize("program", params("untouched", [p for p in PROGRAMS if p not in PY2]))
def test_left_unchanged_means_unchanged_and_reported(migrated, program):
    before = _source(CORPUS / program)
    after = _source(migrated["first"] / program)
    old = _top_functions(ast.parse(before))
    new = _top_functions(ast.parse(after))
    marked = _marked_functions(after)
    reported = {}
    for f in migrated["findings"][program]:
        if f["code"] in ("TFM301", "TFM401") and "left unchanged" in f["message"]:
            if f["message"].startswith("the module-level program"):
                continue  # marked above its first statement, not a function
            name = re.match(r"`(\w+)`", f["message"]).group(1)
            reported[name] = f
    assert set(marked) == set(reported), (marked, sorted(reported))
    for name, code in marked.items():
        assert reported[name]["code"] == code
        assert reported[name]["line"] == old[name].lineno
        assert ast.dump(new[name]) == ast.dump(old[name]), (
            f"`{name}` is marked {code} 'left unchanged' but was edited")


def _bound_names(node) -> set:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)) and sub is not node:
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            for alias in sub.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return names


def _star_siblings(path: Path, tree: ast.Module):
    return [path.parent / f"{n.module}.py" for n in tree.body
            if isinstance(n, ast.ImportFrom) and n.module and any(a.name == "*" for a in n.names)
            and (path.parent / f"{n.module}.py").is_file()]


def _module_names(path: Path) -> set:
    tree = ast.parse(path.read_bytes())
    names = {n for n in _bound_names(tree)}
    for sibling in _star_siblings(path, tree):
        names |= _module_names(sibling)
    return names


@pytest.mark.parametrize("program", params("dangling", [p for p in PROGRAMS if p not in PY2]))
def test_no_name_left_dangling(migrated, program):
    """Every name the input defined (itself or through `from x import *`) and the output still
    uses is still defined in the output."""
    old_defined = _module_names(CORPUS / program)
    out_path = migrated["first"] / program
    new_tree = ast.parse(out_path.read_bytes())
    new_defined = _module_names(out_path)
    dangling = set()
    for node in ast.walk(new_tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                and node.id in old_defined and node.id not in new_defined:
            dangling.add(node.id)
    assert not dangling, f"used but no longer defined: {sorted(dangling)}"


@pytest.mark.parametrize("program", params("auto_reuse", [p for p in PROGRAMS if p not in PY2]))
def test_auto_reuse_scope_is_one_model_per_caller(migrated, program):
    old_tree = ast.parse((CORPUS / program).read_bytes())
    new_tree = ast.parse((migrated["first"] / program).read_bytes())
    shared = set()
    for node in old_tree.body:
        if isinstance(node, ast.FunctionDef) and "AUTO_REUSE" in ast.dump(node):
            shared.add(node.name)
    classes = {}
    for node in new_tree.body:
        doc = ast.get_docstring(node) if isinstance(node, ast.ClassDef) else None
        match = re.search(r"from the TF1 function\s+`(\w+)\(", doc or "")
        if match and match.group(1) in shared:
            classes[node.name] = match.group(1)
    for func in [n for n in new_tree.body if isinstance(n, ast.FunctionDef)]:
        for cls in classes:
            made = [c for c in ast.walk(func) if isinstance(c, ast.Call)
                    and isinstance(c.func, ast.Name) and c.func.id == cls]
            assert len(made) <= 1, (
                f"`{func.name}` builds {len(made)} `{cls}` objects; TF1's AUTO_REUSE scope "
                f"`{classes[cls]}` shared one set of weights")


def _converted_classes(tree: ast.Module):
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)
            and "Migrated by tf-migrate" in (ast.get_docstring(n) or "")}


def _tf1_objects(tree: ast.Module, converted) -> set:
    """Module-level `x = C(...)` objects of classes (not converted) that use TF1-only API."""
    tf1_classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)
                   and n.name not in converted
                   and re.search(r"contrib|variable_scope|get_variable", ast.unparse(n))}
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Name) and node.value.func.id in tf1_classes:
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


@pytest.mark.parametrize("program", params("tf1_inside", [p for p in PROGRAMS if p not in PY2]))
def test_converted_class_uses_no_tf1_object(migrated, program):
    """A converted Keras class must not call a TF1 object (a `batch_norm` wrapper on
    tf.contrib.layers.batch_norm) whose variables Keras neither creates nor tracks."""
    tree = ast.parse((migrated["first"] / program).read_bytes())
    converted = _converted_classes(tree)
    objects = _tf1_objects(tree, converted)
    used = {(cls, n.id) for cls, node in converted.items() for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in objects}
    assert not used, f"converted classes call TF1 objects: {sorted(used)}"


@pytest.mark.parametrize("program", params("signature", [p for p in PROGRAMS if p not in PY2]))
def test_model_calls_match_call_signature(migrated, program):
    """Every `obj(...)` on a converted model supplies the arguments its call() requires, and
    passes no Python constant positionally (Keras 3 raises ValueError for those)."""
    tree = ast.parse((migrated["first"] / program).read_bytes())
    converted = _converted_classes(tree)
    required = {}
    for name, cls in converted.items():
        call = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "call"),
                    None)
        if call is not None:
            args = call.args.args[1:]
            required[name] = [a.arg for a in args[:len(args) - len(call.args.defaults)]]
    problems = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        objects = {}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name) and node.value.func.id in required:
                objects.update({t.id: node.value.func.id for t in node.targets
                                if isinstance(t, ast.Name)})
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in objects:
                need = required[objects[node.func.id]]
                given = set(need[:len(node.args)]) | {k.arg for k in node.keywords}
                missing = [p for p in need if p not in given]
                constants = [ast.unparse(a) for a in node.args[1:] if isinstance(a, ast.Constant)]
                if missing or constants:
                    problems.append(f"{func.name}: {ast.unparse(node)} (missing {missing}, "
                                    f"positional constants {constants})")
    assert not problems, "\n".join(problems)


# -- (c), (d) -----------------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import os, runpy, sys, traceback
    assert "TF_USE_LEGACY_KERAS" not in os.environ
    for path in sys.argv[1:]:
        print("=== " + path, flush=True)
        try:
            runpy.run_path(path, run_name="__main__")
        except BaseException:
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
""")


@pytest.fixture(scope="module")
def tf2_runs(migrated):
    """All completely converted programs, run in one plain-TF2 subprocess: path -> output."""
    env = cli_env()
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    paths = [str(migrated["first"] / p) for p in sorted(CONVERTS)]
    run = subprocess.run([sys.executable, "-c", DRIVER, *paths], env=env, capture_output=True,
                         timeout=900, cwd=str(migrated["first"]))
    stdout = run.stdout.decode(errors="replace")
    sections = dict(re.findall(r"^=== (\S+)\n(.*?)(?=^=== |\Z)", stdout, re.S | re.M))
    return {Path(p).relative_to(migrated["first"]).as_posix(): sections.get(p, "<not run>\n"
            + run.stderr.decode(errors="replace")[-2000:]) for p in paths}


@pytest.mark.tf
@pytest.mark.parametrize("program", params("tf2_run", sorted(CONVERTS)))
def test_converted_program_runs_on_plain_tf2(tf2_runs, program):
    output = tf2_runs[program]
    assert re.search(r"^RESULT ", output, re.M), output[-3000:]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("program", params("verify", sorted(CONVERTS)))
def test_verify_converted_pair(migrated, program):
    run = run_cli("verify", CORPUS / program, migrated["first"] / program, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr).decode(errors="replace")[-3000:]
