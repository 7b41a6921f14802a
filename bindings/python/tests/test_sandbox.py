"""bindings/python/tests/test_sandbox.py: the katavm Python package against
real sandboxes (QEMU under TCG here): agent round trip, inspect, errors
mapped to katavm.Error subclasses, and `with` blocks that leave no VM, shim
or state behind.

Needs the environment CTest gives it (bindings/python/CMakeLists.txt):
KATAVM_LIBRARY, KATAVM_KERNEL, KATAVM_INITRD, KATAVM_SHIM. It uses its own
state root (KATAVM_PY_TEST_ROOT, default /tmp/kvpy) so that it never
sweeps a root another test suite is using.
"""

import os
import signal
import threading
import time

import pytest

import katavm
import kvpy

ROOT = os.environ.get("KATAVM_PY_TEST_ROOT") or "/tmp/kvpy"


def procs_of_root():
    """Pids (not ours) whose command line names ROOT: QEMU (paths below it)
    and shims ("--root ROOT")."""
    needles = ((ROOT + "/").encode(), ("--root %s " % ROOT).encode())
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if any(n in cmd for n in needles):
            out.append(int(d))
    return out


def entries(sub):
    try:
        return [e for e in os.listdir(os.path.join(ROOT, sub))
                if not e.startswith(".")]
    except FileNotFoundError:
        return []


def sweep(rt):
    """Destroy whatever an earlier (failed) run left under ROOT."""
    for sid in rt.list_sandboxes():
        try:
            rt.destroy_sandbox(sid)
        except katavm.Error as e:
            print("sweep: %s" % e)
    # Anything still naming our root is a stray of a crashed run: only such
    # processes are ended, each by pid.
    for pid in procs_of_root():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_clean():
    assert entries("sandboxes") == []
    assert entries("r") == []
    # Shims exit and QEMU is reaped asynchronously by the kernel: allow a
    # moment before calling a process a leak.
    deadline = time.monotonic() + 5
    while procs_of_root() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_of_root() == []


@pytest.fixture
def rt():
    os.makedirs(ROOT, mode=0o700, exist_ok=True)
    r = katavm.Runtime(root=ROOT)
    sweep(r)
    yield r
    sweep(r)
    r.close()


def test_library_loads():
    assert katavm.library_version() == katavm.__version__


def test_check(rt):
    c = rt.check()
    assert isinstance(c, dict)
    assert c["accel"] in ("kvm", "tcg")
    assert isinstance(c["items"], list) and c["items"]
    assert rt.root == ROOT


def test_errors_without_vm(rt):
    with pytest.raises(katavm.InvalidArgument) as ei:
        rt.create_sandbox(id="a/b")
    assert ei.value.code == -1
    assert "/" in str(ei.value) and "a/b" in ei.value.message
    assert isinstance(ei.value, ValueError)  # also a Python ValueError
    assert ei.value.code_name == "invalid argument"
    with pytest.raises(katavm.InvalidArgument, match="'/'"):
        rt.open_sandbox("a/b")
    with pytest.raises(katavm.InvalidArgument, match=r"'\.\.'"):
        rt.destroy_sandbox("x..y")
    with pytest.raises(katavm.NotFound, match="nosuch") as ei:
        rt.open_sandbox("nosuch")
    assert ei.value.code == -2
    with pytest.raises(katavm.NotFound):
        rt.destroy_sandbox("nosuch")
    with pytest.raises(katavm.InvalidArgument, match="minimum of 128 MiB"):
        rt.create_sandbox(id="small", memory_mib=64)
    with pytest.raises(katavm.InvalidArgument, match="max vCPUs"):
        rt.create_sandbox(id="cpus", cpus=2, max_cpus=1)
    with pytest.raises(katavm.InvalidArgument, match="out of range"):
        rt.create_sandbox(id="neg", memory_mib=-1)
    with pytest.raises(katavm.InvalidArgument, match="NUL"):
        rt.open_sandbox("a\0b")
    with pytest.raises(katavm.InvalidArgument, match="xen"):
        katavm.Runtime(root=ROOT, accel="xen")
    with pytest.raises(katavm.InvalidArgument, match="absolute"):
        katavm.Runtime(root=ROOT, kernel="vmlinux")
    with pytest.raises(katavm.NotFound, match="/nonexistent/vmlinux"):
        katavm.Runtime(root=ROOT, kernel="/nonexistent/vmlinux").create_sandbox(
            id="nokernel")
    assert rt.list_sandboxes() == []
    assert_clean()


