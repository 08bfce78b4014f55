"""verify's old side: run a TF1 program's own graph-building code, then drive its graph.

Run as `python -m migrate.verify.old_worker JOB.json` (never import it in a process
that uses Keras 3: it installs the TF1 emulation of `tf1_runtime`).

Per model of the job:
  1. A fresh `tf.Graph`; the program module is imported under a private name and
     its paired model functions are wrapped to record their calls (inputs, the
     training flag, outputs).
  2. The entry point (`main()` by default) runs until the program creates its
     Session: the graph is then complete, `_GraphComplete` aborts the program.
     `Optimizer.compute_gradients` / `apply_gradients` (hence `minimize` and
     `slim.learning.create_train_op`) are intercepted to record each train op, its
     loss and its var_list, in program order.
  3. verify drives the graph itself: init, dump, seeded feeds, forward outputs in
     inference and training mode, gradients at step 0, N train steps (train ops in
     program order each step), final variables, BN update counts, fused-BN sizes.
"""

import sys
import time

from migrate.verify import feed_probe, protocol
from migrate.verify.protocol import VerifyError
# Graph capture shared with convert-checkpoint (migrate.checkpoint.tf1_worker); the old
# private names are kept so the rest of this module reads as before.
from migrate.verify.tf1_graph import (
    STATE,
    ancestors as _ancestors,
    clean as _clean,
    describe as _describe,
    extend_train_op as _extend_train_op,
    Feeder as _Feeder,
    GraphComplete as _GraphComplete,
    import_program as _import_program,
    install_hooks as _install_hooks,
    is_flag as _is_flag,
    is_tensor as _is_tensor,
    model_outputs as _model_outputs,
    training_value as _training_value,
    wrap_model_function as _wrap_model_function,
)

ADAM_FAMILY = ("Adam", "Nadam", "Adamax")
NULL_GRAD_RATIO = 1e-4
SYNTHETIC_LEARNING_RATE = 0.01  # plain SGD on the synthetic loss: no optimizer state to match


def run_model(tf, model, job, out_json, out_npz):
    import numpy as np
    t0, cpu0 = time.time(), time.process_time()
    steps = int(job["steps"])
    batch = int(job["batch_size"])
    spec_inputs = model.get("inputs", {})
    graph = tf.Graph()
    STATE.__init__()
    arrays = {}
    meta = {"id": model["id"], "side": "old", "steps": steps, "batch_size": batch}
    with graph.as_default():
        tf.set_random_seed(0)
        STATE.active = True
        try:
            module = _import_program(model["old"], model["id"])
        except _GraphComplete:
            module = None
        except BaseException as exc:
            STATE.active = False
            raise VerifyError("importing the old program failed: %s" % _describe(exc))
        functions = [p["old"] for p in model["pairs"]]
        if module is not None:
            for fname in functions:
                if not callable(getattr(module, fname, None)):
                    raise VerifyError("old program has no function %r (paired with new "
                                      "class %r)" % (fname, _new_of(model, fname)))
                _wrap_model_function(module, fname)
            entry = model.get("old_entry") or "main"
            fn = protocol.entry_function(module, model.get("old_entry"))
            if fn is None:
                raise VerifyError("old program has no entry function %r; name it in the "
                                  "spec ([[model]] old_entry = ...)" % entry)
            STATE.block_sessions = True
            feed_probe.start()
            try:
                fn(*(model.get("old_entry_args") or protocol.default_entry_args(fn)))
            except _GraphComplete:
                pass
            except BaseException as exc:
                if feed_probe.PROBE.session is None:  # before its Session: the graph is not built
                    if isinstance(exc, SystemExit):
                        raise VerifyError("old program called sys.exit(%s) before creating "
                                          "its Session" % (exc.code,))
                    raise VerifyError("old program failed while building its graph: %s"
                                      % _describe(exc))
                meta.setdefault("notes", []).append(
                    "the old program stopped after creating its Session (%s); its graph was "
                    "complete" % _describe(exc))
            finally:
                STATE.block_sessions = False
                STATE.active = False
                _, fed = feed_probe.finish()
            spec_inputs = _with_fed_values(spec_inputs, fed, meta)
        meta["timing_build_s"] = time.time() - t0
        meta["dropout_disabled"] = STATE.dropout_sites
    if STATE.graph is not None and STATE.graph is not graph:
        graph = STATE.graph  # the program built its own tf.Graph()
        meta["own_graph"] = True
    if graph.finalized:  # MonitoredTrainingSession/Supervisor finalize it; verify adds ops
        graph._unsafe_unfinalize()
    with graph.as_default():
        _drive(tf, np, graph, model, job, meta, arrays, steps, batch, spec_inputs)
    meta["timing_s"] = time.time() - t0
    meta["cpu_s"] = time.process_time() - cpu0
    protocol.save_arrays(out_npz, arrays)
    protocol.save_json(out_json, meta)


