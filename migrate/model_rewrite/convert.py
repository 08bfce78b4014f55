"""Turn one TF1 model function into the source of a Keras 3 class.

Layers are created once in `__init__` (inside a copy of any loop or
configuration-only `if` they sat in; layers created under a shape condition go
to `build`), and `call` keeps the function's statements with each layer call
replaced by a call of the stored layer. `with tf.variable_scope(...)`,
`slim.arg_scope(...)` and `tf.control_dependencies(...)` blocks are unwrapped:
scopes become layer names, arg_scope defaults are written out on each layer,
and control dependencies become program order (eager code runs in order).

Anything the converter does not understand raises `Unmappable`: the caller
leaves the function as it was and reports why. It never emits a half-converted
function.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from migrate import bn_mapping
from migrate.cst_utils import (assigned_names, bound_names, bound_names_in_order,
                               keyword_arg as _kwarg, name_uses, names_read,
                               target_names as _target_names)
from migrate.tf1_calls import TF1CallFixer
from migrate.model_rewrite import analysis, arg_scopes, fused_bn
from migrate.model_rewrite.analysis import FunctionInfo, GET_VARIABLE, VARIABLE_SCOPES, dotted
# LayerRecord.keras_class of a tf.get_variable weight: its tf1_name is the variable's own name.
from migrate.model_rewrite.weights import VARIABLE_RECORD
from migrate.model_rewrite.layers import (LAYER_APIS, LAYER_CLASS_APIS, KerasLayer, Unmappable,
                                          literal, map_batch_norm_layer, map_initializer, map_layer_call,
                                          map_regularizer, render)

ARG_SCOPE = "tf_slim.arg_scope"
REPEAT = "tf_slim.repeat"
CONVERT_COLLECTION = "tf_slim.utils.convert_collection_to_dict"
_PURE_BUILTINS = {"int", "float", "bool", "str", "len", "min", "max", "abs", "round", "tuple", "list",
                  "dict", "range", "sum"}
CONTROL_DEPENDENCIES = "tensorflow.control_dependencies"
# TF1 variable ops with a TF2 method form: tf.assign_add(v, d) -> v.assign_add(d).
_VARIABLE_METHODS = {"tensorflow.assign_add": "assign_add", "tensorflow.assign_sub": "assign_sub",
                     "tensorflow.assign": "assign"}


@dataclass
class LayerRecord:
    """One layer attribute of the generated class, for the variable correspondence."""

    attr: str
    keras_class: str
    tf1_name: Optional[str]  # literal TF1 name / scope, when static
    in_loop: bool = False
    weight_names: Dict[str, str] = field(default_factory=dict)
    fused_batch_norm: Optional[str] = None  # bn_mapping fused value for batch norms
    behaviour_change: Optional[str] = None


@dataclass
class ConvertedFunction:
    info: FunctionInfo
    class_source: str
    layers: List[LayerRecord]
    notes: List[Tuple[str, str]]  # (code, message) reported for this function
    uses_fused_compat: bool = False


@dataclass
class _Loop:
    header_target: cst.BaseAssignTargetExpression
    iterable: cst.BaseExpression
    lists: List[Tuple[str, str]] = field(default_factory=list)  # (list attr, loop-local name)
    init_items: List = field(default_factory=list)
    # Names whose value changes from one iteration to the next (the target, locals the body
    # binds, counters of lists it grows): a scope name reading none of them repeats.
    varying: Set[str] = field(default_factory=set)


class _Init:
    """__init__ / build body as nested items: ("stmt", text) | ("for", header, items) | ("if", ...)."""

    def __init__(self):
        self.items: List = []

    @staticmethod
    def render(items, indent: str, level: int) -> List[str]:
        lines = []
        pad = indent * level
        for item in items:
            if item[0] == "stmt" and "\n" in item[1] and '"""' not in item[1] and "'''" not in item[1]:
                # A statement spread over lines (`layer_specs = [...]`): its continuation lines
                # are indented relative to the statement, here as there.
                first, *rest = item[1].split("\n")
                lines.append(pad + first)
                lines.extend(pad + line if line.strip() else "" for line in rest)
            elif item[0] == "stmt":
                lines.extend(_wrap(pad + item[1], pad, indent))
            elif item[0] == "for":
                lines.append(pad + item[1])
                lines.extend(_Init.render(item[2], indent, level + 1) or [pad + indent + "pass"])
            elif item[0] == "if":
                lines.append(pad + f"if {item[1]}:")
                lines.extend(_Init.render(item[2], indent, level + 1) or [pad + indent + "pass"])
                if item[3]:
                    lines.append(pad + "else:")
                    lines.extend(_Init.render(item[3], indent, level + 1))
        return lines


def _identifier(text: str) -> str:
    ident = re.sub(r"\W+", "_", text).strip("_") or "layer"
    if ident[0].isdigit():
        ident = "layer_" + ident
    if keyword.iskeyword(ident):
        ident += "_"
    return ident


