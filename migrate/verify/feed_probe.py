"""Learn the run-time values a TF1 program feeds, from the program itself.

Real TF1 code feeds scalars such as a learning rate through placeholders
(`sess.run(train_op, {lr: lr_value})`), with values computed in its Python loop.
verify cannot invent them; the program knows them. So when the graph has a numeric
scalar placeholder, the old side lets the program create its (one) Session and run what
it runs before training (initialisers, counter reads), and stops it at its first
`Session.run` that feeds anything -- normally its first training step -- recording the
numeric scalar placeholders fed there; or at the first run that fetches a train op, or
after MAX_RUNS runs. Nothing fed is executed. Any other program is stopped when it
creates its Session, as before. A spec value (`[model.inputs.NAME] value = ...`) wins.

Installed by old_worker over tf1_graph's session hook (which stops the program when it
creates its Session); only the old side's process uses it.
"""

from migrate.verify import tf1_graph

MAX_RUNS = 50  # feed-less runs allowed before the program is stopped anyway


class FeedProbe(object):
    def __init__(self):
        self.session = None  # the program's session while it is being probed
        self.fed = {}  # placeholder op name -> Python scalar fed at the first feeding run
        self.runs = 0
        self.enabled = False


PROBE = FeedProbe()


def install(real_init):
    """Wrap the Session hooks; `real_init` is BaseSession.__init__ before tf1_graph
    replaced it (tf1_graph's version raises GraphComplete when sessions are blocked)."""
    from tensorflow.python.client import session as session_mod

    blocking_init = session_mod.BaseSession.__init__
    real_run = session_mod.BaseSession.run

    def init(self, *args, **kwargs):
        if (PROBE.enabled and tf1_graph.STATE.block_sessions and PROBE.session is None
                and _needs_running(_graph_of(args, kwargs))):
            real_init(self, *args, **kwargs)
            tf1_graph.STATE.graph = self.graph
            PROBE.session = self
            return
        return blocking_init(self, *args, **kwargs)

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        if PROBE.session is self and tf1_graph.STATE.block_sessions:
            PROBE.runs += 1
            if feed_dict:
                _record(self.graph, feed_dict)
                raise tf1_graph.GraphComplete()
            if PROBE.runs > MAX_RUNS or _fetches_train_op(self.graph, fetches):
                raise tf1_graph.GraphComplete()
        return real_run(self, fetches, feed_dict, options, run_metadata)

    session_mod.BaseSession.__init__ = init
    session_mod.BaseSession.run = run


def start():
    PROBE.__init__()
    PROBE.enabled = True


def finish():
    """Close the program's session (if it made one); return {placeholder: value}."""
    session, fed = PROBE.session, dict(PROBE.fed)
    PROBE.__init__()
    if session is not None:
        try:
            session.close()
        except Exception:
            pass
    return session is not None, fed


def _graph_of(args, kwargs):
    import tensorflow.compat.v1 as tf
    graph = kwargs.get("graph") or (args[1] if len(args) > 1 else None)
    return graph if graph is not None else tf.get_default_graph()


def _needs_running(graph):
    """A Session made before any op (`with tf.Session() as sess: model = DCGAN(sess)`): the
    program builds its graph after it, so it is let run until its first fed or training run;
    likewise a graph with a numeric scalar placeholder (it may need a run-time value)."""
    return not graph.get_operations() or _has_scalar_placeholder(graph)


def _has_scalar_placeholder(graph):
    """Only a graph with a numeric scalar placeholder can need a run-time value; any other
    program is stopped at its Session as before (nothing of it runs)."""
    for op in graph.get_operations():
        if op.type in ("Placeholder", "PlaceholderWithDefault"):
            out = op.outputs[0]
            dtype = out.dtype.base_dtype
            # unknown rank too: `keep_prob = tf.placeholder(tf.float32)` is fed a scalar
            if out.shape.ndims in (0, None) and not dtype.is_bool and (dtype.is_floating
                                                                       or dtype.is_integer):
                return True
    return False


def _element(graph, key):
    if isinstance(key, str):
        try:
            return graph.as_graph_element(key)
        except (KeyError, ValueError, TypeError):
            return None
    return key


def _record(graph, feed_dict):
    import numpy as np
    for key, value in feed_dict.items():
        tensor = _element(graph, key)
        op = getattr(tensor, "op", None)
        if op is None or op.type not in ("Placeholder", "PlaceholderWithDefault"):
            continue
        dtype = tensor.dtype.base_dtype
        if tensor.shape.ndims not in (0, None) or dtype.is_bool or not (dtype.is_floating
                                                                        or dtype.is_integer):
            continue
        array = np.asarray(value)
        if array.ndim == 0 and array.dtype.kind in "iuf":
            PROBE.fed[op.name] = array.item()


def _flat(fetches):
    if isinstance(fetches, dict):
        fetches = list(fetches.values())
    if isinstance(fetches, (list, tuple)):
        out = []
        for item in fetches:
            out.extend(_flat(item))
        return out
    return [fetches]


def _fetches_train_op(graph, fetches):
    train = {rec["op"].name for rec in tf1_graph.STATE.train_ops}
    if not train:
        return False
    ops = []
    for item in _flat(fetches):
        element = _element(graph, item)
        op = element if hasattr(element, "control_inputs") else getattr(element, "op", None)
        if op is not None:
            ops.append(op)
    return any(op.name in train for op in tf1_graph.ancestors(ops))
