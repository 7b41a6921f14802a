"""katavm: run sandboxes, each in its own lightweight VM, from Python.

A thin ctypes layer over libkatavm's public C API (include/katavm/katavm.h).
Each sandbox is a VM with its own guest kernel, supervised by a katavm-shim
process; a sandbox therefore outlives the Python process that created it
unless it is destroyed.

    import katavm

    rt = katavm.Runtime()                       # env defaults, like the C API
    with rt.create_sandbox(memory_mib=256) as sb:
        print(sb.id, sb.state)                  # "running"
        print(sb.agent_check()["kernel"])       # the guest's uname -r
    # leaving the block destroyed the VM, its shim and its state

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

Errors raise subclasses of katavm.Error carrying .code (the negative
katavm_code of the C API), .code_name and the library's message. Handles
are safe to share between threads: calls on one handle (Runtime or
Sandbox) are serialized, as the C API requires.
"""

import json as _json
import os as _os
import threading as _threading

from . import _lib

__all__ = [
    "Runtime", "Sandbox", "Error", "InvalidArgument", "NotFound", "Exists",
    "HostIOError", "VMMError", "AgentError", "ProtocolError", "StateError",
    "Timeout", "Unsupported", "Corrupt", "library_version",
    "MIN_MEMORY_MIB", "ID_MAX",
]

__version__ = "0.1.0"

#: Smallest guest memory that boots (KATAVM_MIN_MEMORY_MIB).
MIN_MEMORY_MIB = 128
#: Longest sandbox id (KATAVM_ID_MAX).
ID_MAX = 64

# ---------------------------------------------------------------- errors


