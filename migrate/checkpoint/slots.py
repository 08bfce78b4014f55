"""TF1 optimizer state -> Keras 3 optimizer state, by the update rules (not by copying).

* Adam: `m`, `v` carry over unchanged (same moments, same bias correction). TF1 keeps
  `beta1_power` = beta1**t where t is the exponent the *next* step uses (it starts at
  beta1 and is multiplied after every step); Keras uses `iterations + 1`. So
  t = log(beta1_power)/log(beta1) and `iterations = t - 1` (cross-checked with
  `beta2_power`, and with the global step when the train op increments it).
* Momentum: TF1 keeps the accumulator a (a <- mu*a + g; w <- w - lr*a), Keras SGD the
  velocity m (m <- mu*m - lr*g; w <- w + m), so m = -lr*a; the same holds for Nesterov.
  Exact while the learning rate is constant; with a step-dependent rate the velocity
  uses the rate of the last completed step (reported as a note).
* RMSProp: `rms` -> `velocity`, `momentum` -> `momentum`, `mg` -> `average_gradient`
  (both keep lr inside the momentum accumulator: copied as they are).
* Adagrad: `accumulator` -> `accumulator`.
* Adadelta: TF1 `accum` (a <- rho*a + (1-rho)*g^2) and `accum_update`
  (u <- rho*u + (1-rho)*d^2, with d = sqrt(u+eps)/sqrt(a+eps)*g and w <- w - lr*d) are
  Keras's `accumulated_grad` and `accumulated_delta_var` under the same update (Keras
  writes d with the opposite sign and adds it, which squares away): copied as they are.
* GradientDescent: no state; `iterations` from the global step when there is one.

A learning rate that decays with the step (`tf.train.exponential_decay(..., global_step)`,
`piecewise_constant`, ...) lives outside the optimizer state on both sides: TF1 computes it
from the global step, Keras from `optimizer.iterations` through its LearningRateSchedule.
The conversion carries the step over (`iterations` = TF1's step count), so the schedule
continues where TF1 stopped; it is checked, not assumed: the TF1 side evaluates its rate
tensor in the graph restored from the checkpoint and it is compared with NEW's rate at the
converted `iterations` (`lr_check`: exact / differs / unknown). Only Momentum's velocity
holds a rate (-lr*accum, at the rate of the step the run resumes at); once the rate changes
again Keras SGD's velocity (past rates inside) and TF1's accumulator (today's rate applied to
it) follow different rules -- a property of the migrated optimizer, reported as a note.
"""

import math

SLOT_TARGETS = {
    # TF1 optimizer class -> (Keras class names, {TF1 slot: Keras list attribute})
    "AdamOptimizer": (("Adam",), {"m": "_momentums", "v": "_velocities"}),
    "MomentumOptimizer": (("SGD",), {"momentum": "momentums"}),
    "RMSPropOptimizer": (("RMSprop",), {"rms": "_velocities", "momentum": "_momentums",
                                        "mg": "_average_gradients"}),
    "AdagradOptimizer": (("Adagrad",), {"accumulator": "_accumulators"}),
    "AdadeltaOptimizer": (("Adadelta",), {"accum": "_accumulated_grads",
                                          "accum_update": "_accumulated_delta_vars"}),
    "GradientDescentOptimizer": (("SGD",), {}),
}
# TF1 hyper-parameter -> Keras attribute, per class: the state formulas depend on them
HYPER_CHECKS = {
    "AdamOptimizer": [("beta1", "beta_1"), ("beta2", "beta_2"), ("epsilon", "epsilon")],
    "MomentumOptimizer": [("momentum", "momentum"), ("use_nesterov", "nesterov")],
    "RMSPropOptimizer": [("decay", "rho"), ("momentum", "momentum"), ("epsilon", "epsilon"),
                         ("centered", "centered")],
    "AdadeltaOptimizer": [("rho", "rho"), ("epsilon", "epsilon")],
}


