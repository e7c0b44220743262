"""Speed and memory of the explanations, as ratios measured in one run (medians of repeats).

    .venv/bin/python benchmarks/explain_bench.py [--samples 100] [--steps 50] [--repeats 3] [--json out.json]

What it measures (the targets of the explanation issue):

- ``ig / floor``: our Integrated Gradients (and every gradient-family method) against the floor, one
  compiled forward+backward pass over all the points the method evaluates (samples x steps), fed
  as one precomputed array through the same primitive and batch size. Target <= 1.3.
- ``captum IG / our IG``: captum's IntegratedGradients on the same Keras model under the torch
  backend (same samples, steps, Gauss-Legendre rule), once with its internal batch set to ours and
  once with captum's default (every interpolated input in one batch). Target >= 3.
- ``lime library / ours`` per image: the ``lime`` package called with ``model.predict`` and its
  default batch of 10, against our LIME (the same 1,000 perturbations through one compiled call).
  Target >= 50.
- ``memory 1000 / 100``: peak resident memory added by explaining 1,000 samples over that of 100
  (IG, 50 steps), each in a fresh process after the model is loaded and warmed up. Target <= 1.5.

Each backend runs in its own child process (Keras picks its backend once per process); the models
are the zoo's ``cnn`` and ``lstm`` (``models/artifacts``, or ``--zoo DIR``). Ratios to a floor are
medians of ratios of back-to-back pairs, so that load from other processes cancels out as far as it
can; captum and ours run in different processes (one Keras backend each) and are more exposed to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _zoo(args, name):
    return str(Path(args.zoo) / f"{name}.keras")


def _load(args, name):
    import keras

    import diagnostics_zoo as zoo

    return keras.saving.load_model(_zoo(args, name), custom_objects=zoo.custom_objects())


def _data(name, n):
    import numpy as np

    import diagnostics_zoo as zoo

    d = zoo.DATASETS[{"cnn": "digits28", "lstm": "motif_sequences"}[name]](0)
    x = d["x_val"]
    reps = -(-n // len(x))
    return np.concatenate([x] * reps)[:n]


def _time(fn, repeats):
    fn()  # warm-up: tracing / compilation
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), out


def _paired(reference, candidate, repeats):
    """Median of candidate/reference time ratios, each pair measured back to back (the machine's
    load drifts; a ratio of two medians taken minutes apart would mostly measure that drift)."""
    reference()
    candidate()
    ratios, ref_t, cand_t = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference()
        t1 = time.perf_counter()
        candidate()
        t2 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
        ref_t.append(t1 - t0)
        cand_t.append(t2 - t1)
    return statistics.median(ratios), statistics.median(ref_t), statistics.median(cand_t)


def phase_tensorflow(args):
    import numpy as np

    from diagnostics import explain as E
    from diagnostics.backends import get
    from diagnostics_plugins import explain_gradients as G

    backend = get("tensorflow")
    res = {}
    bs = args.batch
    for name in ("cnn", "lstm"):
        model = _load(args, name)
        x = _data(name, args.samples)
        t = model.predict(x, verbose=0).argmax(1)

        def grad_fn(xb, tb):
            return backend.input_gradients(model, xb, tb, batch_size=len(xb))

        base = np.zeros_like(x)
        alphas, _ = E.gauss_legendre(args.steps)
        shape1 = (1, -1) + (1,) * (x.ndim - 1)
        pts = (base[:, None] + alphas.reshape(shape1).astype(np.float32) * (x - base)[:, None]).reshape((-1,) + x.shape[1:])
        tt = np.repeat(t, args.steps)

        def floor_fn():
            return backend.input_gradients(model, pts, tt, batch_size=bs)

        ratio, floor, ig = _paired(floor_fn, lambda: E.integrated_gradients(
            grad_fn, x, base, t, steps=args.steps, max_steps=args.steps, batch_size=bs), args.repeats)
        row = {"floor_s": floor, "ig_s": ig, "ig_over_floor": ratio}
        if name == "cnn":
            rng = np.random.default_rng(0)
            bg = x[rng.choice(len(x), 64)]
            row["smoothgrad_over_floor"] = _paired(floor_fn, lambda: G.smoothgrad(
                grad_fn, x, t, samples=args.steps, batch_size=bs), args.repeats)[0]
            row["expected_gradients_over_floor"] = _paired(floor_fn, lambda: G.expected_gradients(
                grad_fn, x, bg, t, samples=args.steps, batch_size=bs), args.repeats)[0]

            def floor1():
                return backend.input_gradients(model, x, t, batch_size=bs)

            # one pass over 100 samples takes milliseconds: more pairs
            row["saliency_over_floor1"], row["floor1_s"], _ = _paired(
                floor1, lambda: G.saliency(grad_fn, x, t, batch_size=bs), 5 * args.repeats)
            row["input_x_gradient_over_floor1"] = _paired(
                floor1, lambda: G.input_x_gradient(grad_fn, x, base, t, batch_size=bs), 5 * args.repeats)[0]
            row.update(_lime_bench(args, model))
        res[name] = row
    return res


def _lime_bench(args, model):
    """The lime library with model.predict (batch 10) vs our LIME, same segmentation and samples."""
    import numpy as np

    from diagnostics import ModelView
    from diagnostics import explain as E
    from diagnostics_plugins import explain_lime as L

    x = _data("cnn", max(args.lime_images, 1) + args.lime_reference_images)
    predict = L.classifier(ModelView(model, "image", batch_size=args.lime_samples))

    def ours():
        for img in x[: args.lime_images]:
            L.lime_image(predict, img, target=None, num_samples=args.lime_samples, seed=0)

    ours_s, _ = _time(ours, args.repeats)
    from lime import lime_image

    explainer = lime_image.LimeImageExplainer(random_state=0)

    def reference():
        for img in x[: args.lime_reference_images]:
            explainer.explain_instance(img[..., 0].astype(np.float64), lambda b: model.predict(b[..., :1], verbose=0),
                                       top_labels=1, num_samples=args.lime_samples, segmentation_fn=E.grid_segments,
                                       random_seed=0)

    t0 = time.perf_counter()
    reference()
    ref_s = time.perf_counter() - t0
    per_ours = ours_s / args.lime_images
    per_ref = ref_s / args.lime_reference_images
    return {"lime_ours_per_image_s": per_ours, "lime_library_per_image_s": per_ref, "lime_library_over_ours": per_ref / per_ours}


def phase_torch(args):
    import torch
    from captum.attr import IntegratedGradients

    res = {}
    for name in ("cnn", "lstm"):
        model = _load(args, name)
        x = torch.tensor(_data(name, args.samples))
        with torch.no_grad():
            t = torch.cat([model(x[s:s + 256]).argmax(1) for s in range(0, len(x), 256)])
        ig = IntegratedGradients(lambda a: model(a, training=False))
        med, _ = _time(lambda: ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=args.steps,
                                            internal_batch_size=args.batch), args.repeats)
        res[name] = {"captum_ig_s": med}
        if args.captum_default_batch:
            # captum as called with its defaults: every interpolated input in one batch (GBs of memory)
            res[name]["captum_ig_default_batch_s"], _ = _time(
                lambda: ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=args.steps), args.repeats)
    return res


def phase_memory(args):
    """Peak RSS added by IG on ``--n`` samples, after load and warm-up (Linux ru_maxrss, KiB)."""
    import resource

    import numpy as np

    from diagnostics import explain as E
    from diagnostics.backends import get

    backend = get("tensorflow")
    model = _load(args, "cnn")
    x = _data("cnn", args.n)
    t = np.zeros(len(x), np.int64)

    def grad_fn(xb, tb):
        return backend.input_gradients(model, xb, tb, batch_size=len(xb))

    E.integrated_gradients(grad_fn, x[:8], np.zeros_like(x[:8]), t[:8], steps=args.steps, max_steps=args.steps,
                           batch_size=args.batch)
    before = _rss_kib()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    E.integrated_gradients(grad_fn, x, np.zeros_like(x), t, steps=args.steps, max_steps=args.steps, batch_size=args.batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss_before_kib": before, "peak_kib": peak, "added_kib": max(peak - max(before, 0), 0),
            "peak_before_kib": peak_before}


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _child(phase, args, backend, extra=()):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--phase", phase, "--zoo", args.zoo, "--samples", str(args.samples),
           "--steps", str(args.steps), "--repeats", str(args.repeats), "--batch", str(args.batch),
           "--lime-images", str(args.lime_images), "--lime-reference-images", str(args.lime_reference_images),
           "--lime-samples", str(args.lime_samples), *extra] + ([] if args.captum_default_batch else ["--no-captum-default-batch"])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--lime-images", type=int, default=8)
    p.add_argument("--lime-reference-images", type=int, default=1)
    p.add_argument("--lime-samples", type=int, default=1000)
    p.add_argument("--zoo", default=str(REPO / "models" / "artifacts"))
    p.add_argument("--no-captum-default-batch", dest="captum_default_batch", action="store_false",
                   help="skip captum IG with its default internal batch (all samples x steps at once: ~5 GB on the CNN)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=100, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        out = {"tensorflow": phase_tensorflow, "torch": phase_torch, "memory": phase_memory}[args.phase](args)
        print(json.dumps(out))
        return 0
    tf = _child("tensorflow", args, "tensorflow")
    torch = _child("torch", args, "torch")
    mem = {n: _child("memory", args, "tensorflow", ("--n", str(n))) for n in (100, 1000)}
    results = {"tensorflow": tf, "torch": torch, "memory": mem, "config": {
        "samples": args.samples, "steps": args.steps, "repeats": args.repeats, "batch": args.batch,
        "lime_images": args.lime_images, "lime_reference_images": args.lime_reference_images,
        "lime_samples": args.lime_samples}}
    ratios = {}
    for name in ("cnn", "lstm"):
        ratios[f"{name}: IG / floor (target <= 1.3)"] = tf[name]["ig_over_floor"]
        ratios[f"{name}: captum IG (internal batch = ours) / our IG (target >= 3)"] = torch[name]["captum_ig_s"] / tf[name]["ig_s"]
        if "captum_ig_default_batch_s" in torch[name]:
            ratios[f"{name}: captum IG (default internal batch) / our IG (target >= 3)"] = (
                torch[name]["captum_ig_default_batch_s"] / tf[name]["ig_s"])
    for k in ("smoothgrad_over_floor", "expected_gradients_over_floor", "saliency_over_floor1", "input_x_gradient_over_floor1"):
        ratios[f"cnn: {k.replace('_over_', ' / ')} (target <= 1.3)"] = tf["cnn"][k]
    ratios["cnn: lime library / our LIME per image (target >= 50)"] = tf["cnn"]["lime_library_over_ours"]
    ratios["memory: peak added, 1000 / 100 samples (target <= 1.5)"] = (
        mem[1000]["added_kib"] / max(mem[100]["added_kib"], 1))
    ratios["memory: process peak, 1000 / 100 samples"] = mem[1000]["peak_kib"] / mem[100]["peak_kib"]
    results["ratios"] = ratios
    width = max(map(len, ratios))
    for k, v in ratios.items():
        print(f"{k:<{width}}  {v:8.2f}")
    print(f"(cnn: IG {tf['cnn']['ig_s']:.2f} s, floor {tf['cnn']['floor_s']:.2f} s, captum {torch['cnn']['captum_ig_s']:.2f} s; "
          f"lstm: IG {tf['lstm']['ig_s']:.2f} s, captum {torch['lstm']['captum_ig_s']:.2f} s; LIME per image: ours "
          f"{tf['cnn']['lime_ours_per_image_s'] * 1000:.0f} ms, library {tf['cnn']['lime_library_per_image_s']:.1f} s; "
          f"memory added: {mem[100]['added_kib'] / 1024:.0f} MiB (100), {mem[1000]['added_kib'] / 1024:.0f} MiB (1000))")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
