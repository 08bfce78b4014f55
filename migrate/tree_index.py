"""The cross-file index: which functions of which module the model rewrite turns into classes.

Real TF1 repositories define helpers in one module (`ops.py`: `conv_bn_relu`, `batch_norm`
wrappers) and build models from them in another (`model.py`). Files are migrated one by one, in
worker processes, so before that the tree is indexed: every file that builds layers is analysed
and its convertible model functions are recorded with what a caller needs (class name, which
parameters are tensors, configuration, the training flag, the scope name). The index holds only
strings, so it travels to the workers inside `pipeline.Options`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Dict, List, Optional, Tuple

LAYER_TOKENS = ("layers", "slim", "batch_norm", "BatchNormalization", "get_variable")
# A function whose text has none of these creates no layer and no variable: calling it from a
# Keras class (every step) is as safe as calling it once in a TF1 graph.
_CREATING_TOKENS = LAYER_TOKENS + ("Variable", "keras")


@dataclass(frozen=True)
class ExternalHelper:
    module: str
    name: str
    class_name: str
    base: str
    params: Tuple[str, ...]
    defaults: Tuple[Tuple[str, str], ...]  # (param, default source)
    tensor_params: Tuple[str, ...]
    config_params: Tuple[str, ...]
    training_param: Optional[str]
    scope_param: Optional[str]
    reuse_params: Tuple[str, ...]
    scope_name: Optional[str]  # source of a literal whole-body variable scope name
    scope_default: Optional[str] = None
    scope_default_shared: bool = False
    mode_param: Optional[str] = None
    mode_template: Optional[str] = None


@dataclass
class TreeIndex:
    helpers: Dict[str, Dict[str, ExternalHelper]] = field(default_factory=dict)  # module -> name -> helper
    modules: Dict[str, str] = field(default_factory=dict)  # real path -> dotted module name
    # module -> function -> reason: functions that convert on their own but stay functions
    # because code of another module that stays TF1 uses them (all or nothing across files).
    blocked: Dict[str, Dict[str, str]] = field(default_factory=dict)
    # module -> its literal `__all__` (what `from module import *` binds), None without one.
    exports: Dict[str, Optional[Tuple[str, ...]]] = field(default_factory=dict)
    # module -> its plain top-level classes (TF1 wrapper classes the rewrite may convert): any
    # use by another module blocks them, since converted code never calls such objects.
    classes: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    # module -> its top-level functions that create nothing (pix2pix's `lrelu`): a converted
    # class may call them through `from module import *`.
    plain: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    # module -> those of its `plain` functions that use TF1-only API without an exact TF 2
    # spelling (tf.Print, tf.image.resize_images), with why: converted code may not call them.
    tf1_plain: Dict[str, Dict[str, str]] = field(default_factory=dict)
    # module -> its `plain` functions whose TF1 spellings all have exact TF 2 names (`tf.log`,
    # `keep_dims=`) -> the functions renamed with it (itself and the module functions it calls).
    renamable: Dict[str, Dict[str, Tuple[str, ...]]] = field(default_factory=dict)
    # module -> the functions its own run renames (tf1_renames): code of another module that a
    # rewrite converts calls them (`_promised_renames`, from that module's own decision).
    renamed: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    def module_of(self, path: str) -> Optional[str]:
        return self.modules.get(os.path.realpath(path))


def module_name(dest: PurePosixPath) -> Optional[str]:
    parts = list(dest.with_suffix("").parts)
    if not parts or any(not p.isidentifier() for p in parts):
        return None
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def build_index(targets, options) -> TreeIndex:
    """Analyse every target that builds layers; record the functions that convert.

    All or nothing across files: a function converts only if every user of it in the tree
    converts too. The importers of each indexed module are analysed with the helpers they
    import; a function some importer keeps as TF1 code (a caller the rewrite leaves unchanged,
    a class method, module-level code) is `blocked` and stays a function in its own module.
    That can change what other modules convert, so this repeats until nothing changes (blocks
    only grow, so it ends). Everything is decided here, before any file is rewritten, hence
    the same for every file order and every -j.
    """
    index = TreeIndex()
    named = []
    for target in targets:
        if target.is_stdin or target.dest is None or str(target.path).endswith(".ipynb"):
            continue  # notebooks are programs, not modules other files import
        name = module_name(PurePosixPath(target.dest))
        if name is None:
            continue
        index.modules[os.path.realpath(target.path)] = name
        named.append((target, name))
    # Only modules some other file of the tree imports can provide helpers: analysing the rest
    # here would double the libcst work of the run (measured: half of apply's time on tf_slim).
    imported = _imported_modules([t for t, _ in named], index)
    modules = {}
    for target, name in named:
        parsed = _ParsedModule.load(target, name)
        if parsed is not None:
            modules[name] = parsed
    providers = sorted(n for n, m in modules.items() if n in imported and m.builds_layers)
    modules = {n: m for n, m in modules.items() if n in providers or m.mentions(providers)}
    for name in list(modules):
        try:
            modules[name].tree
        except Exception:  # a syntax error: the file's own run reports it
            del modules[name]
    providers = [n for n in providers if n in modules]
    if not providers:
        return index
    for name in providers:
        index.exports[name] = _literal_all(modules[name].tree)
        index.classes[name] = _plain_classes(modules[name].tree)
        index.plain[name] = _plain_functions(modules[name].tree)
        index.tf1_plain[name], index.renamable[name] = _tf1_plain_functions(modules[name],
                                                                            index.plain[name])
    for _ in range(2 * len(modules) + 2):
        helpers = {}
        for name in providers:
            records = modules[name].helpers(index, options)
            if records:
                helpers[name] = records
        index.helpers = helpers
        grew = False
        for name in sorted(modules):
            for (source, function), reason in sorted(modules[name].users(index, options).items()):
                if function not in index.blocked.setdefault(source, {}):
                    index.blocked[source][function] = reason
                    grew = True
        if not grew:
            break
    index.blocked = {m: b for m, b in index.blocked.items() if b}
    # Plain helpers with TF1 spellings (`tf.log`) that converted code of another module calls:
    # their own module's run renames them (pipeline), the rest stay byte for byte.
    renamed: Dict[str, set] = {}
    for name in sorted(modules):
        for source, function in sorted(modules[name].promised_renames(index, options)):
            renamed.setdefault(source, set()).update(index.renamable[source][function])
    index.renamed = {m: tuple(sorted(f)) for m, f in renamed.items()}
    return index


class _ParsedModule:
    """One module of the tree, parsed once for every round of `build_index`."""

    def __init__(self, name, text, display):
        self.name, self.text, self.display = name, text, display
        self.builds_layers = any(token in text for token in LAYER_TOKENS)
        self._tree = None
        self._helpers_cache = {}
        self._users_cache = {}

    @property
    def tree(self):
        from migrate.source import parse_python

        if self._tree is None:  # parsed only when the module matters (most do not)
            self._tree = parse_python(self.text, self.display)
        return self._tree

    @classmethod
    def load(cls, target, name):
        from migrate.source import SourceError, decode_source

        try:
            with open(target.path, "rb") as handle:
                text = decode_source(handle.read()).text
        except (OSError, SourceError):
            return None  # the file's own run reports the problem; the index just skips it
        if "import" not in text:
            return None
        if "Session" in text:
            # A module-level Session program: seen as the file's own run first tries it, in a
            # pseudo-function the training-loop rewrite converts (training_rewrite/module_program).
            from migrate.pipeline import _resolver_for
            from migrate.training_rewrite.module_program import wrapped_text

            text = wrapped_text(text, _resolver_for) or text
        return cls(name, text, target.display)

    def mentions(self, modules) -> bool:
        """Whether the text names one of `modules` (cheap filter before parsing)."""
        return any(m.rsplit(".", 1)[-1] in self.text for m in modules)

    def _context(self, index=None):
        from migrate.context import ModuleContext

        ctx = ModuleContext(self.display, self.text, self.tree)
        ctx.module_name = self.name
        # options.tree_index is set once the index is built: meanwhile the context carries it.
        ctx.plain_imports = plain_functions_for(index, self.name, self.tree)
        ctx.tf1_plain_imports = tf1_plain_for(index, self.name, self.tree)
        ctx.renamable_imports = renamable_for(index, self.name, self.tree)
        return ctx

    def helpers(self, index, options) -> Dict[str, ExternalHelper]:
        from migrate.rules.model_classes import convertible_functions

        externals = externals_for(index, self.name, self.tree)
        blocked = index.blocked.get(self.name, {})
        key = (tuple(sorted((k, v) for k, v in externals.items())), tuple(sorted(blocked.items())))
        if key not in self._helpers_cache:
            try:
                records = convertible_functions(self.text, self._context(index), options,
                                                externals=externals, blocked=blocked)
            except Exception:  # the file's own run reports the problem; the index just skips it
                records = []
            self._helpers_cache[key] = {h.name: ExternalHelper(module=self.name, **h.__dict__)
                                        for h in records}
        return self._helpers_cache[key]

    def users(self, index, options) -> Dict[Tuple[str, str], str]:
        """(module, function) -> reason, for the imported helpers this module keeps as TF1 code."""
        from migrate.rules.model_classes import staying_external_users

        externals = externals_for(index, self.name, self.tree)
        classes = class_refs_for(index, self.name, self.tree)
        if not externals and not classes and not self._stars_unknown_exports(index):
            return {}
        blocked = index.blocked.get(self.name, {})
        stars = tuple((source, tuple(sorted(index.helpers.get(source, {}))))
                      for source in self._stars_unknown_exports(index))
        key = (tuple(sorted((k, v) for k, v in externals.items())), tuple(sorted(blocked.items())),
               stars)
        if key not in self._users_cache:
            found: Dict[Tuple[str, str], str] = {}
            try:
                users = staying_external_users(self.text, self._context(index), options, externals,
                                               blocked) if externals else {}
            except Exception:
                # Cannot tell which of its imports stay TF1: none of them may change.
                users = {local: None for local in externals}
            for local, user in users.items():
                helper = externals[local][0]
                if user is not None and user.startswith("`_tfm_module_program"):
                    user = "the module-level program"  # the pseudo-function of module_program
                found[(helper.module, helper.name)] = (
                    f"it is used by {user} of module `{self.name}`, which stays TF1 code"
                    if user is not None else
                    f"module `{self.name}` imports it and could not be analysed")
            from migrate.model_rewrite.usage import users_outside

            for local, user in users_outside(self.tree, set(classes)).items():
                found.setdefault(classes[local], (
                    f"it is used by {user} of module `{self.name}`, which stays TF1 code"))
            for source in self._stars_unknown_exports(index):
                for function in index.helpers.get(source, {}):
                    found.setdefault((source, function), (
                        f"module `{self.name}` imports it with `from {source} import *` and "
                        f"`{source}.__all__` is not a literal list the rewrite can update"))
            self._users_cache[key] = found
        return self._users_cache[key]

    def promised_renames(self, index, options) -> set:
        """(module, function) of the renamable plain functions of other modules (`renamable`)
        that the code this module's run converts calls (its own decision, all or nothing)."""
        from migrate.rules.model_classes import converted_external_calls

        spellings = renamable_for(index, self.name, self.tree)
        if not spellings or not any(s.rsplit(".", 1)[-1] in self.text for s in spellings):
            return set()
        try:
            return converted_external_calls(self.text, self._context(index), options,
                                            externals_for(index, self.name, self.tree),
                                            index.blocked.get(self.name, {}))
        except Exception:  # the file's own run reports it; without a promise its callers refuse
            return set()

    def _stars_unknown_exports(self, index) -> List[str]:
        import ast

        out = []
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                source = resolve_in_tree(index, self.name, node.module, node.level)
                if source in index.helpers and index.exports.get(source) == ("<computed>",):
                    out.append(source)
        return out


