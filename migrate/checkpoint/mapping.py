"""Account for every variable of a TF1 checkpoint (pure Python, no TensorFlow).

Model variables go to Keras weights through the matcher `verify` uses
(`migrate.verify.weightmap.map_weights`), which first applies the correspondence the model
rewrite creates (`migrate.model_rewrite.weights.normalise_tf1_name`: slim
`weights`/`biases`, `<layer>/BatchNorm/*` -> `<layer>_bn/*`), then matches scope tokens, the
Keras model prefix, an outer scope that became the model, and creation order among
same-kind same-shape leftovers.
Everything else is classified: optimizer slots and `beta1_power`-style counters
(converted with `--optimizer`, else skipped), the global step, EMA shadows (`--use-ema`),
non-model variables; anything left is an error that names the variable.
"""

from migrate.verify import weightmap

EMA_SUFFIX = "/ExponentialMovingAverage"


class Row(dict):
    """One line of the mapping table: tf1 name, action, target, how / reason."""


def row(name, shape, action, target="", how="", detail=""):
    return Row(name=name, shape=list(shape) if shape is not None else None, action=action,
               target=target, how=how, detail=detail)


def map_model_weights(tf1_vars, keras_vars, explicit=None):
    """tf1_vars [(name, shape)], keras_vars [(path, shape)] -> verify's mapping
    (`weightmap.map_weights`, which normalises TF1 names itself), keyed by the TF1 names."""
    return weightmap.map_weights(tf1_vars, keras_vars, explicit)


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
