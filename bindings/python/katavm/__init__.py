"""katavm: run containers in sandboxes, each its own lightweight VM.

A ctypes layer over libkatavm's public C API (include/katavm/katavm.h,
library libkatavm.so.1). Each sandbox is a VM with its own guest kernel,
supervised by a katavm-shim process; containers run inside it, and
processes are exec'd into containers with their stdio streamed back.

    import katavm

    with katavm.create_sandbox(memory_mib=256, max_cpus=2,
                               max_memory_mib=512) as sb:   # boots a VM
        ctr = sb.add_container(rootfs="/path/to/rootfs", args=["sleep", "inf"])
        ctr.start()
        r = ctr.exec(["uname", "-r"], check=True)         # like subprocess.run
        print(r.stdout.decode().strip())                  # the guest kernel
        with ctr.popen(["sh"]) as p:                      # like subprocess.Popen
            out, err = p.communicate(b"echo hi; exit 3")
            assert (out, p.returncode) == (b"hi\\n", 3)
        sb.hotplug_cpus(2)
        sb.hotplug_memory(add=256)
    # leaving the block destroyed the VM, its shim and its state

Classes: Runtime (settings: state root, libvirt URI, accelerator, guest
image), Sandbox (one VM), Container, Process (a running exec, from popen),
ExecResult (from exec); errors: Error and its subclasses. The module-level
create_sandbox(), open_sandbox(), list_sandboxes() and destroy_sandbox() use
a default Runtime() that takes its settings from the environment
(KATAVM_ROOT, KATAVM_KERNEL, ...; see Runtime).

Lifetime rules
- A Sandbox object is a handle. close() (or garbage collection) releases the
  handle only; the sandbox keeps running.
- `with` on a sandbox from create_sandbox() destroys it at the end of the
  block (destroy_on_exit=True by default): the common use is a throwaway
  sandbox, and a VM left running by a script that raised is a leak.
- `with` on a sandbox from open_sandbox() only closes the handle
  (destroy_on_exit=False by default): attaching to a sandbox someone else
  made must not remove it. Pass destroy_on_exit explicitly to change either.
- destroy() removes the sandbox now, whatever the handle's settings.
- Containers of a destroyed (or closed) sandbox raise StateError when
  used; a Process that was running in it raises a katavm.Error (its
  connection is gone); a closed Process raises StateError. Nothing crashes
  the interpreter.

Errors: bad Python arguments raise TypeError (wrong type, unknown keyword)
or ValueError (a value out of range; InvalidArgument is both a ValueError
and a katavm.Error) before the library is called. Failures of the library
raise subclasses of katavm.Error carrying .code (the negative katavm_code of
the C API), .code_name and the library's message.

Threads: the GIL is released during every library call (ctypes' CDLL does
this for every foreign call), so blocking calls (boot, exec, wait) let
other threads run. A Runtime or Sandbox handle serializes calls on itself,
as the C API requires; a running Process has its own connection, so
several threads can exec into one sandbox at once and stream their output
concurrently.
"""

from __future__ import annotations

