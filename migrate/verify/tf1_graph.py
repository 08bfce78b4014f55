"""Capture a TF1 program's graph: the helpers verify's old side and convert-checkpoint share.

Both `migrate.verify.old_worker` and `migrate.checkpoint.tf1_worker` run a TF1 program's own
graph-building code in the legacy process and stop it when it creates its Session
(`GraphComplete`). This module holds what they share: the capture state (`STATE`), the hooks
that record train ops, placeholders' Python names and model-function calls
(`install_hooks`, `wrap_model_function`), graph walking (`ancestors`, `extend_train_op`,
`model_outputs`), training-flag detection and the seeded input `Feeder`.
Never import it in a process that uses Keras 3 (the hooks patch the TF1 stand-in).
"""

import inspect
import os
import traceback

from migrate.verify import protocol
from migrate.verify.protocol import VerifyError


class GraphComplete(BaseException):
    """Raised when the program creates its Session: the graph is built."""


class State(object):
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
        # Python int/float locals of the program's function that built an optimizer
        # (`def train(self, lr=0.0002, beta1=0.5)`): NEW's optimizer factory takes them
        # as parameters of the same names (`make_d_optim_optimizer(beta1, lr)`)
        self.optimizer_scalars = {}


STATE = State()


def install_hooks(tf):
    from tensorflow.python.client import session as session_mod
    from tensorflow.python.training import optimizer as optimizer_mod

    base_init = session_mod.BaseSession.__init__

    def session_init(self, *args, **kwargs):
        if STATE.block_sessions:
            self._session = None  # keeps BaseSession.__del__ quiet
            graph = kwargs.get("graph") or (args[1] if len(args) > 1 else None)
            STATE.graph = graph if graph is not None else tf.get_default_graph()
            raise GraphComplete()
        return base_init(self, *args, **kwargs)

    session_mod.BaseSession.__init__ = session_init

    import linecache
    import re
    import sys as _sys

    # `images = tf.placeholder(...)`, or `self.images = ...` in a class that builds the graph
    assignment = re.compile(r"^\s*(?:self\.)?([A-Za-z_]\w*)\s*=\s*")
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

    # `images, labels = iterator.get_next()` while the program builds its graph: placeholders
    # of the element's dtypes and shapes, named after the program's variables, so a tf.data
    # program's inputs are generated and paired like fed ones (the train steps take `images`,
    # `labels`). Feeding get_next()'s own tensors does not cut the iterator out of every
    # gradient (TF 2.21: a conv kernel's Conv2DBackpropFilter still runs GetNext).
    from tensorflow.python.data.ops import iterator_ops
    real_get_next = iterator_ops.Iterator.get_next

    def get_next_as_placeholders(self, *args, **kwargs):
        if not STATE.active:
            return real_get_next(self, *args, **kwargs)
        caller = _sys._getframe(1)
        specs = tf.nest.flatten(self.element_spec)
        names = _assigned_names(caller.f_code.co_filename, caller.f_lineno)
        if len(names) != len(specs):
            names = ["get_next_%d" % i for i in range(len(specs))]
        tensors = []
        for spec, name in zip(specs, names):
            tensor = tf.placeholder(spec.dtype, spec.shape, name=name)
            STATE.placeholder_vars[tensor.op.name] = name
            tensors.append(tensor)
        return tf.nest.pack_sequence_as(self.element_spec, tensors)

    iterator_ops.Iterator.get_next = get_next_as_placeholders

    opt_cls = optimizer_mod.Optimizer
    orig_compute = opt_cls.compute_gradients
    orig_apply = opt_cls.apply_gradients

    def compute_gradients(self, loss, *args, **kwargs):
        result = orig_compute(self, loss, *args, **kwargs)
        if STATE.active:
            STATE.last_loss[id(self)] = loss
            _record_program_scalars(_sys._getframe(1))
        return result

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        grads_and_vars = list(grads_and_vars)
        if not STATE.active:
            return orig_apply(self, grads_and_vars, *args, **kwargs)
        graph = tf.get_default_graph()
        before = {v.name for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)}
        op = orig_apply(self, grads_and_vars, *args, **kwargs)
        created = [v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
                   if v.name not in before]
        STATE.optimizer_vars.update(v.name for v in created)
        STATE.train_ops.append({
            "op": op, "loss": STATE.last_loss.get(id(self)),
            "vars": [v for g, v in grads_and_vars if g is not None],
            # what the optimizer applies (clipped, scaled, ...), as the new side captures it
            # at `optimizer.apply`: the step-0 gradients verify compares
            "applied_grads": [g for g, v in grads_and_vars if g is not None],
            "optimizer": type(self).__name__,
            # what convert-checkpoint needs to carry the optimizer's state over
            "optimizer_object": self, "created": created,
            "global_step": kwargs.get("global_step", args[0] if args else None)})
        return op

    opt_cls.compute_gradients = compute_gradients
    opt_cls.apply_gradients = apply_gradients
    disable_dropout(tf)
    from migrate.verify.randomness import disable_random_ops
    for api in {id(m): m for m in (tf, tf.compat.v1)}.values():
        disable_random_ops(tf, api)  # the program's own random ops (randomness.py)


