"""Turn a TF1 Session program (placeholders, train ops, a feed_dict loop) into TF2 train steps.

The function that opens `tf.Session()` is read in two parts:

* before the session: placeholders, the graph built on them (model calls, losses),
  optimizers, `UPDATE_OPS` and the train ops; everything else is plain Python and stays;
* the session block: `sess.run(...)` calls, each replaced by what it computed.

Each train op becomes a module-level `@tf.function` train step that takes the models, the
optimizer and the placeholders it reads as arguments (no globals), computes the loss under a
`tf.GradientTape` and applies the gradients; a fetch of other tensors becomes the expression
that computes them with the fed values; each optimizer gets a `make_*optimizer()` factory with
every hyper-parameter written out. `UPDATE_OPS` and its `control_dependencies` disappear: Keras
updates batch-norm statistics when a model is called with `training=True`.

Anything else raises `Unmappable`: the function is left unchanged and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from migrate.cst_utils import (SubstituteNames, assigned_names as _assigned, bound_names,
                               bound_names_in_order, names_read as _names_in, nodes_of)
from migrate.model_rewrite.analysis import dotted
from migrate.model_rewrite.call_site_scopes import CallSiteScope, call_site_scope
from migrate.tf1_calls import TF1CallFixer
from migrate.model_rewrite.layers import Unmappable, literal, render
from migrate.model_rewrite.tf2_api import exists_in_tf2
from migrate.model_rewrite.tf1_renames import rename_in_source, rename_in_statements, renamed_helpers
from migrate.training_rewrite.summaries import PythonValue, Summaries
from migrate.training_rewrite.datasets import DatasetInputs, input_pipeline_block
from migrate.training_rewrite.variable_models import (HandMadeVarList, HandMadeVariables,
                                                       late_graph_statement)
from migrate.training_rewrite.gan_ops import (AssignOps, augmented_graph_assignment, calls_gradients,
                                              free_name, is_random, with_nested_tapes)
from migrate.module_programs import PSEUDO_FUNCTION
from migrate.training_rewrite.regularization import (RegularizationLosses, collected_losses,
                                                     reads_regularization)
from migrate.training_rewrite.optimizers import (OPTIMIZER_NAMES, SCHEDULE_NAMES, KerasOptimizer,
                                                 KerasSchedule, TF1_MOMENTUM, TF1_MOMENTUM_CLASS,
                                                 map_optimizer, map_schedule)

SESSIONS = ("tensorflow.Session", "tensorflow.InteractiveSession")
CONFIG_PROTOS = ("tensorflow.ConfigProto", "tensorflow.GPUOptions")
GLOBAL_STEP = ("tensorflow.train.get_or_create_global_step", "tensorflow.train.get_global_step",
               "tensorflow.train.create_global_step")
PLACEHOLDER = "tensorflow.placeholder"
PLACEHOLDER_DEFAULT = "tensorflow.placeholder_with_default"
UPDATE_OPS_KEY = "tensorflow.GraphKeys.UPDATE_OPS"
SAVER = "tensorflow.train.Saver"
GRAPH = "tensorflow.Graph"
INITIALIZERS = ("tensorflow.global_variables_initializer", "tensorflow.initialize_all_variables",
                "tensorflow.local_variables_initializer")
ARG_SCOPE = "tf_slim.arg_scope"
CREATE_TRAIN_OP = ("tf_slim.learning.create_train_op", "tf_slim.create_train_op")
# tf.losses.X(labels, logits) -> the TF2 expression with the same (mean) reduction.
_LOSSES = {
    "tensorflow.losses.sparse_softmax_cross_entropy":
        ("labels", "logits", "{tf}.reduce_mean({tf}.nn.sparse_softmax_cross_entropy_with_logits("
                             "labels={labels}, logits={logits}))"),
    "tensorflow.losses.softmax_cross_entropy":
        ("onehot_labels", "logits", "{tf}.reduce_mean({tf}.nn.softmax_cross_entropy_with_logits("
                                    "labels={labels}, logits={logits}))"),
    "tensorflow.losses.sigmoid_cross_entropy":
        ("multi_class_labels", "logits", "{tf}.reduce_mean({tf}.nn.sigmoid_cross_entropy_with_logits("
                                         "labels={labels}, logits={logits}))"),
    # TF2's `tf.losses` is Keras's module, which has no `mean_squared_error` function (and its
    # loss functions reduce only the last axis): TF1's mean of squared_difference, written out.
    "tensorflow.losses.mean_squared_error":
        ("labels", "predictions", "{tf}.reduce_mean({tf}.math.squared_difference({logits}, {labels}))"),
}
_RENDER = cst.Module(body=[])


@dataclass
class Placeholder:
    name: str
    default: Optional[cst.BaseExpression] = None
    dtype: Optional[str] = None  # source of the placeholder's dtype (tf.float32), when given
    shape: Optional[cst.BaseExpression] = None  # the static shape, when given


# A var_list taken from these: only the trainable variables among them get gradients, so a
# name filter over the global variables selects the same weights (moving statistics have none).
# APIs that create variables (whose TF1 names a call-site scope would change).
_VARIABLE_MAKERS = ("tensorflow.Variable", "tensorflow.get_variable", "tensorflow.layers.",
                    "tensorflow.keras.", "tensorflow.contrib.", "tensorflow.compat.v1.layers.",
                    "tensorflow.compat.v1.get_variable", "tensorflow.train.", "tensorflow.estimator.")
VARIABLE_LISTS = ("tensorflow.trainable_variables", "tensorflow.global_variables")
TRAINABLE_KEYS = ("tensorflow.GraphKeys.TRAINABLE_VARIABLES",
                  "tensorflow.GraphKeys.GLOBAL_VARIABLES")


@dataclass(frozen=True)
class VarFilter:
    """A var_list built by filtering the trainable variables by name: `startswith(text)` (also
    `get_collection(TRAINABLE_VARIABLES, scope=text)`, which re.match-es the scope) or
    `text in v.name`."""

    kind: str  # "prefix" or "substring"
    text: str

    def test(self, name: str) -> bool:
        return name.startswith(self.text) if self.kind == "prefix" else self.text in name

    def describe(self) -> str:
        return (f"the variables whose name starts with {self.text!r}" if self.kind == "prefix"
                else f"the variables whose name contains {self.text!r}")


@dataclass(frozen=True)
class ObjectVariables:
    """A var_list read from model objects: `var_list=D.vars` (or `D.vars + G.vars`) where `vars`
    is a property of the object's Keras class that returns its variables (the model rewrite
    turns a GAN network's scope-filtering `vars` property into `self.trainable_variables`)."""

    objects: Tuple[str, ...]

    def describe(self) -> str:
        return "the variables of " + ", ".join(f"`{o}`" for o in self.objects)


@dataclass
class TrainOp:
    name: str
    loss: str
    optimizer: str  # name of the optimizer object in the program
    returns_loss: bool = False  # slim's create_train_op: running it yields the loss
    # var_list = the trainable variables it selects (by name, or those of model objects)
    var_prefix: Optional["VarFilter | ObjectVariables"] = None
    # compute_gradients -> (processing) -> apply_gradients(apply_expr): the gradient list's name.
    gradients_name: Optional[str] = None
    apply_expr: Optional[cst.BaseExpression] = None
    wired: bool = False  # the TF1 train op ran UPDATE_OPS (control_dependencies, tf.group, slim)
    # ...only those of one scope (`get_collection(UPDATE_OPS, scope)`): one network's batch norms
    scoped_updates: bool = False


@dataclass
class ProgramPlan:
    function: cst.FunctionDef
    new_function: cst.FunctionDef
    helpers: List[str]  # module-level source added before the function
    needs_tf1_rmsprop: bool = False
    notes: List[Tuple[str, str]] = field(default_factory=list)
    needs_os: bool = False
    # module-level helpers the converted program calls, their TF1 spellings renamed (tf.log)
    renamed_helpers: Dict[str, cst.FunctionDef] = field(default_factory=dict)
    # (module, function): plain functions of other files it calls, renamed by their module's run
    external_renames: Set[Tuple[str, str]] = field(default_factory=set)


