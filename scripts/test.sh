#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test
# (unit, containerd conformance, integration) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build_dir=${BUILD_DIR:-build}
cd "$build_dir"
ctest --output-on-failure --timeout 1500 "$@"
