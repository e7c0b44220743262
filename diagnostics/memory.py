"""Memory-safe batching: how many samples one compiled call may take, from a measured per-sample cost.

The batched primitives (:mod:`diagnostics.backends`) and the batched predictions of the analyzers ask
:func:`batch_size` how many samples they may send through the model at once. The answer comes from

- the **limit**: the memory one worker may use (``--max-memory``, shared out among the run's
  concurrent workers; by default :data:`DEFAULT_FRACTION` of the machine's memory), never more than
  what the machine has available right now;
- a **per-sample cost**, measured once per model and kind of call: the growth of the process's peak
  resident memory over one small probe batch (forward, or forward and backward), and never less than
  an estimate from the model's layer output sizes (the measurement can miss memory the allocator
  already held);
- the **headroom**: a batch may take :data:`BATCH_FRACTION` of what is left between the worker's
  current resident memory and its limit, so that temporaries, the analyzer's own arrays and the
  allocator's fragmentation fit beside it, and never more than :data:`MAX_BATCH_BYTES`;
- for **recurrent layers**, a cost per time step: every step keeps its gates and states for the
  backward pass (per sample), and the framework keeps a few tensors of bookkeeping per step whatever
  the batch (:data:`STEP_OVERHEAD`, per call). A sequence of 200,000 steps costs gigabytes before the
  first sample; when even one sample does not fit, :func:`batch_size` raises :class:`TooLarge`, which
  the worker reports as a skipped analyzer (and the explanation pipeline as a method left out) with
  the figures, instead of letting the process grow until it is killed.

When a call still runs out of memory (TensorFlow's ``ResourceExhaustedError``, torch's
``OutOfMemoryError`` or its CPU allocator's "can't allocate memory"), :func:`run_batched` halves the
batch, remembers the smaller size for the model, and retries (:func:`is_oom` says what counts).

Peak memory is read from ``/proc/self/status`` (``VmHWM``), which :func:`reset_peak` rewinds, so the
worker records each analyzer's own peak in the report. On systems without ``/proc`` the limit comes
from the configuration alone and peaks are not recorded (None).

One configuration value, :func:`set_limit` / :func:`limit_bytes`, is the single source of the
limit: a worker sets it from its job before running an analyzer (and an OS-level ceiling, where one
is applied, should read the same value).
"""

from __future__ import annotations

import os
import re
import weakref
from typing import Any, Callable

#: Share of the machine's physical memory a whole run may use when ``--max-memory`` is not given.
DEFAULT_FRACTION = 0.5
#: Share of a worker's remaining headroom one batch may take.
BATCH_FRACTION = 0.5
#: The most one batch's activations may take, whatever the headroom: beyond about a gigabyte a CPU is
#: compute-bound and a larger batch buys nothing, while the whole worker (framework, model, data, the
#: analyzer's arrays) must stay within a few gigabytes on an ordinary machine (issue 22: no process
#: over 2.5 GB on a hostile file). 1.5 GiB keeps every zoo model's batches, and MobileNetV2's, as they were.
MAX_BATCH_BYTES = 3 * 2**29
#: Bytes a recurrent layer's step costs per call, whatever the batch (forward, backward): the tensor
#: objects the framework keeps per step. Measured on CPU for LSTM(2) over 8,000 steps, first call of a fresh
#: process: TensorFlow 1.2 KiB forward, 6.4 KiB backward (while-loop accumulators); torch 0.4 KiB forward,
#: 20 KiB backward (one autograd node per op per step); rounded up, the larger of the two.
STEP_OVERHEAD = {False: 1536, True: 24 * 1024}
#: Floats a recurrent step keeps per sample and unit of its per-step output (gates before and after
#: their activation, states), forward and backward, and bytes of bookkeeping per sample and step.
#: Measured as above: LSTM(32) backward, TensorFlow ~9 floats a unit, torch ~19.
STEP_FLOATS_PER_UNIT = {False: 4, True: 20}
STEP_BYTES_PER_SAMPLE = {False: 64, True: 160}
#: Batch sizes of the measuring probe (two sizes: the difference cancels one-time costs).
PROBE_BATCHES = (2, 6)
#: Environment variable through which a worker process learns its limit (bytes).
LIMIT_ENV = "DIAGNOSTICS_MAX_MEMORY"

