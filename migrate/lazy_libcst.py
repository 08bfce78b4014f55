"""`libcst`, imported on first use, for modules that `check` imports only for their tables.

`check` runs on `ast` and never builds a libcst tree, yet importing libcst costs ~0.15 s of
start-up, more than checking a small tree (issue 7: `check` >= 10x faster than
`tf_upgrade_v2`). A module whose tables the findings need (e.g. `model_rewrite.layers`:
`LAYER_APIS`) and whose libcst code runs only in rewrites imports `cst` from here instead of
`libcst`; tests/test_startup.py checks that `check` leaves libcst unimported.
"""

from __future__ import annotations


class _LazyLibcst:
    """Stands for the `libcst` module; the first attribute read imports it."""

    def __getattr__(self, name: str):
        import libcst

        value = getattr(libcst, name)
        # Cache on the instance: later reads are plain attribute lookups (hot in rewrites).
        setattr(self, name, value)
        return value


cst = _LazyLibcst()


class EmptyModule:
    """`cst.Module(body=[])`, built on first use: what renders single nodes (`code_for_node`)."""

    def __init__(self) -> None:
        self._module = None

    def code_for_node(self, node) -> str:
        if self._module is None:
            self._module = cst.Module(body=[])
        return self._module.code_for_node(node)
