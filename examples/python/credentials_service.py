#!/usr/bin/python3
"""examples/python/credentials_service.py: a Vault-style credentials store
isolated in its own VM, reached from the host.

Why a VM: the store holds every secret of the services around it, and
parses whatever the network sends it. In a container, a bug in that parser
plus one kernel bug is an escape onto the host, next to everything else;
here the same escape lands in a throwaway guest kernel that holds nothing
but this store, and destroying the sandbox (at the end of this program)
destroys the secrets with it: they never touch the host's disk.

The server (vault_server.py, standard library only) runs in a rootfs made
here from Debian's python3-minimal: the interpreter, the shared libraries
ldd finds for it and its extension modules, and exactly the stdlib modules
the server imports (it lists them itself: vault_server.py --print-modules).

    credentials_service.py --netns /run/netns/POD [--client-netns PATH]
        The sandbox gets the interfaces of network namespace POD (see
        katavm.h: netns); the host talks to the guest's address there,
        from --client-netns (a namespace on the other side of a veth)
        or from this process's own namespace.
    credentials_service.py [--host-port PORT]
        Without --netns: user-mode networking, published on the host's
        127.0.0.1:8200 (or PORT) like `vault server -dev`.

Run plainly, it stores a few secrets, reads them back (with versions, a
listing, a delete), prints what it stored and read, and exits. With
--serve it prints one JSON line {"url": ..., "token": ...} and serves
until SIGINT or SIGTERM; then (as after a plain run) the sandbox, its VM
and the rootfs are removed.

State root, guest kernel and image come from the environment like any
katavm program (KATAVM_ROOT, KATAVM_KERNEL, KATAVM_INITRD, ...).
"""

import argparse
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import concurrent.futures

import katavm

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "vault_server.py")
PYTHON = os.path.realpath("/usr/bin/python3")  # python3-minimal's python3.X
PORT = 8200


# ---------------------------------------------------------------- rootfs


def replicate(dest, path):
    """Recreate host path under dest as the host has it: each symlink on
    the way (merged /usr: /lib -> usr/lib) as a symlink, then the file."""
    parts = [p for p in path.split("/") if p]
    cur = "/"
    for i, part in enumerate(parts):
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            link = os.readlink(nxt)
            d = dest + nxt
            if not os.path.lexists(d):
                os.makedirs(os.path.dirname(d), exist_ok=True)
                os.symlink(link, d)
            target = os.path.normpath(os.path.join(cur, link))
            return replicate(dest, os.path.join(target, *parts[i + 1:]))
        cur = nxt
    d = dest + cur
    if os.path.isdir(cur):
        os.makedirs(d, exist_ok=True)
    elif not os.path.exists(d):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(cur, d)


def shared_libs(binary):
    """The libraries ld.so loads for binary (ldd), the loader included."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True,
                         text=True).stdout
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            path = line.split("=>", 1)[1].split("(")[0].strip()
        else:
            path = line.split("(")[0].strip()
        if path.startswith("/"):
            libs.append(path)
    return libs


def build_rootfs(dest):
    """A rootfs holding the Python interpreter, what it links and the
    modules vault_server.py imports, plus the server as /srv/vault.py."""
    mods = subprocess.run([PYTHON, "-I", "-S", SERVER, "--print-modules"],
                          check=True, capture_output=True, text=True).stdout
    stdlib, tag = subprocess.run(
        [PYTHON, "-I", "-S", "-c", "import os, sys; print(os.path.dirname("
         "os.__file__), sys.implementation.cache_tag)"],
        check=True, capture_output=True, text=True).stdout.split()
    files = {PYTHON, os.path.join(stdlib, "os.py")}  # os.py: the landmark
    for f in mods.split():
        if f.startswith(stdlib + "/"):
            files.add(f)
    for f in sorted(files):
        replicate(dest, f)
        if f.endswith(".py"):
            # The compiled module too: imports under emulation are slow.
            d, base = os.path.split(f)
            pyc = os.path.join(d, "__pycache__", base[:-3] + "." + tag + ".pyc")
            if os.path.exists(pyc):
                replicate(dest, pyc)
        if f == PYTHON or f.endswith(".so"):
            for lib in shared_libs(f):
                replicate(dest, lib)
    os.makedirs(os.path.join(dest, stdlib.lstrip("/"), "lib-dynload"),
                exist_ok=True)
    os.symlink(os.path.basename(PYTHON), os.path.join(dest, "usr/bin/python3"))
    for d in ("proc", "sys", "dev", "tmp", "etc", "srv"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/nonexistent\n"
                "nobody:x:65534:65534:nobody:/:/nonexistent\n")
    with open(os.path.join(dest, "etc/hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n")
    shutil.copy2(SERVER, os.path.join(dest, "srv/vault.py"))
    return dest


# ---------------------------------------------------------------- network


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def netns_executor(path):
    """A one-thread executor whose thread lives in network namespace path
    (setns(2) moves only the calling thread): sockets made by functions it
    runs belong to that namespace. None = this process's namespace."""
    def enter():
        if path is None:
            return
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
        finally:
            os.close(fd)
    return concurrent.futures.ThreadPoolExecutor(1, initializer=enter)


