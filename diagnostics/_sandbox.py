"""Operating-system confinement for every process that deserializes or runs a model.

The pre-scan (:mod:`diagnostics.safety`) decides which files are refused; this module decides what a
file the scan missed can do: a worker process confines itself, before it imports Keras or reads the
model, so that a gadget that runs anyway cannot reach the network, read the user's files, write
outside its run's folder or signal other processes. The layers, each applied by the kernel and kept
across ``exec``:

- **Landlock** (Linux >= 5.13; ABI 7 on this project's machines): reads only of the Python
  installation, the system libraries and the paths the run names; writes only in the run's folder;
  TCP ``bind``/``connect`` denied (ABI >= 4); abstract Unix sockets and signals to processes outside
  the sandbox denied (ABI >= 6). Landlock also stops a sandboxed process from ``ptrace``-ing (or
  reading ``/proc/PID/mem`` and ``environ`` of) processes outside it.
- **seccomp**: no socket may be created (``socket``; ``socketpair`` only for ``SOCK_STREAM``, which is
  what a worker's pipe to its parent is), no io_uring (which creates sockets without those syscalls),
  no ``bpf``, ``perf_event_open``, ``userfaultfd``, kernel keyrings or ``ptrace``.
- **A new network namespace** (``unshare(CLONE_NEWUSER|CLONE_NEWNET)``) where user namespaces are
  allowed: no interface but a down loopback. Belt and braces over the two layers above, not required.
- **Resource limits**: no core dumps, a cap on the size of any file written (``RLIMIT_FSIZE``); the
  memory ceiling is the worker's ``RLIMIT_DATA`` (:func:`diagnostics._limits.apply_worker_memory_ceiling`).

Why no dependency: the three Landlock calls and a 30-instruction seccomp filter are a hundred lines
of ``ctypes`` against stable kernel ABIs; the PyPI bindings (``landlock``, ``pyseccomp``) wrap the
same calls, and bubblewrap would have to wrap the worker's start (multiprocessing's spawn) and exist
on the user's machine. This file imports only the standard library, so the HDF5 probe, which runs
without the package, loads it by path.

Reference: Landlock, https://docs.kernel.org/userspace-api/landlock.html; seccomp,
https://docs.kernel.org/userspace-api/seccomp_filter.html.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import platform
import resource
import struct
import sys

#: The flag that lifts confinement (recorded in the report). --trust lifts the scan, never this.
FLAG = "--no-sandbox"


class SandboxUnavailable(Exception):
    """The kernel offers no confinement here (the message says which layer and why)."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a confined process may touch, beyond the Python installation and the system libraries.

    ``read``: files or folders it may read; ``write``: folders it may read, create, change and delete
    in; ``scratch``: a folder (created, writable) that becomes ``TMPDIR``, where Keras extracts a
    ``.keras`` archive and matplotlib keeps its cache; ``max_file_bytes``: the largest file it may
    write (``RLIMIT_FSIZE``), None for no cap.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    scratch: str | None = None
    max_file_bytes: int | None = None

    def to_dict(self) -> dict:
        return {"read": list(self.read), "write": list(self.write), "scratch": self.scratch,
                "max_file_bytes": self.max_file_bytes}

    @classmethod
    def from_dict(cls, d: dict) -> "Policy":
        return cls(read=tuple(d.get("read", ())), write=tuple(d.get("write", ())), scratch=d.get("scratch"),
                   max_file_bytes=d.get("max_file_bytes"))


# -- what the kernel offers ------------------------------------------------------------------------
_SYSCALLS = {  # Landlock's numbers are the same on every architecture (generic syscall table)
    "landlock_create_ruleset": 444, "landlock_add_rule": 445, "landlock_restrict_self": 446,
}
_ARCH = {  # AUDIT_ARCH and the numbers the seccomp filter needs, per architecture
    "x86_64": {"audit": 0xC000003E, "socket": 41, "socketpair": 53, "ptrace": 101, "io_uring_setup": 425,
               "io_uring_enter": 426, "io_uring_register": 427, "bpf": 321, "perf_event_open": 298,
               "userfaultfd": 323, "add_key": 248, "request_key": 249, "keyctl": 250, "x32": True},
    "aarch64": {"audit": 0xC00000B7, "socket": 198, "socketpair": 199, "ptrace": 117, "io_uring_setup": 425,
                "io_uring_enter": 426, "io_uring_register": 427, "bpf": 280, "perf_event_open": 241,
                "userfaultfd": 282, "add_key": 217, "request_key": 218, "keyctl": 219, "x32": False},
}

