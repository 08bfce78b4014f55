"""Compare old and new results per tensor, recognise known divergences, render reports.

Statuses per model: `pass`, `known-divergence` (every difference is a named, proven
divergence), `mismatch` (an unexplained difference), `error` (could not be verified).
Known divergence ids (numerics.md §3):

* `fused-bn-bessel` (D1): the TF1 graph has `FusedBatchNorm*` ops; the moving variance
  matches after the analytic correction mv' = m^k mv0 + n/(n-1) (mv - m^k mv0), and the
  inference outputs match when the new side re-runs them with that corrected variance.
* `null-gradient-adam` (D5): parameters whose step-0 gradient is rounding noise under an
  Adam-family optimizer are frozen on both sides and left out of the weight comparison; within
  a tensor, at most 0.1 % of entries whose step-0 gradient the two sides disagree on by > 1 %
  (a cancelling sum) may drift, named, while every other entry must still match.
* `forgotten-update-ops` (D6): the old program never ran some BN updates; proven by the
  new program re-run with those BN layers at momentum=1.0, which must match everywhere.
* `bn-update-order`: one TF1 train op applied several updates of one moving statistic (a GAN
  discriminator called on real and fake data) in an order TF1 leaves unspecified and draws
  afresh per run; verify's old side applies them in program order, the order Keras uses,
  and the moving statistics must then match (named only when they do).
* `extra-update-ops`: a TF1 train op's UPDATE_OPS also ran the updates of a model call its
  loss does not use (the G step running the discriminator-on-real-data updates); Keras
  updates only what the train step calls. Proven by an old-side re-run with those updates
  neutralised (a zero delta fed), which must match the new program everywhere.
"""

import json
import math

import numpy as np

from migrate.verify import compare

DIVERGENCE_TEXT = {
    "fused-bn-bessel": "TF1 fused batch norm applies Bessel's correction n/(n-1) to the moving "
                       "variance, Keras 3 does not (numerics.md D1); proven by the analytic "
                       "correction",
    "null-gradient-adam": "parameters with a pure-noise gradient under Adam drift by O(lr) on "
                          "any two implementations (D5); frozen on both sides",
    "scoped-update-ops": "TF1 ran only one network's UPDATE_OPS per train step (GAN), Keras "
                         "updates every BN called with training=True; losses and weights "
                         "match; proven by a re-run that keeps the other network's moving "
                         "statistics per step",
    "forgotten-update-ops": "the TF1 program never ran these batch-norm updates (UPDATE_OPS not "
                            "wired into the train op, D6): a source bug the migration fixes; "
                            "proven by re-running the new program with those layers at "
                            "momentum=1.0",
    "bn-update-order": "TF1 applied several updates of one moving statistic in one train step "
                       "in an unspecified order, drawn afresh per run (a GAN discriminator "
                       "called on real and fake data); verify fixed them to program order, "
                       "the order Keras uses, and the statistics then match",
    "extra-update-ops": "a TF1 train step's UPDATE_OPS also ran the batch-norm updates of a "
                        "model call its loss does not use; Keras updates only the layers the "
                        "step calls; losses and weights match; proven by a TF1 re-run with "
                        "those updates neutralised, which matches everywhere",
}


def _tol(category, options, adam, steps):
    rtol, arel = compare.DEFAULT_TOLERANCES[category]
    if steps > 20 and category in ("loss", "weight", "moving", "after"):
        rtol, arel = compare.LONG_RUN_ADAM if adam else compare.LONG_RUN_SGD
    if options.get("rtol") is not None:
        rtol = float(options["rtol"])
    if options.get("atol") is not None:
        arel = float(options["atol"])
    return rtol, arel


