"""TFM420: `tf.app.flags` / `tf.flags` / `tf.app.run` -> `absl.flags` / `absl.app`.

`check` runs on `ast` only; libcst is imported inside `rewrite` (tests/test_startup.py).
"""

from __future__ import annotations

import ast
from typing import List, Optional, Set, Tuple

from migrate.findings import BEHAVIOUR_CHANGE, EXACT
from migrate.rules.base import RewriteRule

FLAGS_MODULES = ("tensorflow.app.flags", "tensorflow.flags")
APP_RUN = "tensorflow.app.run"


def _is_flags(qualified: Optional[str]) -> bool:
    return qualified is not None and any(qualified == m or qualified.startswith(m + ".")
                                         for m in FLAGS_MODULES)


def _root(node: ast.AST) -> Optional[str]:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _flags_import(node: ast.ImportFrom) -> bool:
    """`from tensorflow[.compat.v1][.app] import flags [as f]`: becomes `from absl import flags`."""
    module = node.module or ""
    if node.level or not module.startswith("tensorflow"):
        return False
    parts = module.split(".")
    if parts[1:3] == ["compat", "v1"]:
        parts = parts[:1] + parts[3:]
    return parts in (["tensorflow"], ["tensorflow", "app"]) and all(a.name == "flags" for a in node.names)


def sites(ctx) -> List[Tuple[ast.AST, str]]:
    """(node, kind) of every TF1 flags/app reference the rewrite changes, in source order.

    kind: "import" (a `from tensorflow import flags`), "flags" (a chain from the tensorflow
    module to its flags module: `tf.app.flags.DEFINE_string`), "run" (`tf.app.run(...)`).
    Names the program bound to the flags module itself (`flags = tf.app.flags`,
    `FLAGS = tf.app.flags.FLAGS`) keep working once their binding is rewritten: not sites.
    """
    found = []
    for node in ctx.nodes:
        if isinstance(node, ast.ImportFrom) and _flags_import(node):
            found.append((node, "import"))
    for node, qualified in ctx.references:
        root = _root(node)
        bound = ctx.resolver.bindings.get(root) if root else None
        if bound is None or _is_flags(bound) or bound == APP_RUN:
            continue  # an alias of the flags module (or not a chain from tensorflow)
        if qualified == APP_RUN:
            parent = ctx.parents.get(node)
            if isinstance(parent, ast.Call) and parent.func is node:
                found.append((parent, "run"))
        elif _is_flags(qualified):
            found.append((node, "flags"))
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    return found


def _module_main(ctx) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ctx.tree.body) or \
        any(isinstance(n, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == "main" for a in n.names)
            for n in ctx.tree.body)


def _free_name(ctx, wanted: str, alias: str) -> str:
    """`wanted` (flags, app) unless the module binds that name to anything but TF1's flags
    module (which the rewrite replaces): then `alias` (absl_flags, absl_app)."""
    for node in ctx.nodes:
        names = []
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            parent = ctx.parents.get(node)
            tf_flags = (isinstance(parent, ast.Assign) and ctx.parents.get(parent) is ctx.tree
                        and ctx.resolve(parent.value) in FLAGS_MODULES)
            if not tf_flags:
                names.append(node.id)
        elif isinstance(node, ast.arg):
            names.append(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Import):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not _flags_import(node) and node.module != "absl":
            names.extend(a.asname or a.name for a in node.names)
        if wanted in names:
            return alias
    return wanted


