#!/bin/sh
# One command for a fresh Debian 12 machine: install packages, build,
# install, build the guest image, then run the main job: a sandbox VM is
# created, its guest agent reports the guest's details, and it is destroyed.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKATAVM_TESTS=OFF
cmake --build build -j"$(nproc)"
cmake --install build
ldconfig
katavm image build
katavm check
id=$(katavm sandbox create --cpus 1 --memory 256)
echo "sandbox $id created"
katavm sandbox inspect "$id"
katavm sandbox rm -f "$id"
echo "sandbox $id removed"
