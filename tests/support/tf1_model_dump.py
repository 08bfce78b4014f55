"""Legacy-TF1 side of the model-equivalence test: build each model function, dump variables and output.

Run as: python tf1_model_dump.py SPEC.json OUT_DIR RUN_TF1_DIR
(RUN_TF1_DIR holds ../shared/acceptance/run_tf1.py, the TF1 stand-in.)
"""
import importlib.util
import json
import sys

import numpy as np


def main(spec_path, out_dir, runner_dir):
    sys.path.insert(0, runner_dir)
    import run_tf1
    tf = run_tf1.install()
    for entry in json.load(open(spec_path)):
        tf.reset_default_graph()
        tf.set_random_seed(0)
        spec = importlib.util.spec_from_file_location(f"old_{entry['id']}", entry["old"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        inputs = [tf.placeholder(tf.float32, [None] + shape) for shape in entry["inputs"]]
        kwargs = dict(entry.get("kwargs", {}))
        extra_vars = set()
        for name in entry.get("variables", []):
            kwargs[name] = tf.Variable(0, trainable=False, name=name)
            extra_vars.add(name + ":0")
        output = getattr(module, entry["function"])(*inputs, **kwargs)
        rng = np.random.RandomState(1)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            variables = [v for v in tf.global_variables() if v.name not in extra_vars]
            for v in variables:  # non-trivial moving statistics, so inference mode means something
                if v.name.endswith(("moving_mean:0", "moving_variance:0")):
                    shape = v.shape.as_list()
                    value = rng.uniform(0.5, 1.5, shape) if "variance" in v.name else rng.randn(*shape)
                    v.load(value.astype(np.float32), sess)
            feeds = {ph: rng.randn(4, *entry["inputs"][i]).astype(np.float32)
                     for i, ph in enumerate(inputs)}
            out = sess.run(output, feed_dict=feeds)
            values = sess.run(variables)
        arrays = {f"input_{i}": feeds[ph] for i, ph in enumerate(inputs)}
        arrays["output"] = out
        names = []
        for i, (v, value) in enumerate(zip(variables, values)):
            arrays[f"var_{i}"] = value
            names.append(v.name)
        np.savez(f"{out_dir}/{entry['id']}.npz", **arrays)
        json.dump(names, open(f"{out_dir}/{entry['id']}.json", "w"))
    print("TF1 done")


if __name__ == "__main__":
    main(*sys.argv[1:])
