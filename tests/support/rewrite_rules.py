"""Test-only rewrite rules that exercise the write path (diff, apply, --out) with real libcst.

The real rewrites (model classes, train steps) replace whole functions; these
rules make small, predictable edits so the tests can check every byte of the
write path. Loaded with the hidden `--rules-module tests.support.rewrite_rules`.
"""

from __future__ import annotations

import ast

import libcst as cst

from migrate.findings import Finding
from migrate.rules.base import RewriteRule

TARGET = "tensorflow.layers.batch_normalization"


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


class _Renamer(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)

    def __init__(self, ctx, code, path):
        super().__init__()
        self.ctx, self.code, self.path = ctx, code, path
        self.fixed = []

    def leave_Attribute(self, original, updated):
        dotted = _dotted(original)
        if dotted is None or self.ctx.resolver.resolve_dotted(dotted) != TARGET:
            return updated
        head = dotted.split(".", 1)[0]
        if ".compat.v1." in f".{dotted}.":
            return updated
        pos = self.get_metadata(cst.metadata.PositionProvider, original).start
        self.fixed.append(Finding(self.path, pos.line, pos.column + 1, self.code,
                                  "renamed to compat.v1 (test rule)", fixed=True))
        return cst.parse_expression(f"{head}.compat.v1.layers.batch_normalization")


class CompatV1Rename(RewriteRule):
    """Test rule: spell `tf.layers.batch_normalization` as `tf.compat.v1.layers.batch_normalization`."""

    code = "TFMT01"
    name = "test-compat-v1-rename"
    summary = "test-only rename"
    tokens = ("batch_normalization",)

    def check(self, ctx):
        for node, _ in ctx.references_to([TARGET]):
            if isinstance(node, ast.Attribute) and ".compat." not in ast.unparse(node):
                yield ctx.finding(node, self.code, "would be renamed to compat.v1 (test rule)")

    def rewrite(self, module, ctx):
        wrapper = cst.metadata.MetadataWrapper(module)
        renamer = _Renamer(ctx, self.code, ctx.path)
        new = wrapper.visit(renamer)
        return new, renamer.fixed


class BrokenOutput(RewriteRule):
    """Test rule: produces code that does not parse (the pipeline must discard it)."""

    code = "TFMT02"
    name = "test-broken-output"
    summary = "test-only broken rewrite"
    tokens = ("BROKEN_REWRITE_MARKER",)

    def check(self, ctx):
        yield Finding(ctx.path, 1, 1, self.code, "will break")

    def rewrite(self, module, ctx):
        # An indented block rendered with a non-whitespace indent: valid nodes, invalid code.
        block = cst.If(test=cst.Name("True"),
                       body=cst.IndentedBlock([cst.SimpleStatementLine([cst.Pass()])]))
        return module.with_changes(body=[*module.body, block], default_indent="xx"), []


class Crashes(RewriteRule):
    """Test rule: raises while rewriting (the run must go on, the file stay unchanged)."""

    code = "TFMT03"
    name = "test-crash"
    summary = "test-only crashing rewrite"
    tokens = ("CRASH_REWRITE_MARKER",)

    def check(self, ctx):
        yield Finding(ctx.path, 1, 1, self.code, "will crash")

    def rewrite(self, module, ctx):
        raise RuntimeError("deliberate crash in a test rule")


RULES = [CompatV1Rename, BrokenOutput, Crashes]
