"""`make demo`: migrate the bundled TF1 program and show what happened, briefly.

Runs the real CLI on `fixtures/programs/`: `check` (findings), `diff` (the
rewrite), `apply --out demo-out/` (the migrated tree), then `check` again on
the output. Each step prints the command first, so a newcomer can re-run it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "fixtures" / "programs"
OUT = REPO / "demo-out"


def step(title: str, *args: str, max_lines: int = 40) -> int:
    command = ["tf-migrate", *args]
    print(f"\n=== {title}\n$ {' '.join(command)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True,
                            cwd=REPO)
    lines = (result.stdout + result.stderr).splitlines()
    for line in lines[:max_lines]:
        print(line[:160] + (" ..." if len(line) > 160 else ""))
    if len(lines) > max_lines:
        print(f"... ({len(lines) - max_lines} more lines)")
    print(f"(exit {result.returncode})")
    return result.returncode


def main() -> int:
    rel = PROGRAMS.relative_to(REPO)
    step("1. Findings in the TF1 program", "check", str(rel), "--color", "never")
    step("2. What `apply` would change (dry run)", "diff", str(rel), "--color", "never", max_lines=80)
    if OUT.exists():
        shutil.rmtree(OUT)
    step("3. Migrate into a mirror tree", "apply", str(rel), "--out", OUT.name, "-q")
    step("4. Findings left in the migrated tree", "check", OUT.name, "--color", "never")
    print(f"\nThe migrated program is in {OUT.name}/. See README.md for verify and CI use.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