class FunctionConverter:
    def __init__(self, info: FunctionInfo, functions: Dict[str, FunctionInfo], resolve, indent: str,
                 options=None, forgotten_update_ops: bool = False):
        self.info = info
        self.functions = functions
        self.resolve_node = resolve
        self.indent = indent
        self.options = options
        self.preferred_quote = "'"
        self.uses_fused_compat = False
        self.imported_names: Set[str] = set()  # names bound by imports of non-TF modules
        # Names the module binds at top level (None: unknown); with a star import any other
        # name a call uses comes from that import.
        self.module_names: Optional[Set[str]] = None
        # The TF1 program never ran UPDATE_OPS: its collected batch norms never updated.
        self.forgotten_update_ops = forgotten_update_ops
        self.init = _Init()
        self.build: List = []
        self.layers: List[LayerRecord] = []
        self.notes: List[Tuple[str, str]] = []
        self.attrs: Set[str] = set()
        self.auto_counts: Dict[str, int] = {}
        self.loop: Optional[_Loop] = None
        self.loop_locals: Set[str] = set()
        self.scope_prefix: List[str] = []
        # Defaults of the slim.arg_scopes around the layers: those every caller enters (dynamic
        # in TF1, see arg_scopes.inherit), then the function's own, inner ones last.
        self.arg_scopes: List[Tuple[List[str], Dict[str, cst.BaseExpression]]] = [
            (list(ops), keywords) for ops, keywords in info.inherited_scopes]
        self.local_layers: Dict[str, str] = {}  # local name of a class-form layer -> attr
        self.tensor_names: Set[str] = set(info.tensor_params)
        self.condition_target: Optional[List] = None  # init items list while inside a config `if`
        self.conditional_attrs: Optional[List[str]] = None  # attrs created inside that `if`
        self.assigned_names: Set[str] = set()  # every name the function binds
        self.local_dicts: Dict[str, cst.Dict] = {}
        self.helper_objects: Dict[tuple, cst.BaseExpression] = {}
        self.normalizer_param_uses: Dict[str, int] = _normalizer_param_names(info.node)
        self.needs_build = False
        self.config_used_in_call: Set[str] = set()
        # Configuration locals (`w_init = tf.random_normal_initializer(stddev=0.02)`) copied into
        # __init__, where the layers that take them are created; their statements in call().
        self.hoisted: Set[str] = set()
        self.hoisted_statements: List[cst.BaseStatement] = []
        # slim end_points: `end_points_collection = sc.original_name_scope + '_end_points'`
        # names a collection the layers in `outputs_collections=` add their outputs to; it
        # becomes a dict of the outputs keyed by their TF1 names.
        self.collections: Set[str] = set()
        # Module-level batch-norm wrapper objects this function alone calls (usage.WrapperObject
        # by name): each becomes a sub-layer made in __init__ by the same constructor call.
        self.wrapper_objects: Dict[str, object] = {}
        # `matrix = tf.get_variable("Matrix", [shape[1], output_size], ...)`: local -> the
        # attribute build() creates with add_weight; statements computing from the input's
        # shape (`shape = input_.get_shape().as_list()`) that build() runs too.
        self.variables: Dict[str, str] = {}
        self.shape_statements: List[Tuple[Set[str], str]] = []
        self.shape_locals: Set[str] = set()
        self.shape_statements_built = False
        self.collected: List[Tuple[cst.Call, str, str]] = []  # (TF1 call, collection, TF1 name)
        # pix2pix's `layers = []` grown by `layers.append(output)` a static number of times:
        # list -> the counter __init__ keeps in its place, so `len(layers)` is configuration.
        self.counted_lists: Dict[str, str] = {}
        # `with tf.variable_scope("encoder_%d" % (len(layers) + 1)):` in a loop: the name
        # expression __init__ evaluates per iteration (counters for `len(...)`), its layers'
        # names start with it; and the helpers already named by it (one Keras name each).
        self.computed_scope: Optional[Tuple[List[str], str, str]] = None  # (outer, expr, stem)
        # (scope, helper, its own scope) of the scope-less helpers named after their enclosing
        # variable scope: a second call there has other TF1 names (`conv2d_1`).
        self.scope_helpers: Set[tuple] = set()
        self.batch_norm_ranks: Dict[int, Optional[int]] = {}
        self.uncounted_lists: Set[str] = set()  # lists grown in ways a counter cannot follow

    # -- helpers --------------------------------------------------------------------------------
    def resolve(self, node) -> Optional[str]:
        return self.resolve_node(node)

    def _target_items(self) -> List:
        if self.loop is not None:
            return self.loop.init_items
        if self.condition_target is not None:
            return self.condition_target
        return self.init.items

    def _new_attr(self, base: str) -> str:
        base = _identifier(_snake(base))
        reserved = set(self.info.params) | {"training", "call", "build", "name", "trainable",
                                            "weights", "layers", "losses", "variables"}
        attr, n = base, 1
        while attr in self.attrs or attr in reserved:
            attr = f"{base}_{n}"
            n += 1
        self.attrs.add(attr)
        return attr

    def _auto_name(self, stem: str) -> str:
        count = self.auto_counts.get(stem, 0)
        self.auto_counts[stem] = count + 1
        return stem if count == 0 else f"{stem}_{count}"

    def _scoped(self, name: str) -> str:
        return "_".join(self.scope_prefix + [name])

    # -- layer sites ----------------------------------------------------------------------------
    def register(self, layer: KerasLayer, name_hint: Optional[str] = None) -> cst.BaseExpression:
        """Create `layer` in __init__ (or its loop/if copy); return the reference used in `call`."""
        name_expr, name_text, tf1_name = self._layer_name(layer)
        if self.loop is not None:
            base = name_hint or name_text or _name_stem(layer.tf1_name) or _snake(layer.auto_name)
            attr = self._new_attr(base + "_layers")
            local = self._loop_local(base)
            self.loop.lists.append((attr, local))
            self.loop.init_items.append(("stmt", f"self.{attr}.append({layer.constructor(name_expr)})"))
            ref: cst.BaseExpression = cst.Name(local)
        else:
            attr = self._new_attr(name_hint or name_text or _snake(layer.auto_name))
            self._target_items().append(("stmt", f"self.{attr} = {layer.constructor(name_expr)}"))
            if self.conditional_attrs is not None:
                self.conditional_attrs.append(attr)
            ref = cst.Attribute(cst.Name("self"), cst.Name(attr))
        record = LayerRecord(attr, layer.keras_class, tf1_name, in_loop=self.loop is not None,
                             weight_names=layer.weight_names)
        if layer.batch_norm is not None:
            record.fused_batch_norm = layer.batch_norm.fused
            if layer.batch_norm.fused in ("rank", "always") and not layer.custom_class and not any(
                    code == "TFM302" for code, _ in self.notes):
                self.notes.append(("TFM302", "TF1 ran batch norm fused (4-D/5-D input; contrib also "
                                             "2-D): Keras 3 skips Bessel's n/(n-1) correction of the "
                                             "moving variance (bounded divergence, about 1/(n-1) "
                                             "relative; verify names it; --fused-bn exact removes it)"))
        self.layers.append(record)
        return ref

    def scope_defaults(self, api: str) -> Dict[str, cst.BaseExpression]:
        """Keyword defaults the enclosing lexical slim.arg_scopes give `api` (inner ones win),
        with a `normalizer_params` name replaced by the dict literal it was assigned."""
        defaults: Dict[str, cst.BaseExpression] = {}
        for ops, keywords in self.arg_scopes:
            if api in ops:
                defaults.update(keywords)
        params = defaults.get("normalizer_params")
        if isinstance(params, cst.Name) and params.value in self.local_dicts:
            defaults["normalizer_params"] = self.local_dicts[params.value]
        return defaults

    def _loop_local(self, base: str) -> str:
        local = _identifier(base)
        while (local in self.loop_locals or local in self.info.params or local in self.tensor_names
               or local in self.assigned_names):
            local += "_layer"
        self.loop_locals.add(local)
        return local

    def _layer_name(self, layer: KerasLayer):
        """(name expr for the constructor, text for the attribute, static TF1 name)."""
        if self.computed_scope is not None:
            # Inside `with tf.variable_scope("encoder_%d" % ...)` in a loop: the layer's name is
            # the scope's, computed per iteration in __init__, joined to its own (TF1 numbers
            # auto names per scope, so each iteration starts again at `conv2d`).
            if layer.tf1_name is not None:
                value = literal(layer.tf1_name)
                if not isinstance(value, str):
                    raise Unmappable("a computed layer name inside a computed variable scope")
            else:
                value = self._auto_name(layer.auto_name)
            parts = self.scope_prefix + [value]
            return self._computed_name(parts), "_".join([self.computed_scope[2]] + parts), None
        if layer.tf1_name is not None:
            value = literal(layer.tf1_name)
            if isinstance(value, str):
                full = self._scoped(value)
                return self.quote(full), full, "/".join(self.scope_prefix + [value])
            if self.scope_prefix:
                raise Unmappable("a computed layer name inside a nested variable scope")
            return render(layer.tf1_name), None, None
        if self.loop is not None:
            return None, None, None
        auto = self._auto_name(layer.auto_name)
        full = self._scoped(auto)
        return self.quote(full), full, "/".join(self.scope_prefix + [auto])

    def _computed_name(self, parts: List[str]) -> str:
        """The Keras name expression of `parts` (literal scope/layer names) inside the computed
        variable scope: `"encoder_%d" % (layers_count + 1) + '_conv2d'`."""
        outer, expr, _ = self.computed_scope
        text = expr
        if outer:
            text = f"{self.quote('_'.join(outer) + '_')} + {text}"
        if parts:
            text = f"{text} + {self.quote('_' + '_'.join(parts))}"
        return text

    def _enclosing_scope_name(self, helper: FunctionInfo):
        """(name expr, attribute text, TF1 scope) for a call of `helper` that names no scope
        itself, inside variable scopes of this function: its variables live in that scope
        (`encoder_1/conv2d/kernel`), so the Keras object takes the scope's name; (None, None,
        None) where it keeps its own naming."""
        if self.computed_scope is None and not self.scope_prefix:
            return None, None, None
        own = None
        if helper.scope_param is None and helper.scope_name is None:
            inner: List[str] = []
        elif helper.scope_param is None and isinstance(literal(helper.scope_name), str):
            own = literal(helper.scope_name)
        elif helper.scope_param is not None and helper.scope_default is not None and \
                isinstance(literal(helper.scope_default), str):
            own = literal(helper.scope_default)
        elif self.computed_scope is not None:
            raise Unmappable(f"`{helper.name}` inside a computed variable scope names its own "
                             "scope in a way the rewrite cannot follow")
        else:
            return None, None, None
        if own is not None:
            if self.computed_scope is None:
                return None, None, None  # its class names itself, as before
            inner = [own]
        elif self.computed_scope is None and self.loop is not None:
            return None, None, None  # one literal scope, entered each iteration: TF1 numbers
        computed = self.computed_scope[1] if self.computed_scope is not None else None
        key = (tuple(self.scope_prefix), computed, helper.name, tuple(inner))
        if key in self.scope_helpers:
            if self.computed_scope is not None:
                raise Unmappable(f"`{helper.name}` called twice in one computed variable scope "
                                 "(TF1 numbers the second call's layers)")
            return None, None, None
        self.scope_helpers.add(key)
        parts = self.scope_prefix + inner
        if self.computed_scope is not None:
            return self._computed_name(parts), None, None
        return self.quote("_".join(parts)), None, "/".join(parts)

    def quote(self, text: str) -> str:
        """A string literal in the module's own quote style."""
        literal_text = repr(text)
        if self.preferred_quote == '"' and '"' not in text and "'" not in text:
            return '"' + literal_text[1:-1] + '"'
        return literal_text

    def call_layer(self, layer: KerasLayer) -> cst.BaseExpression:
        """Register `layer` (and a batch norm it runs after itself) and build the call expression."""
        if layer.batch_norm is not None:
            self._check_batch_norm(layer)
        follow = layer.followed_by
        if follow is not None:
            layer.followed_by = None
            inner = self._call_expr(self.register(layer), layer)
            follow.tensor = inner
            if follow.tf1_name is None and layer.tf1_name is not None:
                follow.tf1_name = _suffix_name(layer.tf1_name, "_bn")
            self._check_batch_norm(follow)
            return self._call_expr(self.register(follow), follow)
        return self._call_expr(self.register(layer), layer)

    def _check_batch_norm(self, layer: KerasLayer) -> None:
        mapping = layer.batch_norm
        if getattr(self.options, "fused_bn", "keras") == "exact" and mapping.may_be_fused:
            # Reproduce TF1's fused moving-statistics update (Bessel correction, decay rounding).
            layer.keras_class = fused_bn.CLASS_NAME
            layer.custom_class = True
            ranks = "(2, 4)" if mapping.source_api == bn_mapping.CONTRIB else "(4, 5)"
            layer.ctor_args = list(layer.ctor_args) + [("fused_ranks", bn_mapping.Code(ranks))]
            if mapping.float32_decay is False:
                layer.ctor_args.append(("float32_decay", bn_mapping.Code("False")))
            self.uses_fused_compat = True
        collected = mapping.source_api != bn_mapping.KERAS_V2 and not mapping.updates_inline
        if self.forgotten_update_ops and collected:
            if getattr(self.options, "preserve_bugs", False):
                # momentum=1.0 keeps the moving statistics at their initial values, exactly as
                # the TF1 program that never ran its update ops (measured: zero difference).
                layer.ctor_args = [(k, v) for k, v in layer.ctor_args if k != "momentum"]
                layer.ctor_args.insert(0, ("momentum", bn_mapping.Code("1.0")))
                self.notes.append(("TFM304", "the TF1 program never ran UPDATE_OPS: kept with "
                                             "momentum=1.0 (--preserve-bugs), moving statistics stay "
                                             "at their initial values as in TF1"))
            else:
                self.notes.append(("TFM206", "the TF1 program never ran UPDATE_OPS, so these moving "
                                             "statistics never updated; Keras 3 updates them when "
                                             "called with training=True (behaviour change: the "
                                             "migration fixes the bug; --preserve-bugs keeps it)"))

    @staticmethod
    def _call_expr(ref, layer: KerasLayer) -> cst.BaseExpression:
        args = [cst.Arg(layer.tensor)] if layer.tensor is not None else []
        if layer.training is not None:
            args.append(_kwarg("training", _expr(layer.training)))
        expr: cst.BaseExpression = cst.Call(ref, args)
        if layer.activation is not None:
            expr = cst.Call(_expr(layer.activation), [cst.Arg(expr)])
        return expr

    def class_layer(self, api: str, call: cst.Call) -> KerasLayer:
        """A TF1 layer object: `tf.layers.BatchNormalization(...)`, `tf.keras.layers.X(...)`."""
        if api in ("tensorflow.layers.BatchNormalization", "keras.layers.BatchNormalization"):
            bn_api = bn_mapping.API_BY_CANONICAL[api]
            positional = [a.value for a in call.args if a.keyword is None]
            keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
            layer = map_batch_norm_layer(bn_api, positional, keywords)
            layer.training = None
            if bn_api == bn_mapping.KERAS_V2:
                layer.auto_name = "batch_normalization"
                self.notes.append(("TFM303", "tf.keras BatchNormalization in the TF1 graph never ran "
                                             "its updates (not in UPDATE_OPS); Keras 3 updates its "
                                             "moving statistics when called with training=True "
                                             "(behaviour change)"))
                if getattr(self.options, "preserve_bugs", False):
                    layer.ctor_args = [(k, v) for k, v in layer.ctor_args if k != "momentum"]
                    layer.ctor_args.append(("momentum", bn_mapping.Code("1.0")))
            return layer
        from migrate.model_rewrite.layers import _TF_LAYER_CLASSES
        args = [(a.keyword.value if a.keyword else None, a.value) for a in call.args
                if not (a.keyword and a.keyword.value == "name")]
        name = next((a.value for a in call.args if a.keyword and a.keyword.value == "name"), None)
        keras_class = _TF_LAYER_CLASSES[api]
        return KerasLayer(keras_class, args, None, tf1_name=name, auto_name=keras_class.lower())

    def helper_call(self, helper: FunctionInfo, call: cst.Call,
                    original: Optional[cst.Call] = None) -> cst.BaseExpression:
        if any(a.star for a in call.args):
            raise Unmappable(f"*args in a call of {helper.name}")
        bound: Dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(call.args):
            if arg.keyword is None:
                if index >= len(helper.params):
                    raise Unmappable(f"too many arguments in a call of {helper.name}")
                bound[helper.params[index]] = arg.value
            else:
                bound[arg.keyword.value] = arg.value
        ctor = [(p, bound[p]) for p in helper.config_params if p in bound]
        name_expr = bound.get(helper.scope_param) if helper.scope_param else None
        if name_expr is not None and literal(name_expr) is None:
            name_expr = None  # scope=None: the helper's default name
        layer = KerasLayer(helper.class_name, ctor, None, tf1_name=name_expr,
                           auto_name=helper.name)
        if helper.training_param is not None:
            layer.training = bound.get(helper.training_param, helper.defaults.get(helper.training_param))
        elif helper.scope_training:
            # `with slim.arg_scope([slim.batch_norm], is_training=is_training):` around the call.
            if id(original) not in helper.scope_training:
                raise Unmappable(f"no arg_scope training flag recorded for this call of {helper.name}")
            layer.training = helper.scope_training[id(original)]
        elif helper.mode_param is not None and helper.mode_param in bound:
            layer.training = cst.parse_expression(
                helper.mode_template.format(render(bound[helper.mode_param])))
        ref = self.register_helper(layer, helper)
        # Keras 3 takes only the input positionally; other run-time values go by keyword.
        present = [p for p in helper.tensor_params if p in bound]
        args = [cst.Arg(bound[p]) if i == 0 else _kwarg(p, bound[p]) for i, p in enumerate(present)]
        if layer.training is not None:
            args.append(_kwarg("training", layer.training))
        return cst.Call(ref, args)

    def wrapper_object_call(self, obj, call: cst.Call) -> cst.BaseExpression:
        """`g_bn0(h, train=train)` -> `self.g_bn0(h, train=train)`, with `self.g_bn0 =
        batch_norm(name='g_bn0')` in __init__: the object's batch norm is created once per
        model, as TF1 created its variables once in the model's scope. Arguments after the
        input go by keyword (Keras 3 refuses non-tensor positional arguments)."""
        if self.loop is not None:
            raise Unmappable(f"`{obj.name}`, an object of the TF1 class `{obj.class_name}`, is "
                             "called in a loop (one object, several TF1 variable sets)")
        if any(a.star for a in call.args):
            raise Unmappable(f"*args in a call of `{obj.name}`")
        args = []
        for index, arg in enumerate(call.args):
            if arg.keyword is None and index > 0:
                if index >= len(obj.call_params):
                    raise Unmappable(f"too many arguments in a call of `{obj.name}`")
                arg = _kwarg(obj.call_params[index], arg.value)
            args.append(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT))
        attr = self._new_attr(obj.name)
        self._target_items().append(("stmt", f"self.{attr} = {obj.constructor}"))
        if self.conditional_attrs is not None:
            self.conditional_attrs.append(attr)
        tf1_name = "/".join(self.scope_prefix + [obj.tf1_name]) if obj.tf1_name else None
        self.layers.append(LayerRecord(attr, obj.class_name, tf1_name,
                                       weight_names={"gamma": "gamma", "beta": "beta"}))
        return cst.Call(cst.Attribute(cst.Name("self"), cst.Name(attr)), args)

    def register_helper(self, layer: KerasLayer, helper: FunctionInfo):
        name_expr, name_text, tf1_name = self._layer_name(layer) if layer.tf1_name is not None else (
            None, None, None)
        if name_expr is None:
            name_expr, name_text, tf1_name = self._enclosing_scope_name(helper)
        parts = [f"{k}={render(v)}" for k, v in layer.ctor_args]
        if name_expr is not None:
            parts.append(f"name={name_expr}")
        ctor = f"{helper.class_name}({', '.join(parts)})"
        if tf1_name is not None:
            scope = tf1_name
        elif helper.scope_name is not None and helper.scope_param is None:
            scope = render(helper.scope_name)
        elif helper.scope_default is not None and helper.scope_default_shared and name_expr is None:
            scope = render(helper.scope_default)
        else:
            scope = None
        key = (helper.name, ctor, scope)
        if scope is not None and self.loop is None and key in self.helper_objects:
            # The same variable scope again: TF1 reused (or refused to recreate) its
            # variables, so both calls use one Keras object.
            return self.helper_objects[key]
        if self.loop is not None:
            base = name_text or _name_stem(layer.tf1_name) or helper.name
            attr = self._new_attr(base + "_layers")
            local = self._loop_local(base)
            self.loop.lists.append((attr, local))
            self.loop.init_items.append(("stmt", f"self.{attr}.append({ctor})"))
            ref: cst.BaseExpression = cst.Name(local)
        else:
            attr = self._new_attr(name_text or helper.name)
            self._target_items().append(("stmt", f"self.{attr} = {ctor}"))
            if self.conditional_attrs is not None:
                self.conditional_attrs.append(attr)
            ref = cst.Attribute(cst.Name("self"), cst.Name(attr))
            if scope is not None:
                self.helper_objects[key] = ref
        self.layers.append(LayerRecord(attr, helper.class_name, tf1_name, in_loop=self.loop is not None))
        return ref

    # -- statements -----------------------------------------------------------------------------
    def convert(self) -> ConvertedFunction:
        func = self.info.node
        if func.decorators:
            raise Unmappable("decorated function")
        if self.info.arg_scope_conflict is not None:
            raise Unmappable(self.info.arg_scope_conflict)
        params = func.params
        if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None \
                or params.kwonly_params or params.posonly_params:
            raise Unmappable("*args, **kwargs or keyword-only parameters")
        body = list(func.body.body)
        docstring = None
        if body and analysis._is_docstring(body[0]):
            docstring = body[0]
            body = body[1:]
        self.assigned_names = bound_names(func)
        scope_name = None
        if self.info.scope_name is not None:
            scope_with = analysis.whole_body_scope(func, self.resolve, set(self.functions))
            scope_name = self.info.scope_name
            index = next(i for i, stmt in enumerate(body) if stmt is scope_with)
            inner = list(scope_with.body.body)
            # `if reuse: scope.reuse_variables()`: calling the Keras object again is the reuse.
            dropped = analysis.reuse_handle_statements(scope_with, self.info.params) or []
            inner = [s for s in inner if all(s is not d for d, _ in dropped)] or inner
            if index:  # the with's own blank lines and comments lead its first statement
                inner[0] = inner[0].with_changes(
                    leading_lines=[*scope_with.leading_lines, *inner[0].leading_lines])
            body = body[:index] + inner + body[index + 1:]
            if self.info.scope_as is not None:
                self.collections = _end_point_collections(body, self.info.scope_as, self.resolve)
        self.counted_lists = self._counted_lists(body)
        self.batch_norm_ranks = self._batch_norm_ranks(func)
        call_body = self.convert_block(body)
        self._no_stray_collection()
        if self.variables:
            call_body = [stmt.visit(_VariableRefs(self.variables)) for stmt in call_body]
        call_body = self._without_dead_hoisted(call_body)
        if self.info.scope_as is not None:
            call_body = self._scope_object_uses(call_body)
        call_body = [self._rename_in_call(stmt) for stmt in call_body]
        return ConvertedFunction(self.info, self._class_source(docstring, scope_name, call_body),
                                 self.layers, self.notes, self.uses_fused_compat)

    def _counted_lists(self, body) -> Dict[str, str]:
        """Lists whose length __init__ can keep as a counter: set once to `[]` at the top level
        and grown only by `L.append(x)` statements that run a known number of times per pass --
        at the top level, inside variable/name scopes, or at the top of a loop that builds layers
        (the loop __init__ copies). Anything else that could change the length (extend, pop,
        item assignment, a second binding, an append under an `if`) leaves the list out."""
        module = cst.Module(body=list(body))
        inits: Dict[str, int] = {}
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                    isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 and \
                    isinstance(stmt.body[0].targets[0].target, cst.Name) and \
                    isinstance(stmt.body[0].value, cst.List) and not stmt.body[0].value.elements:
                name = stmt.body[0].targets[0].target.value
                inits[name] = inits.get(name, 0) + 1
        if not inits:
            return {}
        binds: Dict[str, int] = {}
        for name in bound_names_in_order(module):
            binds[name] = binds.get(name, 0) + 1
        countable: Dict[str, int] = {}

        def walk(stmts, in_loop: bool) -> None:
            for stmt in stmts:
                append = _append_target(stmt)
                if append is not None:
                    countable[append] = countable.get(append, 0) + 1
                elif isinstance(stmt, cst.With) and len(stmt.items) == 1 and \
                        isinstance(stmt.items[0].item, cst.Call) and \
                        self.resolve(stmt.items[0].item.func) in VARIABLE_SCOPES:
                    walk(stmt.body.body, in_loop)
                elif isinstance(stmt, cst.For) and not in_loop and stmt.orelse is None and \
                        _contains_layers(stmt, self):
                    walk(stmt.body.body, True)

        walk(body, False)
        attribute_uses: Dict[str, int] = {}

        class Uses(cst.CSTVisitor):
            def visit_Attribute(self, node):
                if isinstance(node.value, cst.Name):
                    key = node.value.value if node.attr.value == "append" else None
                    attribute_uses[node.value.value] = attribute_uses.get(node.value.value, 0) + (
                        1 if key else 1000)

            def visit_AssignTarget(self, node):
                if isinstance(node.target, cst.Subscript) and isinstance(node.target.value, cst.Name):
                    attribute_uses[node.target.value.value] = 1000

            def visit_AugAssign(self, node):
                if isinstance(node.target, cst.Name):
                    attribute_uses[node.target.value] = 1000

        module.visit(Uses())
        taken = self.assigned_names | set(self.info.params)
        out: Dict[str, str] = {}
        for name, count in inits.items():
            if count != 1 or binds.get(name) != 1 or attribute_uses.get(name, 0) != countable.get(name, 0):
                if attribute_uses.get(name):
                    self.uncounted_lists.add(name)  # grown where __init__ cannot follow
                continue
            counter = f"{name}_count"
            while counter in taken:
                counter += "_"
            out[name] = counter
        return out

    def _batch_norm_ranks(self, func) -> Dict[int, Optional[int]]:
        """id(batch-norm call) -> the static rank of its input (`migrate.static_rank`, on the
        function parsed with `ast`): a 2-D or 3-D input was never fused in TF1."""
        import ast
        import textwrap

        from migrate import static_rank

        apis = {n for n, a in bn_mapping.API_BY_CANONICAL.items() if a is not None}
        calls: List[cst.Call] = []
        resolve = self.resolve

        class Calls(cst.CSTVisitor):
            def visit_Call(self, node):
                if resolve(node.func) in apis:
                    calls.append(node)

        func.visit(Calls())
        if not calls:
            return {}
        # The module's functions, for the ranks their calls give this one's parameters.
        others = [i.node for i in self.functions.values()
                  if i.node is not None and i.node is not func and not i.external]
        try:
            tree = ast.parse(textwrap.dedent(cst.Module(body=[func]).code))
            module = ast.parse(cst.Module(body=[*others, func]).code)
        except SyntaxError:
            return {}

        def resolve_dotted(dotted: str) -> Optional[str]:
            try:
                return resolve(cst.parse_expression(dotted))
            except cst.ParserSyntaxError:
                return None

        params, resolve_in_module = static_rank.module_context(module, resolve_dotted)
        ranks = static_rank.batch_norm_input_ranks(tree.body[0], resolve_in_module, apis,
                                                   params.get(func.name.value))
        return {id(c): r for c, r in zip(calls, ranks)} if len(ranks) == len(calls) else {}

    def _static_view(self, node):
        """`node` with `len(L)` of a counted list read as its counter (configuration)."""
        if not self.counted_lists:
            return node
        return node.visit(_ListLengths(self.counted_lists))

    def _without_dead_hoisted(self, call_body):
        """A configuration local now set in __init__ and no longer read in call() goes."""
        hoisted = {id(s) for s in self.hoisted_statements}
        # `shape = input_.get_shape().as_list()` that only get_variable shapes read: build() has it.
        shape_locals_built = self.variables or self.shape_statements_built
        hoisted |= {id(s) for s in call_body if shape_locals_built and isinstance(
            s, cst.SimpleStatementLine) and len(s.body) == 1 and isinstance(s.body[0], cst.Assign)
            and _assign_targets(s) and set(_assign_targets(s)) <= self.shape_locals
            and _only_shape_calls(s.body[0].value)}
        kept = list(call_body)
        changed = True
        while changed:
            changed = False
            for index, stmt in enumerate(kept):
                if id(stmt) not in hoisted:
                    continue
                rest = cst.Module(body=kept[:index] + kept[index + 1:])
                if not set(_assign_targets(stmt)) & names_read(rest):
                    del kept[index]
                    changed = True
                    break
        return kept

    def convert_block(self, stmts: Sequence[cst.BaseStatement]) -> List[cst.BaseStatement]:
        out: List[cst.BaseStatement] = []
        for stmt in stmts:
            out.extend(self.convert_statement(stmt))
        return out

    def convert_statement(self, stmt) -> List[cst.BaseStatement]:
        if isinstance(stmt, cst.SimpleStatementLine):
            return self._simple(stmt)
        if isinstance(stmt, cst.With):
            return self._with(stmt)
        if isinstance(stmt, cst.For):
            return self._for(stmt)
        if isinstance(stmt, cst.If):
            return self._if(stmt)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and _contains_layers(stmt, self):
            raise Unmappable("a nested function or class builds layers")
        if isinstance(stmt, (cst.While, cst.Try)) and _contains_layers(stmt, self):
            raise Unmappable(f"layers built inside a {type(stmt).__name__.lower()} statement")
        return [self._transform(stmt)]

    def _transform(self, node):
        rewriter = _CallRewriter(self)
        new = node.visit(rewriter)
        for target in _assign_targets(node):
            if rewriter.produced_tensor or _mentions(self._static_view(node), self.tensor_names):
                self.tensor_names.add(target)
        return new

    def _get_variable(self, stmt, assign: cst.Assign, call: cst.Call) -> List[cst.BaseStatement]:
        """`w = tf.get_variable("w", [shape[1], units], initializer=...)` -> `self.w =
        self.add_weight(name="w", ...)` in build(input_shape) (the shape read from the input
        there) and `self.w` where call() read `w`: the weight is created once, with the TF1
        name under the layer's scope (`d_h2_lin/Matrix`)."""
        if self.loop is not None or self.condition_target is not None:
            raise Unmappable("tf.get_variable in a loop or under a condition")
        targets = _assign_targets(stmt)
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
            raise Unmappable("tf.get_variable assigned to something other than one name")
        if not self.info.tensor_params:
            raise Unmappable("tf.get_variable in a function without an input tensor")
        order = ("name", "shape", "dtype", "initializer", "regularizer", "trainable")
        bound: Dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(call.args):
            key = arg.keyword.value if arg.keyword is not None else (
                order[index] if index < len(order) else None)
            if arg.star or key not in ("name", "shape", "dtype", "initializer", "trainable"):
                raise Unmappable(f"tf.get_variable argument {key or 'positional'} is not supported")
            bound[key] = arg.value
        name = literal(bound["name"]) if "name" in bound else None
        if not isinstance(name, str) or "shape" not in bound:
            raise Unmappable("tf.get_variable without a literal name and a shape")
        allowed = set(self.info.config_params) | self.shape_locals | self.hoisted
        local = self.assigned_names | set(self.info.params)
        for key, value in list(bound.items()):
            # `[x.shape[-1], units]`: build() reads the input's shape as `x_shape`.
            text = _shape_test(value, self.info.tensor_params, self.tensor_names - self.shape_locals)
            if text is not None:
                value = bound[key] = cst.parse_expression(text)
            if text is None or (names_read(value) & local) - allowed:
                raise Unmappable(f"the {key} of tf.get_variable({name!r}) reads a value computed "
                                 "from the input other than its shape")
        if not self.shape_statements_built:
            self.build.extend(("stmt", text) for _, text in self.shape_statements)
            self.shape_statements_built = True
        initializer = bound.get("initializer")
        if initializer is None:
            init_text = "tf.keras.initializers.GlorotUniform()"  # TF1's get_variable default
        else:
            mapped = map_initializer(initializer, self.resolve_node)
            init_text = mapped.text if isinstance(mapped, bn_mapping.Code) else render(mapped)
        parts = [f"name={self.quote(name)}", f"shape={render(bound['shape'])}"]
        if "dtype" in bound:
            parts.append(f"dtype={render(bound['dtype'])}")
        parts.append(f"initializer={init_text}")
        if "trainable" in bound:
            parts.append(f"trainable={render(bound['trainable'])}")
        attr = self._new_attr(targets[0])
        self.build.append(("stmt", f"self.{attr} = self.add_weight({', '.join(parts)})"))
        self.needs_build = True
        self.variables[targets[0]] = attr
        self.layers.append(LayerRecord(attr, VARIABLE_RECORD, "/".join(self.scope_prefix + [name])))
        return []

    def _shape_statement(self, stmt) -> None:
        """Record `shape = x.get_shape().as_list()` (the input read only through its shape) for
        build(), where get_variable shapes may need it."""
        if not (len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)
                and self.info.tensor_params and self.loop is None
                and self.condition_target is None):
            return
        text = _shape_test(stmt.body[0].value, self.info.tensor_params, self.tensor_names,
                           _input_holders(self.info.node, stmt, self.info.tensor_params))
        targets = _assign_targets(stmt)
        if text is None or not targets or not _mentions(stmt.body[0].value, self.tensor_names):
            return
        lhs = " = ".join(_RENDER.code_for_node(t.target) for t in stmt.body[0].targets)
        self.shape_statements.append((set(targets), f"{lhs} = {text}"))
        self.shape_locals.update(targets)

    def _simple(self, stmt: cst.SimpleStatementLine) -> List[cst.BaseStatement]:
        if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign) and \
                isinstance(stmt.body[0].value, cst.Call) and \
                self.resolve(stmt.body[0].value.func) == GET_VARIABLE:
            return self._get_variable(stmt, stmt.body[0], stmt.body[0].value)
        self._shape_statement(stmt)
        if _append_target(stmt) is None:
            self._count_list(stmt)
        if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
            assign = stmt.body[0]
            value = assign.value
            targets = _assign_targets(stmt)
            if len(targets) == 1 and targets[0] in self.collections and \
                    isinstance(assign.targets[0].target, cst.Name):
                # The collection's name -> the dict the collected outputs go into.
                return [stmt.with_changes(body=[assign.with_changes(value=cst.Dict([]))])]
            if isinstance(value, cst.Call) and self.resolve(value.func) == REPEAT:
                return self._repeat(stmt, assign, value)
            if (self.info.mode_local is not None and len(assign.targets) == 1
                    and isinstance(assign.targets[0].target, cst.Name)
                    and assign.targets[0].target.value == self.info.mode_local):
                return []  # the flag is Keras's `training` argument now
            if (isinstance(value, cst.Dict) and len(assign.targets) == 1
                    and isinstance(assign.targets[0].target, cst.Name)):
                local = assign.targets[0].target.value
                uses = name_uses(self.info.node, {local})
                consumers = self.normalizer_param_uses.get(local, 0)
                if consumers and uses == consumers + 1:
                    # Only used as slim normalizer_params: the batch norms take its values.
                    self.local_dicts[local] = value
                    return []
            api = self.resolve(value.func) if isinstance(value, cst.Call) else None
            if (api in LAYER_CLASS_APIS and len(assign.targets) == 1
                    and isinstance(assign.targets[0].target, cst.Name)):
                local = assign.targets[0].target.value
                layer = self.class_layer(api, value)
                if layer.tf1_name is None:
                    layer.tf1_name = None
                ref = self.register(layer, name_hint=None if layer.tf1_name is not None else local)
                self.local_layers[local] = ref
                return []
        if self.loop is not None and not _mentions(self._static_view(stmt),
                                                   self.tensor_names | self.uncounted_lists) \
                and not _contains_layers(stmt, self) and all(isinstance(s, cst.Assign) for s in stmt.body):
            # Configuration computed in the loop (e.g. filters = base * 2 ** i): __init__ needs it too.
            self.loop.init_items.append(("stmt", _RENDER.code_for_node(self._static_view(stmt)).strip()))
        elif self.loop is None and self._hoistable(stmt):
            self._target_items().append(("stmt", self._init_text(stmt), "hoisted", _assign_targets(stmt)))
            self.hoisted.update(_assign_targets(stmt))
            new = self._transform(stmt)
            self.hoisted_statements.append(new)
            return [new]
        self._no_stray_collection()
        new = self._transform(stmt)
        if _append_target(stmt) is not None:
            self._count_list(stmt)
        return [new] + self._collect(stmt)

    def _count_list(self, stmt: cst.SimpleStatementLine) -> None:
        """`layers = []` / `layers.append(output)` of a counted list: __init__ sets / steps its
        counter there (kept only where __init__ reads it); a list of tensors is a tensor."""
        target = _append_target(stmt)
        if target in self.counted_lists:
            # After the statement's own layers: `layers.append(down(x))` creates, then grows.
            counter = self.counted_lists[target]
            self._target_items().append(("stmt", f"{counter} += 1", "hoisted", [counter]))
            if _mentions(self._static_view(stmt), self.tensor_names) or _contains_layers(stmt, self):
                self.tensor_names.add(target)
            return
        targets = _assign_targets(stmt)
        if len(targets) == 1 and targets[0] in self.counted_lists and len(stmt.body) == 1 \
                and isinstance(stmt.body[0], cst.Assign):
            counter = self.counted_lists[targets[0]]
            self._target_items().append(("stmt", f"{counter} = 0", "hoisted", [counter]))

    def _no_stray_collection(self) -> None:
        """A collected layer converted outside `_simple` (an else branch, a with item) would
        silently miss its end_points entry."""
        if self.collected:
            raise Unmappable("a layer collected into end_points outside an assignment statement")

    def _collect(self, stmt: cst.SimpleStatementLine) -> List[cst.BaseStatement]:
        """`end_points_collection[self.name + '/conv1'] = net` after a collected layer's
        statement: slim added the layer's output (after its normalizer and activation) to the
        collection under the layer's full scope name."""
        collected, self.collected = self.collected, []
        if not collected:
            return []
        assign = stmt.body[0] if len(stmt.body) == 1 else None
        if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1
                and isinstance(assign.targets[0].target, cst.Name) and len(collected) == 1
                and collected[0][0] is assign.value):
            raise Unmappable("a layer collected into end_points is not the whole right-hand side "
                             "of an assignment to a name")
        if self.info.base != "tf.keras.Model":
            raise Unmappable("end_points keyed by the variable scope of a model built inside "
                             "another model's scope")
        _, collection, tf1_name = collected[0]
        target = assign.targets[0].target.value
        return [cst.parse_statement(f"{collection}[self.name + {self.quote('/' + tf1_name)}] = {target}\n")]

    def _repeat(self, stmt, assign, call: cst.Call) -> List[cst.BaseStatement]:
        """`net = slim.repeat(x, 2, slim.conv2d, 64, [3, 3], scope='conv1')` is slim's
        `with variable_scope('conv1'):` around `net = slim.conv2d(x, 64, [3, 3],
        scope='conv1_1')` and `net = slim.conv2d(net, ..., scope='conv1_2')`."""
        positional = [a for a in call.args if a.keyword is None]
        keywords = [a for a in call.args if a.keyword is not None]
        if any(a.star for a in call.args) or len(positional) < 3 or any(
                a.keyword.value in ("inputs", "repetitions", "layer") for a in keywords):
            raise Unmappable("slim.repeat with *args or its inputs/repetitions/layer by keyword")
        repetitions = literal(positional[1].value)
        layer_api = self.resolve(positional[2].value)
        scope = next((a.value for a in keywords if a.keyword.value == "scope"), None)
        scope_text = literal(scope) if scope is not None else None
        targets = assign.targets
        if not isinstance(repetitions, int) or isinstance(repetitions, bool) or repetitions < 1:
            raise Unmappable("slim.repeat with a repetition count that is not a literal")
        if layer_api not in LAYER_APIS:
            raise Unmappable(f"slim.repeat of `{render(positional[2].value)}`, not a layer")
        if not isinstance(scope_text, str):
            raise Unmappable("slim.repeat without a literal scope")
        if len(targets) != 1 or not isinstance(targets[0].target, cst.Name):
            raise Unmappable("slim.repeat assigned to something other than one name")
        target = targets[0].target
        rest = [a for a in keywords if a.keyword.value != "scope"]
        statements = []
        tensor = positional[0].value
        for index in range(1, repetitions + 1):
            args = [cst.Arg(tensor), *positional[3:], *rest,
                    _kwarg("scope", cst.SimpleString(repr(f"{scope_text}_{index}")))]
            args = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args]
            layer_call = cst.Call(positional[2].value, args)
            statements.append(stmt.with_changes(
                body=[assign.with_changes(value=layer_call)],
                leading_lines=stmt.leading_lines if index == 1 else []))
            tensor = target
        self.scope_prefix.append(scope_text)
        try:
            return self.convert_block(statements)
        finally:
            self.scope_prefix.pop()

    def _scope_object_uses(self, call_body):
        """`sc.name` (the model's variable scope) is the Keras model's name; any other use of
        the scope object has no Keras counterpart."""
        scope_as = self.info.scope_as
        renamed = [stmt.visit(_ScopeObject(scope_as)) for stmt in call_body]
        if names_read(cst.Module(body=renamed)) & {scope_as}:
            raise Unmappable(f"`{scope_as}`, the variable scope object, is used beyond "
                             f"`{scope_as}.name` and the end_points collection")
        if renamed != call_body and self.info.base != "tf.keras.Model":
            raise Unmappable(f"`{scope_as}.name` of a model built inside another model's scope")
        return renamed

    def _hoistable(self, stmt: cst.SimpleStatementLine) -> bool:
        """A configuration assignment __init__ can run too: it reads only configuration
        parameters, module-level names and configuration locals copied before it."""
        if len(stmt.body) != 1 or not isinstance(stmt.body[0], cst.Assign) or \
                _mentions(self._static_view(stmt), self.tensor_names | self.uncounted_lists) or \
                _contains_layers(stmt, self):
            return False
        stmt = self._static_view(stmt)
        if not all(isinstance(t.target, cst.Name) for t in stmt.body[0].targets):
            return False
        allowed = set(self.info.config_params) | self.hoisted
        local = self.assigned_names | set(self.info.params)
        if (names_read(stmt.body[0].value) & local) - allowed:
            return False
        # No side effects run twice: only an initializer/regularizer the mapping knows, or an
        # expression whose calls are pure builtins (`filters * 2`, `int(params['n'])`).
        if self._init_text(stmt) != _RENDER.code_for_node(stmt).strip():
            return True
        calls = []

        class Calls(cst.CSTVisitor):
            def visit_Call(self, call):
                calls.append(call)

        stmt.visit(Calls())
        return all(isinstance(c.func, cst.Name) and c.func.value in _PURE_BUILTINS
                   and c.func.value not in self.assigned_names for c in calls)

    def _init_text(self, stmt: cst.SimpleStatementLine) -> str:
        """The statement for __init__, a TF1 initializer or regularizer mapped to Keras 3."""
        stmt = self._static_view(stmt)
        assign = stmt.body[0]
        value = assign.value
        if isinstance(value, cst.Call):
            for mapper in (map_initializer, map_regularizer):
                try:
                    mapped = mapper(value, self.resolve_node)
                except Unmappable:
                    continue
                if isinstance(mapped, bn_mapping.Code):
                    targets = " = ".join(_RENDER.code_for_node(t.target) for t in assign.targets)
                    return f"{targets} = {mapped.text}"
        return _RENDER.code_for_node(stmt).strip()

    def _with(self, stmt: cst.With) -> List[cst.BaseStatement]:
        if len(stmt.items) != 1:
            if _contains_layers(stmt, self):
                raise Unmappable("a with statement of several context managers around layers")
            return [self._transform(stmt)]
        item = stmt.items[0].item
        api = self.resolve(item.func) if isinstance(item, cst.Call) else None
        if api in VARIABLE_SCOPES:
            positional = [a for a in item.args if a.keyword is None]
            name = literal(positional[0].value) if positional else None
            if api == "tensorflow.variable_scope" and not isinstance(name, str):
                return self._computed_scope_block(stmt, positional[0].value if positional else None)
            if stmt.items[0].asname is not None:
                raise Unmappable("variable_scope(...) as scope")
            if api == "tensorflow.variable_scope":
                self.scope_prefix.append(name)
            try:
                return _keep_leading_lines(stmt, self.convert_block(stmt.body.body))
            finally:
                if api == "tensorflow.variable_scope":
                    self.scope_prefix.pop()
        if api == ARG_SCOPE:
            positional = [a for a in item.args if a.keyword is None]
            ops_node = positional[0].value if positional else None
            if isinstance(ops_node, (cst.List, cst.Tuple)):
                ops = [self.resolve(e.value) or "" for e in ops_node.elements]
                keywords = {a.keyword.value: a.value for a in item.args if a.keyword is not None}
                entered = [(ops, keywords)]
            else:
                # `with slim.arg_scope(vgg_arg_scope()):` -- a literal *_arg_scope() function.
                entered = []
                for ops, keywords, problem, training in arg_scopes.scopes_of(
                        item, self.resolve, self.info.arg_scope_functions, set()):
                    if problem is not None or ops is None or training is not None:
                        raise Unmappable("arg_scope entered through a variable or a function: its "
                                         f"defaults are not static ({problem or 'is_training'})")
                    entered.append((list(ops), keywords))
            self.arg_scopes.extend(entered)
            try:
                return self.convert_block(stmt.body.body)
            finally:
                del self.arg_scopes[len(self.arg_scopes) - len(entered):]
        if api == CONTROL_DEPENDENCIES:
            # Eager code runs in program order: the dependencies (computed above) already ran.
            self.notes.append(("TFM204", "control_dependencies around layers became program order: "
                                         "the dependency runs first, then the layers"))
            return self.convert_block(stmt.body.body)
        if _contains_layers(stmt, self):
            raise Unmappable(f"layers built inside `with {render(item)}`")
        return [self._transform(stmt)]

    def _computed_scope_block(self, stmt: cst.With, name_node) -> List[cst.BaseStatement]:
        """`with tf.variable_scope("encoder_%d" % (len(layers) + 1)):` at the top of a loop
        that builds layers: the name is configuration __init__ computes per iteration (loop
        variables, configuration, counters of counted lists), and the layers inside are named
        after it."""
        item = stmt.items[0].item
        static = self._static_view(name_node) if name_node is not None else None
        if static is None or self.loop is None or self.computed_scope is not None or \
                stmt.items[0].asname is not None or len(item.args) != 1 or \
                _mentions(static, self.tensor_names | self.uncounted_lists) or \
                _contains_layers(static, self):
            raise Unmappable("variable_scope with a computed name inside a model function")
        if not names_read(static) & self.loop.varying:
            # The same scope each iteration: TF1 numbered the layers (`conv2d_1`, ...).
            raise Unmappable("a variable_scope name that is the same in every iteration of its loop")
        expr = _RENDER.code_for_node(static)
        if not isinstance(static, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.SimpleString,
                                   cst.FormattedString)) and not (
                isinstance(static, cst.BinaryOperation) and isinstance(static.operator, (cst.Modulo, cst.Add))):
            expr = f"({expr})"
        saved = (self.computed_scope, self.scope_prefix, self.auto_counts)
        self.computed_scope = (list(self.scope_prefix), expr, _name_stem(name_node) or "scope")
        self.scope_prefix, self.auto_counts = [], {}
        try:
            return _keep_leading_lines(stmt, self.convert_block(stmt.body.body))
        finally:
            self.computed_scope, self.scope_prefix, self.auto_counts = saved

    def _for(self, stmt: cst.For) -> List[cst.BaseStatement]:
        if not _contains_layers(stmt, self):
            return [self._transform(stmt)]
        if self.loop is not None:
            raise Unmappable("layers built in nested loops")
        if stmt.orelse is not None or stmt.asynchronous is not None:
            raise Unmappable("for-else or async for around layers")
        if _mentions(stmt.iter, self.tensor_names):
            raise Unmappable("a loop over tensors builds layers")
        grown = {_append_target(s) for s in _statements_in(stmt.body)}
        self.loop = _Loop(stmt.target, stmt.iter, varying=(
            set(_target_names(stmt.target)) | bound_names(stmt.body)
            | {counter for name, counter in self.counted_lists.items() if name in grown}))
        for name in _target_names(stmt.target):
            self.assigned_names.add(name)
        try:
            body = self.convert_block(stmt.body.body)
        finally:
            loop, self.loop = self.loop, None
        target_text = _RENDER.code_for_node(stmt.target)
        iter_text = _RENDER.code_for_node(stmt.iter)
        items = self._target_items()
        for attr, _ in loop.lists:
            items.append(("stmt", f"self.{attr} = []"))
        items.append(("for", f"for {target_text} in {iter_text}:", loop.init_items))
        for attr, _ in loop.lists:
            # tf.train.Checkpoint follows attributes, not list items (Keras 3): name each layer.
            items.append(("for", f"for index, layer in enumerate(self.{attr}):",
                          [("stmt", f'setattr(self, f"{attr}_{{index}}", layer)')]))
        if isinstance(stmt.target, cst.Tuple) and not stmt.target.lpar:
            target_text = f"({target_text})"
        locals_text = ", ".join(local for _, local in loop.lists)
        lists_text = ", ".join(f"self.{attr}" for attr, _ in loop.lists)
        header = f"for {target_text}, {locals_text} in zip({iter_text}, {lists_text}):\n    pass\n"
        template = cst.parse_statement(header)
        return [template.with_changes(body=stmt.body.with_changes(body=body),
                                      leading_lines=stmt.leading_lines)]

    def _if(self, stmt: cst.If) -> List[cst.BaseStatement]:
        if not _contains_layers(stmt, self):
            return [self._transform(stmt)]
        test_mentions_tensor = _mentions(stmt.test, self.tensor_names)
        if stmt.orelse is not None and _contains_layers(stmt.orelse, self):
            raise Unmappable("layers built in both branches of an if")
        if not test_mentions_tensor:
            body, items, attrs = self._conditional_block(stmt.body.body)
            else_items = [("stmt", f"self.{a} = None") for a in attrs]
            self._target_items().append(("if", _RENDER.code_for_node(stmt.test), items, else_items))
            new_if = stmt.with_changes(body=stmt.body.with_changes(body=body))
            if stmt.orelse is not None:
                new_if = new_if.with_changes(orelse=self._transform(stmt.orelse))
            return [new_if]
        # Created only under a shape condition: decide in build(input_shape), from the shape.
        shape_test = _shape_test(stmt.test, self.info.tensor_params,
                                 self.tensor_names - self.shape_locals,
                                 _input_holders(self.info.node, stmt, self.info.tensor_params))
        if shape_test is None or self.loop is not None:
            raise Unmappable("layers built under a condition on tensor values")
        # `in_filters = x.get_shape()[-1]` read by the test: build() computes it first.
        if names_read(cst.parse_expression(shape_test)) & self.shape_locals and \
                not self.shape_statements_built:
            self.build.extend(("stmt", text) for _, text in self.shape_statements)
            self.shape_statements_built = True
        body, items, attrs = self._conditional_block(stmt.body.body)
        if len(attrs) != 1:
            raise Unmappable("a shape condition that builds several layers")
        self.build.append(("if", shape_test, items, [("stmt", f"self.{attrs[0]} = None")]))
        self.needs_build = True
        new_test = cst.parse_expression(f"self.{attrs[0]} is not None")
        new_if = stmt.with_changes(test=new_test, body=stmt.body.with_changes(body=body))
        if stmt.orelse is not None:
            new_if = new_if.with_changes(orelse=self._transform(stmt.orelse))
        return [new_if]

    def _conditional_block(self, stmts):
        """Convert an if-body: (call statements, its __init__/build items, the attrs it creates)."""
        items: List = []
        saved_target, saved_attrs = self.condition_target, self.conditional_attrs
        self.condition_target, self.conditional_attrs = items, []
        try:
            body = self.convert_block(stmts)
            attrs = self.conditional_attrs
        finally:
            self.condition_target, self.conditional_attrs = saved_target, saved_attrs
        return body, items, attrs

    # -- output ---------------------------------------------------------------------------------
    def _rename_in_call(self, stmt):
        renamer = _ParamRenamer(self.info)
        new = stmt.visit(TF1CallFixer(self.resolve)).visit(renamer)
        self.config_used_in_call |= renamer.config_used
        return new

    def _class_source(self, docstring, scope_name, call_body) -> str:
        info, ind = self.info, self.indent
        lines = [f"class {info.class_name}({info.base}):"]
        origin = (f"Migrated by tf-migrate from the TF1 function `{info.name}"
                  f"({', '.join(info.params)})`.")
        if docstring is not None:
            text = docstring.body[0].value
            doc = text.evaluated_value if isinstance(text, cst.SimpleString) else None
            if doc is None or "\n" in doc and '"""' in doc:
                lines.append(ind + _RENDER.code_for_node(docstring).strip())
            else:
                lines.append(ind + '"""' + doc.strip() + "\n\n" + ind + origin + '\n' + ind + '"""')
        elif len(ind + f'"""{origin}"""') <= LINE_LIMIT:
            lines.append(ind + f'"""{origin}"""')
        else:
            head, _, tail = origin.partition(" the TF1 function ")
            lines.extend([ind + f'"""{head} the TF1 function', ind + tail, ind + '"""'])
        lines.append("")
        ctor_params = []
        for p in info.config_params:
            default = info.defaults.get(p)
            ctor_params.append(f"{p}={render(default)}" if default is not None else p)
        lines.append(ind + f"def __init__({', '.join(['self'] + ctor_params + ['**kwargs'])}):")
        if scope_name is not None and info.scope_param is None:
            lines.append(ind * 2 + f"kwargs.setdefault({self.quote('name')}, {render(scope_name)})")
        elif info.scope_param is not None and info.scope_default is not None:
            lines.append(ind * 2 + f"kwargs.setdefault({self.quote('name')}, {render(info.scope_default)})")
        lines.append(ind * 2 + "super().__init__(**kwargs)")
        for p in info.config_params:
            if p in self.config_used_in_call or self.needs_build:
                lines.append(ind * 2 + f"self.{p} = {p}")
        lines.extend(_Init.render(_without_unread_hoisted(self.init.items, ind), ind, 2))
        if self.needs_build:
            tensor = info.tensor_params[0]
            lines.append("")
            lines.append(ind + "def build(self, input_shape):")
            lines.append(ind * 2 + f"{tensor}_shape = tf.TensorShape(input_shape)")
            build_items = _rename_config_in_items(self.build, info.config_params)
            lines.extend(_Init.render(build_items, ind, 2))
        lines.append("")
        call_params = ["self"] + list(info.tensor_params)
        if info.training_param is not None or info.mode_param is not None or info.scope_training:
            call_params.append("training=False")
        lines.append(ind + f"def call({', '.join(call_params)}):")
        body_text = cst.Module(body=call_body, default_indent=ind).code
        if not body_text.strip():
            body_text = "pass\n"
        for line in body_text.splitlines():
            lines.append((ind * 2 + line) if line.strip() else "")
        source = "\n".join(lines) + "\n"
        self._check_init_reads(source)
        return source

    def _check_init_reads(self, source: str) -> None:
        """__init__/build must not read a local of the TF1 function they did not set themselves
        (a layer argument computed from the inputs): that class would raise NameError."""
        import ast

        function_locals = (self.assigned_names | set(self.info.params)) - set(self.info.config_params)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name in ("__init__", "build"):
                bound = {a.arg for a in node.args.args} | {
                    n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
                read = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                leaked = sorted((read - bound) & function_locals)
                if leaked:
                    raise Unmappable(f"a layer argument reads `{leaked[0]}`, which the function computes "
                                     "where __init__ cannot")


_RENDER = cst.Module(body=[])


def _without_unread_hoisted(items, indent: str):
    """Copied configuration locals no layer constructor reads (`skips = []`) stay in call only."""
    import ast

    def hoisted(item):
        return item[0] == "stmt" and len(item) > 2 and item[2] == "hoisted"

    def prune(entries, keep_ids):
        out = []
        for item in entries:
            if hoisted(item) and id(item) not in keep_ids:
                continue
            if item[0] == "for":
                item = (item[0], item[1], prune(item[2], keep_ids))
            elif item[0] == "if":
                item = (item[0], item[1], prune(item[2], keep_ids), prune(item[3] or [], keep_ids))
            out.append(item)
        return out

    def all_hoisted(entries):
        for item in entries:
            if hoisted(item):
                yield item
            elif item[0] == "for":
                yield from all_hoisted(item[2])
            elif item[0] == "if":
                yield from all_hoisted(item[2])
                yield from all_hoisted(item[3] or [])

    candidates = list(all_hoisted(items))
    keep = {id(item) for item in candidates}
    while True:  # drop the unread ones until what stays is read (a copied local may read another)
        text = "\n".join(_Init.render(prune(items, keep), indent, 0))
        read = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        unread = {id(item) for item in candidates if id(item) in keep and not set(item[3]) & read}
        if not unread:
            return prune(items, keep)
        keep -= unread


def _rename_config_in_items(items, config_params):
    """build() runs after __init__: configuration is read from `self`, never from locals."""
    info = FunctionInfo(node=None, name="", params=list(config_params), defaults={},
                        config_params=list(config_params))

    def fix(text: str, as_statement: bool = False) -> str:
        node = cst.parse_statement(text) if as_statement else cst.parse_expression(text)
        renamed = node.visit(_ParamRenamer(info))
        return _RENDER.code_for_node(renamed).strip()

    out = []
    for item in items:
        if item[0] == "stmt":
            target, _, value = item[1].partition(" = ")
            out.append(("stmt", f"{target} = {fix(value)}" if value else fix(item[1], True)))
        elif item[0] == "if":
            out.append(("if", fix(item[1]), _rename_config_in_items(item[2], config_params),
                        _rename_config_in_items(item[3], config_params)))
        else:
            raise Unmappable("a loop inside a shape condition")
    return out


class _CallRewriter(cst.CSTTransformer):
    def __init__(self, converter: FunctionConverter):
        super().__init__()
        self.conv = converter
        self.produced_tensor = False

        self.cond_replacements: Dict[cst.Call, cst.BaseExpression] = {}

    def visit_Lambda(self, node):
        if _contains_layers(node, self.conv):
            raise Unmappable("layers built inside a lambda that is not a tf.cond on the training flag")
        return True

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        # TF1 `x.shape[-1].value` / `x.get_shape()[-1].value`: a TF1 Dimension's int. TF 2's
        # TensorShape items are already ints (or None), and have no `.value`.
        if updated.attr.value == "value" and _is_shape_item(updated.value):
            return updated.value
        return updated

    def visit_Call(self, node: cst.Call):
        merged = _training_cond(node, self.conv)
        if merged is not None:
            # tf.cond(flag, lambda: layer(x, training=True), lambda: layer(x, training=False,
            # reuse=True)) is one layer called with training=flag.
            self.cond_replacements[node] = merged.visit(self)
            return False
        return True

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        if original in self.cond_replacements:
            return self.cond_replacements.pop(original)
        conv = self.conv
        func = original.func
        api = conv.resolve(func)
        if api in LAYER_APIS:
            self.produced_tensor = True
            defaults = conv.scope_defaults(api)
            collection = next((a.value for a in updated.args if a.keyword is not None
                               and a.keyword.value == "outputs_collections"),
                              defaults.get("outputs_collections"))
            first = len(conv.layers)
            layer = map_layer_call(api, updated.args, defaults, conv.resolve, conv.scope_defaults)
            if layer.batch_norm is not None:
                bn_mapping.apply_input_rank(layer.batch_norm, conv.batch_norm_ranks.get(id(original)))
            new = conv.call_layer(layer)
            collection = _collection_name(collection)
            if collection in conv.collections:
                tf1_name = conv.layers[first].tf1_name
                if tf1_name is None:
                    raise Unmappable("a layer collected into end_points has no static name")
                conv.collected.append((original, collection, tf1_name))
            return new
        if api == REPEAT:
            raise Unmappable("slim.repeat other than as `name = slim.repeat(...)`")
        if api == CONVERT_COLLECTION:
            positional = [a.value for a in updated.args if a.keyword is None]
            if len(updated.args) != 1 or len(positional) != 1 or not (
                    isinstance(positional[0], cst.Name) and positional[0].value in conv.collections):
                raise Unmappable("convert_collection_to_dict of a collection other than the "
                                 "model's end_points collection")
            return cst.Call(cst.Name("dict"), [cst.Arg(positional[0])])
        if isinstance(func, cst.Call):
            inner_api = conv.resolve(func.func)
            if inner_api in LAYER_CLASS_APIS:
                layer = conv.class_layer(inner_api, func)
                layer.tensor, layer.training = _call_tensor_and_training(updated)
                self.produced_tensor = True
                return conv.call_layer(layer)
        if isinstance(func, cst.Name) and func.value in conv.wrapper_objects:
            self.produced_tensor = True
            return conv.wrapper_object_call(conv.wrapper_objects[func.value], updated)
        if isinstance(func, cst.Name) and func.value in conv.local_layers:
            tensor, training = _call_tensor_and_training(updated)
            args = [cst.Arg(tensor)] + ([_kwarg("training", training)] if training is not None else [])
            self.produced_tensor = True
            return cst.Call(conv.local_layers[func.value], args)
        key = dotted(func)
        if key in conv.functions and conv.functions[key].is_model and key != conv.info.name:
            self.produced_tensor = True
            return conv.helper_call(conv.functions[key], updated, original)
        root = (key or "").split(".", 1)[0]
        if api is None and root in conv.imported_names and _mentions(updated, conv.tensor_names):
            # A function from another module gets tensors: it may build layers (ops.py helpers).
            raise Unmappable(f"it passes tensors to `{key}` from another module, which this run "
                             "does not migrate (migrate the whole tree together)")
        if api is None and root and "*" in conv.imported_names and conv.module_names is not None \
                and root not in conv.module_names and root not in conv.assigned_names \
                and root not in conv.info.params and root not in _BUILTINS \
                and _mentions(updated, conv.tensor_names):
            # `from ops import *` bound it: it may build TF1 layers on every call of the class.
            raise Unmappable(f"it passes tensors to `{key}`, which `from ... import *` brings from "
                             "another module that this run does not migrate into a class")
        if api in _VARIABLE_METHODS:
            positional = [a for a in updated.args if a.keyword is None]
            if len(positional) != 2:
                raise Unmappable(f"{api} with unexpected arguments")
            return cst.Call(cst.Attribute(positional[0].value, cst.Name(_VARIABLE_METHODS[api])),
                            [cst.Arg(positional[1].value)])
        return updated


_BUILTINS = frozenset(dir(__import__("builtins")))


def _call_tensor_and_training(call: cst.Call):
    positional = [a for a in call.args if a.keyword is None]
    tensor = positional[0].value if positional else next(
        (a.value for a in call.args if a.keyword and a.keyword.value == "inputs"), None)
    training = next((a.value for a in call.args if a.keyword and a.keyword.value == "training"), None)
    if tensor is None:
        raise Unmappable("layer object called without an input")
    return tensor, training


class _VariableRefs(cst.CSTTransformer):
    """In call(): a tf.get_variable local -> the weight build() created (`self.matrix`)."""

    def __init__(self, variables: Dict[str, str]):
        super().__init__()
        self.variables = variables

    def leave_Name(self, original, updated):
        attr = self.variables.get(original.value)
        return cst.Attribute(cst.Name("self"), cst.Name(attr)) if attr else updated

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword) if original.keyword else updated

    def leave_Param(self, original, updated):
        return updated.with_changes(name=original.name)


