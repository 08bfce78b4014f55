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

import inspect
import os
import sys
import time
import traceback

from migrate.verify import protocol
from migrate.verify.protocol import VerifyError

ADAM_FAMILY = ("Adam", "Nadam", "Adamax")
NULL_GRAD_RATIO = 1e-4


class _GraphComplete(BaseException):
    """Raised when the program creates its Session: the graph is built."""


class _State(object):
    def __init__(self):
        self.active = False
        self.block_sessions = False
        self.train_ops = []
        self.last_loss = {}
        self.optimizer_vars = set()
        self.calls = {}
        self.graph = None
        self.dropout_sites = 0
        # placeholder op name -> the Python variable the program assigned it to
        # (`images = tf.placeholder(tf.float32)` pairs with a train-step parameter `images`).
        self.placeholder_vars = {}


STATE = _State()


def _install_hooks(tf):
    from tensorflow.python.client import session as session_mod
    from tensorflow.python.training import optimizer as optimizer_mod

    base_init = session_mod.BaseSession.__init__

    def session_init(self, *args, **kwargs):
        if STATE.block_sessions:
            self._session = None  # keeps BaseSession.__del__ quiet
            graph = kwargs.get("graph") or (args[1] if len(args) > 1 else None)
            STATE.graph = graph if graph is not None else tf.get_default_graph()
            raise _GraphComplete()
        return base_init(self, *args, **kwargs)

    session_mod.BaseSession.__init__ = session_init

    import linecache
    import re
    import sys as _sys

    assignment = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*")
    for factory_name in ("placeholder", "placeholder_with_default"):
        factory = getattr(tf, factory_name)

        def named_factory(*args, _factory=factory, **kwargs):
            tensor = _factory(*args, **kwargs)
            caller = _sys._getframe(1)
            line = linecache.getline(caller.f_code.co_filename, caller.f_lineno)
            match = assignment.match(line)
            if match:
                STATE.placeholder_vars[tensor.op.name] = match.group(1)
            return tensor

        setattr(tf, factory_name, named_factory)

    opt_cls = optimizer_mod.Optimizer
    orig_compute = opt_cls.compute_gradients
    orig_apply = opt_cls.apply_gradients

    def compute_gradients(self, loss, *args, **kwargs):
        result = orig_compute(self, loss, *args, **kwargs)
        if STATE.active:
            STATE.last_loss[id(self)] = loss
        return result

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        grads_and_vars = list(grads_and_vars)
        if not STATE.active:
            return orig_apply(self, grads_and_vars, *args, **kwargs)
        graph = tf.get_default_graph()
        before = {v.name for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)}
        op = orig_apply(self, grads_and_vars, *args, **kwargs)
        after = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
        STATE.optimizer_vars.update(v.name for v in after if v.name not in before)
        STATE.train_ops.append({
            "op": op, "loss": STATE.last_loss.get(id(self)),
            "vars": [v for g, v in grads_and_vars if g is not None],
            "optimizer": type(self).__name__})
        return op

    opt_cls.compute_gradients = compute_gradients
    opt_cls.apply_gradients = apply_gradients
    _disable_dropout(tf)


def _disable_dropout(tf):
    """Randomness cannot be matched across the two sides: dropout becomes the identity
    (rate 0, the deterministic path) while the program builds its graph; the report
    says so. Covers tf.nn.dropout, tf.layers.dropout / Dropout, slim/contrib dropout."""
    from tensorflow.python.ops import nn_ops
    from tf_keras.src.layers.regularization import dropout as keras_dropout

    def nn_dropout(x, *args, **kwargs):
        STATE.dropout_sites += 1
        return tf.identity(x)

    def layer_call(self, inputs, training=None):
        STATE.dropout_sites += 1
        return tf.identity(inputs)

    for module in {id(m): m for m in (tf.nn, tf.compat.v1.nn)}.values():
        module.dropout = nn_dropout
    nn_ops.dropout = nn_dropout
    nn_ops.dropout_v2 = nn_dropout
    keras_dropout.Dropout.call = layer_call


def _import_program(path, model_id):
    import importlib.util
    name = "_tfm_verify_old_%s" % "".join(c if c.isalnum() else "_" for c in model_id)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _logits_of_loss(loss):
    """The logits a cross-entropy loss was computed from (through reshapes)."""
    for op in _ancestors([loss]):
        if op.type in ("SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"):
            t = op.inputs[0]
            while t.op.type in ("Reshape", "Identity", "StopGradient"):
                t = t.op.inputs[0]
            return [t]
    return []


def _model_outputs(out):
    """Tensors a model function returned; for an EstimatorSpec its predictions
    (only `logits` when the predictions dict has it), or for a TRAIN-mode spec without
    predictions the logits its cross-entropy loss was computed from."""
    if hasattr(out, "predictions") and hasattr(out, "mode"):
        if out.predictions is None:
            return _logits_of_loss(out.loss) if out.loss is not None else []
        out = out.predictions
    if isinstance(out, dict) and "logits" in out:
        out = out["logits"]
    return [o for o in _flatten(out) if _is_tensor(o)]


