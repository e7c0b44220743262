"""The Explainer type and the one trust pipeline (diagnostics.explainers): known answers, a noise method
and a model-independent edge detector that the pipeline must fail, and the typed report section."""

from __future__ import annotations

import re

import numpy as np
import pytest

from diagnostics import Context, Data, ExplanationAnalyzer, Explainer, ModelView, Option, Verdict
from diagnostics import explain as E


def run_analyzer(cls, model, data: Data, tmp_path, seed: int = 0, **options):
    """``cls().run`` on an in-memory model, as a worker would call it (no subprocess), with its 600 s budget."""
    import time

    from diagnostics.modelinfo import inspect_model

    tmp_path.mkdir(parents=True, exist_ok=True)
    ctx = Context(model=model, info=inspect_model(model), data=data, history=None, metadata={}, seed=seed,
                  artifact_dir=tmp_path, budget_s=600, backend="tensorflow", options=options,
                  _deadline=time.monotonic() + 600)
    return cls().run(ctx)


class Noise(Explainer):
    """A method that ignores the model: seeded Gaussian noise of the input's shape."""

    name = "noise"
    sampling = True

    def attribute(self, view, x, targets, seed):
        return np.random.default_rng(seed).normal(size=np.shape(x))


class Edges(Explainer):
    """A model-independent "saliency": the image's own edges (Adebayo et al. 2018, fig. 1)."""

    name = "edges"
    signed = False
    input_kinds = frozenset({"image"})

    def attribute(self, view, x, targets, seed):
        return E.edge_map(x)


class Controls(ExplanationAnalyzer):
    name = "explain.controls"
    description = "controls that must fail the trust checks"
    explainers = (Noise, Edges)
    defaults = {"samples": 12}


