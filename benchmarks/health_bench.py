"""Cost of the health suite relative to one compiled forward+backward pass: ``python benchmarks/health_bench.py``.

On the zoo ``cnn`` with 512 samples (its 450 validation digits and the first 62 training digits, as
the digits28 validation split has only 450), in one process under the TensorFlow backend, each
repetition measures:

reference  a fresh ``load_model`` of cnn.keras, plus one ``tf.function`` forward+backward pass
           (sparse cross-entropy, gradients of every trainable variable) over the 512 samples,
           compiled on its first call: the cost of one training-style step on that batch from cold;
suite      a fresh ``load_model`` of cnn.keras, plus the health analyzers (health.gradients,
           health.units, health.overfitting, health.spectra, each with its plots) run one after the
           other on that model as a worker process runs them;
diagnose() the same through ``diagnostics.diagnose`` on the in-memory model, which adds the
           host's work (report.json, report.html with the PNGs inlined): reported beside the ratio.

It prints each repetition, the median of the per-repetition ratios suite / reference (target: < 3)
and the ratio of the two medians.

``--new-checks`` measures instead the checks added for issue 12, each against one compiled
forward+backward pass over the same number of samples on the model it runs on, traced on its first
call as the analyzer's own compiled function is (the warm second call is printed too): health.temporal on the zoo lstm
(256 validation sequences), explain.shortcut on the zoo cnn (128 training + 128 validation digits),
and the baseline comparison of health.overfitting (numpy on outputs the shared pass already has). The first
repetition warms TensorFlow, Keras and matplotlib imports and is not counted. Timings on a shared
machine are noisy: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SUITE = ("health.gradients", "health.units", "health.overfitting", "health.spectra")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="counted repetitions (default 5)")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--new-checks", action="store_true", help="time the issue-12 checks instead (see above)")
    args = parser.parse_args(argv)
    if args.new_checks:
        return new_checks(args.repeats)

    import keras
    import numpy as np
    import tensorflow as tf

    import diagnostics
    import diagnostics_zoo as zoo

    path = zoo.ARTIFACT_DIR / "cnn.keras"
    d = zoo.DATASETS["digits28"](0)
    extra = args.samples - len(d["x_val"])
    x = np.concatenate([d["x_val"], d["x_train"][:max(0, extra)]])[:args.samples]
    y = np.concatenate([d["y_val"], d["y_train"][:max(0, extra)]])[:args.samples]
    data = {"x_train": d["x_train"], "y_train": d["y_train"], "x_val": x, "y_val": y}
    print(f"zoo cnn, {len(x)} samples ({min(len(x), len(d['x_val']))} validation + {max(0, extra)} training), "
          f"keras {keras.__version__}, tensorflow {tf.__version__}", flush=True)

    def reference() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        model = keras.saving.load_model(path, compile=False)
        t1 = time.perf_counter()
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        variables = model.trainable_variables

        @tf.function
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=False))
            return loss, tape.gradient(loss, variables)

        xb, yb = tf.constant(x), tf.constant(y)
        _, grads = step(xb, yb)
        [g.numpy() for g in grads]
        t2 = time.perf_counter()
        _, grads = step(xb, yb)
        [g.numpy() for g in grads]
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    from pathlib import Path

    from diagnostics import Context, Data
    from diagnostics.modelinfo import inspect_model
    from diagnostics._plugin_manager import PluginHost

    host = PluginHost().load()
    history = zoo_history()
    frame = Data(**data, source="digits28")

    def suite() -> tuple[float, dict]:
        """Model load + each analyzer run as a worker runs it (a Context on the loaded model)."""
        t0 = time.perf_counter()
        model = keras.saving.load_model(path, compile=False)
        info = inspect_model(model, loss="sparse_categorical_crossentropy", kind_hint="image")
        times = {}
        with tempfile.TemporaryDirectory() as out:
            for name in SUITE:
                art = Path(out) / name
                art.mkdir()
                ctx = Context(model=model, info=info, data=frame, history=history, metadata={}, seed=0, artifact_dir=art,
                              budget_s=300, backend="tensorflow", options={"max_samples": len(x)})
                t = time.perf_counter()
                result = host.analyzer(name).cls().run(ctx)
                times[name] = (result.skipped or "ok", round(time.perf_counter() - t, 3))
        return time.perf_counter() - t0, times

    def end_to_end() -> float:
        """The notebook API on a freshly loaded model: analyzers plus report.json and report.html."""
        t0 = time.perf_counter()
        model = keras.saving.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as out:
            report = diagnostics.diagnose(model, data, out_dir=out, only=SUITE, history=history,
                                          options={"*": {"max_samples": len(x)}})
        assert all(r.status == "ok" for r in report.analyzers), [(r.name, r.status, r.reason) for r in report.analyzers]
        return time.perf_counter() - t0

    ratios, e2e_ratios, rows = [], [], []
    for rep in range(args.repeats + 1):
        load_ref, cold, warm = reference()
        total, statuses = suite()
        e2e = end_to_end()
        bad = {k: v for k, v in statuses.items() if v[0] != "ok"}
        if bad:
            print(f"suite did not run cleanly: {bad}", file=sys.stderr)
            return 1
        ref = load_ref + cold
        label = "warm-up" if rep == 0 else f"rep {rep}"
        print(f"{label:8s} reference {ref:6.3f} s (load {load_ref:.3f} + compiled fwd+bwd {cold:.3f}; warm call {warm:.3f})"
              f"  suite {total:6.3f} s {statuses}  ratio {total / ref:.2f}  |  diagnose() {e2e:.3f} s ratio {e2e / ref:.2f}",
              flush=True)
        if rep:
            ratios.append(total / ref)
            e2e_ratios.append(e2e / ref)
            rows.append((ref, total, warm, e2e))
    med = statistics.median(ratios)
    of_medians = statistics.median(r[1] for r in rows) / statistics.median(r[0] for r in rows)
    print(f"median ratio suite / (load + compiled fwd+bwd) = {med:.2f} over {len(ratios)} repetitions (target < 3); "
          f"ratio of the medians {of_medians:.2f}; "
          f"median suite {statistics.median(r[1] for r in rows):.3f} s, reference {statistics.median(r[0] for r in rows):.3f} s, "
          f"warm fwd+bwd call {statistics.median(r[2] for r in rows):.3f} s; end to end through diagnose() with the "
          f"report: median {statistics.median(r[3] for r in rows):.3f} s, ratio {statistics.median(e2e_ratios):.2f}")
    return 0


def new_checks(repeats: int) -> int:
    """Each issue-12 check against one warm compiled forward+backward pass over its samples."""
    import tempfile
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf

    import diagnostics_zoo as zoo
    from diagnostics import Context, Data
    from diagnostics_plugins.health_overfitting import baseline_comparison
    from diagnostics.modelinfo import inspect_model
    from diagnostics._plugin_manager import PluginHost

    host = PluginHost().load()

    def warm_step(model, x, y, loss_fn):
        variables = model.trainable_variables

        @tf.function
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=False))
            return loss, tape.gradient(loss, variables)

        xb, yb = tf.constant(x), tf.constant(y)
        t = time.perf_counter()
        [g.numpy() for g in step(xb, yb)[1]]
        cold = time.perf_counter() - t
        t = time.perf_counter()
        [g.numpy() for g in step(xb, yb)[1]]
        return cold, time.perf_counter() - t

    cases = [("health.temporal", "lstm", "motif_sequences", 256, "sequence", "sparse_categorical_crossentropy",
              {"max_samples": 256}),
             ("explain.shortcut", "cnn", "digits28", 256, "image", "sparse_categorical_crossentropy", {"samples": 128})]
    print("issue-12 checks, each vs one compiled forward+backward pass over as many samples on the same model "
          "(traced on its first call, as the check's own compiled function is); timings noisy on a shared machine: "
          "compare ratios", flush=True)
    for analyzer, stem, dataset, n_ref, kind, loss_name, options in cases:
        model = keras.saving.load_model(zoo.ARTIFACT_DIR / f"{stem}.keras", compile=False)
        info = inspect_model(model, loss=loss_name, kind_hint=kind)
        d = zoo.DATASETS[dataset](0)
        frame = Data(x_train=d["x_train"], y_train=d["y_train"], x_val=d["x_val"], y_val=d["y_val"], source=dataset)
        x_ref = np.concatenate([d["x_val"], d["x_train"]])[:n_ref]
        y_ref = np.concatenate([d["y_val"], d["y_train"]])[:n_ref]
        ratios, warm_ratios = [], []
        for rep in range(repeats + 1):
            ref, warm = warm_step(model, x_ref, y_ref, keras.losses.SparseCategoricalCrossentropy())
            with tempfile.TemporaryDirectory() as out:
                ctx = Context(model=model, info=info, data=frame, history=None, metadata={}, seed=0,
                              artifact_dir=Path(out), budget_s=300, backend="tensorflow", options=dict(options))
                t = time.perf_counter()
                result = host.analyzer(analyzer).cls().run(ctx)
                took = time.perf_counter() - t
            assert result.skipped is None, result.skipped
            if rep:
                ratios.append(took / ref)
                warm_ratios.append(took / warm)
            print(f"  {analyzer:17s} on {stem:4s} {'warm-up' if not rep else f'rep {rep}':8s} {took:7.3f} s vs compiled "
                  f"fwd+bwd {ref:.4f} s (trace + first call; warm call {warm:.4f} s) over {n_ref} samples: ratio "
                  f"{took / ref:6.1f} (to the warm call {took / warm:6.1f})", flush=True)
        print(f"{analyzer} on the zoo {stem}: median ratio {statistics.median(ratios):.1f} to a compiled fwd+bwd "
              f"(trace + first call), {statistics.median(warm_ratios):.1f} to a warm call, over {len(ratios)} repetitions",
              flush=True)
    # the baseline comparison: numpy on the validation outputs the shared pass already computed
    model = keras.saving.load_model(zoo.ARTIFACT_DIR / "cnn.keras", compile=False)
    d = zoo.DATASETS["digits28"](0)
    x, y = d["x_val"], d["y_val"]
    _, ref = warm_step(model, x, y, keras.losses.SparseCategoricalCrossentropy())
    out = np.asarray(model.predict(x, verbose=0))
    times = []
    for _ in range(max(repeats, 5)):
        t = time.perf_counter()
        baseline_comparison(out, y, "softmax", d["y_train"])
        times.append(time.perf_counter() - t)
    print(f"baseline comparison (performance.chance_level) on the zoo cnn's {len(x)} validation outputs: median "
          f"{statistics.median(times) * 1e3:.2f} ms, ratio {statistics.median(times) / ref:.3f} of a warm fwd+bwd "
          f"({ref:.4f} s)", flush=True)
    return 0


def zoo_history():
    import json

    import diagnostics_zoo as zoo

    return json.loads((zoo.ARTIFACT_DIR / "cnn.meta.json").read_text()).get("history")


if __name__ == "__main__":
    sys.exit(main())
