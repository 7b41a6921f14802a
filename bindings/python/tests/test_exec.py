"""bindings/python/tests/test_exec.py: containers, exec and hotplug from
Python on one real sandbox (QEMU under TCG here): stdin/stdout/stderr and
exit codes, timeouts that kill the process, popen streaming of a few MiB,
a pty with resize, two threads exec'ing at once (the GIL is released in
the library), hotplug of CPUs, memory, a disk and a NIC, library errors as
katavm.Error subclasses, bad arguments refused before the library is
called, and objects used after their sandbox is destroyed.

One VM boots for the whole module (the sandbox fixture); the last test
destroys it.
"""

import os
import signal
import subprocess
import threading

import pytest

import katavm
from kvpy import ROOT, assert_clean, make_rootfs, runtime, sweep

WORK = "/tmp/kvpy-exec-%d" % os.getpid()
TAP = "kvpyt%d" % (os.getpid() % 100000)
NETNS = "kvpyns-%d" % os.getpid()


@pytest.fixture(scope="module")
def rt():
    r = runtime()
    sweep(r)
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(WORK)
    yield r
    sweep(r)
    subprocess.run("ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null; "
                   "rm -rf %s" % (TAP, NETNS, WORK), shell=True)
    r.close()
    assert_clean()


@pytest.fixture(scope="module")
def sb(rt):
    s = rt.create_sandbox(name="pyexec", cpus=1, max_cpus=2, memory_mib=256,
                          max_memory_mib=512)
    yield s
    if not s._destroyed:
        s.destroy()


@pytest.fixture(scope="module")
def ctr(sb):
    rootfs = make_rootfs(os.path.join(WORK, "rootfs"))
    c = sb.add_container(rootfs=rootfs, name="main", args=["sleep", "1000000"],
                         env={"PATH": "/bin:/sbin:/usr/bin", "HELLO": "world"},
                         hostname="pyhost")
    assert c.state == "created"
    c.start()
    assert c.state == "running"
    return c


def test_exec_stdout_stderr_exit_code(ctr):
    r = ctr.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (r.exit_code, r.stdout, r.stderr) == (7, b"out\n", b"err\n")
    assert r.returncode == 7
    r = ctr.exec(["sh", "-c", "kill -9 $$"])
    assert r.exit_code == 128 + 9
    r = ctr.exec(["hostname"])
    assert r.stdout == b"pyhost\n"
    # The container's environment, or the one given.
    assert ctr.exec(["sh", "-c", "echo $HELLO"]).stdout == b"world\n"
    r = ctr.exec(["sh", "-c", "echo $A-$HELLO"], env={"A": "1", "PATH": "/bin"})
    assert r.stdout == b"1-\n"
    assert ctr.exec(["pwd"], cwd="/tmp").stdout == b"/tmp\n"
    assert ctr.exec(["id", "-u"], user="65534").stdout == b"65534\n"
    assert ctr.exec(["id", "-g"], user=(1, 2)).stdout == b"2\n"
    # A missing command is an exit status, not an error.
    r = ctr.exec(["/no/such/cmd"])
    assert r.exit_code == 127 and r.stderr


def test_exec_stdin(ctr):
    data = os.urandom(300 * 1024)
    r = ctr.exec(["sh", "-c", "cat; echo done >&2"], input=data)
    assert r.stdout == data and r.stderr == b"done\n"
    # input=None: stdin is /dev/null; b"" (default): an empty pipe.
    assert ctr.exec(["cat"], input=None).stdout == b""
    assert ctr.exec(["wc", "-c"]).stdout.strip() == b"0"


def test_exec_check(ctr):
    assert ctr.exec(["true"], check=True).exit_code == 0
    with pytest.raises(katavm.ExecError, match="status 3") as ei:
        ctr.exec(["sh", "-c", "echo why >&2; exit 3"], check=True)
    e = ei.value
    assert isinstance(e, katavm.Error)
    assert (e.exit_code, e.stderr) == (3, b"why\n")
    assert "why" in str(e)


