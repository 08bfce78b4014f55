"""Models made of hand-made `tf.Variable` weights in Session programs (tutorial and GAN style).

TF1 tutorials (aymericdamien/TensorFlow-Examples) and GAN repositories (wiseodd/generative-
models) build their models from variables instead of layers:

    D_W1 = tf.Variable(xavier_init([784, 128]))          # module level, read by a function
    weights = {'h1': tf.Variable(tf.random_normal(...)), ...}   # passed to the model function
    theta_D = [D_W1, D_b1]
    D_solver = tf.train.AdamOptimizer().minimize(D_loss, var_list=theta_D)

In TF 2 such a variable works eagerly as written: `tf.Variable(initial_value)` creates and
initialises it (no initializer run). What has to change is the training loop: the train step
differentiates the loss with respect to exactly the variables TF1's `minimize` updated -- its
`var_list`, or by default every trainable variable of the program (those the loss does not
reach get no gradient in TF1 and are left out here: the same update).

Target chosen: keep the variables where they are and hand them to the train step (option a),
rather than gathering them into a `tf.Module`/Keras Model (option b), because
* the model functions keep reading them as they did (`tf.matmul(x, D_W1)` on a module global,
  `weights['h1']` on an argument): gathering them into an object would rewrite every read in
  functions the rewrite otherwise leaves alone, and a global read by a function would need
  that function to take the object -- more edits, more ways to be wrong;
* `tf.function` takes variables (and lists/dicts of them) as arguments and `GradientTape`
  watches trainable variables by itself, so nothing is lost: the step gets the holders it reads
  as parameters (`weights`, `biases`, or the var_list `theta_D`), like model objects;
* the TF1 creation order is kept, so the variables' TF1 names (`Variable`, `Variable_1`, ...)
  still correspond one to one, in order, to the variables the program creates.

What is recognised (`register`), in the graph part of a program: `w = tf.Variable(...)`, a dict
or list literal whose values are all `tf.Variable(...)` calls, and a list literal of names of
single variables (a var_list such as `theta_D`). A holder bound twice, or a variable whose
initial value reads a placeholder or graph tensor, is refused. A graph statement that reads a
holder (directly, or through a module function reading it as a global in a module-level
program) is a graph statement: it is recomputed in the step, not evaluated once; one that
assigns to them (`W.assign(...)`, an op TF1 ran only when fetched) is refused.

Also here, as the tutorials with hand-made weights are the programs that need them:
`late_graph_statement` (a graph value such as `accuracy` built inside the session block, then
`accuracy.eval(...)`) and `cast_feed` (a fed numpy value cast to its placeholder's dtype where a
fetch outside the train steps reads it: raw ops on hand-made weights, unlike Keras layers, do
not cast their inputs).

Module-level programs: `migrate.module_programs` lets functions read such holders as globals
(`_hand_made_variables`): their statements stay module-level statements of the converted
program. `tf.train.Saver()` becomes a `tf.train.Checkpoint` that holds them too (program.py).
verify cannot pair these programs yet: it pairs old model functions with new Keras classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from migrate.cst_utils import bound_names, bound_names_in_order, names_read, nodes_of
from migrate.model_rewrite.layers import Unmappable, literal, render
from migrate.module_programs import PSEUDO_FUNCTION

VARIABLE = "tensorflow.Variable"
ASSIGN_METHODS = ("assign", "assign_add", "assign_sub", "scatter_update", "scatter_add",
                  "scatter_sub", "scatter_nd_update", "load")
ASSIGN_APIS = ("tensorflow.assign", "tensorflow.scatter_", "tensorflow.compat.v1.assign",
               "tensorflow.compat.v1.scatter_")


@dataclass
class Holder:
    """A name the program binds to hand-made variables: one (`kind` "single"), a dict of them
    ("dict") or a list of them ("list")."""

    name: str
    kind: str
    trainable: bool = True


@dataclass(frozen=True)
class HandMadeVarList:
    """A var_list of hand-made variables: `expression` (its source, `theta_D` or `[W, b]`) and
    the holder names it reads."""

    expression: str
    names: Tuple[str, ...]

    def describe(self) -> str:
        return f"the variables {self.expression}"


def _is_variable_call(node, resolve) -> bool:
    return isinstance(node, cst.Call) and resolve(node.func) == VARIABLE


def _trainable(call: cst.Call) -> Optional[bool]:
    """TF1's `trainable=` of a tf.Variable call: True by default, None where not a literal."""
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword else ("initial_value", "trainable")[index] \
            if index < 2 else None
        if key == "trainable":
            value = literal(arg.value)
            return value if isinstance(value, bool) else None
    return True