class _Comparer(object):
    def __init__(self, old_meta, old, new_meta, new, options):
        self.old_meta, self.old, self.new_meta, self.new = old_meta, old, new_meta, new
        self.options = options
        self.steps = int(old_meta.get("steps", 20))
        self.adam = any(any(a in t["optimizer"] for a in ("Adam", "Nadam", "Adamax"))
                        for t in old_meta.get("train_ops", []))
        self.primary = new_meta.get("primary", "function")
        variants = [v["name"] for v in new_meta.get("variants", [])]
        self.other = next((v for v in variants if v in ("function", "eager")
                           and v != self.primary), None)
        self.eager = next((v["name"] for v in new_meta.get("variants", [])
                           if v.get("eager") and v["name"] in ("function", "eager")), None)

    def _noise_gradient_entries(self, row, om, name, category, variant):
        """D5 per entry: under Adam an entry whose step-0 gradient is rounding noise moves by
        O(lr) in a direction the noise picks, on any two implementations. When a few such
        entries are all that differ, name them (the rest of the tensor must still match)."""
        if not self.eager:
            return
        for t in om["train_ops"]:
            if name not in t["vars"] or not any(a in (t.get("optimizer") or "")
                                                for a in ("Adam", "Nadam", "Adamax")):
                continue
            key = "grad0/%d/%s" % (t["index"], name)
            old_grad, new_grad = self.old.get(key), self.new.get(self.eager + "/" + key)
            if old_grad is None or new_grad is None or np.shape(old_grad) != np.shape(row["_new"]):
                continue
            mask = _noise_gradient_mask(old_grad, new_grad)
            count = int(mask.sum())
            if not 0 < count <= max(1, NOISE_GRADIENT_SHARE * mask.size):
                continue
            ref = self.old["final/" + name]
            crow = self.row(row["tensor"], category, "final/" + name, "final/" + name, variant,
                            new_override=np.where(mask, ref, row["_new"]))
            if crow["status"] == "PASS":
                row["status"] = "KNOWN"
                row["divergence"] = "null-gradient-adam"
                row["note"] = ("%d of %d entries have a rounding-noise step-0 gradient (the sides "
                               "disagree on it by > 1 %%) and drift under Adam (D5); the others: "
                               "max abs %.2e, needed %.1e" % (count, mask.size, crow["max_abs"],
                                                              crow["needed"]))
                return

    def row(self, name, category, old_key, new_key, variant=None, ref_override=None,
            new_override=None, floor_key=None):
        variant = variant or self.primary
        ref = ref_override if ref_override is not None else self.old.get(old_key)
        a = new_override if new_override is not None else self.new.get(variant + "/" + new_key)
        rtol, arel = _tol(category, self.options, self.adam, self.steps)
        row = {"tensor": name, "category": category, "rtol": rtol, "arel": arel,
               "status": "FAIL", "divergence": None, "note": ""}
        if ref is None or a is None:
            row["note"] = "missing on the %s side" % ("old" if ref is None else "new")
            row["shape"] = list(np.shape(ref if ref is not None else a))
            return row
        row["shape"] = list(np.shape(ref))
        floor = None
        fkey = floor_key or new_key
        if self.other and variant in (self.primary,) and fkey:
            b = self.new.get(self.other + "/" + fkey)
            a_raw = self.new.get(variant + "/" + fkey)
            if b is not None and a_raw is not None:
                floor = compare.noise_floor(b, a_raw)
        row["floor"] = floor
        if floor is not None:
            arel = max(arel, compare.FLOOR_FACTOR * floor)
            row["arel"] = arel
        m = compare.metrics(a, ref)
        if m is None:
            row["note"] = "shape differs: old %s, new %s" % (list(np.shape(ref)),
                                                             list(np.shape(a)))
            return row
        row.update({k: m[k] for k in ("max_abs", "max_rel", "norm_rel", "needed")})
        if compare.close(a, ref, rtol, arel):
            row["status"] = "PASS"
        else:
            idx = compare.first_failure(a, ref, rtol, arel)
            if category == "loss" and idx is not None:
                row["note"] = "first differs at step %d (old %.7g, new %.7g)" % (
                    idx, float(np.ravel(ref)[idx]), float(np.ravel(a)[idx]))
            elif idx is not None and np.size(ref) > 1:
                pos = np.unravel_index(idx, np.shape(ref))
                row["note"] = "first differs at %s (old %.7g, new %.7g)" % (
                    list(int(p) for p in pos), float(np.ravel(ref)[idx]),
                    float(np.ravel(a)[idx]))
        row["_new"] = a
        row["_ref"] = ref
        return row

    def all_rows(self, variant=None):
        variant = variant or self.primary
        om, nm = self.old_meta, self.new_meta
        rows = []
        names = {t["index"]: t.get("step_name") or "train_op%d" % t["index"]
                 for t in om["train_ops"]}
        for i, n in enumerate(self.options.get("step_names") or []):
            names[i] = n
        inv = nm.get("inventory", {})
        mapped = set(inv.get("mapping", {}))
        for entry in om["forward"]:
            for mode in ("infer", "train"):
                m = entry["modes"].get(mode)
                if not m:
                    continue
                for j, key in enumerate(m.get("output_keys", [])):
                    rows.append(self.row("forward.%s/%s:%d" % (mode, entry["new"], j),
                                         "forward", key, key, variant))
        null = set()
        for t in om["train_ops"]:
            null.update(t.get("null_grad", []))
        if self.eager and variant == self.primary:
            for t in om["train_ops"]:
                for var in t["vars"]:
                    if var not in mapped or var in null:
                        continue
                    key = "grad0/%d/%s" % (t["index"], var)
                    if key in self.old:
                        rows.append(self.row("gradient/%s/%s" % (names[t["index"]], var),
                                             "gradient", key, key, self.eager))
        for t in om["train_ops"]:
            key = "loss/%d" % t["index"]
            rows.append(self.row("loss/%s" % names[t["index"]], "loss", key, key, variant))
        frozen = set(om.get("frozen", [])) | null
        fused = om.get("fused_bn") or {}
        for v in om["vars"]:
            name = v["name"]
            if name not in mapped or name in frozen:
                continue
            last = name.rsplit("/", 1)[-1]
            moving = last in ("moving_mean", "moving_variance")
            if not moving and not v["trainable"]:
                continue
            cat = "moving" if moving else "weight"
            row = self.row("%s/%s" % (cat, name), cat, "final/" + name, "final/" + name,
                           variant)
            if row["status"] == "FAIL" and not moving and "_new" in row:
                self._noise_gradient_entries(row, om, name, cat, variant)
            if (row["status"] == "FAIL" and last == "moving_variance" and name in fused
                    and "_new" in row):
                info = fused[name]
                k = om.get("bn_updates", {}).get(name, 0)
                mom = nm.get("momentum", {}).get(name)
                if info.get("n") and info["n"] > 1 and k and mom is not None:
                    corr = compare.bessel_corrected(row["_new"], self.old["init/" + name],
                                                    mom, k, info["n"])
                    crow = self.row(row["tensor"], cat, "final/" + name, "final/" + name,
                                    variant, new_override=corr)
                    if crow["status"] == "PASS":
                        row["status"] = "KNOWN"
                        row["divergence"] = "fused-bn-bessel"
                        row["note"] = ("after D1 correction (n=%d, k=%d, m=%g): max abs %.2e, "
                                       "needed %.1e" % (info["n"], k, mom, crow["max_abs"],
                                                        crow["needed"]))
            rows.append(row)
        for entry in om["forward"]:
            m = entry["modes"].get("infer")
            if not m:
                continue
            for j, key in enumerate(m.get("after_keys", [])):
                row = self.row("after.infer/%s:%d" % (entry["new"], j), "after", key,
                               "after/%s/%d" % (entry["old"], j), variant)
                bkey = "%s/after_bessel/%s/%d" % (variant, entry["old"], j)
                if row["status"] == "FAIL" and bkey in self.new:
                    crow = self.row(row["tensor"], "after", key, None, variant,
                                    new_override=self.new[bkey],
                                    floor_key="after/%s/%d" % (entry["old"], j))
                    if crow["status"] == "PASS":
                        row["status"] = "KNOWN"
                        row["divergence"] = "fused-bn-bessel"
                        row["note"] = ("with the D1-corrected moving variance: max abs %.2e, "
                                       "needed %.1e" % (crow["max_abs"], crow["needed"]))
                rows.append(row)
        return rows


