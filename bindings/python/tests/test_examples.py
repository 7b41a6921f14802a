"""bindings/python/tests/test_examples.py: every program in examples/ run
as a user would run it, so that none can rot: the C examples (built by
CMake: KATAVM_EXAMPLE_HELLO, KATAVM_EXAMPLE_EXEC_STREAM), the README's
Python one-liner, examples/python/quickstart.py, and
examples/python/credentials_service.py in a network namespace and in
user mode (published on the host's loopback), each plainly and with
--serve (a wrong token gets 403; SIGTERM removes everything).

Namespaces and addresses: the test makes a "pod" and a "client" namespace
joined by a veth (10.79.0.0/24, only inside them); the service's sandbox
joins pod, and the clients run in client.
"""

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import katavm
from kvpy import ROOT, SRC, assert_clean, make_rootfs, procs_of_root, runtime, sweep

WORK = "/tmp/kvpy-ex-%d" % os.getpid()
POD, CLIENT = "kvpypod-%d" % os.getpid(), "kvpycli-%d" % os.getpid()
VPOD, VCLI = "kvxp%d" % (os.getpid() % 100000), "kvxc%d" % (os.getpid() % 100000)
PY = "/usr/bin/python3"
EXAMPLES = os.path.join(SRC, "examples")


def env():
    e = dict(os.environ, KATAVM_ROOT=ROOT)
    e["PYTHONPATH"] = os.path.join(SRC, "bindings", "python")
    return e


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


@pytest.fixture(scope="module", autouse=True)
def clean():
    rt = runtime()
    sweep(rt)
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(WORK)
    make_rootfs(os.path.join(WORK, "rootfs"))
    yield
    sweep(rt)
    rt.close()
    subprocess.run("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null;"
                   " rm -rf %s" % (POD, CLIENT, WORK), shell=True)
    assert_clean()


def test_c_hello_sandbox():
    r = subprocess.run([os.environ["KATAVM_EXAMPLE_HELLO"],
                        os.path.join(WORK, "rootfs")], env=env(),
                       capture_output=True, text=True, timeout=900)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    rel = os.environ.get("KATAVM_TEST_KERNEL_RELEASE") or os.uname().release
    assert "container uname -r: %s\n" % rel in r.stdout
    assert "destroyed" in r.stdout
    assert_clean()


def test_c_exec_stream():
    data = os.urandom(5 * 1024 * 1024 + 123)
    r = subprocess.run([os.environ["KATAVM_EXAMPLE_EXEC_STREAM"],
                        os.path.join(WORK, "rootfs"), "--", "sh", "-c",
                        "tee /tmp/in | md5sum; echo to-stderr >&2; "
                        "cat /tmp/in; exit 3"],
                       input=data, env=env(), capture_output=True,
                       timeout=900)
    err = r.stderr.decode()
    print(err)
    assert r.returncode == 3
    md5 = hashlib.md5(data).hexdigest()
    assert r.stdout.startswith(md5.encode() + b"  -\n")
    assert r.stdout[len(md5) + 4:] == data
    assert "to-stderr" in err
    assert "stdin %d bytes, stdout %d bytes" % (len(data), len(r.stdout)) in err
    assert_clean()


