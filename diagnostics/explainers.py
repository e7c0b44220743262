"""Explanation methods as a type, and the one trust pipeline every explanation analyzer runs.

- :class:`Explainer`: one attribution method — its metadata as class attributes (name, paper,
  signed or not, sampling or exact, the axiom it satisfies, the input kinds it supports, its options)
  and one call, ``attribute(view, x, targets, seed) -> array`` (as captum's ``Attribution.attribute``
  and Xplique's ``explain(inputs, targets)``).
- :class:`ModelView`: the model as every method sees it — a float input space (token models are
  explained in the embedding layer's output space), batched prediction, the explained unit's output
  and a compiled, batched input-gradient function.
- :class:`ExplanationAnalyzer`: an :class:`~diagnostics.Analyzer` made of a list of explainers.
  The host-side pipeline here picks the samples and targets, refuses non-finite predictions, runs
  each method, and checks it: completeness or additivity where the method has that axiom,
  model-parameter randomisation (Adebayo et al., 2018) on a re-initialised clone, stability across
  seeds for sampling methods, deletion/insertion faithfulness (Petsiuk et al., 2018), ground truth
  when the data carry a mask (``mask_val``), agreement between methods — then gives each method a
  :class:`~diagnostics._verdicts.Verdict`, findings and pictures. A new method gets all of it by
  declaring itself.

Thresholds are the ``explanations`` section of :data:`diagnostics._thresholds.DEFAULT_THRESHOLDS` and are
overridden as the health ones are: ``--option explain.gradients.stability_min=0.7`` or a thresholds
file (``--option health_thresholds=FILE.toml``, section ``[explanations]``).
"""

from __future__ import annotations

import contextlib
import copy as _copy
import dataclasses
import time
from typing import Any, ClassVar, Sequence

import numpy as np

from . import _audit as A
from . import _intervals as I
from . import explain as E
from . import inputs
from .analyzer import Analyzer, Context, Finding, Option, Result, Severity
from ._thresholds import thresholds as _thresholds
from .modelinfo import output_activation
from ._verdicts import Check, MethodExplanation, Outcome, Verdict, verdict_of

INPUT_KINDS = frozenset({"image", "sequence", "token", "tabular"})
#: Models with fewer parameters explain without the time plan (see ExplanationAnalyzer._plan and Pace).
BUDGET_PROBE_PARAMS = 1_000_000

#: Forward passes of the deletion/insertion curves per explained sample and method: two orders (the
#: attribution's, a random one) x deletion and insertion x every fraction, both ends included.
FAITHFULNESS_FORWARDS = 2 * 2 * (E.PERTURBATION_FRACTIONS + 1)

#: Options every explanation analyzer takes (each analyzer may change the defaults in ``defaults``).
COMMON_OPTIONS = (
    Option("samples", int, 4, "how many evaluation samples to explain at least (the same ones in every analyzer "
                              "for a seed); more are explained while a trust check is undecided"),
    Option("methods", str, "all", "comma-separated methods to run, or 'all'"),
    Option("batch_size", int, 1024, "rows per compiled model call"),
    Option("sanity", bool, True, "run the randomisation and seed-stability checks"),
    Option("faithfulness", bool, True, "run the deletion/insertion faithfulness check"),
    Option("check_start", int, 4, "samples the trust checks audit at their first look; each further look doubles "
                                  "them while a check's interval straddles its threshold"),
    Option("check_samples", int, 64, "the most samples the trust checks audit: a check still straddling its threshold "
                                     "there is undecided"),
    Option("check_level", float, 0.95, "confidence of each trust check's decision over all its looks (the error is "
                                       "spent over the looks, docs/explanations.md)"),
    Option("baseline", str, "zeros", "reference input: 'zeros', 'mean' (of the training inputs) or 'auto' "
                                     "(mean for tables, zeros otherwise)", choices=("zeros", "mean", "auto")),
    Option("baseline_token", int, 0, "the token id of the reference input of token models"),
    Option("background", int, 64, "training rows drawn as the background of expected-value methods"),
    Option("target", object, None, "output class to explain (--target); default: the predicted class"),
)


