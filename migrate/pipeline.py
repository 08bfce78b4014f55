"""Migrate one file's bytes: decode, prefilter, find, rewrite, re-parse, encode.

Pure function of its inputs (no file I/O), so the CLI can run it in worker
processes and tests can call it directly. A file that mentions none of the
selected rules' tokens is never parsed; a file that no rule wants to rewrite
is never parsed by libcst. A rewrite whose output does not parse is discarded
and reported as an internal error: we never write code we cannot read back.
"""

from __future__ import annotations

import ast
import traceback
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Type

from migrate.context import ModuleContext
from migrate.findings import Finding
from migrate.rules.base import Rule, RewriteRule
from migrate.source import SourceError, decode_source, parse_python


@dataclass
class Options:
    """Per-run settings every worker needs (must pickle)."""

    rewrite: bool = False  # run the libcst rewrites (diff/apply), not only findings
    fused_bn: str = "keras"  # "keras" or "exact" (emit the TF1 fused-BN compat layer)
    safe_only: bool = False
    preserve_bugs: bool = False
    tree_index: object = None  # migrate.tree_index.TreeIndex: model helpers of the other files


@dataclass
class FileResult:
    path: str  # as displayed
    findings: List[Finding] = field(default_factory=list)
    new_bytes: Optional[bytes] = None  # None: unchanged
    error: Optional[str] = None
    old_text: Optional[str] = None  # decoded original, kept only when changed (for diffs)
    new_text: Optional[str] = None

    @property
    def changed(self) -> bool:
        return self.new_bytes is not None

    @property
    def manual(self) -> List[Finding]:
        """Findings left for manual migration (not rewritten)."""
        return [f for f in self.findings if not f.fixed]


def migrate_source(raw: bytes, path: str, rules: Sequence[Type[Rule]], options: Options,
                   module_name: Optional[str] = None) -> FileResult:
    """`module_name` (dotted, e.g. `pkg.model`) lets rewrites use helpers of other tree files."""
    result = FileResult(path=path)
    try:
        _migrate(raw, path, rules, options, result, module_name)
    except SourceError as exc:
        result.error = str(exc)
        result.findings = []
        result.new_bytes = None
    except Exception as exc:  # a bug in a rule must not stop the run or touch the file
        where = traceback.extract_tb(exc.__traceback__)[-1]
        first_line = (str(exc).strip().splitlines() or [""])[0]
        result.error = (f"internal error ({type(exc).__name__}: {first_line} at "
                        f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}); file left unchanged. "
                        "Please report this with the file")
        result.findings = []
        result.new_bytes = None
    return result


def _migrate(raw, path, rules, options, result, module_name=None) -> None:
    source = decode_source(raw)
    text = source.text

    def run(text):
        return _migrate_text(text, path, rules, options, module_name)

    def run_program(text):
        if options.rewrite and "Session" in text and any(r.code == "TFM400" for r in rules):
            # A Session program at module level (or under `if __name__ == "__main__":`) is
            # converted as if it were a function, or left marked (training_rewrite/module_program).
            from migrate.training_rewrite.module_program import migrate_module_program

            outcome = migrate_module_program(text, path, run, _resolver_for)
            if outcome is not None:
                return outcome
        return run(text)

    outcome = None
    if options.rewrite and "Session" in text and \
            {"TFM300", "TFM400"} <= {r.code for r in rules}:
        # A class that is the whole program (placeholders in __init__, Session methods) is
        # taken apart into a network and a Session program, converted, and put back together
        # (training_rewrite/class_program).
        from migrate.training_rewrite.class_program import migrate_class_programs

        outcome = migrate_class_programs(text, path, run_program,
                                         getattr(options, "tree_index", None), module_name)
    new_text, findings = outcome if outcome is not None else run_program(text)
    index = getattr(options, "tree_index", None)
    promised = getattr(index, "renamed", {}).get(module_name) if options.rewrite and module_name else None
    if promised:
        # Plain helpers with TF1 spellings that converted code of another module calls
        # (tree_index.renamed): renamed the TF 2 way here (tf1_renames.rename_functions).
        from migrate.model_rewrite.tf1_renames import rename_functions

        new_text = rename_functions(new_text if new_text is not None else text, promised)
    if new_text is not None and new_text != text:
        if text.endswith("\r") and not text.endswith("\r\n") and not new_text.endswith("\r"):
            # libcst drops a final lone CR (old Mac line ending): put the byte back.
            new_text += "\r"
        _check_parses(new_text, path)
        result.new_bytes = source.encode(new_text)
        result.old_text, result.new_text = text, new_text
    result.findings = findings


def _resolver_for(tree):
    from migrate.context import _walk
    from migrate.names import ImportResolver

    return ImportResolver(tree, _walk(tree)[0]).resolve


def _migrate_text(text, path, rules, options, module_name=None):
    """(the rewritten text, or None when unchanged; the sorted findings) of one module."""
    active = [rule_cls for rule_cls in rules if rule_cls.applies_to_text(text)]
    index = getattr(options, "tree_index", None) if options.rewrite else None
    if index is not None and not any(m.rsplit(".", 1)[-1] in text for m in index.helpers):
        index = None  # imports no module that provides helpers (a cheap text filter)
    if not active and index is None:
        return None, []
    tree = parse_python(text, path)
    ctx = ModuleContext(path, text, tree)
    ctx.module_name = module_name
    if index is not None:
        # A module that builds its models only from helpers of another file of the tree
        # (pix2pix's model.py: `from ops import *`): the rules converting those apply too.
        active = [r for r in rules if r in active or r.applies_to_tree(ctx, index)]
        if not active:
            return None, []
    if options.rewrite:  # the libcst half of a rule is loaded only by runs that rewrite
        active = [rule_cls.rewriting_class() for rule_cls in active]
    instances = [rule_cls(options) for rule_cls in active]
    ctx.active_codes = {rule.code for rule in instances}
    findings_by_rule = {rule: list(rule.check(ctx)) for rule in instances}

    findings: List[Finding] = []
    rewriters = [r for r in instances
                 if options.rewrite and isinstance(r, RewriteRule)
                 and r.wants_rewrite(ctx, findings_by_rule[r])]
    if rewriters:
        # Rewriters mark the findings of the sites they resolved as fixed.
        ctx.findings = [f for rule_findings in findings_by_rule.values() for f in rule_findings]
        import libcst as cst  # here, not at the top: `check` and files nothing rewrites never pay it

        module = cst.parse_module(text)
        fixed: List[Finding] = []
        for rule in rewriters:
            module, rule_fixed = rule.rewrite(module, ctx)
            fixed.extend(rule_fixed)
        new_text = module.code
        fixed_keys = {(f.line, f.col, f.code) for f in fixed}
        for rule, rule_findings in findings_by_rule.items():
            findings.extend(f for f in rule_findings if (f.line, f.col, f.code) not in fixed_keys)
        findings.extend(fixed)
    else:
        for rule_findings in findings_by_rule.values():
            findings.extend(rule_findings)
    return (new_text if rewriters and new_text != text else None), sorted(set(findings))


def _check_parses(text: str, path: str) -> None:
    try:
        ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise RewriteProducedInvalidCode(
            f"internal error: the rewrite produced code that does not parse ({exc.msg} at line "
            f"{exc.lineno}); file left unchanged. Please report this with the file.") from None


class RewriteProducedInvalidCode(SourceError):
    pass
