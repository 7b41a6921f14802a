"""tests/cri/crienv.py: a private containerd (Debian's 1.6) with its CRI
plugin on, and a CRI client of our own, for tests/cri/test_cri.py and
bench/cri.py.

containerd runs in a network namespace this module creates (nsenter --net:
the host's mounts and cgroups stay visible, so runc pods work), with its own
root, state, sockets and CNI configuration under one work directory. CNI is
Debian's containernetworking-plugins: a bridge with host-local IPAM (its
state in the work dir), so pods talk to each other over that bridge and
nothing reaches the host's network. Runtime handlers: ``katavm``
(io.containerd.katavm.v2, our shim from the build tree first on PATH, its
configuration through the runtime options' ConfigPath) and ``runc``. Images
are written offline (tests/rootfs/mkociimage.sh) and imported into the
k8s.io namespace.

The client speaks runtime.v1 over gRPC with stubs generated at import time
from cri_subset.proto (grpc_tools.protoc into a temporary directory).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("KATAVM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))

IMAGE = "docker.io/library/kvt-busybox:latest"
PAUSE_IMAGE = "docker.io/library/kvt-pause:latest"
SUBNET_PREFIX = "10.88.77."
# A bound on a hung call, not a timing check.
RPC_TIMEOUT = 900


def _stubs():
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="kvt-cri-stubs-")
    rc = protoc.main(
        ["protoc", "-I" + HERE, "--python_out=" + out, "--grpc_python_out=" + out, "cri_subset.proto"]
    )
    if rc != 0:
        raise RuntimeError("grpc_tools.protoc failed on cri_subset.proto: %d" % rc)
    sys.path.insert(0, out)
    try:
        import cri_subset_pb2 as pb
        import cri_subset_pb2_grpc as pbg
    finally:
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)
    return pb, pbg


pb, pbg = _stubs()


def procs(*needles):
    """Pids of processes whose command line contains every needle."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd and all(n in cmd for n in needles):
            found.append(int(d))
    return found


def mounts_under(prefix):
    with open("/proc/self/mounts") as f:
        return [l.split()[1] for l in f if l.split()[1].startswith(prefix + "/")]


