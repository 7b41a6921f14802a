#!/usr/bin/python3
"""bench/cri.py: Kubernetes-shaped pods through containerd's CRI plugin,
runtime handler katavm against runc in the same private containerd (the
harness of tests/cri/crienv.py: its own root, sockets, CNI bridge in a
network namespace of its own).

  cri.py [-n ROUNDS] [--pods N] [--json]

- start: RunPodSandbox + CreateContainer + StartContainer until the first
  ExecSync answer (`true`), katavm and runc alternating, ROUNDS each
  (default 5); medians and their ratio.
- memory: N idle pods of each handler (default 10; fewer on a loaded
  machine), each a sandbox and one sleeping container, alive at once;
  after 5 s idle the PSS (/proc/PID/smaps_rollup) of what each pod costs on
  the host: katavm: QEMU + katavm-shim + virtiofsd +
  containerd-shim-katavm-v2; runc: containerd-shim-runc-v2 + the pause and
  container processes. Per pod = sum / N.

Environment: as the tests (KATAVM_KERNEL, KATAVM_INITRD, KATAVM_SHIM,
KATAVM_SHIM_V2, KATAVM_CLI, KATAVM_SOURCE_DIR); KATAVM_ROOT (default
/tmp/kvb-cri, at most 32 characters) is the katavm root. Needs root.
Asserts nothing; exit 0 done, 1 failed, 2 bad usage.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "cri"))
os.environ.setdefault("KATAVM_SOURCE_DIR", os.path.dirname(HERE))

import crienv  # noqa: E402

SLEEP = ["sleep", "100000"]


def one_start(env, handler, i):
    t0 = time.monotonic()
    pod, cfg = env.run_pod("b-%s-%d" % (handler, i), handler)
    cid = env.create_container(pod, cfg, "c", SLEEP)
    rc, _, err = env.exec_sync(cid, ["true"])
    t = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError("ExecSync true in %s pod: exit %d: %s" % (handler, rc, err))
    env.remove_pod(pod)
    return t


def pods_pss(env, handler, n):
    pods = []
    for i in range(n):
        pod, cfg = env.run_pod("m-%s-%d" % (handler, i), handler)
        env.create_container(pod, cfg, "c", SLEEP)
        pods.append(pod)
    time.sleep(5)
    if handler == "katavm":
        pids = env.vms() + env.vm_shims() + env.virtiofsds() + env.shims()
    else:
        shims = crienv.procs("containerd-shim-runc-v2", env.sock)
        pids = list(shims)
        for s in shims:  # the pause and container processes below each shim
            pids += [int(p) for p in open("/proc/%d/task/%d/children" % (s, s)).read().split()]
    total = sum(crienv.pss_kib(p) for p in pids)
    for pod in pods:
        env.remove_pod(pod)
    return total / 1024.0 / n, len(pids)


def main():
    ap = argparse.ArgumentParser(description="CRI pods: katavm vs runc")
    ap.add_argument("-n", type=int, default=5, help="start rounds per handler (1-100)")
    ap.add_argument("--pods", type=int, default=10, help="idle pods per handler for memory (1-40)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.n <= 100 or not 1 <= a.pods <= 40:
        ap.error("-n must be 1-100, --pods 1-40")
    res = {"load_before": crienv.load_average()}
    env = crienv.Env("cribench", kroot=os.environ.get("KATAVM_ROOT", "/tmp/kvb-cri"))
    try:
        env.start()
        # One unmeasured round each: image unpack, capability caches.
        one_start(env, "runc", 0)
        one_start(env, "katavm", 0)
        times = {"katavm": [], "runc": []}
        for i in range(a.n):
            for h in ("katavm", "runc"):
                times[h].append(one_start(env, h, i + 1))
        res["start_s"] = {h: statistics.median(v) for h, v in times.items()}
        res["start_all_s"] = times
        res["start_ratio"] = res["start_s"]["katavm"] / res["start_s"]["runc"]
        res["load_mid"] = crienv.load_average()
        res["pods"] = a.pods
        res["pss_mib_per_pod"] = {}
        for h in ("katavm", "runc"):
            per, nproc = pods_pss(env, h, a.pods)
            res["pss_mib_per_pod"][h] = per
        res["pss_ratio"] = res["pss_mib_per_pod"]["katavm"] / res["pss_mib_per_pod"]["runc"]
        leaks = env.leaks()
        if leaks:
            res["leaks"] = leaks
    except Exception as e:
        print("cri: %s" % e, file=sys.stderr)
        return 1
    finally:
        env.close()
    res["load_after"] = crienv.load_average()
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print("load average before %s, mid %s, after %s" % (res["load_before"], res["load_mid"], res["load_after"]))
    print("RunPodSandbox+CreateContainer+StartContainer to first ExecSync, median of %d:" % a.n)
    for h in ("katavm", "runc"):
        print("  %-7s %7.2f s   (%s)" % (h, res["start_s"][h], " ".join("%.2f" % t for t in times[h])))
    print("  ratio katavm/runc %.1f" % res["start_ratio"])
    print("PSS per idle pod, %d pods of each alive at once:" % a.pods)
    for h in ("katavm", "runc"):
        print("  %-7s %7.1f MiB" % (h, res["pss_mib_per_pod"][h]))
    print("  ratio katavm/runc %.1f" % res["pss_ratio"])
    if "leaks" in res:
        print("left behind: %r" % res["leaks"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