def _model_args(model, init_values):
    """What the program passed its model functions besides tensors, for NEW classes whose
    constructor takes the same parameter (a step counter `tf.Variable`, a width): per old
    function, parameter -> {"variable": initial value, "dtype"} or {"value": Python scalar}."""
    out = {}
    for pair in model["pairs"]:
        calls = STATE.calls.get(pair["old"]) or []
        if not calls:
            continue
        args = {}
        for name, value in calls[0]["args"]:
            if hasattr(value, "initializer") and getattr(value, "name", None) in init_values:
                args[name] = {"variable": init_values[value.name].tolist(),
                              "dtype": value.dtype.base_dtype.name}
            elif isinstance(value, (bool, int, float, str)):
                args[name] = {"value": value}
        out[pair["old"]] = args
    return out


def _load_all(sess, variables, values):
    """Variable.load for all of them in one Session.run (what load does per variable: run
    the initializer with the value fed for the initial value); per variable where that
    form does not apply."""
    feed, ops, rest = {}, [], []
    for v in variables:
        init = getattr(v, "initializer", None)
        if init is not None and len(init.inputs) > 1 and init.inputs[1] not in feed:
            feed[init.inputs[1]] = values[v.name]
            ops.append(init)
        else:
            rest.append(v)
    if ops:
        sess.run(ops, feed_dict=feed)
    for v in rest:
        v.load(values[v.name], sess)


def _with_fed_values(spec_inputs, fed, meta):
    """Scalar run-time values the program fed at its first step (feed_probe), as spec
    values; the spec's own values win."""
    taken = {}
    for name, value in sorted(fed.items()):
        if name in spec_inputs or name.rsplit("/", 1)[-1] in spec_inputs:
            continue
        taken[name] = value
    if not taken:
        return spec_inputs
    meta.setdefault("notes", []).append(
        "run-time value(s) taken from what the old program fed at its first step, used at "
        "every step on both sides: %s (a spec [model.inputs.NAME] value overrides)"
        % ", ".join("%s = %r" % kv for kv in sorted(taken.items())))
    return dict(spec_inputs, **{name: {"value": value} for name, value in taken.items()})


def _unused_fed_args(args, feeding, feeder):
    """Tensor arguments of a model-function call that do not reach its outputs under verify
    (a `keep_prob` placeholder once dropout is the identity), with the scalar value the program
    fed them at its first step (or the spec's): NEW's call() still takes the parameter, so it
    is passed that value; it cannot change any compared number, since it reaches no output."""
    fixed = {}
    for name, v in args:
        if not _is_tensor(v) or _is_flag(v) or v.op.name in feeding:
            continue
        if v.op.type not in ("Placeholder", "PlaceholderWithDefault"):
            continue
        spec = feeder.spec_for(v, name)
        if "value" in spec and not isinstance(spec["value"], (list, tuple)):
            fixed[name] = spec["value"]
    return fixed


def _new_of(model, fname):
    for p in model["pairs"]:
        if p["old"] == fname:
            return p["new"]
    return None


