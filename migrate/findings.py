"""What a rule reports: one `Finding` per site, shown as `path:line:col: CODE message`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


# Rewrite classes (see the model-rewrite rules): how a rewrite relates to the TF1 numbers.
EXACT = "exact"  # same numbers within verify's default tolerances
BOUNDED = "bounded"  # a named, measured divergence (e.g. fused-BN Bessel correction)
BEHAVIOUR_CHANGE = "behaviour-change"  # TF1 did something Keras 3 cannot express, or had a bug


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int  # 1-based
    col: int  # 1-based, in characters
    code: str
    message: str
    # True when `apply` rewrote the site; False when it needs manual work.
    fixed: bool = False
    rewrite_class: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def to_json(self) -> dict:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return data
