"""`tf-migrate verify OLD NEW`: prove numerically that NEW computes what OLD did.

The click command object is `verify`; the CLI registers it with
`cli.add_command(verify)`. Exit codes: 0 every model passes (named, proven known
divergences included), 1 an unexplained mismatch, 2 usage or internal error,
3 a model could not be verified (the report names it and says why). When both a
mismatch and an unverifiable model occur, 1 wins.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time

import click

from migrate.verify import discover, protocol, report, runner
from migrate.verify.protocol import (EXIT_MISMATCH, EXIT_PASS, EXIT_UNVERIFIABLE,
                                     EXIT_USAGE)

DEFAULT_STEPS = 20
DEFAULT_BATCH = 8
DEFAULT_TIMEOUT = 300.0
GOLDEN_FORMAT = "tf-migrate-verify-golden/1"


def gpu_present():
    """Best effort, without importing TensorFlow in this process."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("-1", ""):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl")) or bool(
        shutil.which("nvidia-smi") and os.path.exists("/proc/driver/nvidia/version"))


def _sha(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_golden(path, workdir, models, job):
    sources = {m["id"]: _sha(m["old"]) for m in models}
    arrays = {"__golden__": np_str(json.dumps({"format": GOLDEN_FORMAT, "job": job,
                                               "old_sha256": sources}))}
    for m in models:
        mj, mn = protocol.side_paths(workdir, m["id"], "old")
        if not os.path.exists(mj):
            continue
        arrays["%s::meta" % m["id"]] = np_str(json.dumps(protocol.load_json(mj)))
        if os.path.exists(mn):
            for k, v in protocol.load_arrays(mn).items():
                arrays["%s::arr::%s" % (m["id"], k)] = v
    protocol.save_arrays(path, arrays)


def np_str(text):
    import numpy as np
    return np.array(text)


def load_golden(path, workdir, models):
    try:
        data = protocol.load_arrays(path)
    except Exception as exc:
        raise click.UsageError("cannot read golden file %s: %s" % (path, exc))
    if "__golden__" not in data:
        raise click.UsageError("%s is not a verify golden file (made by --save-golden)" % path)
    head = json.loads(str(data["__golden__"]))
    shas = head.get("old_sha256", {})
    missing = []
    for m in models:
        sha = _sha(m["old"])
        gid = m["id"] if shas.get(m["id"]) == sha else None
        if gid is None:
            same = [k for k, v in shas.items() if v == sha]
            gid = same[0] if len(same) == 1 else None
        key = "%s::meta" % gid
        if gid is None or key not in data:
            missing.append(m["id"])
            continue
        mj, mn = protocol.side_paths(workdir, m["id"], "old")
        protocol.save_json(mj, json.loads(str(data[key])))
        prefix = "%s::arr::" % gid
        protocol.save_arrays(mn, {k[len(prefix):]: v for k, v in data.items()
                                  if k.startswith(prefix)})
    return head.get("job", {}), missing


def run_verify(old, new, spec_path=None, device="cpu", steps=None, batch_size=None,
               rtol=None, atol=None, timeout=None, golden=None, save_golden_path=None,
               seed=None, keep_workdir=False, log=None):
    """Run verify; return (results, exit code, header lines)."""
    log = log or (lambda msg: None)
    spec = discover.load_spec(spec_path) if spec_path else {"model": []}
    defaults = spec.get("defaults", {})
    steps = int(steps if steps is not None else defaults.get("steps", DEFAULT_STEPS))
    batch_size = int(batch_size if batch_size is not None
                     else defaults.get("batch_size", DEFAULT_BATCH))
    seed = int(seed if seed is not None else defaults.get("seed", 0))
    timeout = float(timeout if timeout is not None else defaults.get("timeout", DEFAULT_TIMEOUT))
    if steps < 1 or batch_size < 1:
        raise click.UsageError("--steps and --batch-size must be positive")
    models, problems = discover.plan(old, new, spec)
    header = []
    if not models:
        raise click.UsageError("nothing to verify: no new file with a keras.Model subclass and "
                               "an old counterpart under %s / %s" % (old, new))
    devices = ["cpu"]
    if device in ("gpu", "all"):
        if gpu_present():
            devices = ["gpu"] if device == "gpu" else ["cpu", "gpu"]
        else:
            header.append("[verify] --device %s: no GPU exists on this machine; ran on CPU only"
                          % device)
    workdir = tempfile.mkdtemp(prefix="tfm-verify-")
    results = []
    try:
        for dev in devices:
            job = {"steps": steps, "batch_size": batch_size, "seed": seed, "device": dev}
            runnable = [dict(m) for m in models if m["id"] not in problems]
            devdir = os.path.join(workdir, dev)
            os.makedirs(devdir)
            t0 = time.time()
            if golden:
                gjob, missing = load_golden(golden, devdir, runnable)
                for key in ("steps", "batch_size", "seed"):
                    if key in gjob and gjob[key] != job[key]:
                        header.append("[verify] golden file was recorded with %s=%s: using it"
                                      % (key.replace("_", "-"), gjob[key]))
                        job[key] = gjob[key]
                for mid in missing:
                    problems[mid] = ("golden file %s has no record of this old program "
                                     "(recorded from a different or changed file)" % golden)
                runnable = [m for m in runnable if m["id"] not in missing]
            if golden:
                t_old, t_new = _run_new_after_golden(runnable, job, devdir, timeout, dev,
                                                     t0, log)
            else:
                t_old, t_new = _run_pipelined(runnable, job, devdir, timeout, dev, log)
                if save_golden_path and dev == devices[0]:
                    save_golden(save_golden_path, devdir, runnable, job)
            for m in models:
                name = m["id"] if dev == "cpu" else "%s[%s]" % (m["id"], dev)
                if m["id"] in problems:
                    results.append({"model": name, "old": m["old"], "new": m["new"],
                                    "status": "error", "reason": problems[m["id"]],
                                    "divergences": [], "tensors": []})
                    continue
                metas, arrays = {}, {}
                for side in ("old", "new"):
                    mj, mn = protocol.side_paths(devdir, m["id"], side)
                    metas[side] = protocol.load_json(mj) if os.path.exists(mj) else None
                    arrays[side] = (protocol.load_arrays(mn) if os.path.exists(mn)
                                    and metas[side] and not metas[side].get("error") else {})
                if metas["old"] and metas["old"].get("error"):
                    metas["new"] = metas["new"] or {}
                res = report.compare_model(
                    name, metas["old"], arrays["old"], metas["new"], arrays["new"],
                    {"rtol": rtol, "atol": atol, "old_path": m["old"], "new_path": m["new"]})
                res["device"] = dev
                if m.get("unpaired"):
                    res.setdefault("notes", []).append(
                        "new Model subclass(es) without an old counterpart, verified only as "
                        "parts of the paired models: %s" % ", ".join(m["unpaired"]))
                results.append(res)
            header.append("[verify] %s: %d model(s), steps=%d, batch size=%d; old side %.1f s%s, "
                          "new side %.1f s" % (dev, len(models), job["steps"], job["batch_size"],
                                               t_old, " (golden)" if golden else "", t_new))
    finally:
        if keep_workdir:
            header.append("[verify] work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results, exit_code(results), header


def _run_new_after_golden(runnable, job, devdir, timeout, dev, t0, log):
    """--golden: the old results are on disk already; run the new side on those."""
    t_old = time.time() - t0
    todo = []
    for m in runnable:
        mj, mn = protocol.side_paths(devdir, m["id"], "old")
        meta = protocol.load_json(mj) if os.path.exists(mj) else None
        if meta and not meta.get("error"):
            m["old_result"] = [mj, mn]
            todo.append(m)
    t1 = time.time()
    if todo:
        log("new side: %d model(s)" % len(todo))
        runner.run_side("new", todo, job, devdir, timeout, dev)
    return t_old, time.time() - t1


def _run_pipelined(runnable, job, devdir, timeout, dev, log):
    """Both sides at once: the new worker (started first, its TensorFlow import overlaps
    the old side's) takes each model as soon as the old side has written its result, so
    a run costs about the slower side per model, not the sum. Returns (old s, new s)."""
    if not runnable:
        return 0.0, 0.0
    t0 = time.time()
    prestarted = runner.prestart_new(devdir, dev)
    for m in runnable:
        m["old_result"] = list(protocol.side_paths(devdir, m["id"], "old"))
    old_done = {}

    def old_side():
        try:
            runner.run_side("old", runnable, job, devdir, timeout, dev)
        except BaseException as exc:  # our bug or Ctrl-C: let the new side finish, re-raise
            old_done["error"] = exc
            for m in runnable:
                mj, _ = protocol.side_paths(devdir, m["id"], "old")
                if not os.path.exists(mj):
                    protocol.save_json(mj, {"id": m["id"], "side": "old", "internal": True,
                                            "error": "old side stopped: %s" % (exc,)})
        old_done["s"] = time.time() - t0

    log("old side: %d model(s); new side follows model by model" % len(runnable))
    thread = threading.Thread(target=old_side, name="verify-old-side", daemon=True)
    thread.start()
    try:
        runner.run_side("new", runnable, dict(job, pipelined=True), devdir, timeout, dev,
                        prestarted=prestarted)
    except BaseException:
        runner.kill_all()
        raise
    thread.join()
    if "error" in old_done:
        raise old_done["error"]
    return old_done["s"], time.time() - t0


def exit_code(results):
    if any(r.get("internal") for r in results):
        return EXIT_USAGE
    if any(r["status"] == "mismatch" for r in results):
        return EXIT_MISMATCH
    if any(r["status"] == "error" for r in results):
        return EXIT_UNVERIFIABLE
    return EXIT_PASS


def _plot(path, results):
    from migrate.verify.plot import write_plot
    return write_plot(path, results)


@click.command("verify")
@click.argument("old", type=click.Path(exists=True))
@click.argument("new", type=click.Path(exists=True))
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file supplying or overriding entry points, inputs and pairing.")
@click.option("--device", type=click.Choice(["cpu", "gpu", "all"]), default="cpu",
              show_default=True, help="Where both sides run.")
@click.option("--steps", type=int, default=None, help="Training steps (default 20).")
@click.option("--batch-size", type=int, default=None, help="Batch size for None dims (default 8).")
@click.option("--rtol", type=float, default=None, help="Override every relative tolerance.")
@click.option("--atol", type=float, default=None,
              help="Override every absolute tolerance (scaled by max|ref|, numerics.md §2).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write the report here (JSON if the name ends in .json, else text).")
@click.option("--save-golden", "save_golden_path", type=click.Path(dir_okay=False),
              help="Record the old side's results (npz) for later --golden runs.")
@click.option("--golden", type=click.Path(exists=True, dir_okay=False),
              help="Compare against recorded old-side results instead of running TF1.")
@click.option("--timeout", type=float, default=None,
              help="Seconds per model and side before the program is stopped (default 300).")
@click.option("--seed", type=int, default=None, help="Seed of the generated inputs (default 0).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Old vs new loss curves and per-tensor error bars as PNG (needs "
                   "matplotlib; skipped with a message without it).")
@click.option("--keep-workdir", is_flag=True, hidden=True)
@click.pass_context
def verify(ctx, old, new, spec_path, device, steps, batch_size, rtol, atol, fmt, report_path,
           save_golden_path, golden, timeout, seed, plot_path, keep_workdir):
    """Prove numerically that NEW (TF2) computes what OLD (TF1) did.

    OLD and NEW are files, or directories (a tree and its migrated mirror)."""
    if golden and save_golden_path:
        raise click.UsageError("--golden and --save-golden exclude each other")
    try:
        results, code, header = run_verify(
            old, new, spec_path=spec_path, device=device, steps=steps, batch_size=batch_size,
            rtol=rtol, atol=atol, timeout=timeout, golden=golden,
            save_golden_path=save_golden_path, seed=seed, keep_workdir=keep_workdir,
            log=lambda msg: click.echo("[verify] " + msg, err=True))
    except discover.SpecError as exc:
        raise click.UsageError(str(exc))
    except click.UsageError:
        raise
    except Exception as exc:  # our bug: exit 2 with the cause
        import traceback
        click.echo("[verify] internal error: %s: %s" % (type(exc).__name__, exc), err=True)
        click.echo(traceback.format_exc(), err=True)
        ctx.exit(EXIT_USAGE)
        return
    results = report.sanitize(results)
    extra = {"exit_code": code, "header": header}
    text = report.render_text(results, header)
    js = report.render_json(results, extra)
    click.echo(js if fmt == "json" else text, nl=False)
    if report_path:
        with open(report_path, "w") as f:
            f.write(js if report_path.endswith(".json") else text)
    if plot_path:
        msg = _plot(plot_path, results)
        if msg:
            click.echo("[verify] " + msg, err=True)
    ctx.exit(code)


def main(argv=None):
    verify.main(args=argv, prog_name="python -m migrate.verify")


if __name__ == "__main__":
    main(sys.argv[1:])