def test_linear_model_ig_and_input_x_gradient_through_the_explainer_type_are_w_times_x_minus_b(linear):
    from diagnostics_plugins.explain_gradients import InputXGradient, IntegratedGradients

    model, w, _ = linear
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    base = rng.normal(size=(5,)).astype(np.float32)
    t = np.array([0, 1, 2, 0, 1, 2, 1])
    view = ModelView(model, "tabular", batch_size=4, baseline=base)
    expected = w[:, t].T * (x - base).astype(np.float64)
    np.testing.assert_allclose(IntegratedGradients(steps=4).attribute(view, x, t, 0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(InputXGradient().attribute(view, x, t, 0), expected, rtol=1e-5, atol=1e-6)


def test_a_method_returning_noise_is_failed_and_the_section_is_typed(linear, tmp_path):
    model, _, _ = linear
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    result = run_analyzer(Controls, model, Data(x_val=x), tmp_path, methods="noise")
    (noise,) = result.explanations
    assert noise.method == "noise" and noise.verdict is Verdict.FAILED
    rand = noise.check("randomisation")
    # the same seed gives the same noise on the randomised model: the map does not depend on the weights,
    # on every one of the first look's 4 samples, so the interval is [1, 1] and the failure is decided there
    assert rand.value == pytest.approx(1.0) and rand.outcome.value == "failed" and rand.threshold == 0.3
    assert (rand.interval, rand.samples, rand.level) == ((1.0, 1.0), 4, pytest.approx(0.99))
    assert rand.reason == "maps barely change when the weights are randomised (rank correlation 1.00 [1.00, 1.00], 4 samples)"
    assert rand.reason in noise.reasons
    assert {c.name for c in noise.checks} >= {"finite", "randomisation", "faithfulness", "stability"}
    # a failed check ends the looks: the others stay as the first look left them, and say so
    stab = noise.check("stability")
    assert stab.outcome.value == "undecided" and stab.samples == 4
    assert stab.reason.endswith(", 4 samples: undecided against 0.8, not audited further: another check failed")
    assert result.metrics["looks"] == [4] and result.metrics["checked_samples"] == {"noise": 4}
    # samples=12 explains at least 12: up to the next look boundary (4, 8, 16), each chunk in one call
    assert len(noise.sample_indices) == 16 and len(noise.targets) == 16
    assert np.load(tmp_path / noise.artifacts["inputs"]).shape == (16, 5)
    assert [f.code for f in result.findings] == ["explain.controls.noise.failed"]


def test_an_edge_detector_fails_randomisation_on_a_really_randomised_cnn_and_ig_passes(zoo_model, tmp_path):
    """Adebayo et al. (2018): the pipeline clones the zoo CNN with fresh weights and recomputes each map;
    the edge map does not move (failed), Integrated Gradients does (passed)."""
    import diagnostics_zoo as zoo
    from diagnostics_plugins.explain_gradients import IntegratedGradients

    model = zoo_model("cnn")
    before = [v.copy() for v in model.get_weights()]
    data = zoo.DATASETS["digits28"](0)

    class WithIG(Controls):
        explainers = (Edges, IntegratedGradients)

    result = run_analyzer(WithIG, model, Data(x_val=data["x_val"]), tmp_path, methods="edges,integrated_gradients",
                          samples=8, steps=8, max_steps=8, faithfulness=False)
    sections = {s.method: s for s in result.explanations}
    edge, ig = sections["edges"].check("randomisation"), sections["integrated_gradients"].check("randomisation")
    assert edge.outcome.value == "failed" and edge.value > 0.99, edge
    assert sections["edges"].verdict is Verdict.FAILED
    assert ig.outcome.value == "passed" and ig.value < 0.3, ig
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the model was not touched


def test_the_randomised_view_lends_the_clone_s_weights_and_always_gives_them_back(zoo_model):
    model = zoo_model("cnn")
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    view = ModelView(model, "image", batch_size=4)
    trained, own = view.predict(x), [w.copy() for w in model.get_weights()]
    clone = view.randomised_copy(0).predict(x)
    with view.randomised_weights(0) as rview:
        assert rview.model is model and rview.randomised and not view.randomised
        np.testing.assert_allclose(rview.predict(x), clone, rtol=1e-5, atol=1e-6)  # the clone's weights, same seed
        assert not np.allclose(rview.predict(x), trained, atol=1e-3)
        _, grads = rview.grad_fn(x, np.zeros(4, np.int64))  # the model's compiled gradient, on the lent weights
        _, clone_grads = view.randomised_copy(0).grad_fn(x, np.zeros(4, np.int64))
        np.testing.assert_allclose(grads, clone_grads, rtol=1e-4, atol=1e-7)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), own))
    with pytest.raises(RuntimeError, match="midway"):
        with view.randomised_weights(0):
            raise RuntimeError("a method failed midway")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), own))
    np.testing.assert_array_equal(view.predict(x), trained)


def test_checks_compare_a_value_with_a_threshold():
    from diagnostics.explainers import faithfulness_check, simple_check
    from diagnostics.health import DEFAULT_THRESHOLDS

    t = DEFAULT_THRESHOLDS["explanations"]
    w = np.linspace(1, 0, 20)

    def forward(x, targets):
        return x.reshape(len(x), -1) @ w

    x = np.ones((4, 20))
    good = faithfulness_check(E.perturbation_curves(forward, x, np.zeros_like(x), np.tile(w, (4, 1)), np.zeros(4, int)), t)
    bad = faithfulness_check(E.perturbation_curves(forward, x, np.zeros_like(x), np.tile(-w, (4, 1)), np.zeros(4, int)), t)
    assert good.outcome.value == "passed" and good.value > 0.1 and good.threshold == 0.02
    assert bad.outcome.value == "failed" and "no more than a random order" in bad.reason
    assert simple_check("stability", 0.5, 0.8, "unstable ({value:.2f})").reason == "unstable (0.50)"


def test_thresholds_are_overridable_like_the_health_ones(linear, tmp_path):
    model, _, _ = linear
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    result = run_analyzer(Controls, model, Data(x_val=x), tmp_path, methods="noise", randomisation_fail=1.5,
                          randomisation_doubtful=1.2, faithfulness_fail=-9.0, faithfulness_doubtful=-9.0,
                          stability_min=-2.0)
    (noise,) = result.explanations
    assert noise.check("randomisation").threshold == 1.2 and noise.check("randomisation").outcome.value == "passed"
    assert noise.verdict is Verdict.TRUSTED