_limit: int | None = None
_COSTS: "weakref.WeakKeyDictionary[Any, dict[str, int]]" = weakref.WeakKeyDictionary()
_CAPS: "weakref.WeakKeyDictionary[Any, dict[str, int]]" = weakref.WeakKeyDictionary()
_EVENTS: list[str] = []
_NOTED: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()


# -- the machine -----------------------------------------------------------------------------------
def _meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo") as fh:
            return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in fh)}
    except (OSError, ValueError):
        return {}


def total_memory() -> int | None:
    """Physical memory of the machine in bytes (None when it cannot be read)."""
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Memory the kernel could give this process now (``MemAvailable``), in bytes, or None."""
    return _meminfo().get("MemAvailable")


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def current_rss() -> int | None:
    """This process's resident memory in bytes (None without ``/proc``)."""
    return _status("VmRSS")


def peak_rss() -> int | None:
    """This process's peak resident memory since start or the last :func:`reset_peak`, in bytes."""
    return _status("VmHWM")


def reset_peak() -> bool:
    """Rewind the peak (``VmHWM``) to the current resident memory; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# -- the limit ---------------------------------------------------------------------------------------
def default_limit() -> int | None:
    """The run-wide default of ``--max-memory``: :data:`DEFAULT_FRACTION` of physical memory."""
    total = total_memory()
    return None if total is None else int(total * DEFAULT_FRACTION)


def set_limit(limit: int | None) -> None:
    """Set the memory this process may use (bytes); None means the default for one worker."""
    global _limit
    _limit = int(limit) if limit else None
    if _limit:
        os.environ[LIMIT_ENV] = str(_limit)


def limit_bytes() -> int | None:
    """The memory this process may use: :func:`set_limit`'s value, else ``DIAGNOSTICS_MAX_MEMORY``, else the default."""
    if _limit:
        return _limit
    raw = os.environ.get(LIMIT_ENV)
    if raw and raw.isdigit():
        return int(raw)
    return default_limit()


def per_worker(limit: int | None, workers: int) -> int | None:
    """A run-wide limit shared out among ``workers`` concurrent worker processes."""
    if not limit:
        return None
    return max(1, int(limit) // max(1, int(workers)))


def headroom() -> int | None:
    """Bytes this process may still allocate: up to its limit, and never more than the machine has available."""
    limit, rss, avail = limit_bytes(), current_rss(), available_memory()
    room = None
    if limit is not None and rss is not None:
        room = max(0, limit - rss)
    if avail is not None:
        room = avail if room is None else min(room, avail)
    return room


# -- per-sample cost -------------------------------------------------------------------------------
class TooLarge(MemoryError):
    """Even one sample does not fit the memory a batch may take: the work that needs it is left out,
    and the message (what one sample needs, what is allowed, what to change) goes into the report."""


def recurrent_steps(model) -> list[tuple[int, int, int]]:
    """``(steps, input features, output units per step)`` of each recurrent layer (LSTM, GRU, SimpleRNN,
    ConvLSTM, a Bidirectional wrapper, any Keras ``RNN``), nested models included; steps unknown (None)
    count as one."""
    out = []
    for layer in _layers(model):
        if getattr(layer, "cell", None) is None and getattr(layer, "forward_layer", None) is None:
            continue
        try:
            outputs = layer.output
            first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs  # return_state: the output first
            shape_in, shape_out = list(layer.input.shape), list(first.shape)
        except Exception:  # noqa: BLE001 - a layer used twice or never built has no single input
            continue
        if len(shape_in) < 3:
            continue
        # return_sequences keeps the time axis in the output; the per-step output is what follows it
        per_step = shape_out[2:] if len(shape_out) == len(shape_in) else shape_out[1:]
        out.append((int(shape_in[1]) if shape_in[1] else 1, _prod(shape_in[2:]), _prod(per_step)))
    return out


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d) if d else 1
    return n


def estimate_call_overhead(model, backward: bool) -> int:
    """Bytes one call costs whatever its batch: the recurrent layers' per-step bookkeeping
    (:data:`STEP_OVERHEAD`); 0 for a model without recurrent layers."""
    return sum(steps * STEP_OVERHEAD[backward] for steps, _, _ in recurrent_steps(model))


