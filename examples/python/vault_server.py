"""examples/python/vault_server.py: a small credentials store that speaks the
part of HashiCorp Vault's HTTP API that clients use most. It runs inside a
sandbox (credentials_service.py starts it there) on nothing but the Python
standard library, and keeps every secret in memory: destroying the sandbox
destroys the secrets.

    python3 vault_server.py --token ROOT_TOKEN [--port 8200] [--bind ADDR]

API (Vault's shapes: https://developer.hashicorp.com/vault/api-docs):
  GET    /v1/sys/health                   no token needed
  GET    /v1/auth/token/lookup-self       the token's description
  POST   /v1/secret/data/PATH             {"data": {...}, "options": {"cas": N}}
  PUT    /v1/secret/data/PATH             the same
  GET    /v1/secret/data/PATH[?version=N] {"data": {"data": {...}, "metadata": {...}}}
  DELETE /v1/secret/data/PATH             soft-deletes the latest version
  GET    /v1/secret/metadata/PATH         every version's metadata
  LIST   /v1/secret/metadata/PATH         {"data": {"keys": [...]}} (also GET ?list=true)
  DELETE /v1/secret/metadata/PATH         removes the secret and all its versions
Every request but health needs the root token in X-Vault-Token (or
"Authorization: Bearer TOKEN"): 403 {"errors": ["permission denied"]}
otherwise. A missing secret is 404 {"errors": []}; other failures are
{"errors": ["what went wrong"]} with 400, 404 or 405.

`--print-modules` prints the files of every module this server imports and
exits: credentials_service.py copies exactly those into the sandbox's rootfs.
"""

import argparse
import hmac
import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

VERSION = "1.15.0+katavm"
MAX_BODY = 1 << 20


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + (
        ".%06dZ" % int((t % 1) * 1e6))


