"""Which functions build models, and what each of their parameters is.

A *model function* builds layers (tf.layers, contrib/slim layers, batch norm,
or another model function of the same module) and does not also build the
training machinery (placeholders, sessions, optimizers, collections): that is
program code for the training-loop rewrite.

Each parameter of a model function is one of:
* the *training flag* (flows into `training=` / `is_training=` / a helper's flag),
* a *reuse* flag (only used as `reuse=`): dropped, reuse is calling the object again,
* the *scope name* (only used as the name of a variable scope wrapping the body),
* a *tensor* (flows into a layer's input), or
* *configuration* (everything else: filters, strides, units...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import libcst as cst

from migrate.model_rewrite.layers import LAYER_APIS, LAYER_CLASS_APIS

# Calls that mark a function as program code rather than model code.
PROGRAM_MARKERS = (
    "tensorflow.placeholder", "tensorflow.placeholder_with_default", "tensorflow.Session",
    "tensorflow.InteractiveSession", "tensorflow.get_collection", "tensorflow.global_variables_initializer",
    "tensorflow.train.", "tensorflow.estimator.EstimatorSpec", "tensorflow.losses.",
    "tensorflow.metrics.", "tensorflow.summary.", "tf_slim.learning.",
)
VARIABLE_SCOPES = ("tensorflow.variable_scope", "tensorflow.name_scope")
GET_VARIABLE = "tensorflow.get_variable"
TRAINING_KEYWORDS = ("training", "is_training")


def dotted(node) -> Optional[str]:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def camel_case(name: str) -> str:
    parts = [p for p in re.split(r"_+", name) if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Model"


@dataclass
class FunctionInfo:
    node: cst.FunctionDef
    name: str
    params: List[str]
    defaults: Dict[str, cst.BaseExpression]
    calls_helpers: Set[str] = field(default_factory=set)
    is_model: bool = False
    is_program: bool = False
    training_param: Optional[str] = None
    reuse_params: Set[str] = field(default_factory=set)
    scope_param: Optional[str] = None
    scope_name: Optional[cst.BaseExpression] = None  # whole-body variable_scope name
    scope_default: Optional[cst.BaseExpression] = None  # its default_name (`scope or 'vgg_16'`)
    # `scope or 'x'` names the scope 'x' (a second call shares its variables); default_name='x'
    # makes TF1 uniquify it ('x_1'), so each call builds new variables.
    scope_default_shared: bool = False
    scope_as: Optional[str] = None  # `with tf.variable_scope(...) as sc:` (sc.name, end_points)
    # slim arg_scope defaults every call site runs it under (arg_scopes.inherit), or why not.
    inherited_scopes: list = field(default_factory=list)
    arg_scope_conflict: Optional[str] = None
    # id(call) -> the value a caller's `*_arg_scope(is_training=...)` gives the model's batch
    # norms: the class takes `training`, and that call passes `training=<value>`.
    scope_training: dict = field(default_factory=dict)
    arg_scope_functions: dict = field(default_factory=dict)  # the module's `*_arg_scope()`s
    # Two builds of this function share variables in TF1: `reuse` is a parameter, the scope has
    # reuse=tf.AUTO_REUSE/True, or its name is a literal (a second build with a literal scope
    # either reused the variables or failed), so every caller site uses one Keras object.
    shares_variables: bool = False
    tensor_params: List[str] = field(default_factory=list)
    config_params: List[str] = field(default_factory=list)
    class_name: str = ""
    base: str = "tf.keras.Model"
    called_from_program: bool = False
    external: bool = False  # a helper defined in another module of the tree (see tree_index)
    # `is_training = mode == tf.estimator.ModeKeys.TRAIN`: the mode parameter, the local flag,
    # and the comparison with `{}` for the mode (callers pass training=<that>).
    mode_param: Optional[str] = None
    mode_local: Optional[str] = None
    mode_template: Optional[str] = None


class _Uses(cst.CSTVisitor):
    """Collect, for one function, the facts the classification needs."""

    def __init__(self, resolve, module_functions: Set[str], wrapper_objects=None):
        self.resolve = resolve
        self.module_functions = module_functions
        # Module-level batch-norm wrapper objects (usage.WrapperObject by name): layer calls.
        self.wrapper_objects = wrapper_objects or {}
        self.builds_layers = False
        self.layer_calls = 0  # tf.layers/slim/Keras layers and helper calls
        self.variable_calls = 0  # tf.get_variable (DCGAN/pix2pix ops: linear, conv, deconv)
        self.program = False
        self.helpers: Set[str] = set()
        self.training_values: List[cst.BaseExpression] = []
        self.reuse_values: List[cst.BaseExpression] = []
        self.tensor_exprs: List[cst.BaseExpression] = []
        self.assignments: Dict[str, List[cst.BaseExpression]] = {}
        self.helper_calls: List[cst.Call] = []
        # Names passed to TF ops (tf.nn.dropout(h, keep_prob), tf.concat([a, b], 0)): run-time
        # values, so a parameter among them is a `call` argument, not configuration.
        self.op_arguments: Set[str] = set()
        self.ctor_arguments: Set[str] = set()  # names in layer constructor arguments (configuration)

    def visit_Call(self, node: cst.Call) -> None:
        api = self.resolve(node.func)
        if api is not None:
            if any(api == m or (m.endswith(".") and api.startswith(m)) for m in PROGRAM_MARKERS):
                self.program = True
            if api.startswith("tensorflow.") and api not in LAYER_APIS and \
                    api not in LAYER_CLASS_APIS and api not in VARIABLE_SCOPES and \
                    not api.startswith(("tensorflow.assign", "tensorflow.Variable", "tensorflow.get_variable")):
                for arg in node.args:
                    if arg.keyword is None or arg.keyword.value not in ("name", "axis", "dtype"):
                        self.op_arguments |= _all_names(arg.value)
            if api == GET_VARIABLE:
                # A weight the helper creates itself: a Keras Layer creating it in build().
                self.builds_layers = True
                self.variable_calls += 1
                for arg in node.args:
                    self.ctor_arguments |= _all_names(arg.value)
            if api in LAYER_APIS:
                self.builds_layers = True
                self.layer_calls += 1
                positional = [a for a in node.args if a.keyword is None]
                if positional:
                    self.tensor_exprs.append(positional[0].value)
                for arg in node.args[1:]:
                    if arg.keyword is None or arg.keyword.value not in TRAINING_KEYWORDS + ("inputs",):
                        self.ctor_arguments |= _all_names(arg.value)
                for arg in node.args:
                    if arg.keyword is not None and arg.keyword.value in ("inputs",):
                        self.tensor_exprs.append(arg.value)
            if api in LAYER_CLASS_APIS:
                self.builds_layers = True
            if api == "tf_slim.repeat":  # slim.repeat(net, 2, slim.conv2d, 64, [3, 3], scope=...)
                self.builds_layers = True
                positional = [a for a in node.args if a.keyword is None]
                if positional:
                    self.tensor_exprs.append(positional[0].value)
                for arg in node.args[1:]:
                    self.ctor_arguments |= _all_names(arg.value)
            if api in VARIABLE_SCOPES:
                for arg in node.args:
                    if arg.keyword is not None and arg.keyword.value == "reuse":
                        self.reuse_values.append(arg.value)
        if api == "tensorflow.cond" and len(node.args) >= 3 and all(
                isinstance(a.value, cst.Lambda) and isinstance(a.value.body, cst.Call)
                and self.resolve(a.value.body.func) in LAYER_APIS for a in node.args[1:3]):
            # tf.cond(flag, lambda: layer(..., training=True), lambda: layer(..., training=False))
            self.training_values.append(node.args[0].value)
        if isinstance(node.func, cst.Call) and self.resolve(node.func.func) in LAYER_CLASS_APIS:
            positional = [a for a in node.args if a.keyword is None]
            if positional:
                self.tensor_exprs.append(positional[0].value)
        if isinstance(node.func, cst.Name) and node.func.value in self.wrapper_objects:
            # `g_bn0(h, train=train)`: a batch norm on its input; its flag is the training one.
            obj = self.wrapper_objects[node.func.value]
            self.builds_layers = True
            for index, arg in enumerate(node.args):
                target = arg.keyword.value if arg.keyword is not None else (
                    obj.call_params[index] if index < len(obj.call_params) else None)
                if target is not None and obj.call_params and target == obj.call_params[0]:
                    self.tensor_exprs.append(arg.value)
                elif target is not None and target == obj.training_param:
                    self.training_values.append(arg.value)
        key = dotted(node.func)
        if key is not None and key in self.module_functions:
            self.helpers.add(key)
            self.helper_calls.append(node)
        for arg in node.args:
            if arg.keyword is None:
                continue
            key = arg.keyword.value
            if key in TRAINING_KEYWORDS and api not in VARIABLE_SCOPES:
                self.training_values.append(arg.value)
            elif key == "reuse":
                self.reuse_values.append(arg.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in ("minimize", "apply_gradients", "compute_gradients"):
            self.program = True

    def visit_DictElement(self, node: cst.DictElement) -> None:
        if isinstance(node.key, cst.SimpleString) and node.key.evaluated_value in TRAINING_KEYWORDS:
            self.training_values.append(node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self.assignments.setdefault(target.target.value, []).append(node.value)


def _names_in_tensor_position(expr) -> Set[str]:
    """Names an expression passes on as tensor data (not its config-looking arguments)."""
    if isinstance(expr, cst.Name):
        return {expr.value}
    if isinstance(expr, cst.BinaryOperation):
        return _names_in_tensor_position(expr.left) | _names_in_tensor_position(expr.right)
    if isinstance(expr, cst.Call):
        positional = [a for a in expr.args if a.keyword is None]
        return _names_in_tensor_position(positional[0].value) if positional else set()
    if isinstance(expr, (cst.List, cst.Tuple)):
        out = set()
        for element in expr.elements:
            out |= _names_in_tensor_position(element.value)
        return out
    if isinstance(expr, cst.Subscript):
        return _names_in_tensor_position(expr.value)
    if isinstance(expr, cst.Attribute):
        return set()
    return set()


def _all_names(expr) -> Set[str]:
    names: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Name(self, node):
            names.add(node.value)

        def visit_Attribute(self, node):
            node.value.visit(self)
            return False

    expr.visit(V())
    return names


def _param_of(expr, params) -> Optional[str]:
    return expr.value if isinstance(expr, cst.Name) and expr.value in params else None


def analyse_module(module: cst.Module, resolve, externals=None,
                   wrapper_objects=None) -> Dict[str, FunctionInfo]:
    """Model functions of `module`; `externals` are helpers imported from other modules of the
    tree ({local callable name: (tree_index.ExternalHelper, class spelling here)});
    `wrapper_objects` the module-level batch-norm wrapper objects (usage.WrapperObject)."""
    functions: Dict[str, FunctionInfo] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and not stmt.asynchronous:
            params = [p.name.value for p in stmt.params.params]
            defaults = {p.name.value: p.default for p in stmt.params.params if p.default is not None}
            functions[stmt.name.value] = FunctionInfo(stmt, stmt.name.value, params, defaults)
    for local, (helper, class_spelling) in (externals or {}).items():
        if local in functions:
            continue  # a local definition shadows the import
        functions[local] = FunctionInfo(
            node=None, name=helper.name, params=list(helper.params),
            defaults={p: cst.parse_expression(v) for p, v in helper.defaults},
            is_model=True, training_param=helper.training_param,
            reuse_params=set(helper.reuse_params), scope_param=helper.scope_param,
            scope_name=cst.parse_expression(helper.scope_name) if helper.scope_name else None,
            scope_default=cst.parse_expression(helper.scope_default) if helper.scope_default else None,
            scope_default_shared=helper.scope_default_shared,
            mode_param=helper.mode_param, mode_template=helper.mode_template,
            tensor_params=list(helper.tensor_params), config_params=list(helper.config_params),
            class_name=class_spelling, base=helper.base, external=True)
    names = set(functions)
    uses: Dict[str, _Uses] = {}
    for name, info in functions.items():
        if info.external:
            continue
        visitor = _Uses(resolve, names - {name}, wrapper_objects)
        info.node.visit(visitor)
        uses[name] = visitor
        info.calls_helpers = visitor.helpers
        info.is_program = visitor.program

    # A model function builds layers itself or calls one that does (fixpoint).
    changed = True
    while changed:
        changed = False
        for name, info in functions.items():
            if info.is_model or info.is_program or info.external:
                continue
            if uses[name].builds_layers or any(functions[h].is_model for h in info.calls_helpers):
                info.is_model = True
                changed = True

    # Helpers before their callers: a caller's tensor parameters are those it passes on to a
    # helper's tensor parameters.
    for name in _callees_first(functions):
        info = functions[name]
        if not info.is_model or info.external:
            continue
        _classify_params(info, uses[name], functions, resolve)
    called_by_models: Set[str] = set()
    for name, info in functions.items():
        if info.external:
            continue
        for helper in info.calls_helpers:
            if not functions[helper].is_model:
                continue
            if info.is_model:
                called_by_models.add(helper)
            else:
                functions[helper].called_from_program = True
    for name, info in functions.items():
        # A model nothing else in the module builds on is a model the program uses.
        if info.is_model and not info.external and name not in called_by_models:
            info.called_from_program = True
    from migrate.model_rewrite import arg_scopes

    arg_scopes.inherit(module, functions, resolve)
    scope_functions = arg_scopes.arg_scope_functions(module, resolve)
    taken = set(names)
    for name, info in functions.items():
        info.arg_scope_functions = scope_functions
        if info.is_model and not info.external:
            info.base = "tf.keras.Model" if info.called_from_program else "tf.keras.layers.Layer"
            class_name = camel_case(name)
            while class_name in taken:
                class_name += "Model" if info.called_from_program else "Layer"
            taken.add(class_name)
            info.class_name = class_name
    return functions


def _callees_first(functions: Dict[str, FunctionInfo]) -> List[str]:
    """Function names in module order, each after the module functions it calls (a cycle
    keeps module order)."""
    order: List[str] = []
    state: Dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return
        state[name] = 1
        for helper in sorted(functions[name].calls_helpers):
            if helper in functions:
                visit(helper)
        state[name] = 2
        order.append(name)

    for name in functions:
        visit(name)
    return order


def _classify_params(info: FunctionInfo, uses: _Uses, functions, resolve) -> None:
    params = info.params
    training = {p for p in (_param_of(v, params) for v in uses.training_values) if p}
    # A helper's training parameter, passed positionally or by keyword.
    for call in uses.helper_calls:
        helper = functions[dotted(call.func)]
        for index, arg in enumerate(call.args):
            target = (arg.keyword.value if arg.keyword is not None
                      else (helper.params[index] if index < len(helper.params) else None))
            if target is not None and target == helper.training_param:
                param = _param_of(arg.value, params)
                if param:
                    training.add(param)
    if len(training) == 1:
        info.training_param = training.pop()
    elif not training:
        _find_mode_flag(info, uses)
    info.reuse_params = {p for p in (_param_of(v, params) for v in uses.reuse_values) if p}

    scope_with = whole_body_scope(info.node, resolve, set(functions))
    if scope_with is not None:
        scope_call = scope_with.items[0].item
        positional = [a.value for a in scope_call.args if a.keyword is None]
        keywords = {a.keyword.value: a.value for a in scope_call.args if a.keyword is not None}
        name = positional[0] if positional else keywords.get("name_or_scope")
        default = positional[1] if len(positional) > 1 else keywords.get("default_name")
        # `variable_scope(scope or 'net')` is `variable_scope(scope, 'net')`.
        if isinstance(name, cst.BooleanOperation) and isinstance(name.operator, cst.Or) \
                and isinstance(name.right, cst.SimpleString) and default is None:
            name, default = name.left, name.right
            info.scope_default_shared = True
        if name is not None:
            info.scope_name = name
            info.scope_param = _param_of(name, params)
            asname = scope_with.items[0].asname
            info.scope_as = asname.name.value if asname is not None else None
            handle = reuse_handle_statements(scope_with, params)
            if handle is not None:
                # DCGAN's `if reuse: scope.reuse_variables()`: a reuse flag, variables shared.
                info.reuse_params |= {p for _, p in handle if p is not None}
                info.shares_variables = True
            if isinstance(default, cst.SimpleString):
                info.scope_default = default
            # `def vgg_a(inputs, ..., scope='vgg_a')`: uncalled with a scope, the scope is
            # the parameter's default; default_name only names it when that is None.
            param_default = info.defaults.get(info.scope_param) if info.scope_param else None
            if isinstance(param_default, cst.SimpleString):
                info.scope_default = param_default
            reuse = keywords.get("reuse")
            info.shares_variables = info.shares_variables or (
                isinstance(name, (cst.SimpleString, cst.ConcatenatedString))
                or info.scope_default_shared
                or (reuse is not None and (resolve(reuse) == "tensorflow.AUTO_REUSE"
                                           or (isinstance(reuse, cst.Name) and reuse.value == "True"))))
    info.shares_variables = info.shares_variables or bool(info.reuse_params)

    # Tensor parameters: backward closure from the layers' input positions through assignments.
    worklist = []
    for expr in uses.tensor_exprs:
        worklist.extend(_names_in_tensor_position(expr))
    for call in uses.helper_calls:
        helper = functions[dotted(call.func)]
        for index, arg in enumerate(call.args):
            target = (arg.keyword.value if arg.keyword is not None
                      else (helper.params[index] if index < len(helper.params) else None))
            if target in helper.tensor_params:
                worklist.extend(_names_in_tensor_position(arg.value))
    seen: Set[str] = set()
    tensors: Set[str] = set()
    while worklist:
        name = worklist.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in params:
            tensors.add(name)
        for value in uses.assignments.get(name, []):
            worklist.extend(_names_in_tensor_position(value))
    if uses.variable_calls and not uses.layer_calls and not uses.helper_calls and params:
        # A tf.get_variable helper (`conv(batch_input, out_channels, stride)`): its input is the
        # first parameter (its shape may size the weights); the rest configure it (a stride
        # passed to tf.nn.conv2d included).
        tensors = {params[0]} & (tensors | uses.op_arguments)
    else:
        tensors |= (set(params) & uses.op_arguments) - uses.ctor_arguments
    special = {info.training_param, info.scope_param, info.mode_param} | info.reuse_params
    info.tensor_params = [p for p in params if p in tensors and p not in special]
    info.config_params = [p for p in params if p not in tensors and p not in special]


def whole_body_scope(func: cst.FunctionDef, resolve, module_functions: Set[str]) -> Optional[cst.With]:
    """The `with tf.variable_scope(...)` that holds every layer the function builds: the only
    top-level statement that builds layers or calls a module function (the slim nets set up
    `end_points = {}` before it and `return net, end_points` after it)."""
    body = _body_statements(func)
    scopes = [s for s in body if isinstance(s, cst.With) and len(s.items) == 1
              and isinstance(s.items[0].item, cst.Call)
              and resolve(s.items[0].item.func) in VARIABLE_SCOPES
              and (s.items[0].asname is None or (isinstance(s.items[0].asname.name, cst.Name) and
                                                  resolve(s.items[0].item.func) == VARIABLE_SCOPES[0]))]
    if len(scopes) != 1:
        return None
    if any(s is not scopes[0] and _builds(s, resolve, module_functions) for s in body):
        return None
    return scopes[0]


def _builds(node, resolve, module_functions: Set[str]) -> bool:
    """Whether `node` calls a layer, slim.repeat or a function of the module."""
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            api = resolve(call.func)
            if api in LAYER_APIS or api in LAYER_CLASS_APIS or api == "tf_slim.repeat" \
                    or dotted(call.func) in module_functions or (
                    isinstance(call.func, cst.Call) and resolve(call.func.func) in LAYER_CLASS_APIS):
                found.append(call)

    node.visit(V())
    return bool(found)


def reuse_handle_statements(with_stmt: cst.With, params) -> Optional[List[tuple]]:
    """For `with tf.variable_scope(...) as scope:` opening with DCGAN's `if reuse:
    scope.reuse_variables()` (or a bare `scope.reuse_variables()`): [(statement, the reuse
    parameter or None)]; else None. In Keras calling the same object again is the reuse, so
    the converter drops these statements."""
    asname = with_stmt.items[0].asname if len(with_stmt.items) == 1 else None
    if asname is None or not isinstance(asname.name, cst.Name) or \
            not isinstance(with_stmt.body, cst.IndentedBlock):
        return None
    handle = asname.name.value

    def reuse_call(stmt) -> bool:
        return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call)
                and not stmt.body[0].value.args
                and dotted(stmt.body[0].value.func) == f"{handle}.reuse_variables")

    found = []
    for stmt in with_stmt.body.body:
        if reuse_call(stmt):
            found.append((stmt, None))
        elif isinstance(stmt, cst.If) and stmt.orelse is None and isinstance(stmt.test, cst.Name) \
                and stmt.test.value in params and isinstance(stmt.body, cst.IndentedBlock) \
                and len(stmt.body.body) == 1 and reuse_call(stmt.body.body[0]):
            found.append((stmt, stmt.test.value))
        else:
            break
    return found or None


def _find_mode_flag(info: FunctionInfo, uses: _Uses) -> None:
    """`is_training = mode == tf.estimator.ModeKeys.TRAIN` (or `== 'train'`) at the top level."""
    flags = {v.value for v in uses.training_values if isinstance(v, cst.Name)}
    for stmt in _body_statements(info.node):
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            continue
        target = stmt.body[0].targets[0].target
        value = stmt.body[0].value
        if isinstance(value, cst.Comparison) and len(value.comparisons) == 1 and \
                isinstance(value.comparisons[0].operator, cst.Equal) and \
                isinstance(value.left, cst.Name) and value.left.value in info.params and \
                isinstance(target, cst.Name) and target.value in flags and \
                len(uses.assignments.get(target.value, [])) == 1:
            comparator = _RENDER_ANALYSIS.code_for_node(value.comparisons[0].comparator)
            info.mode_param, info.mode_local = value.left.value, target.value
            info.mode_template = "{} == " + comparator
            return


_RENDER_ANALYSIS = cst.Module(body=[])


def _body_statements(func: cst.FunctionDef):
    body = list(func.body.body) if isinstance(func.body, cst.IndentedBlock) else []
    if body and _is_docstring(body[0]):
        body = body[1:]
    return body


def _is_docstring(stmt) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))