def test_exec_timeout_kills(ctr):
    with pytest.raises(katavm.ExecTimeout) as ei:
        ctr.exec(["sh", "-c", "echo started; exec sleep 987654"], timeout=2)
    assert isinstance(ei.value, katavm.Timeout)
    assert ei.value.stdout == b"started\n"
    # The process is gone from the guest, not just abandoned.
    ps = ctr.exec(["ps", "-o", "args"]).stdout
    assert b"987654" not in ps, ps


def test_popen_streams_mib(ctr):
    size = 4 * 1024 * 1024
    with ctr.popen(["sh", "-c", "head -c %d /dev/urandom > /tmp/big && "
                    "md5sum < /tmp/big >&2 && cat /tmp/big && rm /tmp/big"
                    % size]) as p:
        p.stdin.close()
        got, h = 0, __import__("hashlib").md5()
        while True:
            b = p.stdout.read1(1 << 16)
            if not b:
                break
            got += len(b)
            h.update(b)
        assert got == size
        assert p.stderr.read().split()[0].decode() == h.hexdigest()
        assert p.wait() == 0
        assert p.returncode == 0 and p.poll() == 0
    # And the other way: a few MiB into stdin while reading stdout.
    with ctr.popen(["md5sum"]) as p:
        data = os.urandom(3 * 1024 * 1024)
        out, err = p.communicate(data, timeout=600)
        assert out.split()[0].decode() == __import__("hashlib").md5(data).hexdigest()
        assert p.returncode == 0


def test_popen_interactive_signal_wait(ctr):
    with ctr.popen(["sh", "-c", "while read l; do echo got:$l; done"]) as p:
        for w in (b"a", b"b"):
            p.stdin.write(w + b"\n")
            p.stdin.flush()
            assert p.stdout.readline() == b"got:" + w + b"\n"
        assert p.poll() is None
        with pytest.raises(katavm.Timeout):
            p.wait(timeout=0.5)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=600) == 128 + signal.SIGTERM
        # A process that exited is gone: signals now fail cleanly.
        with pytest.raises(katavm.Error):
            p.kill()
    assert p.wait() == 128 + signal.SIGTERM  # remembered
    with pytest.raises(katavm.StateError, match="closed"):
        p.send_signal(signal.SIGTERM)


def test_close_ends_reads_blocked_in_other_threads(ctr):
    # A log-following thread must not keep close() waiting for the guest
    # process (it never writes nor exits here).
    p = ctr.popen(["sh", "-c", "exec sleep 876543"])
    got = {}
    readers = [threading.Thread(target=lambda f=f: got.__setitem__(
        f, f.read())) for f in (p.stdout, p.stderr)]
    writer = threading.Thread(target=lambda: got.__setitem__(
        "w", _write_until_blocked(p.stdin)))
    for t in readers + [writer]:
        t.start()
    while p.stdin.raw._fd >= 0 and not _blocked(writer):
        pass
    p.close()  # the process was still running: the wake-up ends the calls
    for t in readers + [writer]:
        t.join(600)
    assert got[p.stdout] == b"" and got[p.stderr] == b""
    assert isinstance(got["w"], (BrokenPipeError, ValueError))
    # The library kills a process whose handle is freed before it exited.
    for _ in range(600):
        if b"876543" not in ctr.exec(["ps", "-o", "args"]).stdout:
            break
    else:
        pytest.fail("the process outlived its handle")


def _blocked(t):
    """True once thread t sleeps in the kernel (poll, read, write)."""
    try:
        with open("/proc/self/task/%d/stat" % t.native_id) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except FileNotFoundError:
        return True


def _write_until_blocked(f):
    try:
        while True:
            f.write(b"x" * 65536)
            f.flush()
    except (OSError, ValueError) as e:
        return e


