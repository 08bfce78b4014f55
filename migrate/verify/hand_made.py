"""verify for programs whose model is hand-made `tf.Variable` weights (no Keras class).

The training rewrite (`training_rewrite/variable_models.py`) keeps such a program's variable
statements (`weights = {'h1': tf.Variable(...)}`, module-level `D_W1 = tf.Variable(...)`) and
hands the variables to its train steps as parameters (`train_step(weights, biases, opt, x, y)`,
`train_d_step(theta_D, opt, X, Z)`). There is no model class to build, so:

* discover (`program_scope`, on `ast`): NEW defines no keras.Model class, OLD calls
  `tf.Variable`, and the scope of NEW that calls the train steps (a top-level function such as
  `main`, or the module's own statements, an `if __name__ == "__main__":` body included) makes
  `tf.Variable`s before its training loop;
* the new side (`load`) runs that scope's statements up to its training loop -- the first
  statement that calls a train step or loops without making variables -- once per variant, recording the variables they
  create (`tf.variable_creator_scope`). Only those the scope's names hold (directly, or in
  dicts, lists and tuples) are the model: an optimizer's slots made there are not. The step
  parameters named like those names get the very objects the program binds;
* TF1 names them `Variable`, `Variable_1`, ... (or their own names), in creation order, and the
  rewrite keeps the statements in their order: `map_by_order` pairs the two lists position by
  position and reports any count or shape disagreement instead of guessing.
"""

import ast
import re

STEP_RE = re.compile(r"^train(_\w+)?_step(_[2-9]|_[1-9][0-9]+)?$")  # new_worker.STEP_RE
NAMESPACE_ATTR = "__tfm_hand_made__"


def _is_variable_call(node):
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "Variable")
        or (isinstance(node.func, ast.Name) and node.func.id == "Variable"))


def _is_if_main(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test))


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def _module_statements(tree):
    """Module-level statements, an `if __name__ == "__main__":` body inlined."""
    out = []
    for node in tree.body:
        out.extend(node.body if _is_if_main(node) else [node])
    return out


def setup_statements(statements, steps):
    """The statements before the training loop: up to the first that calls a train step or
    loops without making variables (`for i in range(3): W.append(tf.Variable(...))` is still
    setup); definitions and imports are not part of it."""
    out = []
    for node in statements:
        if isinstance(node, _DEFINITIONS):
            continue
        nodes = list(ast.walk(node))
        calls_step = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                         and n.func.id in steps for n in nodes)
        loops = any(isinstance(n, (ast.For, ast.AsyncFor, ast.While)) for n in nodes)
        if calls_step or (loops and not any(_is_variable_call(n) for n in nodes)):
            break
        out.append(node)
    return out


def program_scope(old_tree, new_tree):
    """{"function": name or None (module level)} of NEW's scope that makes the hand-made
    variables and calls the train steps, or None when the pair is not such a program."""
    if not isinstance(old_tree, ast.AST) or not any(
            _is_variable_call(n) for n in ast.walk(old_tree)):
        return None
    steps = {n.name for n in new_tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and STEP_RE.match(n.name)}
    if not steps:
        return None
    scopes = [(n.name, n.body) for n in new_tree.body
              if isinstance(n, ast.FunctionDef) and n.name not in steps]
    scopes.append((None, _module_statements(new_tree)))
    for name, body in scopes:
        calls_step = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                         and n.func.id in steps for s in body for n in ast.walk(s))
        if calls_step and any(_is_variable_call(n) for s in setup_statements(body, steps)
                              for n in ast.walk(s)):
            return {"function": name}
    return None


def load(tf, import_program, path, prefix, model_id, scope):
    """Import NEW without its training loop and run the scope's setup statements; the module,
    with (namespace, [(label, variable)] in creation order) under NAMESPACE_ATTR."""
    import importlib.util
    import sys

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    steps = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and STEP_RE.match(n.name)}
    created = []

    def record(next_creator, **kwargs):
        variable = next_creator(**kwargs)
        created.append(variable)
        return variable

    with tf.variable_creator_scope(record):
        if scope.get("function") is None:
            # the module's own statements up to its training loop, every definition of it
            setup = setup_statements(_module_statements(tree), steps)
            keep = {id(s) for s in setup}
            body = [s for s in tree.body if isinstance(s, _DEFINITIONS) or id(s) in keep]
            name = prefix + "".join(c if c.isalnum() else "_" for c in model_id)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), module.__dict__)
            namespace = module.__dict__
        else:
            module = import_program(path, prefix, model_id)
            function = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                            and n.name == scope["function"])
            setup = setup_statements(function.body, steps)
            namespace = dict(module.__dict__)
            exec(compile(ast.Module(body=setup, type_ignores=[]), path, "exec"), namespace)
    labels = {}
    for key, value in list(namespace.items()):
        _reach(tf, value, key, labels)
    variables = [(labels[id(v)], v) for v in created
                 if id(v) in labels and v.dtype.is_floating]
    setattr(module, NAMESPACE_ATTR, (namespace, variables))
    return module


def _reach(tf, value, label, labels, depth=0):
    """Label every tf.Variable held by `value` (dicts, lists, tuples) by its first access path."""
    if isinstance(value, tf.Variable):
        labels.setdefault(id(value), label)
    elif depth < 3 and isinstance(value, dict):
        for k, v in value.items():
            _reach(tf, v, "%s[%r]" % (label, k), labels, depth + 1)
    elif depth < 3 and isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reach(tf, v, "%s[%d]" % (label, i), labels, depth + 1)


def holds_variables(tf, value):
    labels = {}
    _reach(tf, value, "", labels)
    return bool(labels)


def map_by_order(tf1_vars, new_vars):
    """tf1_vars: [(name, shape)]; new_vars: [(label, shape)], both in creation order. Same
    result shape as weightmap.map_weights; nothing is mapped unless the counts agree."""
    mapping, how, mismatch = {}, {}, []
    if len(tf1_vars) == len(new_vars):
        for i, ((name, shape), (label, new_shape)) in enumerate(zip(tf1_vars, new_vars)):
            if list(shape) != list(new_shape):
                mismatch.append((name, label, list(shape), list(new_shape)))
            mapping[name], how[name] = i, "order"
    return {"mapping": mapping, "how": how,
            "unmapped_tf1": [n for n, _ in tf1_vars if n not in mapping],
            "unmapped_keras": [l for i, (l, _) in enumerate(new_vars)
                               if i not in mapping.values()],
            "shape_mismatch": mismatch}