def test_an_unknown_method_names_the_offered_ones(linear, tmp_path):
    model, _, _ = linear
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nois'\]; choose from noise, edges"):
        run_analyzer(Controls, model, Data(x_val=np.zeros((4, 5), np.float32)), tmp_path, methods="nois")


def test_an_analyzer_may_change_a_threshold_default_below_the_file_and_the_option(tmp_path):
    from diagnostics_plugins.explain_shap import ShapExplanations

    assert ShapExplanations()._limits({})["additivity_min_fraction"] == 0.5  # SHAP: the median error
    assert Controls()._limits({})["additivity_min_fraction"] == 0.9
    assert ShapExplanations()._limits({"additivity_min_fraction": 0.7})["additivity_min_fraction"] == 0.7
    f = tmp_path / "t.toml"
    f.write_text("[explanations]\nadditivity_min_fraction = 0.8\n")
    assert ShapExplanations()._limits({"health_thresholds": str(f)})["additivity_min_fraction"] == 0.8


class Cheap(Noise):
    name, work = "cheap", 10.0


class Costly(Noise):
    name = "costly"

    def cost(self, view, x):  # e.g. occlusion with 1-px windows on a large image
        return 1e9


class Scalable(Noise):
    name, options, scalable = "scalable", (Option("draws", int, 1000, "draws per sample"),), {"draws": 10}

    def cost(self, view, x):
        return 100.0 * int(self.opts["draws"])


class Planned(ExplanationAnalyzer):
    name = "explain.planned"
    description = "a cheap method, one that cannot fit any budget, one that fits with fewer draws"
    explainers = (Cheap, Costly, Scalable)


def test_on_a_large_model_a_method_that_cannot_fit_the_budget_is_left_out_with_the_reason(linear, tmp_path, monkeypatch):
    from diagnostics import budget, explainers, memory

    model, _, _ = linear
    monkeypatch.setattr(explainers, "BUDGET_PROBE_PARAMS", 0)  # plan as for a model of a million parameters
    monkeypatch.setattr(budget, "seconds_per_eval", lambda *a: 0.001)
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    result = run_analyzer(Planned, model, Data(x_val=x), tmp_path)
    cheap, scalable, costly = result.explanations
    assert cheap.method == "cheap" and cheap.verdict is Verdict.FAILED and len(cheap.sample_indices) == 2
    assert costly.method == "costly" and costly.verdict is None
    assert costly.skipped.startswith("left out: about 6000000 s for 2 samples on this model, with the methods before ")
    assert result.metrics["not_run"] == {"costly": costly.skipped}
    # scalable: 100,000 evaluations x 3 runs x 1 ms = 300 s a sample at 1,000 draws; 2 samples must fit in
    # SHARE of the 600 s (300 s, less cheap's), so the draws come down to about a half, above the floor,
    # and fill the budget: 2 samples are explained, not 8
    assert scalable.verdict is Verdict.FAILED and len(scalable.sample_indices) == 2
    (left_out, explained, lowered) = memory.take_notes()
    assert explained.startswith("explained 2 of 8 samples within the 600 s budget")
    draws = int(lowered.split(" → ")[1].split()[0])
    assert lowered == f"scalable: draws 1000 → {draws} to fit the time budget" and 450 <= draws < 500
    assert left_out == f"costly {costly.skipped}"


class Sleepy(Noise):
    name, work = "sleepy", 1.0

    def attribute(self, view, x, targets, seed):
        import time

        time.sleep(1.0)  # far slower than the timing probe promised
        return super().attribute(view, x, targets, seed)


class Later(Noise):
    name, work = "later", 10_000.0


class Paced(ExplanationAnalyzer):
    name = "explain.paced"
    description = "a method slower than planned, then one the pace says cannot finish"
    explainers = (Sleepy, Later)


