"""convert-checkpoint's TF2 side: build NEW's Keras models, fill them, write the checkpoint.

Run as `python -m migrate.checkpoint.tf2_worker JOB.json` in a Keras 3 process
(`TF_USE_LEGACY_KERAS` unset). Reads the TF1 checkpoint with `tf.train.load_checkpoint`
and the TF1 side's description (`<id>.tf1.json/.npz`), builds each paired Keras class on
the TF1 inference inputs, maps every checkpoint variable (`migrate.checkpoint.mapping`),
converts optimizer state by formula (`migrate.checkpoint.slots`), and writes
`tf.train.Checkpoint(model=..., optimizer=...)` (and `.weights.h5` with `--format keras`).
With `verify` it restores fresh models from the written checkpoint and runs them in
inference mode on the TF1 inputs. Results go to `<id>.tf2.json` / `<id>.tf2.npz`.
"""

import inspect
import os
import sys
import traceback

from migrate.checkpoint import mapping, slots
from migrate.verify import protocol
from migrate.verify.new_worker import (MAKER_RE, STEP_RE, _describe, _import_new, _lineno, call_inputs,
                                       constructor_arguments, snake)
from migrate.verify.protocol import VerifyError


class ConvertError(Exception):
    pass


def _maker_for(param, makers):
    cands = ["make_%s" % param, "make_optimizer" if param == "optimizer" else None]
    core = param.replace("optimizer", "").strip("_")
    if core:
        cands += ["make_%s_optimizer" % core, "make_optimizer_%s" % core]
    for c in cands:
        if c and c in makers:
            return c
    return next(iter(makers)) if len(makers) == 1 else None


def _pair_makers(module, n_ops):
    """Maker name per TF1 train op: the optimizer parameter of the i-th train step."""
    makers = {n: f for n, f in vars(module).items() if MAKER_RE.match(n) and callable(f)}
    steps = sorted([(n, f) for n, f in vars(module).items() if STEP_RE.match(n) and callable(f)],
                   key=lambda nf: _lineno(nf[1]))
    out = []
    for i in range(n_ops):
        maker = None
        if i < len(steps):
            fn = getattr(steps[i][1], "python_function", steps[i][1])
            for p in inspect.signature(fn).parameters:
                if "optimizer" in p:
                    maker = _maker_for(p, makers)
                    break
        if maker is None:
            ordered = sorted(makers, key=lambda n: _lineno(makers[n]))
            maker = ordered[i] if i < len(ordered) else (ordered[0] if len(ordered) == 1 else None)
        out.append(maker)
    return makers, out


def _objects_key(name, many):
    return snake(name) if many else "model"


def build_models(tf, keras, module, tf1_meta, arrays, pairs, kwargs):
    models = {}
    for entry in tf1_meta["forward"]:
        if entry["new"] not in [p["new"] for p in pairs]:
            continue
        cls = getattr(module, entry["new"], None)
        if not (inspect.isclass(cls) and issubclass(cls, keras.Model)):
            raise ConvertError("new program has no keras.Model subclass %r" % entry["new"])
        if entry["new"] in kwargs:
            args, named = [], kwargs[entry["new"]]
        else:  # as NEW's own code constructs it (`ModelFn(params=PARAMS)`), like verify
            args, named = constructor_arguments(module, entry["new"])
        try:
            m = cls(*args, **named)
        except TypeError as exc:
            raise ConvertError("cannot construct new %s(): %s; give its constructor arguments "
                               "in the spec ([new.model_kwargs.%s])" % (entry["new"], exc,
                                                                         entry["new"]))
        inputs = call_inputs(entry["inputs"], arrays, "key")
        try:
            m(*inputs, training=False)
        except Exception as exc:
            raise ConvertError("building new %s on inputs of shape %s failed: %s"
                               % (entry["new"], [list(x.shape) for x in inputs], _describe(exc)))
        models[entry["new"]] = m
    return models


def keras_vars(models, pairs):
    seen, out = set(), []
    for pair in pairs:
        for v in models[pair["new"]].weights:
            if id(v) in seen or not str(v.dtype).startswith("float"):
                continue
            seen.add(id(v))
            out.append(v)
    return out


