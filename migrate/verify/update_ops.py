"""The update ops one TF1 train op runs, per variable (verify's old side; TF1 graph only).

Two problems of GAN programs live here, both about batch-norm moving statistics:

* **Several updates of one variable in one Session.run** (`bn-update-order`): a discriminator
  called on real and on fake data in training mode has two `AssignSub`s of the same
  moving mean/variance in one train op. TF1 gives them no order: measured on the stand-in
  (contrib and tf.layers BN, ref variables), each run applies them one after the other, mean
  and variance in the same order, the order drawn afresh per run (real data first in 15 % to
  99 % of identical runs, depending on the program and the machine's load), never both from
  the pre-step value. Keras 3 applies them in program order. `sequence` plans each such train op as a run with every later update neutralised
  followed by one short run per later update, fed the batch statistics of the first run and
  reading the variable as the previous update left it. Program order is one of TF1's own
  executions, and the one Keras uses: the old side becomes deterministic and must then match
  the new side exactly. The graph is left as the program built it (a control edge between
  the two updates would make the fake-data call need the real-data placeholder everywhere).
* **Updates of a call the train op's loss does not use** (`extra-update-ops`): a train op
  under `control_dependencies(get_collection(UPDATE_OPS))` also runs the updates of model
  calls its loss never reads (the G step running the discriminator-on-real-data updates);
  Keras updates only the layers the train step calls. `unused_by_loss` finds them (their
  batch statistics reach no op of the loss) and `neutral_feeds` is the feed that makes them
  change nothing (a zero delta for `AssignSub`/`AssignAdd`), for verify's proof re-run.
"""

from migrate.verify.tf1_graph import ancestors

ASSIGN_TYPES = ("Assign", "AssignSub", "AssignAdd",
                "AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp")
DELTA_TYPES = ("AssignSub", "AssignAdd", "AssignSubVariableOp", "AssignAddVariableOp")
_READS = ("Identity", "RefIdentity", "Snapshot", "ReadVariableOp")
_CONSTANT = ("Const", "VariableV2", "Variable", "VarHandleOp")
_INERT = ("Const", "VariableV2", "Variable", "VarHandleOp", "Placeholder",
          "PlaceholderWithDefault", "NoOp")


def variable_op(tensor):
    """The op holding the variable an assign writes (through ref Identities and the
    RefSwitch of a cond branch)."""
    op = tensor.op
    while op.type in ("Identity", "RefIdentity", "Switch", "RefSwitch", "Enter",
                      "RefEnter") and op.inputs:
        op = op.inputs[0].op
    return op


def updates_by_variable(fetch, variable_ops):
    """{variable op name: [its assign ops in the fetch's ancestry, in creation order]} for the
    variables named in `variable_ops` (model variables, not optimizer slots)."""
    out = {}
    for op in ancestors([fetch]):
        if op.type in ASSIGN_TYPES and op.inputs:
            var = variable_op(op.inputs[0])
            if var.name in variable_ops:
                out.setdefault(var.name, []).append(op)
    return {name: sorted(ops, key=lambda o: o._id) for name, ops in out.items()}


