"""What WGAN-family Session programs build besides train ops: weight-clipping assign ops, random
tensors drawn per run, and `tf.gradients` inside a loss (the gradient penalty).

* Assign ops on the models' variables (WGAN's critic clipping):

      clip_d = [p.assign(tf.clip_by_value(p, -0.01, 0.01)) for p in d_vars]   # or tf.assign(p, ...),
      ...                                                                     # or tf.group(*[...])
      sess.run(clip_d)

  become a module-level function over the variables of the models the var_list selects (resolved
  as a train step's var_list is), called where `sess.run` ran them:

      def clip_d_step(critic):
          for p in critic.trainable_variables:
              p.assign(tf.clip_by_value(p, -0.01, 0.01))

  A var_list over `tf.global_variables` (moving statistics, optimizer slots) or one that selects
  variables no model of the program owns is refused.

* Random tensors of the graph part (`alpha = tf.random_uniform([BATCH, 1], 0., 1.)`): TF1 drew
  them again at each `sess.run`, so they are graph values computed inside the step each call
  (`is_random`).

* `tf.gradients(y, [x])` inside a loss (WGAN-GP's penalty) -> a GradientTape nested in the
  step's tape, watching `x` (`with_nested_tapes`): the outer tape records the inner gradient, so
  the penalty is differentiated as TF1 differentiated it, eagerly and inside tf.function alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from migrate.cst_utils import assigned_names, bound_names, names_read, nodes_of
from migrate.model_rewrite.layers import Unmappable

_RENDER = cst.Module(body=[])

# TF1 random ops (their tensorflow.compat.v1 spellings resolve to the same after the prefix).
RANDOM_OPS = frozenset("tensorflow." + name for name in (
    "random_uniform", "random_normal", "truncated_normal", "random_gamma", "random_poisson",
    "random_shuffle", "multinomial", "random_crop",
    "random.uniform", "random.normal", "random.truncated_normal", "random.gamma",
    "random.poisson", "random.shuffle", "random.categorical", "random.multinomial"))
GRADIENTS = "tensorflow.gradients"
ASSIGN = "tensorflow.assign"
_GLOBAL_LISTS = ("tensorflow.global_variables", "tensorflow.all_variables",
                 "tensorflow.GraphKeys.GLOBAL_VARIABLES", "tensorflow.model_variables")


def _api(resolve, node) -> Optional[str]:
    name = resolve(node)
    if name and name.startswith("tensorflow.compat.v1."):
        name = "tensorflow." + name[len("tensorflow.compat.v1."):]
    return name


_VARIABLE_MAKERS = ("tensorflow.Variable", "tensorflow.get_variable")


def is_random(value, resolve) -> bool:
    """The value draws random numbers (a TF1 random op somewhere in it), other than the
    initial value of a variable (`tf.Variable(tf.random_normal(...))`: drawn once)."""
    found = []

    class Draws(cst.CSTVisitor):
        def visit_Call(self, call):
            api = _api(resolve, call.func) or ""
            if api in _VARIABLE_MAKERS or api.endswith("_initializer"):
                return False
            if api in RANDOM_OPS:
                found.append(call)
            return True

    value.visit(Draws())
    return bool(found)


def augmented_graph_assignment(stmt, graph: Set[str]):
    """`disc_cost += LAMBDA * gradient_penalty` on a graph tensor -> `disc_cost = disc_cost +
    LAMBDA * gradient_penalty` (improved_wgan_training's spelling): tensors are immutable, `+=`
    made a new one, so the plain assignment is the same graph statement. None otherwise."""
    small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
    if not (isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name)
            and small.target.value in graph):
        return None
    operator = getattr(cst, type(small.operator).__name__[:-len("Assign")], None)
    if operator is None:
        return None
    value = small.value
    if isinstance(value, (cst.BinaryOperation, cst.BooleanOperation, cst.Comparison, cst.IfExp,
                          cst.Lambda)):
        value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    combined = cst.BinaryOperation(left=cst.Name(small.target.value), operator=operator(), right=value)
    return stmt.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(small.target.value))],
                                              combined)])


# -- assign ops ---------------------------------------------------------------------------------
@dataclass
class AssignOp:
    """`name = [p.assign(EXPR) for p in VARS]`: `loop` is `p`, `update` the `p.assign(EXPR)`
    call (TF2 spelling), `variables` the var_list expression."""

    name: str
    loop: str
    update: cst.BaseExpression
    variables: cst.BaseExpression
    function: Optional[str] = None  # the generated function, once a run calls it
    objects: Tuple[str, ...] = ()
    params: Tuple[str, ...] = ()  # program locals the update reads (a clip value)


class AssignOps:
    """The assign-op lists of one Session program (see the module docstring)."""

    def __init__(self, conv):
        self.conv = conv  # the ProgramConverter: var_list resolution, models, fresh names
        self.ops: Dict[str, AssignOp] = {}

    # -- graph part
    def graph_statement(self, stmt, targets: Sequence[str], value) -> Optional[List]:
        """[] when the statement defines an assign-op list (recorded), None when it is not one."""
        if len(targets) != 1:
            return None
        comp = value
        resolve = self.conv.resolve
        if isinstance(value, cst.Call) and _api(resolve, value.func) == "tensorflow.group":
            args = [a for a in value.args if a.keyword is None]
            if len(args) != 1 or len(value.args) != 1:
                return None
            comp = args[0].value
        if not (isinstance(comp, (cst.ListComp, cst.GeneratorExp)) and not comp.for_in.ifs
                and comp.for_in.inner_for_in is None and isinstance(comp.for_in.target, cst.Name)):
            return None
        loop = comp.for_in.target.value
        update = self._update(comp.elt, loop)
        if update is None:
            return None
        self.ops[targets[0]] = AssignOp(targets[0], loop, update, comp.for_in.iter)
        return []

    def _update(self, elt, loop: str) -> Optional[cst.Call]:
        """`p.assign(x)` / `p.assign_add(x)` / `tf.assign(p, x)` on the loop variable -> the
        method call; None for anything else."""
        if not isinstance(elt, cst.Call):
            return None
        func = elt.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and \
                func.value.value == loop and func.attr.value in ("assign", "assign_add", "assign_sub"):
            if len(elt.args) != 1 or elt.args[0].keyword is not None:
                raise Unmappable(f"`{loop}.{func.attr.value}` with arguments besides the value")
            return elt
        if _api(self.conv.resolve, func) in (ASSIGN, ASSIGN + "_add", ASSIGN + "_sub"):
            method = _api(self.conv.resolve, func).rsplit(".", 1)[1]
            args = list(elt.args)
            if not (len(args) == 2 and all(a.keyword is None for a in args)
                    and isinstance(args[0].value, cst.Name) and args[0].value.value == loop):
                raise Unmappable(f"tf.{method} with arguments besides (variable, value)")
            return cst.Call(func=cst.Attribute(cst.Name(loop), cst.Name(method)),
                            args=[args[1].with_changes(comma=cst.MaybeSentinel.DEFAULT)])
        return None

    # -- session part
    def run(self, names: Sequence[str], feeds, target) -> cst.BaseExpression:
        """`sess.run(clip_d)` -> `clip_d_step(critic)` (a statement: nothing it returns is used)."""
        if len(names) != 1:
            raise Unmappable(f"sess.run of the assign ops `{[n for n in names if n in self.ops][0]}` "
                             "together with other fetches (TF1 ran them in no fixed order)")
        if feeds:
            raise Unmappable(f"sess.run of the assign ops `{names[0]}` with a feed_dict")
        if target is not None:
            raise Unmappable(f"the result of sess.run of the assign ops `{names[0]}` is used")
        op = self.ops[names[0]]
        if op.function is None:
            self._make_function(op)
        args = ", ".join((*op.objects, *op.params))
        return cst.parse_expression(f"{op.function}({args})")

    def _make_function(self, op: AssignOp) -> None:
        conv = self.conv
        if self._from_global_variables(op.variables):
            raise Unmappable(f"the assign ops `{op.name}` run over tf.global_variables (moving "
                             "statistics, optimizer slots): only trainable variables map to Keras")
        selection = conv._var_list(op.variables)
        if selection is not None and hasattr(selection, "expression"):
            # hand-made tf.Variable weights (variable_models.py): the holders are parameters
            variables = selection.expression
            objects = sorted(names_read(cst.parse_expression(variables)))
        else:
            objects = self._objects(op)
            variables = " + ".join(f"{o}.trainable_variables" for o in objects)
        program_locals = bound_names(conv.func) | {p.name.value for p in conv.func.params.params}
        update_reads = names_read(op.update) - {op.loop}
        graph = set(conv.placeholders) | conv.graph_names | conv.model_objects | set(conv.train_ops)
        if update_reads & graph:
            raise Unmappable(f"the assign ops `{op.name}` compute their values from graph tensors "
                             f"(`{sorted(update_reads & graph)[0]}`)")
        params = tuple(sorted(update_reads & program_locals))
        name = conv._fresh(f"{op.name}_step" if not op.name.endswith("_op") else op.name[:-3] + "_step")
        ind = conv.indent
        update = _RENDER.code_for_node(op.update)
        conv.helpers.append(
            f"def {name}({', '.join((*objects, *params))}):\n"
            f"{ind}\"\"\"The TF1 assign ops `{op.name}`: each variable of "
            f"{', '.join(f'`{o}`' for o in objects)} updated in place.\"\"\"\n"
            f"{ind}for {op.loop} in {variables}:\n"
            f"{ind}{ind}{update}\n")
        op.function, op.objects, op.params = name, tuple(objects), params

    def _objects(self, op: AssignOp) -> List[str]:
        """The model objects whose trainable variables the var_list is: all of them, each."""
        conv = self.conv
        selection = conv._var_list(op.variables)
        if selection is None:
            selection = conv._collection_filter(op.variables)
        iterable = op.variables
        if selection is None and (
                (isinstance(iterable, cst.Name) and iterable.value in conv.trainable_names) or
                (isinstance(iterable, cst.Call) and not iterable.args
                 and _api(conv.resolve, iterable.func) == "tensorflow.trainable_variables")):
            objects = sorted(conv.model_objects)  # every trainable variable
        elif selection is None:
            raise Unmappable(f"the assign ops `{op.name}` run over `{_RENDER.code_for_node(iterable)}`, "
                             "a list the rewrite cannot map to a model's variables")
        elif hasattr(selection, "objects"):
            objects = [o for o in selection.objects]
        else:
            holder = _Named(op.name)
            objects = [o for o in sorted(conv.model_objects) if conv._selects(holder, selection, o)]
            if not objects:
                raise Unmappable(f"the assign ops `{op.name}` run over {selection.describe()}, "
                                 "which no model of the program owns")
        if not objects:
            raise Unmappable(f"the assign ops `{op.name}` run over variables no model of the "
                             "program owns")
        return objects

    def _from_global_variables(self, node) -> bool:
        """The var_list is (built from) tf.global_variables(): traced through the names the
        program binds to it."""
        conv, seen = self.conv, set()
        pending = [node]
        while pending:
            current = pending.pop()
            for call in nodes_of(current, cst.Call):
                if _api(conv.resolve, call.func) in _GLOBAL_LISTS:
                    return True
                for arg in call.args:
                    if _api(conv.resolve, arg.value) in _GLOBAL_LISTS:
                        return True
            for name in names_read(current) - seen:
                seen.add(name)
                pending.extend(_values_bound(conv.func, name))
        return False


@dataclass(frozen=True)
class _Named:
    name: str  # what `_selects` names in its messages


def _values_bound(func, name: str) -> List[cst.BaseExpression]:
    found: List[cst.BaseExpression] = []

    class Binds(cst.CSTVisitor):
        def visit_Assign(self, node):
            if any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                found.append(node.value)

    func.visit(Binds())
    return found


# -- tf.gradients -> a nested tape ----------------------------------------------------------------
def calls_gradients(stmts, resolve) -> bool:
    return any(_api(resolve, call.func) == GRADIENTS for stmt in stmts for call in nodes_of(stmt, cst.Call))


def with_nested_tapes(stmts: Sequence[cst.SimpleStatementLine], resolve, tf: str, indent: str,
                      inputs: Dict[str, Optional[str]]) -> List[str]:
    """The source lines of `stmts` (a step's or helper's graph statements, in order), where a
    `tf.gradients(ys, xs)` becomes `inner_tape.gradient(ys, xs)` of a GradientTape that watches
    `xs` from where they are computed (or from the start, for the step's `inputs`: fed values
    by name, with their placeholder's dtype when known, "" when already a tensor)."""
    found = [(i, call) for i, stmt in enumerate(stmts) for call in nodes_of(stmt, cst.Call)
             if _api(resolve, call.func) == GRADIENTS]
    if not found:
        return [line for stmt in stmts for line in _lines(stmt)]
    if len(found) > 1:
        raise Unmappable("several tf.gradients in one train step (one nested GradientTape each "
                         "is not supported yet)")
    at, call = found[0]
    ys = xs = None
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword else ("ys", "xs")[index] if index < 2 else None
        if key == "ys" and not arg.star:
            ys = arg.value
        elif key == "xs" and not arg.star:
            xs = arg.value
        else:
            raise Unmappable(f"tf.gradients with {key or 'another'} argument (grad_ys, "
                             "stop_gradients...) is not supported yet")
    if ys is None or xs is None:
        raise Unmappable("tf.gradients without ys and xs")
    watched = [e.value for e in xs.elements] if isinstance(xs, (cst.List, cst.Tuple)) else [xs]
    defined: Dict[str, int] = {}
    for i, stmt in enumerate(stmts[:at]):
        for name in assigned_names(stmt):
            defined[name] = i
    start = 0
    for x in watched:
        if not (isinstance(x, cst.Name) and (x.value in defined or x.value in inputs)):
            raise Unmappable(f"tf.gradients with respect to `{_RENDER.code_for_node(x)}`, which is "
                             "not a tensor the step computes or is fed (a GradientTape watches "
                             "only those)")
        if x.value in defined:
            start = max(start, defined[x.value] + 1)
    taken = set()
    for stmt in stmts:
        taken |= names_read(stmt) | set(assigned_names(stmt))
    tape = free_name("inner_tape", taken)
    lines = [line for stmt in stmts[:start] for line in _lines(stmt)]
    # A fed value (a numpy array in a compute_* helper) becomes a tensor the tape can watch.
    for x in watched:
        dtype = inputs.get(x.value)
        if x.value not in defined and dtype != "":  # "": a tensor already (a step's cast input)
            lines.append(f"{x.value} = {tf}.cast({x.value}, {dtype})" if dtype else
                         f"{x.value} = {tf}.convert_to_tensor({x.value})")
    lines.append(f"with {tf}.GradientTape() as {tape}:  # TF1's tf.gradients inside the loss")
    lines += [f"{indent}{tape}.watch({x.value})" for x in watched]
    lines += [indent + line for stmt in stmts[start:at] for line in _lines(stmt)]
    target = ys
    if not isinstance(ys, cst.Name):
        target = cst.Name(free_name("gradient_target", taken))
        lines.append(f"{indent}{target.value} = {_RENDER.code_for_node(ys)}")
    # tf.gradients returns a list also for a single x (`tf.gradients(y, x)[0]`): so does the
    # tape given a list.
    sources = cst.List([cst.Element(x) for x in watched])
    gradient = cst.Call(func=cst.Attribute(cst.Name(tape), cst.Name("gradient")),
                        args=[cst.Arg(target), cst.Arg(sources)])
    lines += _lines(stmts[at].visit(_Replace(call, gradient)))
    lines += [line for stmt in stmts[at + 1:] for line in _lines(stmt)]
    return lines


def free_name(base: str, taken: Set[str]) -> str:
    """`base`, or `base_2`, `base_3`... : the first not in `taken` (a generated local that must
    not shadow a name of the program's own statements copied next to it)."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _lines(stmt) -> List[str]:
    return _RENDER.code_for_node(stmt.with_changes(leading_lines=[])).strip().splitlines()


class _Replace(cst.CSTTransformer):
    def __init__(self, old: cst.CSTNode, new: cst.CSTNode):
        super().__init__()
        self.old, self.new = old, new

    def leave_Call(self, original, updated):
        return self.new if original.deep_equals(self.old) else updated
