"""Does a canonical `tensorflow.X` name exist in the TF 2 public API (without compat.v1)?

The list in `migrate/data/tf2_symbols.txt` was generated from TF 2.21 by
`tools/gen_tf2_symbols.py`; reading a text file keeps TensorFlow out of the
rewrite process (importing it costs ~5 s).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).resolve().parent.parent / "data" / "tf2_symbols.txt"


@lru_cache(maxsize=1)
def _symbols():
    lines = _DATA.read_text(encoding="utf-8").splitlines()
    names = frozenset(line for line in lines if line and not line.startswith("#"))
    modules = frozenset(name.rsplit(".", 1)[0] for name in names if "." in name)
    return names, modules


def exists_in_tf2(canonical_name: str) -> bool:
    if canonical_name.startswith("keras."):
        return True  # Keras names are validated by the layer mapping
    if not canonical_name.startswith("tensorflow."):
        return False
    name = canonical_name[len("tensorflow."):]
    names, modules = _symbols()
    if name in names:
        return True
    # Attribute access below a class or function, not a module (tf.float32.max: yes;
    # tf.train.AdamOptimizer: no, `train` is a module and has no AdamOptimizer).
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in names:
            return prefix not in modules
    return False