def test_popen_tty_resize(ctr):
    with ctr.popen(["sh", "-c", "read x; stty size"], tty=True, rows=30,
                   cols=100) as p:
        assert p.stderr is None
        p.resize(40, 120)
        p.stdin.write(b"\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=600)
        assert b"40 120" in out and err == b""
    with ctr.popen(["true"]) as p:
        with pytest.raises(katavm.StateError, match="terminal"):
            p.resize(10, 10)
        p.wait()


def test_two_threads_exec_at_once(ctr):
    # Thread A's process blocks on stdin until B's exec has finished: with
    # a GIL held in the library, or calls serialized on the sandbox while A
    # waits, this would hang (ctest's timeout), not pass.
    a = ctr.popen(["sh", "-c", "read x; echo A:$x"])
    results = {}

    def run_a():
        results["a"] = a.stdout.read()  # blocks until A's output ends
        a.wait()

    def run_b():
        results["b"] = ctr.exec(["echo", "B"], timeout=600).stdout
        a.stdin.write(b"after-b\n")
        a.stdin.close()

    ta = threading.Thread(target=run_a)
    ta.start()
    tb = threading.Thread(target=run_b)
    tb.start()
    tb.join(600)
    ta.join(600)
    a.close()
    assert results == {"a": b"A:after-b\n", "b": b"B\n"}
    # And a handful at once, each with its own output.
    out = {}
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(
        i, ctr.exec(["sh", "-c", "echo $0", str(i)], timeout=600).stdout))
        for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    assert out == {i: b"%d\n" % i for i in range(6)}


def test_containers_lifecycle(sb, ctr):
    c2 = sb.add_container(rootfs=os.path.join(WORK, "rootfs"),
                          args=["sh", "-c", "exit 5"], readonly=True)
    assert c2.id.startswith("c") and c2.state == "created"
    assert sorted(sb.containers()) == sorted(["main", c2.id])
    assert sb.container(c2.id) == c2
    assert c2.exit_code is None
    c2.start()
    assert c2.wait(timeout=600) == 5
    assert c2.state == "stopped" and c2.exit_code == 5
    with pytest.raises(katavm.StateError):
        c2.exec(["true"])  # its main process has exited
    c2.remove()
    assert sb.containers() == ["main"]
    with pytest.raises(katavm.NotFound):
        c2.start()
    with pytest.raises(katavm.NotFound):
        sb.container(c2.id)
    # kill, wait with a timeout, forced remove.
    c3 = sb.add_container(rootfs=os.path.join(WORK, "rootfs"), name="c3",
                          args=["sleep", "100000"])
    c3.start()
    with pytest.raises(katavm.Timeout):
        c3.wait(timeout=0.3)
    with pytest.raises(katavm.StateError):
        c3.remove()  # running, not forced
    c3.kill(signal.SIGKILL)
    assert c3.wait(timeout=600) == 137
    c3.remove(force=True)
    c4 = sb.add_container(rootfs=os.path.join(WORK, "rootfs"), name="c4",
                          args=["sleep", "100000"])
    c4.start()
    c4.remove(force=True)
    assert sb.containers() == ["main"]


def test_library_errors(sb, ctr):
    with pytest.raises(katavm.Exists, match="main") as ei:
        sb.add_container(rootfs=os.path.join(WORK, "rootfs"), name="main")
    assert ei.value.code == -3 and ei.value.code_name
    with pytest.raises(katavm.InvalidArgument, match="rootfs"):
        sb.add_container(rootfs="/nonexistent/rootfs")
    with pytest.raises(katavm.InvalidArgument, match="'/'"):
        sb.add_container(rootfs=WORK, name="a/b")
    with pytest.raises(katavm.NotFound):
        sb.container("nope")
    with pytest.raises(katavm.InvalidArgument, match="relative|absolute"):
        ctr.exec(["true"], cwd="tmp")
    with pytest.raises(katavm.InvalidArgument, match="beyond|max|exceed"):
        sb.hotplug_cpus(3)
    with pytest.raises(katavm.InvalidArgument):
        sb.hotplug_memory(add=3)  # not a multiple of 2
    with pytest.raises(katavm.NotFound, match="nope.img"):
        sb.attach_disk(os.path.join(WORK, "nope.img"))
    with pytest.raises(katavm.NotFound):
        sb.detach_nic("52:54:00:00:00:99")
    with pytest.raises(katavm.InvalidArgument, match="nfs"):
        katavm.Runtime(root=ROOT, shared_fs="nfs")
    katavm.Runtime(root=ROOT, shared_fs="9p").close()
    # The sandbox still works.
    assert ctr.exec(["true"]).exit_code == 0


