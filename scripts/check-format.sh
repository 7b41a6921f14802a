#!/bin/sh
# Fails when a tracked C file differs from what clang-format makes of it
# with the root .clang-format (Debian 12's clang-format 14). Fix with
#   git ls-files '*.c' '*.h' | xargs clang-format -i
set -eu
cd "$(dirname "$0")/.."
git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run --Werror
echo "format: every C file matches .clang-format"