class _ScopeObject(cst.CSTTransformer):
    """`sc.name` -> `self.name`."""

    def __init__(self, scope_as: str):
        super().__init__()
        self.scope_as = scope_as

    def leave_Attribute(self, original, updated):
        if isinstance(original.value, cst.Name) and original.value.value == self.scope_as \
                and original.attr.value == "name":
            return updated.with_changes(value=cst.Name("self"))
        return updated


def _end_point_collections(body, scope_as: str, resolve) -> Set[str]:
    """Locals set once to `sc.original_name_scope + '...'` (or `sc.name + '...'`) and used only
    as `outputs_collections=` and in `convert_collection_to_dict(...)`: slim's end_points
    collection of the model."""
    module = cst.Module(body=list(body))
    candidates: Dict[str, int] = {}
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 and \
                isinstance(stmt.body[0].targets[0].target, cst.Name):
            value = stmt.body[0].value
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add) \
                    and isinstance(value.left, cst.Attribute) \
                    and isinstance(value.left.value, cst.Name) and value.left.value.value == scope_as \
                    and value.left.attr.value in ("original_name_scope", "name") \
                    and isinstance(value.right, cst.SimpleString):
                name = stmt.body[0].targets[0].target.value
                candidates[name] = candidates.get(name, 0) + 1
    uses: Dict[str, int] = {}

    class Uses(cst.CSTVisitor):
        def visit_Arg(self, arg):
            name = _collection_name(arg.value)
            if name in candidates and arg.keyword is not None \
                    and arg.keyword.value == "outputs_collections":
                uses[name] = uses.get(name, 0) + 1

        def visit_Call(self, call):
            if resolve(call.func) == CONVERT_COLLECTION and len(call.args) == 1 \
                    and isinstance(call.args[0].value, cst.Name) \
                    and call.args[0].value.value in candidates:
                uses[call.args[0].value.value] = uses.get(call.args[0].value.value, 0) + 1

    module.visit(Uses())
    return {name for name, count in candidates.items()
            if count == 1 and name_uses(module, {name}) == 1 + uses.get(name, 0)}


