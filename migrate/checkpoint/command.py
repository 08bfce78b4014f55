"""`tf-migrate convert-checkpoint CKPT OLD NEW --out DIR`: carry a TF1 checkpoint over.

The parent process never imports TensorFlow. It plans the model pairs as `verify` does
(`migrate.verify.discover.plan`), then runs two workers: the TF1 side
(`migrate.checkpoint.tf1_worker`, legacy process) builds OLD's graph to learn its
variables, optimizers and model inputs, and with `--verify` restores CKPT into that graph
and runs it in inference mode; the TF2 side (`migrate.checkpoint.tf2_worker`, Keras 3)
builds NEW's models, maps every checkpoint variable and writes the TF2 checkpoint.

Exit codes: 0 converted (and verified), 1 `--verify` found a mismatch, 2 usage error or a
checkpoint variable that cannot be accounted for (nothing is written).
"""

import os
import subprocess
import sys
import tempfile

import click

from migrate.checkpoint import mapping
from migrate.checkpoint import report as json_report
from migrate.verify import compare, discover, protocol, runner

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


class CheckpointError(Exception):
    pass


def _run_worker(module, side, job, workdir, timeout):
    path = os.path.join(workdir, "%s.job.json" % module.rsplit(".", 1)[-1])
    protocol.save_json(path, job)
    log = os.path.join(workdir, "%s.log" % side)
    with open(log, "wb") as f:
        try:
            proc = subprocess.run([sys.executable, "-m", module, path], stdout=f, stderr=f,
                                  env=runner.side_env(side, "cpu"), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CheckpointError("the %s worker timed out after %ss" % (side, timeout))
    return proc.returncode, log


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix, a directory with a `checkpoint` file, or a file
    of the checkpoint (`.index`, `.data-*`, `.meta`)."""
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            with open(state) as f:
                for line in f:
                    if line.startswith("model_checkpoint_path:"):
                        p = line.split(":", 1)[1].strip().strip('"')
                        return p if os.path.isabs(p) else os.path.join(path, p)
        idx = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        if len(idx) == 1:
            return os.path.join(path, idx[0][: -len(".index")])
        raise CheckpointError("%s: no `checkpoint` file and %d .index files" % (path, len(idx)))
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    if ".data-" in os.path.basename(path):
        return path.rsplit(".data-", 1)[0]
    if os.path.isfile(path + ".index"):
        return path
    raise CheckpointError("%s is not a TF1 checkpoint (no %s.index)" % (path, path))


def convert(ckpt, old, new, out, model_name=None, optimizer=False, use_ema=False, fmt="tf",
            dry_run=False, verify=False, spec_path=None, timeout=600, workdir=None, echo=print,
            seed=0, batch_size=8):
    """Returns (exit code, result dict)."""
    ckpt = resolve_checkpoint(ckpt)
    if not (os.path.isfile(old) and os.path.isfile(new)):
        raise CheckpointError("OLD and NEW must be the old and migrated program files")
    spec = discover.load_spec(spec_path) if spec_path else None
    models, problems = discover.plan(old, new, spec)
    if problems:
        raise CheckpointError("; ".join(problems.values()))
    model = models[0]
    model["all_pairs"] = len(model["pairs"])
    if model_name:
        chosen = [p for p in model["pairs"] if model_name in (p["new"], p["old"])]
        if not chosen:
            raise CheckpointError("--model %s: NEW's model classes are %s"
                                  % (model_name, ", ".join(p["new"] for p in model["pairs"])))
        model["pairs"] = chosen
        model["selected"] = [p["new"] for p in chosen]
    # the TF1 side restores CKPT for --verify and to evaluate a step-dependent learning rate
    model["ckpt"] = ckpt if (verify or optimizer) else None
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="tfm_ckpt_")
    job1 = {"workdir": workdir, "models": [model], "seed": seed, "batch_size": batch_size,
            "use_ema": use_ema}
    rc, log = _run_worker("migrate.checkpoint.tf1_worker", "old", job1, workdir, timeout)
    tf1_json = os.path.join(workdir, "%s.tf1.json" % model["id"])
    if not os.path.isfile(tf1_json):
        raise CheckpointError("the TF1 worker failed (exit %s); see %s" % (rc, log))
    tf1 = protocol.load_json(tf1_json)
    if "error" in tf1:
        raise CheckpointError("TF1 side: %s" % tf1["error"])
    job2 = {"workdir": workdir, "model": model, "ckpt": ckpt, "out": out,
            "optimizer": optimizer, "use_ema": use_ema, "format": fmt, "dry_run": dry_run,
            "verify": verify}
    rc, log = _run_worker("migrate.checkpoint.tf2_worker", "new", job2, workdir, timeout)
    tf2_json = os.path.join(workdir, "%s.tf2.json" % model["id"])
    if not os.path.isfile(tf2_json):
        raise CheckpointError("the TF2 worker failed (exit %s); see %s" % (rc, log))
    res = protocol.load_json(tf2_json)
    if "fatal" in res:
        raise CheckpointError(res["fatal"])
    if dry_run or res["errors"]:
        echo(mapping.format_table(res["rows"]))
    counts = {}
    for r in res["rows"]:
        counts[r["action"]] = counts.get(r["action"], 0) + 1
    echo("%d checkpoint variables: %s" % (res["checkpoint_vars"], ", ".join(
        "%d %s" % (n, a) for a, n in sorted(counts.items()))))
    for note in res.get("notes", []):
        echo("note: " + note)
    if res["errors"]:
        for e in res["errors"]:
            echo("error: " + e)
        echo("FAIL: nothing written")
        return EXIT_ERROR, res
    if dry_run:
        echo("dry run: nothing written")
        return EXIT_OK, res
    if res.get("checkpoint"):
        echo("wrote %s (tf.train.Checkpoint: %s)" % (res["checkpoint"],
                                                     ", ".join(res["objects"])))
    for p in res.get("weights_h5", []):
        echo("wrote %s (model.load_weights)" % p)
    code = EXIT_OK
    if verify:
        code, res["verify"] = _compare(workdir, model, tf1, res.get("verified_formats", []),
                                       echo)
        rtol, arel = compare.DEFAULT_TOLERANCES["forward"]
        res["verify_tolerance"] = {"rtol": rtol, "arel": arel}
    if own and code == EXIT_OK:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return code, res


def _compare(workdir, model, tf1, formats, echo):
    old = protocol.load_arrays(os.path.join(workdir, "%s.tf1.npz" % model["id"]))
    new = protocol.load_arrays(os.path.join(workdir, "%s.tf2.npz" % model["id"]))
    rtol, arel = compare.DEFAULT_TOLERANCES["forward"]
    rows, ok = [], True
    for entry in tf1["forward"]:
        if entry["new"] not in [p["new"] for p in model["pairs"]]:
            continue
        for key, fmt in [(k, f) for f in formats for k in entry["outputs"]]:
            b = old[key]
            key = "%s/%s" % (fmt, key)
            if key not in new:
                ok = False
                rows.append((key, None, "FAIL (no output on the new side)"))
                continue
            a = new[key]
            if a.shape != b.shape:
                ok = False
                rows.append((key, None, "FAIL shape %s vs %s" % (a.shape, b.shape)))
                continue
            m = compare.metrics(a, b)
            good = compare.close(a, b, rtol, arel)
            ok = ok and good
            rows.append((key, m, "PASS" if good else "FAIL"))
    if not rows:
        ok = False
        echo("verify: no inference output to compare")
    for key, m, verdict in rows:
        if m is None:
            echo("verify %s: %s" % (key, verdict))
        else:
            echo("verify %s: max abs %.3g, norm rel %.3g, tolerance %.0e: %s"
                 % (key, m.get("max_abs", float("nan")), m.get("norm_rel", float("nan")),
                    rtol, verdict))
    echo(("PASS" if ok else "FAIL") + ": NEW restored from the converted checkpoint %s "
         "the TF1 graph restored from CKPT (inference mode)" % ("matches" if ok else
                                                                 "DOES NOT match"))
    return (EXIT_OK if ok else EXIT_MISMATCH), [{"key": k, "metrics": m, "verdict": v}
                                                 for k, m, v in rows]


@click.command("convert-checkpoint")
@click.argument("ckpt", type=click.Path(exists=False))
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), required=False,
              help="directory for the TF2 checkpoint (required unless --dry-run)")
@click.option("--model", "model_name", default=None,
              help="convert only this NEW class (or old function) of several")
@click.option("--optimizer", is_flag=True, help="convert optimizer state (slots, iterations)")
@click.option("--use-ema", is_flag=True,
              help="take ExponentialMovingAverage shadow values for the weights")
@click.option("--format", "fmt", type=click.Choice(["tf", "keras"]), default="tf",
              show_default=True, help="keras: also write <model>.weights.h5")
@click.option("--dry-run", is_flag=True, help="print the mapping table, write nothing")
@click.option("--verify", "do_verify", is_flag=True,
              help="prove it: NEW restored from the result vs the TF1 graph restored from CKPT")
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False),
              help="verify's spec file (pairs, input shapes, [model.weights] overrides)")
@click.option("--timeout", default=600, show_default=True, type=float,
              help="seconds per worker process")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, allow_dash=True),
              default=None, help="also write a JSON report to FILE (`-`: stdout, the text "
              "then goes to stderr): every checkpoint variable's fate, shapes, optimizer "
              "conversions, the --verify numbers")
def convert_checkpoint(ckpt, old, new, out, model_name, optimizer, use_ema, fmt, dry_run,
                       do_verify, spec_path, timeout, report_path):
    """Convert a TF1 tf.train.Saver checkpoint CKPT of OLD into a TF2 checkpoint of NEW's
    Keras model(s). Exit 0 done, 1 --verify mismatch, 2 error (nothing written)."""
    if not out and not dry_run:
        raise click.UsageError("--out DIR is required (or --dry-run)")
    to_stderr = report_path == "-"

    def echo(line):
        click.echo(line, err=to_stderr)

    res, error = None, None
    try:
        code, res = convert(ckpt, old, new, out, model_name=model_name, optimizer=optimizer,
                            use_ema=use_ema, fmt=fmt, dry_run=dry_run, verify=do_verify,
                            spec_path=spec_path, timeout=timeout, echo=echo)
    except (CheckpointError, discover.SpecError) as exc:
        click.echo("error: %s" % exc, err=True)
        code, error = EXIT_ERROR, str(exc)
    if report_path:
        options = {"model": model_name, "optimizer": optimizer, "use_ema": use_ema,
                   "format": fmt, "dry_run": dry_run, "verify": do_verify, "spec": spec_path}
        json_report.write(report_path, json_report.build(
            code, res, ckpt=ckpt, old=old, new=new, out=out, options=options, error=error))
    sys.exit(code)


def main(argv=None):
    convert_checkpoint.main(args=argv, prog_name="tf-migrate convert-checkpoint")