def disable_dropout(tf):
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


def _record_program_scalars(frame):
    """The int/float locals of the first frame outside TensorFlow (the program's function
    that called `minimize`); a name seen with two values is dropped."""
    while frame is not None and "tensorflow" in frame.f_code.co_filename.replace("\\", "/"):
        frame = frame.f_back
    if frame is None:
        return
    for name, value in frame.f_locals.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if STATE.optimizer_scalars.setdefault(name, value) != value:
                STATE.optimizer_scalars[name] = None


def import_program(path, model_id):
    return protocol.import_program(path, "_tfm_verify_old_", model_id)


def logits_of_loss(loss):
    """The logits a cross-entropy loss was computed from (through reshapes)."""
    for op in ancestors([loss]):
        if op.type in ("SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"):
            t = op.inputs[0]
            while t.op.type in ("Reshape", "Identity", "StopGradient"):
                t = t.op.inputs[0]
            return [t]
    return []


def model_outputs(out):
    """Tensors a model function returned; for an EstimatorSpec its predictions
    (only `logits` when the predictions dict has it), or for a TRAIN-mode spec without
    predictions the logits its cross-entropy loss was computed from."""
    if hasattr(out, "predictions") and hasattr(out, "mode"):
        if out.predictions is None:
            return logits_of_loss(out.loss) if out.loss is not None else []
        out = out.predictions
    if isinstance(out, dict) and "logits" in out:
        out = out["logits"]
    return [o for o in protocol.flatten(out) if is_tensor(o)]


def is_tensor(value):
    from tensorflow.python.framework import tensor as tensor_mod
    return isinstance(value, tensor_mod.Tensor)



def wrap_model_function(module, fname):
    if inspect.isclass(getattr(module, fname)):
        return _wrap_network_class(module, fname)
    setattr(module, fname, _recording(getattr(module, fname), fname, method=False))


