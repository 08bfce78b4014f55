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
     program order each step; several updates of one moving statistic in one train op
     applied in program order, `update_ops`), final variables, BN update counts, fused-BN
     sizes; where a train op also ran the updates of a call its loss does not use, the
     same training again without them (`noextra/`, the extra-update-ops proof).
"""

import sys
import time

from migrate.verify import call_instances, feed_probe, protocol, randomness, update_ops
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
    wrap_program_class,
    wrap_program_method,
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
        if module is not None:
            for pair in model["pairs"]:
                fname = pair["old"]
                if pair.get("owner", {}).get("method"):
                    wrap_program_method(module, fname, pair["owner"])
                    continue
                if not callable(getattr(module, fname, None)):
                    raise VerifyError("old program has no function %r (paired with new "
                                      "class %r)" % (fname, _new_of(model, fname)))
                if pair.get("owner"):
                    wrap_program_class(module, fname, dict(pair["owner"], network=pair["new"]))
                else:
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
        meta["random_disabled"] = randomness.take_sites()
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
        # calls under another (not reused) variable scope are another model object; a call
        # whose arguments do not say its mode (slim arg_scope) gets the mode its graph has
        instance_of, scopes = call_instances.group_calls(
            calls, lambda c: _model_outputs(c["out"]),
            lambda c: [v for _, v in c["args"] if _is_tensor(v)], model_vars)
        instance = {id(call): k for call, k in zip(calls, instance_of)}
        for call in calls:
            flag, value = _training_value(call["args"])
            if flag is None and value is None:
                value = call_instances.graph_training_mode(_model_outputs(call["out"]))
            if flag is not None:
                modes.setdefault("infer", (call, flag, False))
                modes.setdefault("train", (call, flag, True))
            elif value is not None:
                modes.setdefault("train" if value else "infer", (call, None, value))
            else:
                modes.setdefault("infer", (call, None, None))
                modes.setdefault("train", (call, None, None))
        entry = {"old": fname, "new": pair["new"], "modes": {}}
        if len(scopes) > 1:
            entry["instances"] = scopes
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
                "instance": instance[id(call)],
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
        if any(op.type in ("IteratorGetNext", "IteratorGetNextSync") for op in anc):
            # get_next() called while the graph was built is a placeholder (tf1_graph); an
            # iterator made otherwise cannot be fed (TF 2.21 still runs GetNext in a conv
            # kernel's gradient when its tensors are fed).
            raise VerifyError("train op %d reads a tf.data iterator's get_next() tensors that "
                              "verify could not replace by placeholders (not supported yet)" % i)
        data_phs = sorted([p for p in phs if not _is_flag(p) and not (
            p.op.type == "PlaceholderWithDefault"
            and not feeder.spec_for(p, _clean(p.name).rsplit("/", 1)[-1]))],
            key=lambda t: t.op._id)
        flag_phs = [p for p in phs if _is_flag(p)]
        train_ops.append({"index": i, "rec": rec, "fetch": fetch, "data": data_phs,
                          "flags": flag_phs,
                          "grads": rec.get("applied_grads") or tf.gradients(rec["loss"],
                                                                            rec["vars"])})

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
    # several updates of one variable per train op (a GAN's discriminator on real and fake
    # data) in program order; updates of calls the loss does not use (proof re-run below)
    extra = _order_updates(train_ops, model_vars, meta)

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
        for name, value in STATE.optimizer_scalars.items():
            if value is not None:  # a fed scalar placeholder (below) wins
                meta.setdefault("constants", {}).setdefault(name, value)

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
                _run_train_op(sess, prev_t, feeds[0][prev_t["index"]])
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
                    _, value = _run_train_op(sess, t, feeds[step][t["index"]])
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
                            # one run can apply several updates (bn-update-order)
                            updates[k] += t["update_counts"].get(k, 1)
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
            values = _infer_after(sess, arrays, entry, m["_infer_feed"], flags)
            m["after_keys"] = []
            for j, val in enumerate(values):
                key = "after/%s/%d" % (entry["old"], j)
                arrays[key] = val
                m["after_keys"].append(key)
        if extra:
            _train_without_extra_updates(sess, np, train_ops, feeds, steps, extra, meta, arrays,
                                         restore_all, frozen_vars, init_values, model_vars,
                                         moving, fwd, flags)
        for entry in fwd:
            for m in entry["modes"].values():
                m.pop("_infer_feed", None)
        meta["forward"] = fwd


def _infer_after(sess, arrays, entry, infer_feed, flags):
    """Inference-mode outputs of one model call on its held-out inputs."""
    inputs, outs, flag = infer_feed
    feed = {tensor: arrays["held_in/%s/%s" % (entry["old"], pname)] for pname, tensor in inputs}
    for f in flags:
        feed[f] = False
    if flag is not None:
        feed[flag] = False
    return sess.run(outs, feed_dict=feed)


def _order_updates(train_ops, model_vars, meta):
    """Per train op: how many updates of each model variable one run applies
    (`t["update_counts"]`) and, where a run applies several of one variable, a plan that
    applies them in program order (`t["sequenced"]`, meta["update_order"]:
    `bn-update-order`). Returns the updates of calls each train op's loss does not use
    (per train op index), for the extra-update-ops proof run."""
    names = {v.op.name: _clean(v.name) for v in model_vars}
    order, extra = {}, {}
    for t in train_ops:
        per = update_ops.updates_by_variable(t["fetch"], names)
        t["per_variable"] = per
        t["update_counts"] = {names[k]: len(ops) for k, ops in per.items()}
        t["sequenced"] = update_ops.sequence(per, names)
        for var, ops in (t["sequenced"].chained.items() if t["sequenced"] else ()):
            order.setdefault(var, {"updates": ops, "train_ops": []})["train_ops"].append(
                t["index"])
        if t["rec"].get("synthetic"):
            continue
        unused = update_ops.unused_by_loss([op for ops in per.values() for op in ops],
                                           t["rec"]["loss"])
        if unused:
            extra[t["index"]] = unused
    meta["update_order"] = order
    if order:
        meta.setdefault("notes", []).append(
            "TF1 applied %s in one train step in an unspecified order per run; verify fixed "
            "them to program order, the order Keras uses (bn-update-order)"
            % ", ".join("%d updates of %s" % (len(e["updates"]), n)
                        for n, e in sorted(order.items())))
    meta["extra_updates"] = {str(i): sorted({names[update_ops.variable_op(op.inputs[0]).name]
                                             for op in ops}) for i, ops in extra.items()}
    return extra


def _run_train_op(sess, t, feed, plan=None):
    """One Session.run of a train op (fetch, loss), its updates of one variable in program
    order where it has several."""
    plan = plan if plan is not None else t.get("sequenced")
    fetches = [t["fetch"], t["rec"]["loss"]]
    if _loss_reads_gradients(t):
        # A gradient penalty (tf.gradients inside the loss): the loss's last ops are not on
        # the path of the train op's own gradients, and TF1 ran them concurrently with the
        # update of the variables they read (ref variables: a run-to-run race of ~1e-4
        # measured on WGAN-GP). The loss before the update is read in a run of its own.
        loss = sess.run(t["rec"]["loss"], feed_dict=feed)
        done = sess.run(fetches, feed_dict=feed) if plan is None else plan.run(sess, fetches, feed)
        return done[0], loss
    if plan is None:
        return sess.run(fetches, feed_dict=feed)
    return plan.run(sess, fetches, feed)


def _loss_reads_gradients(t):
    """The train op's loss is computed from tf.gradients results (ops under a `gradients`
    name scope, where TF1's tf.gradients puts them)."""
    if "loss_reads_gradients" not in t:
        t["loss_reads_gradients"] = t["rec"]["loss"] is not None and any(
            op.name.split("/", 1)[0].startswith("gradients") and "/" in op.name
            for op in _ancestors([t["rec"]["loss"]]))
    return t["loss_reads_gradients"]


