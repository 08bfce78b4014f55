"""Network classes: a TF1 object whose one method builds the network -> a Keras Model.

Two shapes are common in public TF1 repositories:

* TensorFlow's official ResNet (`class Model(object)`): `__init__` stores configuration,
  `__call__(self, inputs, training)` builds the network with `tf.layers` and module helpers;
* GAN repositories: `class Generator(object)` with `self.name = 'generator'` in `__init__`,
  `__call__(self, z, reuse=False)` building under `tf.variable_scope(self.name, reuse=reuse)`,
  and a `vars` property filtering `tf.global_variables()` by that scope.

Such a class is the model function its graph method is, with configuration read from `self`.
So the method is handed to the model-function converter (`convert.FunctionConverter`) as a
module-level function of the same name (`network_function`); its class source is then given the
class's own constructor back (`class_source`): `__init__` keeps the original parameters and
configuration statements (run after `super().__init__`, before the layers that read them), and
`call(self, inputs, training=...)` keeps the converted body. `reuse` disappears (calling the
same object again is reuse), a scope-filtering `vars` property becomes `self.trainable_variables`.
Callers keep `model = Model(10)` and call `model(images, training=is_training)`
(`InstanceCallRewriter`): Keras 3 refuses Python values passed positionally.

Anything else (an `__init__` that creates tensors or placeholders, several graph methods, state
stored on `self` while building, objects passed where their calls cannot be rewritten) raises
`Unmappable`: the class stays as it was, marked with the reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import libcst as cst

from migrate.model_rewrite.analysis import _is_docstring, dotted
from migrate.model_rewrite.layers import Unmappable, literal
from migrate.model_rewrite.tf1_classes import _plain_params, init_statements

_RENDER = cst.Module(body=[])
# Methods that build the network when the program calls the object.
GRAPH_METHODS = ("__call__",)
# Attributes a Keras 3 Model has (or uses) with another meaning: configuration stored under one
# of these names would break the model. `name` is handled: it becomes the Keras name.
KERAS_MODEL_ATTRIBUTES = frozenset({
    "trainable", "dtype", "weights", "built", "input", "output", "inputs", "outputs", "losses",
    "variables", "trainable_variables", "non_trainable_variables", "trainable_weights",
    "non_trainable_weights", "layers", "call", "build", "compile", "fit", "predict", "evaluate",
    "optimizer", "metrics", "loss", "input_spec", "supports_masking", "dtype_policy",
    "compute_dtype", "variable_dtype", "path", "summary", "save", "get_config", "submodules",
    "state_updates", "updates", "training",
})
# `tf.global_variables()` / `tf.trainable_variables()` / the collection forms: what a `vars`
# property filters by scope.
_VARIABLE_LISTS = ("tensorflow.global_variables", "tensorflow.trainable_variables",
                   "tensorflow.all_variables", "tensorflow.get_collection")


@dataclass
class NetworkClass:
    name: str
    node: cst.ClassDef
    method: cst.FunctionDef
    init: Optional[cst.FunctionDef]
    init_params: List[cst.Param]
    init_body: List[cst.BaseStatement]  # configuration statements, kept as they are
    attrs: Set[str]  # attributes __init__ stores
    call_params: List[str]  # the graph method's parameters, without self
    call_defaults: Dict[str, cst.BaseExpression]
    keras_name: Optional[cst.BaseExpression] = None  # `self.name = <this>` in __init__
    properties: List[str] = field(default_factory=list)  # scope-variable properties
    docstring: Optional[cst.SimpleStatementLine] = None
    function: Optional[cst.FunctionDef] = None  # the graph method as a model function


def candidate(cls: cst.ClassDef, resolve, module_functions: Set[str]) -> Optional[NetworkClass]:
    """The class as a network class, None when it has no graph method of that kind (another
    class shape: its own reason applies), or Unmappable with why it cannot convert."""
    if any(dotted(base.value) != "object" for base in cls.bases) or cls.keywords:
        return None
    body = list(cls.body.body) if isinstance(cls.body, cst.IndentedBlock) else []
    docstring = body[0] if body and _is_docstring(body[0]) else None
    members = body[1:] if docstring is not None else body
    methods = {m.name.value: m for m in members if isinstance(m, cst.FunctionDef)}
    builders = [n for n in GRAPH_METHODS if n in methods]
    if not builders:
        return None
    if cls.decorators:
        raise Unmappable("a decorated class")
    others = [m for m in members if not isinstance(m, cst.FunctionDef)]
    if others:
        raise Unmappable("the class body holds more than methods (class attributes)")
    method = methods[builders[0]]
    properties = []
    for name, member in methods.items():
        if name in ("__init__", method.name.value):
            continue
        if _is_scope_variables_property(member, resolve):
            properties.append(name)
            continue
        raise Unmappable(f"it has methods besides __init__ and {method.name.value} (`{name}`): "
                         "the rewrite converts network objects with one graph-building method")
    for name in properties:
        if name in KERAS_MODEL_ATTRIBUTES:
            raise Unmappable(f"its `{name}` property would replace the Keras Model's own `{name}`")
    init = methods.get("__init__")
    init_params = _plain_params(init) if init is not None else [cst.Param(cst.Name("self"))]
    call_params = _plain_params(method)
    if len(call_params) < 2:
        raise Unmappable(f"{method.name.value} takes no input")
    init_body, attrs, keras_name = _configuration(init, resolve, module_functions) \
        if init is not None else ([], set(), None)
    net = NetworkClass(cls.name.value, cls, method, init, init_params, init_body, attrs,
                       [p.name.value for p in call_params[1:]],
                       {p.name.value: p.default for p in call_params[1:] if p.default is not None},
                       keras_name, properties, docstring)
    _check_method(net, method)
    net.function = network_function(net)
    return net


def network_function(net: NetworkClass) -> cst.FunctionDef:
    """The graph method as a module-level model function named like the class: what
    `analysis`/`convert` read (configuration stays `self.<attr>`, set by __init__ first)."""
    method = net.method
    params = method.params.with_changes(params=list(method.params.params)[1:])
    body = method.body
    if net.keras_name is not None:
        body = body.visit(_ScopeName(net.keras_name))
    return method.with_changes(name=cst.Name(net.name), params=params, body=body,
                               leading_lines=[], decorators=[])


class _ScopeName(cst.CSTTransformer):
    """`tf.variable_scope(self.name, ...)` names the scope what __init__ stored in self.name."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def leave_Arg(self, original, updated):
        if original.keyword is None and isinstance(original.value, cst.Attribute) and \
                dotted(original.value) == "self.name":
            return updated.with_changes(value=self.value)
        return updated