class Error(Exception):
    """A libkatavm failure. .code is the negative katavm_code, .message the
    library's one-line message, .code_name its short name ("not found")."""

    code = None
    code_name = "error"

    def __init__(self, message, code=None, code_name=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if code_name is not None:
            self.code_name = code_name

    def __str__(self):
        return self.message


class InvalidArgument(Error, ValueError):
    """KATAVM_E_INVALID: an argument is malformed or out of range."""
    code = -1


class NotFound(Error, LookupError):
    """KATAVM_E_NOT_FOUND: no such sandbox, kernel, initrd, shim, ..."""
    code = -2


class Exists(Error):
    """KATAVM_E_EXISTS: the sandbox id is already in use."""
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
    """KATAVM_E_STATE: not valid in the sandbox's current state."""
    code = -8


class Timeout(Error):
    """KATAVM_E_TIMEOUT: an operation did not finish in time."""
    code = -9


class Unsupported(Error):
    """KATAVM_E_UNSUPPORTED: e.g. accel "kvm" on a host without KVM."""
    code = -10


class Corrupt(Error):
    """KATAVM_E_CORRUPT: on-disk sandbox state is unreadable."""
    code = -11


_BY_CODE = {c.code: c for c in (
    InvalidArgument, NotFound, Exists, HostIOError, VMMError, AgentError,
    ProtocolError, StateError, Timeout, Unsupported, Corrupt)}


def _s(b):
    """C string (bytes or None) -> str; never raises on odd bytes."""
    return b.decode("utf-8", "replace") if b is not None else None


def _b(s, what):
    """str/bytes/PathLike -> bytes for a C string argument."""
    if isinstance(s, (bytes, str, _os.PathLike)):
        b = _os.fsencode(s)
    else:
        raise TypeError("%s must be a string, not %s" % (what, type(s).__name__))
    if b"\0" in b:
        # C would silently cut the string at the NUL: refuse instead.
        raise InvalidArgument("%s contains a NUL byte" % what, -1,
                              "invalid argument")
    return b


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


def library_version():
    """libkatavm's version string, e.g. "0.1.0"."""
    return _s(_lib.load().katavm_version())


# ---------------------------------------------------------------- runtime


class Runtime:
    """Configuration shared by the sandboxes it creates.

    Every argument left None keeps the C API's default, which the
    environment overrides (KATAVM_ROOT, KATAVM_LIBVIRT_URI, KATAVM_ACCEL,
    KATAVM_KERNEL, KATAVM_INITRD, KATAVM_SHIM).
      root         state directory (absolute, at most 32 characters)
      libvirt_uri  "" = an embedded libvirt driver per sandbox (no daemon);
                   "qemu:///system" = libvirtd
      accel        "auto" | "kvm" | "tcg"
      kernel, initrd  guest image paths (absolute)
      vcpus, memory_mib  defaults for sandboxes that leave them at 0
    """

    def __init__(self, root=None, libvirt_uri=None, accel=None, kernel=None,
                 initrd=None, vcpus=None, memory_mib=None):
        self._lib = lib = _lib.load()
        self._h = None
        # The C API allows one thread per handle at a time: calls on this
        # runtime are serialized (use one Runtime per thread to create
        # sandboxes in parallel).
        self._mu = _threading.Lock()
        h = _lib.c_void_p()
        _call(lib, lib.katavm_runtime_new, _lib.ctypes.byref(h))
        self._h = h
        try:
            if root is not None:
                _call(lib, lib.katavm_runtime_set_root, h, _b(root, "root"))
            if libvirt_uri is not None:
                _call(lib, lib.katavm_runtime_set_libvirt_uri, h,
                      _b(libvirt_uri, "libvirt_uri"))
            if accel is not None:
                _call(lib, lib.katavm_runtime_set_accel, h, _b(accel, "accel"))
            if kernel is not None:
                _call(lib, lib.katavm_runtime_set_kernel, h,
                      _b(kernel, "kernel"))
            if initrd is not None:
                _call(lib, lib.katavm_runtime_set_initrd, h,
                      _b(initrd, "initrd"))
            if vcpus is not None or memory_mib is not None:
                _call(lib, lib.katavm_runtime_set_defaults, h,
                      1 if vcpus is None else _uint(vcpus, "vcpus"),
                      256 if memory_mib is None
                      else _uint(memory_mib, "memory_mib"))
        except BaseException:
            self.close()
            raise

    def _handle(self):
        if self._h is None:
            raise StateError("the runtime is closed", -8, "invalid state")
        return self._h

    def close(self):
        """Free the runtime. Sandboxes keep running; open handles stay
        usable for calls that do not need the runtime."""
        if getattr(self, "_h", None) is None:
            return
        with self._mu:
            if self._h is not None:
                self._lib.katavm_runtime_free(self._h)
                self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        self.close()

    @property
    def root(self):
        """The state directory in use."""
        with self._mu:
            return _s(self._lib.katavm_runtime_root(self._handle()))

    def check(self):
        """Host check (like `katavm check --json`) as a dict:
        {"ok", "accel", "accel_reason", "items": [{"name","ok","detail",
        "fix"}...]}. Failing items do not raise; see "ok"."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_check_host, self._handle(),
                  _lib.ctypes.byref(p))
        return _json.loads(_take_string(self._lib, p))

    def create_sandbox(self, id=None, cpus=0, max_cpus=0, memory_mib=0,
                       max_memory_mib=0, destroy_on_exit=True):
        """Create and boot a sandbox; returns once its guest agent answered.
        id None = a random id. 0 = the runtime default (max_* 0 = the boot
        value). `with` on the result destroys the sandbox at the end of the
        block unless destroy_on_exit is False."""
        cfg = _lib.init(self._lib, _lib.SandboxConfig())
        id_b = None if id is None else _b(id, "id")
        cfg.id = id_b  # id_b stays referenced until the call returns
        cfg.vcpus = _uint(cpus, "cpus")
        cfg.max_vcpus = _uint(max_cpus, "max_cpus")
        cfg.memory_mib = _uint(memory_mib, "memory_mib")
        cfg.max_memory_mib = _uint(max_memory_mib, "max_memory_mib")
        h = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_create, self._handle(),
                  _lib.ctypes.byref(cfg), _lib.ctypes.byref(h))
        return Sandbox._wrap(self, h, destroy_on_exit)

    def open_sandbox(self, id, destroy_on_exit=False):
        """Attach to an existing sandbox (made by any process). `with` on
        the result only closes the handle unless destroy_on_exit is True."""
        h = _lib.c_void_p()
        id_b = _b(id, "id")
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_open, self._handle(),
                  id_b, _lib.ctypes.byref(h))
        return Sandbox._wrap(self, h, destroy_on_exit)

    def list_sandboxes(self):
        """Ids of all sandboxes under the root, sorted."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_list, self._handle(),
                  _lib.ctypes.byref(p))
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
            self._lib.katavm_strv_free(p)

    def destroy_sandbox(self, id):
        """Destroy sandbox `id`: VM, shim and state are removed, whether
        its shim is alive, dead or its state corrupt. NotFound if absent."""
        id_b = _b(id, "id")
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_destroy, self._handle(),
                  id_b)


