#!/bin/sh
# Runs the whole test suite from a clean build: the unit and integration
# tests (real VMs under QEMU's TCG, real podman, docker and containerd)
# built with AddressSanitizer + UBSan, the Python tests on the plain build
# (a plain interpreter cannot load an ASan library), then each fuzz target
# for 60 s on its corpus. This is what CI runs (docs/performance.md "CI
# time" has the measured durations). Extra arguments go to the sanitizer
# build's ctest. KATAVM_CI_SANITIZE=0 runs the whole suite on the plain
# build instead; KATAVM_CI_FUZZ=0 skips the fuzz targets.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
./scripts/deps.sh
./scripts/check-format.sh
/usr/bin/python3 ./scripts/check-layers.py
build=${KATAVM_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKATAVM_WERROR=ON
cmake --build "$build" -j"$(nproc)"

if [ "${KATAVM_CI_SANITIZE:-1}" != 0 ]; then
  (cd "$build" && ctest --output-on-failure --timeout 900 -R '^python/')
  # Every host program of ours (library, shim, CLI, katavm-runtime,
  # containerd-shim-katavm-v2, the tests themselves) under ASan + UBSan,
  # leak checks on at every exit. The guests boot the plain build's image:
  # the guest agent is guest code, and built with ASan it doubles the
  # initrd, which a 128 MiB guest cannot unpack. ASan's quarantine keeps
  # freed memory resident, which the streaming test's peak-memory check
  # would take for a leak.
  asan=${KATAVM_ASAN_BUILD_DIR:-build-asan}
  case $build in
  /*) image=$build/image ;;
  *) image=$src/$build/image ;;
  esac
  cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DKATAVM_WERROR=ON -DKATAVM_ASAN=ON \
    -DKATAVM_BUILD_IMAGE=OFF -DKATAVM_TEST_IMAGE_DIR="$image"
  cmake --build "$asan" -j"$(nproc)"
  (cd "$asan" && ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1 \
    LSAN_OPTIONS=suppressions="$src/tests/lsan.supp" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -E '^python/' "$@")
else
  (cd "$build" && ctest --output-on-failure --timeout 900 "$@")
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
