"""Whole-program TF1 classes -> a Keras network, an optimizer and TF2 train steps.

The most common structure of TF1 research code is a class that *is* the program::

    class Model(object):
        def __init__(self, config):
            self.config = config
            self._add_placeholders()      # self.x = tf.placeholder(...)
            self._build_graph()           # layers from self.x to self.logits, self.loss
            self._add_train_op()          # UPDATE_OPS + minimize -> self.train_op

        def train_step(self, sess, x, y):
            _, loss = sess.run([self.train_op, self.loss], feed_dict={self.x: x, self.y: y, ...})
            return loss

and a caller that makes the object, opens a Session, runs the initializer and calls the methods.
Nothing here converts it by itself: the class is taken apart into what the model rewrite and the
training-loop rewrite already convert, run through every rule, and put back together
(`migrate_class_programs`, the same wrap-run-unwrap scheme as `module_program`):

* the build methods called from `__init__` are inlined in call order, `self.<tensor>` becoming
  local names; the statements from the first one that builds layers to the last one become a
  *network class* `<Name>Network(object)` whose `__call__` takes the tensors they read (the
  placeholders) and returns the ones read later or fetched by a Session method; the
  configuration it reads (`self.config`, `__init__` parameters) is its constructor's. The model
  rewrite makes it a `tf.keras.Model` (`network_classes`);
* the rest of the graph and the Session methods become one pseudo Session program
  `def _tfm_class_program_<Name>(self, ...)`: the graph part calls the network, each method's
  body follows in the session block after a `_tfm_method = '<name>'` marker, its parameters and
  locals prefixed so they cannot clash. The training-loop rewrite turns it into a network and
  optimizer creation, `@tf.function` GradientTape train steps and eager calls;
* the converted pseudo-program is cut back into the class: what it creates before the first
  method becomes `__init__` (after the configuration statements; names the methods read become
  `self.<name>`), each marked section becomes its method without the Session parameter, a value
  `sess.run` returned is returned as numpy (`.numpy()`), as `sess.run` did.

Methods the graph code calls with tensors (carpedm20's DCGAN: `self.G = self.generator(self.z)`,
`self.discriminator(self.G, reuse=True)`) become network classes of their own,
`<Name><Method>(object)` with the method as `__call__` and the configuration it reads as
constructor parameters (`_method_networks`); the pseudo-program makes each once and calls it, so
the model rewrite's network classes make them Keras Models and `reuse=True` is the same object
called again. Graph ops a Session method builds before it runs anything (the optimizers and
`minimize` of DCGAN's `train()`) are graph code of the program (`_hoisted_graph`), made in
`__init__`, or at the start of the method when they read its parameters (`_to_methods`); its
`tf.global_variables_initializer().run()` goes. `self.sess = sess`, a Session __init__ takes
from the caller (`DCGAN(sess)`), is read like one the class opened (`_kept_session`).

Callers are rewritten first (`rewrite_callers`): `model.train_step(sess, x, y)` loses the
Session argument, `with tf.Session() as sess:` is unwrapped and `sess.run(initializer)` goes.
A class that opens its own Session (`self.sess = tf.Session()` and the initializer run in
`__init__`, methods running `self.sess.run(...)`) is read as if each such method took the
Session as a parameter its callers never pass (`_own_session`, `_with_session_param`). A
method that only hands its Session on (`def fit(self, sess, data): ... self.train_step(sess,
x)`) stays as it is, without the parameter (`_forwarding`, `_forwarded`).
All or nothing per class: any shape this does not know (a method that builds graph ops after
`__init__`, a second Session, the object's tensors read by callers, a caller that passes the
Session elsewhere...) leaves the class and its callers as the file's ordinary run leaves them,
and the class's TFM301 marker and finding say precisely why.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from migrate.cst_utils import (bound_names, bound_names_in_order, contains_return, name_reads,
                               names_read, target_names)
from migrate.findings import BEHAVIOUR_CHANGE, BOUNDED, EXACT, Finding
from migrate.model_rewrite.analysis import _is_docstring, dotted
from migrate.model_rewrite.layers import LAYER_APIS, LAYER_CLASS_APIS, Unmappable
from migrate.model_rewrite.tf2_api import exists_in_tf2

PSEUDO_PREFIX = "_tfm_class_program_"
SECTION = "_tfm_method"
RETURN = "_tfm_return"
SESSION = "_tfm_session"
MARKER = "# tf-migrate: TFM301"
Outcome = Tuple[Optional[str], List[Finding]]

_PLACEHOLDERS = ("tensorflow.placeholder", "tensorflow.placeholder_with_default")
_SESSIONS = ("tensorflow.Session", "tensorflow.InteractiveSession")
_INITIALIZERS = ("tensorflow.global_variables_initializer", "tensorflow.initialize_all_variables",
                 "tensorflow.local_variables_initializer")
# TF1 spellings a caller keeps that TF2 spells differently (the caller is plain code once its
# Session is gone, so no other rewrite sees it).
_CALLER_RENAMES = {"tensorflow.set_random_seed": "random.set_seed"}
_RENDER = cst.Module(body=[])


def _code(node) -> str:
    return _RENDER.code_for_node(node)


# -- the class -----------------------------------------------------------------------------------
@dataclass
class SessionMethod:
    name: str
    node: cst.FunctionDef
    session_param: str
    session_index: int  # position of the Session among the parameters after self
    params: List[str]  # parameters after self, the Session excluded
    passed: bool = True  # callers pass the Session (False: the class made it, `self.sess`)
    forwarding: bool = False  # only hands its Session on to Session methods of the class
    fetch_targets: Set[str] = field(default_factory=set)  # names bound to sess.run results
    returns_run: bool = False  # `return sess.run(...)`
    # Graph ops it built before running anything (`d_optim = tf.train.AdamOptimizer(lr)
    # .minimize(...)`): graph code of the program, the initializer run dropped.
    hoisted: List[cst.BaseStatement] = field(default_factory=list)
    initializes: bool = False  # it ran the variable initializer itself (on each call)


@dataclass
class ClassProgram:
    name: str
    node: cst.ClassDef
    init: cst.FunctionDef
    config: List[cst.BaseStatement]  # __init__'s configuration statements, kept as they are
    config_attrs: Set[str]
    init_params: List[str]
    graph: List[cst.BaseStatement]  # the inlined build statements, self.<tensor> -> <tensor>
    graph_attrs: Set[str]
    methods: List[SessionMethod]
    plain_methods: List[cst.FunctionDef]  # methods that touch neither the graph nor a Session
    docstring: Optional[cst.BaseStatement] = None
    # `def fit(self, sess, data): ... self.train_step(sess, x, y)`: the Session handed on only.
    forwarding: List[SessionMethod] = field(default_factory=list)
    # `def generator(self, z)` called as `self.G = self.generator(self.z)`: networks of their own.
    method_networks: List["MethodNetwork"] = field(default_factory=list)
    # `def __init__(self, sess): self.sess = sess`: the caller's Session, (parameter, position).
    session_init: Optional[Tuple[str, int]] = None


@dataclass
class MethodNetwork:
    """A method that takes tensors and builds layers (DCGAN's `generator(self, z)`,
    `discriminator(self, x, reuse=False)`): a network class of its own, made once. The graph
    code calls the object (`G = generator(z)`); `reuse=True` is the same object called again."""
    method: str  # also the pseudo program's name for its object
    class_name: str
    config: List[str]  # configuration attributes it reads: its constructor's parameters


class _SelfAttributes(cst.CSTTransformer):
    """`self.<attr>` -> `<attr>` for the graph's tensors."""

    def __init__(self, attrs: Set[str]):
        super().__init__()
        self.attrs = attrs

    def leave_Attribute(self, original, updated):
        if isinstance(original.value, cst.Name) and original.value.value == "self" and \
                original.attr.value in self.attrs:
            return cst.Name(original.attr.value)
        return updated


class _Rename(cst.CSTTransformer):
    """Rename variable names (not attribute names, not keyword names)."""

    def __init__(self, mapping: Dict[str, str]):
        super().__init__()
        self.mapping = mapping

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword) if original.keyword else updated

    def leave_Name(self, original, updated):
        new = self.mapping.get(original.value)
        return updated.with_changes(value=new) if new else updated


def _rename(node, mapping: Dict[str, str]):
    return node.visit(_Rename(mapping)) if mapping else node


def _self_reads(node) -> List[Tuple[str, bool]]:
    """(attribute, is it called) for each `self.<attribute>` in node; ('', False) for a bare
    `self` used otherwise."""
    found: List[Tuple[str, bool]] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            if isinstance(call.func, cst.Attribute) and _is_name(call.func.value, "self"):
                found.append((call.func.attr.value, True))
                for arg in call.args:
                    arg.visit(self)
                return False
            return True

        def visit_Attribute(self, attribute):
            if _is_name(attribute.value, "self"):
                found.append((attribute.attr.value, False))
                return False
            return True

        def visit_Param(self, param):
            if param.default is not None:
                param.default.visit(self)
            return False

        def visit_Name(self, name):
            if name.value == "self":
                found.append(("", False))

    node.visit(V())
    return found


def _is_name(node, value: str) -> bool:
    return isinstance(node, cst.Name) and node.value == value


def _calls(node) -> List[cst.Call]:
    found: List[cst.Call] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            found.append(call)

    node.visit(V())
    return found


def _body(func) -> List[cst.BaseStatement]:
    stmts = list(func.body.body) if isinstance(func.body, cst.IndentedBlock) else []
    return stmts[1:] if stmts and _is_docstring(stmts[0]) else stmts