def _uint(v, what):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be an int, not %s" % (what, type(v).__name__))
    if v < 0 or v > 0xFFFFFFFF:
        # ctypes would wrap a negative value into a huge unsigned one.
        raise InvalidArgument("%s %d is out of range" % (what, v), -1,
                              "invalid argument")
    return v


# ---------------------------------------------------------------- sandbox


class Sandbox:
    """A handle on one sandbox. Get it from Runtime.create_sandbox() or
    Runtime.open_sandbox(); see the module docstring for lifetime rules."""

    def __init__(self):
        raise TypeError("use Runtime.create_sandbox() or Runtime.open_sandbox()")

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

    def __repr__(self):
        return "<katavm.Sandbox %r%s>" % (
            self.id, "" if self._h is not None else " closed")

    def _handle(self):
        if self._h is None:
            raise StateError("the handle of sandbox '%s' is closed" % self.id,
                             -8, "invalid state")
        return self._h

    def close(self):
        """Release the handle; the sandbox keeps running."""
        with self._mu:
            if getattr(self, "_h", None) is not None:
                self._lib.katavm_sandbox_close(self._h)
                self._h = None

    def __del__(self):
        if getattr(self, "_mu", None) is not None:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
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

    @property
    def state(self):
        """"running", "creating", "stopped" or "unknown" (shim unreachable)."""
        st = _lib.c_int(0)
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_state, self._handle(),
                  _lib.ctypes.byref(st))
        return _s(self._lib.katavm_sandbox_state_name(st.value))

    def agent_check(self):
        """Round trip to the guest agent. Returns a dict named like
        inspect()["guest"]: agent_version, proto, kernel (uname -r),
        cpus_online, mem_total_kib, uptime_ms; plus round_trip_us."""
        gi = _lib.init(self._lib, _lib.GuestInfo())
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_agent_check,
                  self._handle(), _lib.ctypes.byref(gi))
        return {
            "agent_version": _s(gi.agent_version),
            "proto": gi.proto_version,
            "kernel": _s(gi.kernel_release),
            "cpus_online": gi.cpus_online,
            "mem_total_kib": gi.mem_total_kib,
            "uptime_ms": gi.uptime_ms,
            "round_trip_us": gi.round_trip_us,
        }

    def inspect(self):
        """Everything known about the sandbox: {"id","state","shim_pid",
        "vcpus","max_vcpus","memory_mib","max_memory_mib","accel","created",
        "guest":{...} (when running), ...}."""
        p = _lib.c_void_p()
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_inspect, self._handle(),
                  _lib.ctypes.byref(p))
        return _json.loads(_take_string(self._lib, p))

    def stop(self):
        """Power the guest off; the sandbox stays (state "stopped") until
        destroyed. Stopping a stopped sandbox is not an error."""
        with self._mu:
            _call(self._lib, self._lib.katavm_sandbox_stop, self._handle())

    def destroy(self):
        """Destroy the sandbox (VM, shim, state) and close this handle.
        Destroying an already destroyed sandbox raises NotFound."""
        # Close first: our own connection to the shim is not needed and the
        # shim exits as part of the destroy.
        self.close()
        self._rt.destroy_sandbox(self.id)
        self._destroyed = True