def input_kind(x: np.ndarray) -> str:
    """``image`` (n, H, W, C), ``sequence`` (n, T, C), ``token`` (integer ids) or ``tabular`` (n, F)."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        return "token"
    return {4: "image", 3: "sequence"}.get(x.ndim, "tabular")


class ModelView:
    """The model as explanation methods see it (one adapter for every method and library).

    ``float_space(x)`` maps raw inputs to the space attributions live in (the embedding output for
    token models; ``head`` is the model from there on), ``predict(x)`` is the batched output
    ``(n, units)``, ``forward(x, targets)`` the explained unit per sample, ``grad_fn(z, targets)``
    the compiled input gradient of ``head`` (``(values, gradients)``). ``baseline`` is the raw reference
    input (one sample), ``background`` training rows for expected-value methods, ``train`` the training
    inputs (or the evaluation inputs when there are none); ``randomised`` marks the view of the
    weight-randomised clone (methods may skip refinements there: only the ranking of the map matters).
    """

    def __init__(self, model, kind: str, *, batch_size: int = 1024, baseline: np.ndarray | None = None,
                 background: np.ndarray | None = None, train: np.ndarray | None = None, randomised: bool = False):
        self.model, self.kind, self.batch_size, self.randomised = model, kind, int(batch_size), randomised
        self.train = train
        #: seconds left of the analyzer's budget (the pipeline sets it to ``context.time_left``): methods
        #: that refine an estimate stop refining when it runs short
        self.time_left = lambda: float("inf")
        self.tokens = kind == "token"
        self.baseline, self.background_raw = baseline, background
        self.embedding_layer = None
        self.head = model
        if self.tokens:
            import keras

            layer = next((ly for ly in model.layers if type(ly).__name__ != "InputLayer"), None)
            if layer is None:
                raise TypeError("the model has integer inputs but no layer after them to differentiate through")
            self.embed = keras.Model(model.inputs, layer.output)
            self.head = keras.Model(layer.output, model.outputs[0])
            self.embedding_layer = layer.name
        self._backend = None

    # -- geometry ------------------------------------------------------------------------------
    @property
    def space(self) -> str:
        return "embedding" if self.tokens else "input"

    def feature_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """One feature per pixel (channels together), time step, token or column."""
        x = np.asarray(x)
        return tuple(x.shape[1:-1]) if x.ndim >= 3 and not self.tokens else tuple(x.shape[1:])

    def feature_map(self, attributions: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n, features): attributions summed over channels / embedding dimensions, flattened. A method
        that already returns one value per feature (LIME, Grad-CAM) passes through."""
        a = np.asarray(attributions, np.float64)
        feats = self.feature_shape(x)
        if a.shape[1:] != feats:
            a = a.sum(axis=-1)
        return a.reshape(len(a), -1)

    # -- the model -----------------------------------------------------------------------------
    def float_space(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.tokens:
            return x.astype(np.float32)
        return np.concatenate([np.asarray(self.embed.predict_on_batch(x[s:s + self.batch_size]))
                               for s in range(0, len(x), self.batch_size)]).astype(np.float32)

    def baseline_like(self, x: np.ndarray) -> np.ndarray:
        """The raw baseline broadcast to ``x``'s shape (a copy)."""
        x = np.asarray(x)
        b = np.zeros(x.shape[1:], x.dtype) if self.baseline is None else np.asarray(self.baseline, x.dtype)
        return np.broadcast_to(b, x.shape).copy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return E.predict_batched(self.model, x if self.tokens else x.astype(np.float32), self.batch_size).astype(np.float64)

    def forward(self, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.predict(x)[np.arange(len(x)), np.asarray(targets)]

    def background_output(self, targets: np.ndarray) -> np.ndarray:
        """E_b[F(b)] over the background rows, for each sample's explained unit."""
        mean = self.predict(self.background_raw).mean(0)
        return mean[np.asarray(targets)]

    def grad_fn(self, z: np.ndarray, targets: np.ndarray):
        if self._backend is None:
            from .backends import get

            self._backend = get()
        return self._backend.input_gradients(self.head, z, targets, batch_size=len(z))

    def randomised_copy(self, seed: int) -> "ModelView | None":
        """The same view of a clone with re-initialised weights (the model itself is not touched);
        None when the model cannot be cloned (subclassed models)."""
        import keras

        from ._tensorflow_hidden import seed_everything, tensorflow_hidden

        try:
            seed_everything(seed + 12345)
            with tensorflow_hidden():
                clone = keras.models.clone_model(self.model)
        except Exception:  # noqa: BLE001 - reported as a skipped check
            return None
        view = ModelView(clone, self.kind, batch_size=self.batch_size, baseline=self.baseline,
                         background=self.background_raw, train=self.train, randomised=True)
        view.time_left = self.time_left
        return view

    @contextlib.contextmanager
    def randomised_weights(self, seed: int):
        """Within the block, a view of the model with re-initialised weights (those of
        :meth:`randomised_copy`), or None when the model cannot be cloned. The clone's weights are lent to
        this model and its own restored when the block ends, however it ends: the compiled functions
        already traced for the model (gradients, predictions: 0.1-0.5 s a trace under TensorFlow) serve the
        randomised one too. A model whose weights cannot be set this way is explained as the clone itself."""
        cache = self.__dict__.setdefault("_randomised", {})  # the looks borrow the same clone's weights
        if seed not in cache:
            cache[seed] = self.randomised_copy(seed)
        copy = cache[seed]
        if copy is None:
            yield None
            return
        own = [np.array(w) for w in self.model.get_weights()]
        try:
            self.model.set_weights(copy.model.get_weights())
        except Exception:  # noqa: BLE001 - weights the clone lays out differently: explain the clone
            self.model.set_weights(own)
            yield copy
            return
        view = _copy.copy(self)  # the same model, head and compiled functions
        view.randomised = True
        try:
            yield view
        finally:
            self.model.set_weights(own)


class Explainer:
    """One attribution method. Subclasses set the metadata and implement :meth:`attribute`.

    Metadata (class attributes):
        name: the method's identifier in options, the report and findings (``integrated_gradients``).
        reference: the paper it implements.
        signed: whether the sign of an attribution means something (the randomisation check then
            compares signed ranks; saliency and Grad-CAM are compared in absolute value).
        sampling: True for Monte-Carlo methods (stability across two seeds is then checked).
        axiom: ``"completeness"`` (Σ attributions = F(x) − F(baseline)), ``"additivity"``
            (Σ = F(x) − E[F(background)]) or None; the pipeline measures it.
        input_kinds: the input kinds it supports (image, sequence, token, tabular).
        backward: whether it differentiates the model (False for perturbation methods): on a model
            where one sample's backward pass does not fit the worker's memory (a long recurrent
            sequence, :class:`diagnostics.memory.TooLarge`), only the methods without it run.
        options: its :class:`~diagnostics.Option` s; the instance holds their values in ``self.opts``.
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    signed: ClassVar[bool] = True
    sampling: ClassVar[bool] = False
    axiom: ClassVar[str | None] = None
    input_kinds: ClassVar[frozenset[str]] = INPUT_KINDS
    backward: ClassVar[bool] = True
    options: ClassVar[tuple[Option, ...]] = ()
    #: Rough model evaluations (a forward + backward of one sample) explaining one sample takes, for
    #: the time budget (:meth:`cost`, :func:`diagnostics.budget.plan`); a forward-only pass counts a third.
    work: ClassVar[float] = 64.0
    #: integer options the time budget may lower on a large model (samples drawn, path steps), each
    #: with the least value it may take: ``{"nsamples": 16}``
    scalable: ClassVar[dict[str, int]] = {}

    def __init__(self, **options: Any):
        #: the values of the declared options (defaults where not given)
        self.opts = {o.name: options.get(o.name, o.default) for o in type(self).options}
        #: numbers a run leaves for the report (steps used...), reset by the pipeline before the first call
        self.notes: dict[str, Any] = {}
        #: the options :meth:`shrink` lowered: ``{option: (value before, value now)}``
        self.shrunk: dict[str, tuple[int, int]] = {}
        #: which call this is: "main", "stability" (another seed) or "randomisation" (on the randomised
        #: clone); refinements that only tighten an axiom (step doubling) may be skipped outside "main"
        self.stage = "main"
        #: the interval level of the current look, for :meth:`extra_checks` (diagnostics._intervals)
        self.level = I.LEVEL

    def unavailable(self, view: ModelView, x: np.ndarray) -> str | None:
        """Why this method cannot run on this model (None when it can)."""
        return None if view.kind in self.input_kinds else f"{self.name} does not support {view.kind} inputs"

    def attribute(self, view: ModelView, x: np.ndarray, targets: np.ndarray, seed: int) -> np.ndarray:
        """Attributions of output unit ``targets[i]`` for each raw input ``x[i]``: either in the float
        space (``view.float_space(x).shape``) or one value per feature (``(n,) + view.feature_shape(x)``)."""
        raise NotImplementedError

    def cost(self, view: ModelView, x: np.ndarray) -> float:
        """Model evaluations (forward + backward of one sample; a forward pass alone counts a third)
        explaining one sample of ``x`` takes with the current options, for the time budget: the
        pipeline leaves out, with the reason, a method that cannot explain even two samples in time on a
        large model. Default: :attr:`work`, scaled as the :attr:`scalable` options are to their defaults."""
        declared = {o.name: o.default for o in type(self).options}
        ratios = [int(self.opts[k]) / int(declared[k]) for k in self.scalable if declared.get(k)]
        return float(self.work) * (max(ratios) if ratios else 1.0)

    def shrink(self, factor: float) -> dict[str, tuple[int, int]]:
        """Lower the :attr:`scalable` options to about ``factor`` of their values (never under their
        floor) so the method fits the time budget; returns ``{option: (old, new)}`` for those changed."""
        changed = {}
        for k, floor in self.scalable.items():
            old = int(self.opts[k])
            new = max(min(floor, old), int(old * factor))
            if new < old:
                self.opts[k], changed[k] = new, (old, new)
                self.shrunk[k] = (self.shrunk.get(k, (old,))[0], new)
        return changed

    def extra_checks(self, limits: dict[str, float]) -> list[Check]:
        """Checks of the method's own (from ``self.notes``, pooled over every sample explained so far),
        e.g. LIME's local fit: build them with :func:`sample_check` at ``self.level`` so they are decided
        by their interval like the pipeline's."""
        return []


def one_output(model, target: Any) -> tuple[Any, Any, str, str]:
    """The model to explain and the class target, from ``--target`` (``CLASS``, ``OUTPUT`` or
    ``OUTPUT:CLASS``). A single-output model is itself. Of a model with several outputs one is explained
    at a time, as a functional sub-model sharing its weights: the output ``--target`` names, else the
    first. Returns (model, class target, output name, which output and why) — the last two empty for a
    single output. ValueError names the outputs when ``--target`` names none of them."""
    import keras

    names = inputs.output_names(model)
    name, cls = None, target
    if isinstance(target, str):
        head, _, tail = target.partition(":")
        if head in names:
            name, cls = head, (tail or None)
        elif tail:
            raise ValueError(f"--target {target!r} names no output; the outputs are {', '.join(names)}")
    if len(names) == 1:
        return model, cls, "", ""
    k = names.index(name) if name else 0
    why = (f"output '{names[k]}' (--target)" if name else
           f"output '{names[0]}', the first of {len(names)} ({', '.join(names)}; --target OUTPUT[:CLASS] explains another)")
    return keras.Model(model.inputs, model.outputs[k], name=f"{model.name}_{names[k]}"), cls, names[k], why


def refine_unconverged(explainer: Explainer, view: ModelView, reference: np.ndarray, call, n: int, n_max: int,
                       tol: float = 0.1) -> np.ndarray:
    """Run a sampling estimate whose per-sample sum should equal ``reference`` (additivity, completeness),
    then re-estimate only the samples that miss it by more than ``tol`` (relative), doubling the sample
    count each round up to ``n_max`` while the analyzer's time allows another round (each costs about
    twice the last; room is left for the sanity runs). Refines only at the "main" stage.
    ``call(rows, n)`` returns the estimate for ``rows`` (None: every sample) with ``n`` samples."""
    t0 = time.monotonic()
    vals = np.asarray(call(None, n))
    last = time.monotonic() - t0
    while explainer.stage == "main" and n * 2 <= n_max and E.room_for_another(view.time_left, last):
        err = np.abs(vals.reshape(len(vals), -1).sum(1) - reference)
        todo = np.flatnonzero(err > tol * np.maximum(np.abs(reference), 1e-5))
        if not len(todo):
            break
        n *= 2
        t0 = time.monotonic()
        vals[todo] = call(todo, n)
        last = time.monotonic() - t0
    return vals


def explainer_options(explainers: Sequence[type[Explainer]]) -> tuple[Option, ...]:
    """The options of a list of explainers, each name once."""
    seen: dict[str, Option] = {}
    for cls in explainers:
        for o in cls.options:
            seen.setdefault(o.name, o)
    return tuple(seen.values())


def threshold_options() -> tuple[Option, ...]:
    from ._thresholds import DEFAULT_THRESHOLDS, THRESHOLDS_OPTION

    return tuple(Option(k, float, v, "trust threshold (see docs/explanations.md)")
                 for k, v in DEFAULT_THRESHOLDS["explanations"].items()) + (
        Option(THRESHOLDS_OPTION, str, "", "thresholds file (TOML or JSON), section [explanations]"),)


# -- the checks: diagnostics._trust_checks (each with its interval); these names are the public edge ------
from ._trust_checks import faithfulness_check, randomisation_check, sample_check, simple_check  # noqa: E402


# -- the analyzer ------------------------------------------------------------------------------------------
class ExplanationAnalyzer(Analyzer):
    """An analyzer made of :class:`Explainer` s; :meth:`run` is the whole trust pipeline.

    Subclasses set ``explainers`` (the classes), ``defaults`` (changed option defaults, thresholds included),
    ``sanity_cost`` (skip the sanity checks when less than this many times the time spent so far
    is left; 0 never skips) and may override :meth:`choose` and :meth:`notes`.
    """

    category = "explanation"
    data = "x"
    model_kinds = INPUT_KINDS
    explainers: ClassVar[tuple[type[Explainer], ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    sanity_cost: ClassVar[float] = 0.0
    extra_options: ClassVar[tuple[Option, ...]] = ()
    not_offered: ClassVar[dict[str, str]] = {}

    @classmethod
    def declared_options(cls) -> tuple[Option, ...]:
        return tuple(o.with_default(cls.defaults[o.name]) if o.name in cls.defaults else o
                     for o in COMMON_OPTIONS + tuple(cls.extra_options) + explainer_options(cls.explainers)
                     + threshold_options())

    def choose(self, opts: dict, view: ModelView, x: np.ndarray) -> list[str]:
        """The method names to run, from the ``methods`` option."""
        names = [c.name for c in self.explainers]
        chosen = opts["methods"]
        chosen = names if chosen in ("all", "auto") else [m.strip() for m in str(chosen).split(",") if m.strip()]
        bad = sorted(set(chosen) - set(names))
        if bad:
            extra = "".join(f"; {k} is not offered: {v}" for k, v in self.not_offered.items())
            raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(names)}{extra}")
        return [m for m in names if m in chosen]

    def notes(self, view: ModelView, opts: dict) -> dict[str, Any]:
        """Analyzer-specific metrics for the report (``metrics`` beside the typed sections)."""
        return {}

    # -- the pipeline --------------------------------------------------------------------------------------
    def _plan(self, context: Context, opts: dict, view: ModelView, x: np.ndarray, methods: list) -> dict[str, str]:
        """Fit the work to the analyzer's time budget (:func:`diagnostics.budget.plan`): sets
        ``opts["planned_samples"]`` (the samples of the first two looks, or fewer), lowers the methods' scalable options, and returns the methods left out, with
        the reason. Run for models of :data:`BUDGET_PROBE_PARAMS` parameters or more only: smaller ones
        explain the default samples in a fraction of the budget, and the probe's two traces would cost
        more than the plan saves."""
        from . import budget, memory

        fixed = FAITHFULNESS_FORWARDS / 3 if opts["faithfulness"] else 0  # the curves: forward passes, no shrinking

        def full(ex):  # the method's runs (a randomised model's, another seed's) and its faithfulness curves
            return ex.cost(view, x[:1]) * ((3 if ex.sampling else 2) if opts["sanity"] else 1) + fixed

        def lowered(ex):  # the same method with its scalable options at their floors
            return type(ex)(**{**ex.opts, **{k: min(int(ex.opts[k]), v) for k, v in ex.scalable.items()}})

        costs = {ex.name: full(ex) for ex in methods}
        # planned for the first two looks; the looks after them are run only when the pace allows (Pace)
        want = max(int(opts["samples"]), 2 * int(opts["check_start"]))
        opts["planned_samples"], dropped, factor = budget.plan(context, want, costs, model=view.model, x=x[:1], minimum=2,
                                                       least_costs={ex.name: full(lowered(ex)) for ex in methods})
        for ex in methods:
            if factor < 1 and ex.name not in dropped and ex.shrink((factor * costs[ex.name] - fixed) / (costs[ex.name] - fixed)):
                memory.note(f"{ex.name}: " + ", ".join(f"{k} {a} → {b}" for k, (a, b) in ex.shrunk.items())
                            + " to fit the time budget")
        return dropped

    def run(self, context: Context) -> Result:
        from . import memory

        t0 = time.monotonic()
        opts = {o.name: o.parse(context.options[o.name]) if o.name in context.options else o.default
                for o in self.declared_options()}
        limits = self._limits(context.options)
        model = context.model
        if len(model.inputs) != 1:
            return Result.skip(f"{self.name} explains single-input models (this one has {len(model.inputs)} inputs: "
                               f"{', '.join(inputs.input_names(model))})")
        try:
            model, opts["target"], self._output, chosen = one_output(model, opts.get("target"))
        except ValueError as e:
            return Result.skip(f"{self.name}: {e}")
        x_all = np.asarray(context.data.x)
        opts["samples"] = min(int(opts["samples"]), len(x_all))
        try:
            opts["batch_size"], too_large = memory.batch_size(model, int(opts["batch_size"])), None
        except memory.TooLarge as e:  # the methods that differentiate are left out below; the others run
            opts["batch_size"], too_large = memory.batch_size(model, int(opts["batch_size"]), backward=False), str(e)
        kind = input_kind(x_all[:1])
        pool = np.asarray(context.data.x_train) if context.data.x_train is not None else x_all
        rows = min(int(opts["background"]), len(pool))
        large = model.count_params() >= BUDGET_PROBE_PARAMS
        # libraries forward the whole background at once, with gradients (SHAP's GradientExplainer)
        fits = memory.batch_size(model, rows) if large else rows
        if fits < rows:
            memory.note(f"a background of {fits} rows instead of {rows} (memory)")
            rows = fits
        view = ModelView(model, kind, batch_size=int(opts["batch_size"]), baseline=self._baseline(opts, kind, x_all[:1], pool),
                         train=pool, background=pool[np.random.default_rng(context.seed + 1).choice(
                             len(pool), rows, replace=False)])
        view.time_left = context.time_left
        methods, skipped = [], {}
        for name in self.choose(opts, view, x_all[:1]):
            ex = next(c for c in self.explainers if c.name == name)(**opts)
            why = ex.unavailable(view, x_all[:1])
            if not why and too_large and ex.backward:
                why = f"left out: {too_large}"
                memory.note(f"{name} {why}")
            if why:
                skipped[name] = why
            else:
                methods.append(ex)
        skipped.update(self._plan(context, opts, view, x_all, methods) if methods and large else {})
        methods = [ex for ex in methods if ex.name not in skipped]
        cost = {ex.name: ex.cost(view, x_all[:1]) for ex in methods}  # per sample, with the options as planned
        if not methods and too_large:  # say so now, not after predicting (minutes for such a sequence)
            return Result.skip("; ".join(f"{k}: {v}" for k, v in skipped.items()))
        cap = min(int(opts["check_samples"]), len(x_all))
        at_least = min(int(opts["samples"]), len(x_all))
        if "planned_samples" in opts:  # a large model: the time plan bounds the first looks, the pace the others
            planned = int(opts["planned_samples"])
            at_least = min(at_least, planned)
            if planned < 2 * int(opts["check_start"]):  # the budget holds less than two looks
                cap = min(cap, planned)
        looks = I.look_sizes(min(int(opts["check_start"]), cap), cap)
        level = I.per_look_level(len(looks), float(opts["check_level"]))
        order = E.sample_order(len(x_all), context.seed)[:max(at_least, cap)]
        x = x_all[order]
        pred = view.predict(x)
        failed = E.nonfinite_predictions(pred, f"{self.name}.failed")
        if failed is not None:  # nothing to explain: every method fails, with the reason
            finite = float(np.all(np.isfinite(pred.reshape(len(pred), -1)), axis=1).mean())
            check = Check("finite_predictions", finite, 1.0, Outcome.FAILED, reason=failed.findings[0].message)
            return Result(findings=failed.findings, metrics=failed.metrics, explanations=tuple(
                MethodExplanation(m, Verdict.FAILED, (check.reason,), (check,), sample_indices=order.tolist())
                for m in self.choose(opts, view, x)))
        targets = E.select_targets(pred, opts.get("target"), output_activation(model))
        if chosen:
            targets = dataclasses.replace(targets, description=f"{chosen}, {targets.description}")
        t, sign = targets.index, targets.sign
        if not methods:
            return Result.skip("; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no method chosen")
        fx, fb = view.forward(x, t) * sign, view.forward(view.baseline_like(x), t) * sign
        informative = E.informative_samples(fx, fb)
        audit = A.Audit(x=x, targets=t, sign=sign, view=view, limits=limits, opts=opts, seed=context.seed,
                        informative=informative, scale=float(np.median(np.abs(fx[:looks[0]]))) or 1.0,
                        mask=self._mask(context, x_all, order), looks=looks, level=level, explain_at_least=at_least)
        pace = Pace(context) if large else None
        tracks = [A.MethodTrack(ex) for ex in methods]

        def explain(track: A.MethodTrack, rows: np.ndarray) -> bool:
            ex = track.explainer
            if not track.maps:  # the first call: the time plan's pace guard may leave the method out
                why = pace and pace.too_slow(ex.name, cost[ex.name] * len(rows))
                if why:
                    skipped[ex.name] = f"left out: {why}"
                    return False
            ex.notes, ex.stage = {}, "main"
            try:
                with context.timed(f"method:{ex.name}"):
                    a = np.asarray(ex.attribute(view, x[rows], t[rows], context.seed), np.float64)
            except memory.TooLarge as e:  # raised by a batch plan before the memory was taken
                memory.note(f"{ex.name} left out: {e}" if not track.checks else f"{ex.name} stopped at "
                            f"{track.explained} samples: {e}")
                if not track.checks:  # its first look never finished: the method is left out
                    skipped[ex.name] = f"left out: {e}"
                return False
            if pace:
                pace.done(cost[ex.name] * len(rows))
            track.keep_notes(ex.notes)
            track.raw.append(a)
            track.maps.append(view.feature_map(_signed(a, sign[rows]), x[rows]))
            return True

        def sanity() -> str | None:
            if not opts["sanity"]:
                return "switched off (sanity=false)"
            spent = time.monotonic() - t0
            if self.sanity_cost and context.time_left() < self.sanity_cost * spent:
                return (f"not enough time left in the analyzer's budget ({context.time_left():.0f} s after {spent:.0f} s); "
                        f"raise --timeout")
            first = looks[0]
            evals = sum(cost[tr.name] * first * (2 if tr.explainer.sampling else 1) for tr in tracks if tr.maps)
            return pace.too_slow("the sanity checks", evals) if pace else None

        ran = A.run_looks(tracks, audit, explain=explain, axiom=lambda tr, rows, a: self._axiom(tr.explainer, view, x[rows],
                                                                                             t[rows], a),
                          sanity=sanity, too_slow=(pace.too_slow if pace else lambda what, evals: None),
                          progress=lambda i, n, what: context.progress(i, n, what), timed=context.timed, cost=cost)
        tracks = [tr for tr in tracks if tr.maps]
        context.progress(1, 1, "writing maps")
        shown = max((tr.explained for tr in tracks), default=0)
        sections = self._sections(context, view, x[:shown], order[:shown], targets, tracks, skipped, audit.mask,
                                  ran, cap)
        findings = [_verdict_finding(self.name, s) for s in sections if s.verdict not in (None, Verdict.TRUSTED)]
        if (~informative[:shown]).any():
            findings.insert(0, _baseline_finding(self.name, view, opts, fx[:shown], fb[:shown], informative[:shown]))
        common = min((tr.explained for tr in tracks), default=0)
        metrics = {"samples": shown, "sample_indices": order[:shown].tolist(), "target": targets.description,
                   "targets": t[:shown].tolist(), "space": view.space, "embedding_layer": view.embedding_layer,
                   "methods": [tr.name for tr in tracks], "not_run": skipped,
                   "agreement": E.agreement_matrix({tr.name: tr.all_maps()[:common] for tr in tracks}),
                   "informative_samples": int(informative[:shown].sum()), "sanity_skipped": ran["sanity_skipped"],
                   "checked_samples": {tr.name: tr.audited for tr in tracks}, "looks": ran["looks"],
                   "looks_ended": ran["ended"], "check_level": level,
                   "not_offered": dict(self.not_offered), **self.notes(view, opts)}
        artifacts = self._figures(context, view, x[:common], order[:common], t[:common],
                                  {tr.name: tr.all_maps()[:common] for tr in tracks}, sections,
                                  None if audit.mask is None else audit.mask[:common])
        return Result(findings=findings, metrics=E.json_round(metrics), artifacts=artifacts,
                      explanations=tuple(sections))

    def _sections(self, context, view, x, idx, targets, tracks, skipped, mask, ran, cap) -> list[MethodExplanation]:
        """One section per method; ``x`` and ``idx`` are every explained sample in order (a method that
        left the audit early explained a prefix of them)."""
        d = context.artifact_dir
        np.save(d / "inputs.npy", x)
        np.save(d / "sample_indices.npy", idx)
        shared = {"inputs": "inputs.npy", "sample indices": "sample_indices.npy"}
        if mask is not None:
            np.save(d / "mask.npy", mask[:len(x)].reshape((len(x),) + view.feature_shape(x)))
            shared["mask"] = "mask.npy"
        y = context.data.y
        if isinstance(y, dict):  # labels per output: the explained output's
            y = y.get(self._output)
        if y is not None and len(y) > int(idx.max(initial=0)):
            y = np.asarray(y)[idx]
            np.save(d / "labels.npy", y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(idx)))
            shared["labels"] = "labels.npy"
        out = []
        for tr in tracks:
            name, n = tr.name, tr.explained
            common = {"sample_indices": idx[:n].tolist(), "targets": targets.index[:n].tolist(),
                      "signs": [float(s) for s in targets.sign[:n]], "target": targets.description, "space": view.space}
            cls = type(tr.explainer)
            np.save(d / f"{name}.npy", _signed(tr.all_raw(), targets.sign[:n]).astype(np.float32))
            np.save(d / f"{name}.map.npy", tr.all_maps().reshape((n,) + view.feature_shape(x)).astype(np.float32))
            ordered = sorted(tr.checks, key=lambda c: CHECK_ORDER.index(c.name) if c.name in CHECK_ORDER else 99)
            ordered = [dataclasses.replace(c, value=_num(c.value), threshold=_num(c.threshold),
                                           reason="" if c.outcome is Outcome.PASSED else _open_reason(c, tr, cap),
                                           detail=E.json_round(dict(c.detail)),
                                           interval=None if c.interval is None else tuple(_num(v) for v in c.interval))
                       for c in ordered]
            verdict, reasons = verdict_of(ordered)
            out.append(MethodExplanation(name, verdict, reasons, tuple(ordered), reference=cls.reference,
                                         artifacts={**shared, "attributions": f"{name}.npy", "map": f"{name}.map.npy"},
                                         **common))
        n0 = len(x)
        for name, why in skipped.items():
            cls = next(c for c in self.explainers if c.name == name)
            out.append(MethodExplanation(name, None, reference=cls.reference, skipped=why, sample_indices=idx[:n0].tolist(),
                                         target=targets.description, space=view.space))
        return out

    def _figures(self, context, view, x, idx, t, maps, sections, mask) -> dict[str, str]:
        """The pictures, on the samples every method explained (the first ``len(x)`` of the order)."""
        d = context.artifact_dir
        verdicts = {s.method: s.verdict.value for s in sections if s.verdict is not None}
        artifacts = {"inputs": "inputs.npy", "sample indices": "sample_indices.npy"}
        for name in maps:
            artifacts[f"{name} attributions"] = f"{name}.npy"
        if not maps or not len(x):
            return artifacts
        feats = view.feature_shape(x)
        if view.kind == "image":
            E.save_image_overlays(d / "overlays.png", x, {m: v.reshape((-1,) + feats) for m, v in maps.items()},
                                  verdicts, captions=[f"#{i} → {u}" for i, u in zip(idx, t)])
            artifacts["overlays"] = "overlays.png"
        elif view.kind in ("token", "sequence"):
            E.save_heat_strips(d / "heat_strips.png", maps, verdicts, mask=mask,
                               xlabel="token position" if view.tokens else "time step", tokens=x if view.tokens else None)
            artifacts["heat strips"] = "heat_strips.png"
        else:
            names = list(context.metadata.get("feature_names") or [f"f{i}" for i in range(x.shape[1])])
            m = next(iter(maps))
            E.save_global_importance(d / "global_importance.png", names, np.abs(maps[m]).mean(0),
                                     title=f"Global importance: mean |{m}| ({verdicts[m]})")
            artifacts["global importance"] = "global_importance.png"
        return artifacts

    def _limits(self, options: dict) -> dict[str, float]:
        """The thresholds: the defaults, this analyzer's own (``defaults``), the thresholds file, ``--option``."""
        from ._thresholds import THRESHOLDS_OPTION, load_thresholds_file

        limits = _thresholds(options, "explanations")
        given = set(options)
        if options.get(THRESHOLDS_OPTION):
            given |= set(load_thresholds_file(options[THRESHOLDS_OPTION]).get("explanations", {}))
        limits.update({k: float(v) for k, v in self.defaults.items() if k in limits and k not in given})
        return limits

    def _baseline(self, opts: dict, kind: str, x: np.ndarray, pool: np.ndarray) -> np.ndarray:
        if kind == "token":
            return np.full(x.shape[1:], int(opts["baseline_token"]), x.dtype)
        mean = opts["baseline"] == "mean" or (opts["baseline"] == "auto" and kind == "tabular")
        return np.asarray(pool, np.float64).mean(0).astype(x.dtype) if mean else np.zeros(x.shape[1:], x.dtype)

    def _axiom(self, ex: Explainer, view: ModelView, x, t, a) -> tuple[np.ndarray, np.ndarray] | None:
        """Per sample, |Σ attributions − (F(x) − reference)| and F(x) − reference, for a method with an
        axiom (the reference: F(baseline) for completeness, E[F(background)] for additivity)."""
        if ex.axiom is None:
            return None
        fx = view.forward(x, t)
        ref = view.forward(view.baseline_like(x), t) if ex.axiom == "completeness" else view.background_output(t)
        return np.abs(a.reshape(len(a), -1).sum(1) - (fx - ref)), fx - ref

    def _mask(self, context, x_all, order) -> np.ndarray | None:
        """The planted ground truth of the samples in ``order`` (n, positions), when the data carry one."""
        mask = context.data.extras.get("mask_val") if context.data.x_val is not None else None
        if mask is None or np.asarray(mask).shape[0] != len(x_all):
            return None
        return np.asarray(mask)[order].reshape(len(order), -1)


class Pace:
    """The live check that a large model's explanation keeps to its budget: the time plan
    (:func:`diagnostics.budget.plan`) rests on a timing probe, which a busy machine or a library's own
    overheads can make optimistic. After each method, the seconds per evaluation actually seen give the
    next method's time; a method (or the sanity checks) that would take more than :data:`PACE_SHARE` of
    the time left is left out, with the reason, rather than run into the timeout."""

    def __init__(self, context: Context):
        self.context, self.start, self.evals = context, time.monotonic(), 0.0

    def done(self, evals: float) -> None:
        self.evals += evals

    def too_slow(self, what: str, evals: float) -> str | None:
        from . import memory

        left = self.context.time_left()
        if not self.evals or not np.isfinite(left):
            return None
        rate = (time.monotonic() - self.start) / self.evals
        if evals * rate <= PACE_SHARE * left:
            return None
        why = (f"at the pace of the methods before ({rate * 1000:.0f} ms an evaluation) it would take about "
               f"{evals * rate:.0f} s, more than {PACE_SHARE:.0%} of the {left:.0f} s left (raise --timeout)")
        memory.note(f"{what} not run: {why}")
        return why


#: Share of the time left that one more method, or the sanity checks, may take on a large model.
PACE_SHARE = 0.5

CHECK_ORDER = ["finite", "completeness", "additivity", "randomisation", "faithfulness", "ground_truth", "stability"]


def _open_reason(check: Check, track: A.MethodTrack, cap: int) -> str:
    """A check's reason, and for one its looks left undecided, why they ended before deciding it."""
    if check.outcome is not Outcome.UNDECIDED:
        return check.reason
    if track.ended == "failed":
        return f"{check.reason}, not audited further: another check failed"
    if track.ended == "cap":
        return f"{check.reason} at the cap of {cap} samples (--option check_samples=N audits more)"
    if track.ended == "stopped":
        return f"{check.reason}; the method could not explain more samples (see the notes)"
    return f"{check.reason}; the looks ended at {check.samples} samples: {track.ended}"


def _signed(a: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Attributions of -p for the samples explained as class 0 of a one-unit sigmoid."""
    return a * np.asarray(sign).reshape((-1,) + (1,) * (a.ndim - 1))


def _num(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def _baseline_finding(analyzer: str, view: ModelView, opts: dict, fx, fb, informative) -> Finding:
    """``<analyzer>.baseline_not_neutral`` (``explain.baseline_not_neutral`` before issue 24, now an alias)."""
    n, bad = len(fx), int((~informative).sum())
    what = f"token {opts['baseline_token']}" if view.tokens else str(opts["baseline"])
    return Finding(
        f"{analyzer}.baseline_not_neutral", Severity.INFO, where="baseline",
        message=f"for {bad} of {n} samples the baseline ({what}) already gets within {E.INFORMATIVE_DELTA:.0%} of the "
                f"explained output (median {np.median(fb[~informative]):.3g} vs {np.median(fx[~informative]):.3g}): the "
                f"model does not need the input to predict that — often a default class — so baseline attributions "
                f"are rightly near zero there; these samples are left out of the faithfulness and ground-truth "
                f"scores. Try --option baseline=mean, or a method that averages over baselines.")


def _verdict_finding(analyzer: str, s: MethodExplanation) -> Finding:
    """The finding of a method that did not pass, coded ``<analyzer>.<method>.<verdict>``.

    A trusted method gets none: its verdict is one cell of the report's method table, and a line per
    passing method buried the warnings (13 on the zoo cnn, 9 of the summary's 10 worst findings).
    Failed is a WARNING: the maps are not evidence of what the model uses. Doubtful stays INFO: every
    applicable check ran and none refuted the maps, but one came short of its threshold (a stability
    or completeness gap), so the maps are usable with care; it keeps its line because the reason says
    what to change (more samples, steps, another baseline), and ``--fail-on info`` can still gate on it.
    Undecided is INFO too: nothing spoke against the maps, but some check's interval still straddles its
    threshold, and the line says which and how to decide it.
    """
    failed = s.verdict is Verdict.FAILED
    why = "; ".join(r for r in s.reasons if r) or "see its checks"
    return Finding(f"{analyzer}.{s.method}.{s.verdict.value}", Severity.WARNING if failed else Severity.INFO,
                   where=s.method, message=f"{s.method} {'failed' if failed else 'is ' + s.verdict.value}: {why}")
