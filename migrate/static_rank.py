"""The static rank of the tensors a function builds, where the code alone makes it clear.

TF1 ran `tf.layers` batch norm fused -- and so applied Bessel's n/(n-1) correction to its
moving variance, which Keras 3 never does -- only for 4-D and 5-D input. A batch norm after
`flatten` or `dense` (2-D), or after `conv1d` (3-D), never ran fused: its migration is exact.
This module finds those ranks on `ast` (the check side never imports libcst; the model rewrite
parses the function it converts), walking each function's statements in order: an assignment
gives a local the rank of its value, branches and loop iterations join (one rank, or unknown),
and a parameter has the rank every call of the function in the module gives it. Anything
unknown stays unknown (None), which leaves a batch norm "fused for 4-D input" as before.
"""

from __future__ import annotations

import ast
from typing import Callable, Dict, List, Optional

from migrate.names import dotted_name

Resolve = Callable[[str], Optional[str]]

# Output rank by the last component of a layer/op API (tensorflow., tf_slim., keras.).
_FIXED_RANK = {
    "flatten": 2,
    "conv1d": 3, "max_pooling1d": 3, "average_pooling1d": 3, "separable_conv1d": 3,
    "conv2d": 4, "conv2d_transpose": 4, "separable_conv2d": 4, "depthwise_conv2d": 4,
    "max_pooling2d": 4, "average_pooling2d": 4, "max_pool2d": 4, "avg_pool2d": 4,
    "max_pool": 4, "avg_pool": 4, "conv2d_in_plane": 4, "convolution2d": 4,
    "convolution2d_transpose": 4, "separable_convolution2d": 4,
    "conv3d": 5, "conv3d_transpose": 5, "max_pooling3d": 5, "average_pooling3d": 5,
    "max_pool3d": 5, "avg_pool3d": 5,
}
# Output rank = input rank: dense layers act on the last axis; activations, dropout and the
# normalisations are element-wise.
_SAME_RANK = {
    "dense", "fully_connected", "relu", "relu6", "elu", "selu", "leaky_relu", "crelu", "tanh",
    "sigmoid", "softplus", "softsign", "swish", "gelu", "dropout", "identity", "abs", "square",
    "sqrt", "exp", "log", "negative", "batch_normalization", "batch_norm", "layer_norm",
    "bias_add", "stop_gradient", "clip_by_value", "l2_normalize", "softmax", "log_softmax",
    "cast",
}
_BINARY_SAME_RANK = {"add", "subtract", "multiply", "maximum", "minimum", "add_n"}
_INPUT_KEYWORDS = ("inputs", "x", "features", "input", "tensor", "logits", "value", "t")
_API_ROOTS = ("tensorflow.", "tf_slim.", "keras.")

_UNKNOWN = "unknown"
_PENDING = "pending"  # kept for _rank's callers: a name with no rank yet reads as unknown


class _Flow:
    """Walk one function's statements in order with {local: rank} (a later assignment
    replaces an earlier one; branches and loop iterations join: one rank or unknown), and
    note the input rank of each call of interest where it runs."""

    def __init__(self, resolve: Resolve, watched_apis, functions):
        self.resolve = resolve
        self.watched_apis = watched_apis  # batch-norm APIs: record their input's rank
        self.functions = functions  # module functions: record the ranks of their arguments
        self.inputs: Dict[int, object] = {}  # id(call) -> rank of its input (joined)
        self.arguments: List[tuple] = []  # (callee name, {param: rank})
        self.returned: object = _PENDING  # the rank of what the function returns (joined)

    def block(self, stmts, env):
        for stmt in stmts:
            env = self.stmt(stmt, env)
        return env

    def stmt(self, stmt, env):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return _set(env, [stmt.name], _UNKNOWN)
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            if not isinstance(stmt, ast.While):
                self.note(stmt.iter, env)
            else:
                self.note(stmt.test, env)
            head = env
            for _ in range(6):
                start = head
                if not isinstance(stmt, ast.While):
                    start = _set(start, _names(stmt.target), _UNKNOWN)
                out = self.block(stmt.body, start)
                new_head = _join_env(env, out)
                if new_head == head:
                    break
                head = new_head
            return self.block(stmt.orelse, head)
        if isinstance(stmt, ast.If):
            self.note(stmt.test, env)
            return _join_env(self.block(stmt.body, env), self.block(stmt.orelse, env))
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.note(item.context_expr, env)
                if item.optional_vars is not None:
                    env = _set(env, _names(item.optional_vars), _UNKNOWN)
            return self.block(stmt.body, env)
        if isinstance(stmt, ast.Try):
            body = self.block(stmt.body, env)
            out = _join_env(env, body)
            for handler in stmt.handlers:
                out = _join_env(out, self.block(handler.body, _set(out, [handler.name] if handler.name else [], _UNKNOWN)))
            out = self.block(stmt.orelse, out)
            return self.block(stmt.finalbody, out)
        self.note(stmt, env)
        if isinstance(stmt, ast.Return):
            rank = _rank(stmt.value, env, self.resolve) if stmt.value is not None else _UNKNOWN
            self.returned = _join(self.returned, rank)
        if isinstance(stmt, ast.Assign):
            rank = _rank(stmt.value, env, self.resolve)
            for target in stmt.targets:
                env = _set(env, [target.id], rank) if isinstance(target, ast.Name) else \
                    _set(env, _names(target), _UNKNOWN)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            env = _set(env, [stmt.target.id], _broadcast([stmt.target, stmt.value], env, self.resolve))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            env = _set(env, [stmt.target.id], _rank(stmt.value, env, self.resolve) if stmt.value else _UNKNOWN)
        return env

    def note(self, node, env) -> None:
        for call in _calls_in_node(node):
            api = _api(call.func, self.resolve)
            if api in self.watched_apis:
                arg = _input_of(call)
                rank = _rank(arg, env, self.resolve) if arg is not None else _UNKNOWN
                previous = self.inputs.get(id(call), _PENDING)
                self.inputs[id(call)] = rank if previous == _PENDING else _join(previous, rank)
            callee = self.functions.get(call.func.id) if isinstance(call.func, ast.Name) else None
            if callee is not None:
                params = [a.arg for a in [*callee.args.posonlyargs, *callee.args.args]]
                if any(isinstance(a, ast.Starred) for a in call.args) or \
                        any(k.arg is None for k in call.keywords):
                    bound = {}
                else:
                    bound = dict(zip(params, call.args))
                    bound.update((k.arg, k.value) for k in call.keywords)
                self.arguments.append((callee.name, {p: _rank(bound[p], env, self.resolve) if p in bound
                                                     else _UNKNOWN for p in params}))