NOISE_GRADIENT_RELATIVE = 1e-2  # step-0 gradient entries two correct sides disagree on by > 1 %
NOISE_GRADIENT_SHARE = 1e-3  # ... may be at most this share of a tensor's entries


def _noise_gradient_mask(old_grad, new_grad):
    """Entries whose step-0 gradient is rounding noise (a sum that cancels): the two sides
    disagree on it by more than 1 % while the tensor as a whole agrees."""
    diff = np.abs(np.asarray(old_grad, dtype=np.float64) - np.asarray(new_grad, dtype=np.float64))
    return diff > NOISE_GRADIENT_RELATIVE * np.abs(np.asarray(old_grad, dtype=np.float64))


def _inventory_rows(new_meta):
    inv = new_meta.get("inventory")
    if not inv:
        return []
    rows = []
    new = inv.get("new_kind", "Keras weight")  # "new variable": hand-made tf.Variable weights
    side = "Keras" if new == "Keras weight" else "new"
    for name in inv.get("unmapped_tf1", []):
        rows.append({"tensor": "inventory/%s" % name, "category": "inventory",
                     "status": "FAIL", "shape": None,
                     "note": "TF1 variable %s has no %s counterpart" % (name, side)})
    for path in inv.get("unmapped_keras", []):
        rows.append({"tensor": "inventory/%s" % path, "category": "inventory",
                     "status": "FAIL", "shape": None,
                     "note": "%s %s has no TF1 counterpart" % (new, path)})
    for tf1, kp, s1, s2 in inv.get("shape_mismatch", []):
        rows.append({"tensor": "inventory/%s" % tf1, "category": "inventory",
                     "status": "FAIL", "shape": s1,
                     "note": "TF1 %s %s vs %s %s %s" % (tf1, s1, side, kp, s2)})
    how = inv.get("how", {})
    counts = {}
    for h in how.values():
        counts[h] = counts.get(h, 0) + 1
    rows.insert(0, {"tensor": "inventory", "category": "inventory",
                    "status": "PASS" if not rows else "FAIL", "shape": None,
                    "note": "%d TF1 variables, %d %ss, mapped: %s" % (
                        inv.get("tf1", 0), inv.get("keras", 0), new,
                        ", ".join("%d by %s" % (n, h) for h, n in sorted(counts.items()))
                        or "none")})
    return rows