def _plain_classes(tree) -> Tuple[str, ...]:
    import ast

    return tuple(node.name for node in tree.body if isinstance(node, ast.ClassDef)
                 and not node.keywords
                 and all(isinstance(b, ast.Name) and b.id == "object" for b in node.bases)
                 and any(token in ast.unparse(node) for token in LAYER_TOKENS))


def _plain_functions(tree) -> Tuple[str, ...]:
    """Top-level functions whose code (and that of the module functions they call) names no
    layer, variable or Keras API: they create nothing, whenever they run."""
    import ast

    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    plain = {name for name, node in functions.items()
             if not any(token in ast.unparse(node) for token in _CREATING_TOKENS)}
    changed = True
    while changed:
        changed = False
        for name in sorted(plain):
            called = {n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name)}
            if (called & set(functions)) - plain - {name}:
                plain.discard(name)
                changed = True
    return tuple(sorted(plain))


def _tf1_plain_functions(module: "_ParsedModule", plain: Tuple[str, ...]
                         ) -> Tuple[Dict[str, str], Dict[str, Tuple[str, ...]]]:
    """Plain functions of `module` whose code (or that of the module functions they call) uses
    TF1-only API: (those without an exact TF 2 spelling -> the reason, those renamed the TF 2
    way -> the functions renamed with them); tf1_renames.renamed_helpers decides, as for a
    helper of the converted code's own file."""
    import ast

    import libcst as cst

    from migrate.model_rewrite.layers import Unmappable
    from migrate.model_rewrite.tf1_renames import has_candidates, renamed_helpers, tf1_only_name
    from migrate.model_rewrite.analysis import dotted
    from migrate.names import ImportResolver

    if not plain or "tf" not in module.text:
        return {}, {}
    resolver = ImportResolver(module.tree)

    def resolve(node):
        name = dotted(node)
        return resolver.resolve_dotted(name) if name else None

    def check(code):
        name = tf1_only_name(code, resolver.resolve_dotted)
        if name is not None:
            raise Unmappable(f"{name.replace('tensorflow.', 'tf.')} has no TF2 mapping yet")

    # On `ast` first: most plain functions (lrelu) are TF 2 code already, and a libcst parse of
    # the module costs ~20x more.
    sources = [ast.unparse(n) for n in module.tree.body
               if isinstance(n, ast.FunctionDef) and n.name in plain]
    if not any(has_candidates(source, resolve) or tf1_only_name(source, resolver.resolve_dotted)
               for source in sources):
        return {}, {}
    try:
        parsed = cst.parse_module(module.text)
    except Exception:  # the file's own run reports it
        return {}, {}
    functions = {s.name.value: s for s in parsed.body if isinstance(s, cst.FunctionDef)}
    refused, renamable = {}, {}
    for name in plain:
        try:
            renames = renamed_helpers(f"{name}()", functions, resolve, check)
        except Unmappable as exc:
            refused[name] = str(exc)
            continue
        if renames:
            renamable[name] = tuple(sorted(renames))
    return refused, renamable


