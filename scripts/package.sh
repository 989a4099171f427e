#!/usr/bin/env bash
# Builds snapimport (Release) and its .deb with CPack; prints the path of the package.
#   scripts/package.sh            -> ${BUILD_DIR:-build-release}/snapimport_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target snapimport snapimport_changelog
(cd "$build_dir" && cpack -G DEB >/dev/null)
ls -1 "$build_dir"/snapimport_*.deb