import io as _io
import json as _json
import os as _os
import secrets as _secrets
import select as _select
import selectors as _selectors
import signal as _signal
import threading as _threading
import time as _time
import weakref as _weakref
from typing import (Any, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from . import _lib

__all__ = [
    "Runtime", "Sandbox", "Container", "Process", "ExecResult",
    "create_sandbox", "open_sandbox", "list_sandboxes", "destroy_sandbox",
    "default_runtime", "library_version",
    "Error", "InvalidArgument", "NotFound", "Exists", "HostIOError",
    "VMMError", "AgentError", "ProtocolError", "StateError", "Timeout",
    "Unsupported", "Corrupt", "ExecError", "ExecTimeout",
    "MIN_MEMORY_MIB", "ID_MAX",
]

__version__ = "0.1.0"

#: Smallest guest memory that boots (KATAVM_MIN_MEMORY_MIB).
MIN_MEMORY_MIB = 128
#: Longest sandbox or container id (KATAVM_ID_MAX).
ID_MAX = 64

StrPath = Union[str, bytes, "_os.PathLike[str]"]

# ---------------------------------------------------------------- errors


class Error(Exception):
    """A libkatavm failure. .code is the negative katavm_code, .message the
    library's one-line message, .code_name its short name ("not found")."""

    code: Optional[int] = None
    code_name = "error"

    def __init__(self, message: str, code: Optional[int] = None,
                 code_name: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if code_name is not None:
            self.code_name = code_name

    def __str__(self) -> str:
        return self.message


class InvalidArgument(Error, ValueError):
    """KATAVM_E_INVALID: an argument is malformed or out of range (also
    raised by the binding itself, before calling the library)."""
    code = -1
    code_name = "invalid argument"


class NotFound(Error, LookupError):
    """KATAVM_E_NOT_FOUND: no such sandbox, container, kernel, file, ..."""
    code = -2


class Exists(Error):
    """KATAVM_E_EXISTS: the sandbox or container id is already in use."""
    code = -3


class HostIOError(Error):
    """KATAVM_E_IO: a host I/O or system call failed."""
    code = -4


class VMMError(Error):
    """KATAVM_E_VMM: libvirt or QEMU failed."""
    code = -5


class AgentError(Error):
    """KATAVM_E_AGENT: the guest agent failed, misbehaved or went away."""
    code = -6


class ProtocolError(Error):
    """KATAVM_E_PROTOCOL: malformed or incompatible protocol data."""
    code = -7


class StateError(Error):
    """KATAVM_E_STATE: not valid in the current state (sandbox not running,
    container not started, handle closed, sandbox destroyed)."""
    code = -8
    code_name = "invalid state"


class Timeout(Error):
    """KATAVM_E_TIMEOUT: an operation did not finish in time."""
    code = -9


class Unsupported(Error):
    """KATAVM_E_UNSUPPORTED: e.g. accel "kvm" on a host without KVM."""
    code = -10


class Corrupt(Error):
    """KATAVM_E_CORRUPT: on-disk sandbox state is unreadable."""
    code = -11


class ExecError(Error):
    """Container.exec(check=True) ran a process that exited non-zero.
    .args_ (the argv), .exit_code, .stdout, .stderr (bytes) are set."""
    code_name = "non-zero exit"

    def __init__(self, args_, exit_code, stdout, stderr):
        super().__init__("%r exited with status %d%s" % (
            list(args_), exit_code,
            (": " + _s(stderr).strip()[-200:]) if stderr else ""))
        self.args_ = list(args_)
        self.exit_code = exit_code
        self.returncode = exit_code
        self.stdout = stdout
        self.stderr = stderr


class ExecTimeout(Timeout):
    """Container.exec() or Process.communicate() ran past its timeout; the
    process was killed (SIGKILL). .timeout, and the output read so far as
    .stdout and .stderr (bytes), are set."""

    def __init__(self, args_, timeout, stdout, stderr):
        super().__init__("%r did not exit within %g s and was killed" % (
            list(args_), timeout), -9, "timeout")
        self.args_ = list(args_)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


_BY_CODE = {c.code: c for c in (
    InvalidArgument, NotFound, Exists, HostIOError, VMMError, AgentError,
    ProtocolError, StateError, Timeout, Unsupported, Corrupt)}


def _s(b):
    """C string (bytes or None) -> str; never raises on odd bytes."""
    return b.decode("utf-8", "replace") if b is not None else None


def _invalid(msg):
    return InvalidArgument(msg, -1, "invalid argument")


def _b(s, what):
    """str/bytes/PathLike -> bytes for a C string argument."""
    if isinstance(s, (bytes, str, _os.PathLike)):
        b = _os.fsencode(s)
    else:
        raise TypeError("%s must be a string, not %s" % (what, type(s).__name__))
    if b"\0" in b:
        # C would silently cut the string at the NUL: refuse instead.
        raise _invalid("%s contains a NUL byte" % what)
    return b


def _ob(s, what):
    """Like _b, None allowed."""
    return None if s is None else _b(s, what)


def _uint(v, what, lo=0, hi=0xFFFFFFFF):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be an int, not %s" % (what, type(v).__name__))
    if v < lo or v > hi:
        # ctypes would wrap a negative value into a huge unsigned one.
        raise _invalid("%s %d is out of range (%d..%d)" % (what, v, lo, hi))
    return v


def _bool(v, what):
    if not isinstance(v, (bool, int)):
        raise TypeError("%s must be a bool, not %s" % (what, type(v).__name__))
    return 1 if v else 0


def _strv(items, what, allow_empty=True):
    """A list of strings -> a NULL-terminated char*[] (the ctypes array keeps
    the bytes alive). None -> None."""
    if items is None:
        return None
    if isinstance(items, (str, bytes, _os.PathLike)) or not isinstance(
            items, (list, tuple)):
        raise TypeError("%s must be a list of strings, not %s" % (
            what, type(items).__name__))
    if not items and not allow_empty:
        raise _invalid("%s must not be empty" % what)
    bs = [_b(x, "%s[%d]" % (what, i)) for i, x in enumerate(items)]
    arr = (_lib.c_char_p * (len(bs) + 1))(*bs, None)
    return arr


def _env(env):
    """env as a mapping or a list of "K=V" -> list of "K=V" (or None)."""
    if env is None:
        return None
    if isinstance(env, Mapping):
        out = []
        for k, v in env.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("env keys and values must be strings")
            if not k or "=" in k:
                raise _invalid("env name %r is invalid" % k)
            out.append("%s=%s" % (k, v))
        return out
    if isinstance(env, (list, tuple)):
        for i, kv in enumerate(env):
            if not isinstance(kv, str):
                raise TypeError("env[%d] must be a string, not %s" % (
                    i, type(kv).__name__))
            if "=" not in kv or kv.startswith("="):
                raise _invalid("env[%d] %r is not NAME=VALUE" % (i, kv))
        return list(env)
    raise TypeError("env must be a dict or a list of 'NAME=VALUE' strings, "
                    "not %s" % type(env).__name__)


def _user(user):
    """None | uid | "uid" | "uid:gid" | (uid, gid) -> (set, uid, gid)."""
    if user is None:
        return 0, 0, 0
    if isinstance(user, bool):
        raise TypeError("user must be an int, 'uid[:gid]' or (uid, gid)")
    if isinstance(user, int):
        u = _uint(user, "user")
        return 1, u, u
    if isinstance(user, tuple) and len(user) == 2:
        return 1, _uint(user[0], "uid"), _uint(user[1], "gid")
    if isinstance(user, str):
        parts = user.split(":")
        if len(parts) in (1, 2) and all(p.isdigit() for p in parts):
            u = int(parts[0])
            g = int(parts[1]) if len(parts) == 2 else u
            return 1, _uint(u, "uid"), _uint(g, "gid")
        raise _invalid("user %r: give a numeric uid or uid:gid (names are "
                       "not resolved)" % user)
    raise TypeError("user must be an int, 'uid[:gid]' or (uid, gid), not %s"
                    % type(user).__name__)


def _bytes_input(v, what="input"):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("%s must be bytes, not %s (encode it first)" % (
        what, type(v).__name__))


def _timeout(t, what="timeout"):
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError("%s must be a number of seconds, not %s" % (
            what, type(t).__name__))
    if t < 0 or t != t:
        raise _invalid("%s %r must not be negative" % (what, t))
    return float(t)


def _raise(lib, rc, err):
    """Turn (rc, katavm_error*) into the matching Error subclass; frees err."""
    if err.value:
        code = lib.katavm_error_code(err) or rc
        msg = _s(lib.katavm_error_message(err))
        lib.katavm_error_free(err)
        err.value = None
    else:
        code, msg = rc, None
    name = _s(lib.katavm_code_name(code))
    cls = _BY_CODE.get(code, Error)
    raise cls(msg or name, code, name)


def _call(lib, fn, *args):
    """Call a fallible API function with a trailing katavm_error **."""
    err = _lib.c_void_p()
    rc = fn(*args, _lib.ctypes.byref(err))
    if rc < 0:
        _raise(lib, rc, err)
    if err.value:  # a success that still set err would leak it
        lib.katavm_error_free(err)
    return rc


def _take_string(lib, p):
    """Copy a malloc'd C string returned by the library, then free it."""
    try:
        return _s(_lib.ctypes.string_at(p.value)) if p.value else ""
    finally:
        if p.value:
            lib.katavm_free(p)


def _take_strv(lib, p):
    """Copy a NULL-terminated char** returned by the library, then free it."""
    if not p.value:
        return []
    try:
        v = _lib.ctypes.cast(p, _lib.POINTER(_lib.c_char_p))
        out, i = [], 0
        while v[i] is not None:
            out.append(_s(v[i]))
            i += 1
        return out
    finally:
        lib.katavm_strv_free(p)


def library_version() -> str:
    """libkatavm's version string, e.g. "0.1.0"."""
    return _s(_lib.load().katavm_version())


# ---------------------------------------------------------------- runtime


class Runtime:
    """Configuration shared by the sandboxes it creates.

    Every argument left None keeps the C API's default, which the
    environment overrides (KATAVM_ROOT, KATAVM_LIBVIRT_URI, KATAVM_ACCEL,
    KATAVM_KERNEL, KATAVM_INITRD, KATAVM_SHIM, KATAVM_MEMORY_HOTPLUG,
    KATAVM_SHARED_FS).
      root         state directory (absolute, at most 32 characters;
                   default /run/katavm)
      libvirt_uri  "" = an embedded libvirt driver per sandbox (no daemon);
                   "qemu:///system" = libvirtd
      accel        "auto" | "kvm" | "tcg"
      kernel, initrd  guest image paths (absolute)
      memory_hotplug  "auto" | "virtio-mem" | "dimm"
      shared_fs    how rootfs and volumes reach the guest: "auto" (virtio-fs
                   where virtiofsd is installed, else 9p) | "virtio-fs" | "9p"
      vcpus, memory_mib  defaults for sandboxes that leave them at 0

    A Runtime is a context manager (close() at the end); sandboxes it made
    keep running after it is closed.
    """

    def __init__(self, root: Optional[StrPath] = None,
                 libvirt_uri: Optional[str] = None,
                 accel: Optional[str] = None,
                 kernel: Optional[StrPath] = None,
                 initrd: Optional[StrPath] = None,
                 vcpus: Optional[int] = None,
                 memory_mib: Optional[int] = None,
                 memory_hotplug: Optional[str] = None,
                 shared_fs: Optional[str] = None):
        self._lib = lib = _lib.load()
        self._h = None
        # The C API allows one thread per handle at a time: calls on this
        # runtime are serialized (use one Runtime per thread to create
        # sandboxes in parallel).
        self._mu = _threading.Lock()
        # Checked before anything is allocated.
        args = [(lib.katavm_runtime_set_root, _ob(root, "root")),
                (lib.katavm_runtime_set_libvirt_uri,
                 _ob(libvirt_uri, "libvirt_uri")),
                (lib.katavm_runtime_set_accel, _ob(accel, "accel")),
                (lib.katavm_runtime_set_kernel, _ob(kernel, "kernel")),
                (lib.katavm_runtime_set_initrd, _ob(initrd, "initrd")),
                (lib.katavm_runtime_set_memory_hotplug,
                 _ob(memory_hotplug, "memory_hotplug")),
                (lib.katavm_runtime_set_shared_fs, _ob(shared_fs, "shared_fs"))]
        v = None if vcpus is None else _uint(vcpus, "vcpus")
        m = None if memory_mib is None else _uint(memory_mib, "memory_mib")
        h = _lib.c_void_p()
        _call(lib, lib.katavm_runtime_new, _lib.ctypes.byref(h))
        self._h = h
        try:
            for fn, val in args:
                if val is not None:
                    _call(lib, fn, h, val)
            if v is not None or m is not None:
                _call(lib, lib.katavm_runtime_set_defaults, h,
                      1 if v is None else v, 256 if m is None else m)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return "<katavm.Runtime root=%r%s>" % (
            self.root if self._h is not None else None,
            "" if self._h is not None else " closed")

    def _handle(self):
        if self._h is None:
            raise StateError("the runtime is closed", -8, "invalid state")
        return self._h

    def close(self) -> None:
        """Free the runtime. Sandboxes keep running; open handles stay
        usable for calls that do not need the runtime."""
        if getattr(self, "_h", None) is None:
            return
        with self._mu:
            if self._h is not None:
                self._lib.katavm_runtime_free(self._h)
                self._h = None

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __del__(self):
        self.close()

    @property
    def root(self) -> str:
        """The state directory in use."""
        with self._mu:
            return _s(self._lib.katavm_runtime_root(self._handle()))

    def check(self) -> Dict[str, Any]:
        """Host check (like `katavm check --json`) as a dict:
        {"ok", "accel", "accel_reason", "items": [{"name","ok","detail",
        "fix"}...]}. Failing items do not raise; see "ok"."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_check_host, self._handle(),
                  _lib.ctypes.byref(p))
        return _json.loads(_take_string(self._lib, p))

    def build_image(self, kernel_release: Optional[str] = None,
                    out_dir: Optional[StrPath] = None,
                    force: bool = False) -> None:
        """Build (or confirm up to date) the guest kernel + initrd, like
        `katavm image build`. kernel_release None = newest in /boot;
        out_dir None = the directory of the runtime's kernel path."""
        rel = _ob(kernel_release, "kernel_release")
        out = _ob(out_dir, "out_dir")
        f = _bool(force, "force")
        with self._mu:
            _call(self._lib, self._lib.katavm_image_build, self._handle(),
                  rel, out, f)

    def create_sandbox(self, id: Optional[str] = None, *,
                       name: Optional[str] = None,
                       cpus: int = 0, max_cpus: int = 0,
                       memory_mib: int = 0, max_memory_mib: int = 0,
                       netns: Optional[StrPath] = None,
                       net: Optional[str] = None,
                       publish: Optional[Sequence[str]] = None,
                       destroy_on_exit: bool = True) -> "Sandbox":
        """Create and boot a sandbox; returns once its guest agent answered.

        id (or name, the same thing): None = a random 16-character id.
        cpus, memory_mib: boot size, 0 = the runtime default.
        max_cpus, max_memory_mib: the most hotplug may reach (0 = the boot
        value). netns: a network namespace path (/run/netns/NAME or
        /proc/PID/ns/net) whose interfaces the guest gets (see katavm.h).
        net: None or "none" = no network (tcfilter when netns is given),
        "user" = user-mode networking (the guest reaches out through NAT,
        10.0.2.15/24). publish: with net="user", ports reachable from the
        host, each "[IP:]HOSTPORT:PORT[/tcp|udp]" like `podman run -p`
        (IP defaults to 127.0.0.1), e.g. ["127.0.0.1:8200:8200"].
        `with` on the result destroys the sandbox at the end of the block
        unless destroy_on_exit is False. On failure nothing is left behind.
        """
        if id is not None and name is not None:
            raise TypeError("give id or name, not both")
        if id is None:
            id = name
        cfg = _lib.init(self._lib, _lib.SandboxConfig())
        if net is not None and not isinstance(net, str):
            raise TypeError("net must be a string, not %s" % type(net).__name__)
        keep = [_ob(id, "id"), _ob(netns, "netns"), _ob(net, "net"),
                _strv(publish, "publish")]
        # kept referenced until the call returns
        cfg.id, cfg.netns, cfg.net = keep[:3]
        if keep[3] is not None:
            cfg.publish = keep[3]
        cfg.vcpus = _uint(cpus, "cpus")
        cfg.max_vcpus = _uint(max_cpus, "max_cpus")
        cfg.memory_mib = _uint(memory_mib, "memory_mib")
        cfg.max_memory_mib = _uint(max_memory_mib, "max_memory_mib")
        doe = bool(destroy_on_exit)
        h = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_create, self._handle(),
                  _lib.ctypes.byref(cfg), _lib.ctypes.byref(h))
        return Sandbox._wrap(self, h, doe)

    def open_sandbox(self, id: str, *,
                     destroy_on_exit: bool = False) -> "Sandbox":
        """Attach to an existing sandbox (made by any process). `with` on
        the result only closes the handle unless destroy_on_exit is True."""
        h = _lib.c_void_p()
        id_b = _b(id, "id")
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_open, self._handle(),
                  id_b, _lib.ctypes.byref(h))
        return Sandbox._wrap(self, h, destroy_on_exit)

    def list_sandboxes(self) -> List[str]:
        """Ids of all sandboxes under the root, sorted."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_list, self._handle(),
                  _lib.ctypes.byref(p))
        return _take_strv(self._lib, p)

    def start_pool(self, size: int = 0, *, max_cpus: int = 0,
                   max_memory_mib: int = 0) -> None:
        """Start the warm pool of this runtime's root (docs/pool.md): a
        keeper process, outliving this one, keeps `size` VMs booted and
        agent-ready (0 = 1, at most 64), each able to grow to max_cpus
        vCPUs (0 = 2) and max_memory_mib MiB (0 = 1024). From then on
        create_sandbox() takes a pooled VM whenever the request fits (no
        netns, no user networking; cpus and memory within the maximum),
        else boots one as before. Returns once the keeper runs, before any
        VM is ready (pool() tells). Exists if a pool already runs for this
        root; InvalidArgument for a size or shape out of range or beyond
        the host's available memory. On failure nothing is left behind."""
        cfg = _lib.init(self._lib, _lib.PoolConfig())
        cfg.size = _uint(size, "size")
        cfg.max_vcpus = _uint(max_cpus, "max_cpus")
        cfg.max_memory_mib = _uint(max_memory_mib, "max_memory_mib")
        with self._mu:
            _call(self._lib, self._lib.katavm_pool_start, self._handle(),
                  _lib.ctypes.byref(cfg))

    def pool(self) -> Dict[str, Any]:
        """The pool of this root as a dict: {"running", "keeper_pid",
        "size", "max_vcpus", "max_memory_mib", "vms": [{"instance",
        "ready"}...]}; {"running": False, "vms": []} when there is none."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_pool_list, self._handle(),
                  _lib.ctypes.byref(p))
        return _json.loads(_take_string(self._lib, p))

    def remove_pool(self) -> None:
        """Stop the pool: the keeper ends and every VM not yet taken is
        destroyed; sandboxes already taken are not touched. No pool is not
        an error."""
        with self._mu:
            _call(self._lib, self._lib.katavm_pool_remove, self._handle())

    def destroy_sandbox(self, id: str) -> None:
        """Destroy sandbox `id`: VM, shim and state are removed, whether
        its shim is alive, dead or its state corrupt. NotFound if absent."""
        id_b = _b(id, "id")
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_destroy, self._handle(),
                  id_b)


_default_rt = None
_default_mu = _threading.Lock()


def default_runtime() -> Runtime:
    """The Runtime() the module-level functions use, made on first use
    with the environment's settings (KATAVM_ROOT, KATAVM_KERNEL, ...)."""
    global _default_rt
    with _default_mu:
        if _default_rt is None:
            _default_rt = Runtime()
        return _default_rt


