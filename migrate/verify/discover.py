"""Find what to verify, without TensorFlow: old/new file pairs, model pairings, spec.

Conventions on the NEW side (what the model and training-loop rewrites emit):

* model classes are `keras.Model` subclasses (`class Model(tf.keras.Model)`), defined at
  module level; each is paired with the old top-level function of the same name in
  snake case (`Model` <-> `model`, `Generator` <-> `generator`, `ResNet` <-> `res_net`),
  or, for a single class, with the only one of `model`, `build_model`, `inference`,
  `network`, `net`, `forward`, `model_fn` that the old file defines;
* a class kept from a whole-program class (training_rewrite/class_program) that makes
  `self.<attr> = <Name>Network(...)` in `__init__` pairs that network with the old class of the
  same name, and its train steps are the functions its methods call with its optimizer
  (`program_class_pairs`, `program_class_steps`); `self.<attr> = <Name>(...)` where the old
  class had a method `<attr>` building that network from tensors (DCGAN's `self.generator(z)`)
  pairs with the method (`Class.attr`), each of its calls one network call;
* the spec (`--spec FILE`, TOML) overrides or supplies all of it.

Spec format (every key optional)::

    [defaults]                      # command-line options win over these
    steps = 20
    batch_size = 8
    seed = 0

    [[model]]                       # one table per old/new pair
    name = "cnn"                    # id in the report
    old = "old.py"                  # relative to the spec file; may be omitted when
    new = "new.py"                  #   OLD and NEW are files given on the command line
    old_entry = "main"              # old function that builds the graph, creates the Session
    old_entry_args = []
    pairs = [{old = "model", new = "Model"}]    # old model function -> new Keras class
    train_steps = ["train_step"]    # new train-step functions, in old train-op order

    [model.inputs.images]           # by old placeholder name or old model-function parameter
    shape = [-1, 8, 8, 3]           # -1 = batch size
    dtype = "float32"
    kind = "normal"                 # normal | uniform | int | onehot
    value = 0.2                     # a constant instead (scalars such as a learning rate)
    classes = 10                    # int / onehot labels
    low = 0.0
    high = 1.0

    [model.args.train_step]         # new parameter -> old placeholder | class | maker | value
    images = "input_images"

    [model.model_kwargs.Model]      # constructor arguments of a new class
    num_classes = 4

    [model.optimizer_kwargs.make_optimizer]
    learning_rate = 0.01

    [model.weights]                 # TF1 variable name -> Keras weight path
    "fc0/weights" = "model/dense/kernel"
"""

import ast
import os
import re

from migrate.verify import hand_made

SINGLE_MODEL_FUNCS = ("model", "build_model", "inference", "network", "net", "forward",
                      "model_fn")
GENERIC_STEMS = ("new", "old", "main", "model", "train", "program")


class SpecError(Exception):
    """The spec file or the arguments are unusable (exit 2)."""


def snake(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def load_spec(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise SpecError("reading --spec needs Python 3.11+ (tomllib) or the tomli package")
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except OSError as exc:
        raise SpecError("cannot read spec %s: %s" % (path, exc))
    except Exception as exc:
        raise SpecError("spec %s is not valid TOML: %s" % (path, exc))
    models = spec.get("model", [])
    if isinstance(models, dict):
        models = [models]
    if not isinstance(models, list):
        raise SpecError("spec %s: [[model]] must be an array of tables" % path)
    base = os.path.dirname(os.path.abspath(path))
    for m in models:
        for key in ("old", "new"):
            if key in m and not os.path.isabs(m[key]):
                m[key] = os.path.normpath(os.path.join(base, m[key]))
        known = {"name", "old", "new", "old_entry", "old_entry_args", "pairs", "train_steps",
                 "inputs", "args", "model_kwargs", "optimizer_kwargs", "weights"}
        unknown = set(m) - known
        if unknown:
            raise SpecError("spec %s: unknown key(s) in [[model]]: %s (known: %s)"
                            % (path, ", ".join(sorted(unknown)), ", ".join(sorted(known))))
    spec["model"] = models
    return spec


def _parse(path):
    try:
        with open(path, encoding="utf-8") as f:
            return ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError) as exc:
        return exc


def _base_name(node):
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def model_classes(tree):
    found = []
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = {_base_name(b) for b in node.bases}
            if "Model" in bases or bases & names:
                found.append(node.name)
                names.add(node.name)
    return found


def old_functions(tree):
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def old_network_classes(tree):
    """Plain classes whose `__call__` builds a network (the TF1 side of a converted class)."""
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)
            and all(_base_name(b) == "object" for b in n.bases)
            and any(isinstance(m, ast.FunctionDef) and m.name == "__call__" for m in n.body)]


