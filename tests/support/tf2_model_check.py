"""Keras 3 side of the model-equivalence test: build each migrated class, load TF1 weights, compare.

Run as: python tf2_model_check.py SPEC.json DUMP_DIR  (prints one JSON line per model)
"""
import importlib.util
import json
import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from migrate.model_rewrite.weights import match_weights  # noqa: E402


def load_classes(path, name):
    """Import the migrated module; where module-level TF1 code that only the training-loop
    rewrite removes (e.g. `slim = tf.contrib.slim`) fails, run the other top-level statements."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module, []
    except Exception:
        pass
    import ast
    tree = ast.parse(open(path).read())
    skipped = []
    for stmt in tree.body:
        code = compile(ast.Module([stmt], []), path, "exec")
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            skipped.append(f"line {stmt.lineno}: {type(exc).__name__}: {exc}")
    return module, skipped


def check(entry, dump_dir):
    data = np.load(f"{dump_dir}/{entry['id']}.npz")
    names = json.load(open(f"{dump_dir}/{entry['id']}.json"))
    module, skipped = load_classes(entry["new"], f"new_{entry['id']}")
    kwargs = {name: tf.Variable(0, trainable=False) for name in entry.get("variables", [])}
    model = getattr(module, entry["class"])(**kwargs)
    inputs = [tf.constant(data[f"input_{i}"]) for i in range(len(entry["inputs"]))]
    model(*inputs, training=False)
    tf1 = [(n, data[f"var_{i}"].shape) for i, n in enumerate(names)]
    keras = [(w.path, tuple(w.shape)) for w in model.weights]
    pairs, left_tf1, left_keras = match_weights(tf1, keras)
    by_name = {n: data[f"var_{i}"] for i, n in enumerate(names)}
    for w in model.weights:
        if w.path in pairs:
            w.assign(by_name[pairs[w.path]])
    out = model(*inputs, training=False).numpy()
    ref = data["output"]
    return {"id": entry["id"], "tf1_variables": len(tf1), "keras_weights": len(keras),
            "shapes_equal": sorted(map(tuple, (s for _, s in tf1))) == sorted(s for _, s in keras),
            "unmatched_tf1": left_tf1, "unmatched_keras": left_keras,
            "max_abs": float(np.max(np.abs(out - ref))) if out.shape == ref.shape else None,
            "skipped_module_statements": skipped,
            "close": bool(out.shape == ref.shape and np.allclose(out, ref, rtol=1e-5, atol=1e-5))}


def main(spec_path, dump_dir):
    for entry in json.load(open(spec_path)):
        try:
            print(json.dumps(check(entry, dump_dir)), flush=True)
        except Exception as exc:  # reported per model, the test fails on it
            print(json.dumps({"id": entry["id"], "error": f"{type(exc).__name__}: {exc}"}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
