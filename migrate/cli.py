"""The `tf-migrate` command line. Thin: parse options, hand a RunConfig to the runner."""

from __future__ import annotations

import functools
import importlib
import os
import sys

import click

from migrate import __version__
from migrate import config as config_mod
from migrate import report
from migrate import rules as rules_registry
from migrate.pipeline import Options
from migrate.runner import RunConfig, run


def _split_codes(values):
    codes = []
    for value in values or ():
        codes.extend(c.strip().upper() for c in value.split(",") if c.strip())
    return tuple(codes)


def _use_color(choice: str, stream) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def common_options(func):
    """Options shared by check, diff and apply."""

    @click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
    @click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                  help="Worker processes (default: number of CPU cores).")
    @click.option("--exclude", multiple=True, metavar="GLOB",
                  help="Skip paths matching GLOB (repeatable).")
    @click.option("--select", multiple=True, metavar="CODES",
                  help="Only these rule codes or prefixes, comma-separated (e.g. TFM1,TFM201).")
    @click.option("--ignore", multiple=True, metavar="CODES",
                  help="Skip these rule codes or prefixes, comma-separated.")
    @click.option("--format", "fmt", type=click.Choice(report.FORMATS), default="text",
                  show_default=True,
                  help="Report format: text, json, sarif (SARIF 2.1.0, GitHub code scanning) or "
                       "github (GitHub Actions annotations).")
    @click.option("-o", "--output-file", type=click.Path(dir_okay=False, allow_dash=False),
                  default=None, help="Write the report to FILE instead of the terminal.")
    @click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
                  show_default=True, help="Colour output (auto: only on a terminal, never with NO_COLOR).")
    @click.option("-q", "--quiet", is_flag=True, help="Do not print the summary line.")
    @click.option("-v", "--verbose", is_flag=True,
                  help="Also print each file's status (to stderr) and every rewrite.")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="Read [tool.tf-migrate] from this file instead of looking for pyproject.toml.")
    @click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
    @click.option("--rules-module", "rule_modules", multiple=True, hidden=True,
                  help="Import extra rules from MODULE.RULES (for extensions and tests).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def rewrite_options(func):
    """Options that steer the rewrites (diff and apply)."""

    @click.option("--fused-bn", type=click.Choice(["keras", "exact"]), default=None,
                  help="keras: plain Keras BatchNormalization (bounded Bessel divergence from a TF1 "
                       "fused batch norm); exact: emit TF1's fused moving-variance update. "
                       "[default: keras, or fused-bn in the configuration]")
    @click.option("--safe-only", is_flag=True,
                  help="Apply only exact rewrites (same numbers); leave the rest for manual work.")
    @click.option("--preserve-bugs", is_flag=True,
                  help="Keep TF1 behaviour that was a bug (e.g. forgotten UPDATE_OPS) instead of "
                       "fixing it.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


class ConfigUsageError(click.ClickException):
    exit_code = 2

    def format_message(self) -> str:
        return f"configuration: {self.message}"


def _run(command, paths, jobs, exclude, select, ignore, fmt, output_file, color, quiet, verbose,
         config_file, isolated, rule_modules, out_dir=None, fused_bn=None, safe_only=False,
         preserve_bugs=False, run_with=None):
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose cannot be used together")
    try:
        project = config_mod.resolve(paths, config_file, isolated)
    except config_mod.ConfigError as exc:
        raise ConfigUsageError(str(exc))
    # Command-line flags override the configuration file.
    select_codes = _split_codes(select) if select else tuple(c.upper() for c in project.select or ())
    ignore_codes = _split_codes(ignore) if ignore else tuple(c.upper() for c in project.ignore or ())
    excludes = tuple(exclude) if exclude else project.anchored_excludes()
    options = Options(rewrite=command != "check", fused_bn=fused_bn or project.fused_bn or "keras",
                      safe_only=safe_only, preserve_bugs=preserve_bugs)
    stream = sys.stderr if command != "diff" else sys.stdout
    config = RunConfig(command=command, paths=paths, excludes=excludes,
                       select=select_codes, ignore=ignore_codes,
                       rule_modules=rule_modules, jobs=jobs or project.jobs or os.cpu_count() or 1,
                       out_dir=out_dir, fmt=fmt, color=_use_color(color, stream), quiet=quiet,
                       verbose=verbose, output_file=output_file, options=options, project=project)
    try:
        _check_codes(project, rule_modules)
        code = (run_with or run)(config)
    except rules_registry.UnknownRuleCode as exc:
        raise click.UsageError(str(exc))
    sys.exit(code)


def _check_codes(project, rule_modules) -> None:
    """Codes in per-file-ignores must exist, like --select/--ignore codes."""
    codes = [c for _, pattern_codes in project.per_file_ignores for c in pattern_codes]
    if codes:
        extra = [rule for module in rule_modules for rule in rules_registry.load_rule_module(module)]
        try:
            rules_registry.select_rules(codes, None, extra)
        except rules_registry.UnknownRuleCode as exc:
            raise ConfigUsageError(f"{project.path}: per-file-ignores: {exc}")


class _LazyGroup(click.Group):
    """verify and convert-checkpoint live in their own packages, apart from the rewriting code,
    and are imported only when used (or listed by --help): they import numpy, ~0.1 s of
    start-up that check, diff and apply do not need (issue 7)."""

    lazy_commands = {"verify": "migrate.verify.command:verify",
                     "convert-checkpoint": "migrate.checkpoint.command:convert_checkpoint"}

    def list_commands(self, ctx):
        lazy = [name for name in self.lazy_commands if self.get_command(ctx, name) is not None]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy_commands:
            module_name, _, attribute = self.lazy_commands[name].partition(":")
            try:
                command = getattr(importlib.import_module(module_name), attribute)
            except ImportError:
                return None
            self.add_command(command, name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tf-migrate")
def cli():
    """Migrate TensorFlow 1.x training code to TensorFlow 2, and prove the numbers match.

    \b
    Exit codes: 0 nothing to do / all good, 1 findings or changes
    (see each command), 2 usage or input errors.
    """


@cli.command()
@common_options
def check(**kwargs):
    """Report TF1 batch-norm and UPDATE_OPS findings; change nothing.

    One line per finding: PATH:LINE:COL: CODE message. Exit 1 if there is any
    finding, 0 if none, 2 on errors.
    """
    _run("check", **kwargs)


@cli.command()
@common_options
@rewrite_options
def diff(**kwargs):
    """Show, as a unified diff, what `apply` would write; write nothing.

    Exit 0 when nothing would change, 1 when something would, 2 on errors.
    The diff goes to stdout, findings and the summary to stderr.
    """
    _run("diff", **kwargs)


@cli.command()
@common_options
@rewrite_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write a migrated mirror of the input into DIR instead of changing files in place.")
@click.option("--verify", "verify_first", is_flag=True,
              help="Migrate into a temporary tree, run verify, and write only the files whose "
                   "models pass; the others are left unchanged and reported (exit 1 mismatch, "
                   "3 unverifiable). Settings from [tool.tf-migrate.verify].")
def apply(verify_first=False, **kwargs):
    """Rewrite files in place, or into a mirror tree with --out DIR.

    Writes are atomic (temp file + rename). Exit 0 when every file was migrated
    or needed nothing, 1 when some sites were left for manual migration (each
    reported), 2 on errors.
    """
    if verify_first:  # the harness lives in migrate.verify, apart from the rewriting code
        from migrate.verify.apply_verified import run as run_verified
        _run("apply", run_with=run_verified, **kwargs)
    _run("apply", **kwargs)


@cli.command(name="rules")
@click.argument("code", required=False)
def rules_command(code):
    """List the rules, or explain one (what it does, why, an example)."""
    if code:
        try:
            rule = rules_registry.rule_by_code(code)
        except rules_registry.UnknownRuleCode as exc:
            raise click.UsageError(str(exc))
        secondary = getattr(rule, "reported_codes", {})
        if code.upper() in secondary:
            click.echo(f"{code.upper()}: {secondary[code.upper()]} (reported by {rule.code})\n")
        click.echo(f"{rule.code} ({rule.name}): {rule.summary}\n")
        click.echo(rule.docs())
        for extra, meaning in secondary.items():
            click.echo(f"\nAlso reports {extra}: {meaning}.")
        return
    width = max(len(r.name) for r in rules_registry.ALL_RULES)
    for rule in rules_registry.ALL_RULES:
        click.echo(f"{rule.code}  {rule.name.ljust(width)}  {rule.summary}")




def main() -> None:
    cli(prog_name="tf-migrate")


if __name__ == "__main__":
    main()
