#!/bin/sh
# One command for a fresh Debian 12 machine: install packages, build,
# install, build the guest image, then run the main job: a sandbox VM with a
# container from a busybox rootfs, a command exec'd in it, the guest's
# details, and the sandbox removed again.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKATAVM_TESTS=OFF
cmake --build build -j"$(nproc)"
cmake --install build
ldconfig
katavm image build
katavm check
rootfs=/var/lib/katavm/demo-rootfs
rm -rf "$rootfs"
./tests/rootfs/mkrootfs.sh --writable "$rootfs"
id=$(katavm sandbox create --cpus 1 --memory 256 --max-cpus 2 --max-memory 512)
trap 'katavm sandbox rm -f "$id"' EXIT
echo "sandbox $id created"
katavm container add "$id" demo "$rootfs" -- sleep 1000000
katavm container start "$id" demo
katavm exec "$id/demo" -- sh -c 'echo "hello from container $(hostname), guest kernel $(uname -r)"; ps -o pid,comm'
katavm sandbox inspect "$id"
