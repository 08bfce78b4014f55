"""Account for every variable of a TF1 checkpoint (pure Python, no TensorFlow).

Model variables go to Keras weights through the correspondence the model rewrite
creates (`migrate.model_rewrite.weights.normalise_tf1_name`: slim `weights`/`biases`,
`<layer>/BatchNorm/*` -> `<layer>_bn/*`) and the matcher `verify` uses
(`migrate.verify.weightmap.map_weights`: scope tokens, the Keras model prefix, an outer
scope that became the model, creation order among same-kind same-shape leftovers).
Everything else is classified: optimizer slots and `beta1_power`-style counters
(converted with `--optimizer`, else skipped), the global step, EMA shadows (`--use-ema`),
non-model variables; anything left is an error that names the variable.
"""

from migrate.model_rewrite.weights import normalise_tf1_name
from migrate.verify import weightmap

EMA_SUFFIX = "/ExponentialMovingAverage"


class Row(dict):
    """One line of the mapping table: tf1 name, action, target, how / reason."""


def row(name, shape, action, target="", how="", detail=""):
    return Row(name=name, shape=list(shape) if shape is not None else None, action=action,
               target=target, how=how, detail=detail)


def map_model_weights(tf1_vars, keras_vars, explicit=None):
    """tf1_vars [(name, shape)], keras_vars [(path, shape)] -> weightmap result keyed by
    the original TF1 names."""
    normed = [(normalise_tf1_name(n), s) for n, s in tf1_vars]
    back = {normalise_tf1_name(n): n for n, _ in tf1_vars}
    explicit = {normalise_tf1_name(k): v for k, v in (explicit or {}).items()}
    res = weightmap.map_weights(normed, keras_vars, explicit)
    return {
        "mapping": {back[n]: i for n, i in res["mapping"].items()},
        "how": {back[n]: h for n, h in res["how"].items()},
        "unmapped_tf1": [back[n] for n in res["unmapped_tf1"]],
        "unmapped_keras": res["unmapped_keras"],
        "shape_mismatch": [(back[a], b, c, d) for a, b, c, d in res["shape_mismatch"]],
    }


def classify(ckpt, tf1_meta, use_ema=False, optimizer=False):
    """ckpt {name: shape}. Returns {ckpt name: (kind, info)} for everything that is not a
    model weight, kind in slot / counter / global_step / ema / other / unknown."""
    model = {v["name"] for v in tf1_meta["vars"]}
    out = {}
    for i, op in enumerate(tf1_meta.get("train_ops", [])):
        for var, slots in op["slots"].items():
            for slot, sname in slots.items():
                out[sname] = ("slot", {"op": i, "var": var, "slot": slot,
                                       "class": op["class"]})
        for nname, vname in op["non_slot"].items():
            out[vname] = ("counter", {"op": i, "which": nname, "class": op["class"]})
        for cname in op.get("created", []):
            out.setdefault(cname, ("slot", {"op": i, "var": None, "slot": None,
                                            "class": op["class"]}))
    for g in tf1_meta.get("global_step", []):
        out[g] = ("global_step", {})
    for e in tf1_meta.get("ema", []):
        out[e] = ("ema", {"var": e[: -len(EMA_SUFFIX)] if e.endswith(EMA_SUFFIX) else None})
    for o in tf1_meta.get("other_vars", []):
        out.setdefault(o, ("other", {}))
    result = {}
    for name in ckpt:
        if name in model:
            continue
        if name in out:
            result[name] = out[name]
        elif name.endswith(EMA_SUFFIX):
            result[name] = ("ema", {"var": name[: -len(EMA_SUFFIX)]})
        else:
            result[name] = ("unknown", {})
    return result


def format_table(rows):
    widths = [max([len(h)] + [len(str(r[k])) for r in rows])
              for h, k in (("TF1 variable", "name"), ("shape", "shape"),
                           ("action", "action"), ("target", "target"))]
    head = ("TF1 variable", "shape", "action", "target")
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  how / reason"]
    for r in rows:
        cells = (r["name"], str(r["shape"]), r["action"], r["target"])
        text = " ".join(x for x in (r["how"], r["detail"]) if x)
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + "  " + text)
    return "\n".join(lines)