class SlotError(Exception):
    pass


def adam_iterations(beta1_power, beta1):
    """Completed steps from TF1's beta1_power (= beta1**(steps+1))."""
    t = math.log(float(beta1_power)) / math.log(float(beta1))
    if abs(t - round(t)) > 1e-2 * max(1.0, t):
        raise SlotError("beta1_power %r is not a power of beta1 %r (t=%.4f)"
                        % (beta1_power, beta1, t))
    return int(round(t)) - 1


def momentum_velocity(accum, lr):
    return -float(lr) * accum


def _keras_class_ok(opt, names):
    return any(c.__name__ in names for c in type(opt).__mro__)


def convert(np, op, opt, var_list, by_tf1, reader, ckpt, tf1_meta):
    cls = op["class"]
    if cls not in SLOT_TARGETS:
        raise SlotError("optimizer %s is not supported (supported: %s)"
                        % (cls, ", ".join(sorted(SLOT_TARGETS))))
    keras_names, slot_attrs = SLOT_TARGETS[cls]
    if not _keras_class_ok(opt, keras_names):
        raise SlotError("NEW's optimizer is %s, expected %s" % (type(opt).__name__,
                                                             " or ".join(keras_names)))
    # The training rewrite's TF1Momentum (a rate that changes) keeps TF1's own accumulator.
    tf1_momentum = cls == "MomentumOptimizer" and any(
        c.__name__ == "TF1Momentum" for c in type(opt).__mro__)
    if tf1_momentum:
        slot_attrs = dict(slot_attrs, momentum="accumulators")
    hyper = op["hyper"]
    rows, notes, assigns = [], [], []
    for tf1_key, keras_key in HYPER_CHECKS.get(cls, []):
        a, b = hyper.get(tf1_key), getattr(opt, keras_key, None)
        if a is None or b is None:
            continue
        if isinstance(a, bool) or isinstance(b, bool):
            same = bool(a) == bool(b)
        else:
            same = math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
        if not same:
            notes.append("hyper-parameter %s: TF1 %r, Keras %s=%r: resumed training will "
                         "differ" % (tf1_key, a, keras_key, b))

    # iterations
    iterations, source = None, None
    gs = tf1_meta.get("global_step") or []
    gs_value = None
    if gs and gs[0] in ckpt and op.get("increments_global_step"):
        gs_value = int(reader.get_tensor(gs[0]))
    if cls == "AdamOptimizer" and "beta1_power" in op["non_slot"]:
        b1p_name = op["non_slot"]["beta1_power"]
        iterations = adam_iterations(reader.get_tensor(b1p_name), hyper["beta1"])
        source = "%s: t = log(beta1_power)/log(beta1) = %d, iterations = t - 1" % (
            b1p_name, iterations + 1)
        rows.append((b1p_name, "iterations", source))
        b2p_name = op["non_slot"].get("beta2_power")
        if b2p_name:
            it2 = adam_iterations(reader.get_tensor(b2p_name), hyper["beta2"])
            if it2 != iterations:
                raise SlotError("beta1_power says %d steps, beta2_power %d" % (iterations, it2))
            rows.append((b2p_name, "iterations", "cross-check: %d steps" % it2))
        if gs_value is not None and gs_value != iterations:
            notes.append("global step %d differs from Adam's step count %d: iterations "
                         "follow Adam's counters" % (gs_value, iterations))
    elif gs_value is not None:
        iterations, source = gs_value, "global step %s" % gs[0]
        rows.append((gs[0], "iterations", "= global step"))
    else:
        notes.append("no step counter for this optimizer: iterations stay 0 (matters only "
                     "for a step-dependent learning rate)")
    if iterations is not None:
        assigns.append((opt.iterations, np.asarray(iterations, dtype="int64")))

    lr, lr_check = _learning_rate(np, op, opt, iterations, cls, notes)
    for tf1_var in op["vars"]:
        kvar = by_tf1.get(tf1_var)
        if kvar is None:
            raise SlotError("trained variable %s has no Keras weight" % tf1_var)
        idx = opt._get_variable_index(kvar)
        for slot, sname in sorted(op["slots"].get(tf1_var, {}).items()):
            attr = slot_attrs.get(slot)
            if attr is None:
                raise SlotError("slot %r of %s (%s) has no Keras counterpart" % (slot, tf1_var,
                                                                                  sname))
            targets = getattr(opt, attr, None) or []
            if not targets:
                raise SlotError("Keras %s has no %s (TF1 slot %s of %s); check its "
                                "hyper-parameters" % (type(opt).__name__, attr, slot, tf1_var))
            target = targets[idx]
            value = reader.get_tensor(sname)
            if cls == "MomentumOptimizer" and slot == "momentum" and not tf1_momentum:
                value = momentum_velocity(value, lr)
                how = "-lr*accum (lr=%.6g)" % lr
            else:
                how = "copied (same update rule)"
            if list(value.shape) != list(target.shape):
                raise SlotError("slot %s shape %s, Keras %s shape %s"
                                % (sname, list(value.shape), target.path, list(target.shape)))
            assigns.append((target, value.astype(str(target.dtype))))
            rows.append((sname, target.path, how))

    def apply():
        for var, value in assigns:
            var.assign(value)

    return {"rows": rows, "notes": notes, "apply": apply, "iterations": iterations,
            "iterations_source": source, "lr_check": lr_check}