class ProgramConverter:
    def __init__(self, func: cst.FunctionDef, resolve, tf_alias: str, model_classes: Set[str],
                 taken_names: Set[str], indent: str, model_names: Optional[Dict[str, str]] = None):
        self.func = func
        self.resolve = resolve
        self.tf = tf_alias
        self.model_classes = model_classes
        self.model_names = model_names or {}  # class -> its default Keras name (the TF1 scope)
        self.preserve_bugs = False
        # Some batch norm of the file collects its updates in UPDATE_OPS and no train op runs
        # them (the TFM206 finding; train_steps.py sets it): else every TF1 batch norm of the
        # file updated its statistics in place (updates_collections=None), as Keras does.
        self.forgotten_update_ops = True
        self.taken = taken_names  # shared by every program of the module: names stay unique
        self.indent = indent
        self.placeholders: Dict[str, Placeholder] = {}
        self.graph: List[cst.SimpleStatementLine] = []  # graph statements, in program order
        self.graph_names: Set[str] = set()
        self.model_objects: Set[str] = set()
        self.optimizers: Dict[str, KerasOptimizer] = {}
        self.train_ops: Dict[str, TrainOp] = {}
        self.update_ops_names: Set[str] = set()
        self.scoped_update_names: Set[str] = set()  # those of one scope (_scoped_update_ops)
        self.variables: Set[str] = set()  # tf.Variable objects created by the program
        self.global_steps: Set[str] = set()  # names of the TF1 global step (optimizer.iterations)
        self.step_optimizer: Dict[str, str] = {}  # global step name -> the optimizer counting it
        self.optimizer_feeds: Dict[str, Dict[str, str]] = {}  # optimizer -> {hyper-param: placeholder}
        self.trainable_names: Set[str] = set()  # `t_vars = tf.trainable_variables()`
        self.var_filters: Dict[str, VarFilter] = {}  # `d_vars = [v for v in t_vars if ...]`
        # class -> the names its trainable TF1 variables may have (`generator/g_h0_lin/kernel`),
        # None where one is not static; set by the model rewrite (weights.tf1_variable_names).
        self.model_variables: Dict[str, Optional[List[str]]] = {}
        self.object_classes: Dict[str, str] = {}
        self.object_names: Dict[str, str] = {}  # object -> its Keras `name=` (a call-site scope)
        # class -> its properties that return the model's variables (`vars`), set by the rule.
        self.variable_properties: Dict[str, Set[str]] = {}
        self.gradient_sets: Dict[str, Tuple[str, str, Optional[VarFilter]]] = {}  # (loss, opt, filter)
        self.plain_aliases: Dict[str, cst.SimpleStatementLine] = {}
        # `def sce(x, y): return tf.nn.sigmoid_cross_entropy_with_logits(...)` inside the
        # program: a loss helper the module-level train steps define again (DCGAN-tensorflow).
        self.local_functions: Dict[str, cst.FunctionDef] = {}
        self.helpers: List[str] = []
        # The module's top-level functions the program may call as plain functions (set by the
        # rule; neither programs nor converted models), and those renamed the TF 2 way (_validate).
        self.module_functions: Dict[str, cst.FunctionDef] = {}
        self.renamed_helpers: Dict[str, cst.FunctionDef] = {}
        # Plain functions of other files of the tree using TF1-only API (set by the rule,
        # tree_index.external_functions), and those of them it calls, renamed in their file.
        self.external_functions = None
        self.external_renames: Set[Tuple[str, str]] = set()
        self.step_names: Dict[str, str] = {}  # train op -> step function
        self.step_signature: Dict[str, List[str]] = {}
        self.fed_literals: Dict[str, Dict[str, cst.BaseExpression]] = {}
        self.needs_tf1_rmsprop = False
        self.notes: List[Tuple[str, str]] = []
        self.savers: Set[str] = set()  # `saver = tf.train.Saver()` -> a tf.train.Checkpoint
        self.initializer_names: Set[str] = set()  # Keras creates and initialises variables itself
        self.value_helpers: Dict[tuple, str] = {}  # compute_* helpers by what they compute
        self.saver_options: Dict[str, Dict[str, str]] = {}  # its max_to_keep and kin
        self.prebuilt = False  # models and optimizers built eagerly after the graph part
        self.needs_os = False  # the rewrite uses os.path (import it when the module does not)
        self.schedules: Dict[str, KerasSchedule] = {}  # `lr = tf.train.exponential_decay(...)`
        self.schedule_steps: Dict[str, str] = {}  # optimizer -> the global step its schedule reads
        self.schedule_optimizer: Dict[str, str] = {}  # schedule name -> the optimizer using it
        self.graph_objects: Set[str] = set()  # `graph = tf.Graph()` entered with as_default()
        self.variable_steps: Set[str] = set()  # `tf.Variable(0, trainable=False)` global steps
        self.session_configs: Set[str] = set()  # `config = tf.ConfigProto()` for the Session
        self.summaries = Summaries(resolve, tf_alias, self._fresh, lambda: self.graph_names,
                                   self._summary_value)
        # tf.data iterators: get_next() tensors are step inputs like placeholders (datasets.py)
        self.inputs = DatasetInputs(resolve, self._fresh, func)
        # hand-made tf.Variable weights (`weights = {'h1': tf.Variable(...)}`): variable_models.py
        self.hand_made = HandMadeVariables(self)
        # WGAN clipping: `[p.assign(...) for p in d_vars]` run by sess.run (gan_ops.py)
        self.assign_ops = AssignOps(self)

    # -- entry ----------------------------------------------------------------------------------
    def convert(self) -> ProgramPlan:
        body = self._without_graph_contexts(list(self.func.body.body))
        graph_stmts, session_name, session_stmts, after_stmts = self._split_session(body)
        self.inputs.prepare(graph_stmts, session_stmts)
        self.variable_steps = self._variable_global_steps(graph_stmts)
        before = self._graph_part(graph_stmts)
        self._check_schedule_steps()
        before += self._eager_builds()
        session_body = self._session_part(session_stmts, session_name)
        after = [self._plain_check(s) for s in after_stmts]
        new_body = before + session_body + after
        counted = {name: cst.parse_expression(f"{opt}.iterations")
                   for name, opt in self.step_optimizer.items()}
        new_body = [stmt.visit(SubstituteNames(counted)) for stmt in new_body]
        # TF1 spellings with an exact TF2 name (tf.log, keep_dims=) are renamed in what the
        # program becomes; the others still refuse in _validate.
        new_body = rename_in_statements(new_body, self.resolve)
        self.helpers = [rename_in_source(source, self.resolve) for source in self.helpers]
        self._validate(new_body)
        new_func = self.func.with_changes(body=self.func.body.with_changes(body=new_body))
        if TF1_MOMENTUM_CLASS.format(tf=self.tf) in self.helpers:
            self.taken.add(TF1_MOMENTUM)  # defined once per module
        return ProgramPlan(self.func, new_func, self.helpers, self.needs_tf1_rmsprop, self.notes,
                           self.needs_os, self.renamed_helpers, self.external_renames)

    def _without_graph_contexts(self, body) -> List[cst.BaseStatement]:
        """`with tf.Graph().as_default():` -> its body. TF2 runs eagerly: there is no graph to
        enter, and the objects the block creates are fresh ones anyway."""
        graphs = set()
        out: List[cst.BaseStatement] = []
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and \
                    isinstance(stmt.body[0], cst.Assign) and isinstance(stmt.body[0].value, cst.Call) and \
                    self.resolve(stmt.body[0].value.func) == GRAPH and not stmt.body[0].value.args:
                graphs.update(_assigned(stmt))
        for stmt in body:
            if input_pipeline_block(stmt, self.resolve):  # `with tf.device('/cpu:0'):` + tf.data
                inner = list(stmt.body.body)
                inner[0] = inner[0].with_changes(
                    leading_lines=[*stmt.leading_lines, *inner[0].leading_lines])
                out.extend(inner)
                continue
            if isinstance(stmt, cst.With) and len(stmt.items) == 1 and stmt.items[0].asname is None:
                item = stmt.items[0].item
                if isinstance(item, cst.Call) and not item.args and isinstance(item.func, cst.Attribute) \
                        and item.func.attr.value == "as_default":
                    owner = item.func.value
                    if (isinstance(owner, cst.Call) and self.resolve(owner.func) == GRAPH and not owner.args) \
                            or (isinstance(owner, cst.Name) and owner.value in graphs):
                        if isinstance(owner, cst.Name):
                            self.graph_objects.add(owner.value)  # a Session may run it (graph=)
                        inner = list(stmt.body.body)
                        inner[0] = inner[0].with_changes(
                            leading_lines=[*stmt.leading_lines, *inner[0].leading_lines])
                        out.extend(self._without_graph_contexts(inner))
                        continue
            if set(_assigned(stmt)) & graphs:
                continue  # `graph = tf.Graph()`, entered above
            out.append(stmt)
        if _names_in(cst.Module(body=out).visit(_WithoutSessionGraphs(self.resolve))) & graphs:
            raise Unmappable("the tf.Graph object is used other than with as_default()")
        return out

    def _variable_global_steps(self, stmts) -> Set[str]:
        """`global_step = tf.Variable(0, trainable=False, ...)` bound once and passed as
        `global_step=` to minimize/apply_gradients: the hand-made form of TF1's global step,
        which the optimizer increments once per step like `tf.train.get_or_create_global_step()`
        (so it becomes that optimizer's `iterations`)."""
        candidates: Dict[str, int] = {}
        for stmt in stmts:
            if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                    and isinstance(stmt.body[0], cst.Assign)):
                continue
            value = stmt.body[0].value
            targets = _assigned(stmt)
            if len(targets) == 1 and isinstance(value, cst.Call) and \
                    self.resolve(value.func) == "tensorflow.Variable" and value.args and \
                    value.args[0].keyword is None and literal(value.args[0].value) == 0 and \
                    any(a.keyword is not None and a.keyword.value == "trainable"
                        and literal(a.value) is False for a in value.args) and \
                    all(a.keyword is None or a.keyword.value in ("trainable", "name", "dtype")
                        for a in value.args[1:]):
                candidates[targets[0]] = candidates.get(targets[0], 0) + 1
        if not candidates:
            return set()
        passed: Set[str] = set()
        for stmt in stmts:
            for call in _calls_in(stmt):
                if isinstance(call.func, cst.Attribute) and call.func.attr.value in (
                        "minimize", "apply_gradients"):
                    for arg in call.args:
                        if arg.keyword is not None and arg.keyword.value == "global_step" and \
                                isinstance(arg.value, cst.Name):
                            passed.add(arg.value.value)
        binds = bound_names_in_order(self.func)
        return {name for name in candidates if name in passed and binds.count(name) == 1}

    def _split_session(self, body) -> Tuple[list, str, list, list]:
        """(graph statements, the session's name, statements run in it, statements after it).

        `with tf.Session() as sess:` delimits the session itself. `sess = tf.Session()` (or
        `tf.InteractiveSession()`, the tutorials' form) without `with` is the same program when
        the session is only run and closed: it starts at the first statement that uses it
        (`sess.run`, or `op.run()`/`tensor.eval()` on the default session), graph statements
        written after its creation still belong to the graph, and a top-level `sess.close()`
        ends it. Other uses of the object (a `sess.graph`, passing it on) stay TF1 values and
        are refused by `_validate`."""
        with_at = [i for i, s in enumerate(body) if self._session_with(s)]
        assign_at = [i for i, s in enumerate(body) if self._session_assignment(s) is not None]
        if len(with_at) + len(assign_at) > 1:
            raise Unmappable("several Sessions in one function")
        if with_at:
            index = with_at[0]
            session = body[index]
            self._session_arguments(session.items[0].item)
            return (body[:index], session.items[0].asname.name.value, list(session.body.body),
                    body[index + 1:])
        if not assign_at:
            raise Unmappable("the Session is not opened at the top level of the function")
        index = assign_at[0]
        self._session_arguments(body[index].body[0].value)
        name = self._session_assignment(body[index])
        rest = list(body[index + 1:])
        first = next((k for k, stmt in enumerate(rest) if self._uses_session(stmt, name)), len(rest))
        closes = [k for k, stmt in enumerate(rest) if self._closes_session(stmt, name)]
        if len(closes) > 1 or (closes and closes[0] < first):
            raise Unmappable(f"`{name}.close()` where the session is not simply closed after its use")
        end = closes[0] if closes else len(rest)
        # Comments above the removed `sess = tf.Session()` / `sess.close()` stay in the program,
        # above the statement that follows.
        removed = [index] + ([index + 1 + end] if closes else [])
        body = list(body)
        for at in reversed(removed):
            following = next((k for k in range(at + 1, len(body)) if k not in removed), None)
            if following is not None and any(line.comment is not None for line in body[at].leading_lines):
                body[following] = body[following].with_changes(
                    leading_lines=[*body[at].leading_lines, *body[following].leading_lines])
        rest = body[index + 1:]
        return body[:index] + rest[:first], name, rest[first:end], rest[end + 1:]

    def _session_arguments(self, call: cst.Call) -> None:
        """A Session's `config=` only sets devices, threads and memory: TF2 runs the train steps
        eagerly with its own defaults, so the ConfigProto built for it goes with the session
        (`config = tf.ConfigProto(...)`, `config.gpu_options.allow_growth = True`). A target
        (a remote server) has no local equivalent."""
        for index, arg in enumerate(call.args):
            key = arg.keyword.value if arg.keyword else ("target", "graph", "config")[index] \
                if index < 3 else None
            if key == "config":
                if isinstance(arg.value, cst.Name):
                    self.session_configs.add(arg.value.value)
                elif not (isinstance(arg.value, cst.Call) and self.resolve(arg.value.func) in CONFIG_PROTOS):
                    raise Unmappable("a Session config the rewrite does not know")
            elif key == "target" and (literal(arg.value) or "") == "":
                continue  # the in-process default
            elif key == "graph" and (
                    (isinstance(arg.value, cst.Name) and arg.value.value in self.graph_objects)
                    or (isinstance(arg.value, cst.Call) and not arg.value.args
                        and self.resolve(arg.value.func) == "tensorflow.get_default_graph")):
                continue  # the graph the program built (its `with graph.as_default():` is unwrapped)
            elif key == "graph":
                raise Unmappable(f"a Session on a graph the program does not build in "
                                 f"(graph={render(arg.value)})")
            else:
                raise Unmappable(f"a Session with {key or 'another'} argument")

    def _config_statement(self, stmt) -> bool:
        """`config = tf.ConfigProto(...)` or `config.x.y = value` for a Session's config."""
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            return False
        target = stmt.body[0].targets[0].target
        if isinstance(target, cst.Name):
            value = stmt.body[0].value
            return target.value in self.session_configs and isinstance(value, cst.Call) and \
                self.resolve(value.func) in CONFIG_PROTOS
        root = target
        while isinstance(root, cst.Attribute):
            root = root.value
        return isinstance(target, cst.Attribute) and isinstance(root, cst.Name) and \
            root.value in self.session_configs and not (_names_in(stmt.body[0].value) & self.session_configs)

    def _session_assignment(self, stmt) -> Optional[str]:
        """`sess = tf.Session(...)` / `tf.InteractiveSession(...)`: the name it binds."""
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1
                and isinstance(stmt.body[0].targets[0].target, cst.Name)):
            return None
        value = stmt.body[0].value
        if isinstance(value, cst.Call) and self.resolve(value.func) in SESSIONS:
            return stmt.body[0].targets[0].target.value
        return None

    def _uses_session(self, stmt, name: str) -> bool:
        """The statement reads the session, or runs an op/tensor (`op.run()`, `t.eval()`) on the
        default session: where the session part of a `sess = tf.Session()` program starts."""
        if name in _names_in(stmt):
            return True
        return any(isinstance(call.func, cst.Attribute) and call.func.attr.value in ("run", "eval")
                   and isinstance(call.func.value, (cst.Name, cst.Call)) for call in _calls_in(stmt))

    def _closes_session(self, stmt, name: str) -> bool:
        return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Expr) and isinstance(stmt.body[0].value, cst.Call)
                and not stmt.body[0].value.args and dotted(stmt.body[0].value.func) == f"{name}.close")

    def _session_with(self, stmt) -> bool:
        if not isinstance(stmt, cst.With) or len(stmt.items) != 1:
            return False
        item = stmt.items[0]
        return (isinstance(item.item, cst.Call) and self.resolve(item.item.func) in SESSIONS
                and item.asname is not None and isinstance(item.asname.name, cst.Name))

    # -- before the session: the graph ----------------------------------------------------------
    def _graph_part(self, stmts) -> List[cst.BaseStatement]:
        out: List[cst.BaseStatement] = []
        for stmt in stmts:
            out.extend(self._graph_statement(stmt, wired=False))
        return out

    def _graph_statement(self, stmt, wired: bool) -> List[cst.BaseStatement]:
        if isinstance(stmt, cst.With):
            item = stmt.items[0].item if len(stmt.items) == 1 else None
            if isinstance(item, cst.Call) and self.resolve(item.func) == "tensorflow.control_dependencies":
                deps = item.args[0].value if item.args else None
                if deps is None or not self._is_update_ops(deps):
                    chained = sorted(_names_in(deps) & set(self.train_ops)) if deps is not None else []
                    if chained:  # pix2pix: `with tf.control_dependencies([discrim_train]):`
                        raise Unmappable(f"control_dependencies on the train op `{chained[0]}` "
                                         "(one train step chained after another) is not supported yet")
                    raise Unmappable("control_dependencies on something other than UPDATE_OPS")
                out, before = [], set(self.train_ops)
                for inner in stmt.body.body:
                    out.extend(self._graph_statement(inner, wired=True))
                if self._scoped_update_ops(deps):
                    for name in set(self.train_ops) - before:
                        self.train_ops[name].scoped_updates = True
                return out
            if isinstance(item, cst.Call) and self.resolve(item.func) == ARG_SCOPE \
                    and stmt.items[0].asname is None and self._scope_absorbed(stmt):
                # `with slim.arg_scope(vgg_arg_scope()):` around model calls: the model classes
                # took its defaults (model_rewrite/arg_scopes.py), nothing else here reads them.
                out = []
                for inner in stmt.body.body:
                    out.extend(self._graph_statement(inner, wired))
                if out:
                    out[0] = out[0].with_changes(leading_lines=[*stmt.leading_lines,
                                                                *out[0].leading_lines])
                return out
            site_scope = call_site_scope(stmt, self.resolve)
            if site_scope is not None:
                return self._call_site_scope_block(stmt, site_scope, wired)
            raise Unmappable("a with block in the graph-building code")
        if isinstance(stmt, cst.FunctionDef):
            self.local_functions[stmt.name.value] = stmt
        if not isinstance(stmt, cst.SimpleStatementLine):
            if _names_in(stmt) & (set(self.placeholders) | self.graph_names):
                raise Unmappable(f"graph built inside a {type(stmt).__name__.lower()} statement")
            return [stmt]
        if len(stmt.body) != 1:
            raise Unmappable("several statements on one line in the graph-building code")
        data = self.inputs.graph_statement(stmt, set(self.placeholders), self.graph_names)
        if data is not None:  # a dataset, an iterator, get_next() (its tensors: fed like placeholders)
            for element in self.inputs.elements:
                self.placeholders.setdefault(element, Placeholder(element))
            return data
        if self._config_statement(stmt):
            return []  # the Session's ConfigProto goes with the Session (_session_arguments)
        summary = self.summaries.graph_statement(stmt)  # tf.summary.scalar, merge_all, FileWriter
        if summary is not None:
            return summary
        stmt = augmented_graph_assignment(stmt, self.graph_names) or stmt  # `loss += penalty`
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and reads_regularization(small.value, self.resolve):
            # REGULARIZATION_LOSSES -> the models' `losses`: the statement joins the graph.
            small = small.with_changes(value=small.value.visit(RegularizationLosses(
                self.resolve, self.tf, self._models_in_scope,
                lambda: collected_losses(self.graph, self.resolve))))
            stmt = stmt.with_changes(body=[small])
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            api = self.resolve(small.value.func)
            if api in GLOBAL_STEP:
                return []  # `tf.train.create_global_step()`: the optimizer's iterations count steps
            if api == "tensorflow.set_random_seed":
                call = small.value.with_changes(func=cst.parse_expression(f"{self.tf}.random.set_seed"))
                return [stmt.with_changes(body=[small.with_changes(value=call)])]
        if not isinstance(small, cst.Assign):
            if _names_in(stmt) & (set(self.placeholders) | self.graph_names):
                raise Unmappable("a graph statement that is not an assignment")
            return [stmt]
        value = small.value
        targets = _assigned(stmt)
        api = self.resolve(value.func) if isinstance(value, cst.Call) else None
        if api in (PLACEHOLDER, PLACEHOLDER_DEFAULT) and len(targets) == 1:
            default = value.args[0].value if api == PLACEHOLDER_DEFAULT and value.args else None
            dtype = None
            if api == PLACEHOLDER:
                dtype_arg = next((a.value for a in value.args if a.keyword is not None
                                  and a.keyword.value == "dtype"), None)
                positional = [a.value for a in value.args if a.keyword is None]
                dtype_arg = dtype_arg or (positional[0] if positional else None)
                name = self.resolve(dtype_arg) if dtype_arg is not None else None
                if name is not None and name.startswith("tensorflow.") and exists_in_tf2(name):
                    dtype = f"{self.tf}.{name[len('tensorflow.'):]}"
            shape = next((a.value for a in value.args if a.keyword is not None
                          and a.keyword.value == "shape"), None)
            positional = [a.value for a in value.args if a.keyword is None]
            if shape is None and api == PLACEHOLDER and len(positional) > 1:
                shape = positional[1]
            self.placeholders[targets[0]] = Placeholder(targets[0], default, dtype, shape)
            return []
        if isinstance(value, cst.Call) and self._is_update_ops(value):
            self.update_ops_names.update(targets)
            if self._scoped_update_ops(value):
                self.scoped_update_names.update(targets)
            return []
        if api in OPTIMIZER_NAMES and len(targets) == 1:
            return self._optimizer(targets[0], api, value, stmt)
        if api in VARIABLE_LISTS and len(targets) == 1 and not value.args:
            self.trainable_names.add(targets[0])
            return []
        prefix = self._scope_filter(value) or self._collection_filter(value) or \
            self._object_variables(value)
        if prefix is not None and len(targets) == 1:
            self.var_filters[targets[0]] = prefix
            return []
        if api in SCHEDULE_NAMES and len(targets) == 1:
            self.schedules[targets[0]] = map_schedule(api, value)
            return []  # the schedule object goes into make_optimizer
        if api in INITIALIZERS and len(targets) == 1 and not value.args:
            self.initializer_names.add(targets[0])  # `init = tf.global_variables_initializer()`
            return []
        if api == SAVER and len(targets) == 1:
            return [self._saver(targets[0], value, stmt)]
        if api in GLOBAL_STEP and len(targets) == 1 and not value.args:
            self.global_steps.add(targets[0])
            return []
        if api == "tensorflow.Variable" and len(targets) == 1 and targets[0] in self.variable_steps:
            self.global_steps.add(targets[0])  # counted by its optimizer's `iterations`
            return []
        if api == "tensorflow.Variable" and len(targets) == 1:
            self.variables.add(targets[0])
            self.hand_made.register(stmt)
            return [stmt]
        if self.hand_made.register(stmt):  # a dict/list of tf.Variable, a var_list of them
            return [stmt]
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
                value.func.attr.value == "minimize" and len(targets) == 1:
            return self._train_op(targets[0], value, stmt, wired)
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
                value.func.attr.value == "compute_gradients" and len(targets) == 1:
            return self._compute_gradients(targets[0], value)
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
                value.func.attr.value == "apply_gradients" and len(targets) == 1:
            return self._apply_gradients(targets[0], value, wired)
        assigns = self.assign_ops.graph_statement(stmt, targets, value)
        if assigns is not None:
            return assigns
        if api == "tensorflow.group" and len(targets) == 1:
            return self._group(targets[0], value)
        if api in CREATE_TRAIN_OP and len(targets) == 1:
            return self._create_train_op(targets[0], value, stmt)
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and \
                value.func.value in self.model_classes:
            self.model_objects.update(targets)
            keras_name = next((literal(a.value) for a in value.args
                               if a.keyword is not None and a.keyword.value == "name"), None)
            for target in targets:
                self.object_classes[target] = value.func.value
                if isinstance(keras_name, str):
                    self.object_names[target] = keras_name
            return [stmt]
        used = _names_in(value)
        # A random tensor (WGAN-GP's alpha) was drawn again at each sess.run: a graph value.
        if self.hand_made.reads(value) or \
                used & (set(self.placeholders) | self.graph_names | self.model_objects) or \
                is_random(value, self.resolve):
            self.graph.append(stmt)
            # `logits, _ = net(images)`: `_` discards a value, it names no graph tensor (and is
            # reused as a loop variable).
            self.graph_names.update(t for t in targets if not (t == "_" and len(targets) > 1))
            return []
        dotted_value = dotted(value)
        if dotted_value and len(targets) == 1 and (self.resolve(value) or "").startswith("tensorflow."):
            # An alias such as `xent = tf.nn.sigmoid_cross_entropy_with_logits`: train steps copy it.
            self.plain_aliases[targets[0]] = stmt
        return [stmt]

    def _scope_absorbed(self, stmt: cst.With) -> bool:
        """A slim.arg_scope only changes slim functions: a block that calls none (only model
        classes, their objects and non-slim library functions) has nothing left it affects."""
        objects = set(self.model_objects)
        for inner in stmt.body.body:
            for call in _calls_in(inner):
                api = self.resolve(call.func)
                if api is not None and api.startswith("tf_slim."):
                    return False
                if api is None and not (isinstance(call.func, cst.Name) and (
                        call.func.value in self.model_classes or call.func.value in objects)):
                    return False
            if isinstance(inner, cst.SimpleStatementLine) and len(inner.body) == 1 and \
                    isinstance(inner.body[0], cst.Assign) and isinstance(inner.body[0].value, cst.Call) \
                    and isinstance(inner.body[0].value.func, cst.Name) \
                    and inner.body[0].value.func.value in self.model_classes:
                objects.update(_assigned(inner))
        return True

    def _call_site_scope_block(self, stmt: cst.With, scope: CallSiteScope,
                               wired: bool) -> List[cst.BaseStatement]:
        """`with tf.variable_scope("generator"): outputs = create_generator(x)` -> its body: the
        caller rewrite named the model object after the scope (model_rewrite/call_site_scopes),
        so its Keras weight paths keep the TF1 variable names. `tf.name_scope` renames ops only.
        Refused where the block could create variables the Keras names would not carry."""
        what = f'{scope.kind}_scope("{scope.name}")' if scope.name else f"a {scope.kind}_scope"
        if scope.kind == "variable" and scope.name is None:
            raise Unmappable("a variable_scope around model calls whose name is not a plain literal "
                             "(or with arguments besides reuse)")
        created_before = set(self.model_objects)
        out: List[cst.BaseStatement] = []
        for inner in stmt.body.body:
            if not isinstance(inner, (cst.SimpleStatementLine, cst.With)):
                raise Unmappable(f"a {type(inner).__name__.lower()} statement inside {what}")
            out.extend(self._graph_statement(inner, wired))
        for inner in stmt.body.body:
            for call in _calls_in(inner):
                callee = call.func.value if isinstance(call.func, cst.Name) else None
                if callee in self.model_classes or callee in self.model_objects or \
                        callee in _BUILTIN_NAMES:
                    continue
                api = self.resolve(call.func) or ""
                if api.startswith("tensorflow.summary."):
                    raise Unmappable(f"a summary inside {what}: TF1 prefixes its tag with the scope")
                if not api.startswith("tensorflow.") or any(
                        api.startswith(p) for p in _VARIABLE_MAKERS) or api in _VARIABLE_MAKERS:
                    shown = dotted(call.func) or "a call"
                    raise Unmappable(f"`{shown}` inside {what}: only models the rewrite converted "
                                     "and plain graph ops keep their TF1 variable names there")
        if scope.kind == "variable":
            made = set(self.model_objects) - created_before
            if not scope.creates and made:
                raise Unmappable(f"{what} with reuse=True around a model no earlier "
                                 f"variable_scope(\"{scope.name}\") created")
            if any(self.object_names.get(o) == scope.name for o in created_before) and made:
                raise Unmappable(f"{what} builds a second model of that name: TF1 shares or "
                                 "refuses its variables, two Keras objects would not")
            for inner in stmt.body.body:
                for call in _calls_in(inner):
                    obj = call.func.value if isinstance(call.func, cst.Name) else None
                    if obj in self.model_objects and self.object_names.get(obj) != scope.name:
                        raise Unmappable(f"`{obj}` is called inside {what}, which does not name it "
                                         "(a model with a scope of its own, or nested scopes)")
        if out:
            out[0] = out[0].with_changes(leading_lines=[*stmt.leading_lines, *out[0].leading_lines])
        return out

    def _object_scope(self, obj: str) -> Optional[str]:
        """The TF1 scope that starts every variable name of model object `obj`: the call-site
        variable_scope it was named after, else its class's own scope."""
        return self.object_names.get(obj) or self.model_names.get(self.object_classes.get(obj, ""))

    def _saver(self, name: str, call: cst.Call, stmt) -> cst.BaseStatement:
        """`saver = tf.train.Saver()` -> a tf.train.Checkpoint of the models and optimizers."""
        kept = {"max_to_keep": "5"}  # TF1's default: Saver.save deleted all but the 5 newest
        for arg in call.args:
            key = arg.keyword.value if arg.keyword else None
            if key not in ("max_to_keep", "keep_checkpoint_every_n_hours"):
                raise Unmappable(f"tf.train.Saver argument {key or 'positional'} (var_list...) "
                                 "is not supported yet")
            kept[key] = _RENDER.code_for_node(arg.value)
        self.saver_options[name] = kept
        self.savers.add(name)
        # Hand-made weights made so far too: TF1's Saver() saved every variable existing then.
        saved = sorted(self.model_objects) + list(self.optimizers) + list(self.hand_made.holders)
        new = cst.parse_statement(f"{name} = {self._checkpoint_of(saved)}")
        return new.with_changes(leading_lines=stmt.leading_lines)

    def _checkpoint_of(self, objects: Sequence[str]) -> str:
        if not objects:
            raise Unmappable("a tf.train.Saver with no model or optimizer to save")
        return f"{self.tf}.train.Checkpoint({', '.join(f'{o}={o}' for o in objects)})"

    def _save(self, call: cst.Call) -> cst.BaseExpression:
        """`saver.save(sess, path, global_step=step)` -> `checkpoint.write('path-<step>')`, the
        file names TF1 wrote (Saver.save appended the step); returns the path, as save did."""
        saver = call.func.value
        args = list(call.args)
        path = step = None
        for index, arg in enumerate(args):
            key = arg.keyword.value if arg.keyword else ("sess", "save_path", "global_step")[index] \
                if index < 3 else None
            if key == "save_path":
                path = arg.value
            elif key == "global_step":
                step = arg.value
            elif key not in ("sess", "write_meta_graph"):
                raise Unmappable(f"Saver.save argument {key or 'positional'} is not supported yet")
        if path is None:
            raise Unmappable("Saver.save without a path")
        target = _RENDER.code_for_node(path)
        if step is not None:
            if isinstance(step, cst.Call) and self.resolve(step.func) in GLOBAL_STEP:
                counting = sorted(set(self.step_optimizer.values()))
                if len(counting) != 1:
                    raise Unmappable("Saver.save(global_step=...) with no single optimizer counting the step")
                step = cst.parse_expression(f"{counting[0]}.iterations")
            # A CheckpointManager per save, as Saver.save did: `path-<step>` files, the
            # `checkpoint` state file that tf.train.latest_checkpoint reads, and only the newest
            # max_to_keep kept (a new manager recovers the list from the state file).
            options = self.saver_options.get(saver.value, {"max_to_keep": "5"}) \
                if isinstance(saver, cst.Name) else {"max_to_keep": "5"}
            self.needs_os = True
            keywords = "".join(f", {k}={v}" for k, v in sorted(options.items()))
            return cst.parse_expression(
                f"{self.tf}.train.CheckpointManager({_RENDER.code_for_node(saver)}, "
                f"os.path.dirname({target}){keywords}, checkpoint_name=os.path.basename({target}))"
                f".save(checkpoint_number=int({_RENDER.code_for_node(step)}))")
        return cst.parse_expression(f"{_RENDER.code_for_node(saver)}.write({target})")

    def _restore(self, call: cst.Call) -> List[cst.BaseStatement]:
        """`saver.restore(sess, path)` -> build the models, then read the checkpoint into them.
        Keras 3 creates weights when a model is first called and, unlike TF1 variables, does
        not take values restored before that: so each model is called once on zeros first."""
        args = [a.value for a in call.args]
        if len(args) != 2 or any(a.keyword for a in call.args):
            raise Unmappable("Saver.restore with other arguments than (sess, path)")
        lines = [] if self.prebuilt else (
            [_RENDER.code_for_node(s) for s in self._build_calls()] + self._optimizer_builds())
        saver = call.func.value
        checkpoint = (self._checkpoint_of(sorted(self.model_objects) + list(self.optimizers)
                                          + list(self.hand_made.holders))
                      if isinstance(saver, cst.Call) else _RENDER.code_for_node(saver))
        lines.append(f"{checkpoint}.read({_RENDER.code_for_node(args[1])})"
                     ".assert_existing_objects_matched().expect_partial()")
        return [cst.parse_statement(line) for line in lines]

    def _eager_builds(self) -> List[cst.BaseStatement]:
        """Models and optimizers created eagerly, before the first train step: a tf.function
        may create variables only on its first trace, so without this a program that trains
        twice in one process (fresh model and optimizer) fails on the second. Only where every
        model is called on placeholders of known shape; otherwise the first step creates them."""
        if not self.train_ops or not (self.model_objects or self.hand_made.holders):
            return []
        try:
            lines = [_RENDER.code_for_node(s) for s in
                     self._build_calls("# build before the first tf.function trace")]
            lines += self._optimizer_builds("# likewise its slots")
        except Unmappable:
            return []
        self.prebuilt = True
        return [cst.parse_statement(line) for line in lines]

    def _build_calls(self, comment="# create the weights before restoring them") -> List[cst.BaseStatement]:
        out = []
        for model in sorted(self.model_objects):
            call = next((c for stmt in self.graph for c in _calls_of(stmt, model)), None)
            if call is None:
                raise Unmappable(f"`{model}` is restored but never called")
            zeros: Dict[str, cst.BaseExpression] = {}
            for name in _names_in(call) - {model}:
                ph = self.placeholders.get(name)
                if ph is None or not isinstance(ph.shape, (cst.List, cst.Tuple)):
                    if name in self.graph_names or name in self.placeholders:
                        raise Unmappable(f"cannot build `{model}` before restoring: the shape of "
                                         f"`{name}` is not known")
                    continue
                dims = ", ".join("1" if isinstance(e.value, cst.Name) and e.value.value == "None"
                                 else _RENDER.code_for_node(e.value) for e in ph.shape.elements)
                zeros[name] = cst.parse_expression(
                    f"{self.tf}.zeros([{dims}], {ph.dtype or self.tf + '.float32'})")
            built = call.visit(SubstituteNames(zeros))
            # Inference mode: building must not move the batch-norm statistics.
            built = built.with_changes(args=[
                a.with_changes(value=cst.Name("False")) if a.keyword and a.keyword.value == "training" else a
                for a in built.args])
            line = cst.parse_statement(_RENDER.code_for_node(built))
            out.append(line.with_changes(trailing_whitespace=cst.TrailingWhitespace(
                whitespace=cst.SimpleWhitespace("  "),
                comment=cst.Comment(comment))))
        return out

    def _collection_filter(self, node) -> Optional[VarFilter]:
        """`tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope='gen')` and
        `tf.trainable_variables('gen')`: TF1 keeps the variables whose name re.match-es the
        scope, a prefix test for a scope without regular-expression characters."""
        if not isinstance(node, cst.Call):
            return None
        api = self.resolve(node.func)
        if api in VARIABLE_LISTS:
            names = ("scope",)
        elif api == "tensorflow.get_collection" and node.args and node.args[0].keyword is None and (
                self.resolve(node.args[0].value) in TRAINABLE_KEYS
                or literal(node.args[0].value) in ("trainable_variables", "variables")):
            names = ("key", "scope")
        else:
            return None
        bound = {}
        for index, arg in enumerate(node.args):
            key = arg.keyword.value if arg.keyword is not None else (
                names[index] if index < len(names) else None)
            if key not in names or arg.star:
                return None
            bound[key] = arg.value
        scope = literal(bound["scope"]) if "scope" in bound else None
        if not (isinstance(scope, str) and re.fullmatch(r"[\w/]+", scope)):
            return None  # no scope (every variable), or a pattern with regex characters
        return VarFilter("prefix", scope)

    def _scope_filter(self, node) -> Optional[VarFilter]:
        """`[v for v in t_vars if v.name.startswith('scope/')]` or `if 'd_' in v.name`."""
        if not (isinstance(node, cst.ListComp) and len(node.for_in.ifs) == 1
                and node.for_in.inner_for_in is None):
            return None
        source = node.for_in.iter
        if not ((isinstance(source, cst.Name) and source.value in self.trainable_names) or
                (isinstance(source, cst.Call) and self.resolve(source.func) in VARIABLE_LISTS
                 and not source.args)):
            return None
        test = node.for_in.ifs[0].test
        target = node.for_in.target
        if isinstance(test, cst.Call) and isinstance(test.func, cst.Attribute) \
                and test.func.attr.value == "startswith" and len(test.args) == 1:
            prefix, owner = literal(test.args[0].value), test.func.value
        elif isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
                and isinstance(test.comparisons[0].operator, cst.In):
            # `'d_' in v.name`: the step pairs it with the models all of whose variables
            # contain it (and none of the others'), by the TF1 names the model rewrite keeps.
            prefix, owner = literal(test.left), test.comparisons[0].comparator
        else:
            return None
        if not (isinstance(prefix, str) and prefix and isinstance(target, cst.Name)
                and dotted(owner) == f"{target.value}.name"
                and isinstance(node.elt, cst.Name) and node.elt.value == target.value):
            return None
        return VarFilter("prefix" if isinstance(test, cst.Call) else "substring", prefix)

    def _is_update_ops(self, node) -> bool:
        if isinstance(node, cst.StarredElement):
            return self._is_update_ops(node.value)
        if isinstance(node, cst.Name):
            return node.value in self.update_ops_names
        if isinstance(node, (cst.List, cst.Tuple)):
            return all(self._is_update_ops(e.value) for e in node.elements)
        if isinstance(node, cst.Call) and self.resolve(node.func) in ("tensorflow.get_collection",
                                                                       "tensorflow.get_collection_ref"):
            key = node.args[0].value if node.args else None
            return key is not None and (self.resolve(key) == UPDATE_OPS_KEY or literal(key) == "update_ops")
        return False

    def _scoped_update_ops(self, node) -> bool:
        """UPDATE_OPS of one scope only (`tf.get_collection(UPDATE_OPS, scope='discriminator')`,
        every part of a list so): TF1 ran the batch-norm updates of that network alone, not all
        of the graph's (TFM403 tells which)."""
        if isinstance(node, cst.StarredElement):
            return self._scoped_update_ops(node.value)
        if isinstance(node, cst.Name):
            return node.value in self.scoped_update_names
        if isinstance(node, (cst.List, cst.Tuple)):
            return bool(node.elements) and all(self._scoped_update_ops(e.value) for e in node.elements)
        if isinstance(node, cst.Call) and self._is_update_ops(node):
            scope = [a.value for a in node.args[1:2] if a.keyword is None] + \
                [a.value for a in node.args if a.keyword is not None and a.keyword.value == "scope"]
            return bool(scope) and not (isinstance(scope[0], cst.Name) and scope[0].value == "None")
        return False

    def _optimizer(self, name: str, api: str, call: cst.Call, stmt) -> List[cst.BaseStatement]:
        keras = map_optimizer(api, call)
        fed: Dict[str, str] = {}
        arguments = []
        for key, value in keras.arguments:
            if key == "learning_rate":
                value = self._learning_rate_schedule(name, value, api)
            names = _names_in(cst.parse_expression(value))
            if names & self.graph_names:
                raise Unmappable(f"optimizer hyper-parameter computed in the graph ({key})")
            if names & set(self.placeholders):
                if not (key == "learning_rate" and value in self.placeholders):
                    raise Unmappable(f"optimizer hyper-parameter {key} fed at run time")
                # Fed every step in TF1: the train step assigns the fed value before updating.
                fed[key] = value
                value = "0.0"
            arguments.append((key, value))
        keras.arguments = arguments
        if api == "tensorflow.train.MomentumOptimizer" and (name in self.schedule_steps or fed):
            self._tf1_momentum(keras)
        self.optimizer_feeds[name] = fed
        self.optimizers[name] = keras
        self.needs_tf1_rmsprop |= keras.needs_tf1_rmsprop
        # `optimizer` -> make_optimizer(), `d_optimizer` -> make_d_optimizer() (one per GAN network).
        # `optimizer` -> make_optimizer, `d_optim` -> make_d_optimizer, `opt` -> make_optimizer:
        # the `make_*optimizer` convention verify pairs optimizers by.
        stem = re.sub(r"(^|_)(optimizer|optim|opt)(_\d+)?$", "", name)
        factory = self._fresh(f"make_{stem}_optimizer" if stem else "make_optimizer")
        params = self._local_params(keras)
        self.helpers.append(
            f"def {factory}({', '.join(params)}):\n"
            f"{self.indent}\"\"\"The TF1 optimizer `{render(call.func)}` with every hyper-parameter "
            f"written out.\"\"\"\n"
            f"{self.indent}return {keras.constructor(self.tf)}\n")
        new = cst.parse_statement(f"{name} = {factory}({', '.join(params)})")
        return [new.with_changes(leading_lines=stmt.leading_lines)]

    def _learning_rate_schedule(self, optimizer: str, value: str, api: str) -> str:
        """A decay schedule as the learning rate -> the Keras schedule object (else `value`)."""
        expr = cst.parse_expression(value)
        if isinstance(expr, cst.Name) and expr.value in self.schedules:
            schedule = self.schedules[expr.value]
            self.schedule_optimizer[expr.value] = optimizer
        elif isinstance(expr, cst.Call) and self.resolve(expr.func) in SCHEDULE_NAMES:
            schedule = map_schedule(self.resolve(expr.func), expr)
        else:
            return value
        if not (isinstance(schedule.step, cst.Name) and schedule.step.value in self.global_steps):
            raise Unmappable("the learning-rate schedule reads a step that is not the global step "
                             "its optimizer increments")
        self.schedule_steps[optimizer] = schedule.step.value
        return schedule.constructor(self.tf)

    def _models_in_scope(self, scope: Optional[str]) -> List[str]:
        if scope is None:
            return sorted(self.model_objects)
        return sorted(o for o in self.model_objects if self._object_scope(o) == scope)

    def _tf1_momentum(self, keras: KerasOptimizer) -> None:
        """A rate that changes (schedule, fed): Keras SGD's momentum would keep past rates in its
        velocity where TF1 scales the accumulator by the current rate; a generated subclass
        applies TF1's rule (optimizers.TF1_MOMENTUM_CLASS), defined once per module."""
        keras.keras_class = TF1_MOMENTUM
        source = TF1_MOMENTUM_CLASS.format(tf=self.tf)
        if TF1_MOMENTUM not in self.taken and source not in self.helpers:
            self.helpers.append(source)  # `taken` learns the name once the program converted

    def _check_schedule_steps(self) -> None:
        # Keras schedules read optimizer.iterations: exact only where that optimizer is the one
        # that incremented the TF1 step (minimize/apply_gradients(global_step=...)).
        for optimizer, step in self.schedule_steps.items():
            if self.step_optimizer.get(step) != optimizer:
                raise Unmappable(f"the learning-rate schedule reads global step `{step}`, which its "
                                 "optimizer does not increment (no minimize(global_step=...))")

    def _local_params(self, keras: KerasOptimizer) -> List[str]:
        """Names of the function's own locals the hyper-parameters read: factory parameters."""
        locals_ = bound_names(self.func) | {p.name.value for p in self.func.params.params}
        used: Set[str] = set()
        for _, value in keras.arguments:
            used |= _names_in(cst.parse_expression(value))
        return sorted(used & locals_)

    def _train_op(self, name: str, call: cst.Call, stmt, wired: bool) -> List[cst.BaseStatement]:
        optimizer_expr = call.func.value
        prelude: List[cst.BaseStatement] = []
        if isinstance(optimizer_expr, cst.Call) and self.resolve(optimizer_expr.func) in OPTIMIZER_NAMES:
            stem = re.sub(r"train_?op|train_?step|minimize_?op|_?op$", "", name).strip("_")
            opt_name = self._fresh(f"{stem}_optimizer" if stem else "optimizer")
            opt_stmt = cst.parse_statement(f"{opt_name} = 0")
            prelude = self._optimizer(opt_name, self.resolve(optimizer_expr.func), optimizer_expr,
                                      opt_stmt)
            prelude = [p.with_changes(leading_lines=stmt.leading_lines) for p in prelude]
        elif isinstance(optimizer_expr, cst.Name) and optimizer_expr.value in self.optimizers:
            opt_name = optimizer_expr.value
        else:
            raise Unmappable("minimize on an optimizer the rewrite does not know")
        args = [a for a in call.args]
        var_prefix = None
        loss = cst.Name(self._minimized_loss(name, args[0].value if args else None, "minimize"))
        for index, arg in enumerate(args[1:], start=1):
            # minimize(loss, global_step, var_list, ...) positionally, as TF1 allowed.
            key = arg.keyword.value if arg.keyword else {1: "global_step", 2: "var_list"}.get(index)
            if key == "global_step":
                self.step_optimizer[self._global_step_name(arg.value)] = opt_name
            elif key == "var_list":
                var_prefix = self._var_list(arg.value)
                if var_prefix is None:
                    raise Unmappable("minimize(var_list=...) with a list the rewrite cannot map to a model")
            else:
                raise Unmappable(f"minimize argument {key or 'positional'} is not supported yet")
        self.train_ops[name] = TrainOp(name, loss.value, opt_name, var_prefix=var_prefix, wired=wired)
        return prelude

    def _minimized_loss(self, op_name: str, node, api: str) -> str:
        """The graph name of the loss a train op minimizes. A named graph loss is itself; an
        expression of graph values (WGAN's `minimize(-D_loss)`, `minimize(d_loss + g_loss)`,
        `compute_gradients(tf.reduce_mean(loss))`) becomes a new graph statement
        `<op>_objective = <expression>`, so the train step computes it inside its tape like any loss."""
        if isinstance(node, cst.Name) and node.value in self.graph_names:
            return node.value
        if node is None:
            raise Unmappable(f"{api} without a loss")
        used = _names_in(node)
        graph = set(self.placeholders) | self.graph_names | self.model_objects | self.variables
        tf1_values = (set(self.schedules) | self.global_steps | set(self.train_ops)
                      | set(self.optimizers) | set(self.summaries.ops))
        program_locals = bound_names(self.func) | {p.name.value for p in self.func.params.params}
        if not used & self.graph_names:
            raise Unmappable(f"{api} of an expression that reads no loss computed in the program")
        if used & tf1_values:
            raise Unmappable(f"{api} of an expression that reads `{sorted(used & tf1_values)[0]}`, "
                             "a TF1 value (train op, optimizer, step, schedule), not a graph value")
        plain = (used - graph) & program_locals
        if plain:
            raise Unmappable(f"{api} of an expression that reads `{sorted(plain)[0]}`, a Python "
                             "value of the program, with graph values")
        stem = re.sub(r"train_?op|train_?step|minimize_?op|_?op$|_?solver$", "", op_name).strip("_")
        name = self._fresh(f"{stem}_objective" if stem else "objective")
        self.graph.append(cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))], node)]))
        self.graph_names.add(name)
        return name

    def _var_list(self, node) -> Optional["VarFilter | ObjectVariables"]:
        """What a var_list argument selects: a filtered list named earlier, or model objects'
        variable properties written in place (`var_list=D.vars`); None when not known."""
        if isinstance(node, cst.Name) and node.value in self.var_filters:
            return self.var_filters[node.value]
        return self._object_variables(node) or self.hand_made.var_list(node)

    def _object_variables(self, node) -> Optional[ObjectVariables]:
        """`D.vars`, `D.vars + G.vars`: properties of model objects whose class returns the
        model's own variables (`variable_properties`); None for anything else."""
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            left, right = self._object_variables(node.left), self._object_variables(node.right)
            if left is None or right is None or set(left.objects) & set(right.objects):
                return None
            return ObjectVariables(left.objects + right.objects)
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            obj = node.value.value
            cls = self.object_classes.get(obj)
            if obj in self.model_objects and node.attr.value in self.variable_properties.get(cls, ()):
                return ObjectVariables((obj,))
        return None

    def _global_step_name(self, node) -> str:
        """The global step a train op increments: a name bound to it, or the call
        `tf.train.get_global_step()` itself (then keyed by its API name)."""
        if isinstance(node, cst.Name) and node.value in self.global_steps:
            return node.value
        if isinstance(node, cst.Call) and not node.args and self.resolve(node.func) in GLOBAL_STEP:
            return GLOBAL_STEP[0]
        raise Unmappable("global_step=... of a step the rewrite does not know")

    def _compute_gradients(self, name: str, call: cst.Call) -> List[cst.BaseStatement]:
        optimizer = call.func.value
        if not (isinstance(optimizer, cst.Name) and optimizer.value in self.optimizers):
            raise Unmappable("compute_gradients on an optimizer the rewrite does not know")
        # The gradients' name (`grads_and_vars`) says nothing of the loss: a plain `objective`.
        loss = cst.Name(self._minimized_loss("", call.args[0].value if call.args else None,
                                             "compute_gradients"))
        var_prefix = None
        for arg in call.args[1:]:
            key = arg.keyword.value if arg.keyword else "var_list"
            var_prefix = self._var_list(arg.value) if key == "var_list" else None
            if var_prefix is None:
                raise Unmappable(f"compute_gradients argument {key} is not supported yet")
        self.gradient_sets[name] = (loss.value, optimizer.value, var_prefix)
        # Later statements that process the gradients (clipping) are graph statements.
        self.graph_names.add(name)
        return []

    def _apply_gradients(self, name: str, call: cst.Call, wired: bool) -> List[cst.BaseStatement]:
        optimizer = call.func.value
        if not (isinstance(optimizer, cst.Name) and optimizer.value in self.optimizers):
            raise Unmappable("apply_gradients on an optimizer the rewrite does not know")
        expr = call.args[0].value if call.args else None
        if expr is None:
            raise Unmappable("apply_gradients without gradients")
        for arg in call.args[1:]:
            key = arg.keyword.value if arg.keyword else None
            if key == "global_step":
                self.step_optimizer[self._global_step_name(arg.value)] = optimizer.value
            else:
                raise Unmappable(f"apply_gradients argument {key or 'positional'} is not supported yet")
        # Which compute_gradients result do the applied gradients come from?
        needed = _names_in(expr)
        for stmt in self._slice(sorted(needed & self.graph_names)):
            needed |= _names_in(stmt.body[0].value)
        sources = [g for g in self.gradient_sets if g in needed]
        if len(sources) != 1:
            raise Unmappable("apply_gradients of gradients that do not come from one compute_gradients")
        loss, opt_name, var_prefix = self.gradient_sets[sources[0]]
        if opt_name != optimizer.value:
            raise Unmappable("gradients computed by one optimizer and applied by another")
        self.train_ops[name] = TrainOp(name, loss, opt_name, var_prefix=var_prefix,
                                       gradients_name=sources[0], apply_expr=expr, wired=wired)
        return []

    def _group(self, name: str, call: cst.Call) -> List[cst.BaseStatement]:
        """`tf.group(minimize_op, *update_ops)`: the train op, with its update ops run."""
        ops, updates, scoped = [], 0, True
        for arg in call.args:
            if arg.keyword is not None:
                continue
            value = arg.value  # `*update_ops` is a star Arg whose value is the list
            if isinstance(value, cst.Name) and value.value in self.train_ops:
                ops.append(self.train_ops[value.value])
            elif self._is_update_ops(value):
                updates += 1
                scoped = scoped and self._scoped_update_ops(value)
            else:
                raise Unmappable("tf.group of something other than a train op and UPDATE_OPS")
        if len(ops) != 1:
            raise Unmappable("tf.group without exactly one train op")
        op = ops[0]
        wired = op.wired or updates > 0
        scoped = wired and scoped and (op.scoped_updates or not op.wired)
        self.train_ops[name] = TrainOp(name, op.loss, op.optimizer, op.returns_loss, op.var_prefix,
                                       op.gradients_name, op.apply_expr, wired=wired,
                                       scoped_updates=scoped)
        return []

    def _create_train_op(self, name: str, call: cst.Call, stmt) -> List[cst.BaseStatement]:
        positional = [a.value for a in call.args if a.keyword is None]
        if len(positional) != 2 or len(call.args) != 2:
            raise Unmappable("create_train_op with extra arguments")
        loss, optimizer = positional
        prelude: List[cst.BaseStatement] = []
        if isinstance(optimizer, cst.Call) and self.resolve(optimizer.func) in OPTIMIZER_NAMES:
            # `create_train_op(loss, tf.train.AdamOptimizer(0.01))`: the optimizer gets a name.
            opt_name = self._fresh("optimizer")
            prelude = self._optimizer(opt_name, self.resolve(optimizer.func), optimizer,
                                      cst.parse_statement(f"{opt_name} = 0"))
            prelude = [p.with_changes(leading_lines=stmt.leading_lines) for p in prelude]
            optimizer = cst.Name(opt_name)
        if not (isinstance(loss, cst.Name) and isinstance(optimizer, cst.Name)
                and optimizer.value in self.optimizers):
            raise Unmappable("create_train_op of an expression")
        self.train_ops[name] = TrainOp(name, loss.value, optimizer.value, returns_loss=True, wired=True)
        return prelude

    # -- the session block ----------------------------------------------------------------------
    def _session_part(self, stmts, sess: str) -> List[cst.BaseStatement]:
        self.sess = sess
        self.feed_dicts: Dict[str, cst.Dict] = {}
        return self._session_block(stmts)

    def _session_block(self, stmts) -> List[cst.BaseStatement]:
        out: List[cst.BaseStatement] = []
        for stmt in stmts:
            # `images, labels = next(iterator)` before a statement whose runs read get_next()
            out.extend(self.inputs.with_pulls(self._session_statement(stmt)))
        return out

    def _session_statement(self, stmt) -> List[cst.BaseStatement]:
        stmt = stmt.visit(_DefaultSessionRuns(self))  # `op.run(...)` -> `sess.run(op, ...)`
        iteration = self.inputs.compound(stmt, self._session_block)  # OutOfRangeError loops
        if iteration is not None:
            return iteration
        if isinstance(stmt, cst.With) and len(stmt.items) == 1 and stmt.items[0].asname is None \
                and isinstance(stmt.items[0].item, cst.Call) and not stmt.items[0].item.args \
                and dotted(stmt.items[0].item.func) == f"{self.sess}.as_default":
            # `with sess.as_default():` makes `op.run()` use it: its body runs in the session.
            inner = self._session_block(list(stmt.body.body))
            if inner:
                inner[0] = inner[0].with_changes(leading_lines=[*stmt.leading_lines,
                                                                *inner[0].leading_lines])
            return inner
        stmt, summary = self.summaries.session_statement(stmt, self._is_run)  # FileWriter, add_summary
        if summary is not None:
            return [s.visit(_RunRewriter(self)) for s in summary]
        if isinstance(stmt, cst.SimpleStatementLine):
            if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign) and \
                    isinstance(stmt.body[0].value, cst.Dict):
                targets = _assigned(stmt)
                keys = [e.key for e in stmt.body[0].value.elements if isinstance(e, cst.DictElement)]
                if len(targets) == 1 and keys and all(isinstance(k, cst.Name) and k.value in self.placeholders
                                                       for k in keys):
                    return self._feed_dict(targets[0], stmt)
            if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) and \
                    self._saver_call(stmt.body[0].value, "restore"):
                restored = self._restore(stmt.body[0].value)
                restored[0] = restored[0].with_changes(leading_lines=stmt.leading_lines)
                return restored
            if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr):
                call = stmt.body[0].value
                if self._initializer_run(call):
                    return []  # `tf.global_variables_initializer().run()`: Keras initialises
                if self._is_run(call):
                    fetch = call.args[0].value if call.args else None
                    initialized = self._iterator_initializations(call, stmt.leading_lines)
                    if initialized is not None:
                        return initialized
                    if isinstance(fetch, cst.Call) and self.resolve(fetch.func) in INITIALIZERS:
                        return []
                    if isinstance(fetch, cst.Name) and fetch.value in self.initializer_names:
                        return []
                    expr = self._run(call, None)
                    return [stmt.with_changes(body=[stmt.body[0].with_changes(value=expr)])] if expr else []
            if len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign) and self._is_run(stmt.body[0].value):
                assign = stmt.body[0]
                if len(assign.targets) != 1:
                    raise Unmappable("chained assignment of sess.run")
                target, expr = self._run(assign.value, assign.targets[0].target)
                if expr is None:
                    return []
                new = assign.with_changes(targets=[assign.targets[0].with_changes(target=target)], value=expr)
                return [stmt.with_changes(body=[new])]
            if late_graph_statement(self, stmt):  # `accuracy = ...` built in the session block
                return []
            return [stmt.visit(_RunRewriter(self))]
        if isinstance(stmt, (cst.For, cst.While, cst.If, cst.With)):
            new_body = self._session_block(list(stmt.body.body))
            updated = stmt.with_changes(body=stmt.body.with_changes(body=new_body or [cst.SimpleStatementLine([cst.Pass()])]))
            if getattr(stmt, "orelse", None) is not None:
                orelse = stmt.orelse
                if isinstance(orelse, cst.Else):
                    orelse = orelse.with_changes(body=orelse.body.with_changes(
                        body=self._session_block(list(orelse.body.body))))
                else:
                    raise Unmappable("elif chains around sess.run are not supported yet")
                updated = updated.with_changes(orelse=orelse)
            # The header (loop range, condition) may read session values too.
            return [updated]
        raise Unmappable(f"a {type(stmt).__name__} statement in the session block")

    def _iterator_initializations(self, call: cst.Call, leading) -> Optional[List[cst.BaseStatement]]:
        """`sess.run(iterator.initializer[, feed_dict=...])`, maybe in a list with the variable
        initializers: a fresh Python iterator over the dataset built again (datasets.py)."""
        fetch = call.args[0].value if call.args else None
        iterators = self.inputs.initializer_run(fetch) if fetch is not None else None
        if iterators is None:
            return None
        items = [e.value for e in fetch.elements] if isinstance(fetch, (cst.List, cst.Tuple)) else [fetch]
        if len(items) != len(iterators) + sum(
                1 for item in items if (isinstance(item, cst.Call) and self.resolve(item.func) in INITIALIZERS)
                or (isinstance(item, cst.Name) and item.value in self.initializer_names)):
            raise Unmappable("sess.run of an iterator initializer together with other fetches")
        feeds = self._feeds(call)
        defaults = {name: ph.default for name, ph in self.placeholders.items()}
        out: List[cst.BaseStatement] = []
        for iterator in iterators:
            out += self.inputs.initialize(iterator, feeds if len(iterators) == 1 else {}, defaults,
                                          leading if not out else [])
        return out

    def _initializer_run(self, node) -> bool:
        """`tf.global_variables_initializer().run()` or `init.run()` (the default session's
        run, DCGAN-tensorflow's spelling of `sess.run(init)`)."""
        if not (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
                and node.func.attr.value == "run"):
            return False
        owner = node.func.value
        return (isinstance(owner, cst.Call) and not owner.args
                and self.resolve(owner.func) in INITIALIZERS) or \
            (isinstance(owner, cst.Name) and owner.value in self.initializer_names)

    def _saver_call(self, node, method: str) -> bool:
        if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                and node.func.attr.value == method):
            return False
        owner = node.func.value
        return (isinstance(owner, cst.Name) and owner.value in self.savers) or \
            (isinstance(owner, cst.Call) and self.resolve(owner.func) == SAVER and not owner.args)

    def _is_run(self, node) -> bool:
        return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                and isinstance(node.func.value, cst.Name) and node.func.value.value == self.sess
                and node.func.attr.value == "run")

    def _feed_dict(self, name: str, stmt: cst.SimpleStatementLine) -> List[cst.BaseStatement]:
        """`feed = {x: batch_x, z: rng.randn(4, 2)}`: its values are passed to the train steps
        that run with it. A value that computes something (a call: `rng.randn`, `next(it)`) is
        bound once to a name here, as TF1 evaluated the dict once however many runs used it;
        names and constants are passed as they are."""
        value = stmt.body[0].value
        kept: List[cst.BaseStatement] = []
        elements = []
        for element in value.elements:
            if isinstance(element, cst.DictElement) and not _plain_value(element.value):
                temp = self._fresh(f"{name}_{element.key.value}")
                kept.append(cst.SimpleStatementLine(
                    [cst.Assign([cst.AssignTarget(cst.Name(temp))], element.value)],
                    leading_lines=stmt.leading_lines if not kept else ()))
                element = element.with_changes(value=cst.Name(temp))
            elements.append(element)
        self.feed_dicts[name] = value.with_changes(elements=elements)
        return kept

    def _feeds(self, call: cst.Call) -> Dict[str, cst.BaseExpression]:
        feed = None
        for index, arg in enumerate(call.args):
            if (arg.keyword and arg.keyword.value == "feed_dict") or (arg.keyword is None and index == 1):
                feed = arg.value
        if feed is None:
            return {}
        if isinstance(feed, cst.Name) and feed.value in self.feed_dicts:
            feed = self.feed_dicts[feed.value]
        if not isinstance(feed, cst.Dict):
            raise Unmappable("feed_dict that is not a dict literal")
        feeds: Dict[str, cst.BaseExpression] = {}
        for element in feed.elements:
            if isinstance(element, cst.DictElement) and isinstance(element.key, cst.Name) and \
                    element.key.value in self.inputs.elements:
                raise Unmappable(f"feed_dict feeds `{element.key.value}`, a tensor of a tf.data "
                                 "iterator's get_next()")
            if not (isinstance(element, cst.DictElement) and isinstance(element.key, cst.Name)
                    and element.key.value in self.placeholders):
                raise Unmappable("feed_dict key that is not a placeholder of this function")
            feeds[element.key.value] = element.value
        return feeds

    def _run(self, call: cst.Call, target):
        fetch = call.args[0].value if call.args else None
        feeds = self._feeds(call)
        if isinstance(fetch, (cst.List, cst.Tuple)):
            items = [e.value for e in fetch.elements]
            is_list = True
        else:
            items, is_list = [fetch], False
        names = []
        for item in items:
            if not isinstance(item, cst.Name):
                item = self._fetched_expression(item)
            names.append(item.value)
        if any(n in self.assign_ops.ops for n in names):
            expr = self.assign_ops.run(names, feeds, target)  # `sess.run(clip_d)`
            return expr
        # One element per run from each iterator the fetches read, shared by all of them.
        feeds = {**feeds, **self.inputs.pull(self._run_reads(names))}
        train = [n for n in names if n in self.train_ops]
        if len(train) > 1:
            raise Unmappable("several train ops in one sess.run")
        if len(names) > 1 and any(n in self.schedules for n in names) and not (
                len(train) == 1 and all(self.schedule_optimizer.get(n) == self.train_ops[train[0]].optimizer
                                        for n in names if n in self.schedules)):
            # With the train op of its optimizer, the fetched rate is the one that step applies
            # (TF1 computed the schedule once per run, before the update incremented the step).
            raise Unmappable("sess.run of a learning-rate schedule together with other fetches")
        if len(names) == 1 and not feeds and names[0] in self.schedule_optimizer:
            # sess.run(lr): the schedule's value at the optimizer's current step.
            expr = cst.parse_expression(f"{self.schedule_optimizer[names[0]]}.learning_rate.numpy()")
            return (target, expr) if target is not None else expr
        if len(names) == 1 and not feeds and names[0] in self.global_steps and \
                names[0] in self.step_optimizer:
            # sess.run(global_step): the steps its optimizer has applied. (Fetched with the train
            # op, TF1 read it in no fixed order with the increment: refused below.)
            expr = cst.parse_expression(f"{self.step_optimizer[names[0]]}.iterations.numpy()")
            return (target, expr) if target is not None else expr
        if any(n in self.variables for n in names):
            if len(names) != 1 or feeds:
                raise Unmappable("sess.run of a variable together with other fetches")
            expr = cst.parse_expression(f"{names[0]}.numpy()")
            return (target, expr) if target is not None else expr
        if train and any(n in self.global_steps for n in names):
            # No dependency orders TF1's read of the step with the train op's increment.
            raise Unmappable("sess.run of the global step together with a train op (TF1 read it "
                             "before or after the increment, in no fixed order)")
        if train:
            op = self.train_ops[train[0]]
            others = [n for n in names if n != op.name]
            results = ([op.loss] if op.returns_loss else []) + others
            # A train step returns its loss first (what verify compares step by step), also when
            # the program fetched other values with the train op: the caller skips it.
            loss_added = bool(results) and results[0] != op.loss
            if loss_added:
                results = [op.loss] + results
            step_call = self._step_call(op, results, feeds)
            if target is None:
                if not is_list:
                    return step_call
                if loss_added:
                    step_call = cst.parse_expression(
                        _RENDER.code_for_node(step_call) + ("[1]" if len(others) == 1 else "[1:]"))
                # Used inside an expression: keep sess.run's list, None for the train op.
                position = names.index(op.name)
                if len(others) == 1:
                    elements = [cst.Name("None"), step_call] if position == 0 else [step_call, cst.Name("None")]
                elif position in (0, len(names) - 1):
                    starred = cst.StarredElement(step_call)
                    elements = [cst.Name("None"), starred] if position == 0 else [starred, cst.Name("None")]
                else:
                    raise Unmappable("a train op in the middle of a sess.run list used as a value")
                return cst.List([e if isinstance(e, cst.StarredElement) else cst.Element(e) for e in elements])
            if is_list:
                if not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != len(names):
                    raise Unmappable("sess.run result unpacked into a different shape")
                kept = [e for e, n in zip(target.elements, names) if n != op.name]
                if loss_added:
                    kept = [cst.Element(cst.Name("_"))] + kept
                if not kept:
                    return None, step_call
                new_target = kept[0].value if len(kept) == 1 else target.with_changes(
                    elements=[e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in kept])
                return new_target, step_call
            return target, step_call
        exprs = [self._value_of(n, feeds) for n in names]
        if is_list:
            expr = cst.Tuple([cst.Element(e) for e in exprs]) if isinstance(fetch, cst.Tuple) else \
                cst.List([cst.Element(e) for e in exprs])
        else:
            expr = exprs[0]
        return (target, expr) if target is not None else expr

    def _run_reads(self, names: Sequence[str]) -> Set[str]:
        """Every name the fetches `names` read through the graph (a train op: its loss and the
        processing of its gradients)."""
        targets: List[str] = []
        for name in names:
            op = self.train_ops.get(name)
            targets.append(op.loss if op is not None else name)
            if op is not None and op.apply_expr is not None:
                targets += sorted(_names_in(op.apply_expr) & self.graph_names)
        read = set(targets)
        for stmt in self._slice(targets):
            read |= _names_in(stmt.body[0].value)
        return read

    def _fetched_expression(self, item) -> cst.Name:
        """`sess.run(predictions['logits'])`: the fetched expression becomes a graph value."""
        used = _names_in(item)
        if not (used & self.graph_names) or used - self.graph_names - set(self.placeholders) - self.model_objects:
            raise Unmappable("sess.run of an expression that is not computed from graph values")
        base = "_".join(re.findall(r"[A-Za-z0-9]+", _RENDER.code_for_node(item)))[:40] or "fetched"
        name = self._fresh(base)
        stmt = cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))], item)])
        self.graph.append(stmt)
        self.graph_names.add(name)
        return cst.Name(name)

    def _summary_value(self, expr: cst.BaseExpression, tag: cst.BaseExpression) -> str:
        """What `tf.summary.scalar(tag, expr)` summarises when `expr` is not a named tensor: a
        new graph name computing it (from graph values, placeholders and models; module names
        such as `tf` read as they are), or the expression itself when it reads no graph value
        (a Python number: TF1 wrote a constant)."""
        if isinstance(expr, cst.Name) and expr.value in self.schedules:
            return expr.value  # the rate a train step applies (fetched with its train op: _run)
        used = _names_in(expr)
        program_locals = bound_names(self.func) | {p.name.value for p in self.func.params.params}
        graph = set(self.placeholders) | self.graph_names | self.model_objects
        tf1_values = (set(self.schedules) | self.global_steps | self.variables | set(self.train_ops)
                      | set(self.optimizers) | set(self.summaries.ops))
        if used & tf1_values:
            raise Unmappable(f"tf.summary.scalar of `{sorted(used & tf1_values)[0]}`, a TF1 value "
                             "(schedule, step, variable) the summary rewrite does not compute yet")
        if not used & graph:
            if _calls_in(expr):
                raise Unmappable("tf.summary.scalar of a call that reads no graph value")
            return PythonValue(_RENDER.code_for_node(expr))
        plain = (used - graph) & program_locals
        if plain:
            raise Unmappable(f"tf.summary.scalar of an expression that reads `{sorted(plain)[0]}`, "
                             "a Python value of the program, with graph values")
        base = "_".join(re.findall(r"[A-Za-z0-9]+", str(literal(tag)) if isinstance(literal(tag), str)
                                   else _RENDER.code_for_node(expr)))[:40]
        name = self._fresh(base or "summary_value")
        stmt = cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))], expr)])
        self.graph.append(stmt)
        self.graph_names.add(name)
        return name

    def _slice(self, targets: Sequence[str]) -> List[cst.SimpleStatementLine]:
        needed = set(targets)
        picked = []
        for stmt in reversed(self.graph):
            defined = set(_assigned(stmt))
            if defined & needed:
                picked.append(stmt)
                needed |= _names_in(stmt.body[0].value)
        return list(reversed(picked))

    def _inputs_of(self, slice_stmts, feeds) -> Tuple[List[str], Dict[str, cst.BaseExpression]]:
        """(placeholders the slice reads, substitutions for fed literals and defaults)."""
        used: Set[str] = set()
        for stmt in slice_stmts:
            used |= _names_in(stmt.body[0].value)
        substitutions: Dict[str, cst.BaseExpression] = {}
        args = []
        for name, ph in self.placeholders.items():
            if name not in used:
                continue
            if name in feeds and isinstance(literal(feeds[name]), (bool, int, float)):
                substitutions[name] = feeds[name]
            elif name not in feeds:
                if ph.default is None:
                    raise Unmappable(f"placeholder {name} is read but not fed")
                substitutions[name] = ph.default
            else:
                args.append(name)
        return args, substitutions

    def _value_of(self, name: str, feeds) -> cst.BaseExpression:
        if name in self.placeholders:
            return feeds.get(name, self.placeholders[name].default)
        if name not in self.graph_names:
            raise Unmappable(f"sess.run of {name}, which the program does not compute")
        slice_stmts = self._slice([name])
        args, substitutions = self._inputs_of(slice_stmts, feeds)
        for arg in args:
            substitutions[arg] = self.hand_made.cast_feed(arg, feeds[arg])
        if len(slice_stmts) == 1 and _assigned(slice_stmts[0]) == [name]:
            value = slice_stmts[0].body[0].value.visit(SubstituteNames(substitutions)).visit(
                _LossRewriter(self)).visit(TF1CallFixer(self.resolve))
            self._note_training_mode_fetch(name, [value])
            return value
        # Several statements: a helper function computes the value.
        objects = sorted(self._objects_in(slice_stmts))
        params = objects + args
        body = [s.visit(SubstituteNames({k: v for k, v in substitutions.items() if k not in args}))
                .visit(_LossRewriter(self)).visit(TF1CallFixer(self.resolve)) for s in slice_stmts]
        self._note_training_mode_fetch(name, body)
        read = set()
        for stmt in slice_stmts:
            read |= _names_in(stmt.body[0].value)
        body_lines = self._local_function_lines(read, self.indent)
        body_lines += [self.indent + line for line in with_nested_tapes(
            body, self.resolve, self.tf, self.indent, self._input_dtypes(args))] \
            if calls_gradients(body, self.resolve) \
            else [self.indent + _RENDER.code_for_node(stmt).strip() for stmt in body]
        body_lines.append(f"{self.indent}return {name}")
        key = (name, tuple(params), tuple(body_lines))
        helper = self.value_helpers.get(key)
        if helper is None:  # the same value fetched again (eval in a loop and at the end): one helper
            helper = self.value_helpers[key] = self._fresh(f"compute_{name}")
            self.helpers.append("\n".join([f"def {helper}({', '.join(params)}):"] + body_lines) + "\n")
        call_args = objects + [_RENDER.code_for_node(self.hand_made.cast_feed(a, feeds[a])) for a in args]
        return cst.parse_expression(f"{helper}({', '.join(call_args)})")

    def _input_dtypes(self, args, cast: bool = False) -> Dict[str, Optional[str]]:
        """The fed values a step or helper takes -> their placeholder's dtype (or None); with
        `cast` (a train step, which casts them first) "" for those already cast."""
        dtypes = {a: self.placeholders[a].dtype if a in self.placeholders else None for a in args}
        return {a: ("" if cast and d else d) for a, d in dtypes.items()}

    def _note_training_mode_fetch(self, name: str, nodes) -> None:
        """`sess.run(loss)` outside the train op ran the batch norms in training mode without
        their UPDATE_OPS; a Keras model called with training=True updates its moving statistics."""
        found: List[str] = []
        objects = self.model_objects

        class Calls(cst.CSTVisitor):
            def visit_Call(self, call):
                if isinstance(call.func, cst.Name) and call.func.value in objects and any(
                        a.keyword is not None and a.keyword.value == "training"
                        and isinstance(a.value, cst.Name) and a.value.value == "True" for a in call.args):
                    found.append(call.func.value)

        for node in nodes:
            node.visit(Calls())
        if found:
            self.notes.append(("TFM404", f"`{name}` is fetched outside a train op with "
                                         f"`{found[0]}` in training mode: Keras updates its batch-norm "
                                         "moving statistics there, TF1's sess.run did not (behaviour "
                                         "change where the model has batch norms)"))

    def _objects_in(self, slice_stmts) -> Set[str]:
        used: Set[str] = set()
        for stmt in slice_stmts:
            used |= _names_in(stmt.body[0].value)
        return used & (self.model_objects | set(self.hand_made.holders))  # holders: parameters too

    def _step_call(self, op: TrainOp, results: List[str], feeds) -> cst.BaseExpression:
        slice_stmts = self._slice(results + [op.loss])
        args, substitutions = self._inputs_of(slice_stmts, feeds)
        key = op.name
        if key in self.step_names:
            if self.step_signature[key] != args or self.fed_literals[key].keys() != substitutions.keys() or any(
                    render(self.fed_literals[key][k]) != render(v) for k, v in substitutions.items()):
                raise Unmappable(f"{op.name} is run with different feeds in different places")
        else:
            self._make_step(op, results, slice_stmts, args, substitutions)
        objects = sorted(self._objects_in(slice_stmts)
                         | self.hand_made.step_names(op.var_prefix, slice_stmts))  # hand-made weights
        call_args = objects + [op.optimizer] + [_RENDER.code_for_node(feeds[a]) for a in args]
        for placeholder in self.optimizer_feeds.get(op.optimizer, {}).values():
            if placeholder not in feeds:
                raise Unmappable(f"{placeholder} is not fed where {op.name} runs")
            call_args.append(f"{self.tf}.convert_to_tensor({_RENDER.code_for_node(feeds[placeholder])}, "
                             f"{self.tf}.float32)")
        return cst.parse_expression(f"{self.step_names[key]}({', '.join(call_args)})")

    def _make_step(self, op: TrainOp, results, slice_stmts, args, substitutions) -> None:
        objects = sorted(self._objects_in(slice_stmts)
                         | self.hand_made.step_names(op.var_prefix, slice_stmts))  # hand-made weights
        if not objects:
            # Name what computes it: a function left TF1 code (the usual cause), or nothing.
            called = sorted({c.func.value for stmt in slice_stmts for c in _calls_in(stmt)
                             if isinstance(c.func, cst.Name) and c.func.value not in _BUILTIN_NAMES})
            raise Unmappable(f"the loss of {op.name} uses no model object" + (
                f": it is computed by `{called[0]}`, which is not a model class the rewrite made"
                if called else ""))
        if not op.wired and not self.preserve_bugs:
            self.notes.append(("TFM206", f"{op.name} never ran UPDATE_OPS in TF1"))
        stem = re.sub(r"_?train_op$|^train_op_?", "", op.name)
        if stem in ("train", "op", "minimize", "optimize", "update", "step"):
            stem = ""  # `train = opt.minimize(loss)` -> train_step, not train_train_step
        name = self._fresh(f"train_{stem}_step" if stem else "train_step")
        self.step_names[op.name] = name
        self.step_signature[op.name] = args
        self.fed_literals[op.name] = substitutions
        ind = self.indent
        used = set()
        for stmt in slice_stmts:
            used |= _names_in(stmt.body[0].value)
        self._check_no_free_locals(name, used, slice_stmts)
        hyper = self.optimizer_feeds.get(op.optimizer, {})
        # The program's statements copied into the step: the loss part (in the tape) and, after
        # compute_gradients, the processing of the gradients before apply_gradients.
        loss_part = {id(s) for s in slice_stmts}
        processing = [] if op.apply_expr is None else [
            s for s in self._slice(sorted(_names_in(op.apply_expr) & self.graph_names))
            if id(s) not in loss_part]
        # The template's own locals (tape, variables, gradients, optimizer) must not shadow a
        # name those statements bind or read (`gradients = tf.gradients(...)` fetched after
        # the template bound its own `gradients` would return the wrong tensor, silently).
        program_names = set(objects) | set(args) | set(hyper.values()) | set(results) | {op.loss}
        for stmt in [*slice_stmts, *processing]:
            program_names |= _names_in(stmt) | set(_assigned(stmt))
        if op.apply_expr is not None:
            program_names |= _names_in(op.apply_expr) | {op.gradients_name}
        tape, variables_name, gradients_name = (free_name(base, program_names)
                                                for base in ("tape", "variables", "gradients"))
        # The parameter keeps the program's name (`d_optimizer` pairs with make_d_optimizer).
        opt = op.optimizer if op.optimizer not in objects + args else free_name("optimizer", program_names)
        params = objects + [opt] + args + [p for p in hyper.values() if p not in args]
        lines = [f"@{self.tf}.function", f"def {name}({', '.join(params)}):"]
        for arg in args:
            dtype = self.placeholders[arg].dtype if arg in self.placeholders else None
            if dtype is not None:
                # A feed was converted to the placeholder's dtype in TF1 (float64 numpy -> float32).
                lines.append(f"{ind}{arg} = {self.tf}.cast({arg}, {dtype})")
        for key, placeholder in hyper.items():
            lines.append(f"{ind}{opt}.{key}.assign({placeholder})  # fed at each step in TF1")
        for alias in sorted(used & set(self.plain_aliases)):
            lines.append(ind + _RENDER.code_for_node(self.plain_aliases[alias]).strip())
        lines.extend(self._local_function_lines(used, ind))
        lines.append(f"{ind}with {self.tf}.GradientTape() as {tape}:")
        new_stmts = [stmt.visit(SubstituteNames(substitutions)).visit(_LossRewriter(self)).visit(
            TF1CallFixer(self.resolve)) for stmt in slice_stmts]
        # `tf.gradients(y, [x])` in the loss (a gradient penalty): a nested tape (gan_ops.py)
        lines.extend(ind * 2 + line for line in with_nested_tapes(new_stmts, self.resolve, self.tf,
                                                                     ind, self._input_dtypes(args, True)))
        hand_made = self.hand_made.variables(op.var_prefix, slice_stmts)  # hand-made weights
        trained = self._trained_objects(op, objects)
        if op.var_prefix is not None:  # a var_list: the step may call models it does not train
            others = [o for o in objects if o not in trained and o in self.model_objects]
            # --preserve-bugs keeps never-updated statistics never updated (momentum=1.0).
            if others and (op.wired or (self.forgotten_update_ops and not self.preserve_bugs)):
                self.notes.append(("TFM403", f"{name} calls {', '.join(others)} with training=True: "
                                             + _other_models_updates(op)))
        variables = " + ".join([f"{o}.trainable_variables" for o in trained]
                               + ([hand_made] if hand_made else []))
        if not variables:
            raise Unmappable(f"{op.name} updates no variable the rewrite can name")
        lines.append(f"{ind}{variables_name} = {variables}")
        lines.append(f"{ind}{gradients_name} = {tape}.gradient({op.loss}, {variables_name})")
        for result in results:
            if result in self.schedules:  # read before apply_gradients counts the step
                lines.append(f"{ind}{result} = {opt}.learning_rate  # the rate this step applies")
        if op.apply_expr is None:
            lines.append(f"{ind}{opt}.apply_gradients(zip({gradients_name}, {variables_name}))")
        else:
            # TF1's compute_gradients returned (gradient, variable) pairs; the program's own
            # processing (clipping, scaling) runs on them as before.
            lines.append(f"{ind}{op.gradients_name} = list(zip({gradients_name}, {variables_name}))")
            for stmt in processing:
                new = stmt.visit(SubstituteNames(substitutions))
                text = _RENDER.code_for_node(new.with_changes(leading_lines=[])).strip()
                lines.extend(ind + line for line in text.splitlines())
            lines.append(f"{ind}{opt}.apply_gradients({_RENDER.code_for_node(op.apply_expr)})")
        # A step whose train op was fetched alone still returns its loss (the caller drops it):
        # it costs nothing and is what a TF2 train step is expected to give (verify reads it).
        lines.append(f"{ind}return {', '.join(results or [op.loss])}")
        self.helpers.append("\n".join(lines) + "\n")
        self.graph_used_in_steps = True

    def _check_no_free_locals(self, step: str, used: Set[str], slice_stmts) -> None:
        """A module-level step sees the program's values only through its parameters: a local
        it reads otherwise (`images, labels = input_fn()`, tensors made by a function the
        rewrite does not follow) would be an undefined global there."""
        if self.func.name.value == PSEUDO_FUNCTION:
            return  # a module-level program: its names are globals the step reads as such
        program_locals = bound_names(self.func) | {p.name.value for p in self.func.params.params}
        known = set(self.placeholders) | self.model_objects | set(self.plain_aliases) \
            | set(self.local_functions) | set(self.hand_made.holders)
        for stmt in slice_stmts:
            known |= set(_assigned(stmt))
        free = sorted((used & program_locals) - known)
        if free:
            raise Unmappable(f"{step} would read `{free[0]}`, a value of the program that is neither "
                             "a placeholder, a tf.data element nor computed in the graph (made by "
                             "a function the rewrite does not follow, such as an input_fn)")

    def _local_function_lines(self, used: Set[str], ind: str) -> List[str]:
        """The program's own helper functions the step's statements call, defined again in the
        step; only those that read nothing else of the program (no closure over its locals)."""
        lines: List[str] = []
        program_locals = bound_names(self.func) | {p.name.value for p in self.func.params.params} \
            | set(self.local_functions)
        for name in sorted(used & set(self.local_functions)):
            func = self.local_functions[name]
            own = bound_names(func) | {p.name.value for p in func.params.params} | {name}
            if (_names_in(func) - own) & program_locals:
                raise Unmappable(f"the train step calls `{name}`, a function of the program "
                                 "that reads the program's own variables")
            text = _RENDER.code_for_node(func.with_changes(leading_lines=[])).strip()
            lines.extend((ind + line) if line.strip() else "" for line in text.splitlines())
        return lines

    def _trained_objects(self, op: TrainOp, objects: Sequence[str]) -> List[str]:
        """The model objects whose variables `op` trains (its var_list scope, else all it calls)."""
        objects = [o for o in objects if o in self.model_objects]  # not hand-made weights
        if isinstance(op.var_prefix, HandMadeVarList):
            return []  # hand-made weights only (variable_models.py)
        if op.var_prefix is None:
            return list(objects)
        if isinstance(op.var_prefix, ObjectVariables):
            unused = [o for o in op.var_prefix.objects if o not in objects]
            if unused:
                raise Unmappable(f"var_list of {op.name} holds the variables of `{unused[0]}`, "
                                 "which its loss does not use")
            return [o for o in objects if o in op.var_prefix.objects]
        trained = [o for o in objects if self._selects(op, op.var_prefix, o)]
        if not trained:
            raise Unmappable(f"var_list of {op.name}: {op.var_prefix.describe()} are those of "
                             "no model the loss calls")
        return trained

    def _selects(self, op: TrainOp, var_filter: VarFilter, obj: str) -> bool:
        """Whether the var_list filter keeps all trainable variables of model `obj` (True) or
        none (False); Unmappable where it would keep some, or where that is not known."""
        cls = self.object_classes.get(obj, "")
        names = self.model_variables.get(cls)
        if names is not None and obj in self.object_names and cls not in self.model_names:
            names = [f"{self.object_names[obj]}/{name}" for name in names]  # named at the call site
        if names is not None:
            hits = {var_filter.test(f"{name}:0") for name in names}
            if len(hits) == 1:
                return hits.pop()
            if not hits:
                return False  # a model without variables: nothing to train
            raise Unmappable(f"var_list of {op.name}: {var_filter.describe()} are only some of "
                             f"the variables of `{obj}`")
        # Unknown layer names: decide by the model's scope, which starts every variable name.
        scope = self._object_scope(obj)
        if scope is None:
            raise Unmappable(f"var_list of {op.name}: the TF1 variable names of `{obj}` are not known")
        head = scope + "/"
        if var_filter.test(head):
            return True  # every variable name starts with `scope/`
        if var_filter.kind == "prefix" and var_filter.text.startswith(head):
            raise Unmappable(f"var_list of {op.name}: {var_filter.describe()} may be only some "
                             f"of the variables of `{obj}`")
        # A prefix the scope does not start with keeps none. A substring outside the scope name
        # could still be in a layer name: as before layer names were known, such a filter pairs
        # only with a model whose scope contains it, and so selects no model here.
        return False

    def _optimizer_builds(self, comment="# create its slots before restoring them") -> List[str]:
        """`optimizer.build(variables)` per optimizer: Keras 3 creates its slots lazily, and
        restored values only reach variables that exist (resuming training)."""
        lines = []
        for name in self.optimizers:
            ops = [op for op in self.train_ops.values() if op.optimizer == name]
            trained: List[str] = []
            hand_made: List[str] = []  # lists of hand-made weights (variable_models.py)
            for op in ops:
                slice_stmts = self._slice([op.loss])
                objects = sorted(self._objects_in(slice_stmts))
                for obj in self._trained_objects(op, objects):
                    if obj not in trained:
                        trained.append(obj)
                listed = self.hand_made.variables(op.var_prefix, slice_stmts)
                if listed and listed not in hand_made:
                    hand_made.append(listed)
            if not trained and not hand_made:
                raise Unmappable(f"cannot tell which variables {name} trains before restoring it")
            variables = " + ".join([f"{o}.trainable_variables" for o in trained] + hand_made)
            lines.append(f"{name}.build({variables})  {comment}")
        return lines

    # -- checks ---------------------------------------------------------------------------------
    def _plain_check(self, stmt):
        if _names_in(stmt) & (set(self.placeholders) | set(self.train_ops)):
            raise Unmappable("graph tensors used after the Session closed")
        return stmt

    def _fresh(self, base: str) -> str:
        # Nor a name the program binds: `train_step = opt.minimize(loss)` and the generated
        # `train_step(...)` it calls would be one local name.
        program_names = bound_names(self.func) | {p.name.value for p in self.func.params.params}
        name, n = base, 2
        while name in self.taken or name in program_names:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name

    def _validate(self, body) -> None:
        # get_next() tensors are bound again by `next(iterator)` before the runs that read them.
        leftovers = ((set(self.placeholders) - set(self.inputs.elements)) | self.inputs.leftovers()
                     | set(self.train_ops) | self.update_ops_names | {self.sess}
                     | self.initializer_names | set(self.var_filters) | self.trainable_names
                     | self.session_configs
                     | set(self.schedules) | set(self.summaries.ops) | set(self.summaries.fetched)
                     | self.global_steps | set(self.assign_ops.ops))
        module = cst.Module(body=body)
        self.inputs.check_converted(module)
        names = _names_in(module)
        # Graph tensors may remain only where a step or eval expression recomputes them.
        stale = (names & leftovers) | (names & self.graph_names)
        if stale:
            raise Unmappable(f"`{sorted(stale)[0]}` is still used as a TF1 graph value")
        for source in self.helpers + [module.code]:
            # The module's plain functions the steps and the loop call (a loss helper on tf.log)
            # run as TF 2 code too: renamed with the program, or it stays as it was.
            self._check_tf2_names(source)
            self.renamed_helpers.update(renamed_helpers(source, self.module_functions, self.resolve,
                                                        self._check_tf2_names,
                                                        externals=self.external_functions,
                                                        external_calls=self.external_renames))

    def _check_tf2_names(self, source: str) -> None:
        for name in _tf_names(source, self.resolve):
            if name.startswith(("tensorflow.app.flags.", "tensorflow.flags.")):
                continue  # `FLAGS.x`: the flags rule (TFM420, after this one) makes it absl
            if not exists_in_tf2(name):
                raise Unmappable(f"{name.replace('tensorflow.', 'tf.')} has no TF2 mapping yet")