def _self_call(stmt, methods) -> Optional[str]:
    """`self.m()` as a statement, m a method of the class."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
            isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call):
        call = stmt.body[0].value
        if isinstance(call.func, cst.Attribute) and _is_name(call.func.value, "self") and \
                call.func.attr.value in methods:
            if call.args:
                raise Unmappable(f"__init__ calls `self.{call.func.attr.value}` with arguments")
            return call.func.attr.value
    return None


def builds_placeholders(cls: cst.ClassDef, resolve) -> bool:
    return any(resolve(c.func) in _PLACEHOLDERS for c in _calls(cls))


def _plain_class(cls: cst.ClassDef) -> bool:
    return not cls.keywords and all(dotted(b.value) == "object" for b in cls.bases)


def analyse(cls: cst.ClassDef, resolve, module_names: Set[str] = frozenset()) -> ClassProgram:
    """The class as a class program, or Unmappable with why it cannot convert."""
    name = cls.name.value
    if cls.decorators:
        raise Unmappable("a decorated class")
    members = list(cls.body.body) if isinstance(cls.body, cst.IndentedBlock) else []
    docstring = members[0] if members and _is_docstring(members[0]) else None
    if docstring is not None:
        members = members[1:]
    if any(not isinstance(m, cst.FunctionDef) for m in members):
        raise Unmappable("the class body holds more than methods (class attributes)")
    methods = {m.name.value: m for m in members}
    for method in members:
        if method.decorators:
            raise Unmappable(f"its method `{method.name.value}` is decorated")
        params = method.params
        if params.star_arg is not None and isinstance(params.star_arg, cst.Param) or \
                params.star_kwarg is not None or params.kwonly_params or params.posonly_params:
            raise Unmappable(f"`{method.name.value}` takes *args, **kwargs or keyword-only "
                             "parameters")
        if not params.params or params.params[0].name.value != "self":
            raise Unmappable(f"`{method.name.value}` is not a plain method")
    init = methods.get("__init__")
    if init is None:
        raise Unmappable("the graph is not built in __init__")
    init_params = [p.name.value for p in init.params.params[1:]]

    # __init__: configuration, then the build methods (inlined, in call order).
    config: List[cst.BaseStatement] = []
    graph: List[cst.BaseStatement] = []
    build_methods: List[str] = []

    def inline(method_name: str) -> List[cst.BaseStatement]:
        if method_name in build_methods:
            raise Unmappable(f"`{method_name}` is called twice while the graph is built")
        build_methods.append(method_name)
        method = methods[method_name]
        if len(method.params.params) != 1:
            raise Unmappable(f"the build method `{method_name}` takes parameters")
        out = []
        for stmt in _body(method):
            called = _self_call(stmt, methods)
            if called is not None:
                out.extend(inline(called))
                continue
            if contains_return(stmt):
                raise Unmappable(f"the build method `{method_name}` returns a value")
            out.append(stmt.visit(inliner))
        return out

    class Inline(cst.CSTTransformer):
        """`self._build()` inside a block (`with tf.variable_scope('model'):`) -> its body."""

        def leave_SimpleStatementLine(self, original, updated):
            called = _self_call(original, methods)
            if called is None:
                return updated
            body = inline(called)
            if not body:
                return cst.RemoveFromParent()
            body[0] = body[0].with_changes(
                leading_lines=[*original.leading_lines, *body[0].leading_lines])
            return cst.FlattenSentinel(body)

    inliner = Inline()
    for stmt in _body(init):
        if _is_super_init(stmt):
            continue
        called = _self_call(stmt, methods)
        if called is not None:
            graph.extend(inline(called))
        elif _is_graph_code(stmt, resolve, methods) or _reads_attrs(stmt, _stored_attrs(graph)) \
                or names_read(stmt) & bound_names(cst.Module(body=graph)):
            graph.append(stmt.visit(inliner))  # builds graph, or reads what the graph built
        elif contains_return(stmt):
            raise Unmappable("__init__ returns")
        else:
            config.append(stmt)
    graph, session_attr = _own_session(graph, resolve)
    config, kept_session = _kept_session(config, init_params, members, [*config, *graph])
    session_init = None
    if kept_session is not None:
        if session_attr is not None:
            raise Unmappable("__init__ keeps two Sessions")
        session_attr, param = kept_session
        session_init = (param, init_params.index(param))
        init_params = [p for p in init_params if p != param]
    config_attrs = set().union(*[_stored_attrs([s]) for s in config]) if config else set()
    graph_attrs = _stored_attrs(graph)
    if not any(resolve(c.func) in _PLACEHOLDERS for s in graph for c in _calls(s)):
        raise Unmappable("__init__ builds no placeholders")
    clash = sorted(config_attrs & graph_attrs)
    if clash:
        raise Unmappable(f"`self.{clash[0]}` is set both as configuration and as a graph tensor")

    rebound = _rebound_after_store(graph, graph_attrs)
    if rebound:
        raise Unmappable(f"its graph code binds a local `{rebound}` after storing `self.{rebound}` "
                         "(one name for both would change what the methods fetch)")
    networks = _method_networks(graph, methods, build_methods, config_attrs, name, module_names)
    network_names = {n.method for n in networks}
    # The graph's tensors become local names (and `self.generator(z)` a call of its network).
    substituted = []
    for stmt in graph:
        stmt = stmt.visit(_SelfAttributes(graph_attrs | network_names))
        for attr, called in _self_reads(stmt):
            if called:
                raise Unmappable(f"its graph code calls `self.{attr}(...)`, a method that takes "
                                 "arguments or returns tensors (the rewrite inlines build "
                                 "methods called as `self._build()` statements only)")
            if attr == "":
                raise Unmappable("its graph code passes `self` on")
            if attr not in config_attrs:
                raise Unmappable(f"its graph code reads `self.{attr}`, which is not "
                                 "configuration set before the graph")
        if _self_alias(stmt):
            continue  # `self.logits = logits`: the same name now
        substituted.append(stmt)
    locals_ = bound_names(cst.Module(body=substituted)) - graph_attrs
    reserved = {n for n in locals_ | graph_attrs if n.startswith("_tfm_")}
    if reserved or "self" in locals_:
        raise Unmappable("its graph code binds a name the rewrite reserves")
    shadowed = sorted(graph_attrs & set(module_names) & set().union(
        *[names_read(s) for s in substituted], names_read(cls)))
    if shadowed:
        raise Unmappable(f"its tensor `self.{shadowed[0]}` has the name of the module's "
                         f"`{shadowed[0]}`, which its code also reads")
    clashing = sorted((locals_ | graph_attrs) & set(init_params))
    if clashing:
        raise Unmappable(f"its graph code binds `{clashing[0]}`, a parameter of __init__")
    taken_by_graph = sorted(network_names & (locals_ | graph_attrs | set(init_params) | set().union(
        *[names_read(s) for s in graph])))
    if taken_by_graph:
        raise Unmappable(f"its graph code also uses the name `{taken_by_graph[0]}` of its "
                         "layer-building method")

    # The other methods: Session methods, plain ones.
    session_methods: List[SessionMethod] = []
    plain: List[cst.FunctionDef] = []
    for method in members:
        mname = method.name.value
        if mname == "__init__" or mname in build_methods or mname in network_names:
            continue
        reads = _self_reads(method)
        for attr, called in reads:
            if attr in network_names:
                raise Unmappable(f"`{mname}` calls the layer-building method `{attr}` after "
                                 "__init__")
        for attr, called in reads:
            if called and attr in build_methods:
                raise Unmappable(f"`{mname}` calls the build method `{attr}` after __init__")
        passed = True
        if session_attr is not None and session_attr in {a for a, _ in reads}:
            # `self.sess.run(...)`: read as a Session parameter the callers never pass.
            method = _with_session_param(method, session_attr)
            passed = False
        session = _session_param(method) if passed else _OWN_SESSION
        if session is None:
            touched = sorted({a for a, _ in reads if a in graph_attrs})
            if touched:
                raise Unmappable(f"`{mname}` reads `self.{touched[0]}` without running it in a "
                                 "Session")
            if any(resolve(c.func) and (resolve(c.func) or "").startswith("tensorflow.")
                   for c in _calls(method)):
                raise Unmappable(f"`{mname}` calls TensorFlow after __init__")
            plain.append(method)
            continue
        method, hoisted, initializes = _hoisted_graph(method, session, resolve)
        session_methods.append(_session_method(method, session, resolve, graph_attrs,
                                               config_attrs, methods))
        session_methods[-1].passed = passed
        session_methods[-1].hoisted = hoisted
        session_methods[-1].initializes = initializes
        graph_names = bound_names(cst.Module(body=substituted)) | graph_attrs | set(init_params) \
            | {n.method for n in networks}
        for other in session_methods[:-1]:
            graph_names |= bound_names(cst.Module(body=other.hoisted))
        clash = sorted(bound_names(cst.Module(body=hoisted)) & graph_names)
        if clash:
            raise Unmappable(f"`{mname}` builds `{clash[0]}` before its Session runs, a name the "
                             "graph code already uses")
    if not session_methods:
        raise Unmappable("no method runs its graph in a Session (callers run its tensors "
                         "themselves)")
    known = {m.name: m for m in session_methods}
    forwarding: List[SessionMethod] = []
    changed = True
    while changed:  # a method may hand its Session to one that hands it on
        changed = False
        for method in list(plain):
            found = _forwarding(method, known)
            if found is not None:
                forwarding.append(found)
                known[found.name] = found
                plain.remove(method)
                changed = True
    for method in plain:
        called = sorted(a for a, c in _self_reads(method) if c and a in known and known[a].passed)
        if called:
            raise Unmappable(f"`{method.name.value}` calls the Session method `self.{called[0]}` "
                             "other than by handing on a Session parameter")
    return ClassProgram(name, cls, init, config, config_attrs, init_params, substituted,
                        graph_attrs, session_methods, plain, docstring, forwarding, networks,
                        session_init)


def _kept_session(config, init_params: List[str], members, init_stmts
                  ) -> Tuple[List[cst.BaseStatement], Optional[Tuple[str, str]]]:
    """(the configuration without it, (attribute, parameter)) for `self.sess = sess`, a
    parameter of __init__ the methods only run (`self.sess.run(...)`, a Saver's Session): the
    caller's Session (carpedm20's DCGAN). It goes with the caller's Session."""
    for stmt in config:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and
                isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            continue
        target, value = stmt.body[0].targets[0].target, stmt.body[0].value
        if not (isinstance(target, cst.Attribute) and _is_name(target.value, "self") and
                isinstance(value, cst.Name) and value.value in init_params):
            continue
        attr, param = target.attr.value, value.value
        reads = [a for m in members for a, _ in _self_reads(m) if a == attr]
        runs = [c for m in members for c in _calls(m) if dotted(c.func) == f"self.{attr}.run"
                or isinstance(c.func, cst.Attribute) and c.func.attr.value in ("save", "restore")
                and c.args and dotted(c.args[0].value) == f"self.{attr}"]
        # + the store itself; the parameter read by nothing else.
        if not runs or len(reads) != len(runs) + 1:
            continue
        if any(param in names_read(s) for s in init_stmts if s is not stmt):
            continue
        return [s for s in config if s is not stmt], (attr, param)
    return config, None


