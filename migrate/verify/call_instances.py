"""What the old side learns from the graph about each call of a model function.

Two facts a call's arguments do not always say (slim style: `with
slim.arg_scope(net_arg_scope(is_training=False)): net(images, scope='net_eval')`):

* its training mode: the arg_scope, not an argument, set `is_training`; the fused batch-norm
  ops the call built carry it (`is_training` attribute);
* which set of variables it uses: a call under another, not reused, variable scope builds a
  second set of weights (a second model object on the new side, `Net(name='net_eval')`).

Works on graph objects only (no TensorFlow import): the old worker passes them in.
"""

from migrate.verify.tf1_graph import ancestors, clean

FUSED_BN = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")


def graph_training_mode(outputs):
    """True when every fused batch norm the outputs depend on runs in training mode, False
    when every one runs in inference mode, None when there is none or they disagree (a
    `cond` on a training flag builds both)."""
    modes = set()
    for op in ancestors(outputs):
        if op.type in FUSED_BN:
            try:
                modes.add(bool(op.get_attr("is_training")))
            except Exception:
                return None
    return modes.pop() if len(modes) == 1 else None


def _variables_reached(outputs, names):
    return {op.name for op in ancestors(outputs) if op.type in VARIABLE_OPS and op.name in names}


def group_calls(calls, outputs_of, inputs_of, variables):
    """Calls that share a variable are one instance (one TF1 variable set, one Keras model).

    `calls`: the recorded calls in program order; `outputs_of(call)` / `inputs_of(call)`: its
    output and input tensors (variables its inputs already depend on, another model's that
    produced them: `D(G(z))`, are not the call's own); `variables`: the model's TF1 variables.
    Returns (instance index per call, [scope of each instance]), instances in the order of
    their first call; a scope is the longest common prefix (whole name components) of the
    instance's variable names. A call reaching no variable of its own joins instance 0."""
    names = {v.op.name for v in variables}
    groups = []  # [set of variable op names]
    index = []
    for call in calls:
        reached = (_variables_reached(outputs_of(call), names)
                   - _variables_reached(inputs_of(call), names))
        found = None
        for k, group in enumerate(groups):
            if reached & group:
                found = k
                group |= reached
                break
        if found is None:
            if reached or not groups:
                groups.append(set(reached))
                found = len(groups) - 1
            else:
                found = 0
        index.append(found)
    return index, [_common_scope(sorted(g)) for g in groups]


def _common_scope(names):
    if not names:
        return ""
    parts = [clean(n).split("/")[:-1] for n in names]
    prefix = parts[0]
    for p in parts[1:]:
        i = 0
        while i < min(len(prefix), len(p)) and prefix[i] == p[i]:
            i += 1
        prefix = prefix[:i]
    return "/".join(prefix)