def test_on_a_large_model_the_pace_actually_seen_leaves_out_what_would_run_into_the_timeout(linear, tmp_path,
                                                                                           monkeypatch):
    from diagnostics import budget, explainers, memory

    model, _, _ = linear
    monkeypatch.setattr(explainers, "BUDGET_PROBE_PARAMS", 0)
    monkeypatch.setattr(budget, "seconds_per_eval", lambda *a: 1e-9)  # the probe promises everything fits
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    result = run_analyzer(Paced, model, Data(x_val=x), tmp_path)
    sleepy, later = result.explanations
    assert sleepy.verdict is Verdict.FAILED and later.verdict is None
    # sleepy: the first look's 4 samples x 1 evaluation in 1 s or more; later: 40,000 evaluations at that pace
    ms = re.match(r"left out: at the pace of the methods before \((\d+) ms an evaluation\)", later.skipped)
    assert ms and int(ms.group(1)) >= 250 and "(raise --timeout)" in later.skipped, later.skipped
    assert int(later.skipped.split("take about ")[1].split(" s")[0]) >= 9000
    notes = memory.take_notes()
    assert notes[0] == "later not run: " + later.skipped.removeprefix("left out: ")
    # sleepy's own sanity runs (another seed, the randomised model: about 2 s more at that pace) still fit
    assert result.metrics["sanity_skipped"] is None and sleepy.check("randomisation") is not None


class Spy(Explainer):
    """Input x weight of a linear model, recording how many samples each call explains."""

    name = "spy"
    sampling = True
    calls: list = []

    def attribute(self, view, x, targets, seed):
        Spy.calls.append((self.stage, len(x)))
        return np.asarray(x, np.float64) * (1.0 + 0.01 * seed)


class Audited(ExplanationAnalyzer):
    name = "explain.audited"
    description = "a method whose calls are counted"
    explainers = (Spy,)


def test_samples_are_explained_in_look_chunks_and_every_re_run_takes_the_same_chunk(linear, tmp_path):
    """samples=40, check_samples=8: looks of 4 and 8 samples; the 40 asked for are explained at the first
    look in chunks [0, 4), [4, 8), [8, 40), and each look's re-runs (another seed, the randomised model) take
    that look's chunk, so a sampling method's map and its re-run come from the same batch. Spy ignores the
    model, so the randomisation check fails at the first look and the looks end there."""
    model, _, _ = linear
    x = np.random.default_rng(2).normal(size=(60, 5)).astype(np.float32)
    Spy.calls = []
    result = run_analyzer(Audited, model, Data(x_val=x), tmp_path, samples=40, check_samples=8)
    assert Spy.calls == [("main", 4), ("main", 4), ("main", 32), ("stability", 4), ("randomisation", 4)]
    (spy,) = result.explanations
    assert len(spy.sample_indices) == 40 and result.metrics["checked_samples"] == {"spy": 4}
    assert spy.check("randomisation").outcome.value == "failed"
    assert spy.check("faithfulness").detail["scored_samples"] <= 4


def test_a_baseline_the_model_already_predicts_from_is_reported_under_the_analyzer_s_name(keras_tf, tmp_path):
    """A bias of 10 and inputs within ±0.3: F(x) is within 10% of F(zeros) = 10 for every sample, so the
    zero baseline is not neutral; the finding is ``<analyzer>.baseline_not_neutral`` (issue 24: every code
    starts with its analyzer's name; ``explain.baseline_not_neutral`` is its alias)."""
    from diagnostics import codes

    keras = keras_tf
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.set_weights([np.full((5, 3), 0.1, np.float32), np.full(3, 10.0, np.float32)])
    x = np.random.default_rng(1).uniform(-0.3, 0.3, size=(40, 5)).astype(np.float32)
    result = run_analyzer(Controls, model, Data(x_val=x), tmp_path, methods="noise")
    first = result.findings[0]
    assert (first.code, first.severity.value, first.where) == ("explain.controls.baseline_not_neutral", "info", "baseline")
    assert first.message.startswith("for 16 of 16 samples the baseline (zeros) already gets within 10% of the "
                                    "explained output (median 10 vs 10")
    assert codes.matches(first.code, "explain.baseline_not_neutral")