def _checkpoint_keys(checkpoint, objs, opt_objects, rows):
    """Each mapped row's key in the written tf.train.Checkpoint (attribute names, e.g.
    `model/fc1/_kernel/.ATTRIBUTES/VARIABLE_VALUE`), from the checkpoint's object graph."""
    try:
        from tensorflow.python.checkpoint import graph_view
        trackables, paths = graph_view.ObjectGraphView(checkpoint).breadth_first_traversal()
    except Exception:  # a private TF API: the keys are a convenience, never a failure
        return
    by_id = {id(t): "/".join(ref.name for ref in paths[t]) + "/.ATTRIBUTES/VARIABLE_VALUE"
             for t in trackables}
    by_target = {}
    for key, obj in objs.items():
        if key in opt_objects:
            for v in obj.variables:
                by_target["%s:%s" % (key, v.path)] = by_id.get(id(v))
            by_target["%s:iterations" % key] = by_id.get(id(obj.iterations))
        else:
            for v in obj.weights:
                by_target[v.path] = by_id.get(id(v))
    for r in rows:
        if r["action"] in ("weight", "optimizer") and by_target.get(r["target"]):
            r["checkpoint_key"] = by_target[r["target"]]


def run(job):
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import numpy as np
    import tensorflow as tf
    import keras
    model = job["model"]
    wd = job["workdir"]
    tf1_meta = protocol.load_json(os.path.join(wd, "%s.tf1.json" % model["id"]))
    if "error" in tf1_meta:
        raise ConvertError(tf1_meta["error"])
    arrays = protocol.load_arrays(os.path.join(wd, "%s.tf1.npz" % model["id"]))
    reader = tf.train.load_checkpoint(job["ckpt"])
    ckpt = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    module = _import_new(model["new"], model["id"] + "_convert")
    pairs = model["pairs"]
    spec = model.get("new_spec", {})
    models = build_models(tf, keras, module, tf1_meta, arrays, pairs, spec.get("model_kwargs", {}))
    kvars = keras_vars(models, pairs)
    tf1_model = [(v["name"], v["shape"]) for v in tf1_meta["vars"]]
    res = mapping.map_model_weights(tf1_model, [(v.path, list(v.shape)) for v in kvars],
                                    spec.get("weights"))
    use_ema, with_opt = job.get("use_ema"), job.get("optimizer")
    others = mapping.classify(ckpt, tf1_meta, use_ema=use_ema, optimizer=with_opt)
    rows, errors, values, opt_notes = [], [], {}, []
    mism = {m[0]: m for m in res["shape_mismatch"]}
    model_names = {n for n, _ in tf1_model}
    selected = model.get("selected")
    for name, shape in tf1_model:
        if name not in ckpt:
            if name in res["mapping"] or name in mism:
                errors.append("model variable %s (shape %s) is not in the checkpoint"
                              % (name, shape))
                rows.append(mapping.row(name, shape, "ERROR", "", "", "missing from checkpoint"))
            continue
        cshape = ckpt[name]
        if list(cshape) != list(shape):
            errors.append("%s: checkpoint shape %s, OLD's graph %s" % (name, cshape, shape))
            rows.append(mapping.row(name, cshape, "ERROR", "", "", "shape differs from graph"))
            continue
        if name in mism:
            _, target, s1, s2 = mism[name]
            errors.append("%s: shape %s but Keras weight %s has %s" % (name, s1, target, s2))
            rows.append(mapping.row(name, cshape, "ERROR", target, "", "shape mismatch %s vs %s"
                                    % (s1, s2)))
            continue
        if name not in res["mapping"]:
            if selected:
                rows.append(mapping.row(name, cshape, "skip", "", "",
                                        "no weight in the selected model(s) %s"
                                        % ", ".join(selected)))
            else:
                errors.append("%s (shape %s) matches no weight of the new model(s); name it in "
                              "the spec ([model.weights] \"%s\" = \"<keras path>\")"
                              % (name, cshape, name))
                rows.append(mapping.row(name, cshape, "ERROR", "", "", "no Keras weight"))
            continue
        var = kvars[res["mapping"][name]]
        src, how = name, res["how"][name]
        if use_ema and name + mapping.EMA_SUFFIX in ckpt:
            src, how = name + mapping.EMA_SUFFIX, how + ", EMA shadow"
        values[id(var)] = (var, reader.get_tensor(src))  # by object: two layers may share a path
        rows.append(mapping.row(name, cshape, "weight", var.path, "by " + how))
    if use_ema:
        taken = sum(1 for r in rows if r["how"].endswith("EMA shadow"))
        if not taken:
            opt_notes.append("--use-ema: the checkpoint has no ExponentialMovingAverage "
                             "shadows of the model weights; raw values used")
        else:
            opt_notes.append("--use-ema: %d weight(s) take their EMA shadow values, the "
                             "rest (e.g. batch-norm statistics) their raw values" % taken)
    for path in res["unmapped_keras"]:
        errors.append("Keras weight %s gets no value from the checkpoint" % path)
        rows.append(mapping.row("-", None, "ERROR", path, "",
                                "Keras weight without a TF1 variable"))

    # optimizer state
    opt_objects, skipped_ops, result_optimizers = {}, set(), []
    if with_opt and tf1_meta.get("train_ops"):
        makers, chosen = _pair_makers(module, len(tf1_meta["train_ops"]))
        order = {id(v): i for m in models.values() for i, v in enumerate(m.trainable_variables)}
        by_tf1 = {n: kvars[i] for n, i in res["mapping"].items()}
        for i, op in enumerate(tf1_meta["train_ops"]):
            if selected and not any(n in by_tf1 for n in op["vars"]):
                skipped_ops.add(i)  # trains a model that --model did not select
                continue
            maker = chosen[i]
            if maker is None:
                errors.append("train op %d (%s): NEW defines no make_*optimizer() to receive its "
                              "state" % (i, op["class"]))
                continue
            if maker in opt_objects:
                errors.append("train ops share %s(); cannot split their optimizer state" % maker)
                continue
            opt = makers[maker]()
            var_list = sorted([by_tf1[n] for n in op["vars"] if n in by_tf1],
                              key=lambda v: order.get(id(v), 1 << 30))
            opt.build(var_list)
            try:
                state = slots.convert(np, op, opt, var_list, by_tf1, reader, ckpt, tf1_meta)
            except slots.SlotError as exc:
                errors.append("train op %d (%s -> %s): %s" % (i, op["class"], maker, exc))
                continue
            key = maker[len("make_"):] if maker.startswith("make_") else maker
            opt_objects[key] = (opt, state)
            result_optimizers.append({
                "train_op": i, "tf1_class": op["class"], "object": key,
                "keras_class": type(opt).__name__, "iterations": state["iterations"],
                "iterations_source": state["iterations_source"],
                "learning_rate": state["lr_check"]})
            for tf1_name, target, how in state["rows"]:
                rows.append(mapping.row(tf1_name, ckpt.get(tf1_name), "optimizer",
                                        "%s:%s" % (key, target), how))
            opt_notes.extend("%s: %s" % (key, n) for n in state["notes"])
    for name, (kind, info) in sorted(others.items()):
        if any(r["name"] == name for r in rows):
            continue
        shape = ckpt[name]
        if kind == "ema":
            if use_ema and info.get("var") in model_names:
                detail = "EMA shadow of %s: used as its value (--use-ema)" % info["var"]
                rows.append(mapping.row(name, shape, "weight*", "", "", detail))
            else:
                rows.append(mapping.row(name, shape, "skip", "", "",
                                        "ExponentialMovingAverage shadow (pass --use-ema to "
                                        "take it instead of the raw value)"))
        elif kind in ("slot", "counter") and info.get("op") in skipped_ops:
            rows.append(mapping.row(name, shape, "skip", "", "",
                                    "optimizer state of a model not selected (--model)"))
        elif kind in ("slot", "counter"):
            what = "optimizer slot" if kind == "slot" else "optimizer counter"
            reason = ("%s of %s (pass --optimizer to carry optimizer state)"
                      % (what, info.get("class")) if not with_opt else
                      "%s of %s: not used by the conversion" % (what, info.get("class")))
            rows.append(mapping.row(name, shape, "skip", "", "", reason))
        elif kind == "global_step":
            rows.append(mapping.row(name, shape, "skip", "", "",
                                    "global step (training counter; with --optimizer it sets "
                                    "optimizer.iterations)" if not with_opt else
                                    "global step: not used (see optimizer rows)"))
        elif kind == "other":
            rows.append(mapping.row(name, shape, "skip", "", "",
                                    "not a model variable (%s)" % dtypes[name].name))
        else:
            errors.append("checkpoint variable %s (shape %s) does not exist in OLD's graph "
                          "(a different program version?)" % (name, shape))
            rows.append(mapping.row(name, shape, "ERROR", "", "", "not in OLD's graph"))
    # any checkpoint variable still unaccounted for
    named = {r["name"] for r in rows}
    for name in sorted(ckpt):
        if name not in named:
            kind = others.get(name, ("model",))[0]
            rows.append(mapping.row(name, ckpt[name], "skip", "", "",
                                    "used as a source above" if kind != "model"
                                    else "not in the selected model(s)"))
    result = {"rows": rows, "errors": errors, "notes": opt_notes,
              "checkpoint_vars": len(ckpt), "optimizers": result_optimizers}
    if errors:
        return result, {}

    for var, value in values.values():
        var.assign(value.astype(str(var.dtype)) if hasattr(value, "astype") else value)
    many = model.get("all_pairs", len(models)) > 1  # keys stay stable under --model
    objs = {_objects_key(n, many): m for n, m in models.items()}
    for key, (opt, state) in opt_objects.items():
        state["apply"]()
        objs[key] = opt
    # by position: a second instance of a class gets a uniquified path (`model_1/...`)
    expected = [(v.path, np.asarray(v.numpy())) for v in kvars]
    out = job["out"]
    stage = os.path.join(wd, "stage")
    os.makedirs(stage, exist_ok=True)
    checkpoint = tf.train.Checkpoint(**objs)
    prefix = checkpoint.save(os.path.join(stage, "ckpt"))
    _checkpoint_keys(checkpoint, objs, opt_objects, rows)
    h5 = []
    if job.get("format") == "keras":
        for n, m in models.items():
            path = os.path.join(stage, "%s.weights.h5" % _objects_key(n, many))
            m.save_weights(path)
            h5.append((n, path))

    def fresh_models(tag):
        module2 = _import_new(model["new"], "%s_%s" % (model["id"], tag))
        return build_models(tf, keras, module2, tf1_meta, arrays, pairs,
                            spec.get("model_kwargs", {}))

    def lost(fresh):
        """Weights whose restored value is not the converted one."""
        got = keras_vars(fresh, pairs)
        if len(got) != len(expected):
            return ["(a fresh model has %d weights, not %d)" % (len(got), len(expected))]
        return [path for (path, want), v in zip(expected, got)
                if not np.array_equal(np.asarray(v.numpy()), want)]

    # round trip: every written artifact restores every weight into a fresh NEW model
    restored = {}
    fresh = fresh_models("tfckpt")
    tf.train.Checkpoint(**{_objects_key(n, many): m for n, m in fresh.items()}).read(
        prefix).expect_partial()
    missing = lost(fresh)
    if missing:
        msg = ("tf.train.Checkpoint(%s) cannot hold %d of %d weights: %s. Keras 3 layers kept "
               "in a Python list (self.x = [...]) are invisible to tf.train.Checkpoint; "
               "a TF2 program restoring with tf.train.Checkpoint would silently keep their "
               "initial values" % (", ".join(sorted(objs)), len(missing), len(expected),
                                   ", ".join(missing)))
        if h5:
            result["notes"].append(msg + "; the checkpoint was not written, use the "
                                   ".weights.h5 file(s) (model.load_weights)")
        else:
            result["errors"].append(msg + "; rerun with --format keras for .weights.h5")
            return result, {}
    else:
        restored["tf"] = fresh
    if h5:
        fresh = fresh_models("h5")
        for n, path in h5:
            fresh[n].load_weights(path)
        missing = lost(fresh)
        if missing:
            result["errors"].append(".weights.h5 round trip lost %s" % ", ".join(missing))
            return result, {}
        restored["keras"] = fresh
    if job.get("dry_run"):
        return result, {}
    os.makedirs(out, exist_ok=True)
    import shutil
    if "tf" in restored:
        for f in os.listdir(stage):
            if f.startswith("ckpt-") or f == "checkpoint":
                shutil.copy2(os.path.join(stage, f), os.path.join(out, f))
        result["checkpoint"] = os.path.join(out, os.path.basename(prefix))
        result["objects"] = sorted(objs)
    result["weights_h5"] = []
    for n, path in h5:
        dst = os.path.join(out, os.path.basename(path))
        shutil.copy2(path, dst)
        result["weights_h5"].append(dst)
    out_arrays = {}
    if job.get("verify"):
        for fmt_name, fresh in restored.items():
            for entry in tf1_meta["forward"]:
                if entry["new"] not in fresh:
                    continue
                inputs = call_inputs(entry["inputs"], arrays, "key")
                outs = fresh[entry["new"]](*inputs, training=bool(entry.get("training")))
                flat = protocol.flatten(outs)  # nested outputs (logits, {predictions}) like verify
                for j, o in enumerate(flat):
                    out_arrays["%s/out/%s/%d" % (fmt_name, entry["old"], j)] = np.asarray(o)
        result["verified_formats"] = sorted(restored)
    return result, out_arrays


def main(argv=None):
    argv = sys.argv if argv is None else argv
    job = protocol.load_json(argv[1])
    protocol.redirect_stdout_to_stderr()
    mid = job["model"]["id"]
    out_json = os.path.join(job["workdir"], "%s.tf2.json" % mid)
    out_npz = os.path.join(job["workdir"], "%s.tf2.npz" % mid)
    try:
        result, arrays = run(job)
        protocol.save_arrays(out_npz, arrays)
        protocol.save_json(out_json, result)
    except (ConvertError, VerifyError) as exc:
        protocol.save_json(out_json, {"fatal": str(exc)})
    except BaseException as exc:
        protocol.save_json(out_json, {"fatal": "internal error on the TF2 side: %s\n%s"
                                      % (_describe(exc), traceback.format_exc())})
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
