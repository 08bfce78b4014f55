"""Resolve names in a module to the TensorFlow API they denote.

Rules never match the text `tf.`: `tf` may be `tensorflow`, `tensorflow.compat.v1`
or anything else, and `slim` may come from `tf.contrib.slim`, `tf_slim` or an
assignment. `ImportResolver` reads the module's imports (anywhere in the file,
since TF1 code often imports inside `try:` or functions) and its module-level
alias assignments (`slim = tf.contrib.slim`), and maps a dotted reference to a
*canonical* qualified name. Canonical names fold the spellings of one API into
one string:

* `tensorflow.compat.v1.X` -> `tensorflow.X`
  (`import tensorflow.compat.v1 as tf` is the TF1 API under another name);
* `tensorflow.contrib.slim[.layers].X`, `tensorflow.contrib.layers.X`,
  `tensorflow.contrib.framework.X`, `tf_slim.layers.X` -> `tf_slim.X`
  (tf-slim is the maintained copy of contrib's layers and slim);
* `tensorflow.keras.X`, `tensorflow.python.keras.X` -> `keras.X`.

We read imports with `ast` rather than libcst's `QualifiedNameProvider`: the
provider costs about 6x a bare parse (measured), and the rules only need the
module-level bindings.
"""

from __future__ import annotations

import ast
from typing import Dict, Optional

# Longest prefixes first: canonicalisation rewrites the first that matches.
_CANONICAL_PREFIXES = (
    ("tensorflow.contrib.layers.python.layers.layers.", "tf_slim."),
    ("tensorflow.contrib.slim.python.slim.", "tf_slim."),
    ("tensorflow.contrib.slim.layers.", "tf_slim."),
    ("tensorflow.contrib.slim.", "tf_slim."),
    ("tensorflow.contrib.layers.", "tf_slim."),
    ("tensorflow.contrib.framework.", "tf_slim."),
    ("tf_slim.layers.layers.", "tf_slim."),
    ("tf_slim.layers.", "tf_slim."),
    ("tf_slim.ops.arg_scope.", "tf_slim."),
    ("tensorflow.compat.v1.", "tensorflow."),
    ("tensorflow.python.keras.", "keras."),
    ("tensorflow.keras.", "keras."),
    ("tf_keras.", "keras."),
)
_CANONICAL_EXACT = {
    "tensorflow.contrib.slim": "tf_slim",
    "tensorflow.contrib.layers": "tf_slim",
    "tensorflow.contrib.framework": "tf_slim",
    "tf_slim.layers": "tf_slim",
    "tensorflow.compat.v1": "tensorflow",
    "tensorflow.keras": "keras",
    "tf_keras": "keras",
}
# Roots worth tracking: a name bound to anything else is not TensorFlow.
TRACKED_ROOTS = ("tensorflow", "tf_slim", "keras", "tf_keras")


def canonical(qualified: str) -> str:
    """Fold the spellings of one TF API into one canonical dotted name."""
    # Applied repeatedly: `tensorflow.compat.v1.contrib.slim.X` needs two folds.
    for _ in range(4):
        if qualified in _CANONICAL_EXACT:
            qualified = _CANONICAL_EXACT[qualified]
            continue
        for prefix, replacement in _CANONICAL_PREFIXES:
            if qualified.startswith(prefix):
                qualified = replacement + qualified[len(prefix):]
                break
        else:
            return qualified
    return qualified


def dotted_name(node: ast.AST) -> Optional[str]:
    """`a.b.c` for a chain of Attribute nodes ending in a Name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_tracked(qualified: str) -> bool:
    root = qualified.split(".", 1)[0]
    return root in TRACKED_ROOTS


class ImportResolver:
    """Maps local names to the canonical TF API they are bound to."""

    def __init__(self, tree: ast.Module, nodes=None):
        """`nodes`: every node of `tree`, when the caller has walked it already."""
        self.bindings: Dict[str, str] = {}
        self._bind_module_level(tree.body)
        # Imports inside functions and classes: they rarely shadow module names,
        # and TF1 code does `import tensorflow as tf` inside functions too.
        for node in (nodes if nodes is not None else ast.walk(tree)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._bind_import(node, overwrite=False)

    @classmethod
    def from_source(cls, text: str) -> "ImportResolver":
        return cls(ast.parse(text))

    # -- building -----------------------------------------------------------------
    def _bind_module_level(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self._bind_import(stmt, overwrite=True)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                self._bind_alias(stmt.targets[0], stmt.value)
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                self._bind_alias(stmt.target, stmt.value)
            elif isinstance(stmt, (ast.If, ast.Try, ast.With)) or type(stmt).__name__ == "TryStar":
                for field in ("body", "orelse", "finalbody"):
                    self._bind_module_level(getattr(stmt, field, []) or [])
                for handler in getattr(stmt, "handlers", []) or []:
                    self._bind_module_level(handler.body)

    def _bind(self, local: str, qualified: str, overwrite: bool) -> None:
        if not _is_tracked(qualified):
            if overwrite:
                self.bindings.pop(local, None)
            return
        if overwrite or local not in self.bindings:
            self.bindings[local] = canonical(qualified)

    def _bind_import(self, node, overwrite: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self._bind(alias.asname, alias.name, overwrite)
                else:
                    # `import tensorflow.contrib.slim` binds `tensorflow`.
                    root = alias.name.split(".", 1)[0]
                    self._bind(root, root, overwrite)
        else:
            if node.level or not node.module:
                return
            for alias in node.names:
                if alias.name == "*":
                    continue
                self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}", overwrite)

    def _bind_alias(self, target: ast.AST, value: ast.AST) -> None:
        if not isinstance(target, ast.Name):
            return
        resolved = self.resolve(value)
        if resolved is not None:
            self.bindings[target.id] = resolved
        else:
            # Rebinding a name to something else hides the earlier import.
            self.bindings.pop(target.id, None)

    # -- queries ------------------------------------------------------------------
    def resolve_dotted(self, dotted: str) -> Optional[str]:
        head, _, rest = dotted.partition(".")
        bound = self.bindings.get(head)
        if bound is None:
            return None
        return canonical(f"{bound}.{rest}") if rest else bound

    def resolve(self, node: ast.AST) -> Optional[str]:
        dotted = dotted_name(node)
        return self.resolve_dotted(dotted) if dotted else None

    @property
    def imports_tensorflow(self) -> bool:
        return bool(self.bindings)