def external_functions(ctx, options):
    """The plain functions of other files of the tree that `ctx`'s module imports and that use
    TF1-only API (tf1_renames.ExternalFunctions), for the converters. While the index is built
    the context carries them (`_context`) and nothing is promised yet."""
    from migrate.model_rewrite.tf1_renames import ExternalFunctions

    index = getattr(options, "tree_index", None)
    importer = getattr(ctx, "module_name", None)
    if index is None:
        return ExternalFunctions(dict(getattr(ctx, "tf1_plain_imports", {})),
                                 dict(getattr(ctx, "renamable_imports", {})), None)
    return ExternalFunctions(tf1_plain_for(index, importer, ctx.tree),
                             renamable_for(index, importer, ctx.tree),
                             {(m, f) for m, functions in index.renamed.items() for f in functions})


def renamable_for(index: Optional["TreeIndex"], importer: Optional[str], module_ast
                  ) -> Dict[str, Tuple[str, str]]:
    """Local spelling -> (module, function) for the `renamable` functions of indexed modules
    `module_ast` imports: converted code may call one if that module's run renames it."""
    if index is None or not getattr(index, "renamable", None) or importer is None:
        return {}
    table = {module: tuple(functions) for module, functions in index.renamable.items() if functions}
    return {spelling: (module, name) for spelling, _, module, name
            in _imported_names(index, importer, module_ast, table, when_computed=False)}