_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
    return _libc


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers, 0 when it has none (or it is disabled)."""
    if sys.platform != "linux":
        return 0
    r = _lib().syscall(ctypes.c_long(_SYSCALLS["landlock_create_ruleset"]), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(r) if r > 0 else 0


def unavailable_reason() -> str | None:
    """Why this machine cannot confine a worker (one line), or None when it can. Costs two syscalls."""
    if sys.platform != "linux":
        return f"confinement needs Linux (Landlock and seccomp); this is {sys.platform}"
    if platform.machine() not in _ARCH:
        return f"the seccomp filter knows no system-call numbers for {platform.machine()}"
    abi = landlock_abi()
    if abi < 1:
        return "the kernel offers no Landlock (Linux >= 5.13 with landlock in the LSM list, lsm=...,landlock)"
    if _lib().prctl(21, 0, 0, 0, 0) < 0:  # PR_GET_SECCOMP
        return "the kernel offers no seccomp"
    return None


# -- Landlock --------------------------------------------------------------------------------------
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_RULE_PATH_BENEATH = 1


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _handled_fs(abi: int) -> int:
    rights = _FS_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _landlock(read: list[str], write: list[str], devices: list[str]) -> int:
    """Restrict this process (and what it starts) to the given paths; returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise SandboxUnavailable(unavailable_reason() or "no Landlock")
    libc = _lib()
    fs = _handled_fs(abi)
    attr = struct.pack("=QQQ", fs, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
                       _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = libc.syscall(ctypes.c_long(_SYSCALLS["landlock_create_ruleset"]), buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise SandboxUnavailable(f"Landlock refused a ruleset ({os.strerror(ctypes.get_errno())})")
    try:
        for paths, rights in ((read, _READ), (write, fs), (devices, _FS_READ_FILE | _FS_WRITE_FILE)):
            for path in paths:
                _add_rule(ruleset, path, rights & fs)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: required by Landlock and seccomp
            raise SandboxUnavailable(f"prctl(PR_SET_NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})")
        if libc.syscall(ctypes.c_long(_SYSCALLS["landlock_restrict_self"]), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise SandboxUnavailable(f"landlock_restrict_self failed ({os.strerror(ctypes.get_errno())})")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= _FILE_RIGHTS
        rule = _PathBeneath(rights, fd)
        r = _lib().syscall(ctypes.c_long(_SYSCALLS["landlock_add_rule"]), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                           ctypes.byref(rule), ctypes.c_uint32(0))
        if r != 0:
            raise SandboxUnavailable(f"Landlock refused a rule for {path!r} ({os.strerror(ctypes.get_errno())})")
    finally:
        os.close(fd)


# -- seccomp ---------------------------------------------------------------------------------------
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K, _AND_K = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
_SOCK_STREAM, _SOCK_TYPE_MASK = 1, 0xF


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program() -> list[tuple[int, int, int, int]]:
    a = _ARCH[platform.machine()]
    deny_eacces = _RET_ERRNO | errno.EACCES
    deny_enosys = _RET_ERRNO | errno.ENOSYS
    denied = [a[n] for n in ("io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
                             "userfaultfd", "add_key", "request_key", "keyctl", "ptrace")]
    prog: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, 4),                       # arch
        (_JEQ_K, 1, 0, a["audit"]),
        (_RET_K, 0, 0, deny_enosys),                # a foreign ABI (i386 socketcall...): nothing
        (_LD_W_ABS, 0, 0, 0),                       # syscall number
    ]
    if a["x32"]:
        prog += [(_JGE_K, 0, 1, 0x40000000), (_RET_K, 0, 0, deny_enosys)]
    prog += [(_JEQ_K, 0, 1, a["socket"]), (_RET_K, 0, 0, deny_eacces)]
    # socketpair(AF_UNIX, SOCK_STREAM, ...) only: a datagram pair could send to any named socket
    prog += [(_JEQ_K, 0, 4, a["socketpair"]), (_LD_W_ABS, 0, 0, 24), (_AND_K, 0, 0, _SOCK_TYPE_MASK),
             (_JEQ_K, 1, 0, _SOCK_STREAM), (_RET_K, 0, 0, deny_eacces)]
    # reload the number: the socketpair branch falls through here with the type in the accumulator
    prog += [(_LD_W_ABS, 0, 0, 0)]
    for nr in denied:
        prog += [(_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, deny_eacces)]
    prog += [(_RET_K, 0, 0, _RET_ALLOW)]
    return prog


def _seccomp() -> None:
    prog = _seccomp_program()
    arr = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), arr)
    libc = _lib()
    if libc.prctl(38, 1, 0, 0, 0) != 0:
        raise SandboxUnavailable(f"prctl(PR_SET_NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise SandboxUnavailable(f"the kernel refused the seccomp filter ({os.strerror(ctypes.get_errno())})")


# -- namespaces ------------------------------------------------------------------------------------
def _network_namespace() -> bool:
    """Move into a new user and network namespace (only a down loopback); False where not allowed."""
    uid, gid = os.getuid(), os.getgid()
    if _lib().unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
        return False
    try:  # keep our ids inside, so that files we create and getuid() look as before
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


# -- the whole -------------------------------------------------------------------------------------
#: System folders a Python process with numpy, TensorFlow and torch reads from (libraries, locale, time
#: zones, CPU topology); nothing in them is a user's file.
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/proc", "/sys/devices/system/cpu",
               "/sys/fs/cgroup", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
               "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/mime.types",
               "/etc/matplotlibrc", "/etc/os-release", "/etc/fonts", os.path.expanduser("~/.keras/keras.json"))
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full", "/dev/tty")