def _learning_rate(np, op, opt, iterations, cls, notes):
    """TF1's rate for the next step vs NEW's at the converted `iterations`.

    Returns (the rate Momentum's velocity formula uses, lr_check dict)."""
    hyper = op["hyper"]
    constant = op.get("lr_constant", True)
    tf1_lr = hyper.get("learning_rate", hyper.get("lr")) if constant else \
        op.get("lr_at_checkpoint")
    if iterations is not None:
        opt.iterations.assign(iterations)  # a LearningRateSchedule reads it
    keras_lr = float(np.asarray(opt.learning_rate))
    check = {"tf1": tf1_lr, "keras": keras_lr, "step": iterations,
             "schedule": not constant, "tf1_tensor": op.get("lr_tensor")}
    if tf1_lr is None:
        check["verdict"] = "unknown"
        notes.append("TF1 learning rate %s could not be evaluated at the checkpoint (%s): "
                     "exact only if NEW's rate at iterations=%s (%.6g) is TF1's"
                     % (op.get("lr_tensor"), op.get("lr_at_checkpoint_error", "no value"),
                        iterations, keras_lr))
    elif math.isclose(float(tf1_lr), keras_lr, rel_tol=1e-6, abs_tol=1e-12):
        check["verdict"] = "exact"
        if not constant:
            notes.append("step-dependent learning rate (%s): TF1's rate at the checkpoint "
                         "(%.6g) equals NEW's schedule at iterations=%s: the schedule "
                         "continues at the same step (exact)"
                         % (op.get("lr_tensor"), keras_lr, iterations))
    else:
        check["verdict"] = "differs"
        notes.append("learning rate: TF1 %.6g at the checkpoint, NEW %.6g at iterations=%s: "
                     "resumed training will differ (check NEW's learning rate / schedule)"
                     % (float(tf1_lr), keras_lr, iterations))
    lr = float(tf1_lr) if tf1_lr is not None else keras_lr
    if cls == "MomentumOptimizer" and not constant and not any(
            c.__name__ == "TF1Momentum" for c in type(opt).__mro__):
        notes.append("Momentum with a step-dependent rate: velocity = -lr*accum at the rate of "
                     "the next step (%.6g); when the rate changes again Keras SGD keeps past "
                     "rates inside its velocity while TF1 scales its accumulator by the new "
                     "rate, so later steps differ (the migrated optimizer's rule, not the "
                     "conversion)" % lr)
    return lr, check