def pair_models(old_tree, new_tree):
    classes = model_classes(new_tree)
    funcs = old_functions(old_tree)
    networks = old_network_classes(old_tree)
    pairs, unpaired = [], []
    for cls in classes:
        if cls in networks:
            pairs.append({"old": cls, "new": cls})
            continue
        for cand in (snake(cls), cls.lower(), cls):
            if cand in funcs:
                pairs.append({"old": cand, "new": cls})
                break
        else:
            unpaired.append(cls)
    for pair in program_class_pairs(old_tree, new_tree, unpaired):
        pairs.append(pair)
        unpaired.remove(pair["new"])
    if not pairs and len(classes) == 1:
        single = [f for f in SINGLE_MODEL_FUNCS if f in funcs]
        if len(single) == 1:
            pairs.append({"old": single[0], "new": classes[0]})
            unpaired = []
    return classes, pairs, unpaired


def _init_attribute_calls(cls):
    """[(attribute, called name, call)] of `self.<attribute> = <name>(...)` in `__init__`."""
    init = next((m for m in cls.body if isinstance(m, ast.FunctionDef)
                 and m.name == "__init__"), None)
    found = []
    for node in ast.walk(init) if init is not None else ():
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
            target = node.targets[0]
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and target.value.id == "self":
                found.append((target.attr, node.value.func.id, node.value))
    return found


def program_class_pairs(old_tree, new_tree, new_classes):
    """Pairs for the network classes of whole-program classes (training_rewrite/class_program):
    the old `class Model(object)` built its graph in `__init__`; NEW keeps the class, which makes
    `self.<attr> = ModelNetwork(...)`. The old side constructs the class as its program does and
    reads the network's inputs and outputs from the object's attributes (`self.x`, `self.logits`,
    named like NEW's `call` parameters and returned names); the new side constructs NEW's class
    the same way and takes the network from its attribute."""
    old_classes = {n.name: n for n in old_tree.body if isinstance(n, ast.ClassDef)}
    pairs = []
    for owner in new_tree.body:
        if not (isinstance(owner, ast.ClassDef) and owner.name in old_classes):
            continue
        old_methods = {m.name for m in old_classes[owner.name].body
                       if isinstance(m, ast.FunctionDef)}
        for attr, called, _ in _init_attribute_calls(owner):
            if called not in new_classes or any(p["new"] == called for p in pairs):
                continue
            network = next(n for n in new_tree.body
                           if isinstance(n, ast.ClassDef) and n.name == called)
            if attr in old_methods and attr != "__init__":
                # `self.generator = DCGANGenerator(...)` where the old class had a method
                # `generator(self, z)` building that network from tensors: each call of the
                # old method is one call of the network (tf1_graph.wrap_program_method)
                pairs.append({"old": "%s.%s" % (owner.name, attr), "new": called,
                              "owner": {"class": owner.name, "attr": attr, "method": attr}})
                continue
            inputs, outputs = _call_signature(network)
            if outputs is None:
                continue
            pairs.append({"old": owner.name, "new": called,
                          "owner": {"class": owner.name, "attr": attr, "inputs": inputs,
                                    "outputs": outputs}})
    return pairs