class AppFlags(RewriteRule):
    """
    ## What it does
    Rewrites TF1's command-line plumbing to absl, which ships with TensorFlow (TF1's
    `tf.app.flags` was a thin wrapper around it): `tf.app.flags` and `tf.flags` become
    `flags` (`from absl import flags`), so `flags = tf.app.flags` goes, `FLAGS =
    tf.app.flags.FLAGS` becomes `FLAGS = flags.FLAGS` and `tf.app.flags.DEFINE_integer(...)`
    becomes `flags.DEFINE_integer(...)`; `from tensorflow import flags` becomes `from absl
    import flags`; `tf.app.run(main)` and `tf.app.run()` become `app.run(main)` (`from absl
    import app`). Imports are added once, after the module's imports.

    ## Why
    TF 2 has no `tf.app` and no `tf.flags`. absl's DEFINE_* functions, FLAGS object and
    `app.run` are the ones TF1 re-exported, with the same arguments; `app.run(main)` parses the
    flags and calls `main(argv)` with the remaining arguments, as `tf.app.run` did. Two
    differences, reported with the rewrite: `tf.app.run()` without arguments found
    `__main__.main` itself (absl needs `main` passed: the module's own `main` is written out,
    and a module without one is left for manual work); and `tf.app.run` ignored command-line
    flags no module defined, while `absl.app.run` stops with an error on them (behaviour
    change for such command lines). TF1's FLAGS also parsed `sys.argv` on its first read
    outside `app.run`; absl raises `UnparsedFlagAccessError` there.

    ## Example
    ```python
    flags = tf.app.flags
    flags.DEFINE_integer("steps", 100, "training steps")
    FLAGS = flags.FLAGS
    ...
    if __name__ == "__main__":
        tf.app.run()
    ```
    becomes
    ```python
    from absl import app
    from absl import flags

    flags.DEFINE_integer("steps", 100, "training steps")
    FLAGS = flags.FLAGS
    ...
    if __name__ == "__main__":
        app.run(main)
    ```
    """

    code = "TFM420"
    name = "app-flags-to-absl"
    summary = "tf.app.flags / tf.app.run become absl.flags / absl.app"
    tokens = ("flags", "app.run")

    def check(self, ctx):
        has_main = _module_main(ctx)
        for node, kind in sites(ctx):
            yield ctx.finding(node, self.code, self._message(node, kind, has_main))

    @staticmethod
    def _message(node, kind: str, has_main: bool) -> str:
        if kind == "run":
            if not node.args and not node.keywords and not has_main:
                return ("tf.app.run() without `main`, and this module defines none: absl.app.run needs "
                        "the main function passed (manual)")
            return ("tf.app.run -> absl.app.run(main): same flag parsing and main(argv) call, but absl "
                    "stops on command-line flags no module defines (tf.app.run ignored them)")
        if kind == "import":
            return "TF1 flags module imported from tensorflow -> `from absl import flags` (same API)"
        return "tf.app.flags / tf.flags -> absl.flags (`from absl import flags`; TF1 re-exported it)"

    def rewrite(self, module, ctx):
        import libcst as cst
        from libcst.metadata import MetadataWrapper, PositionProvider

        from migrate.model_rewrite.analysis import dotted

        has_main = _module_main(ctx)
        held = _held_lines(ctx.text, self.code)  # `# tf-migrate: ignore[TFM420]` keeps its line
        todo = [(node, kind) for node, kind in sites(ctx) if node.lineno not in held]
        if not todo:
            return module, []
        wrapper = MetadataWrapper(module)
        module = wrapper.module
        positions = wrapper.resolve(PositionProvider)

        def kept(node) -> bool:
            return positions[node].start.line in held
        flags_name = _free_name(ctx, "flags", "absl_flags")
        app_name = _free_name(ctx, "app", "absl_app")
        tf_roots = {local for local, bound in ctx.resolver.bindings.items()
                    if not _is_flags(bound) and bound != APP_RUN}

        def resolve(node) -> Optional[str]:
            name = dotted(node)
            return ctx.resolver.resolve_dotted(name) if name else None

        def from_tensorflow(node) -> bool:
            name = dotted(node) or ""
            return name.split(".")[0] in tf_roots

        used: Set[str] = set()

        class Transformer(cst.CSTTransformer):
            def leave_Attribute(self, original, updated):
                if from_tensorflow(original) and resolve(original) in FLAGS_MODULES and not kept(original):
                    used.add("flags")
                    return cst.Name(flags_name)
                return updated

            def leave_Call(self, original, updated):
                if not (from_tensorflow(original.func) and resolve(original.func) == APP_RUN) or kept(original):
                    return updated
                args = list(updated.args)
                if not args:
                    if not has_main:
                        return updated  # reported for manual work
                    args = [cst.Arg(cst.Name("main"))]
                used.add("app")
                return updated.with_changes(func=cst.Attribute(cst.Name(app_name), cst.Name("run")),
                                            args=args)

            def leave_ImportFrom(self, original, updated):
                module_name = dotted(original.module) if original.module is not None else ""
                node = ast.ImportFrom(module=module_name, names=[
                    ast.alias(name=a.name.value if isinstance(a.name, cst.Name) else "")
                    for a in (original.names if not isinstance(original.names, cst.ImportStar) else [])],
                    level=len(original.relative))
                if isinstance(original.names, cst.ImportStar) or not node.names or not _flags_import(node) \
                        or kept(original):
                    return updated
                return updated.with_changes(module=cst.Name("absl"))

        new_body = []
        dropped = False
        carried = None  # the blank lines/comments above a dropped statement move to the next one
        for stmt in module.body:
            # `flags = tf.app.flags` at module level: the absl import binds that name now.
            if (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                    and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1
                    and isinstance(stmt.body[0].targets[0].target, cst.Name)
                    and stmt.body[0].targets[0].target.value == flags_name
                    and from_tensorflow(stmt.body[0].value)
                    and resolve(stmt.body[0].value) in FLAGS_MODULES and not kept(stmt.body[0])):
                used.add("flags")
                dropped = True
                carried = list(stmt.leading_lines) if carried is None else carried
                continue
            new = stmt.visit(Transformer())
            if carried is not None:
                new = new.with_changes(leading_lines=[*carried, *new.leading_lines])
                carried = None
            new_body.append(new)
        if not used and not any(kind == "import" for _, kind in todo) and not dropped:
            return module, []
        imported = _absl_imports(module)
        lines = []
        if "app" in used and ("app", app_name) not in imported:
            lines.append("from absl import app" + (f" as {app_name}" if app_name != "app" else ""))
        if "flags" in used and ("flags", flags_name) not in imported:
            lines.append("from absl import flags" + (f" as {flags_name}" if flags_name != "flags" else ""))
        index = _after_imports(new_body)
        for offset, line in enumerate(lines):
            new_body.insert(index + offset, cst.parse_statement(line + "\n"))
        findings = []
        for node, kind in todo:
            if kind == "run" and not node.args and not node.keywords and not has_main:
                continue
            findings.append(ctx.finding(node, self.code, self._message(node, kind, has_main), fixed=True,
                                        rewrite_class=BEHAVIOUR_CHANGE if kind == "run" else EXACT))
        return module.with_changes(body=new_body), findings


def _held_lines(text: str, code: str) -> Set[int]:
    from migrate.suppressions import parse

    if "tf-migrate" not in text:
        return set()
    return {line for line, sups in parse(text).lines.items()
            if any(s.codes is None or code in s.codes for s in sups)}


def _absl_imports(module) -> Set[Tuple[str, str]]:
    import libcst as cst

    found = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and isinstance(small.module, cst.Name) \
                        and small.module.value == "absl" and not isinstance(small.names, cst.ImportStar):
                    for alias in small.names:
                        name = alias.name.value
                        local = alias.asname.name.value if alias.asname else name
                        found.add((name, local))
    return found


def _after_imports(body) -> int:
    """Index after the module's leading docstring/imports block."""
    import libcst as cst

    index = 0
    for position, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
                isinstance(s, (cst.Import, cst.ImportFrom)) or
                (isinstance(s, cst.Expr) and isinstance(s.value, cst.SimpleString)) for s in stmt.body):
            index = position + 1
            continue
        break
    return index