def _set(env, names, rank):
    out = dict(env)
    for name in names:
        out[name] = rank
    return out


def _join_env(a, b):
    out = dict(a)
    for name, rank in b.items():
        out[name] = _join(out[name], rank) if name in out else rank
    return out


def _join(a, b):
    if a == _PENDING:
        return b
    if b == _PENDING:
        return a
    return a if a == b else _UNKNOWN


def _names(target) -> List[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _calls_in_node(node):
    """Calls in `node` (a statement or expression), outer first, not inside nested functions,
    lambdas or the bodies of compound statements (the flow visits those itself)."""
    if isinstance(node, ast.Call):
        yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                              ast.stmt)):
            continue
        yield from _calls_in_node(child)


def _flow(node, resolve: Resolve, watched_apis=(), functions=None, param_ranks=None) -> _Flow:
    flow = _Flow(resolve, set(watched_apis), functions or {})
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        env = {a.arg: (param_ranks or {}).get(a.arg, _UNKNOWN)
               for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        flow.block(node.body, env)
    else:
        flow.block(node.body, {})
    return flow


def module_param_ranks(module: ast.Module, resolve: Resolve) -> Dict[str, Dict[str, int]]:
    """{function: {parameter: rank}} for the module-level functions whose every call in the
    module passes that parameter a value of one known rank (`fc_bn(tf.layers.flatten(x), 32)`:
    `fc_bn`'s input is 2-D). A function called nowhere, or with `*args`, learns nothing."""
    return _module_ranks(module, resolve)[0]


def _module_ranks(module: ast.Module, resolve: Resolve):
    """(parameter ranks, {function: rank it returns}) of the module's functions, to a fixpoint
    that starts from "not known yet" and only ever loses ranks: `net = fc_bn(net, 32)` has the
    rank `fc_bn` returns for the 2-D `net` its first call passes."""
    functions = {f.name: f for f in module.body if isinstance(f, ast.FunctionDef)}
    params: Dict[str, Dict[str, object]] = {
        name: {a.arg: _PENDING for a in [*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs]}
        for name, f in functions.items()}
    returns: Dict[str, object] = {name: _PENDING for name in functions}
    for _ in range(10):
        seen: Dict[str, Dict[str, object]] = {name: {p: _PENDING for p in ranks}
                                              for name, ranks in params.items()}
        new_returns: Dict[str, object] = {}
        with_returns = _WithReturns(resolve, returns)
        for caller in [*functions.values(), module]:
            if isinstance(caller, ast.Module):
                flow = _Flow(with_returns, set(), functions)
                flow.block([s for s in caller.body if not isinstance(s, ast.FunctionDef)], {})
            else:
                flow = _flow(caller, with_returns, (), functions, params[caller.name])
                new_returns[caller.name] = flow.returned
            for name, ranks in flow.arguments:
                for param, rank in ranks.items():
                    if param in seen[name]:
                        seen[name][param] = _join(seen[name][param], rank)
        for name, ranks in seen.items():  # keyword-only parameters no call bound: unknown
            for param in params[name]:
                if param not in ranks:
                    ranks[param] = _UNKNOWN
        if seen == params and new_returns == returns:
            break
        params, returns = seen, new_returns
    known = {name: {p: r for p, r in ranks.items() if isinstance(r, int)} for name, ranks in params.items()}
    return ({name: ranks for name, ranks in known.items() if ranks},
            {name: rank for name, rank in returns.items() if isinstance(rank, int)})


class _WithReturns:
    """The name resolver, plus the ranks module functions return (see `_rank`)."""

    def __init__(self, resolve: Resolve, returns: Dict[str, int]):
        self.resolve = resolve
        self.returns = returns

    def __call__(self, dotted: str) -> Optional[str]:
        return self.resolve(dotted)


def module_context(module: ast.Module, resolve: Resolve):
    """What calls across the module tell about ranks: (parameter ranks by function, a resolver
    that also knows the ranks module functions return), for `function_ranks`."""
    params, returns = _module_ranks(module, resolve)
    return params, _WithReturns(resolve, returns)


def function_ranks(node, resolve: Resolve, param_ranks=None, watched_apis=()) -> Dict[int, Optional[int]]:
    """{id(call): rank of its input} for the calls of `watched_apis` in `node`."""
    flow = _flow(node, resolve, watched_apis, None, param_ranks)
    return {key: rank if isinstance(rank, int) else None for key, rank in flow.inputs.items()}


def batch_norm_input_ranks(node, resolve: Resolve, batch_norm_apis,
                           param_ranks: Optional[Dict[str, int]] = None) -> List[Optional[int]]:
    """The input rank of each batch-norm call in `node`, in source order."""
    ranks = function_ranks(node, resolve, param_ranks, batch_norm_apis)
    calls = sorted((c for c in ast.walk(node) if isinstance(c, ast.Call)
                    and _api(c.func, resolve) in batch_norm_apis),
                   key=lambda c: (c.lineno, c.col_offset))
    return [ranks.get(id(c)) for c in calls]




def _api(func, resolve: Resolve) -> Optional[str]:
    dotted = dotted_name(func)
    return resolve(dotted) if dotted else None


def _input_of(call: ast.Call):
    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
    if positional:
        return positional[0]
    for keyword in call.keywords:
        if keyword.arg in _INPUT_KEYWORDS:
            return keyword.value
    return None


def _rank(expr, env, resolve: Resolve):
    """An int, _PENDING (reads a local with no rank yet) or _UNKNOWN."""
    if isinstance(expr, ast.Name):
        return env.get(expr.id, _UNKNOWN)
    if isinstance(expr, ast.UnaryOp):
        return _rank(expr.operand, env, resolve)
    if isinstance(expr, ast.BinOp):
        return _broadcast([expr.left, expr.right], env, resolve)
    if isinstance(expr, ast.IfExp):
        return _same([expr.body, expr.orelse], env, resolve)
    if not isinstance(expr, ast.Call):
        return _UNKNOWN
    returns = getattr(resolve, "returns", {})
    if isinstance(expr.func, ast.Name) and expr.func.id in returns:
        return returns[expr.func.id]  # may be _PENDING while the module's fixpoint runs
    api = _api(expr.func, resolve)
    if api is None or not api.startswith(_API_ROOTS):
        return _UNKNOWN
    last = api.rsplit(".", 1)[-1]
    if last in _FIXED_RANK:
        return _FIXED_RANK[last]
    if last == "reshape":
        shape = expr.args[1] if len(expr.args) > 1 else next(
            (k.value for k in expr.keywords if k.arg == "shape"), None)
        if isinstance(shape, (ast.List, ast.Tuple)) and not any(
                isinstance(e, ast.Starred) for e in shape.elts):
            return len(shape.elts)
        return _UNKNOWN
    if last in _SAME_RANK:
        arg = _input_of(expr)
        return _rank(arg, env, resolve) if arg is not None else _UNKNOWN
    if last in _BINARY_SAME_RANK:
        return _broadcast(list(expr.args[:2]), env, resolve)
    if last == "concat":
        values = expr.args[0] if expr.args else next(
            (k.value for k in expr.keywords if k.arg == "values"), None)
        if isinstance(values, (ast.List, ast.Tuple)) and values.elts:
            return _same(values.elts, env, resolve)
    return _UNKNOWN


def _same(operands, env, resolve):
    """All operands of one rank: that rank."""
    ranks = {_rank(o, env, resolve) for o in operands}
    if _UNKNOWN in ranks:
        return _UNKNOWN
    if _PENDING in ranks:
        return _PENDING
    return ranks.pop() if len(ranks) == 1 else _UNKNOWN


def _broadcast(operands, env, resolve):
    """Rank of an element-wise op: numbers broadcast, tensors of one known rank keep it."""
    tensors = [o for o in operands if not (isinstance(o, ast.Constant) and isinstance(
        o.value, (int, float)) and not isinstance(o.value, bool))]
    return _same(tensors, env, resolve) if tensors else _UNKNOWN