def class_source(net: NetworkClass, converted_source: str, indent: str,
                 training_param: Optional[str]) -> str:
    """The converter's class for the network function, given the class's own name, docstring
    and constructor back."""
    module = cst.parse_module(converted_source)
    cls = module.body[0]
    assert isinstance(cls, cst.ClassDef)
    body = list(cls.body.body)
    methods = {m.name.value: m for m in body if isinstance(m, cst.FunctionDef)}
    init, call = methods["__init__"], methods["call"]
    generated_attrs = _assigned_self_attrs(init)
    clash = sorted(generated_attrs & net.attrs)
    if clash:
        raise Unmappable(f"a layer of {net.method.name.value} would be stored as `self.{clash[0]}`, "
                         "which __init__ already sets")
    init_stmts = list(init.body.body)
    super_index = next(i for i, s in enumerate(init_stmts) if "super().__init__" in _code(s))
    head = init_stmts[:super_index]
    if net.keras_name is not None:
        # The Keras name replaces any name the converter derived from the scope.
        head = [s for s in head if "kwargs.setdefault" not in _code(s)]
        head.append(cst.parse_statement(f"kwargs.setdefault({_quote_like(converted_source)}name"
                                        f"{_quote_like(converted_source)}, {_code(net.keras_name)})\n"))
    new_init_body = head + [init_stmts[super_index]] + \
        [s.with_changes(leading_lines=[]) if i == 0 else s for i, s in enumerate(net.init_body)] + \
        init_stmts[super_index + 1:]
    params = list(net.init_params)
    params[-1] = params[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    params.append(cst.Param(cst.Name("kwargs"), star="**"))
    new_params = cst.Parameters(params=params[:-1], star_kwarg=params[-1])
    new_init = init.with_changes(params=new_params, body=init.body.with_changes(body=new_init_body))
    new_call = call
    default = net.call_defaults.get(training_param) if training_param else None
    if default is not None:
        # Keras 3 uses call()'s default when the caller passes no flag: keep TF1's default.
        new_params = [p.with_changes(default=default) if p.name.value == "training" else p
                      for p in call.params.params]
        new_call = call.with_changes(params=call.params.with_changes(params=new_params))
    members = []
    docstring = net.docstring
    origin = (f"Migrated by tf-migrate from the TF1 class `{net.name}`: "
              f"{net.method.name.value} built the network, the layers are created once in __init__.")
    for member in body:
        if isinstance(member, cst.SimpleStatementLine) and _is_docstring(member):
            text = docstring.body[0].value if docstring is not None else None
            doc = text.evaluated_value if isinstance(text, cst.SimpleString) else None
            if docstring is not None and (doc is None or '"""' in doc or "\\" in doc):
                member = docstring  # kept as written
            else:
                lines = _wrap_words(origin, 92, indent)
                if doc is not None:
                    lines = [doc.strip(), "", indent + lines[0]] + lines[1:] + (
                        [indent] if len(lines) == 1 else [])
                member = cst.parse_statement('"""' + "\n".join(lines) + '"""\n')
        elif member is init:
            member = new_init
        elif member is call:
            member = new_call
        members.append(member)
    for name in net.properties:
        members.append(cst.parse_statement(
            f"@property\ndef {name}(self):\n{indent}return self.trainable_variables\n",
            config=cst.PartialParserConfig(default_indent=indent)).with_changes(
                leading_lines=[cst.EmptyLine()]))
    new_cls = cls.with_changes(name=cst.Name(net.name), body=cls.body.with_changes(body=members))
    code = module.with_changes(body=[new_cls]).code
    return "\n".join(line if line.strip() else "" for line in code.split("\n"))


def _wrap_words(text: str, width: int, indent: str) -> List[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return [lines[0]] + [indent + line for line in lines[1:]] + ([indent] if len(lines) > 1 else [])


def _quote_like(source: str) -> str:
    return "'" if "kwargs.setdefault('" in source or ("'" in source and '"' not in source) else '"'


def _code(node) -> str:
    return _RENDER.code_for_node(node).strip()


def _assigned_self_attrs(func: cst.FunctionDef) -> Set[str]:
    found: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_AssignTarget(self, node):
            if isinstance(node.target, cst.Attribute) and isinstance(node.target.value, cst.Name) \
                    and node.target.value.value == "self":
                found.add(node.target.attr.value)

    func.visit(V())
    return found


def _configuration(init: cst.FunctionDef, resolve, module_functions: Set[str]):
    """__init__'s statements when they only store configuration: (statements to keep, the
    attributes they set, the `self.name` value). TF calls (placeholders, variables, layers),
    calls of the module's functions and of methods of self make it graph code."""
    stmts = init_statements(init, resolve)
    kept: List[cst.BaseStatement] = []
    attrs: Set[str] = set()
    keras_name = None
    params = {p.name.value for p in init.params.params}
    for stmt in stmts:
        if _is_super_init(stmt):
            continue
        problem = _graph_code(stmt, resolve, module_functions)
        if problem:
            raise Unmappable(f"__init__ {problem}: only configuration can move to the Keras "
                             "constructor")
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 and \
                dotted(stmt.body[0].targets[0].target) == "self.name":
            value = stmt.body[0].value
            if not (literal(value) is not None and isinstance(literal(value), str)
                    or isinstance(value, cst.Name) and value.value in params):
                raise Unmappable("__init__ computes self.name (the Keras name must be known first)")
            keras_name = value
            continue  # passed to super().__init__ as the Keras name
        for attr in _stored(stmt):
            if attr in KERAS_MODEL_ATTRIBUTES:
                raise Unmappable(f"__init__ stores self.{attr}, a Keras Model attribute with "
                                 "another meaning")
            attrs.add(attr)
        kept.append(stmt)
    return kept, attrs, keras_name


def _is_super_init(stmt) -> bool:
    text = _code(stmt)
    return text.startswith("super(") and text.endswith(".__init__()") or text == "object.__init__(self)"


def _stored(stmt) -> Set[str]:
    found: Set[str] = set()

    class V(cst.CSTVisitor):
        def _target(self, target):
            if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and \
                    target.value.value == "self":
                found.add(target.attr.value)

        def visit_AssignTarget(self, node):
            self._target(node.target)

        def visit_AugAssign(self, node):
            self._target(node.target)

        def visit_AnnAssign(self, node):
            self._target(node.target)

    stmt.visit(V())
    return found


def _graph_code(node, resolve, module_functions: Set[str]) -> Optional[str]:
    """Why `node` is more than configuration, or None."""
    problems: List[str] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            api = resolve(call.func) or ""
            key = dotted(call.func) or ""
            if api.startswith(("tensorflow", "tf_slim", "keras")):
                problems.append(f"calls `{key}`")
            elif key.startswith("self."):
                problems.append(f"calls `{key}`")
            elif key.split(".")[0] in module_functions:
                problems.append(f"calls `{key}`")

        def visit_FunctionDef(self, node):
            problems.append("defines a function")
            return False

        def visit_Lambda(self, node):
            problems.append("defines a lambda")
            return False

    node.visit(V())
    return problems[0] if problems else None


def _check_method(net: NetworkClass, method: cst.FunctionDef) -> None:
    """The graph method reads configuration from self and stores nothing on it."""
    stored = _stored(method)
    if stored:
        raise Unmappable(f"{method.name.value} stores self.{sorted(stored)[0]} (state shared "
                         "through self)")
    read: Set[str] = set()
    bare: List[cst.Name] = []

    class V(cst.CSTVisitor):
        def visit_Attribute(self, node):
            if isinstance(node.value, cst.Name) and node.value.value == "self":
                read.add(node.attr.value)
                return False
            return True

        def visit_Name(self, node):
            if node.value == "self":
                bare.append(node)

    method.body.visit(V())
    if bare:
        raise Unmappable(f"{method.name.value} passes `self` on")
    known = net.attrs | ({"name"} if net.keras_name is not None else set())
    missing = sorted(read - known)
    if missing:
        raise Unmappable(f"{method.name.value} reads self.{missing[0]}, which __init__ does not "
                         "set as configuration")


def _is_scope_variables_property(func: cst.FunctionDef, resolve) -> bool:
    """`@property def vars(self): return <the variables under the object's scope>` in the forms
    GAN repositories use: `[v for v in tf.global_variables() if self.name in v.name]`,
    `tf.trainable_variables(scope=self.name)`, `tf.get_collection(KEY, scope=self.name)`.
    They name what Keras tracks itself: `self.trainable_variables` (an optimizer's var_list
    only takes the trainable ones; TF1 skipped the others, which have no gradient)."""
    if len(func.decorators) != 1 or dotted(func.decorators[0].decorator) != "property":
        return False
    params = func.params.params
    if len(params) != 1 or params[0].name.value != "self":
        return False
    stmts = list(func.body.body) if isinstance(func.body, cst.IndentedBlock) else []
    if stmts and _is_docstring(stmts[0]):
        stmts = stmts[1:]
    if len(stmts) != 1 or not isinstance(stmts[0], cst.SimpleStatementLine) or \
            not isinstance(stmts[0].body[0], cst.Return) or stmts[0].body[0].value is None:
        return False
    value = stmts[0].body[0].value
    if isinstance(value, cst.ListComp) and value.for_in.inner_for_in is None and \
            len(value.for_in.ifs) == 1 and isinstance(value.for_in.target, cst.Name) and \
            isinstance(value.elt, cst.Name) and value.elt.value == value.for_in.target.value and \
            isinstance(value.for_in.iter, cst.Call) and not value.for_in.iter.args and \
            resolve(value.for_in.iter.func) in _VARIABLE_LISTS[:3]:
        var = value.for_in.target.value
        test = value.for_in.ifs[0].test
        text = _code(test)
        return text in (f"self.name in {var}.name", f"{var}.name.startswith(self.name)",
                        f"{var}.name.startswith(self.name + '/')", f'{var}.name.startswith(self.name + "/")')
    if isinstance(value, cst.Call) and resolve(value.func) in _VARIABLE_LISTS:
        scope = [a for a in value.args if a.keyword is not None and a.keyword.value == "scope"]
        positional = [a for a in value.args if a.keyword is None]
        api = resolve(value.func)
        if api == "tensorflow.get_collection":
            if len(positional) != 1 or resolve(positional[0].value) not in (
                    "tensorflow.GraphKeys.TRAINABLE_VARIABLES", "tensorflow.GraphKeys.GLOBAL_VARIABLES"):
                return False
        elif positional:
            scope = scope or [positional[0]]
            positional = positional[1:]
            if positional:
                return False
        return len(scope) == 1 and dotted(scope[0].value) == "self.name"
    return False


def scope_filter_is_exact(net: NetworkClass, module_text: str) -> Optional[str]:
    """Why `self.name in v.name` would also select other variables, or None. TF1's substring
    test matched any variable whose name contains the object's name anywhere ('d' is in
    'generator/dense/kernel:0'); `trainable_variables` holds only the object's own."""
    value = literal(net.keras_name) if net.keras_name is not None else None
    if not isinstance(value, str):
        return "its variable filter uses a name the rewrite cannot read statically"
    if "/" in value or len(value) < 3:
        return f"its variable filter `{value!r} in v.name` may select other objects' variables"
    tree = ast.parse(module_text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                not any(c.isspace() for c in node.value) and \
                node.value != value and value in node.value:  # names, not prose
            return (f"its variable filter `{value!r} in v.name` also matches the name "
                    f"{node.value!r}: TF1 selected more than the object's own variables")
    for auto in ("conv2d", "dense", "batch_normalization", "conv2d_transpose", "kernel", "bias",
                 "gamma", "beta", "moving_mean", "moving_variance", "conv1d", "conv3d"):
        if value in auto:
            return (f"its variable filter `{value!r} in v.name` also matches TF1's default layer "
                    f"name {auto!r}")
    return None


def uses_substring_filter(net: NetworkClass) -> bool:
    """Whether a `vars` property tests `self.name in v.name` (not a prefix)."""
    found = []

    class V(cst.CSTVisitor):
        def visit_Comparison(self, node):
            if dotted(node.left) == "self.name" and any(
                    isinstance(c.operator, cst.In) for c in node.comparisons):
                found.append(node)

    for prop in _property_nodes(net):
        prop.visit(V())
    return bool(found)


def _property_nodes(net: NetworkClass):
    body = list(net.node.body.body)
    return [m for m in body if isinstance(m, cst.FunctionDef) and m.name.value in net.properties]


# -- callers ------------------------------------------------------------------------------------
def instance_names(tree: ast.Module, classes: Set[str]) -> Dict[str, str]:
    """Names bound to objects of `classes` anywhere in the module (`model = Model(10)`)."""
    found: Dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id in classes:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.func.id
    return found


def instance_problems(tree: ast.Module, net: NetworkClass, model_functions: Set[str]) -> Optional[str]:
    """Why the callers of the class cannot all be rewritten, or None: every use of the class is
    `x = Class(...)`, every use of such an `x` is a call (rewritten with training=) or an
    attribute read, and no model function (which would become a Keras class) creates one."""
    objects = {n for n, c in instance_names(tree, {net.name}).items()}
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
            continue
        parent = parents.get(node)
        if node.id == net.name:
            if not (isinstance(parent, ast.Call) and parent.func is node and
                    isinstance(parents.get(parent), ast.Assign) and
                    all(isinstance(t, ast.Name) for t in parents[parent].targets)):
                return f"the class is used other than as `x = {net.name}(...)` (line {node.lineno})"
            owner = _enclosing_function(node, parents)
            if owner in model_functions:
                return f"model function `{owner}` creates its objects"
        elif node.id in objects:
            if isinstance(parent, ast.Call) and parent.func is node:
                if any(isinstance(a, ast.Starred) for a in parent.args) or \
                        any(k.arg is None for k in parent.keywords):
                    return f"`{node.id}` is called with *args/**kwargs (line {node.lineno})"
                continue
            if isinstance(parent, ast.Attribute):
                continue
            return (f"its object `{node.id}` is passed on (line {node.lineno}), where its calls "
                    "cannot be given training= by keyword")
    return None


def _enclosing_function(node, parents) -> Optional[str]:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in parents and \
                isinstance(parents[node], ast.Module):
            return node.name
    return None


class InstanceCallRewriter(cst.CSTTransformer):
    """`model(images, is_training)` -> `model(images, training=is_training)`; `D(x, reuse=True)`
    -> `D(x)` (the same object is the same variables); the property `G.vars` stays."""

    def __init__(self, objects: Dict[str, "CallSignature"]):
        super().__init__()
        self.objects = objects

    def leave_Call(self, original, updated):
        if not (isinstance(original.func, cst.Name) and original.func.value in self.objects):
            return updated
        sig = self.objects[original.func.value]
        bound: Dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(updated.args):
            if arg.keyword is None:
                if index >= len(sig.params):
                    return updated
                bound[sig.params[index]] = arg.value
            else:
                bound[arg.keyword.value] = arg.value
        args: List[cst.Arg] = []
        for param in sig.tensor_params:
            if param in bound:
                value = bound[param]
                args.append(cst.Arg(value) if not args else
                            cst.Arg(value, keyword=cst.Name(param),
                                    equal=cst.AssignEqual(cst.SimpleWhitespace(""),
                                                          cst.SimpleWhitespace(""))))
        if sig.training_param and sig.training_param in bound:
            args.append(cst.Arg(bound[sig.training_param], keyword=cst.Name("training"),
                                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
        args = [a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                for a in args[:-1]] + args[-1:]
        return updated.with_changes(args=args)


@dataclass
class CallSignature:
    params: List[str]
    tensor_params: List[str]
    training_param: Optional[str]
