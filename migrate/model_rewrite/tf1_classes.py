"""Class-based TF1 model code: layer wrapper classes and model classes.

Two shapes are common in public TF1 repositories (DCGAN-tensorflow and its many forks):

* a *layer wrapper class* -- `__init__` stores configuration on `self`, `__call__(x, train=True)`
  returns one batch norm call built from it::

      class batch_norm(object):
          def __init__(self, epsilon=1e-5, momentum=0.9, name="batch_norm"):
              with tf.variable_scope(name):
                  self.epsilon = epsilon; self.momentum = momentum; self.name = name
          def __call__(self, x, train=True):
              return tf.contrib.layers.batch_norm(x, decay=self.momentum, updates_collections=None,
                  epsilon=self.epsilon, scale=True, is_training=train, scope=self.name)

  It becomes a Keras `Layer` subclass of the same name that creates the batch norm once in
  `__init__` (arguments mapped by `migrate.bn_mapping`, contrib defaults written out) and calls
  it in `call`. `call` keeps `__call__`'s parameters (names and defaults) and passes the flag on
  as `training=`: measured on TF 2.21, Keras 3 refuses a `train=` keyword the layer's `call` does
  not declare (TypeError), so renaming it to `training` would break every `bn(h, train=False)`.
  The `with tf.variable_scope(name)` in `__init__` created no variables and goes; `self.name`
  is Keras's read-only layer name, so it is passed to `super().__init__(name=...)`.

* a *model class* whose methods build the graph (`def generator(self, z): ... self.g_bn0(h0)`,
  placeholders, losses and optimizers on `self`). Its methods share state through `self` and
  graph collections, so no part of it can move to Keras alone: it is left unchanged, marked,
  and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

import libcst as cst

from migrate import bn_mapping
from migrate.model_rewrite.analysis import VARIABLE_SCOPES, _is_docstring, dotted
from migrate.model_rewrite.layers import (LAYER_APIS, LAYER_CLASS_APIS, Unmappable, literal,
                                          map_batch_norm_layer, render)

_BATCH_NORM_APIS = (bn_mapping.LAYERS_FUNCTION, bn_mapping.CONTRIB)


@dataclass
class ConvertedWrapper:
    name: str
    class_source: str
    notes: List[Tuple[str, str]] = field(default_factory=list)  # (code, message)
    uses_fused_compat: bool = False


def tf1_classes(module: cst.Module, resolve) -> Dict[str, cst.ClassDef]:
    """Top-level plain classes (no base, or `object`) whose code builds TF1 layers."""
    found: Dict[str, cst.ClassDef] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.ClassDef):
            continue
        if any(dotted(base.value) not in ("object",) for base in stmt.bases) or stmt.keywords:
            continue  # Keras subclasses and other bases are not TF1 graph code of this kind
        if builds_tf1_layers(stmt, resolve):
            found[stmt.name.value] = stmt
    return found


def tf1_objects(module: cst.Module, resolve) -> Dict[str, str]:
    """Names a model function must not use, described: the TF1 classes of the module and the
    module-level objects made from them (`g_bn0 = batch_norm(name='g_bn0')`). A Keras class
    calling one would run TF1 graph code (or build a new layer) on every call."""
    classes = tf1_classes(module, resolve)
    found = {name: f"the TF1 class `{name}`" for name in classes}
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call) and \
                        isinstance(small.value.func, cst.Name) and small.value.func.value in classes:
                    for target in small.targets:
                        if isinstance(target.target, cst.Name):
                            found[target.target.value] = (f"`{target.target.value}`, an object of the "
                                                          f"TF1 class `{small.value.func.value}`")
    return found


def mentioned(node, names) -> Set[str]:
    """Which of `names` the code of `node` reads (plain names)."""
    hits: Set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_Name(self, name):
            if name.value in names:
                hits.add(name.value)

    node.visit(Visitor())
    return hits


def builds_tf1_layers(node, resolve) -> bool:
    hits: List[cst.Call] = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, call):
            if resolve(call.func) in LAYER_APIS | LAYER_CLASS_APIS:
                hits.append(call)

    node.visit(Visitor())
    return bool(hits)


def graph_methods(cls: cst.ClassDef, resolve) -> List[str]:
    return [stmt.name.value for stmt in _body(cls)
            if isinstance(stmt, cst.FunctionDef) and builds_tf1_layers(stmt, resolve)]


def convert_wrapper(cls: cst.ClassDef, resolve, indent: str, options=None,
                    forgotten_update_ops: bool = False) -> ConvertedWrapper:
    """The Keras Layer for a batch-norm wrapper class, or Unmappable with the reason."""
    name = cls.name.value
    if cls.decorators:
        raise Unmappable("a decorated class")
    body = _body(cls)
    docstring = body[0] if body and _is_docstring(body[0]) else None
    members = body[1:] if docstring is not None else body
    methods = {m.name.value: m for m in members if isinstance(m, cst.FunctionDef)}
    others = [m for m in members if not isinstance(m, cst.FunctionDef)]
    if set(methods) != {"__init__", "__call__"} or others:
        builders = ", ".join(f"`{m}`" for m in graph_methods(cls, resolve))
        raise Unmappable(f"a model class: its methods ({builders}) build the TF1 graph and share it "
                         "through `self`; the rewrite converts model functions and batch-norm "
                         "wrapper classes (__init__ + __call__) only, so migrate this class by hand")
    init, call = methods["__init__"], methods["__call__"]
    init_params = _plain_params(init)
    call_params = _plain_params(call)
    if len(call_params) < 2:
        raise Unmappable("__call__ takes no input")
    attrs = _stored_attributes(init, init_params, resolve)
    bn_call = _single_return_call(call)
    after = None  # `return tf.nn.relu(tf.layers.batch_normalization(...))`
    if bn_mapping.API_BY_CANONICAL.get(resolve(bn_call.func) or "") is None and \
            len(bn_call.args) == 1 and bn_call.args[0].keyword is None and \
            isinstance(bn_call.args[0].value, cst.Call) and \
            (resolve(bn_call.func) or "").startswith("tensorflow."):
        after, bn_call = bn_call.func, bn_call.args[0].value
    api = bn_mapping.API_BY_CANONICAL.get(resolve(bn_call.func) or "")
    if api not in _BATCH_NORM_APIS:
        raise Unmappable("__call__ does not return one tf.layers/contrib/slim batch norm call")
    if any(a.star for a in bn_call.args):
        raise Unmappable("*args/**kwargs in the batch norm call")
    tensor_param = call_params[1].name.value
    flag_params = [p.name.value for p in call_params[2:]]
    positional = [a.value for a in bn_call.args if a.keyword is None]
    keywords = {a.keyword.value: a.value for a in bn_call.args if a.keyword is not None}
    if not positional and "inputs" in keywords:
        positional = [keywords.pop("inputs")]
    if len(positional) != 1 or not _is_name(positional[0], tensor_param):
        raise Unmappable("the batch norm input is not __call__'s first parameter")
    layer = map_batch_norm_layer(api, positional, keywords)
    training = layer.training
    if not (isinstance(training, bn_mapping.Code)
            or (isinstance(training, cst.Name) and training.value in flag_params + ["True", "False"])):
        raise Unmappable("the batch norm's training flag is not a __call__ parameter or a literal")
    # Everything the constructor arguments use must be known when __init__ runs: literals and
    # attributes __init__ stored (read back from `self`), never __call__'s parameters.
    for _, value in layer.ctor_args:
        _check_ctor_value(value, attrs, call_params)
    if layer.tf1_name is not None:
        _check_ctor_value(layer.tf1_name, attrs, call_params)
    if layer.activation is not None:
        _check_ctor_value(layer.activation, attrs, call_params)
        if after is not None:
            raise Unmappable("an activation_fn and another activation after the batch norm")
    activation = layer.activation if layer.activation is not None else after

    notes: List[Tuple[str, str]] = []
    mapping = layer.batch_norm
    keras_class, extra = "tf.keras.layers.BatchNormalization", []
    uses_fused_compat = False
    if mapping.may_be_fused:
        if getattr(options, "fused_bn", "keras") == "exact":
            from migrate.model_rewrite import fused_bn

            keras_class, uses_fused_compat = fused_bn.CLASS_NAME, True
            extra.append(("fused_ranks", "(2, 4)" if api == bn_mapping.CONTRIB else "(4, 5)"))
            if mapping.float32_decay is False:
                extra.append(("float32_decay", "False"))
        else:
            notes.append(("TFM302", "TF1 ran batch norm fused (4-D/5-D input; contrib also 2-D): "
                                    "Keras 3 skips Bessel's n/(n-1) correction of the moving "
                                    "variance (bounded divergence, about 1/(n-1) relative; verify "
                                    "names it; --fused-bn exact removes it)"))
    if forgotten_update_ops and not mapping.updates_inline:
        notes.append(("TFM206", "the TF1 program never ran UPDATE_OPS, so these moving statistics "
                                "never updated; Keras 3 updates them when called with "
                                "training=True (behaviour change)"))
    ctor = [f"{key}={render(value)}" for key, value in layer.ctor_args if key is not None]
    ctor += [f"{key}={value}" for key, value in extra]
    if layer.tf1_name is not None:
        ctor.append(f"name={render(layer.tf1_name)}")
    source = _class_source(name, docstring, init, init_params, call_params, attrs, keras_class,
                           ctor, render(training), activation, tensor_param, indent, api)
    return ConvertedWrapper(name, source, notes, uses_fused_compat)


def _class_source(name, docstring, init, init_params, call_params, attrs, keras_class, ctor,
                  training, activation, tensor_param, ind, api) -> str:
    module = cst.Module(body=[])
    built = "tf.contrib.layers.batch_norm" if api == bn_mapping.CONTRIB else "tf.layers.batch_normalization"
    origin = [f"Migrated by tf-migrate from the TF1 wrapper class `{name}`",
              f"({built}): the batch norm is created once, in __init__."]
    lines = [f"class {name}(tf.keras.layers.Layer):"]
    if docstring is not None:
        lines.append(ind + module.code_for_node(docstring).strip())
        lines.extend(ind + "# " + line for line in origin)
    else:
        lines.extend([ind + '"""' + origin[0], ind + origin[1], ind + '"""'])
    lines.append("")
    params = ", ".join([module.code_for_node(p).strip().rstrip(",") for p in init_params]
                       + ["**kwargs"])
    lines.append(ind + f"def __init__({params}):")
    keras_name = attrs.get("name")
    super_args = ([f"name={keras_name}"] if keras_name is not None else []) + ["**kwargs"]
    lines.append(ind * 2 + f"super().__init__({', '.join(super_args)})")
    for attr, value in attrs.items():
        if attr != "name":
            lines.append(ind * 2 + f"self.{attr} = {value}")
    ctor_text = f"self.batch_norm = {keras_class}({', '.join(ctor)})"
    if len(ind * 2 + ctor_text) > 99:
        inner = (",\n" + ind * 3).join(ctor)
        ctor_text = f"self.batch_norm = {keras_class}(\n{ind * 3}{inner},\n{ind * 2})"
    lines.append(ind * 2 + ctor_text)
    lines.append("")
    call_params_text = ", ".join(module.code_for_node(p).strip().rstrip(",") for p in call_params)
    lines.append(ind + f"def call({call_params_text}):")
    result = f"self.batch_norm({tensor_param}, training={training})"
    if activation is not None:
        result = f"{render(activation)}({result})"
    lines.append(ind * 2 + f"return {result}")
    return "\n".join(lines) + "\n"


def _body(cls: cst.ClassDef):
    return list(cls.body.body) if isinstance(cls.body, cst.IndentedBlock) else []


def _plain_params(func: cst.FunctionDef) -> List[cst.Param]:
    params = func.params
    if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None \
            or params.kwonly_params or params.posonly_params or func.decorators:
        raise Unmappable(f"{func.name.value} takes *args, **kwargs or keyword-only parameters")
    plain = list(params.params)
    if not plain or plain[0].name.value != "self":
        raise Unmappable(f"{func.name.value} is not a plain method")
    return plain


def init_statements(init: cst.FunctionDef, resolve) -> List[cst.BaseStatement]:
    """__init__'s statements after its docstring, seen through one `with tf.variable_scope(...)`
    around all of them (a scope around assignments creates no variables)."""
    stmts = list(init.body.body) if isinstance(init.body, cst.IndentedBlock) else []
    if stmts and _is_docstring(stmts[0]):
        stmts = stmts[1:]
    if len(stmts) == 1 and isinstance(stmts[0], cst.With) and len(stmts[0].items) == 1:
        item = stmts[0].items[0]
        if isinstance(item.item, cst.Call) and resolve(item.item.func) in VARIABLE_SCOPES \
                and item.asname is None:
            stmts = list(stmts[0].body.body)
    return stmts


def _stored_attributes(init: cst.FunctionDef, params: List[cst.Param], resolve) -> Dict[str, str]:
    """`self.a = <param or literal>` statements of __init__ (inside at most one
    `with tf.variable_scope(...)`, which creates no variables) -> attribute -> source."""
    names = {p.name.value for p in params[1:]}
    stmts = init_statements(init, resolve)
    attrs: Dict[str, str] = {}
    module = cst.Module(body=[])
    for stmt in stmts:
        if not (isinstance(stmt, cst.SimpleStatementLine) and all(
                isinstance(small, cst.Assign) and len(small.targets) == 1 for small in stmt.body)):
            raise Unmappable("__init__ does more than store its arguments on self")
        for small in stmt.body:
            target = small.targets[0].target
            if not (isinstance(target, cst.Attribute) and _is_name(target.value, "self")):
                raise Unmappable("__init__ does more than store its arguments on self")
            value = small.value
            if not (isinstance(value, cst.Name) and value.value in names) and \
                    literal(value) is bn_mapping.NOT_LITERAL:
                raise Unmappable(f"__init__ computes self.{target.attr.value}")
            if target.attr.value in _KERAS_LAYER_ATTRIBUTES:
                raise Unmappable(f"self.{target.attr.value} is a Keras Layer attribute with "
                                 "another meaning")
            attrs[target.attr.value] = module.code_for_node(value)
    return attrs


# Attributes a Keras 3 Layer already has (`name` is handled: it goes to super().__init__).
_KERAS_LAYER_ATTRIBUTES = {"trainable", "dtype", "weights", "built", "input", "output", "losses",
                           "variables", "batch_norm", "call", "build", "input_spec",
                           "supports_masking", "trainable_weights", "non_trainable_weights",
                           "dtype_policy", "compute_dtype", "variable_dtype", "path"}


def _single_return_call(func: cst.FunctionDef) -> cst.Call:
    stmts = list(func.body.body) if isinstance(func.body, cst.IndentedBlock) else []
    if stmts and _is_docstring(stmts[0]):
        stmts = stmts[1:]
    if len(stmts) == 1 and isinstance(stmts[0], cst.SimpleStatementLine) and \
            len(stmts[0].body) == 1 and isinstance(stmts[0].body[0], cst.Return) and \
            isinstance(stmts[0].body[0].value, cst.Call):
        return stmts[0].body[0].value
    raise Unmappable("__call__ does more than return one batch norm call")


def _check_ctor_value(value, attrs: Dict[str, str], call_params: List[cst.Param]) -> None:
    if isinstance(value, bn_mapping.Code):
        return
    used: Set[str] = set()
    bad: List[str] = []

    class Visitor(cst.CSTVisitor):
        def visit_Attribute(self, node):
            if _is_name(node.value, "self"):
                used.add(node.attr.value)
                return False
            return True

        def visit_Name(self, node):
            if node.value in {p.name.value for p in call_params}:
                bad.append(node.value)

    value.visit(Visitor())
    if bad:
        raise Unmappable(f"the batch norm's configuration depends on __call__'s `{bad[0]}`")
    missing = sorted(used - set(attrs))
    if missing:
        raise Unmappable(f"self.{missing[0]} is not set by __init__")


def _is_name(node, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value

