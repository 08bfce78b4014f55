"""Per-tensor closeness and the default tolerances of `numerics.md` §2 (numpy only).

close(a, ref; rtol, arel) := all(|a - ref| <= arel * max|ref| + rtol * |ref|)

`arel` scales the absolute part to the tensor's own magnitude, so one setting works
for logits, losses and weights. Metrics reported per tensor (errors are new minus old):

* max abs  = max |a - ref|
* max rel  = elementwise max |a - ref| / max(|a|, |ref|), ignoring elements where both
             are below 1e-3 * max|ref| (read it next to norm rel)
* norm rel = max |a - ref| / max |ref|
* needed   = the smallest t with close(a, ref; rtol=t, arel=t)
"""

import math

import numpy as np

# category -> (rtol, arel), numerics.md §2 (float32, <= 20 steps)
DEFAULT_TOLERANCES = {
    "forward": (1e-5, 1e-5),      # same weights, same inputs, same mode
    "gradient": (1e-4, 1e-5),     # step-0 gradients: forward noise through backprop
    "loss": (1e-5, 1e-6),         # loss curve, <= 20 steps
    "weight": (1e-4, 1e-4),       # trainable weights after N steps (null-grad excluded)
    "moving": (5e-5, 5e-5),       # BN moving mean / variance after N steps
    "after": (1e-4, 1e-4),        # inference outputs after N steps
}
LONG_RUN_ADAM = (5e-3, 5e-3)      # 21-200 steps, Adam family
LONG_RUN_SGD = (1e-4, 1e-4)       # 21-200 steps, SGD / Momentum
FLOOR_FACTOR = 10.0               # never use a tolerance below 10x the new side's noise floor


def metrics(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return None
    if a.size == 0:
        return {"max_abs": 0.0, "max_rel": 0.0, "norm_rel": 0.0, "needed": 0.0,
                "ref_max": 0.0}
    diff = np.abs(a - ref)
    if not np.all(np.isfinite(diff)):
        inf = float("inf")
        return {"max_abs": inf, "max_rel": inf, "norm_rel": inf, "needed": inf,
                "ref_max": float(np.nanmax(np.abs(ref))) if np.any(np.isfinite(ref)) else inf,
                "nonfinite": True}
    ref_max = float(np.max(np.abs(ref)))
    max_abs = float(np.max(diff))
    big = np.maximum(np.abs(a), np.abs(ref))
    mask = big >= 1e-3 * ref_max
    max_rel = float(np.max(diff[mask] / big[mask])) if np.any(mask) and ref_max > 0 else (
        0.0 if max_abs == 0 else float("inf"))
    norm_rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    denom = ref_max + np.abs(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denom > 0, diff / np.where(denom > 0, denom, 1.0),
                         np.where(diff > 0, np.inf, 0.0))
    needed = float(np.max(ratio))
    return {"max_abs": max_abs, "max_rel": max_rel, "norm_rel": norm_rel,
            "needed": needed, "ref_max": ref_max}


def close(a, ref, rtol, arel):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return False
    if a.size == 0:
        return True
    ref_max = float(np.max(np.abs(ref)))
    return bool(np.all(np.abs(a - ref) <= arel * ref_max + rtol * np.abs(ref)))


def first_failure(a, ref, rtol, arel):
    """Flat index of the first element outside tolerance (None if all close)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    bad = np.nonzero(~(np.abs(a - ref) <= arel * ref_max + rtol * np.abs(ref)))[0]
    return int(bad[0]) if bad.size else None


def noise_floor(a, b):
    """norm rel between two runs of the same (new) program: eager vs tf.function."""
    m = metrics(a, b)
    if m is None or math.isinf(m["norm_rel"]):
        return None
    return m["norm_rel"]


def bessel_corrected(mv_keras, mv0, momentum, k, n):
    """D1: what TF1's fused BN moving variance would be, from the Keras 3 one.

    mv' = m^k * mv0 + c * (mv_K3 - m^k * mv0), c = n / (n - 1); exact when n is
    constant across the k updates."""
    mk = float(momentum) ** int(k)
    c = float(n) / (float(n) - 1.0)
    mv0 = np.asarray(mv0, dtype=np.float64)
    return mk * mv0 + c * (np.asarray(mv_keras, dtype=np.float64) - mk * mv0)
