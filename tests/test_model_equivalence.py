"""The migrated acceptance models build under TF 2.21 (no legacy Keras), have the same variables
as the TF1 graph, and compute the same inference output after weight transfer (rtol/atol 1e-5).

One legacy-TF1 process and one Keras 3 process for all models (TF start-up costs ~5 s each).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ACCEPTANCE, REPO, cli_env, run_cli

pytestmark = pytest.mark.tf

# Per program: the model function, its input shapes (without batch), and the class the rewrite
# makes of it. The training flag is passed as Python False: inference mode.
MODELS = [
    ("cnn_update_ops", "model", "Model", [[8, 8, 3]], {"is_training": False}, []),
    ("contrib_batch_norm", "model", "Model", [[20]], {"is_training": False}, []),
    ("contrib_inplace_updates", "model", "Model", [[6, 6, 2]], {"is_training": False}, []),
    ("python_bool_training", "model", "Model", [[12]], {"is_training": False, "reuse": False}, []),
    ("helper_blocks", "model", "Model", [[8, 8, 3]], {"is_training": False}, []),
    ("gan_two_optimizers", "generator", "Generator", [[8]], {"is_training": False}, []),
    ("gan_two_optimizers", "discriminator", "Discriminator", [[4]], {"is_training": False}, []),
    ("seed_antipattern", "model", "Model", [[6, 6, 3]], {"is_training": False}, ["forward_counter"]),
    ("forgot_update_ops", "model", "Model", [[10]], {"is_training": False}, []),
    ("slim_arg_scope", "model", "Model", [[8, 8, 1]], {"is_training": False}, []),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not ACCEPTANCE.is_dir():
        pytest.skip(f"../shared acceptance programs not found at {ACCEPTANCE}")
    pytest.importorskip("tf_keras", reason="the TF1 side needs tf-keras (pip install '.[verify]')")
    work = tmp_path_factory.mktemp("equivalence")
    migrated = work / "migrated"
    result = run_cli("apply", ACCEPTANCE, "--out", migrated)
    assert result.returncode in (0, 1), result.stderr
    spec = []
    for index, (program, function, cls, inputs, kwargs, variables) in enumerate(MODELS):
        spec.append({"id": f"{index}_{program}_{function}", "old": str(ACCEPTANCE / f"{program}.py"),
                     "new": str(migrated / f"{program}.py"), "function": function, "class": cls,
                     "inputs": inputs, "kwargs": kwargs, "variables": variables})
    (work / "spec.json").write_text(json.dumps(spec))
    dump = work / "dump"
    dump.mkdir()
    support = REPO / "tests" / "support"
    old = subprocess.run([sys.executable, str(support / "tf1_model_dump.py"), str(work / "spec.json"),
                          str(dump), str(ACCEPTANCE.parent)], capture_output=True, text=True,
                         timeout=600, env=cli_env(TF_CPP_MIN_LOG_LEVEL="2"))
    assert old.returncode == 0, old.stderr[-3000:]
    env = cli_env(TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    new = subprocess.run([sys.executable, str(support / "tf2_model_check.py"), str(work / "spec.json"),
                          str(dump)], capture_output=True, text=True, timeout=600, env=env)
    assert new.returncode == 0, new.stderr[-3000:]
    return {r["id"]: r for r in map(json.loads, new.stdout.splitlines()) if r.get("id")}


@pytest.mark.parametrize("index", range(len(MODELS)), ids=[f"{m[0]}.{m[1]}" for m in MODELS])
def test_migrated_model_matches_tf1(results, index):
    program, function = MODELS[index][:2]
    result = results[f"{index}_{program}_{function}"]
    assert "error" not in result, result.get("error")
    assert result["tf1_variables"] == result["keras_weights"], result
    assert result["shapes_equal"], result
    assert not result["unmatched_tf1"] and not result["unmatched_keras"], result
    assert result["close"], result
