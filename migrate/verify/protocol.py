"""Files exchanged between verify's parent process and its two workers.

Each side writes, per model, one `.npz` (arrays) and one `.json` (metadata) into the
run's work directory; the parent never reads a worker's stdout (user code may print).
Only numpy and the standard library are used here: the parent process never imports
TensorFlow.
"""

import json
import os

import numpy as np

# Exit codes of `tf-migrate verify`.
EXIT_PASS = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_UNVERIFIABLE = 3


class VerifyError(Exception):
    """A model cannot be verified (exit 3); the message says why."""


def save_arrays(path, arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)


def load_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def side_paths(workdir, model_id, side):
    base = os.path.join(workdir, "%s.%s" % (model_id, side))
    return base + ".json", base + ".npz"


def import_program(path, prefix, model_id):
    """Import the user program at `path` as a fresh module (its directory on sys.path, so its
    sibling imports work); each (prefix, model_id) gets its own module object."""
    import importlib.util
    import sys

    name = prefix + "".join(c if c.isalnum() else "_" for c in model_id)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    _forget_flags_of_earlier_imports(prefix)
    sys.modules[name] = module
    deferred = _deferred_program(path)
    if deferred is None:
        spec.loader.exec_module(module)
    else:
        definitions, program = deferred
        exec(definitions, module.__dict__)
        module.__dict__[MODULE_PROGRAM] = program
    _parse_flags_with_defaults()
    return module


def _forget_flags_of_earlier_imports(prefix):
    """Remove from absl's global FLAGS the flags that earlier imports made here (module names
    starting with `prefix`) defined, so the program's `flags.DEFINE_*` at import runs again.

    A worker imports a program afresh for every variant (each gets its own module-level state:
    models, optimizers, tf.functions, as a fresh run of the program would) and imports the next
    model's program into the same process; absl keeps one FLAGS per process and refuses a flag
    defined a second time (DuplicateFlagError). The earlier module is never used again, so its
    flags go; flags of modules imported once (a sibling `config.py`) stay."""
    import sys
    absl_flags = sys.modules.get("absl.flags")
    if absl_flags is None:
        return
    flag_values = absl_flags.FLAGS
    try:
        by_module = flag_values.flags_by_module_dict()
    except Exception:
        return
    for module_name in [m for m in by_module if m.startswith(prefix)]:
        for flag in list(by_module.get(module_name, ())):
            for name in (flag.name, flag.short_name):
                # only the names still bound to this very flag (another module's flag may have
                # taken the name since)
                if name and name in flag_values and flag_values[name] is flag:
                    delattr(flag_values, name)


def _parse_flags_with_defaults():
    """A program using `tf.app.flags` / `absl.flags` reads `FLAGS.x` only after `app.run`
    parsed the command line; verify runs its functions without `app.run`, so the flags it
    defined are parsed here with their defaults (no command-line flags)."""
    import sys
    absl_flags = sys.modules.get("absl.flags")
    if absl_flags is None:
        return
    try:
        if not absl_flags.FLAGS.is_parsed():
            absl_flags.FLAGS([sys.argv[0]])
    except Exception:
        pass  # flags it cannot parse: the program then reports what it lacks


# A module-level Session program (statements after the definitions, or the body of `if __name__
# == "__main__":`, found by migrate.module_programs) does not run at import: the import stops
# before it and keeps it, compiled, under this name. The old side runs it as the program's entry
# point (after wrapping the model functions); the new side never runs it (its training loop).
MODULE_PROGRAM = "__tfm_module_program__"


def _deferred_program(path):
    """(code of the module without its module-level program, code of the program), or None."""
    import ast

    from migrate.context import _walk
    from migrate.module_programs import find_module_program
    from migrate.names import ImportResolver

    try:
        with open(path, "rb") as f:
            source = f.read()
        tree = ast.parse(source, filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    program = find_module_program(tree, ImportResolver(tree, _walk(tree)[0]).resolve)
    if program is None:
        return None
    statements = program.statements(tree)
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
           for s in statements for n in ast.walk(s)):
        return None  # definitions inside it: the import runs it as it is
    # Definitions between its statements are made before it (module_programs: `hoisted`).
    before = ast.Module(body=[*tree.body[:program.start], *(tree.body[i] for i in program.hoisted)],
                        type_ignores=[])
    after = ast.Module(body=statements, type_ignores=[])
    return compile(before, path, "exec"), compile(after, path, "exec")


def entry_function(module, entry_name=None):
    """The old program's entry point: `entry_name`, else its deferred module-level program,
    else `main` (None when there is none)."""
    if entry_name is None and MODULE_PROGRAM in module.__dict__:
        program = module.__dict__[MODULE_PROGRAM]

        def run_module_program():
            exec(program, module.__dict__)

        return run_module_program
    fn = getattr(module, entry_name or "main", None)
    return fn if callable(fn) else None


def default_entry_args(fn):
    """`main(_)` / `main(argv)`, run by `tf.app.run` / `absl.app.run` with the command line left
    after flag parsing: given the program's name alone (flags: _parse_flags_with_defaults)."""
    import inspect
    import sys
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    required = [p for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) != 1:
        return []
    return [[sys.argv[0]]]


def redirect_stdout_to_stderr():
    """Point fd 1 at fd 2 so that user prints can never reach the report stream."""
    import sys
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def run_models(job, side, run_one, describe, progress, prepare=None):
    """The worker loop both sides share: run each model, turn user-code failures into a
    per-model error record, report progress, and leave without running user atexit code.
    `prepare(model)` runs before a model's timeout clock starts; False skips the model
    (nothing written: the parent reports the reason it already has)."""
    import sys
    import time
    import traceback

    for model in job["models"]:
        out_json, out_npz = side_paths(job["workdir"], model["id"], side)
        if prepare is not None and not prepare(model):
            progress.write("start %s %f\n" % (model["id"], time.time()))
            progress.write("done %s %f\n" % (model["id"], time.time()))
            continue
        progress.write("start %s %f\n" % (model["id"], time.time()))
        try:
            run_one(model, out_json, out_npz)
        except VerifyError as exc:
            save_json(out_json, {"id": model["id"], "side": side, "error": str(exc)})
        except BaseException as exc:  # user code: SystemExit, KeyboardInterrupt, ...
            if isinstance(exc, SystemExit):
                msg = "%s program called sys.exit(%s)" % (side, exc.code)
            else:
                msg = "internal error on the %s side: %s\n%s" % (
                    side, describe(exc), traceback.format_exc())
            save_json(out_json, {"id": model["id"], "side": side, "error": msg,
                                 "internal": not isinstance(exc, SystemExit)})
        progress.write("done %s %f\n" % (model["id"], time.time()))
    progress.write("finished %f\n" % time.time())
    progress.close()
    sys.stderr.flush()
    os._exit(0)


def flatten(out):
    """A model's outputs (tensor, list, tuple or dict, nested) as a flat list, dict keys sorted."""
    if isinstance(out, (list, tuple)):
        res = []
        for item in out:
            res.extend(flatten(item))
        return res
    if isinstance(out, dict):
        res = []
        for key in sorted(out):
            res.extend(flatten(out[key]))
        return res
    return [out]
