"""katavm._lib: loads libkatavm.so and declares the C API for ctypes.

Only the public API of include/katavm/katavm.h is used. Every function gets
explicit argtypes/restype: ctypes' default (int return, no argument checks)
would truncate pointers on 64-bit hosts.

The library is looked up, in order:
  1. the KATAVM_LIBRARY environment variable (a path or a soname),
  2. the library directory recorded at install time (_buildcfg.py, written by
     CMake), so an install under a prefix that ld.so does not search works,
  3. "libkatavm.so.0" through the dynamic loader (LD_LIBRARY_PATH, ld.so.cache),
  4. ctypes.util.find_library("katavm").
The soname is pinned to .so.0: a future .so.1 would be a different ABI.
"""

import ctypes
import ctypes.util
import os
import threading

SONAME = "libkatavm.so.0"

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_uint64 = ctypes.c_uint64
POINTER = ctypes.POINTER


class GuestInfo(ctypes.Structure):
    """struct katavm_guest_info."""

    _fields_ = [
        ("agent_version", ctypes.c_char * 32),
        ("kernel_release", ctypes.c_char * 96),
        ("proto_version", c_uint),
        ("cpus_online", c_uint),
        ("mem_total_kib", c_uint64),
        ("uptime_ms", c_uint64),
        ("round_trip_us", c_uint64),
    ]


class SandboxConfig(ctypes.Structure):
    """struct katavm_sandbox_config (reserved fields must stay zero)."""

    _fields_ = [
        ("id", c_char_p),
        ("vcpus", c_uint),
        ("max_vcpus", c_uint),
        ("memory_mib", c_uint),
        ("max_memory_mib", c_uint),
        ("reserved", c_uint * 11),
    ]


# name: (restype, argtypes). Handles and out-strings are void pointers so
# that we keep the address to free it with the library's own free functions.
_ERR = POINTER(c_void_p)  # katavm_error **
_PROTOS = {
    "katavm_error_code": (c_int, [c_void_p]),
    "katavm_error_message": (c_char_p, [c_void_p]),
    "katavm_error_free": (None, [c_void_p]),
    "katavm_code_name": (c_char_p, [c_int]),
    "katavm_free": (None, [c_void_p]),
    "katavm_strv_free": (None, [c_void_p]),
    "katavm_version": (c_char_p, []),
    "katavm_runtime_new": (c_int, [POINTER(c_void_p), _ERR]),
    "katavm_runtime_free": (None, [c_void_p]),
    "katavm_runtime_set_root": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_libvirt_uri": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_accel": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_kernel": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_initrd": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_defaults": (c_int, [c_void_p, c_uint, c_uint, _ERR]),
    "katavm_runtime_root": (c_char_p, [c_void_p]),
    "katavm_check_host": (c_int, [c_void_p, POINTER(c_void_p), _ERR]),
    "katavm_sandbox_config_init": (None, [POINTER(SandboxConfig)]),
    "katavm_sandbox_state_name": (c_char_p, [c_int]),
    "katavm_sandbox_create": (
        c_int, [c_void_p, POINTER(SandboxConfig), POINTER(c_void_p), _ERR]),
    "katavm_sandbox_open": (c_int, [c_void_p, c_char_p, POINTER(c_void_p), _ERR]),
    "katavm_sandbox_close": (None, [c_void_p]),
    "katavm_sandbox_id": (c_char_p, [c_void_p]),
    "katavm_sandbox_state": (c_int, [c_void_p, POINTER(c_int), _ERR]),
    "katavm_sandbox_stop": (c_int, [c_void_p, _ERR]),
    "katavm_sandbox_destroy": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_sandbox_list": (c_int, [c_void_p, POINTER(c_void_p), _ERR]),
    "katavm_sandbox_agent_check": (c_int, [c_void_p, POINTER(GuestInfo), _ERR]),
    "katavm_sandbox_inspect": (c_int, [c_void_p, POINTER(c_void_p), _ERR]),
}

_lock = threading.Lock()
_lib = None


def _candidates():
    env = os.environ.get("KATAVM_LIBRARY")
    if env:
        # An explicit choice is the only candidate: silently falling back to
        # another copy would test or run the wrong library.
        return [env]
    out = []
    try:
        from . import _buildcfg  # written by CMake at install time

        out.append(os.path.join(_buildcfg.LIBDIR, SONAME))
    except ImportError:
        pass
    out.append(SONAME)
    found = ctypes.util.find_library("katavm")
    if found:
        out.append(found)
    return out


def load():
    """Return the loaded library (a ctypes.CDLL), loading it on first use.

    Raises OSError naming every place that was tried."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for name in _candidates():
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                tried.append("%s (%s)" % (name, e))
                continue
            for fn, (res, args) in _PROTOS.items():
                f = getattr(lib, fn)
                f.restype = res
                f.argtypes = args
            _lib = lib
            return lib
        raise OSError(
            "cannot load libkatavm: tried " + "; ".join(tried)
            + " (set KATAVM_LIBRARY to the library's path)")