def test_bad_input_before_library(rt, sb, ctr):
    # Each refusal is checked on a closed handle too: the TypeError or
    # ValueError comes first, so the library was never called.
    closed = rt.open_sandbox(sb.id)
    closed.close()
    cc = katavm.Container(closed, "main")
    for c, s in ((ctr, sb), (cc, closed)):
        with pytest.raises(TypeError, match="list of strings"):
            c.exec("echo hi")
        with pytest.raises(TypeError, match="list of strings"):
            c.popen(b"echo")
        with pytest.raises(ValueError, match="empty"):
            c.exec([])
        with pytest.raises(TypeError, match=r"args\[1\]"):
            c.exec(["echo", 3])
        with pytest.raises(TypeError, match="bytes"):
            c.exec(["cat"], input="text")
        with pytest.raises(TypeError):
            c.exec(["true"], bogus=1)
        with pytest.raises(ValueError, match="negative"):
            c.exec(["true"], timeout=-1)
        with pytest.raises(ValueError, match="NUL"):
            c.exec(["a\0b"])
        with pytest.raises(ValueError, match="NAME=VALUE"):
            c.exec(["true"], env=["novalue"])
        with pytest.raises(TypeError):
            c.exec(["true"], env="A=1")
        with pytest.raises(ValueError, match="numeric"):
            c.exec(["true"], user="root")
        with pytest.raises(ValueError, match="signal"):
            c.kill(0)
        with pytest.raises(TypeError):
            c.wait(timeout="1")
        with pytest.raises(ValueError, match="out of range"):
            s.hotplug_memory(add=-256)
        with pytest.raises(TypeError, match="exactly one"):
            s.hotplug_memory(add=2, set=512)
        with pytest.raises(ValueError, match="out of range"):
            s.hotplug_cpus(0)
        with pytest.raises(TypeError):
            s.hotplug_cpus("2")
        with pytest.raises(TypeError, match="exactly one"):
            s.add_container()
        with pytest.raises(TypeError, match="exactly one"):
            s.add_container(bundle="/x", rootfs="/y")
        with pytest.raises(TypeError):
            s.add_container(rootfs="/x", args="sh")
        with pytest.raises(TypeError):
            s.add_container(rootfs="/x", nosuch=True)
        with pytest.raises(TypeError, match="both"):
            s.attach_disk("/x", container="main")
    with pytest.raises(ValueError, match="out of range"):
        rt.create_sandbox(memory_mib=-1)
    with pytest.raises(TypeError):
        rt.create_sandbox(memory=256)
    with pytest.raises(TypeError):
        rt.create_sandbox(cpus=1.5)
    with pytest.raises(TypeError, match="not both"):
        rt.create_sandbox(id="a", name="b")
    with pytest.raises(TypeError, match="list of strings"):
        rt.create_sandbox(net="user", publish="8200:8200")
    with pytest.raises(TypeError, match="net must be a string"):
        rt.create_sandbox(net=1)
    with pytest.raises(TypeError, match="exactly one"):
        sb.attach_nic("tap0", netns_iface="eth0")
    # The library's own refusals, named: nothing is booted for them.
    with pytest.raises(katavm.InvalidArgument, match="wifi"):
        rt.create_sandbox(net="wifi")
    with pytest.raises(katavm.InvalidArgument, match="x:y"):
        rt.create_sandbox(net="user", publish=["x:y"])
    # The closed handle itself refuses calls with StateError.
    with pytest.raises(katavm.StateError, match="closed"):
        cc.exec(["true"])
    with pytest.raises(TypeError):
        katavm.Process()
    with pytest.raises(TypeError):
        katavm.Sandbox()