def _collection_name(expr) -> Optional[str]:
    """`outputs_collections=end_points_collection` (or `=[end_points_collection]`): the name."""
    if isinstance(expr, (cst.List, cst.Tuple)) and len(expr.elements) == 1:
        expr = expr.elements[0].value
    return expr.value if isinstance(expr, cst.Name) else None


class _ParamRenamer(cst.CSTTransformer):
    """In `call`: the training parameter becomes `training`, configuration becomes `self.<p>`."""

    def __init__(self, info: FunctionInfo):
        super().__init__()
        self.info = info
        self.config_used: Set[str] = set()

    def leave_Name(self, original, updated):
        name = original.value
        if name == self.info.training_param or (name == self.info.mode_local and name is not None):
            return updated.with_changes(value="training")
        if name in self.info.reuse_params or (name in (self.info.scope_param, self.info.mode_param)
                                              and name is not None):
            raise Unmappable(f"parameter {name} is used beyond variable scoping")
        if name in self.info.config_params:
            self.config_used.add(name)
            return cst.Attribute(cst.Name("self"), cst.Name(name))
        return updated

    def leave_Attribute(self, original, updated):
        # `self.x.attr` stays; a Name as the attribute part must not be renamed.
        if isinstance(original.attr, cst.Name) and updated.attr is not original.attr:
            return updated.with_changes(attr=original.attr)
        return updated

    def leave_Arg(self, original, updated):
        if original.keyword is not None and updated.keyword is not original.keyword:
            return updated.with_changes(keyword=original.keyword)
        return updated

    def leave_Param(self, original, updated):
        return updated.with_changes(name=original.name)


