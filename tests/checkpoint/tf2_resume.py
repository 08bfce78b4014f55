"""Test driver (Keras 3 process): resume training of NEW from a converted checkpoint.

`python tests/checkpoint/tf2_resume.py JOB.json`; JOB: {"runs": [{"id", "new", "pairs",
"tf1_json", "tf1_npz", "checkpoint", "steps", "out"}]}. Builds NEW's models on the TF1
inference inputs, creates the optimizers with NEW's make_*optimizer(), restores
tf.train.Checkpoint(model(s), optimizer(s)) from the converted checkpoint, and runs NEW's
train steps on the data the TF1 resume used (parameters filled by name). Writes the losses,
once warm (restored optimizer state) and once cold (fresh optimizers, same weights); with
"reset_iterations" also warm but with `optimizer.iterations` set back to 0 (what a conversion
that dropped the step count would give), and each warm optimizer's iterations after the
steps ("iterations").
"""
import inspect
import json
import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from migrate.checkpoint import tf2_worker  # noqa: E402
from migrate.verify import protocol  # noqa: E402
from migrate.verify.new_worker import _import_new  # noqa: E402


def one(run, warm, reset_iterations=False, iterations_out=None):
    meta = protocol.load_json(run["tf1_json"])
    arrays = protocol.load_arrays(run["tf1_npz"])
    module = _import_new(run["new"], "%s_%s" % (run["id"], "warm" if warm else "cold"))
    models = tf2_worker.build_models(tf, keras, module, meta, arrays, run["pairs"], {})
    makers, chosen = tf2_worker._pair_makers(module, len(meta["train_ops"]))
    many = len(models) > 1
    objs = {tf2_worker._objects_key(n, many): m for n, m in models.items()}
    opts = {}
    for maker in chosen:
        if maker not in opts:
            opts[maker] = makers[maker]()
    ckpt_objs = dict(objs)
    if warm:
        for maker, opt in opts.items():
            ckpt_objs[maker[len("make_"):]] = opt
    tf.train.Checkpoint(**ckpt_objs).read(run["checkpoint"]).expect_partial()
    if reset_iterations:
        for opt in opts.values():
            # build first: Keras 3 restores optimizer variables when it builds them
            opt.build([v for m in models.values() for v in m.trainable_variables])
            opt.iterations.assign(0)
    steps = sorted([(n, f) for n, f in vars(module).items()
                    if tf2_worker.STEP_RE.match(n) and callable(f)],
                   key=lambda nf: tf2_worker._lineno(nf[1]))
    losses = []
    for step in range(run["steps"]):
        for i, (sname, fn) in enumerate(steps):
            prefix = "resume_data/%d/%d/" % (step, i)
            data = {k[len(prefix):].rsplit("/", 1)[-1]: v for k, v in arrays.items()
                    if k.startswith(prefix)}
            args = []
            params = inspect.signature(getattr(fn, "python_function", fn)).parameters
            for p in params:
                if p in objs:
                    args.append(objs[p])
                elif p == "model" and len(models) == 1:
                    args.append(next(iter(models.values())))
                elif "optimizer" in p:
                    args.append(opts[tf2_worker._maker_for(p, makers)])
                elif p in data:
                    args.append(data[p])
                else:
                    raise SystemExit("cannot fill parameter %r of %s (data: %s)"
                                     % (p, sname, sorted(data)))
            losses.append(float(fn(*args)))
    if iterations_out is not None:  # after the steps: the restore is deferred until build
        iterations_out.extend(int(opt.iterations.numpy()) for opt in opts.values())
    return losses


def main():
    job = json.load(open(sys.argv[1]))
    out = {}
    for run in job["runs"]:
        iterations = []
        out[run["id"]] = {"warm": one(run, True, iterations_out=iterations),
                          "cold": one(run, False), "iterations": iterations}
        if run.get("reset_iterations"):
            out[run["id"]]["reset_iterations"] = one(run, True, reset_iterations=True)
    json.dump(out, open(job["out"], "w"))


if __name__ == "__main__":
    main()