def _other_models_updates(op: TrainOp) -> str:
    """TFM403's account of the batch-norm statistics of the models a step calls but does not
    train: Keras updates them at each training-mode call; what TF1 did depends on the UPDATE_OPS
    the train op ran."""
    if op.wired and op.scoped_updates:
        return ("Keras also updates its batch-norm statistics, which the TF1 program's scoped "
                "UPDATE_OPS did not (behaviour change; losses and weights are unaffected)")
    if op.wired:
        return ("Keras updates its batch-norm statistics, as TF1 did: the train op ran all of the "
                "graph's UPDATE_OPS, not only the trained network's (behaviour change only where "
                "TF1's also updated batch norms outside this step's loss, which Keras does not; "
                "losses and weights are unaffected)")
    # No UPDATE_OPS run, and some batch norm of the file collects its updates there (TFM206):
    # without one, TF1's batch norms updated in place at each call, as Keras does (no note).
    return ("Keras also updates its batch-norm statistics, which TF1 never did: the train op ran "
            "no UPDATE_OPS (TFM206; behaviour change; losses and weights are unaffected)")


class _LossRewriter(cst.CSTTransformer):
    """tf.losses.* (TF1) -> the TF2 expression with the same reduction."""

    def __init__(self, conv: ProgramConverter):
        super().__init__()
        self.conv = conv

    def leave_Call(self, original, updated):
        api = self.conv.resolve(original.func)
        if api not in _LOSSES:
            return updated
        first, second, template = _LOSSES[api]
        bound = {}
        for index, arg in enumerate(updated.args):
            key = arg.keyword.value if arg.keyword else [first, second][index] if index < 2 else None
            if key not in (first, second):
                raise Unmappable(f"{api.replace('tensorflow.', 'tf.')} with weights or other arguments")
            bound[key] = _RENDER.code_for_node(arg.value)
        return cst.parse_expression(template.format(tf=self.conv.tf, labels=bound[first], logits=bound[second]))


