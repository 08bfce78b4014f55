"""TFM430: TF1 `tf.summary` ops, `merge_all`, `FileWriter` and `add_summary` (reported)."""

from __future__ import annotations

import ast
from typing import Set

from migrate.findings import EXACT
from migrate.rules.base import RewriteRule

_OPS = ("scalar", "histogram", "image", "audio", "text", "tensor_summary")
_MERGE = ("merge_all", "merge")
_WRITERS = ("FileWriter", "FileWriterCache")
V1_SUMMARY_APIS = frozenset(f"tensorflow.summary.{name}" for name in _OPS + _MERGE + _WRITERS)


def _has_step(call: ast.Call) -> bool:
    return len(call.args) >= 3 or any(k.arg == "step" for k in call.keywords)


def _writer_names(ctx) -> Set[str]:
    """Names assigned a `tf.summary.FileWriter(...)` anywhere in the module (also `self.writer`)."""
    names = set()
    for node in ctx.nodes:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                ctx.resolve(node.value.func) == "tensorflow.summary.FileWriter":
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return names


class SummaryV1(RewriteRule):
    """
    ## What it does
    Reports TF1 summaries: `tf.summary.scalar/histogram/image/audio/text(name, tensor)` ops,
    `tf.summary.merge_all()`/`merge`, `tf.summary.FileWriter(logdir, graph)` and
    `writer.add_summary(summary, step)`.

    ## Why
    In TF1 a summary op is a graph tensor: the program fetches it (usually merged) with
    `sess.run` and hands the serialized result to a `FileWriter`. TF 2 has no `merge_all`,
    `FileWriter` or `add_summary`, and its `tf.summary.scalar(name, data, step=None)` writes
    immediately to the *default* writer: the unchanged TF1 call is silently a no-op when no
    writer is the default, and raises when it is and no step is set. The TF2 form is
    `writer = tf.summary.create_file_writer(logdir)` once, then, where the value is known,
    `with writer.as_default(): tf.summary.scalar(name, value, step=step)` (the step is often
    `optimizer.iterations`). `FileWriter`'s graph argument has no equivalent (see
    `tf.summary.trace_on`/`trace_export`). TF 2.21's `tf.summary.scalar` imports the
    `tensorboard` package, which TensorFlow no longer installs.

    The training-loop rewrite (TFM400) makes this change itself for scalar summaries of named
    tensors in a Session program it converts (the fetched summary becomes values the train step
    returns, `add_summary` the writes, `FileWriter` `create_file_writer`); those sites are then
    reported as fixed. Histograms, images, summaries of expressions and programs it leaves
    unchanged (TFM401) keep these findings: the sites to move by hand.

    ## Example
    ```python
    tf.summary.scalar("loss", loss)
    merged = tf.summary.merge_all()
    writer = tf.summary.FileWriter(logdir, sess.graph)
    summary, _ = sess.run([merged, train_op], feed_dict=feed)
    writer.add_summary(summary, step)
    ```
    becomes, in TF2,
    ```python
    writer = tf.summary.create_file_writer(logdir)
    loss = train_step(model, optimizer, x, y)
    with writer.as_default():
        tf.summary.scalar("loss", loss, step=optimizer.iterations)
    ```
    """

    code = "TFM430"
    name = "summary-v1"
    summary = "TF1 summary ops / merge_all / FileWriter / add_summary: TF2 writes summaries eagerly"
    tokens = ("summary",)

    def check(self, ctx):
        for call, api in ctx.calls_to(V1_SUMMARY_APIS):
            short = api.rsplit(".", 1)[-1]
            if short in _OPS and (_has_step(call) or not ctx.is_tf1_graph_code):
                continue  # TF2's own tf.summary.scalar(name, data, step)
            if short in _OPS:
                message = (f"TF1 summary op tf.summary.{short}(name, tensor): in TF2 call "
                           f"tf.summary.{short}(name, value, step=...) where the value is computed, inside "
                           "`with writer.as_default():` (unchanged, it writes nothing)")
            elif short in _MERGE:
                message = (f"tf.summary.{short} has no TF2 equivalent: TF2 summaries are written when "
                           "they are called, inside `with writer.as_default():`")
            else:
                message = (f"tf.summary.{short} -> tf.summary.create_file_writer(logdir) (the graph "
                           "argument has no equivalent; see tf.summary.trace_on/trace_export)")
            yield ctx.finding(call, self.code, message)
        writers = _writer_names(ctx) if "add_summary" in ctx.text else set()
        for node in ctx.nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "add_summary":
                receiver = node.func.value
                name = receiver.id if isinstance(receiver, ast.Name) else (
                    receiver.attr if isinstance(receiver, ast.Attribute) else None)
                if name in writers:
                    yield ctx.finding(node, self.code,
                                      "FileWriter.add_summary has no TF2 equivalent: write each value "
                                      "with tf.summary.scalar(name, value, step=step) inside "
                                      "`with writer.as_default():`")

    def wants_rewrite(self, ctx, findings) -> bool:
        return bool(findings) and "Session" in ctx.text  # only TFM400 migrates summaries

    def rewrite(self, module, ctx):
        """Writes nothing itself: marks fixed the sites of functions whose summaries the
        training-loop rewrite (which runs before) migrated."""
        from migrate.context import ModuleContext

        try:
            new_text = module.code
            new_ctx = ModuleContext(ctx.path, new_text, ast.parse(new_text))
        except SyntaxError:
            return module, []
        remaining = {_function_of(new_ctx, node) for node in _v1_nodes(new_ctx)}
        fixed = []
        for finding in self.check(ctx):
            function = _function_at_line(ctx, finding.line)
            if function is not None and function not in remaining and _defines(new_ctx, function):
                fixed.append(finding.__class__(finding.path, finding.line, finding.col, finding.code,
                                               finding.message, fixed=True, rewrite_class=EXACT))
        return module, fixed


def _v1_nodes(ctx):
    for call, api in ctx.calls_to(V1_SUMMARY_APIS):
        if not (api.rsplit(".", 1)[-1] in _OPS and _has_step(call)):  # TF2's own form
            yield call
    for node in ctx.nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_summary":
            yield node


def _function_of(ctx, node):
    function = None
    for parent in ctx.enclosing(node, [ast.FunctionDef]):
        function = parent.name  # the outermost: a module-level function
    return function


def _function_at_line(ctx, line: int):
    for node in ctx.tree.body:
        if isinstance(node, ast.FunctionDef) and node.lineno <= line <= (node.end_lineno or node.lineno):
            return node.name
    return None


def _defines(ctx, name: str) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ctx.tree.body)
