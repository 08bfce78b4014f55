"""tf.data input pipelines in a TF1 Session program -> Python iteration over the dataset (TF2).

TF1 programs feed their model from an iterator's `get_next()` tensors rather than from
placeholders:

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=1).batch(8)
    iterator = dataset.make_one_shot_iterator()        # or make_initializable_iterator()
    images, labels = iterator.get_next()
    ... sess.run([train_op, loss]) ...

TF1 semantics kept: each `sess.run` whose fetches depend on the `get_next()` tensors pulls
exactly one element, shared by all its fetches; a run that does not depend on them pulls
nothing; `sess.run(iterator.initializer)` starts the iterator again; the end of the data raises
`tf.errors.OutOfRangeError` in the run that pulls.

The rewrite (driven by `program.ProgramConverter`):

* the dataset code stays (tf.data is TF2); a one-shot iterator becomes `iterator = iter(dataset)`
  where TF1 created it;
* an initializable iterator is made at each initializer run: the statements that build its
  dataset move there (a placeholder they read takes the value fed to the initializer), then
  `iterator = iter(dataset)`. Measured on TF 2.21: TF1 restarts a seeded `shuffle` in the same
  order at every initializer run, while a second `iter()` over the same TF2 dataset object
  reshuffles; a freshly built dataset repeats TF1's order;
* the `get_next()` tensors are inputs of the train steps and fetched values, exactly like fed
  placeholders; each converted `sess.run` that depended on them gets
  `images, labels = next(iterator)` right before it;
* `except tf.errors.OutOfRangeError` around such runs -> `except StopIteration`; the plain
  `while True: try: <pull first> ... except OutOfRangeError: break` loop -> `for images, labels
  in iterator:`.

Anything else (queue runners, `tf.train.shuffle_batch`, reinitializable or feedable iterators,
string handles, a `get_next()` called twice, a dataset built from graph tensors) raises
`Unmappable`: the program stays as it was, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set

import libcst as cst

from migrate.cst_utils import (SubstituteNames, assigned_names, bound_names_in_order, names_read,
                               nodes_of, target_names)
from migrate.model_rewrite.layers import Unmappable, render

ONE_SHOT = "tensorflow.data.make_one_shot_iterator"
INITIALIZABLE = "tensorflow.data.make_initializable_iterator"
OUT_OF_RANGE = "tensorflow.errors.OutOfRangeError"
# Reinitializable / feedable iterators: one iterator switched between datasets by a run-time
# handle or `make_initializer(other)`; TF2 has no such object (the program would choose the
# Python iterator itself).
SWITCHED = ("tensorflow.data.Iterator.from_structure", "tensorflow.data.Iterator.from_string_handle",
            "tensorflow.data.Iterator")
SWITCHED_METHODS = {"make_initializer": "a reinitializable iterator (`{it}.make_initializer(...)`)",
                    "string_handle": "a feedable iterator (`{it}.string_handle()`)"}
# Queue-based input (TF1 before tf.data): queue runners and readers have no TF2 counterpart.
QUEUES = ("tensorflow.train.start_queue_runners", "tensorflow.train.shuffle_batch",
          "tensorflow.train.batch", "tensorflow.train.shuffle_batch_join",
          "tensorflow.train.batch_join", "tensorflow.train.maybe_batch",
          "tensorflow.train.maybe_shuffle_batch", "tensorflow.train.string_input_producer",
          "tensorflow.train.slice_input_producer", "tensorflow.train.input_producer",
          "tensorflow.train.range_input_producer", "tensorflow.train.limit_epochs",
          "tensorflow.train.Coordinator", "tensorflow.train.QueueRunner",
          "tensorflow.train.add_queue_runner", "tensorflow.FIFOQueue",
          "tensorflow.RandomShuffleQueue", "tensorflow.PaddingFIFOQueue", "tensorflow.PriorityQueue",
          "tensorflow.TFRecordReader", "tensorflow.WholeFileReader", "tensorflow.TextLineReader",
          "tensorflow.FixedLengthRecordReader", "tensorflow.IdentityReader")
# Dataset methods and properties TF2 removed (DatasetV1 only).
TF1_ONLY_METHODS = ("output_shapes", "output_types", "output_classes",
                    "map_with_legacy_function", "filter_with_legacy_function")
MAKERS = {"make_one_shot_iterator": False, "make_initializable_iterator": True}


@dataclass
class DataIterator:
    name: str
    dataset: cst.BaseExpression  # what it iterates (a name, or the expression TF1 made it of)
    initializable: bool
    target: Optional[cst.BaseAssignTargetExpression] = None  # get_next()'s target
    elements: Sequence[str] = ()


class DatasetInputs:
    """What a Session program reads from tf.data: its iterators, the tensors `get_next()` gave,
    and the dataset statements an initializable iterator rebuilds at each initializer run."""

    def __init__(self, resolve, fresh: Callable[[str], str], func: cst.FunctionDef):
        self.resolve = resolve
        self.fresh = fresh
        self.func = func
        self.iterators: Dict[str, DataIterator] = {}
        self.elements: Dict[str, str] = {}  # get_next() tensor name -> its iterator
        self.initializer_names: Dict[str, str] = {}  # `init = iterator.initializer` -> iterator
        self.datasets: Set[str] = set()  # names bound to datasets
        self.moved: Dict[int, cst.SimpleStatementLine] = {}  # rebuilt at initializer runs
        self.rebuilt: Dict[str, List[cst.SimpleStatementLine]] = {}  # iterator -> its dataset's
        self.pending: List[str] = []  # iterators the statement being converted pulls from
        self.pull_nodes: Dict[int, str] = {}  # id of a generated `... = next(it)` -> it
        self.pulls = 0
        self.emitted: Set[str] = set()  # initializable iterators already made at a site

    # -- before conversion: what the program does with its iterators -------------------------
    def prepare(self, graph_stmts, session_stmts) -> None:
        """Refuse what cannot be converted, name the iterators, and mark the dataset statements
        of initializable iterators (they move to the initializer runs)."""
        self._refuse_queues_and_handles()
        self._find_datasets(graph_stmts)
        makers = {}
        for index, stmt in enumerate(graph_stmts):
            made = self._maker_of_statement(stmt)
            if made is not None:
                makers[index] = made
        for index, (name, source, initializable) in makers.items():
            if initializable:
                self._move_dataset_of(name, source, graph_stmts[:index], graph_stmts[index + 1:],
                                      session_stmts)
        self._check_iterator_uses()

    def _refuse_queues_and_handles(self) -> None:
        for call in nodes_of(self.func, cst.Call):
            api = self.resolve(call.func) or ""
            if api in QUEUES:
                raise Unmappable(f"queue-based input ({_short(api)}): queue runners and readers have "
                                 "no TF2 equivalent; the input needs rewriting as a tf.data pipeline")
            if api in SWITCHED or api.startswith("tensorflow.data.Iterator."):
                raise Unmappable(f"a reinitializable or feedable iterator ({_short(api)}): one TF1 "
                                 "iterator switched between datasets has no TF2 counterpart")

    def _find_datasets(self, stmts) -> None:
        """Names bound to datasets: tf.data expressions, chains on them, and whatever an
        iterator is made of (`dataset = input_fn(...)`)."""
        receivers = set()
        for call in nodes_of(cst.Module(body=list(stmts)), cst.Call):
            source = self._maker_source(call)
            if source is not None and isinstance(source[0], cst.Name):
                receivers.add(source[0].value)
        for stmt in stmts:
            targets = assigned_names(stmt)
            if len(targets) == 1 and len(stmt.body) == 1 and (
                    targets[0] in receivers or self._is_dataset(stmt.body[0].value)):
                self.datasets.add(targets[0])

    def _is_dataset(self, node) -> bool:
        """A tf.data expression: `tf.data.X(...)` or a method chain on a dataset name."""
        while isinstance(node, (cst.Call, cst.Attribute)):
            if isinstance(node, cst.Call):
                api = self.resolve(node.func) or ""
                if api.startswith("tensorflow.data.") and api not in (ONE_SHOT, INITIALIZABLE):
                    return True
                node = node.func
            else:
                if node.attr.value in MAKERS or node.attr.value == "get_next":
                    return False
                node = node.value
        return isinstance(node, cst.Name) and node.value in self.datasets

    def _maker_source(self, call: cst.Call):
        """(dataset expression, initializable) of `ds.make_one_shot_iterator()` and
        `tf.data.make_initializable_iterator(ds)`; None for other calls."""
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in MAKERS and not call.args:
            return call.func.value, MAKERS[call.func.attr.value]
        api = self.resolve(call.func)
        if api in (ONE_SHOT, INITIALIZABLE):
            if len(call.args) != 1 or call.args[0].keyword is not None:
                raise Unmappable(f"{_short(api)} with arguments besides the dataset")
            return call.args[0].value, api == INITIALIZABLE
        return None

    def _maker_of_statement(self, stmt):
        """`it = ds.make_*_iterator()`: (it, dataset expression, initializable), else None."""
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and isinstance(stmt.body[0].value, cst.Call)):
            return None
        source = self._maker_source(stmt.body[0].value)
        targets = assigned_names(stmt)
        if source is None or len(targets) != 1 or len(stmt.body[0].targets) != 1:
            return None
        return targets[0], source[0], source[1]

    def _move_dataset_of(self, iterator: str, source, before, after, session_stmts) -> None:
        """The statements building an initializable iterator's dataset run again at each of
        its initializer runs (a fresh dataset restarts a seeded shuffle as TF1 did)."""
        if not (isinstance(source, cst.Name) and source.value in self.datasets):
            raise Unmappable(f"the initializable iterator `{iterator}` is made of "
                             f"`{render(source)}`, not of a dataset the program builds")
        needed = {source.value}
        picked = []
        for stmt in reversed(before):
            defined = set(assigned_names(stmt))
            if defined & needed and defined <= self.datasets:
                picked.append(stmt)
                needed |= names_read(stmt) & self.datasets
        picked.reverse()
        if not picked:
            raise Unmappable(f"the dataset of the initializable iterator `{iterator}` is not built "
                             "before the iterator")
        defines = set()
        read = set()
        for stmt in picked:
            defines |= set(assigned_names(stmt))
            read |= names_read(stmt.body[0].value)
        first = next(i for i, s in enumerate(before) if s is picked[0])
        later = [s for s in before[first:] if not any(s is p for p in picked)] + list(after) \
            + list(session_stmts)
        rebound = set()
        for stmt in later:
            rebound |= read & set(bound_names_in_order(stmt))
        if rebound:
            raise Unmappable(f"the dataset of `{iterator}` reads `{sorted(rebound)[0]}`, which the "
                             "program assigns again before the iterator is initialised")
        for stmt in later:
            if isinstance(stmt, cst.SimpleStatementLine) and self._maker_of_statement(stmt) is not None \
                    and self._maker_of_statement(stmt)[0] == iterator:
                continue
            used = names_read(stmt) & defines
            if used:
                raise Unmappable(f"the dataset `{sorted(used)[0]}` of the initializable iterator "
                                 f"`{iterator}` is used besides that iterator")
        for stmt in picked:
            self.moved[id(stmt)] = stmt
        self.rebuilt[iterator] = picked
        self.iterators[iterator] = DataIterator(iterator, source, True)

    def _check_iterator_uses(self) -> None:
        """An iterator may only be read by `get_next()` and its `initializer`: anything else
        (passed on, string handles, make_initializer) has no meaning for a Python iterator."""
        bound = set()
        for stmt in _simple_lines(self.func):
            made = self._maker_of_statement(stmt)
            if made is not None:
                bound.add(made[0])
        if not bound:
            return
        problems: List[str] = []

        class Uses(cst.CSTVisitor):
            def visit_Attribute(self, node):
                if isinstance(node.value, cst.Name) and node.value.value in bound:
                    attr = node.attr.value
                    if attr in SWITCHED_METHODS:
                        problems.append(SWITCHED_METHODS[attr].format(it=node.value.value))
                    elif attr not in ("get_next", "initializer"):
                        problems.append(f"`{node.value.value}.{attr}` on a tf.data iterator")
                    return False
                return True

            def visit_Name(self, node):
                if node.value in bound:
                    problems.append(f"the iterator `{node.value}` used as a value")

            def visit_AssignTarget(self, node):
                return not (isinstance(node.target, cst.Name) and node.target.value in bound)

        self.func.body.visit(Uses())
        if problems:
            raise Unmappable(f"{problems[0]} has no TF2 counterpart")

    # -- the graph part ------------------------------------------------------------------------
    def graph_statement(self, stmt, placeholders: Set[str], graph_names: Set[str]) -> Optional[List]:
        """What the graph part keeps of a tf.data statement; None when it is none."""
        if id(stmt) in self.moved:
            return []  # rebuilt at each initializer run
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1):
            return None
        value = stmt.body[0].value
        target = stmt.body[0].targets[0].target
        made = self._maker_of_statement(stmt)
        if made is not None:
            name, source, initializable = made
            self._dataset_reads(source, placeholders, graph_names, one_shot=not initializable)
            if initializable:
                return []  # made by the initializer runs
            self.iterators[name] = DataIterator(name, source, False)
            new = cst.parse_statement(f"{name} = iter({render(source)})")
            return [new.with_changes(leading_lines=stmt.leading_lines)]
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                and value.func.attr.value == "get_next":
            if value.args:
                raise Unmappable("get_next() with arguments")
            return self._get_next(stmt, value.func.value, target, placeholders, graph_names)
        if isinstance(value, cst.Attribute) and value.attr.value == "initializer" and \
                isinstance(value.value, cst.Name) and value.value.value in self.iterators and \
                isinstance(target, cst.Name):
            self.initializer_names[target.value] = value.value.value
            return []  # `init = iterator.initializer`, run in the session
        targets = assigned_names(stmt)
        if len(targets) == 1 and targets[0] in self.datasets:
            self._check_methods(value)
            self._dataset_reads(value, placeholders, graph_names, one_shot=True)
            return [stmt]
        return None

    def _get_next(self, stmt, owner, target, placeholders, graph_names) -> List:
        prelude: List[cst.BaseStatement] = []
        if isinstance(owner, cst.Call) and self._maker_source(owner) is not None:
            # `images, labels = dataset.make_one_shot_iterator().get_next()`
            source, initializable = self._maker_source(owner)
            if initializable:
                raise Unmappable("get_next() of an initializable iterator that is never initialised")
            self._dataset_reads(source, placeholders, graph_names, one_shot=True)
            name = self.fresh("iterator")
            self.iterators[name] = DataIterator(name, source, False)
            prelude = [cst.parse_statement(f"{name} = iter({render(source)})")
                       .with_changes(leading_lines=stmt.leading_lines)]
        elif isinstance(owner, cst.Name) and owner.value in self.iterators:
            name = owner.value
        else:
            raise Unmappable(f"`{render(owner)}.get_next()` on something that is not a tf.data "
                             "iterator the program makes")
        iterator = self.iterators[name]
        if iterator.target is not None:
            raise Unmappable(f"get_next() called twice on `{name}` (each call pulls its own element "
                             "in TF1)")
        elements = target_names(target)
        if not elements or len(elements) != len(set(elements)) or not _only_names(target):
            raise Unmappable("get_next() unpacked into something other than names")
        binds = bound_names_in_order(self.func)
        for element in elements:
            if binds.count(element) != 1:
                raise Unmappable(f"`{element}`, a tensor of `{name}.get_next()`, is assigned again "
                                 "in the program")
            self.elements[element] = name
        iterator.target = target
        iterator.elements = tuple(elements)
        return prelude

    def _check_methods(self, value) -> None:
        for node in nodes_of(value, cst.Attribute):
            if node.attr.value in TF1_ONLY_METHODS:
                raise Unmappable(f"dataset.{node.attr.value} has no TF2 counterpart")

    def _dataset_reads(self, node, placeholders, graph_names, one_shot: bool) -> None:
        read = names_read(node)
        if read & graph_names:
            raise Unmappable(f"a dataset built from the graph tensor `{sorted(read & graph_names)[0]}`")
        if one_shot and read & placeholders:
            raise Unmappable(f"a dataset made of the placeholder `{sorted(read & placeholders)[0]}` "
                             "outside an initializable iterator")

    # -- the session block ---------------------------------------------------------------------
    def initializer_run(self, fetch) -> Optional[List[str]]:
        """The iterators `sess.run(fetch)` initialises when it runs only initializers (together
        with variable initializers, which the caller recognises: `others`); None otherwise."""
        items = [e.value for e in fetch.elements] if isinstance(fetch, (cst.List, cst.Tuple)) else [fetch]
        found = []
        for item in items:
            if isinstance(item, cst.Attribute) and item.attr.value == "initializer" and \
                    isinstance(item.value, cst.Name) and item.value.value in self.iterators:
                found.append(item.value.value)
            elif isinstance(item, cst.Name) and item.value in self.initializer_names:
                found.append(self.initializer_names[item.value])
        return found or None

    def initialize(self, iterator: str, feeds: Dict[str, cst.BaseExpression],
                   placeholders: Dict[str, Optional[cst.BaseExpression]], leading) -> List:
        """`sess.run(iterator.initializer, feed_dict=...)` -> the dataset built again, the
        placeholders it reads replaced by the fed values, and a fresh Python iterator."""
        it = self.iterators[iterator]
        if not it.initializable:
            raise Unmappable(f"`{iterator}.initializer` of a one-shot iterator")
        out: List[cst.BaseStatement] = []
        values: Dict[str, cst.BaseExpression] = {}
        statements = self.rebuilt[iterator]
        read = set()
        for stmt in statements:
            read |= names_read(stmt.body[0].value)
        for name in sorted(read & set(placeholders)):
            value = feeds.get(name, placeholders[name])
            if value is None:
                raise Unmappable(f"placeholder {name} is read by the dataset of `{iterator}` but not "
                                 "fed to its initializer")
            if not isinstance(value, (cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.SimpleString)):
                temp = self.fresh(f"{name}_value")  # TF1 evaluated the feed once
                out.append(cst.parse_statement(f"{temp} = {render(value)}"))
                value = cst.Name(temp)
            values[name] = value
        unused = set(feeds) - read
        if unused:
            raise Unmappable(f"the initializer of `{iterator}` is fed `{sorted(unused)[0]}`, which "
                             "its dataset does not read")
        first_site = iterator not in self.emitted
        self.emitted.add(iterator)
        for stmt in statements:
            # The comments above the dataset statements move with them (to the first site).
            kept = [line for line in stmt.leading_lines if line.comment is not None] if first_site else []
            out.append(stmt.visit(SubstituteNames(values)).with_changes(leading_lines=kept))
        out.append(cst.parse_statement(f"{iterator} = iter({render(it.dataset)})"))
        out[0] = out[0].with_changes(leading_lines=[*leading, *out[0].leading_lines])
        return out

    def pull(self, read: Set[str]) -> Dict[str, cst.BaseExpression]:
        """A run that reads `read` pulls one element from each iterator it depends on: the
        values it is fed with (the element names, bound by `next()` before the run)."""
        feeds: Dict[str, cst.BaseExpression] = {}
        for name in sorted({self.elements[e] for e in read if e in self.elements}):
            if name in self.pending:
                raise Unmappable(f"two sess.run calls in one statement both pull from `{name}`")
            self.pending.append(name)
            for element in self.iterators[name].elements:
                feeds[element] = cst.Name(element)
        return feeds

    def with_pulls(self, converted: List) -> List:
        """The statement's converted form after the `next()` of each iterator it pulled from."""
        if not self.pending:
            return converted
        pulls = []
        for name in self.pending:
            target = render(self.iterators[name].target)
            stmt = cst.parse_statement(f"{target} = next({name})")
            pulls.append(stmt)
        self.pending = []
        if converted:
            pulls[0] = pulls[0].with_changes(leading_lines=converted[0].leading_lines)
            converted = [converted[0].with_changes(leading_lines=[]), *converted[1:]]
        for stmt in pulls:
            self.pull_nodes[id(stmt)] = stmt.body[0].value.args[0].value.value
            self.pulls += 1
        return pulls + converted

    def compound(self, stmt, block) -> Optional[List]:
        """`try: ... except tf.errors.OutOfRangeError:` around pulls -> `except StopIteration`;
        `while True: try: <the pull> ... except OutOfRangeError: break` -> a for loop over the
        iterator. None for other statements (and for a try that neither pulls nor catches
        OutOfRangeError: the caller refuses it as before)."""
        if isinstance(stmt, cst.Try):
            converted = self._try(stmt, block)
            return [converted[0]] if converted is not None else None
        if not (isinstance(stmt, cst.While) and stmt.orelse is None and _is_true(stmt.test)
                and len(stmt.body.body) == 1 and isinstance(stmt.body.body[0], cst.Try)):
            return None
        inner = stmt.body.body[0]
        converted = self._try(inner, block)
        if converted is None:
            return None
        new_try, body, pulls = converted
        handler = inner.handlers[0] if len(inner.handlers) == 1 else None
        if pulls == 1 and body and id(body[0]) in self.pull_nodes and handler is not None and \
                self.resolve(handler.type) == OUT_OF_RANGE and handler.name is None and \
                _is_break(handler.body) and inner.orelse is None and inner.finalbody is None:
            iterator = self.pull_nodes[id(body[0])]
            rest = body[1:] or [cst.SimpleStatementLine([cst.Pass()])]
            loop = cst.For(target=self.iterators[iterator].target, iter=cst.Name(iterator),
                           body=stmt.body.with_changes(body=rest), leading_lines=stmt.leading_lines)
            return [loop]
        return [stmt.with_changes(body=stmt.body.with_changes(body=[new_try]))]

    def _try(self, stmt: cst.Try, block):
        before = self.pulls
        body = block(list(stmt.body.body))
        pulls = self.pulls - before
        handlers = []
        catches = False
        for handler in stmt.handlers:
            new_body = block(list(handler.body.body)) or [cst.SimpleStatementLine([cst.Pass()])]
            handler = handler.with_changes(body=handler.body.with_changes(body=new_body))
            if handler.type is not None and _catches(handler.type, self.resolve):
                if self.resolve(handler.type) != OUT_OF_RANGE:
                    raise Unmappable("tf.errors.OutOfRangeError caught together with other exceptions")
                if not pulls:
                    raise Unmappable("`except tf.errors.OutOfRangeError` around code that pulls from "
                                     "no tf.data iterator")
                catches = True
                handler = handler.with_changes(type=cst.Name("StopIteration"))
            handlers.append(handler)
        if not pulls and not catches:
            return None
        new = stmt.with_changes(body=stmt.body.with_changes(body=body or [cst.SimpleStatementLine([cst.Pass()])]),
                                handlers=handlers)
        if stmt.orelse is not None:
            new = new.with_changes(orelse=stmt.orelse.with_changes(body=stmt.orelse.body.with_changes(
                body=block(list(stmt.orelse.body.body)) or [cst.SimpleStatementLine([cst.Pass()])])))
        if stmt.finalbody is not None:
            new = new.with_changes(finalbody=stmt.finalbody.with_changes(body=stmt.finalbody.body.with_changes(
                body=block(list(stmt.finalbody.body.body)) or [cst.SimpleStatementLine([cst.Pass()])])))
        return new, body, pulls

    def check_converted(self, module: cst.Module) -> None:
        """No TF1 iterator attribute (`.initializer`, `.get_next`) may survive the rewrite: the
        name is a Python iterator now."""
        for node in nodes_of(module, cst.Attribute):
            if isinstance(node.value, cst.Name) and node.value.value in self.iterators:
                raise Unmappable(f"`{node.value.value}.{node.attr.value}` is still used as a TF1 "
                                 "iterator")

    def leftovers(self) -> Set[str]:
        """Names that must not survive the rewrite (TF1 values with no TF2 meaning)."""
        return set(self.initializer_names)