def _is_tensor(value):
    from tensorflow.python.framework import tensor as tensor_mod
    return isinstance(value, tensor_mod.Tensor)


_flatten = protocol.flatten


def _wrap_model_function(module, fname):
    fn = getattr(module, fname)
    sig = inspect.signature(fn)

    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        try:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = list(bound.arguments.items())
        except TypeError:
            arguments = [("arg%d" % i, a) for i, a in enumerate(args)]
        STATE.calls.setdefault(fname, []).append({"args": arguments, "out": out})
        return out

    wrapper.__wrapped__ = fn
    setattr(module, fname, wrapper)


def _clean(name):
    return name[:-2] if name.endswith(":0") else name


def _ancestors(tensors_or_ops):
    seen = set()
    stack = [t.op if hasattr(t, "op") and not hasattr(t, "control_inputs") else t
             for t in tensors_or_ops if t is not None]
    result = []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        result.append(op)
        stack.extend(i.op for i in op.inputs)
        stack.extend(op.control_inputs)
    return result


def _extend_train_op(graph, op):
    """The op the program would fetch: follow NoOp/Identity consumers of the apply op
    (tf.group(train_op, update_ops), slim's create_train_op) to the outermost one."""
    consumers = {}
    for other in graph.get_operations():
        for ci in other.control_inputs:
            consumers.setdefault(ci.name, []).append(other)
        for inp in other.inputs:
            consumers.setdefault(inp.op.name, []).append(other)
    best, stack, seen = op, [op], set()
    while stack:
        cur = stack.pop()
        for nxt in consumers.get(cur.name, []):
            if nxt.type in ("NoOp", "Identity") and nxt.name not in seen:
                seen.add(nxt.name)
                stack.append(nxt)
                if nxt._id > best._id:
                    best = nxt
    return best


def _is_flag(tensor):
    # `tf.placeholder(tf.bool)` without a shape is the training flag too (common in real code).
    return tensor.dtype.base_dtype.name == "bool" and tensor.shape.ndims in (0, None)


def _shape(tensor, batch_size, what, spec_shape=None):
    if spec_shape is not None:
        return [batch_size if d in (None, -1) else int(d) for d in spec_shape]
    dims = tensor.shape.as_list() if tensor.shape.ndims is not None else None
    if dims is None:
        raise VerifyError("input %s has unknown rank; give its shape in the spec "
                          "([model.inputs.%s] shape = [...])" % (what, what))
    shape = []
    for i, d in enumerate(dims):
        if d is None:
            if i != 0:
                raise VerifyError(
                    "input %s has unknown dimension %d (shape %s); give its shape in the "
                    "spec ([model.inputs.%s] shape = [...])" % (what, i, dims, what))
            d = batch_size
        shape.append(int(d))
    return shape


class _Feeder(object):
    """Seeded input arrays: float normal, integer labels in range of the logits,
    float one-hot labels for softmax cross-entropy."""

    def __init__(self, tf, graph, seed, batch_size, spec_inputs):
        import numpy as np
        self.np = np
        self.tf = tf
        self.graph = graph
        self.rng = np.random.RandomState(seed)
        self.batch_size = batch_size
        self.spec_inputs = spec_inputs or {}
        self._kinds = {}

    def _label_kind(self, tensor):
        if tensor.name in self._kinds:
            return self._kinds[tensor.name]
        kind = ("normal", None)
        frontier, seen = [tensor.op], set()
        for _ in range(12):
            nxt = []
            for op in frontier:
                for out in op.outputs:
                    for c in out.consumers():
                        if c.name in seen:
                            continue
                        seen.add(c.name)
                        if c.type in ("SparseSoftmaxCrossEntropyWithLogits",
                                      "SoftmaxCrossEntropyWithLogits"):
                            logits = c.inputs[0]
                            if tensor.op.name not in {o.name for o in _ancestors([logits])}:
                                classes = logits.shape.as_list()[-1]
                                kind = ("int" if c.type.startswith("Sparse") else "onehot",
                                        classes)
                                self._kinds[tensor.name] = kind
                                return kind
                        if c.type == "OneHot":
                            try:
                                depth = int(self.tf.get_static_value(c.inputs[1]))
                                kind = ("int", depth)
                                self._kinds[tensor.name] = kind
                                return kind
                            except Exception:
                                pass
                        nxt.append(c)
            frontier = nxt
        if tensor.dtype.is_integer:
            kind = ("int", None)
        self._kinds[tensor.name] = kind
        return kind

    def spec_for(self, tensor, what):
        return self.spec_inputs.get(what) or self.spec_inputs.get(tensor.op.name) or {}

    def array(self, tensor, what):
        np = self.np
        spec = self.spec_for(tensor, what)
        dtype = np.dtype(spec.get("dtype") or tensor.dtype.base_dtype.as_numpy_dtype)
        if "value" in spec:
            value = np.asarray(spec["value"], dtype=dtype)
            if tensor.shape.ndims == 0 or "shape" not in spec:
                return value
            return np.broadcast_to(value, _shape(tensor, self.batch_size, what,
                                                 spec["shape"])).copy()
        if tensor.shape.ndims == 0:
            raise VerifyError(
                "scalar placeholder %s (a run-time value such as a learning rate) has no value "
                "verify can invent; give it in the spec ([model.inputs.%s] value = ...)"
                % (tensor.op.name, what))
        shape = _shape(tensor, self.batch_size, what, spec.get("shape"))
        kind, classes = self._label_kind(tensor)
        kind = spec.get("kind", kind)
        if "classes" in spec:
            classes = int(spec["classes"])
        if kind == "int" or dtype.kind in "iu":
            if classes is None:
                classes = int(spec.get("high", 2))
            return self.rng.randint(int(spec.get("low", 0)), classes, size=shape).astype(dtype)
        if kind == "onehot":
            idx = self.rng.randint(0, shape[-1], size=shape[:-1])
            return np.eye(shape[-1], dtype=dtype)[idx]
        if dtype.kind == "b":
            return self.rng.rand(*shape) < 0.5
        if kind == "uniform":
            return self.rng.uniform(spec.get("low", 0.0), spec.get("high", 1.0),
                                    size=shape).astype(dtype)
        return self.rng.randn(*shape).astype(dtype)


