"""Generate migrate/data/tf1_renames.json from TensorFlow's own tf_upgrade_v2 tables (TF 2.21).

Run from the repository root: `.venv/bin/python tools/gen_tf1_renames.py`.

Three tables, keyed by the TF1 name without `tf.` (as in tf2_symbols.txt):
- "symbols": TF1 spelling -> TF2 spelling, only where the TF1 name is gone from TF 2, the target
  is a plain public TF 2 name (in migrate/data/tf2_symbols.txt; never tf.compat.v1) and
  tf_upgrade_v2 renames it without a special transformer (those change semantics or arguments
  and are hand-written in migrate/model_rewrite/tf1_renames.py, or refused) and without a
  warning that the call may behave differently.
- "keywords": TF1 keyword -> TF2 keyword per function (null: dropped, for the few keywords
  that never changed a value, DROPPED_EXACTLY); a renamed keyword must be a parameter of the
  TF 2 function (inspect), so tf_upgrade_v2's marker renames (`verify_shape_is_now_always_true`)
  do not count.
- "refused_keywords": per function, the TF1 keywords TF 2 lost with a behaviour (align_corners,
  seed2, strict...): a call passing one is not converted.
- "positional": per function, the TF1 parameter name of each positional slot that must become a
  keyword in TF 2 (null: the slot keeps its meaning positionally). The slots come from
  tf_upgrade_v2's reorders and, for renamed functions, from TF1's signature (tf.compat.v1); a
  slot stays positional when its TF1 name, renamed, is the TF 2 parameter in the same slot
  (inspect). A TF1 parameter the TF 2 function lacks is a refused keyword.

The rewrite reads the JSON (TensorFlow is never imported there: it costs ~5 s).
"""
import inspect
import json
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf  # noqa: E402
from tensorflow.tools.compatibility import all_renames_v2, reorders_v2, tf_upgrade_v2  # noqa: E402

OUT = "migrate/data/tf1_renames.json"
spec = tf_upgrade_v2.TFAPIChangeSpec()
tf2 = {line for line in open("migrate/data/tf2_symbols.txt", encoding="utf-8").read().splitlines()
       if line and not line.startswith("#")}


def short(name):
    return name[len("tf."):] if name.startswith("tf.") else None


def tf2_object(name):
    obj = tf
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def v2_name(old):
    """The name the function has in TF 2 (after the symbol rename), or None."""
    old_short = short(old)
    if old_short is None:
        return None
    if old_short in symbols:
        return symbols[old_short]
    return old_short if old_short in tf2 else None


# tf_upgrade_v2 renames these, but the TF 2 function computes something else.
NOT_EXACT = {
    # TF 2's resize samples at half-pixel centres, TF1's resize_images (align_corners=False,
    # half_pixel_centers=False) at the corners: other pixel values.
    "image.resize_images",
}
# Keywords tf_upgrade_v2 deletes that were placement or validation hints, never a value.
DROPPED_EXACTLY = {"use_cudnn_on_gpu", "colocate_gradients_with_ops", "validate_indices"}

special = set(spec.function_transformers) | set(spec.function_warnings) | \
    set(spec.function_arg_warnings)
symbols = {}
for old, new in sorted(all_renames_v2.symbol_renames.items()):
    old_short, new_short = short(old), short(new)
    if old_short is None or new_short is None or new_short.startswith("compat."):
        continue
    if old_short in tf2 or new_short not in tf2 or old in special:
        continue  # still a TF 2 name, not a plain TF 2 target, or not a plain rename
    if old_short.startswith("contrib.") or old_short in NOT_EXACT:
        continue  # contrib resolves to tf_slim and is refused by its own rules
    if new_short.startswith("raw_ops."):
        continue  # raw ops take keywords only: not a rename
    symbols[old_short] = new_short

keywords, refused_keywords = {}, {}
for func, renames in sorted(spec.function_keyword_renames.items()):
    func_short = short(func)
    if func_short is None or func_short.startswith("contrib.") or v2_name(func) is None:
        continue
    if func in spec.function_transformers:
        continue  # its keywords are the hand-written transformer's business
    try:
        params = set(inspect.signature(tf2_object(v2_name(func))).parameters)
    except (TypeError, ValueError):
        params = set()
    kept, refused = {}, []
    for old_kw, new_kw in sorted(renames.items()):
        if new_kw is None and old_kw in DROPPED_EXACTLY or new_kw in params:
            kept[old_kw] = new_kw
        else:
            refused.append(old_kw)
    if kept:
        keywords[func_short] = kept
    if refused:
        refused_keywords[func_short] = refused

def signature(obj):
    """(positional parameter names, every parameter name, takes **kwargs) or None."""
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return ([p.name for p in params if p.kind in positional_kinds], {p.name for p in params},
            any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params))


# The TF1 parameter of each positional slot: tf_upgrade_v2's reorders, and for the renamed
# functions TF1's own signature (tf.compat.v1 keeps it), so a positional argument whose slot
# means something else in the TF 2 function is passed by its TF1 keyword.
slot_names = dict(reorders_v2.reorders)
for old_short in symbols:
    v1 = tf2_object("compat.v1." + old_short)
    if callable(v1) and not inspect.isclass(v1) and f"tf.{old_short}" not in slot_names:
        v1_signature = signature(v1)
        if v1_signature is not None:
            slot_names[f"tf.{old_short}"] = v1_signature[0]

positional = {}
for func, slots in sorted(slot_names.items()):
    func_short = short(func)
    target = v2_name(func)
    if func_short is None or target is None or func in spec.function_transformers:
        continue
    v2_signature = signature(tf2_object(target)) or ([], set(), True)
    params, every, var_keyword = v2_signature
    renames = spec.function_keyword_renames.get(func, {})
    needed = []
    for index, slot in enumerate(slots):
        if slot is None:
            needed.append(None)
            continue
        renamed = renames.get(slot, slot)
        needed.append(None if index < len(params) and params[index] == renamed else slot)
        if needed[-1] is None or var_keyword or renamed in every or \
                (renamed is None and slot in DROPPED_EXACTLY):
            continue
        # The TF1 parameter is gone from the TF 2 function: such a call has no TF 2 spelling.
        if slot not in refused_keywords.get(func_short, []):
            refused_keywords.setdefault(func_short, []).append(slot)
    while needed and needed[-1] is None:
        needed.pop()
    # Positional arguments cannot follow keywords: from the first keyword slot on, every slot
    # is named (reorders' None is a slot whose TF1 name is the TF 2 one at that index).
    first = next((i for i, slot in enumerate(needed) if slot), len(needed))
    for index in range(first, len(needed)):
        if needed[index] is None:
            needed[index] = slots[index] or (params[index] if index < len(params) else None)
    if needed:
        positional[func_short] = needed

with open(OUT, "w", encoding="utf-8") as f:
    json.dump({"_comment": "Generated by tools/gen_tf1_renames.py from TF 2.21's tf_upgrade_v2 "
                           "tables; do not edit.",
               "symbols": symbols, "keywords": keywords, "refused_keywords": refused_keywords,
               "positional": positional},
              f, indent=1, sort_keys=True)
    f.write("\n")
print(len(symbols), "symbols,", len(keywords), "keyword tables,", len(refused_keywords),
      "refused keyword tables,", len(positional), "reorders")
