"""The `tf-migrate` command line. Thin: parse options, hand a RunConfig to the runner."""

from __future__ import annotations

import functools
import os
import sys

import click

from migrate import __version__
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
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="Report format.")
    @click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
                  show_default=True, help="Colour output (auto: only on a terminal, never with NO_COLOR).")
    @click.option("-q", "--quiet", is_flag=True, help="Do not print the summary line.")
    @click.option("--rules-module", "rule_modules", multiple=True, hidden=True,
                  help="Import extra rules from MODULE.RULES (for extensions and tests).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _run(command, paths, jobs, exclude, select, ignore, fmt, color, quiet, rule_modules,
         out_dir=None, options=None):
    stream = sys.stderr if command != "diff" else sys.stdout
    config = RunConfig(command=command, paths=paths, excludes=exclude,
                       select=_split_codes(select), ignore=_split_codes(ignore),
                       rule_modules=rule_modules, jobs=jobs or os.cpu_count() or 1,
                       out_dir=out_dir, fmt=fmt, color=_use_color(color, stream), quiet=quiet,
                       options=options or Options(rewrite=command != "check"))
    try:
        code = run(config)
    except rules_registry.UnknownRuleCode as exc:
        raise click.UsageError(str(exc))
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
def diff(**kwargs):
    """Show, as a unified diff, what `apply` would write; write nothing.

    Exit 0 when nothing would change, 1 when something would, 2 on errors.
    The diff goes to stdout, findings and the summary to stderr.
    """
    _run("diff", **kwargs)


@cli.command()
@common_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write a migrated mirror of the input into DIR instead of changing files in place.")
def apply(**kwargs):
    """Rewrite files in place, or into a mirror tree with --out DIR.

    Writes are atomic (temp file + rename). Exit 0 when every file was migrated
    or needed nothing, 1 when some sites were left for manual migration (each
    reported), 2 on errors.
    """
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
        click.echo(f"{rule.code} ({rule.name}): {rule.summary}\n")
        click.echo(rule.docs())
        return
    width = max(len(r.name) for r in rules_registry.ALL_RULES)
    for rule in rules_registry.ALL_RULES:
        click.echo(f"{rule.code}  {rule.name.ljust(width)}  {rule.summary}")


def _register_optional_commands() -> None:
    try:
        from migrate.verify.command import verify
    except ImportError:
        return
    cli.add_command(verify)


_register_optional_commands()


def main() -> None:
    cli(prog_name="tf-migrate")


if __name__ == "__main__":
    main()