def _method_networks(graph, methods: Dict[str, cst.FunctionDef], build_methods: List[str],
                     config_attrs: Set[str], cls_name, module_names) -> List[MethodNetwork]:
    """The methods the graph code calls with tensors (`self.generator(self.z)`), as networks of
    their own, or Unmappable. Such a method reads only configuration from `self`, which its
    network's constructor takes: values, and the wrapper objects __init__ made
    (`self.d_bn1 = batch_norm(name='d_bn1')`), which the model rewrite makes Keras layers the
    network tracks as sub-layers."""
    called: List[str] = []
    for stmt in graph:
        for attr, is_call in _self_reads(stmt):
            if is_call and attr in methods and attr not in build_methods and attr != "__init__" \
                    and attr not in called:
                called.append(attr)
    found: List[MethodNetwork] = []
    class_names = {cls_name}
    scopes: Dict[str, str] = {}
    for mname in called:
        method = methods[mname]
        why = f"its graph code calls `self.{mname}(...)`, a method that"
        if _always_reuses(method):
            raise Unmappable(f"{why} reuses variables unconditionally (`reuse_variables()`: "
                             "weights another method created)")
        for scope in _scope_names(method):
            if scope in scopes and scopes[scope] != mname:
                raise Unmappable(f"`{scopes[scope]}` and `{mname}` build layers under the same "
                                 f"variable scope `{scope}` (weights shared across methods)")
            scopes[scope] = mname
        if _stored_attrs([method]):
            raise Unmappable(f"{why} stores `self.{sorted(_stored_attrs([method]))[0]}`")
        if any(isinstance(c.func, cst.Attribute) and c.func.attr.value == "run"
               for c in _calls(method)):
            raise Unmappable(f"{why} runs a Session")
        reads: List[str] = []
        for attr, is_call in _self_reads(method):
            if attr == "":
                raise Unmappable(f"{why} passes `self` on")
            if attr not in config_attrs:
                kind = "calls the method" if attr in methods else "reads"
                raise Unmappable(f"{why} {kind} `self.{attr}`, which is not configuration set "
                                 "before the graph")
            if attr not in reads:
                reads.append(attr)
        class_name = cls_name + "".join(p[:1].upper() + p[1:] for p in mname.split("_") if p)
        while class_name in module_names or class_name in class_names:
            class_name += "_"
        class_names.add(class_name)
        found.append(MethodNetwork(mname, class_name, reads))
    return found


def _scope_names(method: cst.FunctionDef) -> Set[str]:
    """The literal names of the variable scopes the method opens."""
    return {c.args[0].value.evaluated_value for c in _calls(method)
            if dotted(c.func) and dotted(c.func).endswith("variable_scope") and c.args
            and isinstance(c.args[0].value, cst.SimpleString)}


def _always_reuses(method: cst.FunctionDef) -> bool:
    """`scope.reuse_variables()` not under an `if` (the `if reuse:` form is the method's own
    reuse, which calling the same network object again replaces)."""
    found: List[bool] = []

    class V(cst.CSTVisitor):
        depth = 0

        def visit_If(self, node):
            self.depth += 1

        def leave_If(self, node):
            self.depth -= 1

        def visit_Call(self, call):
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "reuse_variables":
                found.append(self.depth == 0)

    method.visit(V())
    return any(found) or any(
        a.keyword is not None and a.keyword.value == "reuse" and
        (_is_name(a.value, "True") or dotted(a.value) and dotted(a.value).endswith("AUTO_REUSE"))
        for c in _calls(method) for a in c.args)


def method_network_source(program: ClassProgram, network: MethodNetwork, indent: str) -> str:
    """`class DCGANGenerator(object)`: __init__ stores the configuration the method read,
    `__call__` is the method."""
    method = next(m for m in program.node.body.body if isinstance(m, cst.FunctionDef)
                  and m.name.value == network.method)
    lines = [f"class {network.class_name}(object):"]
    if network.config:
        lines.append(f"{indent}def __init__(self{''.join(', ' + c for c in network.config)}):")
        lines += [f"{indent * 2}self.{c} = {c}" for c in network.config]
        lines.append("")
    call = method.with_changes(name=cst.Name("__call__"), leading_lines=[])
    text = cst.Module(body=[call], default_indent=indent).code
    lines += [indent + line if line.strip() else "" for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def _hoisted_graph(method: cst.FunctionDef, session: str, resolve
                   ) -> Tuple[cst.FunctionDef, List[cst.BaseStatement], bool]:
    """(the method without them, the statements at its start that only build graph ops:
    `d_optim = tf.train.AdamOptimizer(lr).minimize(self.d_loss)`, whether it ran the
    initializer); the initializer run (`tf.global_variables_initializer().run()`) is dropped:
    Keras made and initialised the variables. They become graph code of the program (DCGAN's
    `train(self, config)`)."""
    stmts = list(method.body.body) if isinstance(method.body, cst.IndentedBlock) else []
    start = 1 if stmts and _is_docstring(stmts[0]) else 0
    params = {p.name.value for p in method.params.params}
    hoisted: List[cst.BaseStatement] = []
    index = start
    initializes = False
    for stmt in stmts[start:]:
        if not isinstance(stmt, cst.SimpleStatementLine) or session in names_read(stmt) or \
                _stored_attrs([stmt]):
            break
        if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) and \
                _default_initializer_run(stmt.body[0].value, resolve):
            index += 1
            initializes = True
            continue
        # Ops it binds (`d_optim = ...minimize(...)`); a bare call (`tf.logging.info(...)`)
        # does something on each call.
        if not (len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)) or not any(
                (resolve(c.func) or "").startswith("tensorflow.") for c in _calls(stmt)):
            break
        hoisted.append(stmt)
        index += 1
    if index == start:
        return method, [], False
    rest = stmts[index:]
    bound = bound_names(cst.Module(body=hoisted))
    local = bound_names(cst.Module(body=rest)) | \
        {n for n in bound_names_in_order(method) if n not in bound}
    rebound = sorted(bound & bound_names(cst.Module(body=rest)))
    if rebound:
        raise Unmappable(f"`{method.name.value}` builds `{rebound[0]}` before its Session runs "
                         "and binds it again after")
    read = set().union(*[names_read(s) for s in hoisted]) if hoisted else set()
    late = sorted((read & local) - params - bound)
    if late:
        raise Unmappable(f"`{method.name.value}` builds graph ops from `{late[0]}`")
    body = [*stmts[:start], *rest] or [cst.SimpleStatementLine([cst.Pass()])]
    return method.with_changes(body=method.body.with_changes(body=body)), hoisted, initializes


def _default_initializer_run(expr, resolve) -> bool:
    """`tf.global_variables_initializer().run()` (the default Session)."""
    return isinstance(expr, cst.Call) and not expr.args and \
        isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "run" and \
        isinstance(expr.func.value, cst.Call) and not expr.func.value.args and \
        resolve(expr.func.value.func) in _INITIALIZERS


def _forwarding(method: cst.FunctionDef, known: Dict[str, SessionMethod]
                ) -> Optional[SessionMethod]:
    """The method as one that only hands a Session parameter on to Session methods of the
    class (`self.train_step(sess, x, y)`), or None."""
    params = [p.name.value for p in method.params.params[1:]]
    for param in params:
        uses = [n for n in name_reads(method) if n.value == param]
        handed = 0
        for call in _calls(method):
            if isinstance(call.func, cst.Attribute) and _is_name(call.func.value, "self") and \
                    call.func.attr.value in known and known[call.func.attr.value].passed:
                target = known[call.func.attr.value]
                arg = next((a for a in call.args if _is_session_arg(a, target, call.args)), None)
                if arg is not None and _is_name(arg.value, param):
                    handed += 1
        if handed and len(uses) == handed + 1:  # + the parameter itself
            return SessionMethod(method.name.value, method, param, params.index(param),
                                 [p for p in params if p != param], forwarding=True)
    return None


_OWN_SESSION = "_tfm_own_session"