def _drive(tf, np, graph, model, job, meta, arrays, steps, batch, spec_inputs):
    global_step = set(v.name for v in graph.get_collection(tf.GraphKeys.GLOBAL_STEP))
    all_vars = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
    model_vars = [v for v in all_vars
                  if v.name not in STATE.optimizer_vars and v.name not in global_step
                  and v.dtype.base_dtype.is_floating]
    trainable = {v.name for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)}
    meta["vars"] = [{"name": _clean(v.name), "shape": v.shape.as_list(),
                     "trainable": v.name in trainable} for v in model_vars]
    moving = [v for v in model_vars
              if _clean(v.name).rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")]

    feeder = _Feeder(tf, graph, int(job.get("seed", 0)), batch, spec_inputs)
    flags = [op.outputs[0] for op in graph.get_operations()
             if op.type in ("Placeholder", "PlaceholderWithDefault") and _is_flag(op.outputs[0])]
    meta["training_flags"] = [_clean(t.name) for t in flags]

    # -- forward calls per paired model function
    fwd = []
    for pair in model["pairs"]:
        fname = pair["old"]
        calls = STATE.calls.get(fname) or []
        if not calls:
            raise VerifyError("old function %r was never called while the program built "
                              "its graph" % fname)
        modes = {}
        for call in calls:
            flag, value = _training_value(call["args"])
            if flag is not None:
                modes.setdefault("infer", (call, flag, False))
                modes.setdefault("train", (call, flag, True))
            elif value is not None:
                modes.setdefault("train" if value else "infer", (call, None, value))
            else:
                modes.setdefault("infer", (call, None, None))
                modes.setdefault("train", (call, None, None))
        entry = {"old": fname, "new": pair["new"], "modes": {}}
        if "infer" not in modes:
            meta.setdefault("notes", []).append(
                "old %s() was only called in training mode: no inference-mode comparison"
                % fname)
        for mode in ("infer", "train"):
            if mode not in modes:
                continue
            call, flag, value = modes[mode]
            inputs = [(n, v) for n, v in call["args"] if _is_tensor(v) and not _is_flag(v)]
            inputs += [("%s.%s" % (n, k), v[k]) for n, v in call["args"] if isinstance(v, dict)
                       for k in sorted(v) if _is_tensor(v[k]) and not _is_flag(v[k])]
            outs = _model_outputs(call["out"])
            feeding = {o.name for o in _ancestors(outs)}
            fixed = _unused_fed_args(call["args"], feeding, feeder)
            inputs = [(n, v) for n, v in inputs if v.op.name in feeding]
            entry["modes"][mode] = {
                "inputs": [{"param": n, "tensor": _clean(v.name), "shape": None}
                           for n, v in inputs],
                "fixed_args": fixed,
                "outputs": [_clean(o.name) for o in outs],
                "flag": _clean(flag.name) if flag is not None else None,
                "python_training": value,
                "_t": (inputs, outs, flag)}
        fwd.append(entry)

    # -- train ops (a program without one trains on verify's synthetic loss)
    if not STATE.train_ops:
        _add_synthetic_train_ops(tf, graph, fwd, meta)
    train_ops = []
    for i, rec in enumerate(STATE.train_ops):
        if rec.get("synthetic"):
            inputs = rec["synthetic"].pop("_inputs")
            train_ops.append({"index": i, "rec": rec, "fetch": rec["op"], "data": inputs,
                              "flags": [rec["flag"]] if rec.get("flag") is not None else [],
                              "grads": tf.gradients(rec["loss"], rec["vars"])})
            continue
        if rec["loss"] is None:
            raise VerifyError("train op %d has no loss (apply_gradients without "
                              "compute_gradients); name it in the spec" % i)
        fetch = _extend_train_op(graph, rec["op"])
        anc = _ancestors([fetch, rec["loss"]])
        phs = [op.outputs[0] for op in anc
               if op.type in ("Placeholder", "PlaceholderWithDefault")]
        data_phs = sorted([p for p in phs if not _is_flag(p) and not (
            p.op.type == "PlaceholderWithDefault"
            and not feeder.spec_for(p, _clean(p.name).rsplit("/", 1)[-1]))],
            key=lambda t: t.op._id)
        flag_phs = [p for p in phs if _is_flag(p)]
        train_ops.append({"index": i, "rec": rec, "fetch": fetch, "data": data_phs,
                          "flags": flag_phs, "grads": tf.gradients(rec["loss"], rec["vars"])})

    # fused batch norm ops (D1): per moving_variance, the rank-reduced element count n
    size_tensors = {}
    for op in graph.get_operations():
        if op.type.startswith("FusedBatchNorm") and "Grad" not in op.type:
            try:
                training = op.get_attr("is_training")
            except Exception:
                training = True
            if not training:
                continue
            for v in moving:
                name = _clean(v.name)
                if not name.endswith("moving_variance"):
                    continue
                scope = name[: -len("moving_variance")]
                if op.name.startswith(scope) and name not in size_tensors:
                    fmt = op.get_attr("data_format")
                    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
                    x = op.inputs[0]
                    caxis = 1 if fmt.startswith("NC") else -1
                    with graph.as_default():
                        size_tensors[name] = (op, tf.size(x) // tf.shape(x)[caxis])
    meta["fused_bn_ops"] = sorted({op.type for op, _ in size_tensors.values()})

    sess = tf.Session(graph=graph)
    with sess:
        sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        init_values = dict(zip([v.name for v in all_vars], sess.run(all_vars)))
        meta["model_args"] = _model_args(model, init_values)
        for v in model_vars:
            arrays["init/" + _clean(v.name)] = init_values[v.name]

        def restore_all():
            _load_all(sess, all_vars, init_values)

        # forward outputs at the initial weights, both modes
        for entry in fwd:
            fname = entry["old"]
            shared_inputs = {}
            for mode in ("infer", "train"):
                if mode not in entry["modes"]:
                    continue
                m = entry["modes"][mode]
                inputs, outs, flag = m.pop("_t")
                feed = {}
                for k, (pname, tensor) in enumerate(inputs):
                    key = "fwd_in/%s/%s" % (fname, pname)
                    if key not in shared_inputs:
                        shared_inputs[key] = feeder.array(tensor, pname)
                        arrays[key] = shared_inputs[key]
                        arrays["held_in/%s/%s" % (fname, pname)] = feeder.array(tensor, pname)
                    feed[tensor] = shared_inputs[key]
                    m["inputs"][k]["key"] = key
                    m["inputs"][k]["held_key"] = "held_in/%s/%s" % (fname, pname)
                for f in flags:
                    feed[f] = (mode == "train")
                if flag is not None:
                    feed[flag] = (mode == "train")
                try:
                    values = sess.run(outs, feed_dict=feed)
                except Exception as exc:
                    raise VerifyError("forward pass of old %r (%s mode) failed: %s"
                                      % (fname, mode, _describe(exc)))
                m["output_keys"] = []
                for j, val in enumerate(values):
                    key = "fwd/%s/%s/%d" % (fname, mode, j)
                    arrays[key] = val
                    m["output_keys"].append(key)
                m["_infer_feed"] = (inputs, outs, flag)
            restore_all()
        meta["forward"] = [{k: v for k, v in e.items()} for e in fwd]

        # data for every train op and step
        feeds = []
        for step in range(steps):
            per = []
            for t in train_ops:
                feed = {}
                for ph in t["data"]:
                    pname = _clean(ph.name)
                    arr = feeder.array(ph, pname.rsplit("/", 1)[-1])
                    if ph.shape.ndims == 0:
                        meta.setdefault("constants", {})[pname.rsplit("/", 1)[-1]] = arr.item()
                    arrays["data/%d/%d/%s" % (t["index"], step, pname)] = arr
                    feed[ph] = arr
                for f in t["flags"]:
                    feed[f] = True
                for f in flags:
                    feed.setdefault(f, True)
                per.append(feed)
            feeds.append(per)

        # gradients at step 0 and null-gradient parameters (D5)
        frozen = {}
        meta["train_ops"] = []
        for t in train_ops:
            rec = t["rec"]
            # the state this train op sees at step 0: after the earlier ops of step 0 ran
            restore_all()
            for prev_t in train_ops[: t["index"]]:
                sess.run(prev_t["fetch"], feed_dict=feeds[0][prev_t["index"]])
                for v in model_vars:
                    if _clean(v.name) in frozen:
                        v.load(init_values[v.name], sess)
            grads = sess.run([g for g in t["grads"] if g is not None],
                             feed_dict=feeds[0][t["index"]])
            it = iter(grads)
            gmax = {}
            for v, g in zip(rec["vars"], t["grads"]):
                name = _clean(v.name)
                if g is None:
                    gmax[name] = 0.0
                    continue
                val = next(it)
                if hasattr(val, "values"):  # IndexedSlicesValue
                    dense = np.zeros(v.shape.as_list(), dtype=np.float32)
                    np.add.at(dense, val.indices, val.values)
                    val = dense
                arrays["grad0/%d/%s" % (t["index"], name)] = val
                gmax[name] = float(np.max(np.abs(val))) if val.size else 0.0
            top = max(gmax.values()) if gmax else 0.0
            null = [n for n, g in gmax.items() if top > 0 and g <= NULL_GRAD_RATIO * top]
            adam = any(a in rec["optimizer"] for a in ADAM_FAMILY)
            if adam:
                for n in null:
                    frozen[n] = True
            meta["train_ops"].append({
                "index": t["index"], "optimizer": rec["optimizer"],
                "loss": _clean(rec["loss"].name), "fetch": t["fetch"].name,
                "vars": [_clean(v.name) for v in rec["vars"]],
                "data": [{"placeholder": _clean(p.name), "dtype": p.dtype.base_dtype.name,
                          "var": STATE.placeholder_vars.get(p.op.name),
                          "shape": p.shape.as_list() if p.shape.ndims is not None else None}
                         for p in t["data"]],
                "null_grad": null, "frozen": null if adam else [],
                "synthetic": rec.get("synthetic")})
        # fused BN element counts (needs a feed reaching the op)
        meta["fused_bn"] = {}
        for name, (op, size_t) in sorted(size_tensors.items()):
            n = None
            for t in train_ops:
                if op.name in {o.name for o in _ancestors([t["fetch"], t["rec"]["loss"]])}:
                    try:
                        n = int(sess.run(size_t, feed_dict=feeds[0][t["index"]]))
                    except Exception:
                        n = None
                    break
            meta["fused_bn"][name] = {"n": n, "op": op.type}

        restore_all()
        frozen_vars = [v for v in model_vars if _clean(v.name) in frozen]
        meta["frozen"] = sorted(frozen)

        # training
        losses = {t["index"]: [] for t in train_ops}
        updates = {_clean(v.name): 0 for v in moving}
        updated_by = {t["index"]: set() for t in train_ops}
        prev = dict(zip([_clean(v.name) for v in moving], sess.run(moving))) if moving else {}
        t_train = time.time()
        for step in range(steps):
            for t in train_ops:
                try:
                    _, value = sess.run([t["fetch"], t["rec"]["loss"]],
                                        feed_dict=feeds[step][t["index"]])
                except Exception as exc:
                    raise VerifyError("old train op %d failed at step %d: %s"
                                      % (t["index"], step, _describe(exc)))
                losses[t["index"]].append(float(value))
                for v in frozen_vars:
                    v.load(init_values[v.name], sess)
                if moving:
                    cur = dict(zip(prev, sess.run(moving)))
                    for k in prev:
                        if not np.array_equal(cur[k], prev[k]):
                            updates[k] += 1
                            updated_by[t["index"]].add(k)
                    prev = cur
        meta["timing_train_s"] = time.time() - t_train
        for t in train_ops:
            arrays["loss/%d" % t["index"]] = np.asarray(losses[t["index"]], dtype=np.float64)
        meta["bn_updates"] = updates
        meta["never_updated"] = sorted(k for k, n in updates.items() if n == 0)
        meta["updated_by"] = {str(i): sorted(v) for i, v in updated_by.items()}
        # updated by some train ops but not by others (GAN: per-scope UPDATE_OPS)
        meta["partial_updates"] = sorted(
            k for k in updates if updates[k] and len(train_ops) > 1
            and any(k not in u for u in updated_by.values()))
        final = sess.run(model_vars)
        for v, val in zip(model_vars, final):
            arrays["final/" + _clean(v.name)] = val

        # inference after training on held-out inputs
        for entry in fwd:
            m = entry["modes"].get("infer")
            if not m:
                continue
            inputs, outs, flag = m.pop("_infer_feed")
            feed = {tensor: arrays["held_in/%s/%s" % (entry["old"], pname)]
                    for pname, tensor in inputs}
            for f in flags:
                feed[f] = False
            if flag is not None:
                feed[flag] = False
            values = sess.run(outs, feed_dict=feed)
            m["after_keys"] = []
            for j, val in enumerate(values):
                key = "after/%s/%d" % (entry["old"], j)
                arrays[key] = val
                m["after_keys"].append(key)
        for entry in fwd:
            for m in entry["modes"].values():
                m.pop("_infer_feed", None)
        meta["forward"] = fwd


def _add_synthetic_train_ops(tf, graph, fwd, meta):
    """The program has no loss to pair (no optimizer at all, e.g. inference code): train
    each paired model on the synthetic loss sum_k mean(square(output_k)) with plain
    gradient descent, the model's inputs fed directly, BN updates (UPDATE_OPS of that
    call) run with each step. The new side builds the identical step (same loss, Keras
    SGD = TF1 GradientDescent: var -= lr * grad), so gradients, BN updates and weights
    are still compared. Uses the training-mode call, else the only one there is."""
    for entry in fwd:
        mode = "train" if "train" in entry["modes"] else "infer"
        m = entry["modes"][mode]
        inputs, outs, flag = m["_t"]
        outs = [o for o in outs if o.dtype.base_dtype.is_floating]
        if not outs:
            raise VerifyError("old %s() has no loss the analysis can pair and no float output "
                              "for verify's synthetic loss" % entry["old"])
        with graph.as_default():
            loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(o, tf.float32))) for o in outs],
                            name="tfm_verify_synthetic_loss")
            # the UPDATE_OPS this call's feeds can run (not another call's or tower's)
            fed = {t.op.name for _, t in inputs} | ({flag.op.name} if flag is not None else set())
            updates = [u for u in graph.get_collection(tf.GraphKeys.UPDATE_OPS)
                       if _runs_with(u, fed)]
            # the canonical TF1 pattern: gradients and apply under control_dependencies on
            # the updates (grouping them instead lets both race on the moving statistics)
            with tf.control_dependencies(updates):
                # minimize's own path: compute_gradients gates each op's gradients
                # (GATE_OP), else an apply can overwrite a weight that backprop still reads
                opt = tf.train.GradientDescentOptimizer(SYNTHETIC_LEARNING_RATE)
                pairs = [(g, v) for g, v in opt.compute_gradients(loss) if g is not None]
                if not pairs:
                    raise VerifyError("old %s() has no trainable variable the synthetic loss "
                                      "reaches" % entry["old"])
                op = opt.apply_gradients(pairs)
        STATE.train_ops.append({
            "op": op, "loss": loss, "vars": [v for _, v in pairs],
            "optimizer": "GradientDescentOptimizer", "flag": flag,
            "synthetic": {"model": entry["old"], "new": entry["new"], "mode": mode,
                          "training": True if flag is not None else m["python_training"],
                          "inputs": [_clean(t.name) for _, t in inputs],
                          "loss": "sum of mean(square(output)) over the model's outputs",
                          "optimizer": "SGD", "learning_rate": SYNTHETIC_LEARNING_RATE,
                          "_inputs": [t for _, t in inputs]}})
        meta.setdefault("notes", []).append(
            "no loss the analysis can pair in the old program: both sides trained %s() / %s "
            "on the synthetic loss mean(square(outputs)) with plain SGD (learning rate %g, "
            "TF1 GradientDescentOptimizer = Keras SGD), %s mode, UPDATE_OPS run"
            % (entry["old"], entry["new"], SYNTHETIC_LEARNING_RATE,
               "training" if mode == "train" else "inference"))


