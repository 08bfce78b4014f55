"""One run of `check`, `diff` or `apply`: discover, migrate (in worker processes), write, report."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import click

from migrate import config as config_mod
from migrate import discovery, notebooks, report, rules as rules_registry, suppressions, tree_index, writer
from migrate.pipeline import FileResult, Options, migrate_source
from migrate.source import SourceError, decode_source


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
    verbose: bool = False
    output_file: Optional[str] = None  # write the report here instead of stdout/stderr
    options: Options = field(default_factory=Options)
    project: config_mod.Config = field(default_factory=config_mod.Config)  # for per-file-ignores


# -- worker side -------------------------------------------------------------------------
_WORKER_RULES = None
_WORKER_OPTIONS = None
_WORKER_PROJECT = None
_WORKER_KNOWN = frozenset()


def _init_worker(select, ignore, rule_modules, options, project=None) -> None:
    global _WORKER_RULES, _WORKER_OPTIONS, _WORKER_PROJECT, _WORKER_KNOWN
    _WORKER_RULES = _selected_rules(select, ignore, rule_modules)
    _WORKER_OPTIONS = options
    _WORKER_PROJECT = project or config_mod.Config()
    extra = [rule for module in rule_modules for rule in rules_registry.load_rule_module(module)]
    _WORKER_KNOWN = frozenset(r.code for r in list(rules_registry.ALL_RULES) + extra)


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
    index = getattr(_WORKER_OPTIONS, "tree_index", None)
    module_name = index.module_of(path) if index is not None else None
    return _migrate_file(raw, display, path, module_name)


def _migrate_file(raw: bytes, display: str, fs_path: Optional[str],
                  module_name: Optional[str] = None) -> FileResult:
    """One file: its rules (per-file-ignores), notebook or Python, then suppressions."""
    rules = _WORKER_RULES
    off = config_mod.per_file_ignored_codes(fs_path, _WORKER_PROJECT) if fs_path else ()
    if off:
        rules = [r for r in rules if not any(r.code.startswith(code) for code in off)]
    if notebooks.is_notebook(fs_path or display):
        return notebooks.migrate_notebook(
            raw, display, lambda program, path: _migrate_python(program, path, rules, None))
    return _migrate_python(raw, display, rules, module_name)


def _migrate_python(raw: bytes, display: str, rules, module_name: Optional[str]) -> FileResult:
    sups = None
    if b"tf-migrate" in raw:
        try:
            sups = suppressions.parse(decode_source(raw).text)
        except SourceError:
            sups = None  # migrate_source reports it
    if sups is not None and sups.file_all:
        return FileResult(display)  # `# tf-migrate: ignore-file`: not migrated, not reported
    if sups is not None:
        rules = suppressions.drop_file_codes(rules, sups)
    result = migrate_source(raw, display, rules, _WORKER_OPTIONS, module_name)
    if sups is not None and sups.lines and not result.error:
        enabled = {r.code for r in rules}
        result.findings = suppressions.apply(result.findings, sups, display, _WORKER_KNOWN, enabled,
                                             report_unused=suppressions.UNUSED_CODE in enabled)
    return result


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
    # The diff goes to stdout for people (text) and CI logs (github); json/sarif carry it or not.
    show_diff = config.command == "diff" and config.fmt in ("text", "github")

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

    if config.options.rewrite and len(python_targets) > 1:
        # Helpers defined in one file and used in another: index the tree first.
        config.options.tree_index = tree_index.build_index(python_targets, config.options)
    results, stdin_raw = _migrate_all(python_targets, rules, config)

    out_root = Path(config.out_dir) if mirror else None
    if out_root is not None:
        out_root.mkdir(parents=True, exist_ok=True)
        # A file that cannot be written into the mirror is an error like any other.
        summary.errors += _write_mirror(targets, results, out_root)

    for target, result in zip(python_targets, results):
        summary.add(result)
        if result.error:
            click.echo(report.error_line(result.path, result.error), err=True)
        if config.verbose:
            click.echo(report.status_line(config.command, result), err=True)
        if target.is_stdin:
            _emit_stdin(config, result, stdin_raw, out, show_diff)
        elif result.error:
            continue
        elif config.command == "apply" and out_root is None and result.changed:
            try:
                writer.write_in_place(target.path, result.new_bytes)
            except OSError as exc:
                summary.errors += 1
                click.echo(report.error_line(result.path, f"cannot write: {exc.strerror or exc}; "
                                             "file left unchanged"), err=True)
        elif show_diff and result.changed:
            diff = report.unified_diff(result)
            out.write(report.colorize_diff(diff) if config.color else diff)

    text = report.render(config.fmt, config.command, results, summary, problems, rules,
                         color=config.color and config.output_file is None, quiet=config.quiet,
                         verbose=config.verbose)
    if config.output_file is not None:
        try:
            with open(config.output_file, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            click.echo(report.error_line(config.output_file, f"cannot write the report: "
                                         f"{exc.strerror or exc}"), err=True)
            return 2
    elif text:
        click.echo(text, file=report_stream, nl=False, color=config.color)
    return report.exit_code(config.command, summary)


def _migrate_all(python_targets, rules, config) -> Tuple[List[FileResult], bytes]:
    progress = _LazyProgress(len(python_targets), report.progress_label(config.command),
                             _stderr_is_tty() and not config.quiet)
    options = config.options
    results: List[FileResult] = []
    stdin_raw = b""
    file_items = [(str(t.path), t.display) for t in python_targets if not t.is_stdin]
    worker_results = iter(())
    # The parent migrates stdin itself, so it is set up like a worker whatever -j says.
    _init_worker(list(config.select), list(config.ignore), list(config.rule_modules), options,
                 config.project)
    if config.jobs > 1 and len(file_items) > 1:
        # Imported here: it pulls in multiprocessing, start-up that a -j 1 run does not need.
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(
            max_workers=min(config.jobs, len(file_items)), initializer=_init_worker,
            initargs=(list(config.select), list(config.ignore), list(config.rule_modules), options,
                      config.project))
        worker_results = executor.map(_process_path, file_items, chunksize=4)
    else:
        executor = None
        worker_results = map(_process_path, file_items)
    try:
        for target in python_targets:
            if target.is_stdin:
                stdin_raw = click.get_binary_stream("stdin").read()
                results.append(_migrate_file(stdin_raw, "-", None))
            else:
                results.append(next(worker_results))
            progress.advance()
    finally:
        progress.close()
        if executor is not None:
            executor.shutdown()
    return results, stdin_raw


def _emit_stdin(config: RunConfig, result: FileResult, raw: bytes, out, show_diff: bool) -> None:
    if config.command == "apply":
        # Unchanged input (or input with errors) is echoed back byte for byte.
        binary = click.get_binary_stream("stdout")
        binary.write(result.new_bytes if result.changed else raw)
        binary.flush()
    elif show_diff and result.changed:
        diff = report.unified_diff(result)
        out.write(report.colorize_diff(diff) if config.color else diff)


def _write_mirror(targets, results, out_root: Path) -> int:
    """Write the --out tree; return how many entries failed (each reported once)."""
    by_display = {r.path: r for r in results}
    failures = 0
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
            result = by_display.get(target.display) if target.kind == discovery.PYTHON else None
            if result is not None and result.error and result.error.startswith("cannot read"):
                continue  # already reported (and counted) as unreadable: one line per file
            failures += 1
            click.echo(report.error_line(target.display, f"cannot write to the output tree: "
                                         f"{exc.strerror or exc}"), err=True)
    return failures