def _own_session(graph, resolve) -> Tuple[List[cst.BaseStatement], Optional[str]]:
    """(the graph without `self.sess = tf.Session(...)` and `self.sess.run(initializer)`, the
    attribute) when __init__ opens the Session itself (common in RL code)."""
    attr = None
    kept = []
    for stmt in graph:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and \
            len(stmt.body) == 1 else None
        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call) and \
                resolve(small.value.func) in _SESSIONS:
            target = small.targets[0].target if len(small.targets) == 1 else None
            if not (isinstance(target, cst.Attribute) and _is_name(target.value, "self")):
                raise Unmappable("__init__ opens a Session it does not keep on `self`")
            if attr is not None:
                raise Unmappable("__init__ opens two Sessions")
            if any(a.keyword is None or a.keyword.value != "config" for a in small.value.args):
                raise Unmappable("__init__ opens its Session with a target or graph")
            attr = target.attr.value
            continue
        if attr is not None and isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "run" and \
                    dotted(call.func.value) == f"self.{attr}" and len(call.args) == 1 and \
                    isinstance(call.args[0].value, cst.Call) and \
                    resolve(call.args[0].value.func) in _INITIALIZERS:
                continue  # Keras creates and initialises its variables itself
        kept.append(stmt)
    return kept, attr


