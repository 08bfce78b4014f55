"""TF1 scalar summaries in a Session program -> TF2 summary writes of the fetched values.

TF1: `tf.summary.scalar(name, tensor)` ops (merged with `merge_all`/`merge`) are fetched with
`sess.run` and the serialized result goes to `FileWriter.add_summary(summary, step)`. TF2 writes
a value when `tf.summary.scalar(name, value, step=step)` is called under a default writer. So:

* `writer = tf.summary.FileWriter(logdir[, graph])` -> `tf.summary.create_file_writer(logdir)`
  (the graph has no TF2 counterpart);
* a fetch of a summary (or of the merged one) fetches the scalar tensors instead, each into its
  own name (`summary` -> `summary_loss`, ...), which the train step returns like any fetch;
* `writer.add_summary(summary, step)` -> `with writer.as_default():` + one
  `tf.summary.scalar(name, summary_loss, step=step)` per scalar, with TF1's tags.

The summarised value may be a tensor the program names, an expression of its graph values
(`loss * 2`, `tf.reduce_mean(errors)`: it gets a name and is computed where it is fetched, in
the train step when fetched with the train op), or a Python value (`learning_rate`, a float
parameter: TF1 wrote it as a constant, TF2 writes it as it is). Histograms, images, text, a
learning-rate schedule's tensor and anything else raise `Unmappable` (the program stays as it
was; TFM430 reports the sites).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from migrate.model_rewrite.layers import Unmappable, render

_SCALAR = "tensorflow.summary.scalar"
_MERGE_ALL = "tensorflow.summary.merge_all"
_MERGE = "tensorflow.summary.merge"
_FILE_WRITER = "tensorflow.summary.FileWriter"
_PREFIX = "tensorflow.summary."


class PythonValue(str):
    """A summarised value that is no graph tensor (`tf.summary.scalar('lr', learning_rate)`
    with a Python float): TF1 wrote the constant; TF2 writes the expression's source as it is."""


def _argument(call: cst.Call, name: str, position: int):
    for index, arg in enumerate(call.args):
        if (arg.keyword is not None and arg.keyword.value == name) or (arg.keyword is None and index == position):
            return arg.value
    return None


