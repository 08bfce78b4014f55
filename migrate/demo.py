"""`make demo`: migrate the bundled TF1 program and show what happened, briefly.

Runs the real CLI on `fixtures/programs/`: `check` (findings), `diff` (the
rewrite), `apply --out demo-out/` (the migrated tree), `check` again on the
output, both programs' RESULT lines, and `verify` (old vs new with the same
weights). Each step prints the command first, so a newcomer can re-run it.
"""

from __future__ import annotations

import os
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
    compare_results(PROGRAMS / "cnn_bn.py", OUT / "cnn_bn.py")
    step("6. Prove it: same weights and inputs, old vs new, step by step", "verify", str(rel),
         OUT.name, max_lines=60)
    print(f"\nThe migrated program is in {OUT.name}/. See README.md for verify and CI use.")
    return 0


# The old program runs under the TF1 stand-in (TF 2.21's compat.v1 graph mode with tf-keras and
# tf-slim, see migrate/verify/tf1_runtime.py); the new one on plain TF 2 / Keras 3.
_RUN_OLD = ("import runpy, sys; from migrate.verify import tf1_runtime; tf1_runtime.install(); "
            "runpy.run_path(sys.argv[1], run_name='__main__')")
_RUN_NEW = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


def compare_results(old: Path, new: Path) -> None:
    print("\n=== 5. The RESULT line of each program (TF1 stand-in vs migrated TF2)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)
    for label, code, path in (("old (TF1)", _RUN_OLD, old), ("new (TF2)", _RUN_NEW, new)):
        try:
            result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                                    text=True, cwd=REPO, env=env, timeout=600)
        except subprocess.TimeoutExpired:
            print(f"{label}: timed out")
            continue
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
        print(f"{label:10} {lines[-1] if lines else 'no RESULT line: ' + result.stderr.strip()[-300:]}")
    print("The numbers differ because Keras 3 draws other initial weights than TF1; "
          "`tf-migrate verify` transfers the weights and compares step by step.")


if __name__ == "__main__":
    sys.exit(main())