def test_hotplug_cpus_memory(sb, ctr):
    r = sb.hotplug_cpus(2)
    assert r["cpus_online"] == 2
    assert ctr.exec(["nproc"]).stdout == b"2\n"
    before = sb.agent_check()["mem_total_kib"]
    r = sb.hotplug_memory(add=128)
    assert r["mem_total_kib"] >= before + 120 * 1024
    r = sb.hotplug_memory(set=256)
    assert r["mem_total_kib"] < before + 8 * 1024
    r = sb.hotplug_cpus(1)
    assert r["cpus_online"] == 1
    assert sb.agent_check()["cpus_online"] == 1


def test_hotplug_disk_and_nic(sb, ctr):
    src, img = os.path.join(WORK, "disk-src"), os.path.join(WORK, "disk.img")
    os.makedirs(src)
    with open(os.path.join(src, "hello.txt"), "w") as f:
        f.write("from-host\n")
    subprocess.run("truncate -s 32M %s && mkfs.ext4 -q -F -d %s %s" % (
        img, src, img), shell=True, check=True)
    r = sb.attach_disk(img, container=ctr, mount_path="/data")
    assert r
    assert ctr.exec(["cat", "/data/hello.txt"]).stdout == b"from-host\n"
    sb.detach_disk(img)
    assert ctr.exec(["cat", "/data/hello.txt"]).exit_code != 0

    mac = "52:54:00:ab:cd:%02x" % (os.getpid() % 256)
    subprocess.run(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"],
                   check=True)
    try:
        r = sb.attach_nic(TAP, mac=mac, addresses=["10.213.0.2/24"])
        assert r["mac"] == mac
        links = ctr.exec(["sh", "-c", "cat /sys/class/net/*/address"]).stdout
        assert mac.encode() in links
        # Reached from a namespace of the test's own (addresses only there).
        subprocess.run(
            "ip netns add {ns} && ip link set {t} netns {ns} && "
            "ip -n {ns} addr add 10.213.0.1/24 dev {t} && "
            "ip -n {ns} link set {t} up && "
            "ip netns exec {ns} ping -c 2 -W 10 10.213.0.2 >/dev/null".format(
                ns=NETNS, t=TAP), shell=True, check=True)
        sb.detach_nic(mac)
        links = ctr.exec(["sh", "-c", "cat /sys/class/net/*/address"]).stdout
        assert mac.encode() not in links
    finally:
        subprocess.run("ip netns del %s 2>/dev/null; ip link del %s "
                       "2>/dev/null" % (NETNS, TAP), shell=True)


def test_use_after_destroy(rt, sb, ctr):
    # Last in the module: it destroys the shared sandbox.
    p = ctr.popen(["sleep", "100000"])
    other = rt.open_sandbox(sb.id)
    sb.destroy()
    assert sb._destroyed
    for call in (lambda: sb.state, sb.agent_check, sb.info, sb.containers,
                 lambda: sb.hotplug_cpus(1), lambda: ctr.exec(["true"]),
                 lambda: ctr.popen(["true"]), ctr.start, lambda: ctr.state,
                 lambda: ctr.kill(9), lambda: ctr.wait(1), ctr.remove):
        with pytest.raises(katavm.StateError, match="destroyed"):
            call()
    # A second handle on the destroyed sandbox and a process that was
    # running in it fail cleanly, never crash the interpreter.
    with pytest.raises(katavm.Error):
        other.agent_check()
    with pytest.raises(katavm.Error):
        katavm.Container(other, "main").exec(["true"])
    with pytest.raises(katavm.Error):
        p.wait(timeout=600)
    with pytest.raises(katavm.Error):
        p.kill()
    p.close()
    other.close()
    with pytest.raises(katavm.NotFound):
        sb.destroy()
    assert rt.list_sandboxes() == []
    assert_clean()
