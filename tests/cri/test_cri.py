"""tests/cri/test_cri.py: Kubernetes-shaped pods through containerd's CRI
plugin (runtime.v1) with runtime handler ``katavm`` (our shim, real VMs
under TCG) beside ``runc`` pods in the same private containerd, networked by
CNI's bridge inside a network namespace of the test (crienv.py): pod
addresses from CNI, two containers of a pod over 127.0.0.1, one pod
reaching another over the bridge, ExecSync exit codes and the guest kernel,
ContainerStats, UpdateContainerResources, a killed shim or QEMU reported as
an exit and cleaned up with the pod, a container for a missing sandbox
refused, and nothing left behind (QEMU, shims, virtiofsd, mounts, netns).
"""

import os
import signal
import time

import grpc
import pytest

import crienv
from crienv import pb

GUEST_KERNEL = os.environ.get("KATAVM_TEST_KERNEL_RELEASE", "")
HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
SLEEP = ["sleep", "100000"]
RPC = crienv.RPC_TIMEOUT


@pytest.fixture(scope="module")
def env():
    e = crienv.Env("cri")
    try:
        e.start()
        yield e
    finally:
        e.close()


@pytest.fixture(autouse=True)
def pods_removed(env):
    """A failed test's pods go before the next test (which checks leaks)."""
    yield
    env.remove_all_pods()


def assert_clean(env):
    leaks = env.leaks()
    assert not leaks, "left behind: %r" % leaks


def wait_exited(env, cid, tries=1800):
    st = env.container_state(cid)
    for _ in range(tries):
        if st.state == pb.CONTAINER_EXITED:
            break
        time.sleep(0.1)
        st = env.container_state(cid)
    return st


def test_katavm_pods_beside_runc(env):
    assert GUEST_KERNEL
    v = env.rt.Version(pb.VersionRequest(), timeout=60)
    assert v.runtime_api_version == "v1", v

    pod1, cfg1 = env.run_pod("web", "katavm")
    ip1 = env.pod_ip(pod1)
    assert ip1.startswith(crienv.SUBNET_PREFIX), "pod address %r is not from CNI" % ip1
    assert len(env.vms()) == 1
    st = env.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod1), timeout=60).status
    assert st.state == pb.SANDBOX_READY and st.runtime_handler == "katavm"

    web = env.create_container(pod1, cfg1, "httpd", HTTPD)
    side = env.create_container(pod1, cfg1, "side", SLEEP)
    # Both in the pod's one VM, served by the pod's one shim.
    assert len(env.vms()) == 1
    assert len(env.settle(env.shims, 1)) == 1

    for cid in (web, side):
        rc, out, err = env.exec_sync(cid, ["uname", "-r"])
        assert rc == 0, err
        assert out.strip() == GUEST_KERNEL, "not the guest kernel: %r" % out
        rc, out, err = env.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (rc, out, err) == (7, "out\n", "err\n")
    rc, _, err = env.exec_sync(side, ["/no/such/cmd"])
    assert rc != 0

    # The pod's containers share its hostname, uts and ipc namespaces (the
    # pause container's, as in Kubernetes).
    views = []
    for cid in (web, side):
        rc, out, err = env.exec_sync(cid, ["sh", "-c", "hostname; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc"])
        assert rc == 0, err
        views.append(out.split())
    assert views[0] == views[1] and views[0][0] == "web", views

    # The pod's containers share its network: 127.0.0.1 reaches httpd.
    # No -T: Debian 12's busybox-static (1.35) wget -T N dies of SIGSEGV,
    # on the host as well; the RPC deadline bounds a hang.
    wget = ["wget", "-q", "-O", "-"]
    for _ in range(100):
        rc, out, err = env.exec_sync(side, wget + ["http://127.0.0.1:8080/"])
        if rc == 0:
            break
        time.sleep(0.3)
    assert rc == 0 and "hello-from-web" in out, (rc, out, err)

    # A second katavm pod reaches the first over the CNI bridge.
    pod2, cfg2 = env.run_pod("client", "katavm")
    ip2 = env.pod_ip(pod2)
    assert ip2.startswith(crienv.SUBNET_PREFIX) and ip2 != ip1
    cli = env.create_container(pod2, cfg2, "wget", SLEEP)
    rc, out, err = env.exec_sync(cli, wget + ["http://%s:8080/" % ip1])
    assert rc == 0 and "hello-from-web" in out, (rc, out, err)
    assert len(env.vms()) == 2

    # A runc pod in the same containerd: the host's kernel, same bridge.
    pod3, cfg3 = env.run_pod("trusted", "runc")
    ip3 = env.pod_ip(pod3)
    assert ip3.startswith(crienv.SUBNET_PREFIX)
    rc3 = env.create_container(pod3, cfg3, "plain", SLEEP)
    rc, out, err = env.exec_sync(rc3, ["uname", "-r"])
    assert rc == 0 and out.strip() == os.uname().release, (rc, out, err)
    assert len(env.vms()) == 2  # runc pods start no VM
    rc, out, err = env.exec_sync(rc3, wget + ["http://%s:8080/" % ip1])
    assert rc == 0 and "hello-from-web" in out, (rc, out, err)
    st = env.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod3), timeout=60).status
    assert st.runtime_handler == "runc"

    for p in (pod2, pod1, pod3):
        env.remove_pod(p)
    assert not env.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items
    assert_clean(env)


