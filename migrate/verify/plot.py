"""`tf-migrate verify --plot FILE.png`: old vs new loss curves and per-tensor error bars.

One row per verified model: on the left the loss of every training step, old (TF1) and
new (Keras 3) on the same axes; on the right, per compared tensor, the tolerance that
would have been needed (log scale) beside the tolerance used -- passing tensors green,
known divergences amber, failures red. matplotlib is optional (`pip install
'tf-migrate[verify]'`); without it the report says the plot was skipped.
"""

COLOURS = {"PASS": "#2e7d32", "KNOWN": "#f9a825", "FAIL": "#c62828"}
MAX_TENSORS = 60  # per model; the worst ones are kept when there are more


def write_plot(path, results):
    """Write the PNG; return None, or a message saying why nothing was written."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed, also on CI machines
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot skipped: matplotlib is not installed (pip install 'tf-migrate[verify]')"
    models = [r for r in results if r.get("status") != "error"]
    if not models:
        return "--plot skipped: no model was verified"
    heights = [max(3.0, 0.16 * min(len(_tensors(r)), MAX_TENSORS) + 1.0) for r in models]
    fig, axes = plt.subplots(len(models), 2, figsize=(13, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights, "width_ratios": [1, 1.4]})
    for row, result in zip(axes, models):
        _loss_panel(row[0], result)
        _error_panel(row[1], result)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _tensors(result):
    return [t for t in result.get("tensors", []) if isinstance(t.get("needed"), float)]


def _loss_panel(ax, result):
    curves = result.get("loss_curves") or []
    for i, curve in enumerate(curves):
        steps = range(len(curve["old"]))
        ax.plot(steps, curve["old"], "-", color="C%d" % i, lw=2, alpha=0.55,
                label="%s old (TF1)" % curve["train_op"])
        ax.plot(steps, curve["new"], "--", color="C%d" % i, lw=1.2, marker=".",
                label="%s new (Keras 3)" % curve["train_op"])
    ax.set_title("%s: loss per step (%s)" % (result["model"], result["status"]), fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if curves:
        ax.legend(fontsize=7, loc="upper left")
        # the curves usually overlap: their difference on its own (log) axis
        diff = ax.twinx()
        for i, curve in enumerate(curves):
            gap = [max(abs(a - b), 1e-12) for a, b in zip(curve["old"], curve["new"])]
            diff.plot(range(len(gap)), gap, ":", color="C%d" % i, lw=1, alpha=0.8)
        diff.set_yscale("log")
        diff.set_ylabel("|new - old| (dotted)", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no loss curve", ha="center", va="center", transform=ax.transAxes)


def _error_panel(ax, result):
    rows = _tensors(result)
    if len(rows) > MAX_TENSORS:
        rows = sorted(rows, key=lambda t: -t["needed"] / max(t.get("arel", 1e-12), 1e-12))
        rows = rows[:MAX_TENSORS]
    ys = range(len(rows))
    needed = [max(t["needed"], 1e-12) for t in rows]
    ax.barh(ys, needed, color=[COLOURS.get(t["status"], "grey") for t in rows])
    tol = [max(t.get("arel", 0.0), t.get("rtol", 0.0), 1e-12) for t in rows]
    ax.scatter(tol, ys, marker="|", s=80, color="black", label="tolerance used", zorder=3)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([t["tensor"][:48] for t in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("tolerance needed (bar) vs used (|)")
    ax.set_title("%s: per-tensor error" % result["model"], fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
