#!/usr/bin/python3
"""examples/python/quickstart.py: the README's main job in Python.

A sandbox VM is created, a container from a busybox rootfs is started in
it, a command is exec'd in the container, the guest's details are shown,
and the sandbox is removed (also when something fails on the way).

    quickstart.py [--rootfs DIR]

Without --rootfs, a busybox rootfs is made in a temporary directory with
tests/rootfs/mkrootfs.sh (Debian's busybox-static) and removed at the end.
Settings come from the environment like any katavm program (KATAVM_ROOT,
KATAVM_KERNEL, KATAVM_INITRD, ...).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import katavm

MKROOTFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "tests", "rootfs", "mkrootfs.sh")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rootfs", help="a container root filesystem directory")
    args = ap.parse_args(argv)

    tmp = None
    rootfs = args.rootfs
    if rootfs is None:
        tmp = tempfile.mkdtemp(prefix="katavm-quickstart-")
        rootfs = os.path.join(tmp, "rootfs")
        subprocess.run([MKROOTFS, rootfs], check=True, stdout=subprocess.DEVNULL)
    try:
        # The with block destroys the sandbox (VM, shim, state) at its end.
        with katavm.create_sandbox(cpus=1, memory_mib=256, max_cpus=2,
                                   max_memory_mib=512) as sb:
            print("sandbox %s created" % sb.id)
            demo = sb.add_container(rootfs=rootfs, name="demo",
                                    args=["sleep", "1000000"])
            demo.start()
            r = demo.exec(["sh", "-c", 'echo "hello from container '
                           '$(hostname), guest kernel $(uname -r)"; '
                           "ps -o pid,comm"], check=True)
            sys.stdout.write(r.stdout.decode())
            info = sb.info()
            g = info.get("guest", {})
            print("state %s, accel %s, %d vCPU (max %d), %d MiB (max %d)" % (
                info["state"], info.get("accel"), info["vcpus"],
                info["max_vcpus"], info["memory_mib"], info["max_memory_mib"]))
            print("guest kernel %s, agent %s, %d CPU online, %d KiB memory"
                  % (g.get("kernel"), g.get("agent_version"),
                     g.get("cpus_online", 0), g.get("mem_total_kib", 0)))
        print("sandbox %s removed" % sb.id)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
