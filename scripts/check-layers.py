#!/usr/bin/python3
"""Fails when the files of one folder include each other in a loop.

A module is X.c with its header X.h (and X-internal.h); module X depends on module Y of the
same folder when X.c or X.h includes "Y.h". ARCHITECTURE's rule: no two
files of one folder include each other's declarations in a loop. Checked
for the folders that hold layers: agent/, lib/shim/, lib/proto/, lib/vmm/,
lib/. Also checks that the agent never includes host code and that cli/,
bindings/ and examples/ include only the public header."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INC.findall(f.read())


def modules(folder):
    d = os.path.join(ROOT, folder)
    mods = {}
    for name in sorted(os.listdir(d)):
        base, ext = os.path.splitext(name)
        # X-internal.h is X's own second header (declarations X shares
        # with its folder), part of module X.
        base = base[:-len("-internal")] if base.endswith("-internal") else base
        if ext in (".c", ".h"):
            mods.setdefault(base, []).append(os.path.join(d, name))
    return mods


def cycles(folder):
    mods = modules(folder)
    headers = {m for m, files in mods.items() if any(f.endswith(".h") for f in files)}
    deps = {}
    for m, files in mods.items():
        deps[m] = set()
        for f in files:
            for inc in includes(f):
                dep = os.path.splitext(os.path.basename(inc))[0]
                dep = dep[:-len("-internal")] if dep.endswith("-internal") else dep
                if "/" not in inc and dep in headers and dep != m:
                    deps[m].add(dep)
    found = []
    state = {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(deps[m]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m, [])
    return found


def main():
    bad = 0
    for folder in ("agent", "lib/shim", "lib/proto", "lib/vmm", "lib"):
        for c in cycles(folder):
            print("%s: include loop: %s" % (folder, " -> ".join(c)))
            bad += 1
    host = set(os.listdir(os.path.join(ROOT, "lib"))) | set(
        os.listdir(os.path.join(ROOT, "lib/shim"))) | set(os.listdir(os.path.join(ROOT, "lib/vmm")))
    proto = set(os.listdir(os.path.join(ROOT, "lib/proto")))
    for name in sorted(os.listdir(os.path.join(ROOT, "agent"))):
        if name.endswith((".c", ".h")):
            for inc in includes(os.path.join(ROOT, "agent", name)):
                if inc in host and inc not in proto and not os.path.exists(
                        os.path.join(ROOT, "agent", inc)):
                    print("agent/%s includes host code %s" % (name, inc))
                    bad += 1
    for folder in ("cli", "shim-v2", "bindings", "examples"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith((".c", ".h")):
                    p = os.path.join(dirpath, name)
                    for inc in includes(p):
                        local = os.path.exists(os.path.join(dirpath, inc))
                        # shim-v2 may use protobuf-c and the code protoc-c
                        # generates from containerd's .proto files.
                        if folder == "shim-v2" and (inc.endswith(".pb-c.h") or
                                                    inc == "protobuf-c/protobuf-c.h"):
                            continue
                        if not local and inc != "katavm/katavm.h":
                            print("%s includes %s: only the public header is allowed" %
                                  (os.path.relpath(p, ROOT), inc))
                            bad += 1
    if bad:
        sys.exit(1)
    print("layers: no include loops; agent, cli, shim-v2, bindings and examples include what they may")


if __name__ == "__main__":
    main()
