"""Map TF1 variable names to Keras 3 weight paths (pure Python, no TensorFlow).

TF1 names look like `conv1/kernel`, `generator/fc1/kernel`, `fc0/weights`,
`bn0/moving_mean`, `block0/a/conv/kernel`; Keras 3 paths like `model/conv1/kernel`,
`generator/fc1/kernel`, `model/block0_a/conv/kernel`. TF1 names are first normalised with
the model rewrite's own correspondence (`migrate.model_rewrite.weights.normalise_tf1_name`:
slim `weights`/`biases`, `<layer>/BatchNorm/*` -> `<layer>_bn/*`), so verify and
convert-checkpoint share one TF1-name -> Keras-path mapping; results are keyed by the
original TF1 names. Matching, in order:

1. explicit entries from the spec (`[weights]` table, TF1 name -> Keras path);
2. by name: scope tokens joined with `_`, lower-cased, plus the canonical variable
   kind (`weights`->`kernel`, `biases`->`bias`), with and without the Keras model's
   own name as first token, then without the first TF1 scope (an outer
   `variable_scope` that became the model);
3. by creation order, only inside groups of the same kind and shape whose sizes
   agree on both sides (reported as `order`).

Anything left over, on either side, and any shape disagreement is reported: verify
fails loudly instead of guessing.
"""

from migrate.model_rewrite.weights import normalise_tf1_name

KIND_ALIASES = {"weights": "kernel", "biases": "bias", "w": "kernel", "b": "bias"}


def kind(name):
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        last = last.split(":", 1)[0]
    return KIND_ALIASES.get(last, last)


def _scope(tokens):
    return "_".join(t.lower() for t in tokens)


def tf1_key(name):
    tokens = name.split("/")
    return _scope(tokens[:-1]) + "/" + kind(name)


def keras_keys(path):
    tokens = path.split("/")
    keys = [_scope(tokens[:-1]) + "/" + kind(path)]
    if len(tokens) > 2:
        keys.append(_scope(tokens[1:-1]) + "/" + kind(path))
    return keys


def map_weights(tf1_vars, keras_vars, explicit=None):
    """tf1_vars: [(name, shape)]; keras_vars: [(path, shape)] in creation order;
    explicit: {TF1 name (as written or normalised): Keras path}.

    Returns dict(mapping={tf1 name: keras index}, how={tf1 name: 'spec'|'name'|'order'},
    unmapped_tf1=[...], unmapped_keras=[...], shape_mismatch=[(tf1, keras, s1, s2)]),
    every TF1 name as given."""
    normed = {n: normalise_tf1_name(n) for n, _ in tf1_vars}
    taken = {}
    for n, m in normed.items():
        taken[m] = taken.get(m, 0) + 1
    # two TF1 names that normalise alike (`a/weights` and `a/kernel`) keep their own names
    key = {n: (m if taken[m] == 1 else n) for n, m in normed.items()}
    back = {k: n for n, k in key.items()}
    explicit = {key.get(k, normalise_tf1_name(k)): v for k, v in (explicit or {}).items()}
    res = _map_normalised([(key[n], s) for n, s in tf1_vars], keras_vars, explicit)
    return {
        "mapping": {back[n]: i for n, i in res["mapping"].items()},
        "how": {back[n]: h for n, h in res["how"].items()},
        "unmapped_tf1": [back[n] for n in res["unmapped_tf1"]],
        "unmapped_keras": res["unmapped_keras"],
        "shape_mismatch": [(back[a], b, c, d) for a, b, c, d in res["shape_mismatch"]],
    }


def _map_normalised(tf1_vars, keras_vars, explicit):
    mapping, how, mismatch = {}, {}, []
    used = set()
    by_path = {p: i for i, (p, _) in enumerate(keras_vars)}
    for name, shape in tf1_vars:
        target = explicit.get(name)
        if target is None:
            continue
        idx = by_path.get(target)
        if idx is None:
            # accept a path without the model prefix
            cands = [i for i, (p, _) in enumerate(keras_vars)
                     if p.split("/", 1)[-1] == target]
            idx = cands[0] if len(cands) == 1 else None
        if idx is None:
            mismatch.append((name, target, list(shape), None))
            continue
        if list(keras_vars[idx][1]) != list(shape):
            mismatch.append((name, keras_vars[idx][0], list(shape), list(keras_vars[idx][1])))
        mapping[name], how[name] = idx, "spec"
        used.add(idx)

    index = {}
    for i, (path, _) in enumerate(keras_vars):
        if i in used:
            continue
        for key in keras_keys(path):
            index.setdefault(key, []).append(i)
    for name, shape in tf1_vars:
        if name in mapping:
            continue
        cands = [i for i in index.get(tf1_key(name), []) if i not in used]
        if not cands and name.count("/") >= 2:
            # an outer TF1 scope that became the Keras model (e.g. `net/fc1/kernel`)
            cands = [i for i in index.get(tf1_key(name.split("/", 1)[1]), []) if i not in used]
        if len(cands) == 1:
            i = cands[0]
            if list(keras_vars[i][1]) != list(shape):
                mismatch.append((name, keras_vars[i][0], list(shape), list(keras_vars[i][1])))
            mapping[name], how[name] = i, "name"
            used.add(i)

    groups_tf1, groups_k = {}, {}
    for name, shape in tf1_vars:
        if name not in mapping:
            groups_tf1.setdefault((kind(name), tuple(shape)), []).append(name)
    for i, (path, shape) in enumerate(keras_vars):
        if i not in used:
            groups_k.setdefault((kind(path), tuple(shape)), []).append(i)
    for key, names in groups_tf1.items():
        idxs = groups_k.get(key, [])
        if len(idxs) == len(names):
            for name, i in zip(names, idxs):
                mapping[name], how[name] = i, "order"
                used.add(i)
    mismatched = {m[0] for m in mismatch}
    return {
        "mapping": mapping, "how": how,
        "unmapped_tf1": [n for n, _ in tf1_vars if n not in mapping and n not in mismatched],
        "unmapped_keras": [keras_vars[i][0] for i in range(len(keras_vars)) if i not in used],
        "shape_mismatch": mismatch,
    }
