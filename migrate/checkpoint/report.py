"""convert-checkpoint's machine-readable report (`--report FILE`, `-` for stdout).

One JSON document per run: every checkpoint variable with its fate (`mapped` to a Keras
weight or optimizer variable and its key in the written checkpoint, `skipped` with the
reason, `error`), its shape, the optimizer conversions (iterations and where they came from,
the learning-rate check), notes, errors, what was written and the `--verify` numbers.
Pure Python: the workers' results are all it needs.
"""

import json
import math

SCHEMA_VERSION = 1
FATES = {"weight": "mapped", "optimizer": "mapped", "weight*": "source", "skip": "skipped",
         "ERROR": "error"}
STATUS = {0: "converted", 1: "mismatch", 2: "error"}


def _finite(value):
    """JSON has no inf/nan: they become strings ("inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def variable_entry(row):
    entry = {
        "name": None if row["name"] == "-" else row["name"],
        "shape": row["shape"],
        "fate": FATES.get(row["action"], row["action"]),
        "action": row["action"],
    }
    if row["target"]:
        entry["target"] = row["target"]
    if row.get("checkpoint_key"):
        entry["checkpoint_key"] = row["checkpoint_key"]
    if row["how"]:
        entry["how"] = row["how"]
    if row["detail"]:
        entry["reason" if row["action"] in ("skip", "ERROR", "weight*") else "detail"] = \
            row["detail"]
    return entry


def build(code, res, *, ckpt, old, new, out, options, error=None):
    """The report of one run: `res` is the TF2 worker's result (None when the run failed
    before it), `code` the exit code."""
    res = res or {}
    variables = [variable_entry(r) for r in res.get("rows", [])]
    counts = {}
    for v in variables:
        counts[v["fate"]] = counts.get(v["fate"], 0) + 1
    status = STATUS.get(code, "error")
    if code == 0 and options.get("dry_run"):
        status = "dry-run"
    report = {
        "tool": "tf-migrate convert-checkpoint",
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "exit_code": code,
        "checkpoint": ckpt, "old": old, "new": new, "out": out,
        "options": options,
        "checkpoint_variables": res.get("checkpoint_vars"),
        "counts": counts,
        "variables": variables,
        "optimizers": res.get("optimizers", []),
        "notes": res.get("notes", []),
        "errors": list(res.get("errors", [])) + ([error] if error else []),
        "written": {"checkpoint": res.get("checkpoint"), "objects": res.get("objects", []),
                    "weights_h5": res.get("weights_h5", [])},
    }
    if "verify" in res:
        report["verify"] = {
            "passed": code == 0,
            "outputs": [{"key": r["key"], "verdict": r["verdict"],
                         **({k: r["metrics"].get(k) for k in ("max_abs", "norm_rel",
                                                              "max_rel")}
                            if r["metrics"] else {})}
                        for r in res["verify"]],
            "tolerance": res.get("verify_tolerance"),
        }
    return _finite(report)


def write(path, report):
    text = json.dumps(report, indent=1, sort_keys=False) + "\n"
    if path == "-":
        import sys
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(path, "w") as f:
        f.write(text)
