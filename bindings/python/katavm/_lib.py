"""katavm._lib: loads libkatavm.so and declares the C API for ctypes.

Only the public API of include/katavm/katavm.h is used. Every function gets
explicit argtypes/restype: ctypes' default (int return, no argument checks)
would truncate pointers on 64-bit hosts.

The library is looked up, in order:
  1. the KATAVM_LIBRARY environment variable (a path or a soname),
  2. the library directory recorded at install time (_buildcfg.py, written by
     CMake), so an install under a prefix that ld.so does not search works,
  3. "libkatavm.so.1" through the dynamic loader (LD_LIBRARY_PATH, ld.so.cache),
  4. ctypes.util.find_library("katavm").
The soname is pinned to .so.1 (the first layout with struct_size; .so.0 had
reserved[] arrays instead): another soname is a different ABI.

Struct layouts are copied by hand from katavm.h. Each mirrored struct
starts with struct_size, set by init() below from ctypes.sizeof, and
bindings/python/tests/test_abi.py checks every size against what the loaded
library reports (katavm_struct_size). Fields are only ever added at the end
of a struct; a binding that mirrors fewer fields than the library knows
still works (the library accepts the smaller struct_size).
"""

import ctypes
import ctypes.util
import os
import threading

SONAME = "libkatavm.so.1"

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_uint64 = ctypes.c_uint64
c_size_t = ctypes.c_size_t
c_ushort = ctypes.c_ushort
POINTER = ctypes.POINTER
_STRV = POINTER(c_char_p)  # const char *const * (NULL-terminated)

# enum katavm_sandbox_state_t
SANDBOX_UNKNOWN = 0
SANDBOX_CREATING = 1
SANDBOX_RUNNING = 2
SANDBOX_STOPPED = 3
SANDBOX_STATES = {SANDBOX_UNKNOWN: "unknown", SANDBOX_CREATING: "creating",
                  SANDBOX_RUNNING: "running", SANDBOX_STOPPED: "stopped"}

# enum katavm_container_state_t
CONTAINER_UNKNOWN = 0
CONTAINER_CREATED = 1
CONTAINER_RUNNING = 2
CONTAINER_STOPPED = 3
CONTAINER_PAUSED = 4
CONTAINER_STATES = {CONTAINER_UNKNOWN: "unknown", CONTAINER_CREATED: "created",
                    CONTAINER_RUNNING: "running", CONTAINER_STOPPED: "stopped",
                    CONTAINER_PAUSED: "paused"}

# enum katavm_hotplug_kind
HOTPLUG_CPUS = 1
HOTPLUG_MEMORY = 2
HOTPLUG_NIC_ADD = 3
HOTPLUG_NIC_REMOVE = 4
HOTPLUG_DISK_ADD = 5
HOTPLUG_DISK_REMOVE = 6

# enum katavm_memory_op
MEMORY_ADD = 1
MEMORY_REMOVE = 2
MEMORY_SET = 3


class GuestInfo(ctypes.Structure):
    """struct katavm_guest_info (a result struct)."""

    c_name = "katavm_guest_info"
    _fields_ = [
        ("struct_size", c_size_t),
        ("agent_version", ctypes.c_char * 32),
        ("kernel_release", ctypes.c_char * 96),
        ("proto_version", c_uint),
        ("cpus_online", c_uint),
        ("mem_total_kib", c_uint64),
        ("uptime_ms", c_uint64),
        ("round_trip_us", c_uint64),
    ]


class SandboxConfig(ctypes.Structure):
    """struct katavm_sandbox_config."""

    c_name = "katavm_sandbox_config"
    _fields_ = [
        ("struct_size", c_size_t),
        ("id", c_char_p),
        ("vcpus", c_uint),
        ("max_vcpus", c_uint),
        ("memory_mib", c_uint),
        ("max_memory_mib", c_uint),
        ("netns", c_char_p),
        ("net", c_char_p),
        ("publish", _STRV),
    ]


class ContainerConfig(ctypes.Structure):
    """struct katavm_container_config."""

    c_name = "katavm_container_config"
    _fields_ = [
        ("struct_size", c_size_t),
        ("bundle", c_char_p),
        ("rootfs", c_char_p),
        ("argv", _STRV),
        ("env", _STRV),
        ("cwd", c_char_p),
        ("hostname", c_char_p),
        ("tty", c_int),
        ("readonly", c_int),
        ("volumes", _STRV),
        ("storage_size_mib", c_uint),
    ]


class ExecConfig(ctypes.Structure):
    """struct katavm_exec_config."""

    c_name = "katavm_exec_config"
    _fields_ = [
        ("struct_size", c_size_t),
        ("argv", _STRV),
        ("env", _STRV),
        ("cwd", c_char_p),
        ("set_user", c_int),
        ("uid", c_uint),
        ("gid", c_uint),
        ("tty", c_int),
        ("rows", c_ushort),
        ("cols", c_ushort),
        ("no_stdin", c_int),
        ("oci_process", c_char_p),
    ]