def test_stats_and_update(env):
    # io.katavm.cpus reaches the shim through containerd's pod_annotations.
    pod, cfg = env.run_pod("sized", "katavm", annotations={"io.katavm.cpus": "2"})
    cid = env.create_container(pod, cfg, "limited", SLEEP, memory_limit=64 << 20)
    rc, out, err = env.exec_sync(cid, ["nproc"])
    assert rc == 0 and out.strip() == "2", (rc, out, err)
    # Some CPU time and memory for the figures.
    assert env.exec_sync(cid, ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])[0] == 0

    # ContainerStats: the guest's cgroup figures of the container.
    s = env.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=RPC).stats
    assert s.attributes.id == cid
    assert s.memory.working_set_bytes.value > 0, s
    assert s.cpu.usage_core_nano_seconds.value > 0, s

    # UpdateContainerResources raises the memory limit the guest enforces
    # (the container's cgroup v2 memory.max in the guest).
    def guest_limit():
        rc, out, err = env.exec_sync(cid, ["sh", "-c", "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"])
        assert rc == 0, err
        return out.strip()

    assert guest_limit() == str(64 << 20)
    env.rt.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20)
        ),
        timeout=RPC,
    )
    assert guest_limit() == str(128 << 20)

    # A limit beyond the VM's memory grows the VM (memory hot-plugged up to
    # max_memory_mib): the guest's MemTotal rises.
    def mem_total_mib():
        rc, out, err = env.exec_sync(cid, ["sh", "-c", "grep MemTotal /proc/meminfo"])
        assert rc == 0, err
        return int(out.split()[1]) // 1024

    before = mem_total_mib()
    want = before + 256
    env.rt.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=want << 20)
        ),
        timeout=RPC,
    )
    assert guest_limit() == str(want << 20)
    after = mem_total_mib()
    assert after >= before + 200, "MemTotal %d MiB -> %d MiB after a %d MiB limit" % (before, after, want)
    env.remove_pod(pod)
    assert_clean(env)


@pytest.mark.parametrize("victim", ["shim", "qemu"])
def test_killed_under_running_container(env, victim):
    pod, cfg = env.run_pod("victim-" + victim, "katavm")
    cid = env.create_container(pod, cfg, "sleeper", SLEEP)
    rc, out, _ = env.exec_sync(cid, ["echo", "alive"])
    assert rc == 0 and out == "alive\n"
    if victim == "shim":
        pids = env.settle(env.shims, 1)
    else:
        pids = env.vms()
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    st = wait_exited(env, cid)
    assert st.state == pb.CONTAINER_EXITED, st
    env.remove_pod(pod)
    assert_clean(env)


def test_container_for_missing_sandbox(env):
    pod, cfg = env.run_pod("real", "katavm")
    with pytest.raises(grpc.RpcError) as ei:
        env.create_container("no-such-sandbox", cfg, "orphan", SLEEP, start=False)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, ei.value
    assert "no-such-sandbox" in ei.value.details(), ei.value.details()
    # The pod that exists is unharmed.
    cid = env.create_container(pod, cfg, "ok", SLEEP)
    assert env.exec_sync(cid, ["true"])[0] == 0
    env.remove_pod(pod)
    assert_clean(env)
