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

LAYER_TOKENS = ("layers", "slim", "batch_norm", "BatchNormalization")


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
    """Analyse every target that builds layers; record the functions that convert."""
    from migrate.context import ModuleContext
    from migrate.rules.model_classes import convertible_functions
    from migrate.source import SourceError, decode_source, parse_python

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
    for target, name in named:
        if name not in imported:
            continue
        try:
            with open(target.path, "rb") as handle:
                text = decode_source(handle.read()).text
        except (OSError, SourceError):
            continue
        if not any(token in text for token in LAYER_TOKENS):
            continue
        try:
            tree = parse_python(text, target.display)
            ctx = ModuleContext(target.display, text, tree)
            helpers = convertible_functions(text, ctx, options)
        except Exception:  # the file's own run reports the problem; the index just skips it
            continue
        if helpers:
            index.helpers[name] = {h.name: ExternalHelper(module=name, **h.__dict__) for h in helpers}
    return index


def _imported_modules(targets, index: TreeIndex) -> set:
    """Dotted names (and their packages) that the targets' import statements mention."""
    import ast
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
                    found.add(part.split(" as ")[0].strip())
                continue
            source = match.group(1)
            level = len(source) - len(source.lstrip("."))
            base = resolve_import(importer, source.lstrip(".") or None, level) or ""
            found.add(base)
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


def externals_for(index: Optional[TreeIndex], importer: Optional[str], module_ast) -> Dict[str, Tuple[ExternalHelper, str]]:
    """Local callable name -> (helper, how the class is spelled here) for imported model helpers.

    `from ops import conv_bn_relu` -> {"conv_bn_relu": (helper, "ConvBnRelu")};
    `import ops` / `from . import ops` -> {"ops.conv_bn_relu": (helper, "ops.ConvBnRelu")}.
    """
    import ast

    if index is None or not index.helpers or importer is None:
        return {}
    found: Dict[str, Tuple[ExternalHelper, str]] = {}
    for node in module_ast.body:
        if isinstance(node, ast.ImportFrom):
            source = resolve_import(importer, node.module, node.level)
            for alias in node.names:
                local = alias.asname or alias.name
                if source in index.helpers and alias.name in index.helpers[source]:
                    helper = index.helpers[source][alias.name]
                    found[local] = (helper, helper.class_name)
                full = f"{source}.{alias.name}" if source else alias.name
                for name, helper in index.helpers.get(full, {}).items():
                    found[f"{local}.{name}"] = (helper, f"{local}.{helper.class_name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in index.helpers and (alias.asname or "." not in alias.name):
                    local = alias.asname or alias.name
                    for name, helper in index.helpers[alias.name].items():
                        found[f"{local}.{name}"] = (helper, f"{local}.{helper.class_name}")
    return found