def _valid_tf2(api: str) -> bool:
    from migrate.model_rewrite.tf2_api import exists_in_tf2

    return exists_in_tf2(api)


def _mentions(node, names: Set[str]) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n):
            if n.value in names:
                found.append(n)

        def visit_Attribute(self, n):
            n.value.visit(self)
            return False

    node.visit(V())
    return bool(found)


def _contains_layers(node, conv: FunctionConverter) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, n):
            api = conv.resolve(n.func)
            if api in LAYER_APIS or api in LAYER_CLASS_APIS or api == GET_VARIABLE:
                found.append(n)
            elif (isinstance(n.func, cst.Name) and (n.func.value in conv.local_layers
                                                    or n.func.value in conv.wrapper_objects)) or (
                    dotted(n.func) in conv.functions and conv.functions[dotted(n.func)].is_model):
                found.append(n)

    node.visit(V())
    return bool(found)


def _keep_leading_lines(unwrapped: cst.With, body: List[cst.BaseStatement]) -> List[cst.BaseStatement]:
    """The comments and blank lines above an unwrapped `with` lead its first statement."""
    if body and unwrapped.leading_lines:
        body[0] = body[0].with_changes(leading_lines=[*unwrapped.leading_lines, *body[0].leading_lines])
    return body


def _statements_in(block) -> List[cst.BaseStatement]:
    """Every statement inside `block`, nested ones included."""
    found: List[cst.BaseStatement] = []

    class Statements(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, node):
            found.append(node)

    block.visit(Statements())
    return found