class HotplugRequest(ctypes.Structure):
    """struct katavm_hotplug_request (enums are C ints)."""

    c_name = "katavm_hotplug_request"
    _fields_ = [
        ("struct_size", c_size_t),
        ("kind", c_int),
        ("cpus", c_uint),
        ("memory_op", c_int),
        ("memory_mib", c_uint),
        ("tap", c_char_p),
        ("mac", c_char_p),
        ("mtu", c_uint),
        ("addresses", _STRV),
        ("gateway", c_char_p),
        ("path", c_char_p),
        ("readonly", c_int),
        ("container", c_char_p),
        ("mount_path", c_char_p),
        ("netns_iface", c_char_p),
    ]


#: Every public struct of katavm.h that this package mirrors.
class PoolConfig(ctypes.Structure):
    """struct katavm_pool_config."""

    c_name = "katavm_pool_config"
    _fields_ = [
        ("struct_size", c_size_t),
        ("size", c_uint),
        ("max_vcpus", c_uint),
        ("max_memory_mib", c_uint),
    ]


STRUCTS = (SandboxConfig, GuestInfo, ContainerConfig, ExecConfig, HotplugRequest,
           PoolConfig)


def init(lib, s, kind=0):
    """Prepare a mirrored struct like its katavm_X_init(): the library zeroes
    it and records ctypes.sizeof as its struct_size (and, for a
    HotplugRequest, sets kind). Returns s."""
    fn = getattr(lib, s.c_name + "_init_sized")
    if isinstance(s, HotplugRequest):
        fn(ctypes.byref(s), ctypes.sizeof(s), kind)
    else:
        fn(ctypes.byref(s), ctypes.sizeof(s))
    return s


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
    "katavm_struct_size": (c_size_t, [c_char_p]),
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
    "katavm_sandbox_config_init_sized": (None, [POINTER(SandboxConfig), c_size_t]),
    "katavm_guest_info_init_sized": (None, [POINTER(GuestInfo), c_size_t]),
    "katavm_container_config_init_sized": (None, [POINTER(ContainerConfig), c_size_t]),
    "katavm_exec_config_init_sized": (None, [POINTER(ExecConfig), c_size_t]),
    "katavm_hotplug_request_init_sized": (None, [POINTER(HotplugRequest), c_size_t, c_int]),
    "katavm_container_state_name": (c_char_p, [c_int]),
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
    "katavm_runtime_set_memory_hotplug": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_runtime_set_shared_fs": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_container_add": (
        c_int, [c_void_p, c_char_p, POINTER(ContainerConfig), POINTER(c_void_p), _ERR]),
    "katavm_container_start": (c_int, [c_void_p, c_char_p, _ERR]),
    "katavm_container_state": (
        c_int, [c_void_p, c_char_p, POINTER(c_int), POINTER(c_int), _ERR]),
    "katavm_container_kill": (c_int, [c_void_p, c_char_p, c_int, c_int, _ERR]),
    "katavm_container_wait": (c_int, [c_void_p, c_char_p, POINTER(c_int), _ERR]),
    "katavm_container_remove": (c_int, [c_void_p, c_char_p, c_int, _ERR]),
    "katavm_container_list": (c_int, [c_void_p, POINTER(c_void_p), _ERR]),
    "katavm_exec": (
        c_int, [c_void_p, c_char_p, POINTER(ExecConfig), POINTER(c_void_p), _ERR]),
    "katavm_process_stdin_fd": (c_int, [c_void_p]),
    "katavm_process_stdout_fd": (c_int, [c_void_p]),
    "katavm_process_stderr_fd": (c_int, [c_void_p]),
    "katavm_process_close_stdin": (c_int, [c_void_p, _ERR]),
    "katavm_process_wait": (c_int, [c_void_p, c_int, POINTER(c_int), _ERR]),
    "katavm_process_signal": (c_int, [c_void_p, c_int, _ERR]),
    "katavm_process_resize": (c_int, [c_void_p, c_ushort, c_ushort, _ERR]),
    "katavm_process_free": (None, [c_void_p]),
    "katavm_image_build": (c_int, [c_void_p, c_char_p, c_char_p, c_int, _ERR]),
    "katavm_hotplug": (
        c_int, [c_void_p, POINTER(HotplugRequest), POINTER(c_void_p), _ERR]),
    "katavm_pool_config_init_sized": (None, [POINTER(PoolConfig), c_size_t]),
    "katavm_pool_start": (c_int, [c_void_p, POINTER(PoolConfig), _ERR]),
    "katavm_pool_list": (c_int, [c_void_p, POINTER(c_void_p), _ERR]),
    "katavm_pool_remove": (c_int, [c_void_p, _ERR]),
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
    # Where `cmake --install` puts it by default but ld.so may not look
    # before ldconfig has run (a pip-installed package has no _buildcfg).
    for d in ("/usr/local/lib", "/usr/local/lib64", "/usr/lib/x86_64-linux-gnu"):
        out.append(os.path.join(d, SONAME))
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