def tf1_plain_for(index: Optional["TreeIndex"], importer: Optional[str], module_ast) -> Dict[str, str]:
    """Local spelling -> reason for the `tf1_plain` functions of indexed modules `module_ast`
    imports (`center`, `ops.center`): converted code calling one is refused."""
    if index is None or not getattr(index, "tf1_plain", None) or importer is None:
        return {}
    table = {module: tuple(functions) for module, functions in index.tf1_plain.items() if functions}
    return {spelling: index.tf1_plain[module][name].replace(
                f"it calls `{name}`", f"it calls `{spelling}` of module `{module}`", 1)
            for spelling, _, module, name
            in _imported_names(index, importer, module_ast, table, when_computed=False)}


def plain_functions_for(index: Optional["TreeIndex"], importer: Optional[str], module_ast) -> set:
    """Local spellings of the `_plain_functions` of indexed modules that `module_ast` imports."""
    if index is None or not index.plain or importer is None:
        return set()
    return {spelling for spelling, _, _, _
            in _imported_names(index, importer, module_ast, index.plain, when_computed=False)}


def class_refs_for(index: Optional["TreeIndex"], importer: Optional[str], module_ast) -> Dict[str, Tuple[str, str]]:
    """Local spelling -> (module, class) for the plain classes of indexed modules it imports."""
    if index is None or not index.classes or importer is None:
        return {}
    return {spelling: (module, name) for spelling, _, module, name
            in _imported_names(index, importer, module_ast, index.classes, when_computed=True)}