def create_sandbox(id: Optional[str] = None, **kw) -> "Sandbox":
    """default_runtime().create_sandbox(...): see Runtime.create_sandbox."""
    return default_runtime().create_sandbox(id, **kw)


def open_sandbox(id: str, **kw) -> "Sandbox":
    """default_runtime().open_sandbox(id): see Runtime.open_sandbox."""
    return default_runtime().open_sandbox(id, **kw)


def list_sandboxes() -> List[str]:
    """default_runtime().list_sandboxes(): ids under the default root."""
    return default_runtime().list_sandboxes()


def destroy_sandbox(id: str) -> None:
    """default_runtime().destroy_sandbox(id)."""
    default_runtime().destroy_sandbox(id)


# ---------------------------------------------------------------- sandbox


def _new_id(prefix):
    return prefix + _secrets.token_hex(6)


class Sandbox:
    """A handle on one sandbox (one VM). Get it from create_sandbox() or
    open_sandbox(); see the module docstring for lifetime rules."""

    id: str
    destroy_on_exit: bool

    def __init__(self):
        raise TypeError("use create_sandbox() or open_sandbox()")

    @classmethod
    def _wrap(cls, rt, h, destroy_on_exit):
        self = object.__new__(cls)
        self._lib = rt._lib
        # The runtime object (not its C handle) is kept so that destroy()
        # works as long as the runtime is open.
        self._rt = rt
        self._h = h
        self._mu = _threading.Lock()
        self.id = _s(rt._lib.katavm_sandbox_id(h))
        self.destroy_on_exit = bool(destroy_on_exit)
        self._destroyed = False
        return self

    def __repr__(self) -> str:
        return "<katavm.Sandbox %r%s>" % (
            self.id, " destroyed" if self._destroyed else
            "" if self._h is not None else " closed")

    def _handle(self):
        if self._h is None:
            raise StateError("sandbox '%s' is %s" % (
                self.id, "destroyed" if self._destroyed
                else "closed (its handle)"), -8, "invalid state")
        return self._h

    def _c(self, fn, *args):
        """A fallible call on this handle, serialized."""
        with self._mu:
            return _call(self._lib, fn, self._handle(), *args)

    def close(self) -> None:
        """Release the handle; the sandbox keeps running."""
        with self._mu:
            if getattr(self, "_h", None) is not None:
                self._lib.katavm_sandbox_close(self._h)
                self._h = None

    def __del__(self):
        if getattr(self, "_mu", None) is not None:
            self.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.destroy_on_exit or self._destroyed:
            self.close()
            return False
        try:
            self.destroy()
        except Error:
            # Do not hide the exception that ended the block; a failed
            # destroy with no exception in flight is reported.
            if exc_type is None:
                raise
        return False

    # ---- the sandbox itself

    @property
    def state(self) -> str:
        """"running", "creating", "stopped" or "unknown" (shim unreachable)."""
        st = _lib.c_int(0)
        self._c(self._lib.katavm_sandbox_state, _lib.ctypes.byref(st))
        return _s(self._lib.katavm_sandbox_state_name(st.value))

    def agent_check(self) -> Dict[str, Any]:
        """Round trip to the guest agent. Returns a dict named like
        inspect()["guest"]: agent_version, proto, kernel (uname -r),
        cpus_online, mem_total_kib, uptime_ms; plus round_trip_us."""
        gi = _lib.init(self._lib, _lib.GuestInfo())
        self._c(self._lib.katavm_sandbox_agent_check, _lib.ctypes.byref(gi))
        return {
            "agent_version": _s(gi.agent_version),
            "proto": gi.proto_version,
            "kernel": _s(gi.kernel_release),
            "cpus_online": gi.cpus_online,
            "mem_total_kib": gi.mem_total_kib,
            "uptime_ms": gi.uptime_ms,
            "round_trip_us": gi.round_trip_us,
        }

    def inspect(self) -> Dict[str, Any]:
        """Everything known about the sandbox: {"id","state","shim_pid",
        "vcpus","max_vcpus","memory_mib","max_memory_mib","accel","created",
        "guest":{...} (when running), ...}."""
        p = _lib.c_void_p()
        self._c(self._lib.katavm_sandbox_inspect, _lib.ctypes.byref(p))
        return _json.loads(_take_string(self._lib, p))

    info = inspect

    def stop(self) -> None:
        """Power the guest off; the sandbox stays (state "stopped") until
        destroyed. Stopping a stopped sandbox is not an error."""
        self._c(self._lib.katavm_sandbox_stop)

    def destroy(self) -> None:
        """Destroy the sandbox (VM, shim, state) and close this handle.
        Destroying an already destroyed sandbox raises NotFound."""
        # Close first: our own connection to the shim is not needed and the
        # shim exits as part of the destroy.
        self.close()
        self._rt.destroy_sandbox(self.id)
        self._destroyed = True

    # ---- containers

    def add_container(self, bundle: Optional[StrPath] = None,
                      rootfs: Optional[StrPath] = None, *,
                      name: Optional[str] = None,
                      args: Optional[Sequence[str]] = None,
                      env: Union[Mapping[str, str], Sequence[str], None] = None,
                      cwd: Optional[str] = None,
                      hostname: Optional[str] = None,
                      tty: bool = False,
                      readonly: bool = False,
                      storage_size_mib: int = 0) -> "Container":
        """Create a container from an OCI bundle directory or a plain rootfs
        directory (exactly one). The rootfs is shared into the VM, not
        copied. name None = a generated id ("c" + 12 hex digits). args, env
        ({"K": "V"} or ["K=V"]), cwd, hostname, tty, readonly override the
        spec's process. storage_size_mib > 0: the container writes into a
        layer of that many MiB in guest memory, never into the host's
        rootfs (docs/storage.md). The main process waits for
        Container.start(); its stdio goes to /dev/null."""
        if (bundle is None) == (rootfs is None):
            raise TypeError("give exactly one of bundle= or rootfs=")
        cfg = _lib.init(self._lib, _lib.ContainerConfig())
        cid = name if name is not None else _new_id("c")
        keep = [_b(cid, "name"), _ob(bundle, "bundle"), _ob(rootfs, "rootfs"),
                _strv(args, "args", allow_empty=False), _strv(_env(env), "env"),
                _ob(cwd, "cwd"), _ob(hostname, "hostname")]
        cfg.bundle, cfg.rootfs = keep[1], keep[2]
        if keep[3] is not None:
            cfg.argv = keep[3]
        if keep[4] is not None:
            cfg.env = keep[4]
        cfg.cwd, cfg.hostname = keep[5], keep[6]
        cfg.tty = _bool(tty, "tty")
        cfg.readonly = _bool(readonly, "readonly")
        cfg.storage_size_mib = _uint(storage_size_mib, "storage_size_mib")
        self._c(self._lib.katavm_container_add, keep[0],
                _lib.ctypes.byref(cfg), None)
        return Container(self, _s(keep[0]))

    def container(self, name: str) -> "Container":
        """A Container object for an existing container (NotFound if the
        sandbox has none of that name)."""
        _b(name, "name")
        if name not in self.containers():
            raise NotFound("no container '%s' in sandbox '%s'" % (
                name, self.id), -2, "not found")
        return Container(self, name)

    def containers(self) -> List[str]:
        """Ids of the sandbox's containers."""
        p = _lib.c_void_p()
        self._c(self._lib.katavm_container_list, _lib.ctypes.byref(p))
        return _take_strv(self._lib, p)

    # ---- hotplug

    def _hotplug(self, kind, **fields):
        req = _lib.init(self._lib, _lib.HotplugRequest(), kind)
        for k, v in fields.items():
            setattr(req, k, v)
        p = _lib.c_void_p()
        self._c(self._lib.katavm_hotplug, _lib.ctypes.byref(req),
                _lib.ctypes.byref(p))
        s = _take_string(self._lib, p)
        return _json.loads(s) if s else {}

    def hotplug_cpus(self, n: int) -> Dict[str, Any]:
        """Set the online vCPU count (1..max_cpus). Growing plugs vCPUs,
        shrinking offlines them in the guest. Returns once they are online:
        {"cpus_online": N, ...}."""
        return self._hotplug(_lib.HOTPLUG_CPUS, cpus=_uint(n, "cpus", 1))

    def hotplug_memory(self, *, add: Optional[int] = None,
                       remove: Optional[int] = None,
                       set: Optional[int] = None) -> Dict[str, Any]:
        """Grow (add=MiB), shrink (remove=MiB) or set (set=MiB total) guest
        memory; exactly one, a multiple of 2, within boot .. max_memory_mib.
        Returns once MemTotal shows it: {"mem_total_kib": N, ...}."""
        given = [(op, v) for op, v in ((_lib.MEMORY_ADD, add),
                                       (_lib.MEMORY_REMOVE, remove),
                                       (_lib.MEMORY_SET, set)) if v is not None]
        if len(given) != 1:
            raise TypeError("give exactly one of add=, remove=, set=")
        op, v = given[0]
        return self._hotplug(_lib.HOTPLUG_MEMORY, memory_op=op,
                             memory_mib=_uint(v, "memory_mib", 1))

    def attach_nic(self, tap: Optional[str] = None, *,
                   netns_iface: Optional[str] = None,
                   mac: Optional[str] = None,
                   mtu: int = 0, addresses: Optional[Sequence[str]] = None,
                   gateway: Optional[str] = None) -> Dict[str, Any]:
        """Attach a virtio-net NIC, on an existing host tap (mac None =
        generated; mtu 0 = 1500; addresses in CIDR form "10.1.2.3/24"), or
        with netns_iface on an interface of the sandbox's network namespace,
        wired as at create (its MAC, addresses, MTU, routes: the other
        arguments unset). Returns {"mac", "ifname", ...}."""
        if (tap is None) == (netns_iface is None):
            raise TypeError("give exactly one of tap or netns_iface=")
        keep = [_ob(tap, "tap"), _ob(mac, "mac"),
                _strv(addresses, "addresses"), _ob(gateway, "gateway"),
                _ob(netns_iface, "netns_iface")]
        f = dict(tap=keep[0], mac=keep[1], mtu=_uint(mtu, "mtu", 0, 65535),
                 gateway=keep[3], netns_iface=keep[4])
        if keep[2] is not None:
            f["addresses"] = keep[2]
        return self._hotplug(_lib.HOTPLUG_NIC_ADD, **f)

    def detach_nic(self, mac: str) -> Dict[str, Any]:
        """Detach the NIC with this MAC."""
        return self._hotplug(_lib.HOTPLUG_NIC_REMOVE, mac=_b(mac, "mac"))

    def attach_disk(self, path: StrPath, *, readonly: bool = False,
                    container: Optional[str] = None,
                    mount_path: Optional[str] = None) -> Dict[str, Any]:
        """Attach a host file or block device as a virtio-blk disk,
        optionally mounted in `container` at `mount_path` (both or
        neither). Returns {"serial", "device", ...}."""
        if (container is None) != (mount_path is None):
            raise TypeError("give both container= and mount_path=, or neither")
        if isinstance(container, Container):
            container = container.id
        return self._hotplug(_lib.HOTPLUG_DISK_ADD, path=_b(path, "path"),
                             readonly=_bool(readonly, "readonly"),
                             container=_ob(container, "container"),
                             mount_path=_ob(mount_path, "mount_path"))

    def detach_disk(self, path: StrPath) -> Dict[str, Any]:
        """Unmount and detach the disk attached from this host path."""
        return self._hotplug(_lib.HOTPLUG_DISK_REMOVE, path=_b(path, "path"))


