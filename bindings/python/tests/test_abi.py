"""bindings/python/tests/test_abi.py: the hand-copied ctypes layouts of
katavm._lib against the library that is loaded, without booting a VM.

Each mirrored struct must be exactly as large as katavm_struct_size() says
the library's struct is, start with struct_size, and be prepared by the
library's _init_sized function; the enum values the package uses must name
the states the library names. A field added to katavm.h but not to _lib.py
(or the other way round) fails here, not as a misread field at run time.

Needs KATAVM_LIBRARY (CTest sets it to the library just built).
"""

import ctypes

import pytest

import katavm
from katavm import _lib


@pytest.fixture(scope="module")
def lib():
    return _lib.load()


@pytest.mark.parametrize("cls", _lib.STRUCTS, ids=lambda c: c.c_name)
def test_struct_size_matches_library(lib, cls):
    size = lib.katavm_struct_size(cls.c_name.encode())
    assert size != 0, "the library does not know %s" % cls.c_name
    assert ctypes.sizeof(cls) == size, (
        "%s: ctypes mirror is %d bytes, the library's struct %d: update "
        "bindings/python/katavm/_lib.py" % (cls.c_name, ctypes.sizeof(cls), size))


@pytest.mark.parametrize("cls", _lib.STRUCTS, ids=lambda c: c.c_name)
def test_struct_size_comes_first(cls):
    name, typ = cls._fields_[0][:2]
    assert name == "struct_size" and typ is ctypes.c_size_t
    assert cls.struct_size.offset == 0


@pytest.mark.parametrize("cls", _lib.STRUCTS, ids=lambda c: c.c_name)
def test_init_sets_struct_size(lib, cls):
    s = cls()
    ctypes.memset(ctypes.byref(s), 0x5A, ctypes.sizeof(s))
    _lib.init(lib, s)
    assert s.struct_size == ctypes.sizeof(cls)
    raw = ctypes.string_at(ctypes.byref(s), ctypes.sizeof(s))
    assert raw[ctypes.sizeof(ctypes.c_size_t):] == bytes(
        ctypes.sizeof(s) - ctypes.sizeof(ctypes.c_size_t))


def test_hotplug_init_sets_kind(lib):
    r = _lib.init(lib, _lib.HotplugRequest(), _lib.HOTPLUG_DISK_ADD)
    assert r.kind == _lib.HOTPLUG_DISK_ADD
    assert r.struct_size == ctypes.sizeof(r)


def test_every_public_struct_is_mirrored(lib):
    # The public structs of katavm.h that the package uses (bundle info
    # and container stats it does not); opaque handles
    # have no size.
    names = {"katavm_sandbox_config", "katavm_guest_info",
             "katavm_container_config", "katavm_exec_config",
             "katavm_hotplug_request", "katavm_pool_config"}
    assert {c.c_name for c in _lib.STRUCTS} == names
    for opaque in ("katavm_sandbox", "katavm_runtime", "katavm_process",
                   "katavm_error", "nope", ""):
        assert lib.katavm_struct_size(opaque.encode()) == 0
    assert lib.katavm_struct_size(None) == 0


def test_sandbox_state_values(lib):
    for value, name in _lib.SANDBOX_STATES.items():
        assert lib.katavm_sandbox_state_name(value).decode() == name
    assert lib.katavm_sandbox_state_name(len(_lib.SANDBOX_STATES)) == b"unknown"
    assert (_lib.SANDBOX_UNKNOWN, _lib.SANDBOX_CREATING, _lib.SANDBOX_RUNNING,
            _lib.SANDBOX_STOPPED) == (0, 1, 2, 3)


def test_container_state_values(lib):
    for value, name in _lib.CONTAINER_STATES.items():
        assert lib.katavm_container_state_name(value).decode() == name
    assert lib.katavm_container_state_name(len(_lib.CONTAINER_STATES)) == b"unknown"
    assert lib.katavm_container_state_name(-1) == b"unknown"
    assert (_lib.CONTAINER_UNKNOWN, _lib.CONTAINER_CREATED,
            _lib.CONTAINER_RUNNING, _lib.CONTAINER_STOPPED) == (0, 1, 2, 3)


def _create(lib, rt, cfg):
    return katavm._call(lib, lib.katavm_sandbox_create, rt._handle(),
                        ctypes.byref(cfg), ctypes.byref(ctypes.c_void_p()))


def test_library_refuses_uninitialised_config(lib):
    # Refused before anything is made: no VM is booted.
    rt = katavm.Runtime(root="/tmp/kvpy-abi")
    cfg = _lib.SandboxConfig()  # ctypes zeroes it: struct_size 0
    cfg.memory_mib = 64
    with pytest.raises(katavm.InvalidArgument,
                       match=r"call katavm_sandbox_config_init\(\)"):
        _create(lib, rt, cfg)
    _lib.init(lib, cfg)
    cfg.memory_mib = 64
    # The size is accepted: the next check (memory) is what refuses it.
    with pytest.raises(katavm.InvalidArgument, match="memory 64 MiB"):
        _create(lib, rt, cfg)
    rt.close()


def test_library_refuses_unknown_newer_fields(lib):
    rt = katavm.Runtime(root="/tmp/kvpy-abi")

    class Newer(ctypes.Structure):
        # A newer header's config: the fields this library knows, then one
        # it does not.
        _fields_ = list(_lib.SandboxConfig._fields_) + [("newer", ctypes.c_uint64)]

    n = Newer()
    lib.katavm_sandbox_config_init_sized(
        ctypes.cast(ctypes.byref(n), ctypes.POINTER(_lib.SandboxConfig)),
        ctypes.sizeof(n))
    assert n.struct_size == ctypes.sizeof(Newer)
    n.memory_mib = 64
    cfg = ctypes.cast(ctypes.byref(n), ctypes.POINTER(_lib.SandboxConfig)).contents
    with pytest.raises(katavm.InvalidArgument, match="memory 64 MiB"):
        _create(lib, rt, cfg)  # newer field unused (zero): accepted
    n.newer = 1
    with pytest.raises(katavm.InvalidArgument,
                       match="katavm_sandbox_config: struct_size"):
        _create(lib, rt, cfg)
    rt.close()


def test_foreign_calls_release_the_gil(lib):
    # ctypes.CDLL functions release the GIL for the duration of the call;
    # PyDLL ones (flag _FUNCFLAG_PYTHONAPI) would hold it, so that a boot,
    # an exec or a wait in one thread would stop every other thread.
    assert type(lib) is ctypes.CDLL
    for name in _lib._PROTOS:
        f = getattr(lib, name)
        assert not f._flags_ & ctypes._FUNCFLAG_PYTHONAPI, name
