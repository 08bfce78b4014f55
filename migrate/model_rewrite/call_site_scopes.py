"""`with tf.variable_scope("generator"):` around a model call in program code (pix2pix's
create_model(), many GANs): TF1 prefixes the model's variable names with the scope there, so
the model object made for that call takes the scope as its Keras name, and a second
`variable_scope("discriminator", reuse=True)` around the same model is the same object called
again. `tf.name_scope` changes op names only, never get_variable names: nothing to carry over.

Shared by the caller rewrite (model_classes) and the training-loop rewrite (program), which
unwraps such blocks."""
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from migrate.model_rewrite.layers import literal

VARIABLE_SCOPE = "tensorflow.variable_scope"
NAME_SCOPE = "tensorflow.name_scope"
AUTO_REUSE = "tensorflow.AUTO_REUSE"


@dataclass(frozen=True)
class CallSiteScope:
    kind: str  # "variable" or "name"
    name: Optional[str]  # the literal scope name; None where it is not a plain literal
    reuse: bool  # reuse=True or reuse=tf.AUTO_REUSE
    creates: bool = True  # False for reuse=True: the variables must exist already


def call_site_scope(stmt: cst.With, resolve) -> Optional[CallSiteScope]:
    """The scope a `with tf.variable_scope(...)` / `with tf.name_scope(...)` opens, or None for
    any other with statement (several items, `as` targets, other context managers)."""
    if len(stmt.items) != 1 or stmt.items[0].asname is not None:
        return None
    call = stmt.items[0].item
    if not isinstance(call, cst.Call):
        return None
    api = resolve(call.func)
    if api in (VARIABLE_SCOPE, "tensorflow.compat.v1.variable_scope"):
        kind, first = "variable", "name_or_scope"
    elif api in (NAME_SCOPE, "tensorflow.compat.v1.name_scope"):
        kind, first = "name", "name"
    else:
        return None
    name = None
    reuse = False
    creates = True
    for index, arg in enumerate(call.args):
        key = arg.keyword.value if arg.keyword is not None else (first if index == 0 else None)
        if arg.star:
            return CallSiteScope(kind, None, False)
        if key == first:
            value = literal(arg.value)
            name = value if isinstance(value, str) and value and "/" not in value else None
        elif key == "reuse" and kind == "variable":
            creates = not (isinstance(arg.value, cst.Name) and arg.value.value == "True")
            reuse = not creates or resolve(arg.value) == AUTO_REUSE
            if not reuse and not (isinstance(arg.value, cst.Name) and arg.value.value in ("None", "False")):
                return CallSiteScope(kind, None, False)  # a reuse flag decided at run time
        else:
            return CallSiteScope(kind, None, False)  # default_name, values, initializer...
    return CallSiteScope(kind, name, reuse, creates)