def estimate_per_sample(model, backward: bool) -> int:
    """Bytes one sample costs, estimated from the model's layer output sizes (float32): every output is
    kept for the backward pass and gets a gradient of its size, so backward counts them three times.
    A recurrent layer also keeps, at every time step, its input and its gates and states
    (:data:`STEP_FLOATS_PER_UNIT` floats per unit) and some bookkeeping (:data:`STEP_BYTES_PER_SAMPLE`)."""
    total = 0
    for layer in _layers(model):
        try:
            outputs = layer.output
        except Exception:  # noqa: BLE001 - a layer used twice or never built has no single output
            continue
        for t in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            shape = getattr(t, "shape", None)
            if shape is None:
                continue
            n = 1
            for d in list(shape)[1:]:
                n *= int(d) if d else 1
            total += n
    for t in list(getattr(model, "inputs", None) or []):
        n = 1
        for d in list(t.shape)[1:]:
            n *= int(d) if d else 1
        total += n
    steps = sum(t * (4 * (f + STEP_FLOATS_PER_UNIT[backward] * u) + STEP_BYTES_PER_SAMPLE[backward])
                for t, f, u in recurrent_steps(model))
    return max(1, total * 4 * (3 if backward else 1) + steps)


def describe_steps(model) -> str:
    """``"one sample of 200,000 steps"`` for a recurrent model (its longest layer), else ``"one sample"``."""
    longest = max((t for t, _, _ in recurrent_steps(model)), default=0)
    return f"one sample of {longest:,} time steps" if longest > 1 else "one sample"


def allowance(room: int | None) -> int:
    """What one batch may take out of ``room`` bytes (the headroom, or the limit):
    :data:`BATCH_FRACTION` of it, at most :data:`MAX_BATCH_BYTES`."""
    return MAX_BATCH_BYTES if room is None else min(MAX_BATCH_BYTES, int(room * BATCH_FRACTION))


def check_fits(model, backward: bool = True, per_sample: int | None = None) -> None:
    """Raise :class:`TooLarge` when one sample, with the call's fixed cost, exceeds what a batch may ever take
    in this worker: :data:`BATCH_FRACTION` of its limit, at most :data:`MAX_BATCH_BYTES`. Judged against the
    limit, not the current headroom, so that an ordinary model in a worker already near its limit still runs
    one sample at a time (:func:`batch_size` never answers 0)."""
    kind = "backward" if backward else "forward"
    cost = per_sample or _COSTS.get(model, {}).get(kind) or estimate_per_sample(model, backward)
    limit = limit_bytes()
    need, allowed = estimate_call_overhead(model, backward) + cost, allowance(limit)
    if need > allowed:
        raise TooLarge(f"{describe_steps(model)} needs about {describe(need)} for a {kind} pass, more than the "
                       f"{describe(allowed)} one batch may take (half the worker's {describe(limit)} limit, "
                       f"at most {describe(MAX_BATCH_BYTES)})")


def _layers(model):
    out = []
    for layer in getattr(model, "layers", []) or []:
        inner = getattr(layer, "layers", None)
        if inner and hasattr(layer, "inputs"):
            out.extend(_layers(layer))
        else:
            out.append(layer)
    return out


def measure_per_sample(model, call: Callable[[int], Any], backward: bool) -> int:
    """Bytes one sample costs in ``call(n)`` (which runs the model on ``n`` samples), measured as the growth
    of peak resident memory between two probe batches, and never below :func:`estimate_per_sample`."""
    kind = "backward" if backward else "forward"
    known = _COSTS.get(model, {}).get(kind)
    if known:
        return known
    estimate = estimate_per_sample(model, backward)
    measured = 0
    small, large = PROBE_BATCHES
    try:
        call(small)  # traces and allocates what does not depend on the batch
        if reset_peak():
            base = current_rss() or 0
            call(large)
            peak = peak_rss() or 0
            measured = max(0, peak - base) // large
    except Exception as e:  # noqa: BLE001 - a probe that fails leaves the estimate
        if is_oom(e):
            raise
    cost = max(estimate, measured)
    _COSTS.setdefault(model, {})[kind] = cost
    return cost


