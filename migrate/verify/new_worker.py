"""verify's new side: run the migrated program's own Keras code on the old side's data.

Run as `python -m migrate.verify.new_worker JOB.json` in a process with Keras 3
(`TF_USE_LEGACY_KERAS` unset). Per model it imports the NEW module (never runs its
`main()`), finds its pieces by convention or spec, and runs them:

* `keras.Model` subclasses defined in the module, each paired with an old model
  function (`Model` <-> `model`, `Generator` <-> `generator`, ...), built with no
  constructor arguments (or the spec's);
* or, for a model of hand-made `tf.Variable` weights (no class), the variables NEW's own
  statements make before its training loop (`hand_made`), paired by creation order;
* `make_optimizer()` / `make_<x>_optimizer()`: the optimizers exactly as NEW builds them;
* `train_step` / `train_<x>_step` functions, paired with the old train ops in order;
  their parameters are filled by name: model parameters, optimizer parameters, data
  parameters named like the old placeholders, `training`.

Each model is run in up to three variants: as written (usually `tf.function`), the
other execution mode (eager python function or a `tf.function` wrapper) for the
noise floor and the step-0 gradients, and `momentum1` (BNs the old program never
updated at momentum=1.0, D6 proof). Initial weights come from the old side.
"""

import inspect
import os
import re
import sys
import time
import traceback

from migrate.verify import hand_made, protocol, randomness, weightmap
from migrate.verify.protocol import VerifyError

# The names the training rewrite gives train steps and optimizer factories
# (migrate/training_rewrite/program.py `_make_step`, `_fresh`): `train_step`, `train_<x>_step`,
# `make_optimizer`, `make_<x>_optimizer`, and on a clash with a name already taken in the
# module the same name with `_2`, `_3`, ... appended (never `_0`, `_1`, `_02`).
_CLASH_SUFFIX = r"(_[2-9]|_[1-9][0-9]+)?"
STEP_RE = re.compile(r"^train(_\w+)?_step%s$" % _CLASH_SUFFIX)
MAKER_RE = re.compile(r"^make(_\w+)?_optimizer%s$" % _CLASH_SUFFIX)
# A train-step parameter that holds an optimizer: `optimizer`, `d_optimizer`, `opt`, `g_optim`.
OPTIMIZER_PARAM_RE = re.compile(r"(^|_)(optimizer|optim|opt)(_\d+)?$")