def wrap_program_class(module, cname, owner):
    """A whole-program class (its `__init__` builds placeholders, network and train op; the
    class-program rewrite made its network a Keras class, discover.program_class_pairs): each
    object it constructs is recorded as one call of the network, its inputs and outputs read
    from the object's attributes named like NEW's `call` parameters and returned names
    (`self.x`, `self.logits`), its training flag the object's boolean placeholder attribute,
    and the constructor's scalar arguments kept (NEW's class is constructed with them)."""
    cls = getattr(module, cname)
    init = cls.__init__
    sig = inspect.signature(init)

    def read(obj, name):
        if not hasattr(obj, name):
            raise VerifyError("old %s object has no attribute %r (the input or output %r of "
                              "new %s.call)" % (cname, name, name, owner.get("network", "")))
        return getattr(obj, name)

    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        try:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            scalars = [(n, v) for n, v in list(bound.arguments.items())[1:]
                       if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        except TypeError:
            scalars = []
        inputs = [(name, read(self, name)) for name in owner["inputs"]]
        flags = [(n, v) for n, v in sorted(vars(self).items()) if is_tensor(v) and is_flag(v)
                 and v.op.type in ("Placeholder", "PlaceholderWithDefault")]
        out = [read(self, name) for name in owner["outputs"]]
        STATE.calls.setdefault(cname, []).append({"args": scalars + inputs + flags[:1],
                                                  "out": out})

    wrapper.__wrapped__ = init
    cls.__init__ = wrapper


def wrap_program_method(module, key, owner):
    """A method of a whole-program class that builds a network from tensors
    (`self.generator(z)`, `self.discriminator(x, reuse=True)`; NEW made it a Keras class held
    in the attribute of the same name, discover.program_class_pairs): each call is recorded
    like a model function's, without self, under `key` (`Class.method`)."""
    cls = getattr(module, owner["class"], None)
    fn = getattr(cls, owner["method"], None) if inspect.isclass(cls) else None
    if not callable(fn):
        raise VerifyError("old program has no method %s.%s" % (owner["class"], owner["method"]))
    setattr(cls, owner["method"], _recording(fn, key, method=True))


def _recording(fn, key, method):
    """`fn` wrapped so that each call is recorded under `key` like a model function's call:
    its arguments (without self for a `method`), bound to their names, and its output."""
    sig = inspect.signature(fn)
    skip = 1 if method else 0

    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        try:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = list(bound.arguments.items())[skip:]
        except TypeError:
            arguments = [("arg%d" % i, a) for i, a in enumerate(args[skip:])]
        STATE.calls.setdefault(key, []).append({"args": arguments, "out": out})
        return out

    wrapper.__wrapped__ = fn
    return wrapper


def _wrap_network_class(module, cname):
    """A TF1 network class (`__call__` builds the network; the model rewrite made it a Keras
    Model of the same name): its calls are recorded like a model function's, without self."""
    cls = getattr(module, cname)
    cls.__call__ = _recording(cls.__call__, cname, method=True)


def _assigned_names(filename, lineno):
    """The names the innermost assignment statement spanning `lineno` binds (`images, labels`
    of `images, labels = iterator.get_next()`, also written over several lines); [] if none."""
    import ast
    import linecache
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return []
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                node.lineno <= lineno <= (node.end_lineno or node.lineno) and \
                (found is None or node.lineno >= found.lineno):
            found = node
    if found is None:
        return []
    target = found.targets[0]
    elements = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
    return [e.id for e in elements] if all(isinstance(e, ast.Name) for e in elements) else []


def clean(name):
    return name[:-2] if name.endswith(":0") else name


def ancestors(tensors_or_ops):
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


def extend_train_op(graph, op):
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


def is_flag(tensor):
    # `tf.placeholder(tf.bool)` without a shape is the training flag too (common in real code).
    return tensor.dtype.base_dtype.name == "bool" and tensor.shape.ndims in (0, None)


def input_shape(tensor, batch_size, what, spec_shape=None):
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


class Feeder(object):
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
                            if tensor.op.name not in {o.name for o in ancestors([logits])}:
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
            return np.broadcast_to(value, input_shape(tensor, self.batch_size, what,
                                                 spec["shape"])).copy()
        if tensor.shape.ndims == 0:
            raise VerifyError(
                "scalar placeholder %s (a run-time value such as a learning rate) has no value "
                "verify can invent; give it in the spec ([model.inputs.%s] value = ...)"
                % (tensor.op.name, what))
        shape = input_shape(tensor, self.batch_size, what, spec.get("shape"))
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


def training_value(arguments):
    """(flag tensor or None, python bool or None) of a recorded model call."""
    for name, value in arguments:
        if isinstance(value, bool):
            if name in ("training", "is_training", "train", "is_train", "mode_train"):
                return None, value
    for name, value in arguments:
        if is_tensor(value) and is_flag(value):
            return value, None
    for name, value in arguments:
        if isinstance(value, bool):
            return None, value
    for name, value in arguments:
        if name == "mode" and isinstance(value, str):
            return None, value == "train"
    return None, None


def describe(exc):
    if isinstance(exc, SystemExit):
        return "called sys.exit(%s)" % (exc.code,)
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    if tb:
        last = tb[-1]
        where = " (%s:%d)" % (os.path.basename(last.filename), last.lineno)
    return "%s: %s%s" % (type(exc).__name__, exc, where)
