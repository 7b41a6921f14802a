#!/bin/sh
# Runs the whole test suite from a clean build: unit tests and integration
# tests that boot real VMs under QEMU (TCG); then the unit tests and a
# subset of the integration tests under AddressSanitizer + UBSan, and each
# fuzz target for 60 s on its corpus (what CI runs: docs/performance.md
# "CI time" has the measured durations). Extra arguments go to the first
# ctest. KATAVM_CI_SANITIZE=0 / KATAVM_CI_FUZZ=0 skip the later stages.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
./scripts/deps.sh
./scripts/check-format.sh
/usr/bin/python3 ./scripts/check-layers.py
build=${KATAVM_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKATAVM_WERROR=ON
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure --timeout 900 "$@")

if [ "${KATAVM_CI_SANITIZE:-1}" != 0 ]; then
  # The whole suite under ASan takes about twice as long as without: the
  # unit tests plus the integration tests that drive the most host code per
  # minute (protocol, shim, hostile clients, QEMU confinement). The Python
  # test cannot load an ASan library into a plain interpreter. ASan's
  # quarantine keeps freed memory resident, which the streaming test's
  # peak-memory check would take for a leak.
  asan=${KATAVM_ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DKATAVM_WERROR=ON -DKATAVM_ASAN=ON
  cmake --build "$asan" -j"$(nproc)"
  (cd "$asan" && ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 \
    -R '^unit/|integration/test_(sandbox|untrusted|jail)$')
fi

if [ "${KATAVM_CI_FUZZ:-1}" != 0 ]; then
  fuzz=${KATAVM_FUZZ_BUILD_DIR:-build-fuzz}
  cmake -S . -B "$fuzz" -DCMAKE_C_COMPILER=clang -DKATAVM_FUZZ=ON -DKATAVM_BUILD_IMAGE=OFF \
    -DKATAVM_TESTS=OFF
  cmake --build "$fuzz" -j"$(nproc)"
  # Every fuzz target, 60 s each, on a copy of its corpus (new inputs stay
  # out of the source tree).
  # fuzz_NAME takes tests/fuzz/corpus-NAME when there is one (the
  # protocol's fuzz_decoder: corpus/ and proto.dict).
  for t in "$fuzz"/tests/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=${t##*/fuzz_}
    corpus=$src/tests/fuzz/corpus-$name
    dict=""
    if [ ! -d "$corpus" ]; then
      corpus=$src/tests/fuzz/corpus
      dict=-dict=$src/tests/fuzz/proto.dict
    fi
    work=$(mktemp -d)
    cp -r "$corpus/." "$work/"
    # shellcheck disable=SC2086
    "$t" -max_total_time=60 $dict "$work"
    rm -rf "$work"
  done
fi