def snake(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _describe(exc):
    if isinstance(exc, SystemExit):
        return "called sys.exit(%s)" % (exc.code,)
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(tb):
        fname = frame.filename.replace(os.sep, "/")
        if "migrate/verify" not in fname and "-packages/" not in fname:
            where = " (%s:%d)" % (os.path.basename(frame.filename), frame.lineno)
            break
    user = re.findall(r'File "([^"]+)", line (\d+), in', str(exc))
    user = [u for u in user if "-packages/" not in u[0].replace(os.sep, "/")]
    if user:
        where = " (%s:%s)" % (os.path.basename(user[-1][0]), user[-1][1])
    lines = [l.strip() for l in str(exc).strip().splitlines() if l.strip()]
    msg = lines[0] if lines else ""
    if lines and lines[0].startswith("in user code"):
        msg = lines[-1]  # tf.function errors put the cause last
    return "%s: %s%s" % (type(exc).__name__, msg, where)


def _import_new(path, model_id, hand_made_scope=None):
    try:
        if hand_made_scope is not None:  # without its training loop, its variables made
            import tensorflow as tf
            return hand_made.load(tf, protocol.import_program, path, "_tfm_verify_new_",
                                  model_id, hand_made_scope)
        module = protocol.import_program(path, "_tfm_verify_new_", model_id)
    except SystemExit as exc:
        raise VerifyError("importing the new program called sys.exit(%s)" % (exc.code,))
    except BaseException as exc:
        raise VerifyError("importing the new program failed: %s" % _describe(exc))
    return module


def call_inputs(inputs, arrays, key):
    """The model's positional inputs: a dict the old function took (`features.x`, recorded as
    `param.key`) is passed as that dict again, as NEW's model takes it."""
    args, dicts = [], {}
    for entry in inputs:
        param, _, field = entry["param"].partition(".")
        if field:
            if param not in dicts:
                dicts[param] = {}
                args.append(dicts[param])
            dicts[param][field] = arrays[entry[key]]
        else:
            args.append(arrays[entry[key]])
    return args


def instance_key(class_name, k):
    """models' key of the k-th model of a class (k > 0: a later variable scope's instance)."""
    return class_name if k == 0 else "%s#%d" % (class_name, k)


def model_for(models, entry, mode):
    """The model that runs a forward entry's mode: the instance its old call used."""
    return models[instance_key(entry["new"], mode.get("instance") or 0)]


def fixed_arguments(mode, model):
    """Keyword arguments for NEW's call() parameters that the old call passed a tensor not
    reaching its outputs (old_worker._unused_fed_args: `keep_prob` with dropout off), at the
    value the old program fed; only those call() takes by that name."""
    fixed = mode.get("fixed_args") or {}
    if not fixed:
        return {}
    try:
        params = inspect.signature(model.call).parameters
    except (TypeError, ValueError):
        return {}
    return {name: value for name, value in fixed.items() if name in params}


def constructor_arguments(module, class_name, scope=None):
    """(args, kwargs) of the first `ClassName(...)` in NEW's own code whose arguments are all
    module-level values (`Model(params=PARAMS)`), evaluated in the module: NEW constructs its
    models this way, so verify does too. ([], {}) when there is none.

    With `scope` (one of several old instances, each under its own variable scope), the call
    that names its model `scope` (`Net(name='net_eval')`), else the first that gives no name;
    None when there is neither."""
    calls = _constructor_calls(module, class_name)
    if scope is None:
        return calls[0] if calls else ([], {})
    for args, kwargs in calls:
        if kwargs.get("name") == scope:
            return args, kwargs
    return next(((a, k) for a, k in calls if "name" not in k), None)


def _constructor_calls(module, class_name, construct=False):
    import ast

    try:
        with open(module.__file__, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    namespace = vars(module)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == class_name):
            continue
        try:
            args = [_evaluate(a, namespace, construct) for a in node.args]
            kwargs = {k.arg: _evaluate(k.value, namespace, construct)
                      for k in node.keywords if k.arg}
        except Exception:
            continue  # reads a local of the program (a function argument): not usable here
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        found.append((args, kwargs))
    return found


def _evaluate(node, namespace, construct=False):
    """The value of a constructor argument made of module-level values; with `construct`,
    also calls of module-level classes (`Model(Config())`: a configuration object)."""
    import ast

    free = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if free - set(namespace) - {"True", "False", "None"}:
        raise NameError("not a module-level value")
    for n in ast.walk(node):
        if isinstance(n, (ast.Lambda, ast.NamedExpr)) or isinstance(n, ast.Call) and not (
                construct and isinstance(n.func, ast.Name)
                and inspect.isclass(namespace.get(n.func.id))):
            raise ValueError("computed at run time")
    return eval(compile(ast.Expression(node), "<constructor argument>", "eval"), dict(namespace))


def _lineno(obj):
    fn = getattr(obj, "python_function", obj)
    try:
        return fn.__code__.co_firstlineno
    except AttributeError:
        return 0


_flatten = protocol.flatten


def _loss_of(out):
    if isinstance(out, dict):
        out = out.get("loss", next(iter(out.values())))
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return float(out)


class NewModel(object):
    def __init__(self, tf, keras, np, module, model, job, old_meta, old):
        self.tf, self.keras, self.np = tf, keras, np
        self.module, self.model, self.job = module, model, job
        self.old_meta, self.old = old_meta, old
        self.spec = model.get("new_spec", {})
        self.steps = int(job["steps"])
        self.loads = 0
        self._load(module)
        self.mapping = None
        self.applied = {}  # maker -> TF1 names of the variables its optimizer applied to
        self.meta = {"id": model["id"], "side": "new", "variants": [],
                     "step_names": [n for n, _ in self.step_fns],
                     "classes": sorted(self.classes)}

    def _load(self, module):
        """Find the pieces in a (freshly imported) module: every variant gets its own
        import, so each tf.function is traced with its own model and optimizer."""
        keras, old_meta = self.keras, self.old_meta
        model = self.model
        self.module = module
        self.loads += 1
        self.classes = {}
        for pair in model["pairs"]:
            cls = getattr(module, pair["new"], None)
            if not (inspect.isclass(cls) and issubclass(cls, keras.Model)):
                raise VerifyError("new program has no keras.Model subclass %r (paired with "
                                  "old function %r)" % (pair["new"], pair["old"]))
            self.classes[pair["new"]] = cls
        self.makers = {n: f for n, f in vars(module).items()
                       if MAKER_RE.match(n) and callable(f)}
        step_names = self.spec.get("train_steps")
        if step_names:
            missing = [n for n in step_names if not callable(getattr(module, n, None))]
            if missing:
                raise VerifyError("new program has no train step %s (named in the spec)"
                                  % ", ".join(missing))
            self.step_fns = [(n, getattr(module, n)) for n in step_names]
        else:
            found = [(n, f) for n, f in vars(module).items()
                     if STEP_RE.match(n) and callable(f)]
            self.step_fns = sorted(found, key=lambda nf: _lineno(nf[1]))
        ntrain = len([t for t in old_meta["train_ops"] if not t.get("synthetic")])
        if ntrain == 0:
            # verify's synthetic loss stands in for the missing one: NEW's own train steps
            # (if any) have no old counterpart to pair with
            self.unpaired_steps = [n for n, _ in self.step_fns]
            self.step_fns = [("synthetic_step_%s" % t["synthetic"]["new"], None)
                             for t in old_meta["train_ops"]]
        elif len(self.step_fns) != ntrain:
            raise VerifyError(
                "cannot pair train ops with train steps: the old program has %d train op(s), "
                "the new program defines %d train step function(s) (%s); name them in the "
                "spec ([new] train_steps = [...], in old train-op order)"
                % (ntrain, len(self.step_fns), ", ".join(n for n, _ in self.step_fns) or "none"))

    # -- models and weights
    def _build(self):
        """The paired models, keyed by class; a class whose old function was called under
        several variable scopes (old_worker: `instances`) gets one model per scope, the
        second and later keyed `Class#k` (model_for)."""
        models = {}
        self.owners = {}
        scopes = {e["new"]: e.get("instances") for e in self.old_meta["forward"]}
        for pair in self.model["pairs"]:
            if pair.get("owner"):
                models[pair["new"]] = self._network_of_owner(pair)
                continue
            for k, scope in enumerate(scopes.get(pair["new"]) or [None]):
                kwargs = self.spec.get("model_kwargs", {}).get(pair["new"]) if k == 0 else None
                args = []
                if kwargs is None:
                    found = constructor_arguments(self.module, pair["new"], scope)
                    if found is None:
                        raise VerifyError(
                            "the old program called %s() under %d variable scopes (%s), each "
                            "its own variables; the new program constructs no %s(name=%r) for "
                            "the one under %r" % (pair["old"], len(scopes[pair["new"]]),
                                                  ", ".join(scopes[pair["new"]]), pair["new"],
                                                  scope, scope))
                    args, kwargs = found
                    kwargs = self._with_old_arguments(pair, args, kwargs)
                try:
                    models[instance_key(pair["new"], k)] = self.classes[pair["new"]](*args,
                                                                                     **kwargs)
                except TypeError as exc:
                    raise VerifyError("cannot construct new %s(%s): %s; give its constructor "
                                      "arguments in the spec ([new.model_kwargs.%s])"
                                      % (pair["new"], ", ".join("%s=..." % k for k in kwargs),
                                         exc, pair["new"]))
        for entry in self.old_meta["forward"]:
            m = entry["modes"].get("infer") or entry["modes"].get("train")
            inputs = call_inputs(m["inputs"], self.old, "key")
            for k in range(len(entry.get("instances") or [None])):
                model = models[instance_key(entry["new"], k)]
                try:
                    model(*inputs, training=False, **fixed_arguments(m, model))
                except BaseException as exc:
                    if isinstance(exc, SystemExit):
                        raise VerifyError("new %s called sys.exit(%s)" % (entry["new"], exc.code))
                    raise VerifyError("building new %s on inputs of shape %s failed: %s"
                                      % (entry["new"], [list(x.shape) for x in inputs],
                                         _describe(exc)))
        return models

    def _network_of_owner(self, pair):
        """The network of a whole-program class (discover.program_class_pairs): NEW's class
        constructed as NEW's own code does (`Model(Config())`), required arguments it cannot
        evaluate taken from the scalars the old program passed; its network attribute."""
        owner = pair["owner"]
        cls = getattr(self.module, owner["class"], None)
        if not inspect.isclass(cls):
            raise VerifyError("new program has no class %r (which makes %s)"
                              % (owner["class"], pair["new"]))
        # one object for all its networks (a GAN class's generator and discriminator)
        obj = next((o for o in self.owners.values() if type(o) is cls), None)
        if obj is None:
            calls = _constructor_calls(self.module, owner["class"], construct=True)
            args, kwargs = calls[0] if calls else ([], {})
            kwargs = self._with_old_arguments(pair, args, kwargs, cls)
            try:
                obj = cls(*args, **kwargs)
            except BaseException as exc:
                raise VerifyError("cannot construct new %s(%s): %s" % (
                    owner["class"], ", ".join("%s=..." % k for k in kwargs), _describe(exc)))
        network = getattr(obj, owner["attr"], None)
        if not isinstance(network, self.classes[pair["new"]]):
            raise VerifyError("new %s().%s is not a %s" % (owner["class"], owner["attr"],
                                                           pair["new"]))
        self.owners[pair["new"]] = obj
        return network

    def _with_old_arguments(self, pair, args, kwargs, cls=None):
        """Required constructor parameters still missing, named like an argument the old
        program passed its model function that is not a tensor: a `tf.Variable` (a step
        counter: made anew from its initial value) or a Python scalar."""
        passed = self.old_meta.get("model_args", {}).get(pair["old"], {})
        try:
            params = list(inspect.signature((cls or self.classes[pair["new"]]).__init__)
                          .parameters.items())[1:]  # without self
        except (TypeError, ValueError):
            return kwargs
        kwargs = dict(kwargs)
        for name, p in params[len(args):]:
            if (name in kwargs or name not in passed or p.default is not p.empty
                    or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)):
                continue
            arg = passed[name]
            if "variable" in arg:
                kwargs[name] = self.tf.Variable(self.np.asarray(arg["variable"],
                                                                dtype=arg["dtype"]),
                                                trainable=False, name=name)
            else:
                kwargs[name] = arg["value"]
        return kwargs

    def _hand_made(self):
        """(namespace, [(label, variable)]) of a hand-made tf.Variable program, else None."""
        return getattr(self.module, hand_made.NAMESPACE_ATTR, None)

    def _keras_vars(self, models):
        if self._hand_made() is not None:
            return [v for _, v in self._hand_made()[1]]
        seen, out = set(), []
        for model in models.values():
            for v in model.weights:
                if id(v) in seen or not v.dtype.startswith("float"):
                    continue
                seen.add(id(v))
                out.append(v)
        return out

    def _transfer(self, models):
        kvars = self._keras_vars(models)
        tf1 = [(v["name"], v["shape"]) for v in self.old_meta["vars"]]
        if self.mapping is None:
            if self._hand_made() is not None:
                paths = [label for label, _ in self._hand_made()[1]]
                res = hand_made.map_by_order(tf1, [(p, list(v.shape))
                                                   for p, v in zip(paths, kvars)])
            else:
                paths = [v.path for v in kvars]
                res = weightmap.map_weights(tf1, [(p, list(v.shape))
                                                  for p, v in zip(paths, kvars)],
                                            self.spec.get("weights"))
            self.mapping = res
            self.meta["inventory"] = {
                "tf1": len(tf1), "keras": len(kvars),
                "mapping": {n: paths[i] for n, i in res["mapping"].items()},
                "how": res["how"], "unmapped_tf1": res["unmapped_tf1"],
                "unmapped_keras": res["unmapped_keras"],
                "shape_mismatch": res["shape_mismatch"]}
            if self._hand_made() is not None:
                self.meta["inventory"]["new_kind"] = "new variable"
        byname = {}
        for name, i in self.mapping["mapping"].items():
            var = kvars[i]
            byname[name] = var
            value = self.old["init/" + name]
            if list(var.shape) == list(value.shape):
                var.assign(value)
        return byname

    def _layers(self, models):
        layers = []
        for m in models.values():
            layers.extend(m._flatten_layers(include_self=False, recursive=True))
        return layers

    def _owners(self, models):
        """id(variable) -> the layer whose moving mean/variance it is (one walk over the
        layers, not one per variable: a ResNet has hundreds of both)."""
        owners = {}
        for layer in self._layers(models):
            for attr in ("moving_mean", "moving_variance"):
                var = getattr(layer, attr, None)
                if var is not None:
                    owners.setdefault(id(var), layer)
        return owners

    # -- one variant
    def run_variant(self, variant, eager, arrays):
        tf, np = self.tf, self.np
        started, cpu_started = time.time(), time.process_time()
        prefix = variant + "/"
        if self.meta["variants"]:
            self._load(_import_new(self.model["new"], "%s_%s%d" % (self.model["id"], variant,
                                                                  self.loads),
                                   self.model.get("hand_made")))
        models = self._build()
        byname = self._transfer(models)
        init = {n: self.old["init/" + n] for n in byname}

        def restore():
            for n, v in byname.items():
                if list(v.shape) == list(init[n].shape):
                    v.assign(init[n])

        owners = self._owners(models)
        if variant == "momentum1":
            for name in self.old_meta.get("never_updated", []):
                var = byname.get(name)
                layer = owners.get(id(var)) if var is not None else None
                if layer is not None:
                    layer.momentum = 1.0

        momenta = {}
        for name, var in byname.items():
            layer = owners.get(id(var))
            if layer is not None:
                momenta[name] = float(layer.momentum)

        # forward, both modes, then back to the initial weights
        for entry in self.old_meta["forward"]:
            for mode in ("infer", "train"):
                m = entry["modes"].get(mode)
                if not m:
                    continue
                inputs = call_inputs(m["inputs"], self.old, "key")
                model = model_for(models, entry, m)
                try:
                    out = model(*inputs, training=(mode == "train"),
                                **fixed_arguments(m, model))
                except BaseException as exc:
                    raise VerifyError("new %s forward (%s mode) failed: %s"
                                      % (entry["new"], mode, _describe(exc)))
                for j, o in enumerate(_flatten(out)):
                    arrays[prefix + "fwd/%s/%s/%d" % (entry["old"], mode, j)] = np.asarray(o)
            restore()

        # optimizers and train steps
        optimizers = {}
        grads_seen = {}
        reverse = {id(v): n for n, v in byname.items()}

        def optimizer_for(maker_name, train_index):
            if maker_name not in optimizers and maker_name.startswith(SYNTHETIC_PREFIX):
                synthetic = self.old_meta["train_ops"][train_index]["synthetic"]
                optimizers[maker_name] = self.keras.optimizers.SGD(
                    learning_rate=synthetic["learning_rate"])
                if eager:
                    capture_gradients(optimizers[maker_name], maker_name)
                prebuild(optimizers[maker_name], maker_name)
            if maker_name not in optimizers:
                kwargs = dict(self.spec.get("optimizer_kwargs", {}).get(maker_name, {}))
                constants = self.old_meta.get("constants", {})
                maker = self.makers[maker_name]
                for p in inspect.signature(maker).parameters.values():
                    if p.name in kwargs or p.default is not inspect.Parameter.empty:
                        continue
                    if p.name == "self" and len({id(o) for o in self.owners.values()}) == 1:
                        # `make_optimizer(self)` of a whole-program class: its object
                        kwargs[p.name] = next(iter(self.owners.values()))
                    elif p.name in constants:
                        kwargs[p.name] = constants[p.name]
                    else:
                        raise VerifyError(
                            "new %s() needs argument %r; give it in the spec "
                            "([model.optimizer_kwargs.%s] %s = ...)"
                            % (maker_name, p.name, maker_name, p.name))
                try:
                    opt = maker(**kwargs)
                except BaseException as exc:
                    raise VerifyError("new %s() failed: %s" % (maker_name, _describe(exc)))
                optimizers[maker_name] = opt
                if eager:
                    capture_gradients(opt, maker_name)
                prebuild(opt, maker_name)
            return optimizers[maker_name]

        def prebuild(opt, maker_name):
            """Create the optimizer's slots for the variables the eager run saw it apply
            to, as its first apply would (same code, same values): a tf.function that
            creates variables on its first call is traced twice."""
            names = self.applied.get(maker_name)
            if eager or not names or None in names or getattr(opt, "built", True):
                return
            if all(n in byname for n in names):
                opt.build([byname[n] for n in names])

        # The eager run that only measures the noise floor (not the as-written run) traces
        # the optimizer update itself: Keras's eager update costs ~1 s per model in Python
        # dispatch, and elementwise update math is the same in both modes; the model's
        # forward and backward pass, where the two modes differ, stay eager.
        trace_update = eager and variant != self.meta.get("primary")

        def capture_gradients(opt, maker_name):
            orig = opt.apply
            traced = {}  # variable ids -> the update traced for them (variables by closure)

            def apply(grads, trainable_variables=None, _orig=orig, _name=maker_name):
                if _name not in grads_seen and trainable_variables is not None:
                    grads_seen[_name] = [(reverse.get(id(v)), g)
                                         for g, v in zip(grads, trainable_variables)]
                grads = list(grads)
                if (not trace_update or trainable_variables is None
                        or any(g is None for g in grads)):
                    return _orig(grads, trainable_variables)
                variables = list(trainable_variables)
                if not opt.built:  # slots first, as Keras's apply would: one trace
                    opt.build(variables)
                key = tuple(id(v) for v in variables)
                if key not in traced:
                    traced[key] = _traced_update(tf, _orig, variables)
                return traced[key](grads)

            opt.apply = apply

        frozen = [byname[n] for n in self.old_meta.get("frozen", []) if n in byname]
        calls = []
        for t, (sname, fn) in zip(self.old_meta["train_ops"], self.step_fns):
            if t.get("synthetic"):
                fn = synthetic_step(tf, t["synthetic"].get("training"))
                runner = fn if eager else tf.function(fn)
                argspec = ([("model", t["synthetic"]["new"]),
                            ("optimizer", "%s%d" % (SYNTHETIC_PREFIX, t["index"]))]
                           + [("data", name) for name in t["synthetic"]["inputs"]])
                calls.append((t, sname, runner, argspec))
                continue
            pyfn = getattr(fn, "python_function", None)
            is_function = pyfn is not None
            if eager:
                runner = pyfn if is_function else fn
            else:
                runner = fn if is_function else tf.function(fn)
            argspec = self._step_args(sname, pyfn or fn, t, models)
            calls.append((t, sname, runner, argspec))
        self.meta["as_written"] = ("function" if all(getattr(fn, "python_function", None)
                                                     is not None or fn is None
                                                     for _, fn in self.step_fns)
                                   else "eager")
        losses = {t["index"]: [] for t in self.old_meta["train_ops"]}
        moving_names = [n for n in byname
                        if n.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")]
        updated_by = self.old_meta.get("updated_by", {})
        t0 = time.time()
        for step in range(self.steps):
            for t, sname, runner, argspec in calls:
                if variant == "scoped":
                    keep = set(updated_by.get(str(t["index"]), []))
                    snapshot = {n: byname[n].numpy() for n in moving_names if n not in keep}
                args = []
                maker_for_grads = None
                for kind, value in argspec:
                    if kind == "model":
                        args.append(models[value])
                    elif kind == "optimizer":
                        args.append(optimizer_for(value, t["index"]))
                        maker_for_grads = value
                    elif kind == "data":
                        args.append(tf.constant(self.old["data/%d/%d/%s" % (t["index"], step,
                                                                           value)]))
                    else:
                        args.append(value)
                try:
                    out = runner(*args)
                except SystemExit as exc:
                    raise VerifyError("new %s called sys.exit(%s)" % (sname, exc.code))
                except BaseException as exc:
                    raise VerifyError("new %s failed at step %d: %s"
                                      % (sname, step, _describe(exc)))
                try:
                    losses[t["index"]].append(_loss_of(out))
                except Exception:
                    raise VerifyError("new %s must return the loss (a scalar, or a tuple/dict "
                                      "whose first/'loss' entry is the loss); got %r"
                                      % (sname, type(out).__name__))
                for n in self.old_meta.get("frozen", []):
                    if n in byname:
                        byname[n].assign(init[n])
                if variant == "scoped":
                    for n, value in snapshot.items():
                        byname[n].assign(value)
                if eager and step == 0 and maker_for_grads in grads_seen:
                    for name, g in grads_seen[maker_for_grads]:
                        if name is not None and g is not None:
                            arrays[prefix + "grad0/%d/%s" % (t["index"], name)] = (
                                np.asarray(tf.convert_to_tensor(g)))
                    self.applied.setdefault(maker_for_grads, [
                        name for name, _ in grads_seen[maker_for_grads]])
                    grads_seen[maker_for_grads] = "done"
        del frozen
        timing = time.time() - t0
        # how often each traced train step was traced (1 is the goal: a retrace, from a
        # Python scalar argument or variables made on the first call, costs a whole trace)
        traces = {sname: runner.experimental_get_tracing_count()
                  for _, sname, runner, _ in calls
                  if hasattr(runner, "experimental_get_tracing_count")}
        for idx, values in losses.items():
            arrays[prefix + "loss/%d" % idx] = np.asarray(values, dtype=np.float64)
        for n, v in byname.items():
            arrays[prefix + "final/" + n] = np.asarray(v.numpy())

        # inference after training on the held-out batch, plain and Bessel-corrected
        def infer_after(tag):
            for entry in self.old_meta["forward"]:
                m = entry["modes"].get("infer")
                if not m:
                    continue
                inputs = call_inputs(m["inputs"], self.old, "held_key")
                model = model_for(models, entry, m)
                out = model(*inputs, training=False, **fixed_arguments(m, model))
                for j, o in enumerate(_flatten(out)):
                    arrays[prefix + "%s/%s/%d" % (tag, entry["old"], j)] = np.asarray(o)

        infer_after("after")
        fused = self.old_meta.get("fused_bn") or {}
        if fused:
            saved = {}
            for name, info in fused.items():
                var = byname.get(name)
                n = info.get("n")
                k = self.old_meta.get("bn_updates", {}).get(name, 0)
                if var is None or not n or n < 2 or name not in momenta or k == 0:
                    continue
                mk = momenta[name] ** k
                mv0 = init[name]
                saved[name] = var.numpy()
                c = n / (n - 1.0)
                var.assign((mk * mv0 + c * (saved[name] - mk * mv0)).astype(saved[name].dtype))
            if saved:
                infer_after("after_bessel")
                for name, value in saved.items():
                    byname[name].assign(value)
        self.meta["variants"].append({"name": variant, "eager": eager,
                                      "train_s": timing, "total_s": time.time() - started,
                                      "cpu_s": time.process_time() - cpu_started,
                                      "traces": traces})
        if variant in ("function", "eager"):
            self.meta.setdefault("momentum", momenta)

    def _step_args(self, sname, fn, t, models):
        sig = inspect.signature(fn)
        spec_args = self.spec.get("args", {}).get(sname, {})
        model_names = {}
        classes = [c for c in models if "#" not in c]  # a later instance is not a step's
        for cname in classes:
            model_names[snake(cname)] = cname
            model_names[cname.lower()] = cname
            model_names[cname] = cname
        if len(classes) == 1:
            model_names.setdefault("model", classes[0])
        # the model objects NEW's own calls of this step pass (discover.step_model_arguments):
        # `train_d_step(D, G, ...)` with `D = Discriminator()` pairs a parameter named `D`
        passed = {param: cname for param, cname in
                  self.model.get("step_models", {}).get(sname, {}).items() if cname in models}
        data = {}
        for d in t["data"]:
            full = d["placeholder"]
            data.setdefault(full, full)
            data.setdefault(full.replace("/", "_"), full)
            data.setdefault(full.rsplit("/", 1)[-1], full)
            if d.get("var"):
                data.setdefault(d["var"], full)  # the program's own variable name
        argspec = []
        for p in sig.parameters.values():
            n = p.name
            if n in spec_args:
                src = spec_args[n]
                if src in models:
                    argspec.append(("model", src))
                elif src in self.makers:
                    argspec.append(("optimizer", src))
                elif src in data:
                    argspec.append(("data", data[src]))
                else:
                    argspec.append(("value", src))
            elif n in passed:
                argspec.append(("model", passed[n]))
            elif n in model_names:
                argspec.append(("model", model_names[n]))
            elif OPTIMIZER_PARAM_RE.search(n):
                maker = self._maker_for(n)
                if maker is None:
                    raise VerifyError("new %s parameter %r: no make_*optimizer function "
                                      "builds it (found: %s)"
                                      % (sname, n, ", ".join(sorted(self.makers)) or "none"))
                argspec.append(("optimizer", maker))
            elif self._hand_made() is not None and n in self._hand_made()[0] \
                    and hand_made.holds_variables(self.tf, self._hand_made()[0][n]):
                # the variables NEW's own statements made, as NEW binds them (`weights`)
                argspec.append(("value", self._hand_made()[0][n]))
            elif n in data:
                argspec.append(("data", data[n]))
            elif n in ("training", "is_training"):
                argspec.append(("value", True))
            elif p.default is not inspect.Parameter.empty:
                break
            else:
                raise VerifyError(
                    "new %s parameter %r matches no old placeholder (%s), model or optimizer; "
                    "pair it in the spec ([new.args.%s] %s = \"<placeholder>\")"
                    % (sname, n, ", ".join(d["placeholder"] for d in t["data"]) or "none",
                       sname, n))
        return argspec

    def _maker_for(self, param):
        cands = ["make_%s" % param, "make_optimizer" if param == "optimizer" else None]
        core = param.replace("optimizer", "").strip("_")
        if core:
            cands += ["make_%s_optimizer" % core, "make_optimizer_%s" % core]
        stem = OPTIMIZER_PARAM_RE.sub("", param)  # the rewrite's naming: d_opt -> make_d_optimizer
        cands.append("make_%s_optimizer" % stem if stem else "make_optimizer")
        for c in cands:
            if c and c in self.makers:
                return c
        if len(self.makers) == 1:
            return next(iter(self.makers))
        return None


def _traced_update(tf, apply, variables):
    """`apply(grads, variables)` as a tf.function of the gradients only (the variables are
    closed over: a tf.function argument would turn them into tensors)."""
    return tf.function(lambda grads: apply(grads, variables))


SYNTHETIC_PREFIX = "__synthetic_sgd_"


def synthetic_step(tf, training):
    """The new side of verify's synthetic loss (old_worker._add_synthetic_train_ops):
    sum_k mean(square(output_k)) over the model's float outputs, one plain SGD step on
    the variables it reaches (None gradients left out, as TF1 minimize does)."""
    def step(model, optimizer, *inputs):
        with tf.GradientTape() as tape:
            out = (model(*inputs, training=training) if training is not None
                   else model(*inputs))
            outs = [o for o in _flatten(out) if o.dtype.is_floating]
            loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(o, tf.float32))) for o in outs])
        variables = model.trainable_variables
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables)
                 if g is not None]
        optimizer.apply_gradients(pairs)
        return loss
    return step


