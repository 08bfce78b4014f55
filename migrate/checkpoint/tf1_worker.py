"""convert-checkpoint's TF1 side: build the old program's graph and describe it.

Run as `python -m migrate.checkpoint.tf1_worker JOB.json` in a legacy process (it installs
verify's TF1 stand-in, `migrate.verify.tf1_runtime`). The graph is built exactly as
`verify` builds it (`migrate.verify.tf1_graph`, shared with verify's old side: the program's
own code runs until it creates its Session). Per model it writes `<id>.tf1.json` / `<id>.tf1.npz`:

* `vars`: the model variables (name, shape, dtype, trainable);
* `train_ops`: per optimizer call, its class, hyper-parameters, var_list, slot variables
  (per model variable) and non-slot variables (`beta1_power`, ...);
* `global_step`, EMA shadow variables (`.../ExponentialMovingAverage`);
* `forward`: per paired model function the inference-mode inputs (seeded arrays, saved)
  and, with `ckpt`, the outputs of the graph restored from that checkpoint;
* with `ckpt`, each train op's learning rate tensor evaluated at the checkpoint
  (`lr_at_checkpoint`: the rate of TF1's next step);
* with `train_save` (tests): the program's train ops run N seeded steps, then
  `tf.compat.v1.train.Saver().save()`;
* with `resume` (tests): restore a checkpoint, run K more seeded steps, record losses.
"""

import os
import sys
import traceback

from migrate.verify import protocol
from migrate.verify.tf1_graph import (
    ancestors, clean, describe, extend_train_op, Feeder, GraphComplete,
    import_program, install_hooks, is_flag, is_tensor, model_outputs, STATE, training_value,
    wrap_model_function)
from migrate.verify.protocol import VerifyError

HYPER = ("_lr", "_learning_rate", "_beta1", "_beta2", "_epsilon", "_momentum",
         "_use_nesterov", "_decay", "_centered", "_initial_accumulator_value", "_rho")


def _static(tf, value):
    if isinstance(value, (int, float, bool)) or value is None:
        return value, True
    try:
        v = tf.get_static_value(value)
    except Exception:
        v = None
    if v is None:
        return None, False
    try:
        return v.item(), True
    except AttributeError:
        return v, True


def _describe_optimizer(tf, rec, graph):
    opt = rec["optimizer_object"]
    info = {"class": type(opt).__name__, "hyper": {}, "lr_constant": True,
            "vars": [clean(v.name) for v in rec["vars"]],
            "slots": {}, "non_slot": {},
            "created": [clean(v.name) for v in rec["created"]]}
    for attr in HYPER:
        if hasattr(opt, attr):
            value, static = _static(tf, getattr(opt, attr))
            info["hyper"][attr.lstrip("_")] = value
            if attr in ("_lr", "_learning_rate") and not static:
                info["lr_constant"] = False
                info["lr_tensor"] = getattr(getattr(opt, attr), "name", str(getattr(opt, attr)))
    for slot in opt.get_slot_names():
        for v in rec["vars"]:
            s = opt.get_slot(v, slot)
            if s is not None:
                info["slots"].setdefault(clean(v.name), {})[slot] = clean(s.name)
    for name in ("beta1_power", "beta2_power"):
        try:
            nv = opt._get_non_slot_variable(name, graph=graph)
        except Exception:
            nv = None
        if nv is not None:
            info["non_slot"][name] = clean(nv.name)
    gs = rec.get("global_step")
    info["increments_global_step"] = gs is not None
    return info


def _build(tf, model):
    """The old program's graph, built as verify builds it; returns (graph, the train ops
    recorded by verify's hooks, each with its optimizer object and the variables it created)."""
    graph = tf.Graph()
    STATE.__init__()
    with graph.as_default():
        tf.set_random_seed(0)
        STATE.active = True
        try:
            module = import_program(model["old"], model["id"])
        except GraphComplete:
            module = None
        except BaseException as exc:
            STATE.active = False
            raise VerifyError("importing the old program failed: %s" % describe(exc))
        if module is not None:
            for pair in model["pairs"]:
                if not callable(getattr(module, pair["old"], None)):
                    raise VerifyError("old program has no function %r" % pair["old"])
                wrap_model_function(module, pair["old"])
            entry = model.get("old_entry") or "main"
            fn = protocol.entry_function(module, model.get("old_entry"))
            if fn is None:
                raise VerifyError("old program has no entry function %r" % entry)
            STATE.block_sessions = True
            try:
                fn(*model.get("old_entry_args", []))
            except GraphComplete:
                pass
            except BaseException as exc:
                raise VerifyError("old program failed while building its graph: %s"
                                  % describe(exc))
            finally:
                STATE.block_sessions = False
                STATE.active = False
    if STATE.graph is not None and STATE.graph is not graph:
        graph = STATE.graph
    return graph, list(STATE.train_ops)


