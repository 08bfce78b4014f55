"""Run verify's two worker processes with per-model timeouts and crash isolation.

Each side runs all models of a run in one process (TensorFlow import costs seconds).
Progress comes back through a file (`start ID` / `done ID` lines), results through
per-model `.json`/`.npz` files; the worker's stdout and stderr go to a log file, so
nothing a user program prints can reach the report. A model that exceeds the timeout,
or kills its process (os._exit, segfault), becomes an error for that model only: the
worker is killed and restarted for the models still to do.
"""

import os
import signal
import subprocess
import sys
import time

from migrate.verify import protocol

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS = {"old": "migrate.verify.old_worker", "new": "migrate.verify.new_worker"}


def side_env(side, device):
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"]
                                        if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if side == "old":
        env["TF_USE_LEGACY_KERAS"] = "1"
    else:
        env.pop("TF_USE_LEGACY_KERAS", None)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


def _tail(path, lines=8):
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return ""
    keep = [l for l in text if not l.startswith(("W0000", "I0000", "E0000"))]
    return "\n".join(keep[-lines:])


LIVE = set()  # worker processes still running (both sides run at once)


def kill_all():
    """Stop every worker this process started (Ctrl-C or an error in the parent)."""
    for proc in list(LIVE):
        _kill(proc)


def _kill(proc):
    LIVE.discard(proc)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _paths(workdir, side, attempt):
    return (os.path.join(workdir, "progress.%s.%d" % (side, attempt)),
            os.path.join(workdir, "%s.%d.log" % (side, attempt)),
            os.path.join(workdir, "job.%s.%d.json" % (side, attempt)))


def _spawn(side, args, workdir, log, device):
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKERS[side]] + args,
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            env=side_env(side, device), cwd=workdir, start_new_session=True)
    LIVE.add(proc)
    return proc


def prestart_new(workdir, device="cpu"):
    """Start the new-side worker now so that its TensorFlow import overlaps the old
    side's run; `run_side("new", ..., prestarted=...)` hands it its job."""
    progress, log, jobfile = _paths(workdir, "new", 1)
    open(progress, "w").close()
    proc = _spawn("new", ["--wait", jobfile, progress], workdir, log, device)
    return {"proc": proc, "started": time.time()}


def discard(prestarted):
    if prestarted:
        _kill(prestarted["proc"])


def _watch(proc, progress, timeout, startup_timeout, started, done, state):
    """Follow the progress file until the worker exits; kill it on a per-model timeout
    (returns that model's id) or when it never gets ready (returns "__startup__")."""
    offset = 0
    while True:
        with open(progress) as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1] if "\n" in chunk else ""
        offset += len(complete)
        for line in complete.splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "ready":
                state["ready"] = True
            elif parts[0] == "start":
                state["current"], state["start"] = parts[1], time.time()
            elif parts[0] == "done":
                done.add(parts[1])
                state["current"] = None
        if proc.poll() is not None:
            return None
        now = time.time()
        if state["current"] is not None and now - state["start"] > timeout:
            _kill(proc)
            return state["current"]
        if not state["ready"] and now - started > startup_timeout:
            _kill(proc)
            return "__startup__"
        time.sleep(0.05)


def run_side(side, models, job, workdir, timeout, device="cpu", startup_timeout=180.0,
             prestarted=None):
    """Run `models` on one side; return {model id: error message} for models whose
    worker timed out or died (their result files are written here)."""
    remaining = [m for m in models]
    errors = {}
    attempt = 0
    while remaining:
        attempt += 1
        progress, log, jobfile = _paths(workdir, side, attempt)
        if attempt == 1 and prestarted is not None:
            proc = prestarted["proc"]
            protocol.save_json(jobfile, dict(job, models=remaining, progress=progress,
                                             workdir=workdir))
            started = prestarted["started"]
        else:
            open(progress, "w").close()
            protocol.save_json(jobfile, dict(job, models=remaining, progress=progress,
                                             workdir=workdir))
            proc = _spawn(side, [jobfile], workdir, log, device)
            started = time.time()
        done = set()
        state = {"ready": False, "current": None, "start": None}
        try:
            killed_for = _watch(proc, progress, timeout, startup_timeout, started, done,
                                state)
        except BaseException:
            _kill(proc)  # Ctrl-C or an error here: never leave a worker behind
            raise
        LIVE.discard(proc)
        ready, current = state["ready"], state["current"]
        remaining_ids = [m["id"] for m in remaining if m["id"] not in done]
        if killed_for == "__startup__" or (not ready and not done):
            reason = ("the %s-side worker did not start (exit code %s): %s"
                      % (side, proc.returncode, _tail(log) or "no output"))
            if killed_for == "__startup__":
                reason = "the %s-side worker did not start within %.0f s" % (
                    side, startup_timeout)
            for mid in remaining_ids:
                errors[mid] = reason
                out_json, _ = protocol.side_paths(workdir, mid, side)
                protocol.save_json(out_json, {"id": mid, "side": side, "error": reason})
            break
        if killed_for is not None:
            errors[killed_for] = ("%s side timed out after %.0f s (--timeout); the program "
                                  "was stopped" % (side, timeout))
            failed = killed_for
        elif current is not None:
            failed = current
            errors[failed] = ("%s side: the process died while running this model "
                              "(exit code %s)%s" % (side, proc.returncode,
                                                     (": " + _tail(log, 3)) if _tail(log, 3)
                                                     else ""))
        else:
            failed = None
        if failed is not None:
            out_json, _ = protocol.side_paths(workdir, failed, side)
            protocol.save_json(out_json, {"id": failed, "side": side,
                                          "error": errors[failed]})
            done.add(failed)
        remaining = [m for m in remaining if m["id"] not in done]
        if failed is None and remaining:
            # finished without starting some models: should not happen
            for m in remaining:
                errors[m["id"]] = "%s side stopped before this model: %s" % (side, _tail(log))
                out_json, _ = protocol.side_paths(workdir, m["id"], side)
                protocol.save_json(out_json, {"id": m["id"], "side": side,
                                              "error": errors[m["id"]]})
            break
    return errors