def run_model(tf, keras, np, model, job, out_json, out_npz):
    t0 = time.time()
    old_json, old_npz = model["old_result"]
    old_meta = protocol.load_json(old_json)
    old = protocol.load_arrays(old_npz)
    module = _import_new(model["new"], model["id"], model.get("hand_made"))
    nm = NewModel(tf, keras, np, module, model, job, old_meta, old)
    arrays = {}
    as_written_function = all(getattr(fn, "python_function", None) is not None or fn is None
                              for _, fn in nm.step_fns)
    primary, other = (("function", False), ("eager", True)) if as_written_function else \
        (("eager", True), ("function", False))
    nm.meta["primary"] = primary[0]
    # the eager run goes first: the variables each optimizer applies to, seen there, let the
    # traced runs build their optimizers before the first call (one trace instead of two)
    for name, eager in sorted([primary] + ([] if job.get("no_floor") else [other]),
                              key=lambda variant: not variant[1]):
        if name == primary[0]:
            nm.run_variant(name, eager, arrays)
            continue
        try:
            nm.run_variant(name, eager, arrays)
        except VerifyError as exc:
            nm.meta["floor_error"] = str(exc)
    if old_meta.get("never_updated"):
        nm.run_variant("momentum1", primary[1], arrays)
    if old_meta.get("partial_updates"):
        nm.run_variant("scoped", primary[1], arrays)
    if getattr(nm, "unpaired_steps", None):
        nm.meta.setdefault("notes", []).append(
            "new train step(s) %s not run: the old program has no train op to pair them with"
            % ", ".join(nm.unpaired_steps))
    nm.meta["timing_s"] = time.time() - t0
    nm.meta["dropout_disabled"] = DROPOUT["sites"]
    nm.meta["random_disabled"] = randomness.take_sites()
    DROPOUT["sites"] = 0
    protocol.save_arrays(out_npz, arrays)
    protocol.save_json(out_json, nm.meta)


