"""`tf-migrate verify`: prove numerically that a migrated TF2 program computes what the
TF1 original did.

Layout (the parent process never imports TensorFlow):

* `command`   -- the click command `verify` (registered by the CLI), `run_verify()`;
* `discover`  -- old/new file pairs, model pairing conventions, the `--spec` TOML;
* `runner`    -- the two worker processes, per-model timeouts, crash isolation;
* `old_worker` + `tf1_runtime` -- the TF1 side (legacy emulation, graph capture);
* `new_worker` -- the Keras 3 side (runs NEW's own classes, optimizers, train steps);
* `weightmap` -- TF1 variable names -> Keras weight paths;
* `compare`, `report` -- closeness rule and tolerances of numerics.md §2, known
  divergences, text / JSON reports.
"""