def _append_target(stmt) -> Optional[str]:
    """`L` for the statement `L.append(x)`."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
            isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call):
        call = stmt.body[0].value
        if isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name) and \
                call.func.attr.value == "append" and len(call.args) == 1 and not call.args[0].star:
            return call.func.value.value
    return None


class _ListLengths(cst.CSTTransformer):
    """`len(layers)` -> `layers_count`: __init__ counts the appends instead of keeping tensors."""

    def __init__(self, counters: Dict[str, str]):
        super().__init__()
        self.counters = counters

    def leave_Call(self, original, updated):
        if isinstance(original.func, cst.Name) and original.func.value == "len" and \
                len(original.args) == 1 and isinstance(original.args[0].value, cst.Name) and \
                original.args[0].value.value in self.counters:
            return cst.Name(self.counters[original.args[0].value.value])
        return updated


def _assign_targets(node) -> List[str]:
    return assigned_names(node, augmented=True)


def _only_shape_calls(expr) -> bool:
    """Whether every call in `expr` just reads a static shape (`x.get_shape().as_list()`,
    `int(d)`): dropping such an unread statement loses nothing."""
    calls: List[cst.Call] = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call):
            calls.append(call)

    expr.visit(Calls())
    return all((isinstance(c.func, cst.Attribute) and c.func.attr.value in ("get_shape", "as_list"))
               or (isinstance(c.func, cst.Name) and c.func.value in ("int", "len", "list", "tuple"))
               for c in calls)


def _shape_test(test, tensor_params, tensor_names, holders=None) -> Optional[str]:
    """The condition with `x.shape` spelled `x_shape`, when it reads tensors only through shapes.

    `holders` are the names still holding the input tensor there (default: the input parameter
    `x`; also `shortcut = x` bound before `x` is rebound); their shape is the input's. TF1's
    `Dimension.value` (`x.shape[-1].value`) is dropped: build() reads a TF 2 TensorShape, whose
    items are already ints or None."""
    if not tensor_params:
        return None
    first = tensor_params[0]
    holders = {first} if holders is None else set(holders)
    text = _RENDER.code_for_node(test)
    replaced = text
    for name in sorted(holders):
        replaced = re.sub(rf"\b{re.escape(name)}\.shape\b", f"{first}_shape", replaced)
        replaced = re.sub(rf"\b{re.escape(name)}\.get_shape\(\)", f"{first}_shape", replaced)
    replaced = re.sub(rf"\b({re.escape(first)}_shape\[[^\[\]]*\])\.value\b", r"\1", replaced)
    leftover = cst.parse_expression(replaced)
    if _mentions(leftover, set(tensor_names) | set(tensor_params) | holders):
        return None
    return replaced


def _is_shape_item(node) -> bool:
    """`<t>.shape[i]` or `<t>.get_shape()[i]` (one static dimension of a tensor)."""
    if not isinstance(node, cst.Subscript):
        return False
    base = node.value
    if isinstance(base, cst.Call) and not base.args:
        base = base.func
        return isinstance(base, cst.Attribute) and base.attr.value == "get_shape"
    return isinstance(base, cst.Attribute) and base.attr.value == "shape"


def _bindings_before(func, stmt) -> List[Tuple[str, Optional[cst.BaseExpression]]]:
    """(name, assigned value or None) for each binding in `func` that comes before `stmt` in
    source order: what a shape condition at `stmt` may rely on."""
    found: List[Tuple[str, Optional[cst.BaseExpression]]] = []

    class Before(cst.CSTVisitor):
        done = False

        def on_visit(self, node) -> bool:
            if node is stmt:
                self.done = True
            return not self.done and super().on_visit(node)

        def visit_Assign(self, node):
            value = node.value if len(node.targets) == 1 else None
            for target in node.targets:
                found.extend((n, value) for n in _target_names(target.target))

        def visit_AugAssign(self, node):
            found.extend((n, None) for n in _target_names(node.target))

        def visit_AnnAssign(self, node):
            found.extend((n, None) for n in _target_names(node.target))

        def visit_For(self, node):
            found.extend((n, None) for n in _target_names(node.target))

        def visit_WithItem(self, node):
            if node.asname is not None:
                found.extend((n, None) for n in _target_names(node.asname.name))

    func.body.visit(Before())
    return found


def _input_holders(func, stmt, tensor_params) -> Set[str]:
    """Names holding the unchanged input tensor at `stmt`: the input parameter until it is
    rebound (`x = conv(x)`: its shape is no longer the input's), and names bound once to it
    before that (`shortcut = x`). A condition reading their shapes can be decided in build()."""
    if not tensor_params:
        return set()
    first = tensor_params[0]
    bindings = _bindings_before(func, stmt)
    counts: Dict[str, int] = {}
    for name, _ in bindings:
        counts[name] = counts.get(name, 0) + 1
    holders = {first}
    for name, value in bindings:
        if name == first:
            holders.discard(first)
        elif counts[name] == 1 and isinstance(value, cst.Name) and value.value in holders:
            holders.add(name)
    return holders


def _suffix_name(name_expr, suffix: str):
    value = literal(name_expr)
    if isinstance(value, str):
        return cst.SimpleString(repr(value + suffix))
    return cst.BinaryOperation(name_expr, cst.Add(), cst.SimpleString(repr(suffix)))


def _expr(value) -> cst.BaseExpression:
    if isinstance(value, bn_mapping.Code):
        return cst.parse_expression(value.text)
    return value




def _normalizer_param_names(func) -> Dict[str, int]:
    """Local names passed as `normalizer_params=` (in calls or arg_scopes), with use counts."""
    counts: Dict[str, int] = {}

    class V(cst.CSTVisitor):
        def visit_Arg(self, n):
            if n.keyword is not None and n.keyword.value == "normalizer_params" and \
                    isinstance(n.value, cst.Name):
                counts[n.value.value] = counts.get(n.value.value, 0) + 1

    func.visit(V())
    return counts


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name or "layer").lower()


def _name_stem(expr) -> Optional[str]:
    """'fc' for `'fc%d' % i`, `'fc_{}'.format(i)` or `f'fc{i}'`: the static part of a name."""
    text = None
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.left, cst.SimpleString):
        text = expr.left.evaluated_value
    elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
            isinstance(expr.func.value, cst.SimpleString):
        text = expr.func.value.evaluated_value
    elif isinstance(expr, cst.FormattedString):
        parts = [p.value for p in expr.parts if isinstance(p, cst.FormattedStringText)]
        text = parts[0] if parts else None
    if not text:
        return None
    stem = re.split(r"[%{]", text, maxsplit=1)[0].strip("_/ ")
    return _identifier(stem) if stem else None


LINE_LIMIT = 99


def _wrap(line: str, pad: str, indent: str) -> List[str]:
    """Break an over-long `self.x = Ctor(...)` line at the constructor's arguments, black style."""
    if len(line) <= LINE_LIMIT:
        return [line]
    import io
    import tokenize

    text = line[len(pad):]
    anchor = text.find(".append(") + len(".append(") if ".append(" in text else text.find(" = ") + 3
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError):
        return [line]
    open_at = close_at = None
    depth = 0
    commas = []
    for tok in tokens:
        if tok.type != tokenize.OP:
            continue
        col = tok.start[1]
        if tok.string in "([{":
            depth += 1
            if open_at is None and tok.string == "(" and col >= anchor and depth == (
                    2 if ".append(" in text else 1):
                open_at, open_depth = col, depth
        elif tok.string in ")]}":
            if open_at is not None and close_at is None and depth == open_depth and tok.string == ")":
                close_at = col
            depth -= 1
        elif tok.string == "," and open_at is not None and close_at is None and depth == open_depth:
            commas.append(col)
    if open_at is None or close_at is None:
        return [line]
    bounds = [open_at + 1] + [c + 1 for c in commas] + [close_at]
    args = [text[bounds[i]:bounds[i + 1]].strip().rstrip(",").strip() for i in range(len(bounds) - 1)]
    args = [a for a in args if a]
    head, tail = text[:open_at + 1], text[close_at:]
    one_line = pad + indent + ", ".join(args)
    if len(one_line) <= LINE_LIMIT:
        return [pad + head, one_line, pad + tail]
    return [pad + head] + [pad + indent + a + "," for a in args] + [pad + tail]