DROPOUT = {"sites": 0}


def _disable_dropout(tf, keras):
    """Same rule as the old side: dropout is the identity during verification."""
    def nn_dropout(x, *args, **kwargs):
        DROPOUT["sites"] += 1
        return tf.identity(x)

    def layer_call(self, inputs, training=False):
        DROPOUT["sites"] += 1
        return inputs

    tf.nn.dropout = nn_dropout
    keras.layers.Dropout.call = layer_call


KERNEL_CACHE_MODELS = 8  # models between two clears of TensorFlow's eager kernel cache


def fresh_keras_state(keras, models_done):
    """Keras's global state reset before each model, as `keras.backend.clear_session()`
    does (auto layer names restart, so a model's weight paths do not depend on the models
    before it), but TensorFlow's eager kernel cache is emptied only every
    KERNEL_CACHE_MODELS models: it holds compiled op kernels (rebuilding the same ones
    cost every model ~40 ms) and the call kernels of each model's tf.functions (~1.5 MB a
    model until the next clear). Kernels of seeded random ops keep their state across
    models in between, but `tf.random.set_seed` clears the cache itself, and verify runs
    models with randomness disabled."""
    ctx = None
    if models_done % KERNEL_CACHE_MODELS:
        try:
            from tensorflow.python.eager import context
            ctx = context.context()
            ctx.clear_kernel_cache = lambda: None  # shadows the method for this one call
        except Exception:  # a TensorFlow without it: the full clear_session
            ctx = None
    try:
        keras.backend.clear_session()
    finally:
        if ctx is not None:
            del ctx.clear_kernel_cache