class HandMadeVariables:
    """The hand-made variables of one Session program (`ProgramConverter.hand_made`)."""

    def __init__(self, converter):
        self.conv = converter
        self.holders: Dict[str, Holder] = {}  # in creation order (dicts keep insertion order)
        self.var_lists: Dict[str, HandMadeVarList] = {}  # `theta_D = [D_W1, D_b1]`

    # -- the graph part ----------------------------------------------------------------------
    def register(self, stmt: cst.SimpleStatementLine) -> bool:
        """Record `stmt` when it binds hand-made variables or a list of them (it then stays in
        the program as it is); False for any other statement."""
        small = stmt.body[0]
        if not isinstance(small, cst.Assign) or len(small.targets) != 1 or \
                not isinstance(small.targets[0].target, cst.Name):
            return False
        name = small.targets[0].target.value
        value = small.value
        resolve = self.conv.resolve
        if _is_variable_call(value, resolve):
            calls, kind = [value], "single"
        elif isinstance(value, cst.Dict) and value.elements and all(
                isinstance(e, cst.DictElement) and _is_variable_call(e.value, resolve)
                for e in value.elements):
            calls, kind = [e.value for e in value.elements], "dict"
        elif isinstance(value, (cst.List, cst.Tuple)) and value.elements and all(
                isinstance(e, cst.Element) and _is_variable_call(e.value, resolve)
                for e in value.elements):
            calls, kind = [e.value for e in value.elements], "list"
        elif isinstance(value, cst.List) and value.elements:
            var_list = self.var_list(value)
            if var_list is None:
                return False
            self._bound_once(name)
            self.var_lists[name] = HandMadeVarList(name, var_list.names)
            return True
        else:
            return False
        self._bound_once(name)
        graph = set(self.conv.placeholders) | self.conv.graph_names | self.conv.model_objects
        for call in calls:
            read = sorted(names_read(call) & graph)
            if read:
                raise Unmappable(f"the initial value of hand-made variable `{name}` reads "
                                 f"`{read[0]}`, a graph value")
        trainable = {_trainable(call) for call in calls}
        if None in trainable or len(trainable) > 1:
            raise Unmappable(f"`{name}` holds variables whose trainable= the rewrite cannot tell")
        self.holders[name] = Holder(name, kind, trainable.pop())
        return True

    def _bound_once(self, name: str) -> None:
        binds = [n for n in bound_names_in_order(self.conv.func) if n == name]
        if len(binds) != 1:
            raise Unmappable(f"`{name}`, which holds hand-made variables, is bound more than once")

    def var_list(self, node) -> Optional[HandMadeVarList]:
        """What a var_list argument selects among the hand-made variables: a list named by
        `register`, or a list literal of single holders / subscripts of holders."""
        if isinstance(node, cst.Name) and node.value in self.var_lists:
            return self.var_lists[node.value]
        if isinstance(node, cst.Name) and node.value in self.holders and \
                self.holders[node.value].kind == "list":
            return HandMadeVarList(node.value, (node.value,))
        if not isinstance(node, cst.List) or not node.elements:
            return None
        names: List[str] = []
        for element in node.elements:
            value = element.value if isinstance(element, cst.Element) else None
            if isinstance(value, cst.Name) and value.value in self.holders and \
                    self.holders[value.value].kind == "single":
                names.append(value.value)
            elif self._element_of_holder(value):  # `weights['h1']`, `layers[0]`
                names.append(value.value.value)
            else:
                return None
        return HandMadeVarList(render(node), tuple(dict.fromkeys(names)))

    def _element_of_holder(self, node) -> bool:
        return (isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name)
                and node.value.value in self.holders and self.holders[node.value.value].kind != "single"
                and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)
                and isinstance(literal(node.slice[0].slice.value), (str, int)))

    def reads(self, node) -> bool:
        """Whether `node` (a graph statement's value) reads hand-made variables: directly, or
        (in a module-level program) through module functions that read them as globals.

        Raises Unmappable where such a statement assigns a variable (`W.assign(...)`,
        `tf.assign(W, ...)`): TF1 built an op there that ran only when something fetched it; the
        rewrite does not follow those ops (eagerly the assignment would run at each call)."""
        reached = self.reached(names_read(node))
        if reached:
            for call in nodes_of(node, cst.Call):
                func = call.func
                api = self.conv.resolve(func) or ""
                if (isinstance(func, cst.Attribute) and func.attr.value in ASSIGN_METHODS) or \
                        api.startswith(ASSIGN_APIS):
                    raise Unmappable(f"`{render(call)}` assigns to hand-made variables "
                                     f"({', '.join(f'`{h}`' for h in reached)}): TF1 ran that op "
                                     "only when fetched; the rewrite does not follow assign ops "
                                     "on them")
        return bool(reached)

    def reached(self, used: Set[str]) -> List[str]:
        """The holders (creation order) that code reading `used` reaches."""
        found = set(used) & set(self.holders)
        if self.conv.func.name.value == PSEUDO_FUNCTION and self.holders:
            functions = self.conv.module_functions or {}
            seen: Set[str] = set()
            todo = [n for n in used if n in functions]
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                function = functions[name]
                globals_read = names_read(function) - bound_names(function) - \
                    {p.name.value for p in function.params.params}
                found |= globals_read & set(self.holders)
                todo.extend(n for n in globals_read if n in functions)
        return [name for name in self.holders if name in found]

    def cast_feed(self, placeholder: str, feed: cst.BaseExpression) -> cst.BaseExpression:
        """A value fed to `placeholder` where a fetch outside the train steps reads it: TF1
        converted a feed to the placeholder's dtype (wiseodd's `sample_Z` gives float64). Keras
        layers cast float inputs themselves, raw ops on hand-made weights do not (`tf.matmul`
        of float64 and float32 fails): with hand-made weights the feed is cast, as the train
        steps cast their inputs."""
        dtype = self.conv.placeholders[placeholder].dtype if placeholder in self.conv.placeholders \
            else None
        if not self.holders or dtype is None:
            return feed
        return cst.parse_expression(f"{self.conv.tf}.cast({render(feed)}, {dtype})")

    # -- the train step ----------------------------------------------------------------------
    def step_names(self, var_prefix, slice_stmts) -> Set[str]:
        """The holder and var_list names a train step reads (its parameters, like models)."""
        if isinstance(var_prefix, HandMadeVarList):  # `theta_D` itself, or the holders listed
            return {var_prefix.expression} if var_prefix.expression in self.var_lists \
                else set(var_prefix.names)
        if var_prefix is None:
            return set(self._trained_default(slice_stmts))
        return set()

    def _trained_default(self, slice_stmts) -> List[str]:
        used: Set[str] = set()
        for stmt in slice_stmts:
            used |= names_read(stmt.body[0].value)
        return [h for h in self.reached(used) if self.holders[h].trainable]

    def variables(self, var_prefix, slice_stmts) -> Optional[str]:
        """The source of the list of hand-made variables a train op updates (None: none)."""
        if isinstance(var_prefix, HandMadeVarList):
            return var_prefix.expression
        if var_prefix is not None:
            if self.holders:
                raise Unmappable(f"var_list of {var_prefix.describe()} in a program with "
                                 "hand-made tf.Variable weights (their TF1 names are not known)")
            return None
        trained = self._trained_default(slice_stmts)
        if not trained:
            return None
        parts = []
        for name in trained:
            kind = self.holders[name].kind
            parts.append(name if kind == "single" else
                         f"*{name}.values()" if kind == "dict" else f"*{name}")
        return f"[{', '.join(parts)}]"


