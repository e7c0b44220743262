"""Every resource bound on reading and loading an untrusted model file, in one place.

``docs/security.md`` says which attack each bound defends against. The CLI exposes the ones a user
may need to raise (``--max-model-size``, ``--max-params``, ``--load-timeout``, ``--max-worker-memory``);
the others are constants no real Keras model comes near.
"""

from __future__ import annotations

import dataclasses

MiB = 1 << 20
GiB = 1 << 30


@dataclasses.dataclass(frozen=True)
class LoadLimits:
    """Bounds applied by the pre-scan (:func:`diagnostics.safety.scan`) and while a worker loads the model."""

    max_size: int = GiB  #: bytes of the model file (--max-model-size)
    max_params: int = 200_000_000  #: weights declared by the config or stored in the file (--max-params)
    max_config_bytes: int = 16 * MiB  #: model config JSON, .keras config.json or .h5 model_config attribute
    max_json_depth: int = 100  #: nesting of the config JSON
    max_layers: int = 1000  #: layers in the config, nested models included
    max_zip_entries: int = 10_000  #: entries in a .keras archive, from its end-of-central-directory record
    max_zip_directory_bytes: int = 4 * MiB  #: size of the archive's central directory, checked before reading it
    max_zip_ratio: int = 200  #: inflated / compressed size of an entry larger than 1 MiB
    #: inflated bytes of all archive entries together, from the central directory (Keras extracts every
    #: entry of a .keras to disk; 3,000 entries of 1 MiB zeros, 1 KB each deflated, stay under the per-entry
    #: ratio check and gave 3 GB of disk per load). None = derived from --max-params and --max-model-size:
    #: the weights entry's own bound plus room for the config, metadata and assets (see archive_bytes())
    max_archive_bytes: int | None = None
    #: elements of one constant (``__numpy__``/``__tensor__``) in a layer call's arguments. Real configs hold
    #: a few scalars or a small mask; the JSON itself bounds the count, this bounds what Keras builds from it
    #: (as float64, 8 MiB at most), whatever dtype the file asks for
    max_constant_elements: int = 1 << 20
    #: elements per sample of any shape a config declares (input layers, tensor references, build shapes):
    #: the largest real inputs are images and clips of a few million values (a 2048x2048 RGB image is 12.6 M);
    #: a declared (None, 100000, 100000) input is 40 GB per float32 sample once data is made for it
    max_tensor_elements: int = 1 << 24
    max_h5_objects: int = 200_000  #: groups and datasets in an HDF5 file
    max_h5_attribute_bytes: int = 16 * MiB  #: one HDF5 attribute's value
    #: declared (inflated) bytes of the weights may exceed the file's own size by this factor: Keras stores
    #: weights uncompressed, so a fill-only or heavily compressed dataset is an allocation bomb
    max_weights_to_file_ratio: int = 16
    h5_scan_timeout_s: float = 20.0  #: the HDF5 pre-scan runs in a child process killed after this (a real
    #: model's takes well under a second; the fuzzer found .h5 files on which libhdf5 loops forever)
    h5_scan_memory: int = 2 * GiB  #: address-space ceiling (RLIMIT_AS) of that child
    load_timeout_s: float = 300.0  #: a worker loading the model is stopped after this (--load-timeout)
    #: data-segment ceiling (RLIMIT_DATA) of each worker process, for loading and analysing
    #: (--max-worker-memory); None = 3/4 of physical memory, 0 = none. Named apart from a batch-sizing
    #: memory budget: this one is enforced by the OS, so exceeding it is a MemoryError, not the OOM killer.
    max_worker_memory: int | None = None

    def allowed_weight_bytes(self, file_size: int) -> int:
        return file_size * self.max_weights_to_file_ratio + 16 * MiB

    def weights_entry_bytes(self) -> int:
        """The inflated size model.weights.h5 may have inside a .keras archive."""
        return min(2 * self.max_size, 4 * self.max_params + 16 * MiB)

    def archive_bytes(self) -> int:
        """``max_archive_bytes``, or the weights entry's bound plus 64 MiB of assets and two configs."""
        if self.max_archive_bytes is not None:
            return self.max_archive_bytes
        return self.weights_entry_bytes() + 2 * self.max_config_bytes + 64 * MiB


DEFAULT = LoadLimits()


def worker_memory_ceiling(value: int | None) -> int:
    """The RLIMIT_DATA a worker gets: ``value``, or 3/4 of physical memory when None; 0 means none."""
    if value is not None:
        return int(value)
    try:
        import os

        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not on Linux
        return 0


def apply_worker_memory_ceiling(value: int | None) -> int:
    """Lower this process's RLIMIT_DATA to the ceiling (soft limit); returns the ceiling applied, 0 if none.

    Measured (docs/security.md): RLIMIT_DATA counts heap and anonymous mappings, so a TensorFlow or
    torch allocation past it raises (ResourceExhaustedError, RuntimeError, MemoryError) in the worker,
    while TensorFlow's large *virtual* reservations (VmSize about 2.2 GB right after import) are not
    counted — RLIMIT_AS would refuse TensorFlow's import below about 2.3 GB.
    """
    ceiling = worker_memory_ceiling(value)
    if ceiling <= 0:
        return 0
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            ceiling = min(ceiling, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on Linux
        return 0
    return ceiling


@dataclasses.dataclass(frozen=True)
class DataLimits:
    """Bounds applied to a model's sidecar (``<model>.meta.json``) and to a ``--data`` file *before* they are
    parsed (:mod:`diagnostics._data`). The zoo's sidecars are 1–5 KiB and its data sets a few MiB; each bound is
    far above what a real file needs and far below what hurts a run (a red team's 60 MB sidecar was copied into
    every job; a 50 MB CSV took 2.3 GB to parse; a 1.6 MB ``.npz`` declared 1.6 GB of arrays)."""

    max_sidecar_bytes: int = 4 * MiB  #: the sidecar JSON file
    max_json_depth: int = 100  #: nesting of the sidecar JSON (as LoadLimits.max_json_depth for configs)
    #: a .csv data file (about 100,000 rows of 20 columns; larger tables: save them as .npz). Parsed, a CSV of
    #: short values costs about 30 times its size at peak (a 50 MB one: 0.5 GB here, 1.5 GB before streaming)
    max_csv_bytes: int = 16 * MiB
    max_csv_field_chars: int = 4096  #: one CSV cell or header name
    #: arrays a .npz declares, inflated, all members together: they are all read into memory, in the CLI and
    #: in every worker (the same figure as the default --max-model-size)
    max_npz_bytes: int = GiB
    #: inflated / compressed size of a whole .npz whose arrays declare more than ``npz_ratio_floor`` bytes:
    #: real data compresses a few times, a compression bomb a thousand times
    max_npz_ratio: int = 200
    npz_ratio_floor: int = 64 * MiB
    max_npz_members: int = 1000  #: arrays in a .npz, from its end-of-central-directory record
    max_npz_directory_bytes: int = MiB  #: the .npz's zip directory, checked before it is read


DATA_DEFAULT = DataLimits()