# Dataset methods (TF1 and TF2 alike), the iterator makers and get_next: what an input block
# (`with tf.device('/cpu:0'):` around the pipeline) may call on its names.
PIPELINE_METHODS = {"map", "batch", "shuffle", "repeat", "prefetch", "filter", "flat_map",
                    "interleave", "padded_batch", "take", "skip", "cache", "zip", "concatenate",
                    "apply", "unbatch", "shard", "with_options", "window", "enumerate",
                    "make_one_shot_iterator", "make_initializable_iterator", "get_next"}
INPUT_SCOPES = ("tensorflow.device", "tensorflow.name_scope")


def input_pipeline_block(stmt, resolve) -> bool:
    """`with tf.device('/cpu:0'):` (or `tf.name_scope('input')`) around nothing but the tf.data
    pipeline (datasets, the iterator, get_next()): the block only placed and named graph ops;
    TF2 runs the pipeline on the CPU and the loop pulls from it in Python, so its body stands
    alone."""
    if not (isinstance(stmt, cst.With) and len(stmt.items) == 1 and stmt.items[0].asname is None
            and isinstance(stmt.items[0].item, cst.Call)
            and resolve(stmt.items[0].item.func) in INPUT_SCOPES):
        return False
    pulls = False
    for inner in stmt.body.body:
        if not (isinstance(inner, cst.SimpleStatementLine) and len(inner.body) == 1
                and isinstance(inner.body[0], cst.Assign)):
            return False
        node = inner.body[0].value
        while isinstance(node, (cst.Call, cst.Attribute)):
            if isinstance(node, cst.Call):
                api = resolve(node.func) or ""
                if api.startswith("tensorflow.data."):
                    break
                node = node.func
            else:
                if node.attr.value not in PIPELINE_METHODS:
                    return False
                pulls |= node.attr.value == "get_next"
                node = node.value
        if not (isinstance(node, cst.Call) or (isinstance(node, cst.Name) and node is not inner.body[0].value)):
            return False
    return pulls