class Summaries:
    def __init__(self, resolve, tf_alias: str, fresh, graph_names, summary_value=None):
        self.resolve = resolve
        self.tf = tf_alias
        self.fresh = fresh  # ProgramConverter._fresh: unique names
        self.graph_names = graph_names  # callable: the graph tensors the program names
        # callable (expression, tag) -> the graph name computing it, or a `PythonValue`
        self.summary_value = summary_value
        self.collection: List[Tuple[str, str]] = []  # (tag source, tensor name), program order
        self.ops: Dict[str, List[Tuple[str, str]]] = {}  # summary tensor name -> its scalars
        self.writers: Set[str] = set()
        self.fetched: Dict[str, List[Tuple[str, str]]] = {}  # session name -> (tag, value name)

    def _calls(self, node) -> List[Tuple[cst.Call, str]]:
        found = []
        resolve = self.resolve

        class Finder(cst.CSTVisitor):
            def visit_Call(self, call):
                api = resolve(call.func) or ""
                if api.startswith(_PREFIX):
                    found.append((call, api))

        node.visit(Finder())
        return found

    def _writer(self, call: cst.Call) -> cst.BaseExpression:
        logdir = _argument(call, "logdir", 0)
        extra = [a for i, a in enumerate(call.args) if not (
            (a.keyword is None and i in (0, 1)) or (a.keyword is not None and a.keyword.value in ("logdir", "graph")))]
        if logdir is None or extra:
            raise Unmappable("tf.summary.FileWriter with arguments other than logdir and graph")
        return cst.parse_expression(f"{self.tf}.summary.create_file_writer({render(logdir)})")

    def _writer_statement(self, stmt) -> Optional[List[cst.BaseStatement]]:
        small = stmt.body[0]
        if not (isinstance(small, cst.Assign) and isinstance(small.value, cst.Call)
                and self.resolve(small.value.func) == _FILE_WRITER):
            return None
        targets = small.targets
        if len(targets) != 1 or not isinstance(targets[0].target, cst.Name):
            raise Unmappable("tf.summary.FileWriter not assigned to one name")
        self.writers.add(targets[0].target.value)
        return [stmt.with_changes(body=[small.with_changes(value=self._writer(small.value))])]

    # -- before the session -------------------------------------------------------------------
    def graph_statement(self, stmt) -> Optional[List[cst.BaseStatement]]:
        """The statement's replacement when it is about summaries, else None."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return None
        calls = self._calls(stmt)
        if not calls:
            return None
        writer = self._writer_statement(stmt)
        if writer is not None:
            return writer
        small = stmt.body[0]
        value = small.value if isinstance(small, (cst.Assign, cst.Expr)) else None
        if not (isinstance(value, cst.Call) and len(calls) == 1 and calls[0][0] is value):
            raise Unmappable(f"{calls[0][1].replace('tensorflow.', 'tf.')} inside an expression "
                             "(only `tf.summary.scalar(name, tensor)` statements are rewritten)")
        api = calls[0][1]
        targets = [t.target.value for t in small.targets if isinstance(t.target, cst.Name)] \
            if isinstance(small, cst.Assign) else []
        if isinstance(small, cst.Assign) and len(targets) != len(small.targets):
            raise Unmappable("a summary assigned to something other than a name")
        if api == _SCALAR:
            tag = _argument(value, "name", 0)
            tensor = _argument(value, "tensor", 1)
            extra = [a for a in value.args if a.keyword is not None and a.keyword.value not in ("name", "tensor")]
            if tag is None or tensor is None or extra:
                raise Unmappable("tf.summary.scalar with collections/family (only "
                                 "`tf.summary.scalar(name, value)` is rewritten)")
            if isinstance(tensor, cst.Name) and tensor.value in self.graph_names():
                scalar = (render(tag), tensor.value)
            else:
                # An expression: a graph value computed where it is fetched, or a Python value
                # written as it is (`summary_value` says which, or why neither).
                scalar = (render(tag), self.summary_value(tensor, tag))
            self.collection.append(scalar)
            for target in targets:
                self.ops[target] = [scalar]
            return []
        if api == _MERGE_ALL and targets and not value.args:
            for target in targets:
                self.ops[target] = list(self.collection)
            return []
        if api == _MERGE and targets:
            inputs = _argument(value, "inputs", 0)
            if not isinstance(inputs, (cst.List, cst.Tuple)) or not all(
                    isinstance(e.value, cst.Name) and e.value.value in self.ops for e in inputs.elements):
                raise Unmappable("tf.summary.merge of something other than a list of summaries")
            merged = [s for e in inputs.elements for s in self.ops[e.value.value]]
            for target in targets:
                self.ops[target] = merged
            return []
        raise Unmappable(f"{api.replace('tensorflow.', 'tf.')}: only scalar summaries are rewritten "
                         "(TFM430 reports the others)")

    # -- the session block --------------------------------------------------------------------
    def session_statement(self, stmt, is_run) -> Tuple[cst.BaseStatement, Optional[List[cst.BaseStatement]]]:
        """(the statement, with summary fetches expanded; its replacement when fully handled)."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return stmt, None
        writer = self._writer_statement(stmt)
        if writer is not None:
            return stmt, writer
        small = stmt.body[0]
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            func = call.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) \
                    and func.value.value in self.writers and func.attr.value == "add_summary":
                return stmt, [self._add_summary(stmt, call)]
        if isinstance(small, cst.Assign) and is_run(small.value) and self.ops:
            return stmt.with_changes(body=[self._expand(small)]), None
        return stmt, None

    def _expand(self, assign: cst.Assign) -> cst.Assign:
        """`summary, _ = sess.run([merged, train_op])` -> `summary_loss, _ = sess.run([loss, train_op])`."""
        call = assign.value
        fetch = call.args[0].value if call.args else None
        if len(assign.targets) != 1:
            return assign
        target = assign.targets[0].target
        if isinstance(fetch, cst.Name):
            if fetch.value not in self.ops:
                return assign
            pairs = [(fetch, target)]
        elif isinstance(fetch, (cst.List, cst.Tuple)) and isinstance(target, (cst.List, cst.Tuple)) \
                and len(fetch.elements) == len(target.elements):
            pairs = [(f.value, t.value) for f, t in zip(fetch.elements, target.elements)]
        else:
            if any(isinstance(e.value, cst.Name) and e.value.value in self.ops
                   for e in getattr(fetch, "elements", [])):
                raise Unmappable("a summary fetched into a shape the rewrite cannot follow")
            return assign
        fetches, targets, changed = [], [], False
        for value, name in pairs:
            if isinstance(value, cst.Name) and value.value in self.ops:
                if not isinstance(name, cst.Name):
                    raise Unmappable("a fetched summary not assigned to a name")
                scalars = self.ops[value.value]
                if not scalars:
                    raise Unmappable("a merged summary with no scalar summary in this program")
                names = []
                if all(isinstance(tensor, PythonValue) for _, tensor in scalars):
                    raise Unmappable("a fetched summary of Python values only (no graph tensor)")
                for tag, tensor in scalars:
                    if isinstance(tensor, PythonValue):
                        names.append((tag, str(tensor)))  # written as it is
                        continue
                    stem = re.sub(r"\W+", "_", tensor)
                    local = self.fresh(f"{name.value}_{stem}")
                    names.append((tag, local))
                    fetches.append(cst.Name(tensor))
                    targets.append(cst.Name(local))
                self.fetched[name.value] = names
                changed = True
            else:
                fetches.append(value)
                targets.append(name)
        if not changed:
            return assign
        new_fetch = cst.List([cst.Element(f) for f in fetches])
        new_target = cst.Tuple([cst.Element(t) for t in targets], lpar=[], rpar=[]) \
            if len(targets) > 1 else targets[0]
        if len(fetches) == 1:
            new_fetch = fetches[0]
        args = [call.args[0].with_changes(value=new_fetch), *call.args[1:]]
        return assign.with_changes(targets=[assign.targets[0].with_changes(target=new_target)],
                                   value=call.with_changes(args=args))

    def _add_summary(self, stmt, call: cst.Call) -> cst.BaseStatement:
        value = _argument(call, "summary", 0)
        step = _argument(call, "global_step", 1)
        if not (isinstance(value, cst.Name) and value.value in self.fetched) or step is None:
            raise Unmappable("add_summary of something other than a fetched summary, or without a step")
        writer = call.func.value.value
        lines = [f"with {writer}.as_default():"]
        for tag, local in self.fetched[value.value]:
            lines.append(f"    {self.tf}.summary.scalar({tag}, {local}, step={render(step)})")
        new = cst.parse_statement("\n".join(lines) + "\n")
        return new.with_changes(leading_lines=stmt.leading_lines)
