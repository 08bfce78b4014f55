"""Crash safety (issue 7): SIGKILL a real `apply` in place; no file is ever half-written.

A tree of 100 TF1 files, every one changed by the test rule
TFMT01 at several sites, is migrated by a real `tf-migrate apply` subprocess
that is killed with SIGKILL: at random points of the run, and at random points
of its write phase (detected by watching the first file's inode change, since
writes are temp file + rename). Afterwards every file must be either its
original bytes or its complete rewrite, a re-run must finish the job, and a
normal run must leave no `*.tf-migrate.tmp` behind. Bounded to ~15 s on 2 cores.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrate.writer import TEMP_SUFFIX
from tests.conftest import TEST_RULES, cli_env, run_cli

if not hasattr(signal, "SIGKILL"):
    pytest.skip("needs POSIX SIGKILL", allow_module_level=True)

N_FILES = 100
SITES = 4
ARGS = ("--rules-module", TEST_RULES, "--select", "TFMT01", "-j", "2")


def _source(i: int) -> str:
    parts = ["import tensorflow as tf\n\n\n"]
    for k in range(SITES):
        parts.append(
            f"def block{k}(x, is_training):\n"
            f"    # block {k} of file {i}: conv, batch norm, relu\n"
            f"    h = tf.layers.conv2d(x, {16 * (k + 1)}, 3, padding='same')\n"
            f"    h = tf.layers.batch_normalization(h, training=is_training, name='bn{k}')\n"
            f"    return tf.nn.relu(h)\n\n\n")
    parts.append(f"# end of file {i}\n")
    return "".join(parts)


ORIGINALS = {f"m{i:03d}.py": _source(i).encode() for i in range(N_FILES)}
REWRITES = {name: data.replace(b"tf.layers.batch_normalization",
                               b"tf.compat.v1.layers.batch_normalization")
            for name, data in ORIGINALS.items()}


def _fresh_tree(path: Path) -> Path:
    path.mkdir()
    for name, data in ORIGINALS.items():
        (path / name).write_bytes(data)
    return path


def _start(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "migrate", "apply", str(root), *ARGS],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    # The whole session: the parent writes, but its worker processes must not outlive it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _classify(root: Path):
    """(number rewritten, names neither original nor rewrite, temp files)."""
    rewritten, torn = 0, []
    for name in ORIGINALS:
        data = (root / name).read_bytes()
        if data == REWRITES[name]:
            rewritten += 1
        elif data != ORIGINALS[name]:
            torn.append(name)
    temps = [p.name for p in root.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    extra = sorted(p.name for p in root.iterdir()
                   if p.name not in ORIGINALS and not p.name.endswith(TEMP_SUFFIX))
    assert not extra, f"unexpected files after the kill: {extra}"
    return rewritten, torn, temps


def _wait_for_first_write(root: Path, proc: subprocess.Popen, deadline: float) -> bool:
    first = root / min(ORIGINALS)
    inode = first.stat().st_ino
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if first.stat().st_ino != inode:
                return True
        except FileNotFoundError:  # between unlink and rename on some systems
            return True
        time.sleep(0.0005)
    return False


def test_sigkill_never_leaves_a_partial_file(tmp_path):
    rng = random.Random(int(os.environ.get("TF_MIGRATE_CRASH_SEED", "7")))
    started = time.monotonic()
    # A reference run: how long a whole run takes here, and that it completes.
    reference = _fresh_tree(tmp_path / "reference")
    t0 = time.monotonic()
    done = run_cli("apply", reference, *ARGS)
    full_run = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert _classify(reference) == (N_FILES, [], [])  # a normal run leaves no temp file

    outcomes = []
    trials = [("anywhere", rng.uniform(0.1, 0.8) * full_run)]
    # Several write-phase trials: on a loaded machine a kill can miss the (short) write phase.
    trials += [("while writing", rng.uniform(0.0, 0.02)) for _ in range(2)]
    trials += [("while writing", 0.0) for _ in range(4)]
    for i, (where, delay) in enumerate(trials):
        root = _fresh_tree(tmp_path / f"trial{i}")
        proc = _start(root)
        if where == "while writing":
            _wait_for_first_write(root, proc, time.monotonic() + 4 * full_run + 10)
        time.sleep(delay)
        _kill(proc)
        rewritten, torn, temps = _classify(root)
        assert torn == [], f"trial {i} ({where}, +{delay:.3f}s): partial files {torn[:5]}"
        # Writes happen one at a time in the parent: at most one temp file can be orphaned.
        assert len(temps) <= 1, temps
        outcomes.append((where, round(delay, 3), rewritten, len(temps)))
        landed = any(0 < o[2] < N_FILES for o in outcomes)
        if i == len(trials) - 1 or (landed and i >= 2) or time.monotonic() - started > 40:
            # Running again finishes the job, whatever state the kill left.
            again = run_cli("apply", root, *ARGS)
            assert again.returncode == 0, again.stderr
            assert _classify(root)[:2] == (N_FILES, [])
            break
    # The write-phase trials must really have stopped a run mid-way at least once, or this
    # test proved nothing about torn writes.
    mid = [o for o in outcomes if 0 < o[2] < N_FILES]
    if not mid:
        # Every trial still checked that no file was torn; only the mid-write case was missed.
        pytest.skip(f"no kill landed inside the write phase on this (loaded) machine: {outcomes}")
    print("kill outcomes (where, delay s, files rewritten, temp files):", outcomes)


def test_no_temp_files_after_a_normal_run_in_place_and_with_out(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for name in list(ORIGINALS)[:20]:
        (root / name).write_bytes(ORIGINALS[name])
    (root / "data.txt").write_text("not python\n")
    (root / "sub").mkdir()
    (root / "sub" / "keep.py").write_text("x = 1\n")
    out = tmp_path / "out"
    assert run_cli("apply", root, "--out", out, *ARGS).returncode == 0
    assert run_cli("apply", root, *ARGS).returncode == 0
    for where in (root, out):
        assert not [p for p in where.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    assert (out / "m000.py").read_bytes() == REWRITES["m000.py"]
    assert (root / "m000.py").read_bytes() == REWRITES["m000.py"]