def compare_model(model_id, old_meta, old, new_meta, new, options):
    """Return the JSON-ready result of one model."""
    result = {"model": model_id, "old": options.get("old_path"), "new": options.get("new_path"),
              "status": "error", "divergences": [], "tensors": [], "notes": []}
    for side, meta in (("old", old_meta), ("new", new_meta)):
        if meta is None:
            result["reason"] = "%s side produced no result" % side
            return result
        if meta.get("error"):
            result["reason"] = meta["error"]
            result["internal"] = bool(meta.get("internal"))
            return result
    step_names = new_meta.get("step_names")
    cmp_ = _Comparer(old_meta, old, new_meta, new, dict(options, step_names=step_names))
    rows = _inventory_rows(new_meta) + cmp_.all_rows()
    divergences = []
    if old_meta.get("frozen"):
        divergences.append("null-gradient-adam")
        result["notes"].append("null-gradient parameters frozen on both sides (D5): %s"
                               % ", ".join(old_meta["frozen"]))
    null = sorted({n for t in old_meta.get("train_ops", []) for n in t.get("null_grad", [])}
                  - set(old_meta.get("frozen", [])))
    if null:
        result["notes"].append(
            "null-gradient parameters (step-0 gradient is rounding noise, D5) left out of the "
            "gradient and weight comparison: %s" % ", ".join(null))
    result["notes"].extend(old_meta.get("notes", []) + new_meta.get("notes", []))
    synthetic = [t["synthetic"] for t in old_meta.get("train_ops", []) if t.get("synthetic")]
    if synthetic:
        result["synthetic_loss"] = synthetic
    if old_meta.get("dropout_disabled") or new_meta.get("dropout_disabled"):
        result["notes"].append(
            "dropout disabled (rate 0) on both sides for every comparison: randomness cannot "
            "be matched across TF1 and Keras 3 (old side: %d site(s), new side: %d call(s))"
            % (old_meta.get("dropout_disabled", 0), new_meta.get("dropout_disabled", 0)))
    if old_meta.get("random_disabled") or new_meta.get("random_disabled"):
        result["notes"].append(
            "random ops of the program (tf.random_uniform/normal, truncated_normal: a WGAN-GP "
            "interpolation weight, noise drawn in the graph) draw a fixed stateless sample keyed "
            "by their arguments on both sides for every comparison: TF1's and TF2's draws cannot "
            "be matched (old side: %d op(s), new side: %d call(s))"
            % (old_meta.get("random_disabled", 0), new_meta.get("random_disabled", 0)))
    never = old_meta.get("never_updated") or []
    if never:
        scopes = sorted({n.rsplit("/", 1)[0] for n in never})
        cand = [r for r in rows if r["status"] == "FAIL" and (
            r["category"] == "after" or (r["category"] == "moving"
                                         and r["tensor"].split("/", 1)[1] in never))]
        proof_rows = cmp_.all_rows("momentum1") if any(
            v["name"] == "momentum1" for v in new_meta.get("variants", [])) else []
        bad = [r for r in proof_rows if r["status"] == "FAIL"]
        if cand and proof_rows and not bad:
            worst = max([r["norm_rel"] for r in proof_rows if r["status"] == "PASS"
                         and isinstance(r.get("norm_rel"), float)] or [0.0])
            for r in cand:
                r["status"] = "KNOWN"
                r["divergence"] = "forgotten-update-ops"
                r["note"] = "moving statistics of %s never updated in TF1" % ", ".join(scopes)
            result["notes"].append(
                "forgotten-update-ops proven: new program re-run with %s at momentum=1.0 "
                "matches on all %d tensors (worst norm rel %.1e)"
                % (", ".join(scopes), len(proof_rows), worst))
            result.setdefault("proof", {})["forgotten-update-ops"] = {
                "layers": scopes, "tensors": len(proof_rows), "worst_norm_rel": worst}
        elif cand and bad:
            result["notes"].append(
                "the old program never updated %s, but the momentum=1.0 re-run still differs "
                "(%s): not explained by forgotten UPDATE_OPS"
                % (", ".join(scopes), ", ".join(r["tensor"] for r in bad[:5])))
    partial = old_meta.get("partial_updates") or []
    if partial:
        cand = [r for r in rows if r["status"] == "FAIL" and r["category"] in ("moving", "after")]
        proof_rows = cmp_.all_rows("scoped") if any(
            v["name"] == "scoped" for v in new_meta.get("variants", [])) else []
        bad = [r for r in proof_rows if r["status"] == "FAIL"]
        scopes = sorted({n.rsplit("/", 1)[0] for n in partial})
        if cand and proof_rows and not bad:
            worst = max([r["norm_rel"] for r in proof_rows if r["status"] == "PASS"
                         and isinstance(r.get("norm_rel"), float)] or [0.0])
            for r in cand:
                r["status"] = "KNOWN"
                r["divergence"] = "scoped-update-ops"
                r["note"] = ("TF1 updated %s only in some train steps; Keras updates every BN "
                             "called with training=True" % ", ".join(scopes))
            result["notes"].append(
                "scoped-update-ops proven: new program re-run keeping each step's other "
                "moving statistics as TF1 did matches on all %d tensors (worst norm rel %.1e)"
                % (len(proof_rows), worst))
            result.setdefault("proof", {})["scoped-update-ops"] = {
                "layers": scopes, "tensors": len(proof_rows), "worst_norm_rel": worst}
        elif cand and bad:
            result["notes"].append(
                "TF1 updated %s only in some train steps, but the scoped re-run still differs "
                "(%s)" % (", ".join(scopes), ", ".join(r["tensor"] for r in bad[:5])))
    _extra_update_ops(result, rows, cmp_, old_meta, old, new_meta, new,
                      dict(options, step_names=step_names))
    for r in rows:
        if r.get("divergence") and r["status"] == "KNOWN" and r["divergence"] not in divergences:
            divergences.append(r["divergence"])
    if _update_order(result, rows, old_meta) and "bn-update-order" not in divergences:
        divergences.append("bn-update-order")
    for r in rows:
        r.pop("_new", None)
        r.pop("_ref", None)
    failing = [r for r in rows if r["status"] == "FAIL"]
    result["tensors"] = rows
    result["divergences"] = divergences
    floors = [r.get("floor") for r in rows if r.get("floor") is not None]
    result["noise_floor"] = max(floors) if floors else None
    if failing:
        result["status"] = "mismatch"
        result["reason"] = "%d tensor(s) differ: %s" % (
            len(failing), "; ".join("%s (%s)" % (r["tensor"], r["note"] or "max abs %.3g, "
                                                 "needed tol %.1e" % (r.get("max_abs", 0),
                                                                      r.get("needed", 0)))
                                    for r in failing[:6]))
    elif divergences:
        result["status"] = "known-divergence"
    else:
        result["status"] = "pass"
    result["timing"] = {"old_s": old_meta.get("timing_s"), "new_s": new_meta.get("timing_s")}
    result["loss_curves"] = _loss_curves(old_meta, old, new, cmp_)
    return result