def batch_size(model, requested: int, per_sample: int | None = None, *, backward: bool = True) -> int:
    """The largest batch up to ``requested`` that fits this worker's headroom (at least 1).

    ``per_sample`` is the measured cost (:func:`measure_per_sample`); without it the layer-size
    estimate is used. A smaller size learnt from an out-of-memory retry for this model wins.
    """
    requested = max(1, int(requested))
    kind = "backward" if backward else "forward"
    cost = per_sample or _COSTS.get(model, {}).get(kind) or estimate_per_sample(model, backward)
    check_fits(model, backward, cost)
    room = headroom()
    size = max(1, min(requested, (allowance(room) - estimate_call_overhead(model, backward)) // max(1, cost)))
    if size < requested:
        # A power of two: the headroom drifts by a few MiB between calls, and every new batch shape
        # costs a trace of the compiled function (seconds for a large network).
        size = 1 << (size.bit_length() - 1)
    cap = _CAPS.get(model, {}).get(kind)
    if cap:
        size = min(size, cap)
    if size < requested and (kind, size) not in _NOTED.setdefault(model, set()):
        _NOTED[model].add((kind, size))
        note(f"batches of {size} instead of {requested} ({kind}, about {cost / 2**20:.1f} MiB per sample, "
             f"{(room or 0) / 2**30:.1f} GiB headroom)")
    return size


def remember_cap(model, size: int, backward: bool = True) -> None:
    kind = "backward" if backward else "forward"
    caps = _CAPS.setdefault(model, {})
    caps[kind] = min(size, caps.get(kind, size))


# -- out of memory ---------------------------------------------------------------------------------
_OOM_TEXT = re.compile(r"out of memory|OOM when allocating|can't allocate memory|ResourceExhausted|"
                       r"failed to allocate|std::bad_alloc", re.I)


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error of TensorFlow, torch or the allocator."""
    if isinstance(e, MemoryError):
        return True
    names = {c.__name__ for c in type(e).__mro__}
    if names & {"ResourceExhaustedError", "OutOfMemoryError"}:
        return True
    return type(e).__name__ in ("RuntimeError", "InternalError", "UnknownError") and bool(_OOM_TEXT.search(str(e)))


def plan(model, requested: int, probe: Callable[[int], Any], *, backward: bool = True) -> int:
    """The batch size for ``requested`` samples per call: ``requested`` itself when even a generous estimate
    of it fits the headroom (no probe run), else from the per-sample cost measured with ``probe(k)``
    (which runs the model on ``k`` samples). :class:`TooLarge` before any probe when the estimate of one
    sample does not fit (a probe of such a model would itself take the memory)."""
    requested = max(1, int(requested))
    kind = "backward" if backward else "forward"
    check_fits(model, backward)
    room = headroom()
    cap = _CAPS.get(model, {}).get(kind)
    if room is not None and cap is None and kind not in _COSTS.get(model, {}):
        estimate, overhead = estimate_per_sample(model, backward), estimate_call_overhead(model, backward)
        if 3 * estimate * requested + overhead <= room * BATCH_FRACTION and estimate * requested + overhead <= MAX_BATCH_BYTES:
            return requested
    per = measure_per_sample(model, probe, backward) if room is not None else None
    return batch_size(model, requested, per, backward=backward)


def run_batched(model, n: int, size: int, step: Callable[[int, int, int], Any], *, backward: bool = True) -> list:
    """``[step(start, stop, size) for each batch]`` over ``n`` samples in batches of ``size``; on an
    out-of-memory error the batch is halved (down to 1), remembered for the model, and the failed batch
    retried. ``size`` is passed so a step can pad its last batch to one traced shape."""
    results = []
    start = 0
    size = max(1, int(size))
    while start < n:
        stop = min(n, start + size)
        try:
            results.append(step(start, stop, size))
        except Exception as e:  # noqa: BLE001
            if not is_oom(e) or size == 1:
                raise
            size = max(1, size // 2)
            remember_cap(model, size, backward)
            note(f"out of memory: retried with batches of {size}")
            _free()
            continue
        start = stop
    return results


def _free() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


# -- what the report says ---------------------------------------------------------------------------
def note(text: str) -> None:
    """Record an adjustment made to fit memory (shown once per job in the report)."""
    if text not in _EVENTS:
        _EVENTS.append(text)


def take_notes() -> list[str]:
    """The adjustments recorded since the last call (the worker attaches them to the job's record)."""
    out = list(_EVENTS)
    _EVENTS.clear()
    return out


def parse_limit(text: str) -> int:
    """``"8GiB"``, ``"50%"`` (of physical memory) or a byte count -> bytes."""
    text = text.strip()
    if text.endswith("%"):
        total = total_memory()
        if total is None:
            raise ValueError("cannot read the machine's memory to take a percentage of it; give a size such as 8GiB")
        pct = float(text[:-1])
        if not 0 < pct <= 100:
            raise ValueError(f"--max-memory {text}: a percentage must be in (0, 100]")
        return int(total * pct / 100)
    from .safety import parse_size

    return parse_size(text)


def describe(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