def netns_names():
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Env:
    """One private containerd with CRI; start() then use .rt / .img."""

    def __init__(self, name="cri", kroot=None):
        self.kroot = kroot or os.environ.get("KATAVM_TEST_ROOT", "/tmp/kvt")
        self.work = "%s-work-%s" % (self.kroot, name)
        self.sock = os.path.join(self.work, "c.sock")
        # Named after the test root (one per build tree) and the test.
        self.netns = "%s-%s" % (os.path.basename(self.kroot), name)
        self.proc = None
        self.channel = None
        self.netns_before = set()

    # ---- set up ----------------------------------------------------------

    def start(self):
        os.makedirs(self.kroot, mode=0o700, exist_ok=True)
        self.drop_leftovers()
        os.makedirs(self.work)
        self.netns_before = netns_names()
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True)
        w = self.work
        bindir = os.path.join(w, "bin")
        os.makedirs(bindir)
        os.symlink(os.environ["KATAVM_SHIM_V2"], os.path.join(bindir, "containerd-shim-katavm-v2"))
        conf = os.path.join(w, "katavm.conf")
        with open(conf, "w") as f:
            f.write(
                "[runtime]\nroot = %s\nkernel = %s\ninitrd = %s\nshim = %s\n"
                # What a pod's annotations may ask and Update may grow to.
                "max_vcpus = 2\nmax_memory_mib = 1024\n"
                % (self.kroot, os.environ["KATAVM_KERNEL"], os.environ["KATAVM_INITRD"], os.environ["KATAVM_SHIM"])
            )
        cnidir = os.path.join(w, "cni")
        os.makedirs(cnidir)
        with open(os.path.join(cnidir, "10-kvt.conflist"), "w") as f:
            json.dump(
                {
                    "cniVersion": "0.4.0",
                    "name": "kvt-cri",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "kvtcri0",
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": SUBNET_PREFIX + "0/24"}]],
                                "dataDir": os.path.join(w, "ipam"),
                            },
                        }
                    ],
                },
                f,
            )
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        rts = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes'
        toml = f"""version = 2
root = "{w}/root"
state = "{w}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{self.sock}.debug"
  level = "debug"
{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: no lowering of oom_score_adj
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    {rts}.runc]
      runtime_type = "io.containerd.runc.v2"
    {rts}.katavm]
      runtime_type = "io.containerd.katavm.v2"
      pod_annotations = ["io.katavm.*"]
      {rts}.katavm.options]
        ConfigPath = "{conf}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cnidir}"
    max_conf_num = 1
"""
        tomlpath = os.path.join(w, "config.toml")
        with open(tomlpath, "w") as f:
            f.write(toml)
        env = dict(os.environ)
        env["PATH"] = bindir + ":" + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.log = os.path.join(w, "containerd.log")
        with open(self.log, "w") as lf:
            self.proc = subprocess.Popen(
                ["nsenter", "--net=/run/netns/" + self.netns, "containerd", "--config", tomlpath],
                stdout=lf,
                stderr=subprocess.STDOUT,
                env=env,
            )
        for _ in range(600):
            if os.path.exists(self.sock) and self.ctr("version", check=False).returncode == 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited: see " + self.log)
            time.sleep(0.1)
        else:
            raise RuntimeError("containerd did not come up: see " + self.log)
        self.channel = grpc.insecure_channel("unix://" + self.sock)
        self.rt = pbg.RuntimeServiceStub(self.channel)
        self.img = pbg.ImageServiceStub(self.channel)
        mk = os.path.join(SOURCE_DIR, "tests", "rootfs", "mkociimage.sh")
        for name, cmd in ((IMAGE, '["sh"]'), (PAUSE_IMAGE, '["sleep","2147483647"]')):
            tar = os.path.join(w, "image.tar")
            subprocess.run([mk, name, tar, cmd], check=True, stdout=subprocess.DEVNULL)
            self.ctr("image", "import", tar)
            os.unlink(tar)
        # The CRI plugin learns of imported images through events.
        for _ in range(300):
            have = {t for i in self.img.ListImages(pb.ListImagesRequest(), timeout=RPC_TIMEOUT).images for t in i.repo_tags}
            if IMAGE in have and PAUSE_IMAGE in have:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("CRI does not list the imported images")
        return self

    def ctr(self, *args, check=True):
        return subprocess.run(
            ["ctr", "-a", self.sock, "-n", "k8s.io"] + list(args), check=check, capture_output=True, text=True
        )

    # ---- CRI helpers -----------------------------------------------------

    def run_pod(self, name, handler, annotations=None):
        cfg = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid="uid-" + name, namespace="kvt", attempt=0),
            hostname=name,
            log_directory=os.path.join(self.work, "logs", name),
            annotations=annotations or {},
            linux=pb.LinuxPodSandboxConfig(),
        )
        os.makedirs(cfg.log_directory, exist_ok=True)
        r = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler), timeout=RPC_TIMEOUT)
        return r.pod_sandbox_id, cfg

    def create_container(self, pod_id, pod_cfg, name, command, memory_limit=0, start=True):
        cc = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=IMAGE),
            command=command,
            log_path=name + ".log",
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory_limit)
            ),
        )
        r = self.rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cc, sandbox_config=pod_cfg), timeout=RPC_TIMEOUT
        )
        if start:
            self.rt.StartContainer(pb.StartContainerRequest(container_id=r.container_id), timeout=RPC_TIMEOUT)
        return r.container_id

    def exec_sync(self, cid, cmd):
        r = self.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=0), timeout=RPC_TIMEOUT)
        return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def pod_ip(self, pod_id):
        return self.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT).status.network.ip

    def container_state(self, cid):
        return self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=RPC_TIMEOUT).status

    def remove_pod(self, pod_id):
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT)
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT)

    def remove_all_pods(self):
        for p in self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items:
            try:
                self.remove_pod(p.id)
            except grpc.RpcError as e:
                print("remove pod %s: %s" % (p.id, e), file=sys.stderr)

    # ---- what is alive ---------------------------------------------------

    def vms(self):
        return procs("/usr/bin/qemu-system", self.kroot + "/")

    def shims(self):
        return procs("containerd-shim-katavm-v2", self.sock)

    def vm_shims(self):
        return procs("katavm-shim", "--root " + self.kroot + " ")

    def virtiofsds(self):
        return procs("virtiofsd", self.kroot + "/")

    def pod_netns(self):
        return netns_names() - self.netns_before - {self.netns}

    def settle(self, what, want=0, tries=600):
        """what() once it has `want` entries (short-lived shims and teardown
        take a moment), bounded."""
        got = what()
        for _ in range(tries):
            if len(got) == want:
                break
            time.sleep(0.1)
            got = what()
        return got

    def leaks(self):
        """Everything of a pod that must be gone once its pods are removed."""
        out = {}
        for name, f in (
            ("qemu", self.vms),
            ("containerd-shim-katavm-v2", self.shims),
            ("katavm-shim", self.vm_shims),
            ("virtiofsd", self.virtiofsds),
            ("pod netns", lambda: sorted(self.pod_netns())),
            ("mounts", lambda: mounts_under(self.work) + mounts_under(self.kroot)),
        ):
            got = self.settle(f)
            if got:
                out[name] = got
        sbdir = os.path.join(self.kroot, "sandboxes")
        if os.path.isdir(sbdir) and os.listdir(sbdir):
            out["sandbox state"] = os.listdir(sbdir)
        return out

    # ---- tear down -------------------------------------------------------

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.remove_all_pods()
            except grpc.RpcError as e:
                print("list pods: %s" % e, file=sys.stderr)
        if self.channel:
            self.channel.close()
            self.channel = None
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def drop_leftovers(self):
        """What a failed or killed run left: processes of this work dir,
        sandboxes under the katavm root, mounts, netns, the dir itself."""
        sock = self.sock
        for pid in procs("containerd --config", self.work + "/") + procs(sock):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cli = os.environ.get("KATAVM_CLI")
        if cli and os.path.isdir(os.path.join(self.kroot, "sandboxes")):
            for sb in os.listdir(os.path.join(self.kroot, "sandboxes")):
                subprocess.run([cli, "--root", self.kroot, "sandbox", "rm", "-f", sb], capture_output=True)
        for pid in self.vm_shims() + self.vms():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for d in (self.work, self.kroot):
            for m in sorted(mounts_under(d), reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
        # Pod netns that containerd made and did not remove, and ours.
        for ns in self.pod_netns() if self.netns_before else ():
            subprocess.run(["umount", "-l", "/run/netns/" + ns], capture_output=True)
            try:
                os.unlink("/run/netns/" + ns)
            except OSError:
                pass
        if os.path.exists("/run/netns/" + self.netns):
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        if os.path.isdir(self.work):
            shutil.rmtree(self.work, ignore_errors=True)

    def close(self):
        self.stop()
        self.drop_leftovers()
