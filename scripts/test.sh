#!/bin/sh
# Runs the whole test suite from a clean build: unit tests and integration
# tests that boot real VMs under QEMU (TCG).
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/check-format.sh
/usr/bin/python3 ./scripts/check-layers.py
build=${KATAVM_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKATAVM_WERROR=ON
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
