"""The HDF5 half of the pre-scan, run as a child process by :func:`diagnostics.safety.probe_h5`.

A malformed HDF5 file can make libhdf5 loop forever or allocate without bound inside one C call,
where neither Ctrl-C nor SIGTERM is seen. So the parent runs this file as a script (not as
``-m diagnostics...``: the package is not imported here), under an address-space ceiling, and kills it at a
deadline. It prints one JSON object: ``{"refused": reason}`` or what it read.

Checks, without reading any dataset's values: no external links, soft links, external-storage or
virtual datasets (they make libhdf5 open other files, or let one dataset be named many times); the
object count; every attribute's size; each dataset's dtype and declared size, summed against the
file's size and the parameter limit; no dataset reached by two paths; ``weight_names`` and
``layer_names`` lists (or their chunked ``weight_names0``, ``weight_names1``... form) without duplicates.
"""

from __future__ import annotations

import json
import sys


def probe(path: str, label: str, weights_only: bool, limits: dict, file_size: int) -> dict:
    import h5py
    import numpy as np

    part = "the file header"

    def refuse(reason: str) -> dict:
        return {"refused": f"{label}{'' if reason.startswith(' ') else ': '}{reason}"}

    try:
        with h5py.File(path, "r") as f:
            stack = [("", f)]
            seen: dict = {}
            objects = 0
            elements = 0
            nbytes = 0
            while stack:
                prefix, group = stack.pop()
                part = f"group {prefix or '/'}"
                problem = _check_attributes(group, limits, np)
                if problem:
                    return refuse(f"{part}: {problem}")
                for attr in ("weight_names", "layer_names"):
                    names = _name_list(group, attr, np)
                    counts: dict = {}
                    for n in names:
                        counts[n] = counts.get(n, 0) + 1
                    dup = sorted(n for n, c in counts.items() if c > 1)
                    if dup:
                        shown = attr if attr in group.attrs else f"{attr}0, {attr}1..."
                        return refuse(f"{part}: {shown} lists {dup[0]!r} more than once (one {'dataset' if attr == 'weight_names' else 'group'} loaded many times)")
                for key in group.keys():
                    objects += 1
                    if objects > limits["max_h5_objects"]:
                        return refuse(f"more than {limits['max_h5_objects']} HDF5 objects: not a Keras model file")
                    path_ = f"{prefix}/{key}"
                    part = f"object {path_}"
                    link = group.get(key, getlink=True)
                    if isinstance(link, h5py.ExternalLink):
                        return refuse(f" has an HDF5 external link at {path_} to {link.filename!r}: refusing to open other files")
                    if isinstance(link, h5py.SoftLink):
                        return refuse(f" has an HDF5 soft link at {path_} to {link.path!r}: Keras never writes links")
                    obj = group.get(key)
                    if obj.id in seen:
                        return refuse(f"the HDF5 object at {path_} is also linked at {seen[obj.id]}: one object named twice")
                    seen[obj.id] = path_
                    if isinstance(obj, h5py.Dataset):
                        if obj.external:
                            files = sorted({str(e[0]) for e in obj.external})
                            return refuse(f" has an HDF5 dataset {path_} stored in external file(s) {files}: refusing to read other files")
                        if obj.is_virtual:
                            return refuse(f" has an HDF5 virtual dataset at {path_}: refusing to read other files")
                        if obj.dtype.kind not in "biuf":
                            return refuse(f"the HDF5 dataset {path_} has dtype {obj.dtype}, not a numeric weight")
                        problem = _check_attributes(obj, limits, np)
                        if problem:
                            return refuse(f"{part}: {problem}")
                        size = int(np.prod(obj.shape, dtype=object)) if obj.shape else 1
                        elements += size
                        nbytes += size * obj.dtype.itemsize
                        if elements > limits["max_params"] or nbytes > 4 * limits["max_params"]:
                            return refuse(f"its weights hold more than {limits['max_params']:,} values (--max-params)")
                        if nbytes > limits["allowed_weight_bytes"]:
                            return refuse(f"its weights declare {nbytes:,} bytes, far more than the file's {file_size:,} bytes hold "
                                          f"(unwritten or compressed datasets: an allocation bomb)")
                    elif isinstance(obj, h5py.Group):
                        stack.append((path_, obj))
                    else:
                        return refuse(f"{part} is an HDF5 {type(obj).__name__}, not a group or dataset")
            out = {"elements": elements, "nbytes": nbytes}
            if weights_only:
                return out
            for name in ("model_config", "training_config", "keras_version", "backend"):
                part = f"the {name} attribute"
                if name not in f.attrs:
                    out[name] = None
                    continue
                value = f.attrs[name]
                if isinstance(value, np.ndarray) and value.shape == ():
                    value = value[()]
                if isinstance(value, (bytes, np.bytes_)):
                    value = bytes(value).decode("utf-8")
                elif isinstance(value, np.str_):
                    value = str(value)
                if not isinstance(value, str):
                    return refuse(f"{part} is {type(value).__name__}{getattr(value, 'shape', '')}, not a JSON string")
                if len(value) > limits["max_config_bytes"]:
                    return refuse(f"{part} is {len(value):,} bytes, over the {limits['max_config_bytes']:,}-byte limit")
                out[name] = value
            return out
    except Exception as e:  # noqa: BLE001 - every parser error on a malformed file is a refusal
        text = (str(e).splitlines() or [""])[0][:200]
        if part == "the file header":
            return refuse(f" cannot be opened as HDF5 ({text}): the file is truncated or corrupt")
        return refuse(f"{part} cannot be read as HDF5 ({type(e).__name__}: {text}): the file is truncated, corrupt or not a Keras model")