def _training_cond(node: cst.Call, conv) -> Optional[cst.Call]:
    """The single layer call a `tf.cond` over the training flag stands for, or None."""
    if conv.resolve(node.func) != "tensorflow.cond" or len(node.args) < 3:
        return None
    pred, true_fn, false_fn = (a.value for a in node.args[:3])
    if any(a.keyword is not None and a.keyword.value not in ("pred", "true_fn", "false_fn")
           for a in node.args):
        return None
    if not (isinstance(true_fn, cst.Lambda) and isinstance(false_fn, cst.Lambda)
            and not true_fn.params.params and not false_fn.params.params
            and isinstance(true_fn.body, cst.Call) and isinstance(false_fn.body, cst.Call)):
        return None
    calls = (true_fn.body, false_fn.body)
    api = conv.resolve(calls[0].func)
    if api not in LAYER_APIS or conv.resolve(calls[1].func) != api:
        return None

    def normalised(call, expected):
        flag = None
        kept = []
        for arg in call.args:
            key = arg.keyword.value if arg.keyword is not None else None
            if key in ("training", "is_training"):
                flag = literal(arg.value)
                continue
            if key == "reuse":
                continue
            kept.append(arg)
        if flag is not expected:
            return None
        signature = [(a.keyword.value if a.keyword is not None else None, _RENDER.code_for_node(a.value))
                     for a in kept]
        return signature, call

    first, second = normalised(calls[0], True), normalised(calls[1], False)
    if first is None or second is None or first[0] != second[0]:
        return None
    key = "is_training" if any(a.keyword is not None and a.keyword.value == "is_training"
                               for a in calls[0].args) else "training"
    args = [a for a in calls[0].args
            if not (a.keyword is not None and a.keyword.value in ("training", "is_training", "reuse"))]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return calls[0].with_changes(args=[*args, _kwarg(key, pred)])