def _wait_for(path, parent):
    """Pre-started worker: TensorFlow is imported while the old side runs; wait for
    the job file (written atomically), or exit when the parent is gone."""
    while not os.path.exists(path):
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.05)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    protocol.redirect_stdout_to_stderr()
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv[1] == "--wait":
        jobfile, progress_path, parent = argv[2], argv[3], os.getppid()
    else:
        jobfile, progress_path, parent = argv[1], None, None
        progress_path = protocol.load_json(jobfile)["progress"]
    progress = open(progress_path, "a", buffering=1)
    import gc
    import numpy as np
    import tensorflow as tf
    import keras
    _disable_dropout(tf, keras)
    randomness.disable_random_ops(tf, tf)  # as the old side: the programs' own random ops
    # TensorFlow and Keras are millions of long-lived objects; keras clear_session()'s
    # gc.collect() walked them all for every model (~0.15 s a model). Frozen, a collection
    # only walks what the models made.
    gc.freeze()
    progress.write("ready %f\n" % time.time())
    if parent is not None:
        _wait_for(jobfile, parent)
    job = protocol.load_json(jobfile)
    verify_parent = os.getppid()

    done = [0]

    def run_one(model, out_json, out_npz):
        fresh_keras_state(keras, done[0])
        done[0] += 1
        run_model(tf, keras, np, model, job, out_json, out_npz)

    def old_result_ready(model):
        """Pipelined with the old side: wait for this model's old result; skip the model
        when the old side could not produce one (its error is the model's result)."""
        old_json = model["old_result"][0]
        while not os.path.exists(old_json):
            if os.getppid() != verify_parent:
                os._exit(0)
            time.sleep(0.02)
        return not protocol.load_json(old_json).get("error")

    protocol.run_models(job, "new", run_one, _describe, progress,
                        prepare=old_result_ready if job.get("pipelined") else None)


if __name__ == "__main__":
    main()
