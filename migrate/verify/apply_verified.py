"""`tf-migrate apply --verify`: migrate into a temporary tree, verify it against the
original, and write only the files whose models pass.

The rewriting itself is the ordinary apply run (migrate.runner), pointed at a temporary
mirror; verify compares that mirror with a copy of the original files. Then:

* a changed file whose model verifies (`pass` or `known-divergence`) is written, in place
  (atomically) or into the `--out` mirror;
* every other changed file is held back -- left byte for byte as it was (in the mirror:
  the original bytes) -- and reported with the reason: a numerical mismatch, a model that
  could not be verified, or no Keras model class at all (nothing verify can check).

Verify settings come from `[tool.tf-migrate.verify]` (steps, batch-size, rtol, atol,
device). Exit code: 2 on apply or verify errors, else 1 if a file was held back for a
mismatch (or apply left sites for manual work), else 3 if one was held back as
unverifiable, else 0 -- the precedence of `tf-migrate verify`.
"""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import click

from migrate import discovery, runner, writer
from migrate.verify import command as verify_command
from migrate.verify import discover, report
from migrate.verify.protocol import EXIT_MISMATCH, EXIT_PASS, EXIT_UNVERIFIABLE, EXIT_USAGE

PASSING = ("pass", "known-divergence")


@dataclasses.dataclass
class Decision:
    display: str  # the file as the apply report names it
    written: bool
    reason: str = ""
    kind: str = "pass"  # pass | mismatch | unverifiable


def run(config):
    """Run `apply --verify` for a RunConfig (command "apply"); return the exit code."""
    if any(p == "-" for p in config.paths):
        raise click.UsageError("--verify needs files or directories, not stdin")
    # `[tool.tf-migrate.verify]` of the configuration apply resolved (the table
    # config.verify_defaults returns), so --config/--isolated apply to it too
    settings = dict(getattr(config.project, "verify", None) or {})
    work = tempfile.mkdtemp(prefix="tfm-apply-verify-")
    try:
        old_root, new_root = os.path.join(work, "old"), os.path.join(work, "new")
        apply_code = runner.run(dataclasses.replace(config, out_dir=new_root))
        if apply_code == EXIT_USAGE:
            click.echo("[apply --verify] the migration had errors: nothing written", err=True)
            return EXIT_USAGE
        targets = [t for t in discovery.discover(config.paths, config.excludes, with_mirror=True)
                   if t.kind == discovery.PYTHON and t.dest is not None and not t.is_stdin]
        changed = []
        for t in targets:
            migrated = Path(new_root) / t.dest
            if migrated.is_file() and migrated.read_bytes() != t.path.read_bytes():
                changed.append(t)
            # verify pairs files by relative path: the old tree mirrors the new one
            (Path(old_root) / t.dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(t.path, Path(old_root) / t.dest)
        results = _verify(old_root, new_root, settings) if changed else []
        by_new = {os.path.realpath(r["new"]): r for r in results if r.get("new")}
        decisions = []
        for t in changed:
            res = by_new.get(os.path.realpath(os.path.join(new_root, str(t.dest))))
            decisions.append(_decide(t, res))
        _write(config, decisions, changed, new_root)
        _report(decisions)
        return _exit_code(apply_code, decisions, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verify(old_root, new_root, settings):
    # the workers import the migrated modules: keep __pycache__ out of the mirror
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        results, _, header = verify_command.run_verify(
            old_root, new_root, device=settings.get("device", "cpu"),
            steps=settings.get("steps"), batch_size=settings.get("batch_size"),
            rtol=settings.get("rtol"), atol=settings.get("atol"),
            log=lambda msg: click.echo("[verify] " + msg, err=True))
    except click.UsageError:  # no migrated file holds a model: nothing to verify
        return []
    except discover.SpecError as exc:
        raise click.UsageError(str(exc))
    results = report.sanitize(results)
    click.echo(report.render_text(results, header), err=True, nl=False)
    return results


def _decide(target, result):
    if result is None:
        return Decision(target.display, False, "no Keras model class in the migrated file: "
                        "nothing verify can check", "unverifiable")
    if result["status"] in PASSING:
        extra = (" (known divergence: %s)" % ", ".join(result["divergences"])
                 if result["divergences"] else "")
        return Decision(target.display, True, "verified%s" % extra)
    if result["status"] == "mismatch":
        return Decision(target.display, False, "verify found a mismatch: %s"
                        % result.get("reason", ""), "mismatch")
    return Decision(target.display, False, "could not be verified: %s"
                    % result.get("reason", ""), "unverifiable")


def _write(config, decisions, changed, new_root):
    passing = {d.display for d in decisions if d.written}
    if config.out_dir is None:
        for t in changed:
            if t.display in passing:
                writer.write_in_place(t.path, (Path(new_root) / t.dest).read_bytes())
        return
    # --out: the temporary mirror, held-back files restored to their original bytes
    for t in changed:
        if t.display not in passing:
            writer.copy_file(t.path, Path(new_root) / t.dest)
    shutil.copytree(new_root, config.out_dir, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))


def _report(decisions):
    """One line per changed file, on stderr beside verify's table (stdout keeps apply's
    own report, whatever its --format)."""
    written = [d for d in decisions if d.written]
    held = [d for d in decisions if not d.written]
    for d in written:
        click.echo("%s: written: %s" % (d.display, d.reason), err=True)
    for d in held:
        click.echo("%s: held back, left unchanged: %s" % (d.display, d.reason), err=True)
    click.echo("[apply --verify] %d file(s) written, %d held back" % (len(written), len(held)),
               err=True)


def _exit_code(apply_code, decisions, results):
    if apply_code == EXIT_USAGE or any(r.get("internal") for r in results):
        return EXIT_USAGE
    kinds = {d.kind for d in decisions if not d.written}
    if "mismatch" in kinds or apply_code == EXIT_MISMATCH:
        return EXIT_MISMATCH
    if "unverifiable" in kinds:
        return EXIT_UNVERIFIABLE
    return apply_code if apply_code else EXIT_PASS