def _train_without_extra_updates(sess, np, train_ops, feeds, steps, extra, meta, arrays,
                                 restore_all, frozen_vars, init_values, model_vars, moving, fwd,
                                 flags):
    """The proof re-run of `extra-update-ops`: the same training with the updates of calls a
    train op's loss does not use neutralised (a zero delta fed), which is what Keras runs.
    Its losses, final variables and inference outputs go under `noextra/`; its update counts
    become `bn_updates` (the new side's D1 correction counts the updates Keras applies)."""
    names = {v.op.name: _clean(v.name) for v in model_vars}
    plans = {}
    for index, ops in extra.items():
        t = train_ops[index]
        plans[index] = update_ops.sequence(t["per_variable"], names, neutralised=ops)
        if plans[index] is None:
            meta.setdefault("notes", []).append(
                "train op %d also ran update ops its loss does not use, which verify cannot "
                "neutralise (an Assign of a new value): no extra-update-ops proof" % index)
            return
    restore_all()
    losses = {t["index"]: [] for t in train_ops}
    counts = {_clean(v.name): 0 for v in moving}
    prev = dict(zip([_clean(v.name) for v in moving], sess.run(moving))) if moving else {}
    for step in range(steps):
        for t in train_ops:
            _, value = _run_train_op(sess, t, feeds[step][t["index"]], plans.get(t["index"]))
            losses[t["index"]].append(float(value))
            for v in frozen_vars:
                v.load(init_values[v.name], sess)
            if moving:
                cur = dict(zip(prev, sess.run(moving)))
                skipped = extra.get(t["index"], [])
                for k in prev:
                    if not np.array_equal(cur[k], prev[k]):
                        counts[k] += t["update_counts"].get(k, 1) - sum(
                            1 for op in skipped
                            if update_ops.variable_op(op.inputs[0]).name == k)
                prev = cur
    for t in train_ops:
        arrays["noextra/loss/%d" % t["index"]] = np.asarray(losses[t["index"]], dtype=np.float64)
    for v, val in zip(model_vars, sess.run(model_vars)):
        arrays["noextra/final/" + _clean(v.name)] = val
    for entry in fwd:
        m = entry["modes"].get("infer")
        if m and "_infer_feed" in m:
            for j, val in enumerate(_infer_after(sess, arrays, entry, m["_infer_feed"], flags)):
                arrays["noextra/after/%s/%d" % (entry["old"], j)] = val
    meta["bn_updates_tf1"] = meta["bn_updates"]
    meta["bn_updates"] = counts
    meta["noextra"] = True


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
