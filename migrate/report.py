"""Turn results into what a person or a CI job reads: finding lines, diffs, a summary, JSON."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote

import click

from migrate import __version__
from migrate.findings import BEHAVIOUR_CHANGE, BOUNDED, EXACT
from migrate.pipeline import FileResult

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


FUNCTION_REWRITES = ("TFM300", "TFM400")
FUNCTIONS_LEFT = ("TFM301", "TFM401")


@dataclass
class Summary:
    command: str
    scanned: int = 0
    changed: int = 0
    manual_files: int = 0
    findings: int = 0
    manual_findings: int = 0
    errors: int = 0
    warnings: int = 0
    by_code: Dict[str, int] = field(default_factory=dict)
    rewrites_by_class: Dict[str, int] = field(default_factory=dict)
    functions_rewritten: int = 0  # model functions and training programs converted (TFM300/TFM400)
    functions_left: int = 0  # left unchanged with a reason (TFM301/TFM401)

    def add(self, result: FileResult) -> None:
        self.scanned += 1
        if result.error:
            self.errors += 1
            return
        if result.changed:
            self.changed += 1
        self.findings += len(result.findings)
        manual = result.manual
        self.manual_findings += len(manual)
        if manual:
            self.manual_files += 1
        for finding in result.findings:
            self.by_code[finding.code] = self.by_code.get(finding.code, 0) + 1
            if finding.code in FUNCTION_REWRITES and finding.fixed:
                self.functions_rewritten += 1
            elif finding.code in FUNCTIONS_LEFT:
                self.functions_left += 1
            if finding.fixed:
                kind = finding.rewrite_class or EXACT
                self.rewrites_by_class[kind] = self.rewrites_by_class.get(kind, 0) + 1

    def line(self) -> str:
        files = _plural(self.scanned, "file")
        errors = _plural(self.errors, "error")
        if self.command == "check":
            return (f"Scanned {files}: {_plural(self.findings, 'finding')} in "
                    f"{_plural(self.manual_files, 'file')}, {errors}.")
        verb = "changed" if self.command == "apply" else "would change"
        functions = ""
        if self.functions_rewritten or self.functions_left:
            functions = (f"; {_plural(self.functions_rewritten, 'function')} rewritten, "
                         f"{self.functions_left} left unchanged")
        return (f"Scanned {files}: {self.changed} {verb}, {self.manual_files} with findings needing "
                f"manual work ({_plural(self.manual_findings, 'finding')}), {errors}{functions}.")

    def to_json(self) -> dict:
        return {"files_scanned": self.scanned, "files_changed": self.changed,
                "files_needing_manual_work": self.manual_files, "findings": self.findings,
                "findings_needing_manual_work": self.manual_findings, "errors": self.errors,
                "warnings": self.warnings, "findings_by_code": dict(sorted(self.by_code.items())),
                "rewrites": sum(self.rewrites_by_class.values()),
                "functions_rewritten": self.functions_rewritten, "functions_left": self.functions_left,
                "rewrites_by_class": {k: self.rewrites_by_class.get(k, 0)
                                      for k in (EXACT, BOUNDED, BEHAVIOUR_CHANGE)}}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def unified_diff(result: FileResult) -> str:
    if not result.changed:
        return ""
    cell_diffs = getattr(result, "cell_diffs", None)
    if cell_diffs:  # a notebook: one diff per edited cell, on the cell's source
        return "".join(_diff(old, new, label) for label, old, new in cell_diffs)
    return _diff(result.old_text, result.new_text, result.path)


def _diff(old_text: str, new_text: str, label: str) -> str:
    old = old_text.splitlines(keepends=True)
    new = new_text.splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, fromfile=f"a/{label}", tofile=f"b/{label}")
    out = []
    for line in lines:
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def colorize_diff(text: str) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("+++", "---")):
            out.append(click.style(line, bold=True))
        elif line.startswith("@@"):
            out.append(click.style(line, fg="cyan"))
        elif line.startswith("+"):
            out.append(click.style(line, fg="green"))
        elif line.startswith("-"):
            out.append(click.style(line, fg="red"))
        else:
            out.append(line)
    return "".join(out)


def format_finding_line(finding, color: bool) -> str:
    line = finding.format()
    if not color:
        return line
    location = f"{finding.path}:{finding.line}:{finding.col}:"
    return (click.style(location, bold=True) + " " + click.style(finding.code, fg="red", bold=True)
            + line[len(location) + 1 + len(finding.code):])


def error_line(path: str, message: str, level: str = "error") -> str:
    return f"{path}: {level}: {message}"


def is_safe(finding) -> Optional[bool]:
    """Whether a rewrite keeps the numbers (exact); None for a finding that is not a rewrite."""
    if not finding.fixed and finding.rewrite_class is None:
        return None
    return (finding.rewrite_class or EXACT) == EXACT


def finding_json(finding) -> dict:
    data = finding.to_json()
    data.pop("extra", None)
    data["safe"] = is_safe(finding)
    if finding.extra.get("notebook"):
        data["file"], data["cell"] = finding.extra["notebook"], finding.extra["cell"]
    else:
        data["file"] = finding.path
    if finding.extra:
        extra = {k: v for k, v in finding.extra.items() if k not in ("notebook", "cell")}
        if extra:
            data["extra"] = extra
    return data


def json_report(command: str, results: List[FileResult], summary: Summary,
                problems: List[dict], include_diff: bool) -> str:
    files = []
    for result in results:
        entry = {"path": result.path, "changed": result.changed, "error": result.error,
                 "findings": [finding_json(f) for f in result.findings],
                 "rewrites": [finding_json(f) for f in result.findings if f.fixed]}
        if include_diff and result.changed:
            entry["diff"] = unified_diff(result)
        files.append(entry)
    payload = {"tool": "tf-migrate", "version": __version__, "command": command,
               "files": files, "problems": problems, "summary": summary.to_json()}
    return json.dumps(payload, indent=2, sort_keys=False, default=str)


def exit_code(command: str, summary: Summary) -> int:
    if summary.errors:
        return 2
    if command == "check":
        return 1 if summary.findings else 0
    if command == "diff":
        return 1 if summary.changed else 0
    return 1 if summary.manual_findings else 0


def progress_label(command: str) -> Optional[str]:
    return {"check": "Checking", "diff": "Diffing", "apply": "Migrating"}.get(command)


# -- what each format prints ---------------------------------------------------------------
def reported(command: str, result: FileResult) -> List:
    """The findings a run reports: all of them for check, those left to do for diff/apply."""
    if command == "check":
        return list(result.findings)
    return list(result.manual)


def unsafe_rewrites(result: FileResult) -> List:
    return [f for f in result.findings if f.fixed and (f.rewrite_class or EXACT) != EXACT]


def render(fmt: str, command: str, results: List[FileResult], summary: Summary, problems: List[dict],
           rules, color: bool = False, quiet: bool = False, verbose: bool = False) -> str:
    """The whole report of a run, in `fmt`; ends with a newline unless empty."""
    if fmt == "json":
        return json_report(command, results, summary, problems,
                           include_diff=command == "diff") + "\n"
    if fmt == "sarif":
        return json.dumps(sarif_report(command, results, problems, rules), indent=2) + "\n"
    if fmt == "github":
        return "".join(line + "\n" for line in github_lines(command, results, problems))
    lines = []
    for result in results:
        for finding in reported(command, result):
            lines.append(format_finding_line(finding, color))
        if command != "check":
            # Rewrites are applied, but the ones that do not keep TF1's numbers are named.
            shown = [f for f in result.findings if f.fixed] if verbose else unsafe_rewrites(result)
            for finding in shown:
                lines.append(format_rewrite_line(finding, color))
    if not quiet:
        lines.append(summary.line())
    return "".join(line + "\n" for line in lines)


def format_rewrite_line(finding, color: bool) -> str:
    kind = finding.rewrite_class or EXACT
    tag = f"[rewritten, {kind}]"
    if color:
        tag = click.style(tag, fg="green" if kind == EXACT else "yellow")
    return f"{finding.path}:{finding.line}:{finding.col}: {finding.code} {tag} {finding.message}"


def status_line(command: str, result: FileResult) -> str:
    """--verbose: one line per file."""
    if result.error:
        status = "error"
    else:
        parts = []
        if result.changed:
            parts.append("changed" if command == "apply" else "would change")
        manual = len(result.manual)
        if command == "check" and result.findings:
            parts.append(_plural(len(result.findings), "finding"))
        elif manual:
            parts.append(f"{_plural(manual, 'finding')} needing manual work")
        status = ", ".join(parts) or "nothing to do"
    return f"{result.path}: {status}"


# -- GitHub Actions workflow commands ----------------------------------------------------
def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def _location(finding):
    """(file, line, col, prefix): notebooks point at the file and name the cell in the text."""
    notebook = finding.extra.get("notebook")
    if notebook:
        return notebook, 1, 1, f"cell_{finding.extra['cell']}:{finding.line}:{finding.col}: "
    return finding.path, finding.line, finding.col, ""


def github_lines(command: str, results: List[FileResult], problems: List[dict]) -> List[str]:
    lines = []
    for problem in problems:
        level = "error" if problem["level"] == "error" else "warning"
        lines.append(f"::{level} file={_gh_property(problem['path'])},title=tf-migrate::"
                     f"{_gh_data(problem['message'])}")
    for result in results:
        if result.error:
            lines.append(f"::error file={_gh_property(result.path)},title=tf-migrate::"
                         f"{_gh_data(result.error)}")
            continue
        notices = unsafe_rewrites(result) if command != "check" else []
        for level, findings in (("warning", reported(command, result)), ("notice", notices)):
            for finding in findings:
                path, line, col, prefix = _location(finding)
                message = finding.message
                if finding.fixed:
                    message = f"rewritten ({finding.rewrite_class or EXACT}): {message}"
                lines.append(f"::{level} file={_gh_property(path)},line={line},col={col},"
                             f"title={_gh_property(finding.code)}::{_gh_data(prefix + message)}")
    return lines


# -- SARIF 2.1.0 ---------------------------------------------------------------------------
def _artifact(path: str) -> dict:
    posix = Path(path).as_posix()
    if Path(path).is_absolute():
        return {"uri": Path(path).as_uri()}
    if posix.startswith("./"):
        posix = posix[2:]
    return {"uri": quote(posix), "uriBaseId": "%SRCROOT%"}


def _first_paragraph(text: str) -> str:
    body = [line for line in text.strip().splitlines() if not line.startswith("## What it does")]
    paragraph = []
    for line in body:
        if not line.strip():
            if paragraph:
                break
            continue
        if line.startswith("##"):
            break
        paragraph.append(line.strip())
    return " ".join(paragraph)


def sarif_rule(rule) -> dict:
    docs = rule.docs()
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": _first_paragraph(docs) or rule.summary},
        "help": {"text": docs, "markdown": docs},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["tensorflow", "migration"]},
    }


def _sarif_rule_for_code(code: str, rules) -> dict:
    from migrate import rules as registry

    try:
        rule = registry.rule_by_code(code, rules)
    except registry.UnknownRuleCode:
        rule = None
    if rule is not None and rule.code == code:
        return sarif_rule(rule)
    # A code a rule reports besides its own (TFM302 by TFM300): an entry of its own id.
    family = [rule] if rule is not None else [r for r in rules if r.code[:5] == code[:5]]
    text = (f"{code}: reported by the {family[0].code} ({family[0].name}) rewrite"
            if family else f"{code}: a tf-migrate finding")
    entry = {"id": code, "name": code.lower(), "shortDescription": {"text": text},
             "fullDescription": {"text": text}, "defaultConfiguration": {"level": "warning"}}
    if family:
        docs = family[0].docs()
        entry["help"] = {"text": docs, "markdown": docs}
    else:
        entry["help"] = {"text": text}
    return entry


def sarif_report(command: str, results: List[FileResult], problems: List[dict], rules) -> dict:
    driver_rules, index = [], {}
    for rule in rules:
        if rule.code not in index:
            index[rule.code] = len(driver_rules)
            driver_rules.append(sarif_rule(rule))
    sarif_results = []
    for result in results:
        if result.error:
            continue
        for finding in result.findings:
            if command != "check" and finding.fixed and is_safe(finding):
                continue  # an exact rewrite: nothing left to look at
            path, line, col, prefix = _location(finding)
            text = prefix + finding.message
            if finding.fixed:
                text = f"Rewritten ({finding.rewrite_class or EXACT}): {text}"
            entry = {
                "ruleId": finding.code,
                "level": "note" if finding.fixed else "warning",
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": _artifact(path),
                    "region": {"startLine": line, "startColumn": col}}}],
                "properties": {"fixed": finding.fixed, "rewriteClass": finding.rewrite_class,
                               "safe": is_safe(finding)},
            }
            if finding.code not in index:
                # A code a rule reports besides its own (e.g. a sub-finding of the model rewrite).
                index[finding.code] = len(driver_rules)
                driver_rules.append(_sarif_rule_for_code(finding.code, rules))
            entry["ruleIndex"] = index[finding.code]
            if finding.extra.get("cell"):
                entry["properties"]["cell"] = finding.extra["cell"]
            sarif_results.append(entry)
    notifications = [{"level": "error" if p["level"] == "error" else "warning",
                      "message": {"text": p["message"]},
                      "locations": [{"physicalLocation": {"artifactLocation": _artifact(p["path"])}}]}
                     for p in problems]
    notifications += [{"level": "error", "message": {"text": r.error},
                       "locations": [{"physicalLocation": {"artifactLocation": _artifact(r.path)}}]}
                      for r in results if r.error]
    invocation = {"executionSuccessful": not any(n["level"] == "error" for n in notifications),
                  "toolExecutionNotifications": notifications,
                  "properties": {"command": command}}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "tf-migrate", "version": __version__,
                                "semanticVersion": __version__,
                                "rules": driver_rules}},
            "invocations": [invocation],
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "results": sarif_results,
        }],
    }
