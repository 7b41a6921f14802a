"""bindings/python/tests/kvpy.py: what the Python suites share: the state
root of this build tree, a sweep of what a failed run left there, leak
checks (processes naming the root, and this process's fds, threads,
children and RSS), and a busybox rootfs."""

import os
import signal
import subprocess
import time

import katavm

ROOT = os.environ.get("KATAVM_PY_TEST_ROOT") or "/tmp/kvpy"
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def procs_of_root(root=ROOT):
    """Pids (not ours) whose command line names root: QEMU (paths below it)
    and shims ("--root ROOT")."""
    needles = ((root + "/").encode(), ("--root %s " % root).encode())
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


def entries(sub, root=ROOT):
    try:
        return [e for e in os.listdir(os.path.join(root, sub))
                if not e.startswith(".")]
    except FileNotFoundError:
        return []


def sweep(rt):
    """Destroy whatever an earlier (failed) run left under the root."""
    for sid in rt.list_sandboxes():
        try:
            rt.destroy_sandbox(sid)
        except katavm.Error as e:
            print("sweep: %s" % e)
    # Anything still naming our root is a stray of a crashed run: only such
    # processes are ended, each by pid.
    for pid in procs_of_root(rt.root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_clean(root=ROOT):
    assert entries("sandboxes", root) == []
    assert entries("r", root) == []
    # Shims exit and QEMU is reaped asynchronously by the kernel: allow a
    # moment before calling a process a leak.
    deadline = time.monotonic() + 10
    while procs_of_root(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_of_root(root) == []


def runtime(root=ROOT):
    os.makedirs(root, mode=0o700, exist_ok=True)
    return katavm.Runtime(root=root)


def children():
    """Pids whose parent is this process (zombies included)."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces: the fields after the last ')' are fixed.
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            out.append(int(d))
    return out


def usage():
    """(open fds, threads, child processes, RSS in KiB) of this process."""
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return (len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task")),
            len(children()), rss)


def make_rootfs(path, writable=True):
    """A busybox rootfs (tests/rootfs/mkrootfs.sh) at path."""
    cmd = [os.path.join(SRC, "tests", "rootfs", "mkrootfs.sh")]
    if writable:
        cmd.append("--writable")
    subprocess.run(cmd + [path], check=True, stdout=subprocess.DEVNULL)
    return path