def _with_session_param(method: cst.FunctionDef, attr: str) -> cst.FunctionDef:
    """The method with `self.<attr>` read as a parameter `_tfm_own_session` (first after
    `self`: the others may have defaults)."""

    class T(cst.CSTTransformer):
        def leave_Attribute(self, original, updated):
            if _is_name(original.value, "self") and original.attr.value == attr:
                return cst.Name(_OWN_SESSION)
            return updated

    params = list(method.params.params)
    params.insert(1, cst.Param(cst.Name(_OWN_SESSION),
                               comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))))
    if len(params) == 2:
        params[1] = params[1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    params[0] = params[0].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    method = method.visit(T())
    return method.with_changes(params=method.params.with_changes(params=params))


def _rebound_after_store(stmts, attrs: Set[str]) -> Optional[str]:
    """A name of `attrs` bound as a plain local after `self.<name>` was stored."""
    stored: Set[str] = set()
    found: List[str] = []

    class V(cst.CSTVisitor):
        def _targets(self, target):
            if isinstance(target, cst.Attribute) and _is_name(target.value, "self"):
                stored.add(target.attr.value)
            elif isinstance(target, cst.Name):
                if target.value in stored and target.value in attrs:
                    found.append(target.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                for element in target.elements:
                    self._targets(element.value)

        def leave_Assign(self, node):  # after the value: `self.h = h` reads the local first
            for target in reversed(node.targets):
                self._targets(target.target)

        def visit_For(self, node):
            self._targets(node.target)

    for stmt in stmts:
        stmt.visit(V())
    return found[0] if found else None


def _session_param(method: cst.FunctionDef) -> Optional[str]:
    """The parameter the method calls `.run(...)` on."""
    params = [p.name.value for p in method.params.params[1:]]
    for call in _calls(method):
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "run" and \
                isinstance(call.func.value, cst.Name) and call.func.value.value in params:
            return call.func.value.value
        if _saver_use(call) in params:
            return _saver_use(call)
    return None


def _saver_use(call: cst.Call) -> Optional[str]:
    """`saver.save(sess, path)` / `saver.restore(sess, path)`: the Session's name."""
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("save", "restore") and \
            call.args and call.args[0].keyword is None and isinstance(call.args[0].value, cst.Name):
        return call.args[0].value.value
    return None


def _session_method(method, session, resolve, graph_attrs, config_attrs, methods) -> SessionMethod:
    name = method.name.value
    params = [p.name.value for p in method.params.params[1:]]
    for p in method.params.params[1:]:
        if p.default is not None and p.name.value == session:
            raise Unmappable(f"`{name}`'s Session parameter has a default")
    # The Session: only `sess.run(...)`.
    uses = [n for n in name_reads(method) if n.value == session]
    runs = [c for c in _calls(method) if isinstance(c.func, cst.Attribute)
            and _is_name(c.func.value, session) and c.func.attr.value == "run"
            or _saver_use(c) == session]
    if len(uses) != len(runs) + 1:  # + its parameter
        shown = "the class's Session" if session == _OWN_SESSION else f"its Session `{session}`"
        raise Unmappable(f"`{name}` uses {shown} for more than `.run(...)` and a Saver")
    for call in _calls(method):
        api = resolve(call.func) or ""
        if api.startswith("tensorflow."):
            raise Unmappable(f"`{name}` builds graph ops after __init__ (`{dotted(call.func)}`)")
    for attr, called in _self_reads(method):
        if called:
            raise Unmappable(f"`{name}` calls `self.{attr}`: the rewrite converts Session methods "
                             "that run the graph themselves")
        if attr == "":
            raise Unmappable(f"`{name}` passes `self` on")
        if attr not in graph_attrs | config_attrs:
            raise Unmappable(f"`{name}` reads `self.{attr}`, which __init__ does not set")
    body = _body(method)
    stored = _stored_attrs([method])
    if stored:
        raise Unmappable(f"`{name}` stores `self.{sorted(stored)[0]}`")
    for index, stmt in enumerate(body):
        if contains_return(stmt) and not (index == len(body) - 1 and _is_return(stmt)):
            raise Unmappable(f"`{name}` returns before its end")
    result = SessionMethod(name, method, session, params.index(session),
                           [p for p in params if p != session])

    class Runs(cst.CSTVisitor):
        def visit_Assign(self, small):
            if isinstance(small.value, cst.Call) and _is_run(small.value, session):
                for target in small.targets:
                    result.fetch_targets.update(target_names(target.target))

        def visit_Return(self, small):
            if isinstance(small.value, cst.Call) and _is_run(small.value, session):
                result.returns_run = True

    method.visit(Runs())
    return result


def _is_run(call: cst.Call, session: str) -> bool:
    return isinstance(call.func, cst.Attribute) and _is_name(call.func.value, session) and \
        call.func.attr.value == "run"


def _is_return(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
        isinstance(stmt.body[0], cst.Return)


def _is_super_init(stmt) -> bool:
    text = _code(stmt).strip()
    return text.startswith("super(") and text.endswith(".__init__()") or \
        text == "object.__init__(self)"


def _is_graph_code(stmt, resolve, methods) -> bool:
    for call in _calls(stmt):
        api = resolve(call.func) or ""
        if api.startswith(("tensorflow", "tf_slim", "keras")):
            return True
        if isinstance(call.func, cst.Attribute) and _is_name(call.func.value, "self"):
            return True
    return False


def _stored_attrs(stmts) -> Set[str]:
    found: Set[str] = set()

    class V(cst.CSTVisitor):
        def _target(self, target):
            if isinstance(target, cst.Attribute) and _is_name(target.value, "self"):
                found.add(target.attr.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                for element in target.elements:
                    self._target(element.value)

        def visit_AssignTarget(self, node):
            self._target(node.target)

        def visit_AugAssign(self, node):
            self._target(node.target)

        def visit_AnnAssign(self, node):
            self._target(node.target)

        def visit_For(self, node):
            self._target(node.target)

    for stmt in stmts:
        stmt.visit(V())
    return found


def _reads_attrs(stmt, attrs: Set[str]) -> bool:
    return any(a in attrs for a, _ in _self_reads(stmt))


def _self_alias(stmt) -> bool:
    """`x = x` (what `self.x = x` became)."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
            isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1:
        target, value = stmt.body[0].targets[0].target, stmt.body[0].value
        return isinstance(target, cst.Name) and isinstance(value, cst.Name) and \
            target.value == value.value
    return False


# -- the network ------------------------------------------------------------------------------------
@dataclass
class Network:
    class_name: str
    start: int  # graph[start:end] is the network
    end: int
    inputs: List[str]
    outputs: List[str]
    config: List[str]  # attributes / __init__ parameters it reads, its constructor's
    config_attrs: Set[str] = field(default_factory=set)  # those read as `self.<attr>`
    source: str = ""


def _builds_layers(stmt, resolve) -> bool:
    return any(resolve(c.func) in LAYER_APIS | LAYER_CLASS_APIS for c in _calls(stmt))


def find_network(program: ClassProgram, resolve, taken: Set[str], indent: str) -> Optional[Network]:
    graph = program.graph
    building = [i for i, s in enumerate(graph) if _builds_layers(s, resolve)]
    if not building:
        return None  # it calls model functions of the module: the model rewrite converts them
    if program.method_networks:
        raise Unmappable("its __init__ builds layers itself and also calls the layer-building "
                         f"method `{program.method_networks[0].method}`")
    start, end = building[0], building[-1] + 1
    region = graph[start:end]
    before = bound_names(cst.Module(body=graph[:start]))
    inside = bound_names(cst.Module(body=region))
    read = set().union(*[names_read(s) for s in region])
    inputs = [n for n in _ordered_reads(region) if n in before and n not in program.init_params]
    later = set().union(*[names_read(s) for s in graph[end:]]) if graph[end:] else set()
    fetched = set()
    for method in program.methods:
        fetched |= {a for a, _ in _self_reads(method.node) if a in program.graph_attrs}
    outputs = [n for n in _bound_in_order(region) if n in inside and (n in later or n in fetched)]
    if not inputs:
        raise Unmappable("its layers read no placeholder")
    if not outputs:
        raise Unmappable("nothing its layers compute is used")
    params_read = sorted(read & set(program.init_params) - before)
    attrs_read = sorted({a for s in region for a, _ in _self_reads(s)})
    both = sorted(set(params_read) & set(attrs_read))
    if both:
        raise Unmappable(f"its layers read both `{both[0]}` and `self.{both[0]}`")
    name = program.name + "Network"
    while name in taken:
        name += "_"
    config = attrs_read + params_read
    ind = indent
    lines = [f"class {name}(object):"]
    if config:  # no configuration: no __init__ (the model rewrite writes Keras's own)
        lines.append(f"{ind}def __init__(self{''.join(', ' + c for c in config)}):")
        lines += [f"{ind * 2}self.{c} = {c}" for c in config]
        lines.append("")
    lines.append(f"{ind}def __call__(self, {', '.join(inputs)}):")
    body = cst.Module(body=[s.with_changes(leading_lines=[l for l in s.leading_lines
                                                          if l.comment is not None])
                            for s in region], default_indent=indent)
    body = _rename_to_self(body, set(params_read))
    for line in body.code.splitlines():
        lines.append(ind * 2 + line if line.strip() else "")
    lines.append(f"{ind * 2}return {', '.join(outputs)}")
    return Network(name, start, end, inputs, outputs, config, set(attrs_read),
                   "\n".join(lines) + "\n")


def _ordered_reads(stmts) -> List[str]:
    """The names the statements read, in source order."""
    seen: List[str] = []
    for stmt in stmts:
        read = names_read(stmt)
        for node in name_reads(stmt):
            if node.value in read and node.value not in seen:
                seen.append(node.value)
    return seen


def _bound_in_order(stmts) -> List[str]:
    out: List[str] = []
    for stmt in stmts:
        for n in bound_names_in_order(stmt):
            if n not in out:
                out.append(n)
    return out


class _ToSelf(cst.CSTTransformer):
    """`<name>` -> `self.<name>` for the given variable names (reads and assignment targets)."""

    def __init__(self, names: Set[str]):
        super().__init__()
        self.names = names

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword) if original.keyword else updated

    def leave_Name(self, original, updated):
        if original.value in self.names:
            return cst.Attribute(value=cst.Name("self"), attr=cst.Name(original.value))
        return updated


def _rename_to_self(module, names: Set[str]):
    return module.visit(_ToSelf(names)) if names else module


# -- the pseudo Session program ---------------------------------------------------------------------
def _prefix(method: str, name: str) -> str:
    return f"_tfm_{method}_{name}"


def pseudo_program(program: ClassProgram, network: Optional[Network], tf_alias: str,
                   indent: str) -> Tuple[str, str]:
    """(the pseudo-program's name, its source)."""
    name = PSEUDO_PREFIX + program.name
    params = ["self", *program.init_params]
    body: List[str] = []
    graph = program.graph
    taken = bound_names(cst.Module(body=graph)) | program.graph_attrs | set(program.init_params)
    for made in program.method_networks:  # made once: `reuse=True` calls the same object
        args = ", ".join(f"self.{c}" for c in made.config)
        body.append(f"{made.method} = {made.class_name}({args})")
    if network is not None:
        var = "network"
        while var in taken:
            var += "_"
        args = [f"self.{c}" if c in network.config_attrs else c for c in network.config]
        body.append(f"{var} = {network.class_name}({', '.join(args)})")
        body += [_code(s).strip("\n") for s in _clean(graph[:network.start])]
        body.append(f"{', '.join(network.outputs)} = {var}({', '.join(network.inputs)})")
        body += [_code(s).strip("\n") for s in _clean(graph[network.end:])]
    else:
        body += [_code(s).strip("\n") for s in _clean(graph)]
    for method in program.methods:  # graph ops a method built before its Session ran
        mapping = {n: _prefix(method.name, n) for n in
                   (set(method.params) | bound_names(method.node)) if n != "self"}
        for stmt in _clean(method.hoisted):
            stmt = _rename(stmt, mapping).visit(_SelfAttributes(program.graph_attrs))
            body.append(_code(stmt).strip("\n"))
    body.append(f"with {tf_alias}.Session() as {SESSION}:")
    session_body = [f"{SESSION}.run({tf_alias}.global_variables_initializer())"]
    for method in program.methods:
        mapping = {n: _prefix(method.name, n) for n in
                   (set(method.params) | bound_names(method.node)) if n != "self"}
        mapping[method.session_param] = SESSION
        params += [mapping[p] for p in method.params]
        session_body.append(f"{SECTION} = {method.name!r}")
        for stmt in _body(method.node):
            stmt = _rename(stmt, mapping)  # first: the graph's tensors take plain names
            stmt = stmt.visit(_SelfAttributes(program.graph_attrs))
            if _is_return(stmt):
                value = stmt.body[0].value
                if value is None:
                    continue
                stmt = cst.SimpleStatementLine(body=[cst.Assign(
                    targets=[cst.AssignTarget(cst.Name(RETURN))], value=value)],
                    leading_lines=stmt.leading_lines)
            session_body.append(_code(stmt).strip("\n"))
    for text in session_body:
        body += [indent + line if line.strip() else "" for line in text.split("\n")]
    lines = [f"def {name}({', '.join(params)}):"]
    for text in body:
        lines += [indent + line if line.strip() else "" for line in text.split("\n")]
    return name, "\n".join(lines) + "\n"


def _clean(stmts):
    """Statements without the blank lines above them (comments kept)."""
    return [s.with_changes(leading_lines=[l for l in s.leading_lines if l.comment is not None])
            for s in stmts]


# -- callers ---------------------------------------------------------------------------------------
class _CallerRewriter(cst.CSTTransformer):
    """In one function: `obj.method(sess, ...)` loses the Session, the Session block is
    unwrapped, `sess.run(initializer)` goes, TF1 spellings TF2 renamed are renamed."""

    def __init__(self, obj_names: Set[str], methods: Dict[str, SessionMethod], sessions: Set[str],
                 resolve, tf_alias: str, constructor=(None, None)):
        super().__init__()
        self.objs, self.methods, self.sessions = obj_names, methods, sessions
        self.resolve, self.tf = resolve, tf_alias
        self.cls, self.session_init = constructor  # `DCGAN(sess)` loses the Session too

    def leave_Call(self, original, updated):
        func = original.func
        if self.session_init is not None and _is_name(func, self.cls):
            dropped = _session_init_arg(original, self.session_init)
            args = [a for o, a in zip(original.args, updated.args) if o is not dropped]
            if args:
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(args=args)
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and \
                func.value.value in self.objs and func.attr.value in self.methods and \
                self.methods[func.attr.value].passed:
            method = self.methods[func.attr.value]
            args = [a for a in updated.args if not _is_session_arg(a, method, updated.args)]
            if args:
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(args=args)
        api = self.resolve(func)
        if api in _CALLER_RENAMES:
            return updated.with_changes(
                func=cst.parse_expression(f"{self.tf}.{_CALLER_RENAMES[api]}"))
        return updated

    def leave_With(self, original, updated):
        if _session_with(original, self.resolve, self.sessions):
            body = list(updated.body.body)
            if not body:
                return cst.RemoveFromParent()
            body[0] = body[0].with_changes(
                leading_lines=[*updated.leading_lines, *body[0].leading_lines])
            return cst.FlattenSentinel(body)
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        if len(original.body) == 1 and isinstance(original.body[0], cst.Expr) and \
                _initializer_run(original.body[0].value, self.resolve, self.sessions):
            return cst.RemoveFromParent()
        return updated


def _session_init_arg(call: cst.Call, session_init: Tuple[str, int]) -> Optional[cst.Arg]:
    """The argument of `Model(sess, ...)` that is the Session __init__ keeps."""
    param, position = session_init
    keyword = next((a for a in call.args if a.keyword is not None and a.keyword.value == param),
                   None)
    positional = [a for a in call.args if a.keyword is None]
    return keyword or (positional[position] if position < len(positional) else None)


def _is_session_arg(arg: cst.Arg, method: SessionMethod, args) -> bool:
    if arg.keyword is not None:
        return arg.keyword.value == method.session_param
    positional = [a for a in args if a.keyword is None]
    return positional.index(arg) == method.session_index if arg in positional else False


def _session_with(stmt: cst.With, resolve, sessions: Set[str]) -> bool:
    if len(stmt.items) != 1 or stmt.items[0].asname is None:
        return False
    item = stmt.items[0]
    return isinstance(item.item, cst.Call) and resolve(item.item.func) in _SESSIONS and \
        isinstance(item.asname.name, cst.Name) and item.asname.name.value in sessions


def _initializer_run(expr, resolve, sessions: Set[str]) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
        expr.func.attr.value == "run" and isinstance(expr.func.value, cst.Name) and \
        expr.func.value.value in sessions and len(expr.args) == 1 and \
        isinstance(expr.args[0].value, cst.Call) and \
        resolve(expr.args[0].value.func) in _INITIALIZERS and not expr.args[0].value.args


def rewrite_callers(module: cst.Module, program: ClassProgram, resolve, tf_alias: str
                    ) -> cst.Module:
    """The module with the class's callers rewritten, or Unmappable (nothing may stay TF1 code
    that uses the object: its Session methods no longer take a Session)."""
    name = program.name
    methods = {m.name: m for m in [*program.methods, *program.forwarding]}
    readable = program.config_attrs | {m.name.value for m in program.plain_methods}
    body = []
    for stmt in module.body:
        if stmt is program.node or not any(n.value == name for n in name_reads(stmt)):
            body.append(stmt)
            continue
        if isinstance(stmt, cst.FunctionDef):
            fname = f"`{stmt.name.value}`"
        elif _is_if_main(stmt):
            fname = 'the `if __name__ == "__main__":` block'
        else:
            raise Unmappable(f"module-level code uses `{name}`")
        objs: Set[str] = set()
        for node in _statements(stmt):
            if isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1 and \
                    isinstance(node.body[0], cst.Assign) and isinstance(node.body[0].value, cst.Call) \
                    and _is_name(node.body[0].value.func, name):
                targets = node.body[0].targets
                if len(targets) != 1 or not isinstance(targets[0].target, cst.Name):
                    raise Unmappable(f"{fname} stores its `{name}` object other than in a name")
                objs.add(targets[0].target.value)
        class_uses = [n for n in name_reads(stmt) if n.value == name]
        if len(class_uses) != len(objs) or not objs:
            raise Unmappable(f"{fname} uses the class `{name}` other than to make an object")
        sessions: Set[str] = set()
        calls: List[cst.Call] = []
        for call in _calls(stmt):
            if program.session_init is not None and _is_name(call.func, name):
                arg = _session_init_arg(call, program.session_init)
                if arg is None or not isinstance(arg.value, cst.Name) or \
                        any(a.star for a in call.args):
                    raise Unmappable(f"{fname} makes its `{name}` object without a Session name")
                sessions.add(arg.value.value)
                calls.append(call)
        for call in _calls(stmt):
            func = call.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and \
                    func.value.value in objs and func.attr.value in methods:
                method = methods[func.attr.value]
                if not method.passed:
                    continue  # the class opened its Session itself
                arg = next((a for a in call.args if _is_session_arg(a, method, call.args)), None)
                if arg is None or not isinstance(arg.value, cst.Name) or any(a.star for a in call.args):
                    raise Unmappable(f"{fname} calls `{func.attr.value}` without a Session name")
                sessions.add(arg.value.value)
                calls.append(call)
        obj_uses = _object_uses(stmt, objs)
        for attr in obj_uses:
            if attr is None:
                raise Unmappable(f"{fname} passes its `{name}` object on")
            if attr not in methods and attr not in readable:
                raise Unmappable(f"{fname} reads `.{attr}` of its `{name}` object, a TF1 graph "
                                 "value")
        # The Session: opened by `with`, used only for the methods and the initializer.
        withs = [w for w in _statements(stmt) if isinstance(w, cst.With)
                 and _session_with(w, resolve, sessions)]
        bound_by_with = {w.items[0].asname.name.value for w in withs}
        if sessions and (bound_by_with != sessions or len(withs) != 1):
            # A second Session ran the initializer again: the weights started over, which an
            # object that keeps its Keras weights does not do.
            raise Unmappable(f"{fname} opens its Session other than with one "
                             "`with tf.Session() as sess:` (each Session initialised the "
                             "variables again)")
        if withs and _in_loop(stmt, withs[0]):
            raise Unmappable(f"{fname} opens its Session in a loop (each one initialised the "
                             "variables again)")
        for w in withs:
            session_args = w.items[0].item.args
            if any(a.keyword is None or a.keyword.value != "config" for a in session_args):
                raise Unmappable(f"{fname} opens its Session with a target or graph")
        session_uses = len([n for n in name_reads(stmt) if n.value in sessions])
        init_runs = [s for s in _statements(stmt) if isinstance(s, cst.SimpleStatementLine)
                     and len(s.body) == 1 and isinstance(s.body[0], cst.Expr)
                     and _initializer_run(s.body[0].value, resolve, sessions)]
        if session_uses != len(calls) + len(init_runs) + len(withs):
            raise Unmappable(f"{fname} uses its Session for more than the methods of `{name}`")
        new = stmt.visit(_CallerRewriter(objs, methods, sessions, resolve, tf_alias,
                                         (name, program.session_init)))
        for call in _calls(new):
            api = resolve(call.func) or ""
            if api.startswith("tensorflow.") and not exists_in_tf2(api):
                raise Unmappable(f"{fname} keeps `{dotted(call.func)}`, which TF2 does not have")
            if api in ("tensorflow.Graph", "tensorflow.Session"):
                raise Unmappable(f"{fname} keeps a `{dotted(call.func)}`")
        body.append(new)
    return module.with_changes(body=body)


def _is_if_main(stmt) -> bool:
    if not isinstance(stmt, cst.If) or stmt.orelse is not None:
        return False
    test = stmt.test
    return isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and \
        isinstance(test.comparisons[0].operator, cst.Equal) and \
        _is_name(test.left, "__name__") and \
        isinstance(test.comparisons[0].comparator, cst.SimpleString) and \
        test.comparisons[0].comparator.evaluated_value == "__main__"


def _in_loop(func: cst.FunctionDef, target: cst.CSTNode) -> bool:
    found: List[bool] = []

    class V(cst.CSTVisitor):
        depth = 0

        def on_visit(self, node):
            if node is target:
                found.append(self.depth > 0)
            if isinstance(node, (cst.For, cst.While)):
                self.depth += 1
            return True

        def on_leave(self, node):
            if isinstance(node, (cst.For, cst.While)):
                self.depth -= 1

    func.visit(V())
    return any(found)


def _statements(node) -> List[cst.CSTNode]:
    found: List[cst.CSTNode] = []

    class V(cst.CSTVisitor):
        def on_visit(self, n):
            if isinstance(n, cst.BaseStatement):
                found.append(n)
            return True

    node.visit(V())
    return found


def _object_uses(node, objs: Set[str]) -> List[Optional[str]]:
    """For each read of an object name: the attribute read on it, None for a bare use."""
    uses: List[Optional[str]] = []

    class V(cst.CSTVisitor):
        def visit_Attribute(self, attribute):
            if isinstance(attribute.value, cst.Name) and attribute.value.value in objs:
                uses.append(attribute.attr.value)
                return False
            return True

        def visit_AssignTarget(self, target):
            if isinstance(target.target, cst.Name) and target.target.value in objs:
                return False
            return True

        def visit_Name(self, name):
            if name.value in objs:
                uses.append(None)

    node.visit(V())
    return uses


# -- putting the class back together ----------------------------------------------------------------
def _section_marker(stmt) -> Optional[str]:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
            isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 and \
            _is_name(stmt.body[0].targets[0].target, SECTION) and \
            isinstance(stmt.body[0].value, cst.SimpleString):
        return stmt.body[0].value.evaluated_value
    return None


def resugar(module: cst.Module, program: ClassProgram, pseudo: str,
            generated: Set[str] = frozenset()) -> cst.Module:
    """The converted module with the pseudo-program turned back into the class (`generated`:
    the module-level functions the rewrite added, whose results are tensors)."""
    index = next((i for i, s in enumerate(module.body) if isinstance(s, cst.FunctionDef)
                  and s.name.value == pseudo), None)
    if index is None:
        raise Unmappable("the training-loop rewrite dropped its program")
    func = module.body[index]
    pre: List[cst.BaseStatement] = []
    sections: Dict[str, List[cst.BaseStatement]] = {}
    current: Optional[List[cst.BaseStatement]] = pre
    for stmt in func.body.body:
        marker = _section_marker(stmt)
        if marker is not None:
            current = sections.setdefault(marker, [])
            continue
        current.append(stmt)
    if set(sections) != {m.name for m in program.methods}:
        raise Unmappable("the training-loop rewrite merged its methods")
    pre = _to_methods(pre, sections, program)
    pre_module = cst.Module(body=pre)
    if any(n.startswith("_tfm_") for n in names_read(pre_module)) or SESSION in _code(func):
        raise Unmappable("its converted __init__ still uses a method's values or the Session")
    section_reads = set().union(*[names_read(cst.Module(body=s)) for s in sections.values()])
    shared = bound_names(pre_module) & section_reads
    # A layer-building method's name is its network object's now (`self.generator`).
    members = {m.name.value for m in program.node.body.body if isinstance(m, cst.FunctionDef)} \
        - {made.method for made in program.method_networks}
    # The graph's own attributes are gone from the class: their names are free again.
    clash = sorted(shared & (program.config_attrs | members))
    if clash:
        raise Unmappable(f"its converted program needs `self.{clash[0]}`, which the class "
                         "already uses")
    if shared & set(program.init_params):
        raise Unmappable("its converted program rebinds a parameter of __init__")
    pre = [s.visit(_ToSelf(shared)) for s in pre]
    init_body = list(program.config) + pre
    init_stmts = list(program.init.body.body)
    if init_stmts and _is_docstring(init_stmts[0]):
        init_body.insert(0, init_stmts[0])
    init_body = [s.with_changes(leading_lines=[]) if i == 0 else s for i, s in enumerate(init_body)]
    new_init = program.init.with_changes(body=program.init.body.with_changes(
        body=init_body or [cst.SimpleStatementLine([cst.Pass()])]))
    if program.session_init is not None:  # the caller's Session is gone
        params = [p for p in new_init.params.params if p.name.value != program.session_init[0]]
        params[-1] = params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        new_init = new_init.with_changes(params=new_init.params.with_changes(params=params))
    by_name = {m.name: m for m in program.methods}
    forwarding = {m.name: m for m in program.forwarding}
    out_members = [program.docstring] if program.docstring is not None else []
    build_methods = _build_method_names(program)
    first = True
    for member in program.node.body.body:
        if not isinstance(member, cst.FunctionDef):
            continue
        mname = member.name.value
        if mname == "__init__":
            new = new_init
        elif mname in by_name:
            new = _method(member, by_name[mname], sections[mname], shared, generated)
        elif mname in forwarding:
            new = _forwarded(member, forwarding[mname], {**by_name, **forwarding})
        elif mname in build_methods:
            continue
        else:
            new = member
        if first and program.docstring is None:
            new = new.with_changes(leading_lines=member.leading_lines)
        first = False
        out_members.append(new)
    new_cls = program.node.with_changes(body=program.node.body.with_changes(body=out_members),
                                        leading_lines=func.leading_lines)
    return module.with_changes(body=[*module.body[:index], new_cls, *module.body[index + 1:]])


def _to_methods(pre: List[cst.BaseStatement], sections: Dict[str, List[cst.BaseStatement]],
                program: ClassProgram) -> List[cst.BaseStatement]:
    """What the converted __init__ would make from a method's parameters (the optimizer of
    `tf.train.AdamOptimizer(lr)` built in `train(self, lr)`), and what uses it, goes to the
    start of that method: made on each call, from that call's values."""
    kept: List[cst.BaseStatement] = []
    moved: Dict[str, List[cst.BaseStatement]] = {}
    follows: Dict[str, Set[str]] = {}
    for stmt in pre:
        read = names_read(stmt)
        owners = {m.name for m in program.methods
                  if read & {_prefix(m.name, p) for p in m.params}}
        owners |= {m for m, names in follows.items() if read & names}
        if not owners:
            kept.append(stmt)
            continue
        if len(owners) > 1:
            raise Unmappable("its converted program builds one value from the parameters of "
                             "two methods")
        owner = owners.pop()
        moved.setdefault(owner, []).append(stmt)
        follows.setdefault(owner, set()).update(bound_names(stmt))
    later = set().union(*[names_read(s) for s in kept]) if kept else set()
    for owner, names in follows.items():
        used = sorted(names & later)
        if used:
            raise Unmappable(f"its converted __init__ needs `{used[0]}`, which `{owner}` makes "
                             "from its parameters")
        for other, stmts in sections.items():
            if other != owner and names & names_read(cst.Module(body=stmts)):
                raise Unmappable(f"`{other}` uses what `{owner}` makes from its parameters")
        sections[owner][:0] = _clean(moved[owner])
    return kept


def _network_docstring(module: cst.Module, plan: _Plan) -> cst.Module:
    """The network class says where it came from (the model rewrite's docstring names the
    pseudo network class, which never existed in the TF1 source)."""
    name = plan.network.class_name
    text = (f'"""The layers of `{plan.program.name}`: migrated by tf-migrate from the TF1 graph '
            f'its __init__ built.\n\n{module.default_indent}Each layer is created once here and '
            f'called in `call`.\n{module.default_indent}"""\n')
    return _with_docstring(module, name, text)


def _method_network_docstring(module: cst.Module, plan: _Plan, made: MethodNetwork
                              ) -> cst.Module:
    text = (f'"""The layers `{plan.program.name}.{made.method}` built: migrated by tf-migrate '
            f'from that TF1 method.\n\n{module.default_indent}Each layer is created once here '
            f'and called in `call`; the class makes\n{module.default_indent}one object '
            f'(`self.{made.method}`), so each call shares its weights (TF1 `reuse`).\n'
            f'{module.default_indent}"""\n')
    return _with_docstring(module, made.class_name, text)


def _with_docstring(module: cst.Module, name: str, text: str) -> cst.Module:
    body = []
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef) and stmt.name.value == name and \
                isinstance(stmt.body, cst.IndentedBlock) and stmt.body.body and \
                _is_docstring(stmt.body.body[0]):
            members = [cst.parse_statement(text), *stmt.body.body[1:]]
            stmt = stmt.with_changes(body=stmt.body.with_changes(body=members))
        body.append(stmt)
    return module.with_changes(body=body)


def _build_method_names(program: ClassProgram) -> Set[str]:
    kept = {m.name for m in [*program.methods, *program.forwarding]} | \
        {m.name.value for m in program.plain_methods}
    return {m.name.value for m in program.node.body.body
            if isinstance(m, cst.FunctionDef) and m.name.value not in kept | {"__init__"}}


def _method(member: cst.FunctionDef, method: SessionMethod, stmts, shared: Set[str],
            generated: Set[str]):
    back = {_prefix(method.name, n): n for n in
            (set(method.params) | bound_names(method.node)) if n != "self"}
    def computed(value) -> bool:
        """A call of what the rewrite made: a train step or compute helper, or the network."""
        return isinstance(value, cst.Call) and (
            isinstance(value.func, cst.Name) and value.func.value in generated
            or isinstance(value.func, cst.Attribute) and _is_name(value.func.value, "self")
            and value.func.attr.value in shared)

    class Numpy(cst.CSTTransformer):
        """`loss = train_step(...)` where `loss` was a `sess.run` result -> `.numpy()`."""

        def leave_Assign(self, original, updated):
            if len(updated.targets) == 1 and isinstance(updated.targets[0].target, cst.Name) \
                    and updated.targets[0].target.value in method.fetch_targets \
                    and computed(updated.value):
                return updated.with_changes(value=_numpy(updated.value))
            return updated

    out = []
    for stmt in stmts:
        stmt = _rename(stmt.visit(_ToSelf(shared)), back).visit(Numpy())
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1 and \
                _is_name(stmt.body[0].targets[0].target, RETURN):
            value = stmt.body[0].value
            if method.returns_run and computed(value):
                value = _numpy(value)
            stmt = stmt.with_changes(body=[cst.Return(value=value)])
        out.append(stmt)
    if any(n.startswith("_tfm_") for s in out for n in names_read(s) | bound_names(s)):
        raise Unmappable(f"the converted `{method.name}` still uses the rewrite's names")
    params = [p for p in member.params.params if p.name.value != method.session_param]
    params[-1] = params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    body = out or [cst.SimpleStatementLine([cst.Pass()])]
    stmts_all = list(member.body.body)
    if stmts_all and _is_docstring(stmts_all[0]):
        body = [stmts_all[0], *body]
    return member.with_changes(params=member.params.with_changes(params=params),
                               body=member.body.with_changes(body=body))


def _forwarded(member: cst.FunctionDef, method: SessionMethod, methods: Dict[str, SessionMethod]):
    """A method that handed its Session on: without the parameter, its calls without it."""
    body = member.body.visit(_CallerRewriter({"self"}, methods, {method.session_param},
                                             lambda node: None, "tf"))
    if method.session_param in names_read(body):
        raise Unmappable(f"the converted `{method.name}` still uses its Session")
    params = [p for p in member.params.params if p.name.value != method.session_param]
    params[-1] = params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return member.with_changes(params=member.params.with_changes(params=params), body=body)


def _numpy(call: cst.Call) -> cst.Call:
    return cst.Call(func=cst.Attribute(value=call, attr=cst.Name("numpy")))


# -- the whole file ---------------------------------------------------------------------------------
@dataclass
class _Plan:
    program: ClassProgram
    network: Optional[Network]
    pseudo: str


def migrate_class_programs(text: str, path: str, run: Callable[[str], Outcome], index=None,
                           module_name: Optional[str] = None) -> Optional[Outcome]:
    """The outcome of migrating `text` when it has class programs; None when it has none (the
    caller migrates it as usual). `run(text)` migrates one text with every rule; `index` (the
    run's tree index) says which classes other modules of the tree import."""
    if "placeholder" not in text or "class " not in text:
        return None
    try:
        module = cst.parse_module(text)
        tree = ast.parse(text)
    except (SyntaxError, ValueError, cst.ParserSyntaxError):
        return None
    resolver = _import_resolver(tree)

    def resolve(node) -> Optional[str]:
        name = dotted(node)
        return resolver.resolve_dotted(name) if name else None

    held = _suppressed_classes(text, tree)
    candidates = [s for s in module.body if isinstance(s, cst.ClassDef) and _plain_class(s)
                  and builds_placeholders(s, resolve) and s.name.value not in held]
    if not candidates:
        return None
    tf_alias = next((local for local, bound in resolver.bindings.items()
                     if bound == "tensorflow"), "tf")
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    refused: Dict[str, str] = {}
    programs: Dict[str, ClassProgram] = {}
    imported = set(index.classes.get(module_name, ())) if index is not None and module_name else set()
    for cls in candidates:
        try:
            if cls.name.value in imported:
                # Their callers there would keep passing a Session to the methods.
                raise Unmappable("another module of the tree imports this module and may use it "
                                 "with a Session")
            programs[cls.name.value] = analyse(cls, resolve, _top_level_names(tree))
        except Unmappable as exc:
            refused[cls.name.value] = str(exc)
    while programs:
        try:
            desugared, plans = _desugar(module, programs, resolve, tf_alias, taken,
                                        module.default_indent)
        except _Refused as exc:
            refused[exc.name] = exc.reason
            del programs[exc.name]
            continue
        new_text, findings = run(desugared.code)
        failed = _failures(plans, findings)
        if not failed and new_text is not None:
            try:
                top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
                final = _unclash(cst.parse_module(new_text), plans, top)
                generated = {s.name.value for s in final.body if isinstance(s, cst.FunctionDef)
                             and s.name.value not in top}
                final = _plain_generated(final, plans, generated)
                for plan in plans.values():
                    final = resugar(final, plan.program, plan.pseudo, generated)
                    if plan.network is not None:
                        final = _network_docstring(final, plan)
                    for made in plan.program.method_networks:
                        final = _method_network_docstring(final, plan, made)
                final_text = final.code
                ast.parse(final_text)
            except Unmappable as exc:
                failed = {name: str(exc) for name in plans}
            else:
                to_original = _line_map(desugared.code, text)
                mapped = [_remap(f, to_original, plans) for f in findings]
                mapped += [_class_finding(path, plan, tree, mapped) for plan in plans.values()]
                return _with_refusals(final_text, sorted(set(mapped)), refused, text, path,
                                      tree)
        elif not failed:
            failed = {name: "the rules changed nothing" for name in plans}
        for name, reason in failed.items():
            refused[name] = reason
            programs.pop(name, None)
    new_text, findings = run(text)
    return _with_refusals(new_text, findings, refused, text, path, tree)


def _unclash(module: cst.Module, plans: Dict[str, _Plan], taken: Set[str]) -> cst.Module:
    """A generated module-level function named like a method of the class (the train step
    `train_step` next to the method `train_step`) is renamed `<name>_fn`: the method's body
    calls it, and one name for both reads as recursion."""
    methods = {m.name for plan in plans.values() for m in plan.program.methods}
    defined = {s.name.value for s in module.body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}
    mapping: Dict[str, str] = {}
    for name in sorted((methods & defined) - taken):
        new = name + "_fn"
        while new in defined or new in taken:
            new += "_"
        mapping[name] = new

    class Rename(_Rename):
        def leave_FunctionDef(self, original, updated):
            new = self.mapping.get(original.name.value)
            return updated.with_changes(name=cst.Name(new)) if new else updated

    return module.visit(Rename(mapping)) if mapping else module


def _plain_generated(module: cst.Module, plans: Dict[str, _Plan], generated: Set[str]
                     ) -> cst.Module:
    """The functions the rewrite generated (`make_d_optim_optimizer(_tfm_train_lr)`, from
    an optimizer a method built from its parameter `lr`) with the method's own names."""
    back: Dict[str, str] = {}
    for plan in plans.values():
        for method in plan.program.methods:
            for n in set(method.params) | bound_names(method.node):
                back[_prefix(method.name, n)] = n
    pseudo = {plan.pseudo for plan in plans.values()}
    body = []
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in generated - pseudo:
            used = {n.value for n in name_reads(stmt)} | \
                {p.name.value for p in stmt.params.params}
            mapping = {old: new for old, new in back.items() if old in used and new not in used}
            if len(set(mapping.values())) == len(mapping):
                stmt = _rename(stmt, mapping)
        body.append(stmt)
    return module.with_changes(body=body)


class _Refused(Exception):
    def __init__(self, name: str, reason: str):
        super().__init__(reason)
        self.name, self.reason = name, reason


def _desugar(module: cst.Module, programs: Dict[str, ClassProgram], resolve, tf_alias: str,
             taken: Set[str], indent: str) -> Tuple[cst.Module, Dict[str, _Plan]]:
    plans: Dict[str, _Plan] = {}
    for name, program in programs.items():
        try:
            network = find_network(program, resolve, taken, indent)
            module = rewrite_callers(module, program, resolve, tf_alias)
        except Unmappable as exc:
            raise _Refused(name, str(exc)) from None
        pseudo, source = pseudo_program(program, network, tf_alias, indent)
        if pseudo in taken:
            raise _Refused(name, f"the module already binds `{pseudo}`")
        made_taken = sorted({m.class_name for m in program.method_networks} & taken)
        if made_taken:
            raise _Refused(name, f"the module already binds `{made_taken[0]}`")
        plans[name] = _Plan(program, network, pseudo)
        body = []
        for stmt in module.body:
            if isinstance(stmt, cst.ClassDef) and stmt.name.value == name:
                config = cst.PartialParserConfig(default_indent=indent)
                function = cst.parse_statement(source, config=config)
                sources = [method_network_source(program, made, indent)
                           for made in program.method_networks]
                if network is not None:
                    sources.append(network.source)
                for index, text in enumerate(sources):
                    net = cst.parse_statement(text, config=config)
                    body.append(net.with_changes(leading_lines=stmt.leading_lines if index == 0
                                                 else [cst.EmptyLine(), cst.EmptyLine()]))
                if sources:
                    body.append(function.with_changes(
                        leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
                else:
                    body.append(function.with_changes(leading_lines=stmt.leading_lines))
            else:
                body.append(stmt)
        module = module.with_changes(body=body)
    return module, plans


def _failures(plans: Dict[str, _Plan], findings: Sequence[Finding]) -> Dict[str, str]:
    failed: Dict[str, str] = {}
    for name, plan in plans.items():
        tag = f"`{plan.pseudo}`"
        if not any(f.code == "TFM400" and f.fixed and tag in f.message for f in findings):
            why = next((f.message for f in findings if f.code == "TFM401" and tag in f.message),
                       "the training-loop rewrite cannot migrate it")
            failed[name] = "its Session methods cannot become train steps: " + \
                why.replace(f"{tag} left unchanged: ", "")
            continue
        for made in plan.program.method_networks:
            net = f"`{made.class_name}`"
            if not any(f.code == "TFM300" and f.fixed and f.message.startswith(net)
                       for f in findings):
                why = next((f.message for f in findings if f.code == "TFM301"
                            and f.message.startswith(net)), "the model rewrite cannot convert it")
                failed[name] = f"its layer-building method `{made.method}` cannot become a Keras " \
                    "network: " + why.replace(f"{net} left unchanged: ", "")
                break
        if name in failed:
            continue
        if plan.network is not None:
            net = f"`{plan.network.class_name}`"
            if not any(f.code == "TFM300" and f.fixed and f.message.startswith(net)
                       for f in findings):
                why = next((f.message for f in findings if f.code == "TFM301"
                            and f.message.startswith(net)), "the model rewrite cannot convert it")
                failed[name] = "its layers cannot become a Keras network: " + \
                    why.replace(f"{net} left unchanged: ", "")
    return failed


def _line_map(new: str, old: str) -> Callable[[int], int]:
    """Line of `new` -> line of `old` (difflib; a changed line maps to the start of the block
    it replaced)."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    table: Dict[int, int] = {}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            table[j + 1] = (i1 + (j - j1) + 1) if tag == "equal" else i1 + 1
            if tag == "replace" and (i2 - i1) * (j2 - j1) <= 20000:
                # The most similar original line of the block (`self.x` became `x`).
                best, score = None, 0.6
                for i in range(i1, i2):
                    ratio = difflib.SequenceMatcher(None, a[i].strip(), b[j].strip()).ratio()
                    if ratio > score:
                        best, score = i, ratio
                if best is not None:
                    table[j + 1] = best + 1
    return lambda line: table.get(line, line)


def _remap(finding: Finding, to_original, plans: Dict[str, _Plan]) -> Finding:
    message = finding.message
    for name, plan in plans.items():
        message = message.replace(f"`{plan.pseudo}`", f"`{name}`")
    return replace(finding, line=to_original(finding.line), message=message)


def _class_finding(path: str, plan: _Plan, tree: ast.Module, findings) -> Finding:
    """The class's own finding, of the worst rewrite class among the sites in its lines (the
    network's fused batch norms are bounded, forgotten UPDATE_OPS a behaviour change)."""
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == plan.program.name)
    line, end = node.lineno, node.end_lineno or node.lineno
    kinds = {f.rewrite_class for f in findings if f.fixed and line <= f.line <= end}
    kind = next((k for k in (BEHAVIOUR_CHANGE, BOUNDED) if k in kinds), EXACT)
    net = f" its layers `{plan.network.class_name}(tf.keras.Model)`," if plan.network else ""
    methods = ", ".join(f"`{m.name}`" for m in plan.program.methods)
    made = "".join(f" `{m.method}` a `{m.class_name}(tf.keras.Model)` made once (reuse=True: "
                   "the same object)," for m in plan.program.method_networks)
    initializing = [m.name for m in plan.program.methods if m.initializes]
    again = (f"; `{initializing[0]}` ran the variable initializer on each call (TF1 started "
             "again from new weights), the converted class keeps training the same weights"
             if initializing else "")
    if initializing:
        kind = BEHAVIOUR_CHANGE
    return Finding(path, line, 1, "TFM300",
                   f"class `{plan.program.name}` no longer builds a TF1 graph:{net}{made} its "
                   f"train ops GradientTape steps; {methods} run eagerly without a Session"
                   f"{again}", fixed=True, rewrite_class=kind)


def _with_refusals(text: Optional[str], findings: List[Finding], refused: Dict[str, str],
                   original: str, path: str, tree: ast.Module) -> Outcome:
    """The TFM301 marker and finding of each refused class say why it stayed (the ordinary
    run marks a class that builds layers as a model class; one that only calls model
    functions gets its marker here)."""
    if not refused:
        return text, findings
    out_findings = []
    reported = set()
    for finding in findings:
        for name, reason in refused.items():
            prefix = f"`{name}` left unchanged: "
            if finding.code == "TFM301" and finding.message.startswith(prefix):
                finding = replace(finding, message=prefix + _one_line(reason))
                reported.add(name)
        out_findings.append(finding)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in refused and node.name not in reported:
            out_findings.append(Finding(path, node.lineno, 1, "TFM301",
                                        f"`{node.name}` left unchanged: "
                                        + _one_line(refused[node.name])))
    lines = (text if text is not None else original).splitlines(keepends=True)
    marked = set()
    for index, line in enumerate(lines):
        match = re.match(r"class (\w+)\b", line)
        if not match or match.group(1) not in refused or match.group(1) in marked:
            continue
        marked.add(match.group(1))
        ending = "\r\n" if line.endswith("\r\n") else "\n"
        marker = f"{MARKER} left unchanged: {_one_line(refused[match.group(1)])}" + ending
        if index > 0 and lines[index - 1].lstrip().startswith(MARKER):
            lines[index - 1] = marker
        else:
            lines[index] = marker + line
    new_text = "".join(lines)
    return (new_text if new_text != original else None), sorted(set(out_findings))


def _one_line(reason: str) -> str:
    return " ".join(reason.split())


def _suppressed_classes(text: str, tree: ast.Module) -> Set[str]:
    """Classes with a suppression comment (bare, or naming TFM300/TFM400) on one of their lines:
    left to the ordinary run, which honours it."""
    if "tf-migrate" not in text:
        return set()
    from migrate.suppressions import parse

    lines = parse(text).lines
    held = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                if any(s.codes is None or {"TFM300", "TFM400"} & set(s.codes)
                       for s in lines.get(line, [])):
                    held.add(node.name)
    return held


def _top_level_names(tree: ast.Module) -> Set[str]:
    names: Set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _import_resolver(tree: ast.Module):
    from migrate.context import _walk
    from migrate.names import ImportResolver

    return ImportResolver(tree, _walk(tree)[0])