def python_paths(extra_modules: tuple[str, ...] = ()) -> list[str]:
    """Where this interpreter and its packages live: the prefixes, ``sys.path`` (not the current folder,
    a home folder or ``/`` itself: a script run from ``~`` puts it there), the folders editable installs map packages
    to (outside ``sys.path``), and the folders of ``extra_modules``."""
    import importlib.util

    home = os.path.realpath(os.path.expanduser("~"))
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for entry in sys.path:
        if not entry:  # the current folder ("python -c", "-m"): the user's files, not an installation
            continue
        real = os.path.realpath(entry)
        if real not in (home, "/") and os.path.exists(real):
            paths.add(real)
    for finder in sys.meta_path:  # setuptools' editable installs: package -> source folder
        mapping = getattr(sys.modules.get(getattr(finder, "__module__", ""), None), "MAPPING", None)
        if isinstance(mapping, dict):
            paths.update(os.path.realpath(str(p)) for p in mapping.values() if os.path.exists(str(p)))
    for name in extra_modules:
        try:
            spec = importlib.util.find_spec(name.split(".")[0])
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        for loc in list(spec.submodule_search_locations or []) or ([os.path.dirname(spec.origin)] if spec.origin else []):
            paths.add(os.path.realpath(loc))
    return sorted(paths)


def confine(policy: Policy, modules: tuple[str, ...] = ()) -> dict:
    """Confine this process (irreversibly) to ``policy``; call it before anything untrusted is read.

    Must run while the process has one thread (the user namespace needs it; a later thread inherits
    every layer). ``modules``: top-level packages whose folders must stay readable (plugins).
    Raises :class:`SandboxUnavailable` when Landlock or seccomp cannot be applied. Returns what was
    applied, for the report: ``{"filesystem": "landlock ABI 7", "network": [...], ...}``.
    """
    reason = unavailable_reason()
    if reason:
        raise SandboxUnavailable(reason)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if policy.max_file_bytes:
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        cap = policy.max_file_bytes if hard == resource.RLIM_INFINITY else min(policy.max_file_bytes, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, hard))
    write = [os.path.realpath(p) for p in policy.write]
    if policy.scratch:
        os.makedirs(policy.scratch, mode=0o700, exist_ok=True)
        write.append(os.path.realpath(policy.scratch))
        for var in ("TMPDIR", "MPLCONFIGDIR"):
            os.environ[var] = policy.scratch
        import tempfile

        tempfile.tempdir = None  # read TMPDIR again
    namespace = _network_namespace()
    read = sorted({*SYSTEM_READ, *python_paths(modules), *(os.path.realpath(p) for p in policy.read)})
    abi = _landlock(read, write, list(DEVICES))
    _seccomp()
    network = ["seccomp: no sockets"] + (["landlock: no TCP"] if abi >= 4 else []) + (["network namespace"] if namespace else [])
    return {"filesystem": f"landlock ABI {abi}", "network": network,
            "scoped": "abstract sockets, signals" if abi >= 6 else "none",
            "max_file_bytes": policy.max_file_bytes}


def describe(applied: dict | str | None) -> str:
    """One line for the report and the terminal (``applied`` as :func:`confine` returned it; a string is
    kept as it is; None: lifted by the flag)."""
    if isinstance(applied, str):
        return applied
    if not applied:
        return f"off ({FLAG}): model code ran unconfined"
    return (f"on: files {applied['filesystem']}; network {', '.join(applied['network'])}; "
            f"scoped {applied['scoped']}")