def _call_signature(network):
    """(input parameter names, returned names) of a Keras class's `call` (without `self`,
    `training` and `mask`); returned names None when `call` returns anything but names."""
    call = next((m for m in network.body if isinstance(m, ast.FunctionDef)
                 and m.name == "call"), None)
    if call is None:
        return [], None
    params = [a.arg for a in call.args.posonlyargs + call.args.args][1:]
    inputs = [p for p in params if p not in ("training", "mask")]
    returns = [n.value for n in ast.walk(call) if isinstance(n, ast.Return)]
    if len(returns) != 1 or returns[0] is None:
        return inputs, None
    value = returns[0]
    elements = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
    if not all(isinstance(e, ast.Name) for e in elements):
        return inputs, None
    return inputs, [e.id for e in elements]


def program_class_steps(new_tree, pairs):
    """NEW's train steps of whole-program classes, in definition order: the module-level
    functions the class's methods call with the optimizer it made in `__init__`
    (`self.optimizer = make_optimizer(self)`; `train_step_fn(self.network, self.optimizer, x)`)."""
    owners = {p["owner"]["class"] for p in pairs if p.get("owner")}
    functions = {n.name: n.lineno for n in new_tree.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    steps = set()
    for cls in new_tree.body:
        if not (isinstance(cls, ast.ClassDef) and cls.name in owners):
            continue
        optimizers = {"self." + attr for attr, called, _ in _init_attribute_calls(cls)
                      if called.startswith("make") and called.endswith("optimizer")}
        for node in ast.walk(cls):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in functions \
                    and any(ast.unparse(a) in optimizers for a in node.args):
                steps.add(node.func.id)
    return sorted(steps, key=functions.get)


def step_model_arguments(tree, classes):
    """{function: {parameter: class}} from NEW's own calls: `train_d_step(D, G, opt, x)` where
    the caller bound `D = Discriminator(...)` pairs the step's first parameter, whatever its
    name, with `Discriminator`. The migrated program passes its model objects under its own
    names (`D`, `G`, `net`), so these calls say which model a step parameter takes.

    Bindings are read per scope (each top-level function, including what is nested in it, and
    the module's own statements); a name bound to two classes in one scope, or a parameter
    given different classes by two calls, is left out (verify then pairs it by name)."""
    classes = set(classes)
    functions = {n.name: n for n in tree.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    # a class is one scope: its methods share what `__init__` bound to `self.<name>`
    scopes = [n for n in tree.body
              if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    scopes.append(ast.Module(body=[n for n in tree.body if not isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], type_ignores=[]))
    found, conflicts = {}, set()
    for scope in scopes:
        bound, ambiguous = {}, set()
        for node in ast.walk(scope):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name) and node.value.func.id in classes:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, (ast.Name, ast.Attribute)):
                        key = ast.unparse(target)  # `D`, `self.D`
                        if bound.get(key, node.value.func.id) != node.value.func.id:
                            ambiguous.add(key)
                        bound[key] = node.value.func.id
        for key in ambiguous:
            bound.pop(key)
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in functions):
                continue
            args = functions[node.func.id].args
            positional = [a.arg for a in args.posonlyargs + args.args]
            given = list(zip(positional, node.args))
            given += [(k.arg, k.value) for k in node.keywords if k.arg]
            for param, value in given:
                if isinstance(value, ast.Starred):
                    break  # `*args`: the positions after it are unknown
                if not isinstance(value, (ast.Name, ast.Attribute)):
                    continue
                key = ast.unparse(value)
                if key not in bound:
                    continue
                pair = (node.func.id, param)
                seen = found.setdefault(node.func.id, {}).get(param)
                if seen is not None and seen != bound[key]:
                    conflicts.add(pair)
                found[node.func.id][param] = bound[key]
    for function, param in conflicts:
        found[function].pop(param, None)
    return {f: params for f, params in found.items() if params}


def model_id(new_path, root=None):
    if root:
        rel = os.path.relpath(new_path, root)
        stem = os.path.splitext(rel)[0].replace(os.sep, ".")
    else:
        stem = os.path.splitext(os.path.basename(new_path))[0]
    if stem.rsplit(".", 1)[-1] in GENERIC_STEMS:
        parent = os.path.basename(os.path.dirname(os.path.abspath(new_path)))
        stem = parent if stem in GENERIC_STEMS else stem.rsplit(".", 1)[0]
    return stem