def _extra_update_ops(result, rows, cmp_, old_meta, old, new_meta, new, options):
    """`extra-update-ops`: the old side's re-run with the updates of calls a train op's loss
    does not use neutralised (`noextra/` arrays) must match the new program on every tensor;
    then the moving statistics and inference outputs that differ from the plain TF1 run are
    named."""
    extra = {k: v for k, v in (old_meta.get("extra_updates") or {}).items() if v}
    if not extra or not old_meta.get("noextra"):
        return
    cand = [r for r in rows if r["status"] == "FAIL" and r["category"] in ("moving", "after")]
    if not cand:
        return
    rerun = dict(old)
    rerun.update({k[len("noextra/"):]: v for k, v in old.items() if k.startswith("noextra/")})
    proof_rows = _Comparer(old_meta, rerun, new_meta, new, options).all_rows()
    bad = [r for r in proof_rows if r["status"] == "FAIL"]
    names = dict(enumerate(options.get("step_names") or []))
    steps = ", ".join("%s (%s)" % (names.get(int(i), "train_op%s" % i),
                                   ", ".join(sorted({v.rsplit("/", 1)[0] for v in variables})))
                      for i, variables in sorted(extra.items()))
    if bad:
        result["notes"].append(
            "TF1 also ran update ops its loss does not use in %s, but the re-run without them "
            "still differs (%s)" % (steps, ", ".join(r["tensor"] for r in bad[:5])))
        return
    worst = max([r["norm_rel"] for r in proof_rows if r["status"] == "PASS"
                 and isinstance(r.get("norm_rel"), float)] or [0.0])
    for r in cand:
        r["status"] = "KNOWN"
        r["divergence"] = "extra-update-ops"
        r["note"] = "TF1 also updated it from a call the loss does not use in %s" % steps
    result["notes"].append(
        "extra-update-ops proven: TF1 re-run with the update ops its losses do not use "
        "neutralised (%s) matches the new program on all %d tensors (worst norm rel %.1e)"
        % (steps, len(proof_rows), worst))
    result.setdefault("proof", {})["extra-update-ops"] = {
        "train_ops": {names.get(int(i), "train_op%s" % i): v for i, v in sorted(extra.items())},
        "tensors": len(proof_rows), "worst_norm_rel": worst}