def ipv4_addresses():
    """IPv4 addresses of this thread's namespace's interfaces (lo and
    interfaces without one skipped), via SIOCGIFADDR."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                r = fcntl.ioctl(s.fileno(), 0x8915,  # SIOCGIFADDR
                                struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            out.append(socket.inet_ntoa(r[20:24]))
    return out


class Client:
    """A tiny Vault client (http.client, JSON in and out). Every request
    runs on `executor`'s thread, so its socket lives in that namespace."""

    def __init__(self, host, port, token, executor):
        self.host, self.port, self.token, self.ex = host, port, token, executor

    def request(self, method, path, body=None, token=True):
        def go():
            c = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                h = {"Content-Type": "application/json"} if body is not None else {}
                if token:
                    h["X-Vault-Token"] = self.token if token is True else token
                c.request(method, path, json.dumps(body) if body is not None
                          else None, h)
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            finally:
                c.close()
        return self.ex.submit(go).result()

    def wait_healthy(self, deadline):
        last = None
        while time.monotonic() < deadline:
            try:
                st, body = self.request("GET", "/v1/sys/health", token=False)
                if st == 200 and body.get("initialized"):
                    return body
                last = "status %d" % st
            except OSError as e:
                last = e
            time.sleep(0.3)
        raise RuntimeError("the credentials service did not come up: %s" % last)


# ---------------------------------------------------------------- service


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def start_service(args, rootfs, token):
    """Sandbox + container running the server; returns (sandbox, server
    process)."""
    kw = {"memory_mib": 256}
    if args.netns:
        kw["netns"] = args.netns
    else:
        # User-mode networking, the port published on the host's loopback.
        kw.update(net="user",
                  publish=["127.0.0.1:%d:%d" % (args.host_port, PORT)])
    sb = katavm.create_sandbox(name=args.name, **kw)
    try:
        # The main process only idles; the server is exec'd beside it so
        # that its output comes back to us.
        ctr = sb.add_container(rootfs=rootfs, name="vault", readonly=True,
                               args=["/usr/bin/python3", "-I", "-S", "-c",
                                     "import time\nwhile True: time.sleep(3600)"],
                               env={"PATH": "/usr/bin"})
        ctr.start()
        srv = ctr.popen(["/usr/bin/python3", "-I", "-S", "-B", "/srv/vault.py",
                         "--token", token, "--port", str(PORT)]
                        + (["--verbose"] if args.verbose else []),
                        stdin=False)
    except BaseException:
        sb.destroy()
        raise
    return sb, srv