_TRAINING_METHODS = ("minimize", "compute_gradients", "apply_gradients")


def late_graph_statement(conv, stmt) -> bool:
    """Record `stmt`, a statement of the session block, as a graph statement when it only
    defines a graph value: TensorFlow-Examples' tutorials (the usual hand-made-weight programs)
    build `correct_prediction`/`accuracy` inside `with tf.Session() as sess:`, after training,
    and `accuracy.eval({x: ..., y: ...})` it. Such a value is computed where it is run, like one
    defined before the session. Only a single assignment of names the function binds nowhere
    else, that reads graph values and runs nothing (no sess.run, no optimizer)."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
        return False
    target, value = stmt.body[0].targets[0].target, stmt.body[0].value
    names = [target.value] if isinstance(target, cst.Name) else \
        [e.value.value for e in target.elements if isinstance(e.value, cst.Name)] \
        if isinstance(target, (cst.Tuple, cst.List)) and all(
            isinstance(e.value, cst.Name) for e in target.elements) else []
    if not names:
        return False
    graph = set(conv.placeholders) | conv.graph_names | conv.model_objects
    read = names_read(value)
    if conv.sess in read or read & (set(conv.train_ops) | set(conv.optimizers)) or \
            not (read & graph or conv.hand_made.reads(value)):
        return False  # a function given the session runs things, a list of ops: no graph value
    binds = bound_names_in_order(conv.func)
    if any(binds.count(name) != 1 for name in names):
        return False
    for call in nodes_of(value, cst.Call):
        func = call.func
        if (isinstance(func, cst.Attribute) and func.attr.value in _TRAINING_METHODS + ("run", "eval")) \
                or (conv.resolve(func) or "").startswith("tensorflow.train."):
            return False
    conv.graph.append(stmt)
    conv.graph_names.update(names)
    return True
