"""Turn results into what a person or a CI job reads: finding lines, diffs, a summary, JSON."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import click

from migrate import __version__
from migrate.pipeline import FileResult


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

    def line(self) -> str:
        files = _plural(self.scanned, "file")
        errors = _plural(self.errors, "error")
        if self.command == "check":
            return (f"Scanned {files}: {_plural(self.findings, 'finding')} in "
                    f"{_plural(self.manual_files, 'file')}, {errors}.")
        verb = "changed" if self.command == "apply" else "would change"
        return (f"Scanned {files}: {self.changed} {verb}, {self.manual_files} with findings needing "
                f"manual work ({_plural(self.manual_findings, 'finding')}), {errors}.")

    def to_json(self) -> dict:
        return {"files_scanned": self.scanned, "files_changed": self.changed,
                "files_needing_manual_work": self.manual_files, "findings": self.findings,
                "findings_needing_manual_work": self.manual_findings, "errors": self.errors,
                "warnings": self.warnings, "findings_by_code": dict(sorted(self.by_code.items()))}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def unified_diff(result: FileResult) -> str:
    if not result.changed:
        return ""
    old = result.old_text.splitlines(keepends=True)
    new = result.new_text.splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, fromfile=f"a/{result.path}", tofile=f"b/{result.path}")
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


def json_report(command: str, results: List[FileResult], summary: Summary,
                problems: List[dict], include_diff: bool) -> str:
    files = []
    for result in results:
        entry = {"path": result.path, "changed": result.changed, "error": result.error,
                 "findings": [f.to_json() for f in result.findings]}
        if include_diff and result.changed:
            entry["diff"] = unified_diff(result)
        files.append(entry)
    payload = {"tool": "tf-migrate", "version": __version__, "command": command,
               "files": files, "problems": problems, "summary": summary.to_json()}
    return json.dumps(payload, indent=2, sort_keys=False)


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