# ---------------------------------------------------------------- containers


class Container:
    """One container of a sandbox. Get it from Sandbox.add_container() or
    Sandbox.container(name). It holds no handle of its own: every call goes
    through its sandbox's handle and raises StateError once that is closed
    or the sandbox destroyed."""

    def __init__(self, sandbox: Sandbox, id: str):
        if not isinstance(sandbox, Sandbox):
            raise TypeError("sandbox must be a katavm.Sandbox")
        self.sandbox = sandbox
        self.id = id
        self._id_b = _b(id, "id")

    def __repr__(self) -> str:
        return "<katavm.Container %r in %r>" % (self.id, self.sandbox.id)

    def __eq__(self, other):
        return (isinstance(other, Container) and other.sandbox is self.sandbox
                and other.id == self.id)

    def __hash__(self):
        return hash((id(self.sandbox), self.id))

    def _c(self, fn, *args):
        return self.sandbox._c(fn, self._id_b, *args)

    def start(self) -> None:
        """Start the main process of a created container."""
        self._c(self.sandbox._lib.katavm_container_start)

    def _state(self):
        st, code = _lib.c_int(0), _lib.c_int(-1)
        self._c(self.sandbox._lib.katavm_container_state,
                _lib.ctypes.byref(st), _lib.ctypes.byref(code))
        return st.value, code.value

    @property
    def state(self) -> str:
        """"created", "running", "stopped" or "unknown"."""
        return _s(self.sandbox._lib.katavm_container_state_name(
            self._state()[0]))

    @property
    def exit_code(self) -> Optional[int]:
        """The main process's exit status once stopped (128+N for signal N),
        else None."""
        st, code = self._state()
        return code if st == _lib.CONTAINER_STOPPED else None

    def kill(self, sig: int = _signal.SIGTERM, all: bool = False) -> None:
        """Send a signal (default SIGTERM) to the main process, or with
        all=True to every process of the container."""
        self._c(self.sandbox._lib.katavm_container_kill,
                _uint(int(sig), "signal", 1, 64), _bool(all, "all"))

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the main process to exit; returns its status (128+N for
        signal N). timeout in seconds (None = forever); katavm.Timeout when
        it is still running then. Other calls on the sandbox go on while
        this waits."""
        t = _timeout(timeout)
        deadline = None if t is None else _time.monotonic() + t
        pause = 0.02
        # Polled: katavm_container_wait would hold the sandbox handle (and
        # so every other caller of this sandbox) for as long as it waits.
        while True:
            st, code = self._state()
            if st == _lib.CONTAINER_STOPPED:
                return code
            now = _time.monotonic()
            if deadline is not None and now >= deadline:
                raise Timeout("container '%s' did not exit within %g s" % (
                    self.id, t), -9, "timeout")
            pause = min(pause * 1.5, 0.5)
            _time.sleep(pause if deadline is None
                        else max(0.0, min(pause, deadline - now)))

    def remove(self, force: bool = False) -> None:
        """Remove the container (force=True kills it first; else it must be
        stopped) and unmount its rootfs."""
        self._c(self.sandbox._lib.katavm_container_remove,
                _bool(force, "force"))

    def popen(self, args: Sequence[str], *,
              env: Union[Mapping[str, str], Sequence[str], None] = None,
              cwd: Optional[str] = None,
              user: Union[int, str, Tuple[int, int], None] = None,
              tty: bool = False, rows: int = 0, cols: int = 0,
              stdin: bool = True) -> "Process":
        """Start a process in the container (like subprocess.Popen with
        stdin, stdout and stderr pipes) and return it at once.

        args: the argv, a non-empty list. env: replaces the container's
        environment ({"K": "V"} or ["K=V"]; None = the container's). cwd:
        absolute (None = the container's). user: uid, "uid:gid" or (uid,
        gid). tty: a pty (stdout carries it, .stderr is None); rows/cols
        its size (0 = 24x80). stdin False: the process gets /dev/null and
        .stdin is None.

        A command missing in the rootfs is not an error here: it exits 127
        with a message on stderr."""
        lib = self.sandbox._lib
        argv = _strv(args, "args", allow_empty=False)
        envv = _strv(_env(env), "env")
        cwd_b = _ob(cwd, "cwd")
        su, uid, gid = _user(user)
        cfg = _lib.init(lib, _lib.ExecConfig())
        cfg.argv = argv
        if envv is not None:
            cfg.env = envv
        cfg.cwd = cwd_b
        cfg.set_user, cfg.uid, cfg.gid = su, uid, gid
        cfg.tty = _bool(tty, "tty")
        cfg.rows = _uint(rows, "rows", 0, 65535)
        cfg.cols = _uint(cols, "cols", 0, 65535)
        cfg.no_stdin = 0 if _bool(stdin, "stdin") else 1
        h = _lib.c_void_p()
        self._c(lib.katavm_exec, _lib.ctypes.byref(cfg), _lib.ctypes.byref(h))
        return Process._wrap(self, list(args), h, bool(tty))

    def exec(self, args: Sequence[str], *,
             env: Union[Mapping[str, str], Sequence[str], None] = None,
             cwd: Optional[str] = None,
             user: Union[int, str, Tuple[int, int], None] = None,
             input: Optional[bytes] = b"",
             timeout: Optional[float] = None,
             check: bool = False, tty: bool = False) -> "ExecResult":
        """Run a process in the container to completion, like
        subprocess.run(capture_output=True): returns an ExecResult with
        .exit_code, .stdout, .stderr (bytes).

        input: bytes written to its stdin, then EOF (b"" = EOF at once; None
        = stdin is /dev/null). timeout: seconds; past it the process is
        killed (SIGKILL) and ExecTimeout (a katavm.Timeout) raised with the
        output so far. check=True: ExecError when it exits non-zero.
        env, cwd, user, tty: as for popen()."""
        data = _bytes_input(input)
        t = _timeout(timeout)
        _bool(check, "check")
        p = self.popen(args, env=env, cwd=cwd, user=user, tty=tty,
                       stdin=data is not None)
        with p:
            out, err = p.communicate(data, timeout=t)
            rc = p.returncode
        res = ExecResult(list(args), rc, out, err)
        if check:
            res.check_returncode()
        return res


class ExecResult:
    """What Container.exec() returns: .args, .exit_code (also .returncode),
    .stdout and .stderr (bytes; stderr is b"" for a tty process)."""

    __slots__ = ("args", "exit_code", "stdout", "stderr")

    def __init__(self, args, exit_code, stdout, stderr):
        self.args = args
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def returncode(self) -> int:
        return self.exit_code

    def check_returncode(self) -> None:
        """Raise ExecError if exit_code is non-zero."""
        if self.exit_code != 0:
            raise ExecError(self.args, self.exit_code, self.stdout,
                            self.stderr)

    def __repr__(self) -> str:
        return "ExecResult(args=%r, exit_code=%r, stdout=%r, stderr=%r)" % (
            self.args, self.exit_code, self.stdout[:80], self.stderr[:80])


# ---------------------------------------------------------------- processes


class _Pipe(_io.RawIOBase):
    """One end of a process's stdio pipe: a dup of the library's fd, so that
    the file object owns what it closes. Reads and writes wait in poll(2)
    together with the process's wake pipe, so that Process.close() from one
    thread ends a read or write blocked in another (as EOF, or
    BrokenPipeError) instead of waiting for the guest process."""

    def __init__(self, proc, fd, wake, writer):
        super().__init__()
        self._proc = _weakref.ref(proc)  # no cycle: Process owns this file
        self._wake = wake
        self._writer = writer
        self._fd = _os.dup(fd)
        _os.set_blocking(self._fd, False)

    def fileno(self):
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")
        return self._fd

    def readable(self):
        return not self._writer

    def writable(self):
        return self._writer

    def _ready(self, ev):
        """Wait until fd is ready for ev; False once the process is closed."""
        fd = self.fileno()
        p = _select.poll()
        p.register(fd, ev)
        p.register(self._wake, _select.POLLIN)
        while True:
            got = dict(p.poll())
            if self._wake in got:
                return False
            if fd in got:
                return True

    def readinto(self, b):
        while True:
            try:
                return _os.readv(self.fileno(), [b])
            except BlockingIOError:
                if not self._ready(_select.POLLIN):
                    return 0  # closed meanwhile: end of file

    def write(self, b):
        while True:
            try:
                return _os.write(self.fileno(), b)
            except BlockingIOError:
                if not self._ready(_select.POLLOUT):
                    raise BrokenPipeError("the process handle was closed")

    def close(self):
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            _os.close(fd)
            proc = self._proc()
            if self._writer and proc is not None:
                proc._close_lib_stdin()
        super().close()


class Process:
    """A process running in a container, from Container.popen(); shaped like
    subprocess.Popen.

    .stdin (a binary file, None with stdin=False), .stdout, .stderr (binary
    files; .stderr is None with tty=True) are ordinary pipes: read, write,
    select() on them, or use communicate(). .returncode is None until
    wait() or poll() saw the exit. close() (or the end of a `with` block,
    or garbage collection) releases the handle and the pipes; the library
    kills (SIGKILL) a process still running then: nothing exec'd runs on
    unowned."""

    args: List[str]
    returncode: Optional[int]
    stdin: Optional[_io.BufferedWriter]
    stdout: Optional[_io.BufferedReader]
    stderr: Optional[_io.BufferedReader]

    def __init__(self):
        raise TypeError("use Container.popen()")

    @classmethod
    def _wrap(cls, ctr, args, h, tty):
        self = object.__new__(cls)
        self._lib = ctr.sandbox._lib
        self.container = ctr
        self.args = args
        self.tty = tty
        self.returncode = None
        self._h = h
        # Guards the handle against being freed while a call uses it; the C
        # handle itself allows wait() beside signal() (it has its own lock).
        self._mu = _threading.Lock()
        self._busy = 0
        self._idle = _threading.Condition(self._mu)
        self.stdin = self.stdout = self.stderr = None
        self._wake = None
        try:
            self._wake = _os.pipe2(_os.O_CLOEXEC)
            fd = self._lib.katavm_process_stdin_fd(h)
            if fd >= 0:
                self.stdin = _io.BufferedWriter(
                    _Pipe(self, fd, self._wake[0], True))
            for name, get in (("stdout", self._lib.katavm_process_stdout_fd),
                              ("stderr", self._lib.katavm_process_stderr_fd)):
                fd = get(h)
                if fd >= 0:
                    setattr(self, name, _io.BufferedReader(
                        _Pipe(self, fd, self._wake[0], False)))
        except BaseException:
            self.close()
            raise
        return self

    def __repr__(self) -> str:
        return "<katavm.Process %r in %r returncode=%r>" % (
            self.args, self.container.id, self.returncode)

    # ---- handle lifetime

    def _enter(self):
        with self._mu:
            if self._h is None:
                raise StateError("the process handle of %r is closed" % (
                    self.args,), -8, "invalid state")
            self._busy += 1
            return self._h

    def _leave(self):
        with self._mu:
            self._busy -= 1
            if self._busy == 0:
                self._idle.notify_all()

    def _pc(self, fn, *args):
        h = self._enter()
        try:
            return _call(self._lib, fn, h, *args)
        finally:
            self._leave()

    def _close_lib_stdin(self):
        with self._mu:
            if self._h is not None:
                self._lib.katavm_process_close_stdin(self._h, None)

    def close(self) -> None:
        """Close the pipes and release the handle; a process that has not
        exited is killed by the library. Reads and writes blocked in other
        threads return (EOF, BrokenPipeError)."""
        wake = getattr(self, "_wake", None)
        if wake is not None:
            # Ends reads and writes blocked in other threads, so that the
            # closes below do not wait for the locks those calls hold.
            _os.write(wake[1], b"x")
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                try:
                    f.close()
                except (OSError, ValueError):
                    pass
        with self._mu:
            if self._h is None:
                return
            h, self._h = self._h, None
            # A wait() in another thread returns within one slice.
            while self._busy:
                self._idle.wait()
        self._lib.katavm_process_free(h)
        if wake is not None:
            self._wake = None
            _os.close(wake[0])
            _os.close(wake[1])

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __del__(self):
        if getattr(self, "_mu", None) is not None:
            self.close()

    # ---- the process

    def poll(self) -> Optional[int]:
        """The exit status if the process has exited, else None."""
        if self.returncode is None:
            try:
                self.wait(0)
            except Timeout:
                pass
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the process to exit and return its status (128+N for a
        death by signal N). timeout: seconds, None = forever; katavm.Timeout
        if it is still running then. Other threads may signal or resize the
        process meanwhile."""
        if self.returncode is not None:
            return self.returncode
        t = _timeout(timeout)
        deadline = None if t is None else _time.monotonic() + t
        code = _lib.c_int(-1)
        while True:
            # Slices of at most 250 ms, so that close() from another thread
            # never waits long for this call to let go of the handle.
            left = 250 if deadline is None else max(
                0, min(250, int((deadline - _time.monotonic()) * 1000)))
            try:
                self._pc(self._lib.katavm_process_wait, left,
                         _lib.ctypes.byref(code))
            except Timeout:
                if deadline is not None and _time.monotonic() >= deadline:
                    raise Timeout("%r did not exit within %g s" % (
                        self.args, t), -9, "timeout") from None
                continue
            self.returncode = code.value
            return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send a signal (1..64) to the process."""
        self._pc(self._lib.katavm_process_signal,
                 _uint(int(sig), "signal", 1, 64))

    def terminate(self) -> None:
        """send_signal(SIGTERM)."""
        self.send_signal(_signal.SIGTERM)

    def kill(self) -> None:
        """send_signal(SIGKILL)."""
        self.send_signal(_signal.SIGKILL)

    def resize(self, rows: int, cols: int) -> None:
        """Resize the process's pty (tty=True only; StateError otherwise)."""
        self._pc(self._lib.katavm_process_resize,
                 _uint(rows, "rows", 1, 65535), _uint(cols, "cols", 1, 65535))

    def communicate(self, input: Optional[bytes] = None,
                    timeout: Optional[float] = None) -> Tuple[bytes, bytes]:
        """Write input (bytes) to stdin and close it, read stdout and stderr
        to EOF, wait for the exit; returns (stdout, stderr) and sets
        .returncode. timeout: seconds; past it the process is killed
        (SIGKILL) and ExecTimeout raised with the output read so far."""
        data = _bytes_input(input) or b""
        t = _timeout(timeout)
        if data and self.stdin is None:
            raise ValueError("input given but the process has no stdin")
        deadline = None if t is None else _time.monotonic() + t
        out, err = [], []
        sel = _selectors.DefaultSelector()
        try:
            if self.stdin is not None:
                try:
                    self.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
                if data and not self.stdin.closed:
                    _os.set_blocking(self.stdin.fileno(), False)
                    sel.register(self.stdin.fileno(), _selectors.EVENT_WRITE,
                                 "in")
                else:
                    self.stdin.close()
            for f, acc in ((self.stdout, out), (self.stderr, err)):
                if f is not None and not f.closed:
                    _os.set_blocking(f.fileno(), False)
                    sel.register(f.fileno(), _selectors.EVENT_READ, acc)
            view, pos = memoryview(data), 0
            while sel.get_map():
                left = None
                if deadline is not None:
                    left = deadline - _time.monotonic()
                    if left <= 0:
                        self._timed_out(t, out, err)
                for key, _ in sel.select(left):
                    if key.data == "in":
                        try:
                            pos += _os.write(key.fd, view[pos:pos + 65536])
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            pos = len(data)
                        if pos >= len(data):
                            sel.unregister(key.fd)
                            self.stdin.close()
                        continue
                    try:
                        chunk = _os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        key.data.append(chunk)
                    else:
                        sel.unregister(key.fd)
        finally:
            sel.close()
        for f in (self.stdout, self.stderr):
            if f is not None:
                f.close()
        so, se = b"".join(out), b"".join(err)
        if deadline is None:
            self.wait()
        else:
            try:
                self.wait(max(0.0, deadline - _time.monotonic()))
            except Timeout:
                self._timed_out(t, [so], [se])
        return so, se

    def _timed_out(self, t, out, err):
        try:
            self.kill()
        except Error:
            pass  # it exited meanwhile
        try:
            self.wait(60)
        except Error:
            pass
        # Whatever is already in the pipes belongs to the output so far.
        for f, acc in ((self.stdout, out), (self.stderr, err)):
            if f is not None and not f.closed:
                try:
                    _os.set_blocking(f.fileno(), False)
                    while True:
                        chunk = _os.read(f.fileno(), 65536)
                        if not chunk:
                            break
                        acc.append(chunk)
                except (BlockingIOError, OSError):
                    pass
        raise ExecTimeout(self.args, t, b"".join(out), b"".join(err))