def demo(c, out):
    """Store, read back, version, list and delete a few secrets."""
    def check(st, want, what):
        if st != want:
            raise RuntimeError("%s: status %d, expected %d" % (what, st, want))

    stored = {
        "app/db": {"username": "app", "password": secrets.token_urlsafe(12)},
        "app/api": {"key": secrets.token_hex(16)},
        "ops/ssh": {"private_key": "-----BEGIN KEY----- (demo) -----END KEY-----"},
    }
    for path, data in stored.items():
        st, body = c.request("POST", "/v1/secret/data/" + path, {"data": data})
        check(st, 200, "write " + path)
        out("stored   secret/%s version %d: %s" % (
            path, body["data"]["version"], json.dumps(data, sort_keys=True)))
    for path, data in stored.items():
        st, body = c.request("GET", "/v1/secret/data/" + path)
        check(st, 200, "read " + path)
        got = body["data"]["data"]
        if got != data:
            raise RuntimeError("read back %r for %s, stored %r" % (got, path, data))
        out("read     secret/%s version %d: %s" % (
            path, body["data"]["metadata"]["version"],
            json.dumps(got, sort_keys=True)))
    # A second version; the first stays readable.
    new = {"username": "app", "password": secrets.token_urlsafe(12)}
    st, body = c.request("PUT", "/v1/secret/data/app/db", {"data": new})
    check(st, 200, "rewrite app/db")
    st, v1 = c.request("GET", "/v1/secret/data/app/db?version=1")
    check(st, 200, "read app/db version 1")
    st, v2 = c.request("GET", "/v1/secret/data/app/db")
    if v1["data"]["data"] != stored["app/db"] or v2["data"]["data"] != new \
            or v2["data"]["metadata"]["version"] != 2:
        raise RuntimeError("versions of app/db are wrong")
    out("versions secret/app/db: 1 and 2 both readable, latest is 2")
    st, body = c.request("LIST", "/v1/secret/metadata/")
    check(st, 200, "list secret/")
    out("list     secret/: %s" % ", ".join(body["data"]["keys"]))
    st, body = c.request("LIST", "/v1/secret/metadata/app")
    out("list     secret/app/: %s" % ", ".join(body["data"]["keys"]))
    st, _ = c.request("DELETE", "/v1/secret/data/ops/ssh")
    check(st, 204, "delete ops/ssh")
    st, body = c.request("GET", "/v1/secret/data/ops/ssh")
    check(st, 404, "read deleted ops/ssh")
    out("deleted  secret/ops/ssh: now %d %s" % (st, json.dumps(body)))
    st, body = c.request("GET", "/v1/secret/data/app/db", token="wrong-token")
    check(st, 403, "read with a wrong token")
    out("wrong token: %d %s" % (st, json.dumps(body)))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="A Vault-style credentials store in its own VM.")
    ap.add_argument("--netns", help="network namespace for the sandbox "
                    "(default: user-mode networking on 127.0.0.1:%d)" % PORT)
    ap.add_argument("--client-netns", help="namespace to reach the service "
                    "from (with --netns; default: this process's)")
    ap.add_argument("--host-port", type=int, default=PORT,
                    help="without --netns: the port on the host's 127.0.0.1 "
                    "(default %d)" % PORT)
    ap.add_argument("--serve", action="store_true",
                    help="print {url, token} and serve until SIGINT/SIGTERM")
    ap.add_argument("--name", help="sandbox id (default: generated)")
    ap.add_argument("--token", help="root token (default: random)")
    ap.add_argument("--verbose", action="store_true",
                    help="the server logs each request to our stderr")
    args = ap.parse_args(argv)
    if args.client_netns and not args.netns:
        ap.error("--client-netns needs --netns")
    token = args.token or "kvs." + secrets.token_urlsafe(18)
    out = lambda s: print(s, flush=True)  # noqa: E731

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work = tempfile.mkdtemp(prefix="katavm-vault-")
    sb = srv = None
    client_ex = netns_executor(args.client_netns)
    try:
        rootfs = build_rootfs(os.path.join(work, "rootfs"))
        t0 = time.monotonic()
        sb, srv = start_service(args, rootfs, token)
        if args.verbose:
            threading.Thread(target=shutil.copyfileobj,
                             args=(srv.stderr, sys.stderr.buffer),
                             daemon=True).start()
        if args.netns:
            with netns_executor(args.netns) as ex:
                addrs = ex.submit(ipv4_addresses).result()
            if not addrs:
                raise RuntimeError("%s has no IPv4 address" % args.netns)
            host, port = addrs[0], PORT
        else:
            host, port = "127.0.0.1", args.host_port
        c = Client(host, port, token, client_ex)
        try:
            health = c.wait_healthy(time.monotonic() + 180)
        except RuntimeError:
            if srv.poll() is not None:
                raise RuntimeError("the server exited with %d: %s" % (
                    srv.returncode, srv.stderr.read().decode(errors="replace")))
            raise
        url = "http://%s:%d" % (host, port)
        print("credentials service %s (Vault API %s) up in sandbox %s after "
              "%.1f s" % (url, health["version"], sb.id,
                          time.monotonic() - t0), file=sys.stderr, flush=True)
        if args.serve:
            out(json.dumps({"url": url, "token": token, "sandbox": sb.id}))
            while True:
                signal.pause()
        else:
            demo(c, out)
    except Stop as e:
        print("%s: stopping" % e, file=sys.stderr, flush=True)
    finally:
        # Signals from here on would interrupt the clean-up itself.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        client_ex.shutdown()
        if srv is not None:
            srv.close()
        if sb is not None:
            sb.destroy()
            print("sandbox %s destroyed, secrets gone with it" % sb.id,
                  file=sys.stderr, flush=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