def _data_ancestors(tensors):
    """Op names reached through data inputs only (control inputs are what we add)."""
    seen, stack = set(), [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(i.op for i in op.inputs)
    return seen


def _delta_path(update, var_op):
    """The ops of `update`'s new value that read the variable (data edges forward from it,
    within the value's ancestry), and the tensors that feed them from outside (the batch
    statistics, a cond predicate): feeding those runs just this update, on the current value
    of the variable."""
    mine = _data_ancestors(update.inputs[1:])
    path, frontier = set(), [c for out in var_op.outputs for c in out.consumers()]
    while frontier:
        op = frontier.pop()
        if op.name in path or op.name not in mine:
            continue
        path.add(op.name)
        frontier.extend(c for out in op.outputs for c in out.consumers())
    graph = update.graph
    ref_path, op = [], update.inputs[0].op  # the variable as the assign gets it (RefSwitch)
    while op is not var_op and op.inputs:
        ref_path.append(op.name)
        op = op.inputs[0].op
    pending = [t for name in sorted(path) + ref_path + [update.name]
               for t in graph.get_operation_by_name(name).inputs]
    boundary = {}
    while pending:
        t = pending.pop()
        if t.name in boundary or t.op.name in path or t.op.type in _CONSTANT or \
                variable_op(t) is var_op:
            continue
        if graph.is_fetchable(t.op) and graph.is_feedable(t):
            boundary[t.name] = t
        else:  # inside a cond (not fetchable): recompute it from its own inputs
            path.add(t.op.name)
            pending.extend(t.op.inputs)
    return path, [boundary[k] for k in sorted(boundary)]


def _runs_alone(target, fed, updates):
    """The placeholders Session.run(target) needs besides the `fed` tensors (a cond's pivot
    reads the training flag itself), or None when that run would run an assign not named in
    `updates` or an optimizer step (walking data and control edges, not past a fed tensor)."""
    fed = {t.name for t in fed}
    stack, seen, placeholders = [target], set(), []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.name not in updates and (op.type in ASSIGN_TYPES or "Apply" in op.type):
            return None
        if op.type in ("Placeholder", "PlaceholderWithDefault"):
            placeholders.append(op.outputs[0])
            continue
        stack.extend(t.op for t in op.inputs if t.name not in fed)
        stack.extend(op.control_inputs)
    return placeholders


def _fetchable(update):
    """What Session.run can fetch to run `update`: itself, or inside a cond (not fetchable)
    the nearest op downstream of it that is (the cond's Merge)."""
    graph = update.graph
    frontier, seen = [update], set()
    while frontier:
        op = frontier.pop(0)
        if op.name in seen:
            continue
        seen.add(op.name)
        if graph.is_fetchable(op):
            return op
        frontier.extend(c for out in op.outputs for c in out.consumers())
        frontier.extend(op._control_outputs)
    return None


class Sequenced(object):
    """How to run one train op with several updates of a variable applied in program order.

    The train op runs once with every later update neutralised (a zero delta fed) and
    fetches what those updates need from that run (`boundary`); then `rounds` apply them
    one after the other (round r holds the r-th update of each variable), each fed the
    values of the first run, each reading the variable as the round before left it. Nothing
    in the graph changes, so other train ops and forward passes run as the program built
    them. `chained`: variable name -> the update op names in program order."""

    def __init__(self):
        self.zero_feeds = {}
        self.boundary = []
        self.rounds = []
        self.chained = {}

    def run(self, sess, fetches, feed_dict):
        feed = dict(feed_dict)
        feed.update(self.zero_feeds)
        result, values = sess.run([fetches, self.boundary], feed_dict=feed)
        known = dict(zip([t.name for t in self.boundary], values))
        for updates in self.rounds:
            sess.run([op for op, _ in updates],
                     feed_dict={t: known[t.name] for _, fed in updates for t in fed})
        return result


def sequence(per_variable, names, neutralised=()):
    """A `Sequenced` plan for the train op whose updates are `per_variable`
    (`updates_by_variable`), with the updates in `neutralised` fed a zero delta and never
    applied (the extra-update-ops proof run); None when nothing needs ordering and nothing
    is neutralised. A variable whose later updates cannot run alone (no delta assign, another
    assign or an optimizer step upstream, a while loop) keeps TF1's own unordered run and is
    left out of `chained`. Updates of one round may share a fetch (contrib's inline updates
    of mean and variance sit in one cond)."""
    plan = Sequenced()
    skip = {op.name for op in neutralised}
    for op in neutralised:
        feed = neutral_feeds([op])
        if feed is None:
            return None
        plan.zero_feeds.update(feed)
    chains = {}
    for var, ops in sorted(per_variable.items()):
        ops = [op for op in ops if op.name not in skip]
        if len(ops) > 1 and not _already_ordered(ops):
            chains[var] = ops
    later = {}
    while chains:
        later = {op.name: (var, r, op, _delta_path(op, variable_op(op.inputs[0]))[1])
                 for var, ops in chains.items() for r, op in enumerate(ops[1:])}
        rejected, steps = set(), {}
        for name, (var, r, op, fed) in sorted(later.items()):
            same_round = [item for item in later.values() if item[1] == r]
            context = op._get_control_flow_context()
            target = _fetchable(op)
            needs = None if target is None else _runs_alone(
                target, [t for item in same_round for t in item[3]],
                {item[2].name for item in same_round})
            if neutral_feeds([op]) is None or needs is None or (
                    context is not None and context.IsWhileContext()):
                rejected.add(var)
            steps[name] = (target, needs)
        if not rejected:
            break
        for var in rejected:
            del chains[var]
    if not chains:
        later = {}
    for name, (var, r, op, fed) in sorted(later.items(), key=lambda kv: kv[1][2]._id):
        target, needs = steps[name]
        while len(plan.rounds) <= r:
            plan.rounds.append([])
        if target not in [t for t, _ in plan.rounds[r]]:
            plan.rounds[r].append((target, []))
        round_fed = dict(plan.rounds[r])[target]
        round_fed.extend(t for t in fed + needs if t not in round_fed)
        plan.zero_feeds.update(neutral_feeds([op]))
        plan.boundary.extend(t for t in fed + needs if t not in plan.boundary)
    plan.chained = {names[var]: [op.name for op in ops] for var, ops in chains.items()}
    if not plan.rounds and not plan.zero_feeds:
        return None
    return plan


def _already_ordered(ops):
    """The program itself ordered these updates (each after the previous one)."""
    for prev, cur in zip(ops, ops[1:]):
        if prev.name not in {op.name for op in ancestors([cur])}:
            return False
    return True


def unused_by_loss(updates, loss):
    """The update ops whose batch statistics reach no op of `loss` (data edges only): the
    updates of a model call the loss does not use, run only through control dependencies."""
    used = _data_ancestors([loss])
    unused = []
    for op in updates:
        feeding = _data_ancestors(op.inputs[1:])
        own = [name for name in feeding if name in used]
        graph = op.graph
        if not any(graph.get_operation_by_name(name).type not in _INERT + _READS
                   for name in own):
            unused.append(op)
    return unused


def neutral_feeds(updates):
    """{tensor: zeros} that turns each update into a no-op for one run, or None when one of
    them is not a delta assign (an `Assign` of a new value cannot be neutralised by a feed)."""
    import numpy as np
    feeds = {}
    for op in updates:
        if op.type not in DELTA_TYPES or not op.graph.is_feedable(op.inputs[1]):
            return None
        delta = op.inputs[1]
        shape = delta.shape.as_list() if delta.shape.ndims is not None else None
        if shape is None or None in shape:
            return None
        feeds[delta] = np.zeros(shape, dtype=delta.dtype.base_dtype.as_numpy_dtype)
    return feeds