def test_with_block_boots_and_destroys(rt):
    with rt.create_sandbox(id="py1", cpus=1, memory_mib=256) as sb:
        assert sb.id == "py1"
        assert sb.state == "running"
        # The leak check below can see what it looks for: shim and QEMU.
        assert len(procs_of_root()) >= 2
        g = sb.agent_check()
        assert g["cpus_online"] == 1
        assert g["kernel"]
        want = os.environ.get("KATAVM_TEST_KERNEL_RELEASE")
        if want:
            assert g["kernel"] == want
        assert g["mem_total_kib"] > 100000
        assert g["proto"] == 2  # KV_PROTO_VERSION (lib/proto/proto.h)
        assert g["round_trip_us"] > 0

        info = sb.inspect()
        assert info["id"] == "py1"
        assert info["state"] == "running"
        assert info["vcpus"] == 1 and info["memory_mib"] == 256
        assert info["guest"]["kernel"] == g["kernel"]
        assert rt.list_sandboxes() == ["py1"]

        # One handle used from several threads: calls are serialized by the
        # binding (the C API forbids concurrent use of one handle).
        got = []
        threads = [threading.Thread(
            target=lambda: got.append(sb.agent_check()["cpus_online"]))
            for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert got == [1, 1, 1, 1]

        with pytest.raises(katavm.Exists, match="py1") as ei:
            rt.create_sandbox(id="py1")
        assert ei.value.code == -3

        # A second handle from open_sandbox: its `with` only closes it.
        with rt.open_sandbox("py1") as again:
            assert again.agent_check()["cpus_online"] == 1
        with pytest.raises(katavm.StateError, match="closed"):
            again.inspect()
        # The original handle and the sandbox are unaffected.
        assert sb.agent_check()["cpus_online"] == 1
    # Leaving the block destroyed everything.
    assert rt.list_sandboxes() == []
    with pytest.raises(katavm.NotFound):
        rt.open_sandbox("py1")
    assert_clean()


def test_with_block_destroys_on_exception(rt):
    with pytest.raises(RuntimeError, match="boom"):
        with rt.create_sandbox(memory_mib=192) as sb:
            sid = sb.id
            assert len(sid) == 16  # a generated id
            raise RuntimeError("boom")
    assert sid not in rt.list_sandboxes()
    assert_clean()


def test_stop_then_destroy(rt):
    sb = rt.create_sandbox(id="py2", destroy_on_exit=False)
    try:
        sb.stop()
        assert sb.state == "stopped"
        with pytest.raises(katavm.StateError, match="not running") as ei:
            sb.agent_check()
        assert ei.value.code == -8
        sb.stop()  # stopping a stopped sandbox is fine
        # Closing a handle does not destroy the sandbox.
        sb.close()
        assert rt.list_sandboxes() == ["py2"]
        with rt.open_sandbox("py2") as sb2:
            assert sb2.state == "stopped"
            sb2.destroy()
        with pytest.raises(katavm.NotFound):
            rt.destroy_sandbox("py2")
    finally:
        if "py2" in rt.list_sandboxes():
            rt.destroy_sandbox("py2")
    assert_clean()


def test_warm_pool_serves_create_and_goes_away():
    """Runtime.start_pool / pool / remove_pool: a pooled VM serves
    create_sandbox (the sandbox's directory names the pool's instance), a
    second keeper and an impossible shape are refused, and removing the
    pool leaves nothing. Its own root: a pool there would serve every
    other test's creates."""
    root = ROOT + "p"
    rt = kvpy.runtime(root)
    kvpy.sweep(rt)
    rt.remove_pool()
    try:
        with pytest.raises(katavm.InvalidArgument, match="MemAvailable"):
            rt.start_pool(size=64, max_memory_mib=1 << 20)
        assert rt.pool()["running"] is False
        rt.start_pool(size=1, max_cpus=2, max_memory_mib=512)
        with pytest.raises(katavm.Exists):
            rt.start_pool(size=1)
        deadline = time.monotonic() + 300  # a hang bound, not a timing
        while True:
            p = rt.pool()
            ready = [v["instance"] for v in p["vms"] if v["ready"]]
            if ready:
                break
            assert time.monotonic() < deadline, p
            time.sleep(0.5)
        assert p["running"] is True and p["size"] == 1 and p["max_vcpus"] == 2
        assert p["max_memory_mib"] == 512 and p["keeper_pid"] > 0
        with rt.create_sandbox("pooled1", cpus=2, memory_mib=256) as sb:
            with open(os.path.join(root, "sandboxes", "pooled1", "instance")) as f:
                assert f.read().strip() == ready[0]
            assert sb.agent_check()["cpus_online"] == 2
    finally:
        rt.remove_pool()
    p = rt.pool()
    assert p["running"] is False and p["vms"] == []
    kvpy.assert_clean(root)
    rt.close()