def _catches(node, resolve) -> bool:
    """Whether an except clause's type names tf.errors.OutOfRangeError (alone or in a tuple)."""
    if isinstance(node, cst.Tuple):
        return any(_catches(e.value, resolve) for e in node.elements)
    return resolve(node) == OUT_OF_RANGE


def _is_true(node) -> bool:
    return (isinstance(node, cst.Name) and node.value == "True") or \
        (isinstance(node, cst.Integer) and node.value == "1")


def _is_break(body) -> bool:
    return len(body.body) == 1 and isinstance(body.body[0], cst.SimpleStatementLine) and \
        len(body.body[0].body) == 1 and isinstance(body.body[0].body[0], cst.Break)


def _only_names(target) -> bool:
    if isinstance(target, cst.Name):
        return True
    if isinstance(target, (cst.Tuple, cst.List)):
        return all(_only_names(e.value) for e in target.elements if not isinstance(e, cst.StarredElement)) \
            and not any(isinstance(e, cst.StarredElement) for e in target.elements)
    return False


def _short(api: str) -> str:
    return api.replace("tensorflow.", "tf.", 1)


def _simple_lines(node) -> List[cst.SimpleStatementLine]:
    found: List[cst.SimpleStatementLine] = []

    class Lines(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, line):
            found.append(line)

    node.visit(Lines())
    return found