class Store:
    """KV version 2: path -> {"versions": {n: {...}}, "current": n, ...}."""

    def __init__(self):
        self.mu = threading.Lock()
        self.secrets = {}

    def put(self, path, data, cas=None):
        with self.mu:
            s = self.secrets.setdefault(path, {
                "versions": {}, "current": 0, "oldest": 1,
                "created_time": now_rfc3339()})
            if cas is not None and cas != s["current"]:
                return None, "check-and-set parameter did not match the current version"
            n = s["current"] + 1
            s["versions"][n] = {"data": data, "created_time": now_rfc3339(),
                                "deletion_time": "", "destroyed": False}
            s["current"] = n
            s["updated_time"] = s["versions"][n]["created_time"]
            return self._vmeta(s, n), None

    @staticmethod
    def _vmeta(s, n):
        v = s["versions"][n]
        return {"created_time": v["created_time"], "custom_metadata": None,
                "deletion_time": v["deletion_time"],
                "destroyed": v["destroyed"], "version": n}

    def get(self, path, version=None):
        with self.mu:
            s = self.secrets.get(path)
            if not s:
                return None
            n = version or s["current"]
            v = s["versions"].get(n)
            if not v or v["deletion_time"] or v["destroyed"]:
                return None
            return {"data": v["data"], "metadata": self._vmeta(s, n)}

    def delete_latest(self, path):
        with self.mu:
            s = self.secrets.get(path)
            if s and s["current"] in s["versions"]:
                s["versions"][s["current"]]["deletion_time"] = now_rfc3339()

    def metadata(self, path):
        with self.mu:
            s = self.secrets.get(path)
            if not s:
                return None
            return {
                "cas_required": False, "created_time": s["created_time"],
                "current_version": s["current"], "custom_metadata": None,
                "delete_version_after": "0s", "max_versions": 0,
                "oldest_version": s["oldest"],
                "updated_time": s["updated_time"],
                "versions": {str(n): {k: v[k] for k in (
                    "created_time", "deletion_time", "destroyed")}
                    for n, v in s["versions"].items()}}

    def delete_all(self, path):
        with self.mu:
            self.secrets.pop(path, None)

    def list(self, prefix):
        prefix = prefix.strip("/")
        prefix = prefix + "/" if prefix else ""
        keys = set()
        with self.mu:
            for p in self.secrets:
                if p.startswith(prefix):
                    rest = p[len(prefix):]
                    keys.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        return sorted(keys)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "katavm-vault/" + VERSION
    protocol_version = "HTTP/1.1"

    # ---- plumbing

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, code, obj=None):
        body = b"" if obj is None else json.dumps(obj).encode() + b"\n"
        self.send_response(code)
        self.send_header("Cache-Control", "no-store")
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, *msgs):
        self.send_json(code, {"errors": list(msgs)})

    def wrap(self, data):
        return {"request_id": str(uuid.uuid4()), "lease_id": "",
                "renewable": False, "lease_duration": 0, "data": data,
                "wrap_info": None, "warnings": None, "auth": None,
                "mount_type": "kv"}

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            raise ValueError("request body too large")
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("request body must be a JSON object")
        return obj

    def authorized(self):
        tok = self.headers.get("X-Vault-Token")
        if tok is None:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                tok = auth[7:]
        return tok is not None and hmac.compare_digest(
            tok.encode(), self.server.token.encode())

    # ---- routing

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        path = urllib.parse.unquote(url.path)
        method = self.command
        if method == "GET" and query.get("list") == ["true"]:
            method = "LIST"
        try:
            if path == "/v1/sys/health" and method in ("GET", "HEAD"):
                return self.send_json(200, {
                    "initialized": True, "sealed": False, "standby": False,
                    "performance_standby": False,
                    "replication_performance_mode": "disabled",
                    "replication_dr_mode": "disabled",
                    "server_time_utc": int(time.time()),
                    "version": VERSION, "cluster_name": "katavm-sandbox",
                    "cluster_id": self.server.cluster_id})
            if not self.authorized():
                return self.error(403, "permission denied")
            if path == "/v1/auth/token/lookup-self" and method == "GET":
                return self.send_json(200, self.wrap({
                    "id": self.server.token, "policies": ["root"],
                    "display_name": "root", "ttl": 0, "renewable": False,
                    "type": "service", "orphan": True}))
            for prefix, fn in (("/v1/secret/data/", self.kv_data),
                               ("/v1/secret/metadata/", self.kv_metadata)):
                if path.startswith(prefix) or path + "/" == prefix:
                    return fn(method, path[len(prefix):].strip("/"), query)
            return self.error(404, "no handler for route \"%s\"" % path)
        except (ValueError, json.JSONDecodeError) as e:
            return self.error(400, "error parsing request: %s" % e)

    def kv_data(self, method, key, query):
        if not key and method != "LIST":
            return self.error(404, "missing secret path")
        if method in ("POST", "PUT"):
            body = self.body()
            data = body.get("data")
            if not isinstance(data, dict):
                return self.error(400, "no data provided")
            cas = (body.get("options") or {}).get("cas")
            meta, err = self.server.store.put(key, data, cas)
            if err:
                return self.error(400, err)
            return self.send_json(200, self.wrap(meta))
        if method == "GET":
            version = query.get("version", ["0"])[0]
            if not version.isdigit():
                return self.error(400, "invalid version %r" % version)
            got = self.server.store.get(key, int(version))
            if got is None:
                return self.error(404)
            return self.send_json(200, self.wrap(got))
        if method == "DELETE":
            self.server.store.delete_latest(key)
            return self.send_json(204)
        return self.error(405, "unsupported operation")

    def kv_metadata(self, method, key, query):
        if method == "LIST":
            keys = self.server.store.list(key)
            if not keys:
                return self.error(404)
            return self.send_json(200, self.wrap({"keys": keys}))
        if method == "GET":
            meta = self.server.store.metadata(key)
            if meta is None:
                return self.error(404)
            return self.send_json(200, self.wrap(meta))
        if method == "DELETE":
            self.server.store.delete_all(key)
            return self.send_json(204)
        return self.error(405, "unsupported operation")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_LIST = dispatch


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def self_test():
    import http.client

    srv = Server(("127.0.0.1", 0), Handler)
    srv.token, srv.verbose, srv.store, srv.cluster_id = "t", False, Store(), "x"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    c = http.client.HTTPConnection("127.0.0.1", srv.server_address[1])
    for method, path, body, tok in (
            ("GET", "/v1/sys/health", None, None),
            ("POST", "/v1/secret/data/a/b", {"data": {"k": "v"}}, "t"),
            ("GET", "/v1/secret/data/a/b", None, "t"),
            ("LIST", "/v1/secret/metadata/a", None, "t"),
            ("GET", "/v1/secret/data/nope", None, "bad"),
            ("POST", "/v1/secret/data/x", b"{", "t"),
            ("BREW", "/", None, "t")):
        h = {"X-Vault-Token": tok} if tok else {}
        if isinstance(body, dict):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        c.getresponse().read()
    srv.shutdown()
    srv.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--token", help="the root token (required to serve)")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8200)
    ap.add_argument("--verbose", action="store_true", help="log requests")
    ap.add_argument("--print-modules", action="store_true",
                    help="print the files of the imported modules and exit")
    a = ap.parse_args(argv)
    if a.print_modules:
        # Serve a few requests first: what is imported lazily while
        # serving (email.*, html, ...) must be listed too.
        self_test()
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if f:
                print(f)
        return 0
    if not a.token:
        ap.error("--token is required")
    srv = Server((a.bind, a.port), Handler)
    srv.token, srv.verbose = a.token, a.verbose
    srv.store, srv.cluster_id = Store(), str(uuid.uuid4())
    print("listening on %s:%d" % (a.bind, a.port), flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