def _update_order(result, rows, old_meta):
    """`bn-update-order`: named when the moving statistics whose several updates per train op
    verify applied in program order all match (plainly or as another named divergence)."""
    order = old_meta.get("update_order") or {}
    affected = [r for r in rows if r["category"] == "moving"
                and r["tensor"].split("/", 1)[1] in order]
    if not affected or any(r["status"] == "FAIL" for r in affected):
        return False
    for r in affected:
        count = len(order[r["tensor"].split("/", 1)[1]]["updates"])
        if r["status"] == "PASS":
            r["status"] = "KNOWN"
            r["divergence"] = "bn-update-order"
            r["note"] = ("TF1 applied its %d updates per train step in no fixed order; run in "
                         "program order: max abs %.2e, needed %.1e"
                         % (count, r.get("max_abs", 0.0), r.get("needed", 0.0)))
        else:
            r["note"] = (r.get("note") or "") + ("; its %d updates per train step run in "
                                                 "program order (bn-update-order)" % count)
    result.setdefault("proof", {})["bn-update-order"] = {
        name: {"updates": entry["updates"], "train_ops": entry["train_ops"]}
        for name, entry in sorted(order.items())}
    return True


def _loss_curves(old_meta, old, new, cmp_):
    """Per train op the old and new loss of each step (for --plot and the JSON report)."""
    names = dict(enumerate(cmp_.options.get("step_names") or []))
    curves = []
    for t in old_meta.get("train_ops", []):
        key = "loss/%d" % t["index"]
        ref, got = old.get(key), new.get(cmp_.primary + "/" + key)
        if ref is None or got is None:
            continue
        curves.append({"train_op": names.get(t["index"], "train_op%d" % t["index"]),
                       "old": [float(x) for x in np.ravel(ref)],
                       "new": [float(x) for x in np.ravel(got)]})
    return curves