def file_pairs(old, new):
    """[(old file, new file, root or None)] for OLD/NEW files or directories."""
    if os.path.isfile(old) and os.path.isfile(new):
        return [(os.path.abspath(old), os.path.abspath(new), None)]
    if os.path.isdir(old) and os.path.isdir(new):
        out = []
        for dirpath, dirnames, filenames in os.walk(new):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                npath = os.path.join(dirpath, fn)
                rel = os.path.relpath(npath, new)
                opath = os.path.join(old, rel)
                tree = _parse(npath)
                if isinstance(tree, Exception) or not os.path.isfile(opath):
                    continue
                if model_classes(tree) or hand_made.program_scope(_parse(opath), tree):
                    out.append((os.path.abspath(opath), os.path.abspath(npath),
                                os.path.abspath(new)))
        return out
    raise SpecError("OLD and NEW must both be files or both be directories")


def plan(old, new, spec=None):
    """Return (models, problems): models are worker job entries; problems are
    {model id: reason} for pairs that cannot be verified (exit 3)."""
    spec = spec or {"model": []}
    entries = spec.get("model", [])
    pairs = file_pairs(old, new) if old and new else []
    if not pairs and entries and all("old" in e and "new" in e for e in entries):
        pairs = [(e["old"], e["new"], None) for e in entries]
    models, problems = [], {}
    used_ids = set()
    for opath, npath, root in pairs:
        entry = None
        for e in entries:
            if "new" in e and os.path.abspath(e["new"]) == npath:
                entry = e
        if entry is None and len(pairs) == 1 and len(entries) == 1 and "new" not in entries[0]:
            entry = entries[0]
        entry = entry or {}
        mid = entry.get("name") or model_id(npath, root)
        base, n = mid, 2
        while mid in used_ids:
            mid, n = "%s_%d" % (base, n), n + 1
        used_ids.add(mid)
        m = {"id": mid, "old": opath, "new": npath,
             "old_entry": entry.get("old_entry"),
             "old_entry_args": entry.get("old_entry_args", []),
             "inputs": entry.get("inputs", {}),
             "new_spec": {k: entry[k] for k in ("train_steps", "args", "model_kwargs",
                                                "optimizer_kwargs", "weights") if k in entry}}
        old_tree, new_tree = _parse(opath), _parse(npath)
        if isinstance(old_tree, Exception):
            problems[mid] = "cannot parse old program %s: %s" % (opath, old_tree)
        elif isinstance(new_tree, Exception):
            problems[mid] = "cannot parse new program %s: %s" % (npath, new_tree)
        elif entry.get("pairs"):
            m["pairs"] = [{"old": p["old"], "new": p["new"]} for p in entry["pairs"]]
            m["step_models"] = step_model_arguments(new_tree, [p["new"] for p in m["pairs"]])
        else:
            classes, found, unpaired = pair_models(old_tree, new_tree)
            scope = None if classes else hand_made.program_scope(old_tree, new_tree)
            if scope is not None:
                # hand-made tf.Variable weights: no class to pair (verify.hand_made)
                m["pairs"], m["hand_made"] = [], scope
            elif not classes:
                problems[mid] = ("new program defines no keras.Model subclass "
                                 "(class Model(tf.keras.Model)); nothing to verify")
            elif not found:
                problems[mid] = ("cannot pair new class(es) %s with an old model function "
                                 "(old functions: %s); add pairs = [{old = ..., new = ...}] "
                                 "to the spec" % (", ".join(classes),
                                                  ", ".join(old_functions(old_tree))))
            else:
                m["pairs"] = found
                m["unpaired"] = unpaired
                m["step_models"] = step_model_arguments(new_tree, [p["new"] for p in found])
                steps = program_class_steps(new_tree, found)
                if steps and "train_steps" not in m["new_spec"]:
                    m["new_spec"]["train_steps"] = steps
        models.append(m)
    return models, problems