def _name_list(group, attr: str, np) -> list[str]:
    """The names Keras reads for ``attr`` (load_attributes_from_hdf5_group): the attribute itself, else its
    chunks ``attr0``, ``attr1``... (Keras splits long lists so): both forms are checked alike."""
    if attr in group.attrs:
        chunks = [group.attrs[attr]]
    else:
        chunks, i = [], 0
        while f"{attr}{i}" in group.attrs:
            chunks.append(group.attrs[f"{attr}{i}"])
            i += 1
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
            for chunk in chunks for n in np.asarray(chunk).ravel()]


def _check_attributes(obj, limits: dict, np) -> str | None:
    import h5py

    names = list(obj.attrs.keys())
    if len(names) > 1000:
        return f"{len(names)} attributes: not a Keras model file"
    for name in names:
        aid = h5py.h5a.open(obj.id, name.encode("utf-8") if isinstance(name, str) else name)
        shape = aid.shape or ()
        count = int(np.prod(shape, dtype=object)) if shape else 1
        try:
            storage = aid.get_storage_size()
        except RuntimeError:  # libhdf5 reports an empty attribute's size as an error
            storage = 0
        storage = max(storage, count * aid.get_type().get_size())
        if storage > limits["max_h5_attribute_bytes"] or count > limits["max_h5_attribute_bytes"] // 8:
            return f"the attribute {name!r} is {storage:,} bytes, over the {limits['max_h5_attribute_bytes']:,}-byte limit"
    return None


def confine(path: str) -> None:
    """Confine this process to reading ``path`` (and Python), before libhdf5 sees a byte of it: the
    sandbox (diagnostics/_sandbox.py, loaded by path since the package is not imported here). Where the
    kernel offers none, the probe runs as before; the run itself then refuses to start workers."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_diagnostics_sandbox", Path(__file__).with_name("_sandbox.py"))
    sandbox = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sandbox)
    if sandbox.unavailable_reason() is None:
        sandbox.confine(sandbox.Policy(read=(path,)))


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    limits = request["limits"]
    try:
        import resource

        ceiling = int(limits["h5_scan_memory"])
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on Linux
        pass
    confine(request["path"])
    try:
        result = probe(request["path"], request["label"], request["weights_only"], limits, request["file_size"])
    except MemoryError:
        result = {"refused": f"{request['label']}: reading it as HDF5 needs more than {limits['h5_scan_memory']:,} bytes of memory"}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