class _WithoutSessionGraphs(cst.CSTTransformer):
    """The tree without the `graph=` argument of its Sessions (`tf.Session(graph=graph)` runs the
    graph the program built: no other use of the tf.Graph object)."""

    def __init__(self, resolve):
        super().__init__()
        self.resolve = resolve

    def leave_Call(self, original, updated):
        if self.resolve(original.func) in SESSIONS:
            return updated.with_changes(args=[a for a in updated.args
                                              if not (a.keyword is not None and a.keyword.value == "graph")])
        return updated


class _DefaultSessionRuns(cst.CSTTransformer):
    """`train_op.run(feed_dict=...)`, `loss.eval(feed_dict=..., session=sess)`,
    `tf.global_variables_initializer().run()`: TF1's Operation.run / Tensor.eval are `sess.run`
    of the op or tensor in the default session (or the one passed), so they become that call
    and convert like it. Only on the program's own graph values, in the program's session."""

    def __init__(self, conv: ProgramConverter):
        super().__init__()
        self.conv = conv

    def leave_Call(self, original, updated):
        func = updated.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in ("run", "eval")):
            return updated
        conv, owner = self.conv, func.value
        runnable = set(conv.train_ops) | conv.graph_names | conv.variables | conv.initializer_names \
            | set(conv.schedules) | conv.global_steps | set(conv.inputs.elements) \
            | set(conv.assign_ops.ops)
        if not ((isinstance(owner, cst.Name) and owner.value in runnable) or (
                isinstance(owner, cst.Call) and not owner.args and conv.resolve(owner.func) in INITIALIZERS)
                or conv.inputs.initializer_run(owner) is not None):  # `iterator.initializer.run()`
            return updated
        feed = None
        for index, arg in enumerate(updated.args):
            key = arg.keyword.value if arg.keyword else ("feed_dict", "session")[index] if index < 2 else None
            if key == "feed_dict" and not arg.star:
                feed = arg.value
            elif key == "session":
                if not (isinstance(arg.value, cst.Name) and arg.value.value == conv.sess):
                    raise Unmappable(f"{render(func)}(session={render(arg.value)}): a session "
                                     "the program did not open")
            else:
                raise Unmappable(f"{render(func)}() with {key or 'another'} argument")
        code = f"{conv.sess}.run({_RENDER.code_for_node(owner)}" + (
            f", feed_dict={_RENDER.code_for_node(feed)})" if feed is not None else ")")
        return cst.parse_expression(code)


