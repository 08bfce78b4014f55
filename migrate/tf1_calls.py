"""TF1 calls whose TF2 namesake takes different arguments: fix them wherever a rewrite keeps code.

Most TF1-only APIs simply do not exist in TF2, and the rewrites refuse them (`exists_in_tf2`).
The dangerous ones exist in both with a changed signature, so the old call still runs and
computes something else. `tf.nn.dropout(x, keep_prob)` is the classic: TF2's second parameter is
`rate`, the *drop* probability, so `tf.nn.dropout(x, 0.8)` keeps 20 % instead of 80 %.
"""

from __future__ import annotations

import libcst as cst

from migrate.model_rewrite.layers import Unmappable, literal, render

_RENDER = cst.Module(body=[])


class TF1CallFixer(cst.CSTTransformer):
    def __init__(self, resolve):
        super().__init__()
        self.resolve = resolve

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        if self.resolve(original.func) == "tensorflow.nn.dropout":
            return _dropout(updated)
        return updated


def _dropout(call: cst.Call) -> cst.Call:
    args = list(call.args)
    keywords = [a.keyword.value for a in args if a.keyword is not None]
    if "rate" in keywords:
        return call  # already TF2's signature
    keep_index = next((i for i, a in enumerate(args) if a.keyword is not None
                       and a.keyword.value == "keep_prob"), None)
    if keep_index is None:
        positional = [i for i, a in enumerate(args) if a.keyword is None]
        if len(positional) < 2:
            raise Unmappable("tf.nn.dropout without keep_prob")
        keep_index = positional[1]
        if len(positional) > 2:
            raise Unmappable("tf.nn.dropout with positional noise_shape/seed: TF2 reordered them")
    keep = args[keep_index].value
    value = literal(keep)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate_text = repr(round(1 - value, 12))
    else:
        text = render(keep)
        simple = isinstance(keep, (cst.Name, cst.Attribute, cst.Subscript, cst.Call))
        rate_text = f"1 - {text}" if simple else f"1 - ({text})"
    new_arg = cst.Arg(cst.parse_expression(rate_text), keyword=cst.Name("rate"),
                      equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
                      comma=args[keep_index].comma)
    others = [a for i, a in enumerate(args) if i != keep_index]
    # Keyword arguments must follow positional ones: put rate right after the input.
    return call.with_changes(args=[others[0], new_arg.with_changes(comma=others[0].comma
                                                                    if len(others) > 1 else cst.MaybeSentinel.DEFAULT)]
                             + [a.with_changes() for a in others[1:]] if others else [new_arg])