def _rates_at_checkpoint(sess, records, infos):
    """A learning rate that is a tensor (decayed by the global step, ...) evaluated in the
    graph restored from the checkpoint: the rate TF1 would use for its next step."""
    for rec, info in zip(records, infos):
        if info["lr_constant"]:
            continue
        opt = rec["optimizer_object"]
        tensor = getattr(opt, "_lr" if hasattr(opt, "_lr") else "_learning_rate")
        try:
            info["lr_at_checkpoint"] = float(sess.run(tensor))
        except Exception as exc:  # e.g. a rate fed through a placeholder
            info["lr_at_checkpoint_error"] = describe(exc)


def run_model(tf, np, model, job, out_json, out_npz):
    graph, records = _build(tf, model)
    arrays, meta = {}, {"id": model["id"], "side": "tf1"}
    seed, batch = int(job.get("seed", 0)), int(job.get("batch_size", 8))
    with graph.as_default():
        gs_vars = graph.get_collection(tf.GraphKeys.GLOBAL_STEP)
        all_vars = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
        opt_vars = set()
        for rec in records:
            opt_vars.update(v.name for v in rec["created"])
        gs_names = {v.name for v in gs_vars}
        ema = [v for v in all_vars if "ExponentialMovingAverage" in v.name]
        model_vars = [v for v in all_vars if v.name not in opt_vars and v.name not in gs_names
                      and v not in ema and v.dtype.base_dtype.is_floating]
        trainable = {v.name for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)}
        meta["vars"] = [{"name": clean(v.name), "shape": v.shape.as_list(),
                         "trainable": v.name in trainable} for v in model_vars]
        meta["global_step"] = [clean(v.name) for v in gs_vars]
        meta["ema"] = [clean(v.name) for v in ema]
        meta["other_vars"] = [clean(v.name) for v in all_vars
                              if v not in model_vars and v not in ema
                              and v.name not in opt_vars and v.name not in gs_names]
        meta["train_ops"] = [_describe_optimizer(tf, r, graph) for r in records]
        feeder = Feeder(tf, graph, seed, batch, model.get("inputs", {}))
        flags = [op.outputs[0] for op in graph.get_operations()
                 if op.type in ("Placeholder", "PlaceholderWithDefault")
                 and is_flag(op.outputs[0])]
        forward = []
        for pair in model["pairs"]:
            calls = STATE.calls.get(pair["old"]) or []
            if not calls:
                raise VerifyError("old function %r was never called while the program built "
                                  "its graph" % pair["old"])
            chosen = None
            for call in calls:
                flag, value = training_value(call["args"])
                if flag is not None or value is False or value is None:
                    chosen = (call, flag)
                    break
            if chosen is None:
                chosen = (calls[0], None)
                meta.setdefault("notes", []).append(
                    "old %s() was only called in training mode" % pair["old"])
            call, flag = chosen
            # Only a training-mode graph exists (an estimator TRAIN spec): NEW is compared in
            # training mode too (batch statistics; the moving ones are then not compared).
            only_training = training_value(call["args"])[1] is True
            inputs = [(n, v) for n, v in call["args"] if is_tensor(v) and not is_flag(v)]
            inputs += [("%s.%s" % (n, k), v[k]) for n, v in call["args"] if isinstance(v, dict)
                       for k in sorted(v) if is_tensor(v[k]) and not is_flag(v[k])]
            outs = model_outputs(call["out"])
            feeding = {o.name for o in ancestors(outs)}
            inputs = [(n, v) for n, v in inputs if v.op.name in feeding]
            entry = {"old": pair["old"], "new": pair["new"], "inputs": [], "outputs": [],
                     "training": only_training}
            for pname, tensor in inputs:
                key = "in/%s/%s" % (pair["old"], pname)
                arrays[key] = feeder.array(tensor, pname)
                entry["inputs"].append({"param": pname, "key": key})
            forward.append((entry, inputs, outs, flag))
        meta["forward"] = [f[0] for f in forward]

        train_ops = []
        for i, rec in enumerate(records):
            fetch = extend_train_op(graph, rec["op"])
            anc = ancestors([fetch, rec["loss"]])
            phs = [op.outputs[0] for op in anc
                   if op.type in ("Placeholder", "PlaceholderWithDefault")]
            data = sorted([p for p in phs if not is_flag(p) and p.op.type == "Placeholder"],
                          key=lambda t: t.op._id)
            train_ops.append((fetch, rec["loss"], data))

        sess = tf.Session(graph=graph)
        with sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])

            def run_steps(n, tag):
                rng = Feeder(tf, graph, seed + 1000, batch, model.get("inputs", {}))
                losses = []
                for step in range(n):
                    for i, (fetch, loss, data) in enumerate(train_ops):
                        feed = {p: rng.array(p, clean(p.name).rsplit("/", 1)[-1])
                                for p in data}
                        for p, value in feed.items():
                            arrays["%s_data/%d/%d/%s" % (tag, step, i, clean(p.name))] = value
                        for f in flags:
                            feed[f] = True
                        _, value = sess.run([fetch, loss], feed_dict=feed)
                        losses.append(float(value))
                return losses

            if job.get("train_save"):
                ts = job["train_save"]
                meta["train_losses"] = run_steps(int(ts["steps"]), "train")
                path = os.path.join(ts["dir"], model["id"], "model.ckpt")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                saver = tf.train.Saver(var_list=all_vars)
                meta["checkpoint"] = saver.save(sess, path, global_step=None)
            ckpt = model.get("ckpt")
            if ckpt:
                reader = tf.train.load_checkpoint(ckpt)
                have = reader.get_variable_to_shape_map()
                use_ema = model.get("use_ema", job.get("use_ema"))
                restored = []
                for v in all_vars:
                    name = clean(v.name)
                    src = name
                    if use_ema and v in model_vars and \
                            name + "/ExponentialMovingAverage" in have:
                        src = name + "/ExponentialMovingAverage"
                    # a wrong shape is reported by the TF2 side, which names the variable
                    if src in have and list(have[src]) == v.shape.as_list():
                        v.load(reader.get_tensor(src), sess)
                        restored.append(name)
                meta["restored"] = restored
                _rates_at_checkpoint(sess, records, meta["train_ops"])
                for entry, inputs, outs, flag in forward:
                    feed = {t: arrays["in/%s/%s" % (entry["old"], p)] for p, t in inputs}
                    for f in flags:
                        feed[f] = False
                    if flag is not None:
                        feed[flag] = False
                    values = sess.run(outs, feed_dict=feed)
                    for j, value in enumerate(values):
                        key = "out/%s/%d" % (entry["old"], j)
                        arrays[key] = value
                        entry["outputs"].append(key)
                if job.get("resume"):
                    meta["resume_losses"] = run_steps(int(job["resume"]["steps"]), "resume")
    protocol.save_arrays(out_npz, arrays)
    protocol.save_json(out_json, meta)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    job = protocol.load_json(argv[1])
    protocol.redirect_stdout_to_stderr()
    from migrate.verify import tf1_runtime
    tf = tf1_runtime.install()
    install_hooks(tf)
    import numpy as np
    for model in job["models"]:
        out_json = os.path.join(job["workdir"], "%s.tf1.json" % model["id"])
        out_npz = os.path.join(job["workdir"], "%s.tf1.npz" % model["id"])
        try:
            run_model(tf, np, model, job, out_json, out_npz)
        except VerifyError as exc:
            protocol.save_json(out_json, {"id": model["id"], "error": str(exc)})
        except BaseException as exc:
            protocol.save_json(out_json, {"id": model["id"], "error": "internal error on the "
                                          "TF1 side: %s\n%s" % (describe(exc),
                                                                traceback.format_exc())})
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