class _RunRewriter(cst.CSTTransformer):
    def __init__(self, conv: ProgramConverter):
        super().__init__()
        self.conv = conv

    def leave_Call(self, original, updated):
        if self.conv._is_run(original):
            return self.conv._run(updated, None)
        if self.conv._saver_call(original, "save"):
            return self.conv._save(updated)
        if self.conv._saver_call(original, "restore"):
            raise Unmappable("Saver.restore used as a value")
        return updated


def _plain_value(node) -> bool:
    """A name, attribute, subscript or constant: reading it twice gives the same value."""
    if isinstance(node, (cst.Name, cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.Attribute):
        return _plain_value(node.value)
    if isinstance(node, cst.UnaryOperation):
        return _plain_value(node.expression)
    if isinstance(node, cst.Subscript):
        return _plain_value(node.value) and not _calls_in(node)
    return False


def _calls_in(node) -> List[cst.Call]:
    return nodes_of(node, cst.Call)


_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))


def _calls_of(node, callee: str) -> List[cst.Call]:
    found: List[cst.Call] = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call):
            if isinstance(call.func, cst.Name) and call.func.value == callee:
                found.append(call)

    node.visit(Calls())
    return found


def _tf_names(source: str, resolve) -> Set[str]:
    found: Set[str] = set()
    module = cst.parse_module(source)

    class V(cst.CSTVisitor):
        def visit_Attribute(self, node):
            name = resolve(node)
            if name is not None and (name.startswith("tensorflow.") or name.startswith("tf_slim")):
                if "keras" not in (dotted(node) or ""):
                    found.add(name if not name.startswith("tf_slim") else "tensorflow.contrib." + name)
                return False
            return True

    module.visit(V())
    return found