def _training_value(arguments):
    """(flag tensor or None, python bool or None) of a recorded model call."""
    for name, value in arguments:
        if isinstance(value, bool):
            if name in ("training", "is_training", "train", "is_train", "mode_train"):
                return None, value
    for name, value in arguments:
        if _is_tensor(value) and _is_flag(value):
            return value, None
    for name, value in arguments:
        if isinstance(value, bool):
            return None, value
    for name, value in arguments:
        if name == "mode" and isinstance(value, str):
            return None, value == "train"
    return None, None


def run_model(tf, model, job, out_json, out_npz):
    import numpy as np
    t0 = time.time()
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
            fn = getattr(module, entry, None)
            if not callable(fn):
                raise VerifyError("old program has no entry function %r; name it in the "
                                  "spec ([[model]] old_entry = ...)" % entry)
            STATE.block_sessions = True
            try:
                fn(*model.get("old_entry_args", []))
            except _GraphComplete:
                pass
            except SystemExit as exc:
                raise VerifyError("old program called sys.exit(%s) before creating its "
                                  "Session" % (exc.code,))
            except BaseException as exc:
                raise VerifyError("old program failed while building its graph: %s"
                                  % _describe(exc))
            finally:
                STATE.block_sessions = False
                STATE.active = False
        meta["timing_build_s"] = time.time() - t0
        meta["dropout_disabled"] = STATE.dropout_sites
    if STATE.graph is not None and STATE.graph is not graph:
        graph = STATE.graph  # the program built its own tf.Graph()
        meta["own_graph"] = True
    with graph.as_default():
        _drive(tf, np, graph, model, job, meta, arrays, steps, batch, spec_inputs)
    meta["timing_s"] = time.time() - t0
    protocol.save_arrays(out_npz, arrays)
    protocol.save_json(out_json, meta)


def _new_of(model, fname):
    for p in model["pairs"]:
        if p["old"] == fname:
            return p["new"]
    return None


def _describe(exc):
    if isinstance(exc, SystemExit):
        return "called sys.exit(%s)" % (exc.code,)
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    if tb:
        last = tb[-1]
        where = " (%s:%d)" % (os.path.basename(last.filename), last.lineno)
    return "%s: %s%s" % (type(exc).__name__, exc, where)


def _drive(tf, np, graph, model, job, meta, arrays, steps, batch, spec_inputs):
    if not STATE.train_ops:
        raise VerifyError("no train op found: the old program called no "
                          "Optimizer.minimize/apply_gradients before creating its Session")
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
            inputs = [(n, v) for n, v in inputs if v.op.name in feeding]
            entry["modes"][mode] = {
                "inputs": [{"param": n, "tensor": _clean(v.name), "shape": None}
                           for n, v in inputs],
                "outputs": [_clean(o.name) for o in outs],
                "flag": _clean(flag.name) if flag is not None else None,
                "python_training": value,
                "_t": (inputs, outs, flag)}
        fwd.append(entry)

    # -- train ops
    train_ops = []
    for i, rec in enumerate(STATE.train_ops):
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
    fused = {}
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
        init_values = {v.name: sess.run(v) for v in all_vars}
        for v in model_vars:
            arrays["init/" + _clean(v.name)] = init_values[v.name]

        def restore_all():
            for v in all_vars:
                v.load(init_values[v.name], sess)

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
                "null_grad": null, "frozen": null if adam else []})
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


def main(argv=None):
    argv = sys.argv if argv is None else argv
    job = protocol.load_json(argv[1])
    protocol.redirect_stdout_to_stderr()
    progress = open(job["progress"], "a", buffering=1)
    from migrate.verify import tf1_runtime
    tf = tf1_runtime.install()
    _install_hooks(tf)
    progress.write("ready %f\n" % time.time())
    protocol.run_models(job, "old", lambda model, out_json, out_npz: run_model(
        tf, model, job, out_json, out_npz), _describe, progress)


if __name__ == "__main__":
    main()
