"""bindings/python/tests/test_leaks.py: what the Python process keeps
after many sandboxes and execs: 20 create/destroy cycles, and 200 execs
(plus popen and timeouts) in one sandbox, leave no file descriptor, thread
or child process behind, and RSS grows by a few MiB at most. The figures
are printed (ctest --output-on-failure -V shows them).

Each count is taken after one warm-up round, so that what is made once
(the library's first load, libvirt's and glib's one-time state, pytest's
own imports) is not taken for a leak.
"""

import gc
import os

import pytest

import katavm
from kvpy import assert_clean, make_rootfs, runtime, sweep, usage

WORK = "/tmp/kvpy-leaks-%d" % os.getpid()
RSS_SLACK_KIB = 4 * 1024


@pytest.fixture(scope="module")
def rt():
    r = runtime()
    sweep(r)
    os.makedirs(WORK, exist_ok=True)
    yield r
    sweep(r)
    r.close()
    os.system("rm -rf %s" % WORK)
    assert_clean()


def settled():
    gc.collect()
    return usage()


def report(what, before, after):
    print("\n%s: fds %d -> %d, threads %d -> %d, children %d -> %d, "
          "RSS %d -> %d KiB (%+d KiB)" % (
              what, before[0], after[0], before[1], after[1], before[2],
              after[2], before[3], after[3], after[3] - before[3]))


def test_20_create_destroy_cycles(rt):
    def cycle(i):
        with rt.create_sandbox(name="leak%d" % i, memory_mib=192) as sb:
            assert sb.agent_check()["cpus_online"] == 1
    cycle(0)
    before = settled()
    for i in range(1, 21):
        cycle(i)
    after = settled()
    report("20 sandboxes", before, after)
    assert after[:3] == before[:3]
    assert after[3] - before[3] < RSS_SLACK_KIB
    assert rt.list_sandboxes() == []
    assert_clean()


def test_200_execs(rt):
    rootfs = make_rootfs(os.path.join(WORK, "rootfs"))
    with rt.create_sandbox(name="leakexec", memory_mib=256) as sb:
        c = sb.add_container(rootfs=rootfs, args=["sleep", "1000000"])
        c.start()

        def round_(i):
            r = c.exec(["sh", "-c", "cat; echo e >&2", str(i)],
                       input=b"x" * 1000)
            assert (r.exit_code, len(r.stdout), r.stderr) == (0, 1000, b"e\n")
        for i in range(10):
            round_(i)
        with c.popen(["true"]) as p:
            p.wait()
        before = settled()
        for i in range(200):
            round_(i)
        # Handles left to the garbage collector, and a killed timeout.
        for i in range(10):
            p = c.popen(["cat"])
            p.stdin.write(b"abc")
            del p
        with pytest.raises(katavm.ExecTimeout):
            c.exec(["sleep", "100000"], timeout=0.5)
        after = settled()
        report("200 execs", before, after)
        assert after[:3] == before[:3]
        assert after[3] - before[3] < RSS_SLACK_KIB
    assert_clean()