def _imported_names(index: "TreeIndex", importer: str, module_ast, table, when_computed: bool):
    """(local spelling, local module prefix or None, module, name) for each name of `table`
    ({module: names}) that the imports of `module_ast` bind: `from m import x [as y]` -> y;
    `from m import *` -> the public names or those a literal `__all__` lists (all of them, or
    none, per `when_computed`, when `__all__` is computed); `import m` / `from pkg import m` ->
    "m.x" with prefix "m"."""
    import ast

    for node in module_ast.body:
        if isinstance(node, ast.ImportFrom):
            source = resolve_in_tree(index, importer, node.module, node.level)
            names = table.get(source, ())
            for alias in node.names:
                if alias.name == "*":
                    exports = index.exports.get(source)
                    for name in names:
                        if exports == ("<computed>",):
                            bound = when_computed
                        else:
                            bound = name in exports if exports is not None else not name.startswith("_")
                        if bound:
                            yield name, None, source, name
                    continue
                local = alias.asname or alias.name
                if alias.name in names:
                    yield local, None, source, alias.name
                full = f"{source}.{alias.name}" if source else alias.name
                for name in table.get(full, ()):
                    yield f"{local}.{name}", local, full, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                source = resolve_in_tree(index, importer, alias.name, 0)
                if source in table and (alias.asname or "." not in alias.name):
                    local = alias.asname or alias.name
                    for name in table[source]:
                        yield f"{local}.{name}", local, source, name


def _literal_all(tree) -> Optional[Tuple[str, ...]]:
    """The module's `__all__` if it is a literal list/tuple of strings; ("<computed>",) if it is
    assigned otherwise; None without one."""
    import ast

    found: Optional[Tuple[str, ...]] = None
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue
        value = node.value
        if isinstance(node, ast.Assign) and isinstance(value, (ast.List, ast.Tuple)) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
            found = tuple(e.value for e in value.elts) if found is None else ("<computed>",)
        else:
            found = ("<computed>",)
    return found


def _imported_modules(targets, index: TreeIndex) -> set:
    """Dotted names (and their packages) that the targets' import statements mention."""
    import re

    found = set()
    statement = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import\s+(.+)|import\s+(.+))", re.M)
    for target in targets:
        try:
            with open(target.path, "r", encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        importer = index.module_of(str(target.path)) or ""
        for match in statement.finditer(text):
            if match.group(3):
                for part in match.group(3).split(","):
                    imported = part.split(" as ")[0].strip()
                    found.add(imported)
                    if "." in importer:
                        found.add(_sibling(importer, imported))
                continue
            source = match.group(1)
            level = len(source) - len(source.lstrip("."))
            base = resolve_import(importer, source.lstrip(".") or None, level) or ""
            found.add(base)
            if level == 0 and "." in importer:
                found.add(_sibling(importer, base))  # `from ops import *` next to a script
            for alias in match.group(2).strip("() \\").split(","):
                name = alias.split(" as ")[0].strip()
                if name:
                    found.add(f"{base}.{name}" if base else name)
    return found


def resolve_import(importer: str, module: Optional[str], level: int) -> Optional[str]:
    """Dotted name of `from <level dots><module> import ...` written in module `importer`."""
    if level == 0:
        return module
    package = importer.split(".")[:-1]
    if level - 1 > len(package):
        return None
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else [])) or None


def _sibling(importer: str, module: str) -> str:
    return f"{importer.rsplit('.', 1)[0]}.{module}"


def resolve_in_tree(index: "TreeIndex", importer: str, module: Optional[str], level: int) -> Optional[str]:
    """Like resolve_import, but `import ops` written in `pkg/model.py` means the tree's
    `pkg.ops` when the tree has no top-level `ops`: scripts run from their own directory
    (sys.path[0]) or put it on sys.path, as TF1 repositories commonly do."""
    found = resolve_import(importer, module, level)
    if level == 0 and found is not None and "." in importer:
        known = set(index.modules.values())
        if found not in known and not any(k.startswith(found + ".") for k in known):
            sibling = _sibling(importer, found)
            if sibling in known or any(k.startswith(sibling + ".") for k in known):
                return sibling
    return found


def externals_for(index: Optional[TreeIndex], importer: Optional[str], module_ast) -> Dict[str, Tuple[ExternalHelper, str]]:
    """Local callable name -> (helper, how the class is spelled here) for imported model helpers.

    `from ops import conv_bn_relu` -> {"conv_bn_relu": (helper, "ConvBnRelu")};
    `import ops` / `from . import ops` -> {"ops.conv_bn_relu": (helper, "ops.ConvBnRelu")}.
    A star import from a module whose `__all__` is computed binds none of them here:
    build_index blocks those helpers instead.
    """
    if index is None or not index.helpers or importer is None:
        return {}
    found: Dict[str, Tuple[ExternalHelper, str]] = {}
    for spelling, prefix, module, name in _imported_names(index, importer, module_ast, index.helpers,
                                                          when_computed=False):
        helper = index.helpers[module][name]
        found[spelling] = (helper, f"{prefix}.{helper.class_name}" if prefix else helper.class_name)
    return found
