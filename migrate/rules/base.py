"""The rule interface.

A rule is a class with a code (`TFM101`), a short name, and a docstring in the
style of ruff's rule docs (## What it does / ## Why / ## Example). `tf-migrate
rules CODE` prints that docstring, so the docs live next to the code.

`tokens` is the cheap text prefilter: a file that contains none of a rule's
tokens cannot produce a finding from it, and a file that contains no token of
any selected rule is never parsed at all.

`check` runs on the `ast` of the module (fast). A rule that also rewrites code
subclasses `RewriteRule` and implements `rewrite` on the libcst tree, which the
pipeline builds only for files where some rule said `wants_rewrite`.

Nothing the registry imports may import libcst at module level (`check` never pays for it):
a rewrite that needs libcst at import time lives in a subclass in its own module, named by
`RewriteRule.implementation` (e.g. `model_classes_findings` / `model_classes`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, ClassVar, Iterable, List, Optional, Tuple

from migrate.context import ModuleContext
from migrate.findings import Finding

if TYPE_CHECKING:  # `check` must not import libcst: it costs more start-up than a small tree's checks
    import libcst as cst


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    tokens: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, options=None):
        self.options = options

    def check(self, ctx: ModuleContext) -> Iterable[Finding]:
        raise NotImplementedError

    @classmethod
    def docs(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or cls.rewriting_class().__doc__ or cls.summary)

    @classmethod
    def rewriting_class(cls) -> type:
        """The class a run that rewrites instantiates (see `RewriteRule.implementation`)."""
        return cls

    @classmethod
    def applies_to_text(cls, text: str) -> bool:
        return any(token in text for token in cls.tokens)

    @classmethod
    def applies_to_tree(cls, ctx, index) -> bool:
        """Whether the rule applies to a module its tokens miss, by what the cross-file
        index (`tree_index.TreeIndex`) knows of the module's imports."""
        return False


class RewriteRule(Rule):
    # "module:Class" of the subclass that rewrites, when that lives in a module importing libcst:
    # the registry then lists this libcst-free class (code, tokens, `check`), so `check` never
    # imports libcst, and the pipeline loads the subclass only for runs that rewrite.
    implementation: ClassVar[Optional[str]] = None

    @classmethod
    def rewriting_class(cls) -> type:
        if cls.implementation is None:
            return cls
        module_name, _, class_name = cls.implementation.partition(":")
        return getattr(importlib.import_module(module_name), class_name)

    def wants_rewrite(self, ctx: ModuleContext, findings: List[Finding]) -> bool:
        return bool(findings)

    def rewrite(self, module: cst.Module, ctx: ModuleContext) -> Tuple[cst.Module, List[Finding]]:
        """Return the new module and the findings for the sites it rewrote (fixed=True)."""
        raise NotImplementedError
