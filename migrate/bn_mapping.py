"""The one argument mapping from every TF1 batch-norm API to Keras 3 `BatchNormalization`.

Findings (`check`) explain it and the model rewrite emits it, so the two can
never disagree. The facts behind each line are in the project docs
(`docs/numerics.md`, measured on TF 2.21):

* `decay` becomes `momentum` as is -- both weight the *old* moving value
  (`moving = decay*moving + (1-decay)*batch`). `momentum=1-decay` is a classic
  migration bug.
* contrib/slim `batch_norm` defaults differ from Keras: decay .999 (Keras .99)
  and scale=False (Keras True). Mapped naively the inference output moved by
  7.5 abs after 20 steps (measured), so contrib defaults are always written out.
* `data_format='NCHW'` means channels on axis 1.
* `activation_fn` becomes an activation applied after the layer.
* `fused` decides whether TF1 applied Bessel's correction n/(n-1) to the
  moving variance (fused kernels do, Keras 3 never does), so it is recorded.
* Arguments with no Keras 3 equivalent are reported, never dropped silently.

The mapping works on any expression type: values are the caller's own
expression objects (ast or libcst nodes) or `Code` for text this module writes,
so one mapping serves `check` (ast) and the rewrites (libcst).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

LAYERS_FUNCTION = "tf.layers.batch_normalization"
LAYERS_CLASS = "tf.layers.BatchNormalization"
CONTRIB = "tf.contrib.layers.batch_norm"
KERAS_V2 = "tf.keras.layers.BatchNormalization"  # Keras 2 layer inside a TF1 graph

# Canonical names (see names.canonical) of every TF1 batch-norm entry point.
API_BY_CANONICAL = {
    "tensorflow.layers.batch_normalization": LAYERS_FUNCTION,
    "tensorflow.layers.BatchNormalization": LAYERS_CLASS,
    "tensorflow.nn.batch_normalization": None,  # the raw op: no layer, no variables
    "tf_slim.batch_norm": CONTRIB,
    "keras.layers.BatchNormalization": KERAS_V2,
    "keras.layers.normalization.BatchNormalization": KERAS_V2,
}

# Positional parameter order of each API (after `inputs` for the call forms).
_POSITIONAL = {
    LAYERS_FUNCTION: ("inputs", "axis", "momentum", "epsilon", "center", "scale",
                      "beta_initializer", "gamma_initializer", "moving_mean_initializer",
                      "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
                      "beta_constraint", "gamma_constraint", "training", "trainable", "name",
                      "reuse", "renorm", "renorm_clipping", "renorm_momentum", "fused",
                      "virtual_batch_size", "adjustment"),
    LAYERS_CLASS: ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                   "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                   "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                   "renorm", "renorm_clipping", "renorm_momentum", "fused", "trainable",
                   "virtual_batch_size", "adjustment", "name"),
    KERAS_V2: ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
               "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
               "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"),
    CONTRIB: ("inputs", "decay", "center", "scale", "epsilon", "activation_fn",
              "param_initializers", "param_regularizers", "updates_collections", "is_training",
              "reuse", "variables_collections", "outputs_collections", "trainable",
              "batch_weights", "fused", "data_format", "zero_debias_moving_mean", "scope",
              "renorm", "renorm_clipping", "renorm_decay", "adjustment"),
}

# Arguments that pass straight through under the same name.
_SAME_NAME = ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
              "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
              "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
              "renorm", "renorm_clipping", "renorm_momentum", "name", "trainable", "dtype")

_UNSUPPORTED = {
    "virtual_batch_size": "Keras 3 BatchNormalization has no virtual (ghost) batches",
    "adjustment": "Keras 3 BatchNormalization has no `adjustment` hook",
    "zero_debias_moving_mean": "Keras 3 has no zero-debiased moving mean",
    "batch_weights": "Keras 3 BatchNormalization has no per-example batch weights",
    "reuse": "variable reuse becomes calling the same Keras layer object again",
    "_reuse": "variable reuse becomes calling the same Keras layer object again",
    "_scope": "variable scopes become layer names / nested layers",
    "variables_collections": "TF2 has no graph collections",
    "outputs_collections": "TF2 has no graph collections",
}

# contrib defaults that differ from Keras 3's, written out explicitly (numerics D9).
_CONTRIB_EXPLICIT_DEFAULTS = (("momentum", "0.999"), ("epsilon", "0.001"),
                              ("center", "True"), ("scale", "False"))

# contrib param_initializers / param_regularizers dict keys -> Keras arguments.
_PARAM_KEYS = {"beta": "beta", "gamma": "gamma", "moving_mean": "moving_mean",
               "moving_variance": "moving_variance"}


@dataclass(frozen=True)
class Code:
    """Source text written by the mapping (as opposed to an expression from the input)."""

    text: str


NOT_LITERAL = object()


@dataclass
class KerasBatchNorm:
    """How one TF1 batch-norm site maps onto Keras 3 `BatchNormalization`."""

    source_api: str
    kwargs: Dict[str, Any] = field(default_factory=dict)  # Keras constructor keyword -> expr
    inputs: Any = None  # the tensor argument (call forms only)
    training: Any = None  # expr of the training flag; Code for TF1's default
    activation: Any = None  # applied after the layer (contrib activation_fn)
    # How TF1 ran it: "never" (non-fused), "rank" (fused for 4-D/5-D input, decided at
    # run time), "always" (contrib's 2-D and 4-D paths). Decides the Bessel divergence.
    fused: str = "never"
    # contrib's own fused path computes its decay in Python, tf.layers in float32 (D7):
    # True, False, or "rank" (contrib: False for 2-D input, True for 4-D).
    float32_decay: Any = True
    updates_inline: bool = False  # contrib updates_collections=None
    input_rank: Optional[int] = None  # static rank of the input, where the code makes it clear
    unfused_by_rank: bool = False  # that rank is one TF1 never ran fused (apply_input_rank)
    unsupported: List[Tuple[str, str]] = field(default_factory=list)  # (argument, why)
    notes: List[str] = field(default_factory=list)

    @property
    def may_be_fused(self) -> bool:
        return self.fused in ("rank", "always")


def _bind_arguments(api: str, args: Sequence[Any], keywords: Dict[str, Any]) -> Dict[str, Any]:
    bound = dict(zip(_POSITIONAL[api], args))
    bound.update(keywords)
    return bound


def map_batch_norm(
    api: str,
    args: Sequence[Any],
    keywords: Dict[str, Any],
    literal: Callable[[Any], Any],
) -> KerasBatchNorm:
    """Map one TF1 batch-norm construction or call to Keras 3.

    `api` is one of LAYERS_FUNCTION, LAYERS_CLASS, CONTRIB, KERAS_V2; `args` and
    `keywords` are the call's arguments as expression objects (a `**kwargs`
    argument must be passed as keyword `"**"`); `literal(expr)` returns the
    Python value of a literal expression or NOT_LITERAL.
    """
    bound = _bind_arguments(api, args, keywords)
    result = KerasBatchNorm(source_api=api)
    if "**" in bound:
        result.unsupported.append(("**kwargs", "arguments passed through **kwargs cannot be mapped statically"))
        bound.pop("**")

    result.inputs = bound.pop("inputs", None)

    if api == CONTRIB:
        _map_contrib(bound, result, literal)
    else:
        if "training" in bound:
            result.training = bound.pop("training")
        elif api == LAYERS_FUNCTION:
            # tf.layers.batch_normalization defaults to inference mode.
            result.training = Code("False")
            result.notes.append("`training` was not passed: TF1 ran this layer in inference mode")
        _map_fused_layers(bound, result, literal)

    for arg in list(bound):
        if arg in _UNSUPPORTED:
            result.unsupported.append((arg, _UNSUPPORTED[arg]))
            bound.pop(arg)
    for arg in _SAME_NAME:
        if arg in bound:
            result.kwargs[arg] = bound.pop(arg)
    for arg in bound:
        result.unsupported.append((arg, "no Keras 3 BatchNormalization equivalent"))

    trainable = result.kwargs.get("trainable")
    if trainable is not None:
        value = literal(trainable)
        if value is False:
            result.notes.append(
                "trainable=False: in Keras 3 a frozen BatchNormalization also runs in inference mode")
        elif value is NOT_LITERAL:
            result.notes.append(
                "trainable is not a literal (often `trainable=is_training`): in Keras 3 trainable=False "
                "also means inference mode; pass `training=` instead")
    return result


# Input ranks TF1 ran fused: tf.layers / legacy tf.keras for 4-D and 5-D input, contrib's own
# fused path for 2-D and 4-D (and its core-layer path for 4-D/5-D).
FUSED_RANKS = {"rank": (4, 5), "always": (2, 4, 5)}


def apply_input_rank(result: KerasBatchNorm, rank: Optional[int]) -> KerasBatchNorm:
    """Settle how TF1 ran `result` once its input's static rank is known (static_rank): a
    batch norm after `flatten`/`dense` (2-D) or `conv1d` (3-D) never ran fused, so Keras 3
    reproduces it exactly (no Bessel correction to make up for)."""
    result.input_rank = rank
    if rank is not None and result.may_be_fused and rank not in FUSED_RANKS[result.fused]:
        result.fused = "never"
        result.unfused_by_rank = True
    return result


def _map_fused_layers(bound: Dict[str, Any], result: KerasBatchNorm, literal) -> None:
    fused = bound.pop("fused", None)
    fused_value = None if fused is None else literal(fused)
    blockers = [a for a in ("renorm", "virtual_batch_size", "adjustment")
                if a in bound and literal(bound[a]) not in (None, False)]
    if fused_value is False:
        result.fused = "never"
    elif blockers and fused_value is not True:
        result.fused = "never"
    elif fused_value is NOT_LITERAL:
        result.fused = "rank"
        result.notes.append("`fused` is not a literal: assumed TF1's default (fused for 4-D input)")
    else:
        # None (TF1 default) or True: the fused kernel runs for 4-D input.
        result.fused = "rank"
    if result.source_api == KERAS_V2 and result.fused == "rank":
        result.notes.append("legacy tf.keras BatchNormalization was fused for 4-D input as well")


def _map_contrib(bound: Dict[str, Any], result: KerasBatchNorm, literal) -> None:
    for keras_arg, default in _CONTRIB_EXPLICIT_DEFAULTS:
        result.kwargs[keras_arg] = Code(default)
    if "decay" in bound:
        result.kwargs["momentum"] = bound.pop("decay")
    for arg in ("epsilon", "center", "scale"):
        if arg in bound:
            result.kwargs[arg] = bound.pop(arg)
    if "renorm_decay" in bound:
        bound["renorm_momentum"] = bound.pop("renorm_decay")
    if "scope" in bound:
        bound["name"] = bound.pop("scope")
    result.training = bound.pop("is_training", Code("True"))
    result.activation = bound.pop("activation_fn", None)
    if result.activation is not None and literal(result.activation) is None:
        result.activation = None

    data_format = bound.pop("data_format", None)
    if data_format is not None:
        value = literal(data_format)
        if value == "NCHW":
            result.kwargs["axis"] = Code("1")
        elif value is NOT_LITERAL:
            result.unsupported.append(("data_format", "not a literal: the channel axis cannot be decided statically"))
        elif value not in ("NHWC", None):
            result.unsupported.append(("data_format", f"unknown data_format {value!r}"))

    for arg, suffix in (("param_initializers", "initializer"), ("param_regularizers", "regularizer")):
        if arg not in bound:
            continue
        expr = bound.pop(arg)
        value = literal(expr)
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _PARAM_KEYS and not (suffix == "regularizer" and key.startswith("moving")):
                    result.kwargs[f"{_PARAM_KEYS[key]}_{suffix}"] = item
                else:
                    result.unsupported.append((f"{arg}[{key!r}]", "no Keras 3 equivalent"))
        elif value is not None:
            result.unsupported.append((arg, "not a dict literal: map its entries by hand"))

    updates = bound.pop("updates_collections", None)
    updates_value = None if updates is None else literal(updates)
    if updates is not None and updates_value is None:
        result.updates_inline = True
        result.notes.append("updates_collections=None: TF1 updated the moving averages in place, "
                            "as Keras 3 does when called with training=True")
    elif updates is not None and updates_value is NOT_LITERAL and not _names_update_ops(updates):
        result.notes.append("updates_collections is not UPDATE_OPS: check who ran those updates")

    fused = bound.pop("fused", None)
    fused_value = None if fused is None else literal(fused)
    zero_debias = bound.get("zero_debias_moving_mean")
    blockers = [a for a in ("batch_weights", "renorm", "adjustment")
                if a in bound and literal(bound[a]) not in (None, False)]
    if fused_value is False or blockers:
        result.fused = "never"
    else:
        # contrib turns fused=None into True; rank 2 and 4 both take a fused path.
        result.fused = "always"
        own_path = result.updates_inline or (zero_debias is not None and literal(zero_debias) is True)
        # Its own _fused_batch_norm (2-D input, inline updates, zero-debias) computes
        # the decay in Python; the 4-D delegation to tf.layers does it in float32.
        # 2-D input always takes the own path; 4-D only with inline updates or zero-debias.
        result.float32_decay = "rank" if not own_path else False


def _names_update_ops(expr) -> bool:
    """True for `<anything>.UPDATE_OPS` as an ast or libcst Attribute."""
    attr = getattr(expr, "attr", None)
    return (attr if isinstance(attr, str) else getattr(attr, "value", None)) == "UPDATE_OPS"


def render_constructor(mapping: KerasBatchNorm, to_source: Callable[[Any], str],
                       constructor: str = "tf.keras.layers.BatchNormalization") -> str:
    """Source text of the Keras 3 constructor call this site maps to."""
    parts = []
    for key, value in mapping.kwargs.items():
        text = value.text if isinstance(value, Code) else to_source(value)
        parts.append(f"{key}={text}")
    return f"{constructor}({', '.join(parts)})"