def _runs_with(update, fed):
    """An UPDATE_OPS entry (op or tensor) needs no placeholder beyond the ones `fed`
    (op names of the tensors fed), walking its inputs but not past a fed tensor."""
    op = update if hasattr(update, "control_inputs") else update.op
    stack, seen = [op], set()
    while stack:
        cur = stack.pop()
        if cur.name in seen:
            continue
        seen.add(cur.name)
        if cur.name in fed:
            continue
        if cur.type in ("Placeholder", "PlaceholderV2"):
            return False
        stack.extend(i.op for i in cur.inputs)
        stack.extend(cur.control_inputs)
    return True


def main(argv=None):
    argv = sys.argv if argv is None else argv
    job = protocol.load_json(argv[1])
    protocol.redirect_stdout_to_stderr()
    progress = open(job["progress"], "a", buffering=1)
    from migrate.verify import tf1_runtime
    tf = tf1_runtime.install()
    from tensorflow.python.client import session as session_mod
    real_session_init = session_mod.BaseSession.__init__
    _install_hooks(tf)
    feed_probe.install(real_session_init)
    import gc
    gc.freeze()  # TensorFlow's own objects: automatic full collections skip them (see new_worker)
    progress.write("ready %f\n" % time.time())
    protocol.run_models(job, "old", lambda model, out_json, out_npz: run_model(
        tf, model, job, out_json, out_npz), _describe, progress)


if __name__ == "__main__":
    main()