def _fmt(x, spec="%.2e"):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return spec % x


def render_text(results, header_lines=()):
    out = list(header_lines)
    for res in results:
        out.append("")
        out.append("[verify] %s   old: %s   new: %s" % (res["model"], res.get("old"),
                                                      res.get("new")))
        if res["status"] == "error":
            out.append("[verify] %s: ERROR could not verify: %s" % (res["model"],
                                                                   res.get("reason")))
            continue
        out.append("  %-44s %-14s %9s %9s %9s %9s %9s  %s" % (
            "tensor", "shape", "max abs", "max rel", "norm rel", "tol", "needed", "result"))
        for r in res["tensors"]:
            shape = "-" if r.get("shape") is None else "x".join(str(d) for d in r["shape"]) or "()"
            tol = "-" if "arel" not in r else "%.0e" % max(r["arel"], r["rtol"])
            status = r["status"]
            if status == "KNOWN":
                status = "KNOWN %s" % r["divergence"]
            line = "  %-44s %-14s %9s %9s %9s %9s %9s  %s" % (
                r["tensor"][:44], shape[:14], _fmt(r.get("max_abs")), _fmt(r.get("max_rel")),
                _fmt(r.get("norm_rel")), tol, _fmt(r.get("needed"), "%.1e"), status)
            if r.get("note") and r["status"] != "PASS":
                line += "  " + r["note"]
            elif r["category"] == "inventory" and r.get("note"):
                line += "  " + r["note"]
            out.append(line)
        for note in res.get("notes", []):
            out.append("  note: " + note)
        if res.get("noise_floor") is not None:
            out.append("  new-side noise floor (eager vs tf.function, worst norm rel): %.1e"
                       % res["noise_floor"])
        if res["status"] == "pass":
            out.append("[verify] %s: PASS" % res["model"])
        elif res["status"] == "known-divergence":
            out.append("[verify] %s: PASS (known divergence: %s)" % (
                res["model"], ", ".join(res["divergences"])))
            for d in res["divergences"]:
                out.append("  %s: %s" % (d, DIVERGENCE_TEXT.get(d, "")))
        else:
            out.append("[verify] %s: FAIL %s" % (res["model"], res.get("reason", "")))
    return "\n".join(out) + "\n"


def render_json(results, extra=None):
    doc = {"tool": "tf-migrate verify", "models": results}
    doc.update(extra or {})
    return json.dumps(doc, indent=1, default=_default, allow_nan=False) + "\n"


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def sanitize(obj):
    """Replace inf/nan floats by strings so that the JSON stays valid."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    return obj
