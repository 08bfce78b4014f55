"""One run of `check`, `diff` or `apply`: discover, migrate (in worker processes), write, report."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import click

from migrate import discovery, report, rules as rules_registry, writer
from migrate.pipeline import FileResult, Options, migrate_source


@dataclass
class RunConfig:
    command: str  # check | diff | apply
    paths: Sequence[str]
    excludes: Sequence[str] = ()
    select: Sequence[str] = ()
    ignore: Sequence[str] = ()
    rule_modules: Sequence[str] = ()
    jobs: int = 1
    out_dir: Optional[str] = None
    fmt: str = "text"
    color: bool = False
    quiet: bool = False
    options: Options = field(default_factory=Options)


# -- worker side -------------------------------------------------------------------------
_WORKER_RULES = None
_WORKER_OPTIONS = None


def _init_worker(select, ignore, rule_modules, options) -> None:
    global _WORKER_RULES, _WORKER_OPTIONS
    _WORKER_RULES = _selected_rules(select, ignore, rule_modules)
    _WORKER_OPTIONS = options


def _selected_rules(select, ignore, rule_modules):
    extra = [rule for module in rule_modules for rule in rules_registry.load_rule_module(module)]
    return rules_registry.select_rules(select, ignore, extra)


def _process_path(item: Tuple[str, str]) -> FileResult:
    path, display = item
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except IsADirectoryError:
        return FileResult(display, error="is a directory")
    except OSError as exc:
        return FileResult(display, error=f"cannot read: {exc.strerror or exc}")
    return migrate_source(raw, display, _WORKER_RULES, _WORKER_OPTIONS)


# -- parent side -------------------------------------------------------------------------
class _LazyProgress:
    """A progress bar on stderr that appears only on a TTY and only once a run passes 1 s."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled and total > 1
        self.start = time.monotonic()
        self.done = 0
        self.bar = None

    def advance(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is None and time.monotonic() - self.start > 1.0:
            self.bar = click.progressbar(length=self.total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
            self.bar.update(self.done)
        elif self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def run(config: RunConfig) -> int:
    rules = _selected_rules(config.select, config.ignore, config.rule_modules)
    mirror = config.command == "apply" and config.out_dir is not None
    targets = discovery.discover(config.paths, config.excludes, with_mirror=mirror)
    python_targets = [t for t in targets if t.kind == discovery.PYTHON]
    uses_stdin = any(t.is_stdin for t in python_targets)
    # stdout carries the patch (diff) or the migrated code (apply -): reports go to stderr then.
    report_stream = (sys.stderr if config.command == "diff" or (uses_stdin and config.command == "apply")
                     else sys.stdout)
    out = sys.stdout

    summary = report.Summary(config.command)
    problems = []
    for target in targets:
        if target.kind == discovery.PROBLEM:
            problems.append({"path": target.display, "message": target.message,
                             "level": "error" if target.is_error else "warning"})
            if target.is_error:
                summary.errors += 1
            else:
                summary.warnings += 1
            click.echo(report.error_line(target.display, target.message,
                                         "error" if target.is_error else "warning"), err=True)

    results, stdin_raw = _migrate_all(python_targets, rules, config)

    out_root = Path(config.out_dir) if mirror else None
    if out_root is not None:
        out_root.mkdir(parents=True, exist_ok=True)
        _write_mirror(targets, results, out_root)

    for target, result in zip(python_targets, results):
        summary.add(result)
        if result.error:
            click.echo(report.error_line(result.path, result.error), err=True)
        if target.is_stdin:
            _emit_stdin(config, result, stdin_raw, out)
        elif result.error:
            continue
        elif config.command == "apply" and out_root is None and result.changed:
            try:
                writer.write_in_place(target.path, result.new_bytes)
            except OSError as exc:
                summary.errors += 1
                click.echo(report.error_line(result.path, f"cannot write: {exc.strerror or exc}; "
                                             "file left unchanged"), err=True)
        elif config.command == "diff" and config.fmt == "text" and result.changed:
            diff = report.unified_diff(result)
            out.write(report.colorize_diff(diff) if config.color else diff)

    if config.fmt == "json":
        text = report.json_report(config.command, results, summary, problems,
                                  include_diff=config.command == "diff")
        click.echo(text, file=report_stream)
    else:
        for result in results:
            for finding in (result.findings if config.command == "check" else result.manual):
                click.echo(report.format_finding_line(finding, config.color), file=report_stream)
        if not config.quiet:
            click.echo(summary.line(), file=report_stream)
    return report.exit_code(config.command, summary)


def _migrate_all(python_targets, rules, config) -> Tuple[List[FileResult], bytes]:
    progress = _LazyProgress(len(python_targets), report.progress_label(config.command),
                             _stderr_is_tty() and not config.quiet)
    options = config.options
    results: List[FileResult] = []
    stdin_raw = b""
    file_items = [(str(t.path), t.display) for t in python_targets if not t.is_stdin]
    worker_results = iter(())
    if config.jobs > 1 and len(file_items) > 1:
        executor = ProcessPoolExecutor(
            max_workers=min(config.jobs, len(file_items)), initializer=_init_worker,
            initargs=(list(config.select), list(config.ignore), list(config.rule_modules), options))
        worker_results = executor.map(_process_path, file_items, chunksize=4)
    else:
        executor = None
        _init_worker(list(config.select), list(config.ignore), list(config.rule_modules), options)
        worker_results = map(_process_path, file_items)
    try:
        for target in python_targets:
            if target.is_stdin:
                stdin_raw = click.get_binary_stream("stdin").read()
                results.append(migrate_source(stdin_raw, "-", rules, options))
            else:
                results.append(next(worker_results))
            progress.advance()
    finally:
        progress.close()
        if executor is not None:
            executor.shutdown()
    return results, stdin_raw


def _emit_stdin(config: RunConfig, result: FileResult, raw: bytes, out) -> None:
    if config.command == "apply":
        # Unchanged input (or input with errors) is echoed back byte for byte.
        binary = click.get_binary_stream("stdout")
        binary.write(result.new_bytes if result.changed else raw)
        binary.flush()
    elif config.command == "diff" and config.fmt == "text" and result.changed:
        diff = report.unified_diff(result)
        out.write(report.colorize_diff(diff) if config.color else diff)


def _write_mirror(targets, results, out_root: Path) -> None:
    by_display = {r.path: r for r in results}
    for target in targets:
        if target.dest is None or target.is_stdin:
            continue
        dest = out_root / target.dest
        try:
            if target.kind == discovery.DIRECTORY:
                writer.make_dir(target.path, dest)
            elif target.kind == discovery.SYMLINK:
                writer.copy_symlink(target.path, dest)
            elif target.kind == discovery.OTHER:
                writer.copy_file(target.path, dest)
            elif target.kind == discovery.PYTHON:
                result = by_display.get(target.display)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if result is not None and result.changed:
                    writer.atomic_write(dest, result.new_bytes,
                                        mode=os.stat(target.path).st_mode & 0o7777)
                else:
                    # Unchanged, or not migratable: the mirror gets the original bytes.
                    writer.copy_file(target.path, dest)
        except OSError as exc:
            click.echo(report.error_line(target.display, f"cannot write to the output tree: "
                                         f"{exc.strerror or exc}"), err=True)