def test_readme_one_liner():
    # The README's first Python lines, verbatim in spirit: a sandbox, a
    # container, `uname -r`, nothing left behind.
    code = textwrap.dedent("""\
        import katavm
        with katavm.create_sandbox() as sb:
            c = sb.add_container(rootfs=%r, args=["sleep", "inf"])
            c.start()
            print(c.exec(["uname", "-r"], check=True).stdout.decode(), end="")
        """) % os.path.join(WORK, "rootfs")
    r = subprocess.run([PY, "-c", code], env=env(), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    rel = os.environ.get("KATAVM_TEST_KERNEL_RELEASE") or os.uname().release
    assert r.stdout == rel + "\n"
    assert_clean()


def test_python_quickstart():
    r = subprocess.run([PY, os.path.join(EXAMPLES, "python", "quickstart.py")],
                       env=env(), capture_output=True, text=True, timeout=900)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    assert "hello from container katavm, guest kernel" in r.stdout
    assert "removed" in r.stdout
    assert not glob.glob("/tmp/katavm-quickstart-*")
    assert_clean()


# ---- the credentials service


@pytest.fixture
def netns():
    sh("ip netns add {p} && ip netns add {c} && "
       "ip link add {vp} netns {p} type veth peer name {vc} netns {c} && "
       "ip -n {c} link set lo up && ip -n {c} addr add 10.79.0.1/24 dev {vc} && "
       "ip -n {c} link set {vc} up && "
       "ip -n {p} addr add 10.79.0.2/24 dev {vp} && ip -n {p} link set {vp} up"
       .format(p=POD, c=CLIENT, vp=VPOD, vc=VCLI))
    before = pod_links()
    yield "/run/netns/" + POD, "/run/netns/" + CLIENT
    # The pod's namespace as it was: the veth only, no tap, no qdisc.
    assert pod_links() == before
    sh("ip netns del %s && ip netns del %s" % (POD, CLIENT))


def pod_links():
    return subprocess.run(
        "ip -n %s -o link show | awk '{print $2}'; tc -n %s qdisc show dev %s"
        % (POD, POD, VPOD), shell=True, check=True, capture_output=True,
        text=True).stdout


def vault_dirs():
    return set(glob.glob("/tmp/katavm-vault-*"))


def client(url, token, method, path, body=None):
    """One request from the client namespace (ip netns exec, a fresh
    python3): returns (status, JSON body)."""
    code = textwrap.dedent("""\
        import json, sys, urllib.request, urllib.error
        url, token, method, path, body = sys.argv[1:6]
        req = urllib.request.Request(url + path, method=method,
            data=body.encode() if body else None,
            headers={"X-Vault-Token": token, "Content-Type": "application/json"})
        try:
            r = urllib.request.urlopen(req, timeout=60)
            st, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            st, raw = e.code, e.read()
        print(json.dumps([st, json.loads(raw) if raw else None]))
        """)
    r = subprocess.run(["ip", "netns", "exec", CLIENT, PY, "-c", code, url,
                        token, method, path, json.dumps(body) if body else ""],
                       check=True, capture_output=True, text=True, timeout=300)
    return tuple(json.loads(r.stdout))


def assert_service_gone(before_dirs):
    assert katavm.Runtime(root=ROOT).list_sandboxes() == []
    assert vault_dirs() == before_dirs
    links = subprocess.run(["ip", "-o", "link", "show"], check=True,
                           capture_output=True, text=True).stdout
    assert ": kvn" not in links
    assert_clean()


def test_credentials_netns_plain(netns):
    pod, cli = netns
    dirs = vault_dirs()
    r = subprocess.run([PY, os.path.join(EXAMPLES, "python",
                                         "credentials_service.py"),
                        "--netns", pod, "--client-netns", cli],
                       env=env(), capture_output=True, text=True, timeout=900)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    out = r.stdout
    for path in ("app/db", "app/api", "ops/ssh"):
        assert "stored   secret/%s version 1" % path in out
        assert "read     secret/%s version 1" % path in out
    assert "list     secret/: app/, ops/" in out
    assert "deleted  secret/ops/ssh: now 404" in out
    assert 'wrong token: 403 {"errors": ["permission denied"]}' in out
    assert "destroyed, secrets gone with it" in r.stderr
    assert_service_gone(dirs)


def test_credentials_netns_serve(netns):
    pod, cli = netns
    dirs = vault_dirs()
    p = subprocess.Popen([PY, os.path.join(EXAMPLES, "python",
                                           "credentials_service.py"),
                          "--netns", pod, "--client-netns", cli, "--serve"],
                         env=env(), stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        hello = json.loads(line)
        url, token = hello["url"], hello["token"]
        assert url == "http://10.79.0.2:8200"
        st, body = client(url, token, "GET", "/v1/sys/health")
        assert st == 200 and body["initialized"] and not body["sealed"]
        assert body["standby"] is False and body["version"]
        assert client(url, "wrong", "GET", "/v1/secret/data/x") == (
            403, {"errors": ["permission denied"]})
        st, body = client(url, token, "POST", "/v1/secret/data/team/db",
                          {"data": {"password": "s3cret"}})
        assert st == 200 and body["data"]["version"] == 1
        st, body = client(url, token, "PUT", "/v1/secret/data/team/db",
                          {"data": {"password": "s3cret2"}})
        assert st == 200 and body["data"]["version"] == 2
        st, body = client(url, token, "GET", "/v1/secret/data/team/db")
        assert st == 200 and body["data"]["data"] == {"password": "s3cret2"}
        assert body["data"]["metadata"]["version"] == 2
        st, body = client(url, token, "GET", "/v1/secret/data/team/db?version=1")
        assert body["data"]["data"] == {"password": "s3cret"}
        st, body = client(url, token, "LIST", "/v1/secret/metadata/team")
        assert (st, body["data"]["keys"]) == (200, ["db"])
        assert client(url, token, "GET", "/v1/secret/data/team/none") == (
            404, {"errors": []})
        assert client(url, token, "DELETE", "/v1/secret/data/team/db")[0] == 204
        assert client(url, token, "GET", "/v1/secret/data/team/db")[0] == 404
        st, body = client(url, token, "POST", "/v1/secret/data/bad", None)
        assert st == 400 and body["errors"]
        st, body = client(url, token, "GET", "/v1/nope")
        assert st == 404 and body["errors"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=600) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_service_gone(dirs)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_request(url, token, method, path, body=None):
    """One request from this process (user mode: the host's loopback)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(
        url + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-Vault-Token": token, "Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        st, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, raw = e.code, e.read()
    return st, (json.loads(raw) if raw else None)


def test_credentials_user_mode_plain():
    # The default: user-mode networking, published on 127.0.0.1:8200.
    dirs = vault_dirs()
    r = subprocess.run([PY, os.path.join(EXAMPLES, "python",
                                         "credentials_service.py")],
                       env=env(), capture_output=True, text=True, timeout=900)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    assert "http://127.0.0.1:8200" in r.stderr
    for path in ("app/db", "app/api", "ops/ssh"):
        assert "read     secret/%s version 1" % path in r.stdout
    assert 'wrong token: 403 {"errors": ["permission denied"]}' in r.stdout
    assert_service_gone(dirs)


def test_credentials_user_mode_serve():
    dirs = vault_dirs()
    port = free_port()
    p = subprocess.Popen([PY, os.path.join(EXAMPLES, "python",
                                           "credentials_service.py"),
                          "--serve", "--host-port", str(port)],
                         env=env(), stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(p.stdout.readline())
        url, token = hello["url"], hello["token"]
        assert url == "http://127.0.0.1:%d" % port
        st, body = host_request(url, token, "GET", "/v1/sys/health")
        assert st == 200 and body["initialized"] and not body["sealed"]
        assert host_request(url, "nope", "GET", "/v1/secret/data/a") == (
            403, {"errors": ["permission denied"]})
        st, body = host_request(url, token, "POST", "/v1/secret/data/a",
                                {"data": {"k": "v"}})
        assert st == 200 and body["data"]["version"] == 1
        st, body = host_request(url, token, "GET", "/v1/secret/data/a")
        assert body["data"]["data"] == {"k": "v"}
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=600) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_service_gone(dirs)
    # Nothing listens on the published port any more (SO_REUSEADDR: the
    # client's connections may still sit in TIME_WAIT, a listener may not).
    import socket
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
