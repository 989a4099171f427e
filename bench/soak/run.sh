#!/usr/bin/env bash
# The long soak: tests/ops/soak.sh for 30 minutes (SOAK_SECONDS to change), its curve kept in
# ${BENCH_WORK:-/var/tmp/snapimport-bench}/results/soak-<time>.tsv. Needs root and a build:
#   bench/soak/run.sh            (SNAPIMPORT_BIN and CRI_CLIENT default to ./build's)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export SNAPIMPORT_BIN=${SNAPIMPORT_BIN:-$REPO/${BUILD_DIR:-build}/cli/snapimport}
export CRI_CLIENT=${CRI_CLIENT:-$REPO/${BUILD_DIR:-build}/tests/integration/cri_client}
export SOAK_SECONDS=${SOAK_SECONDS:-1800}
export SI_CONTAINERD_LOG_LEVEL=${SI_CONTAINERD_LOG_LEVEL:-info}
results=${BENCH_WORK:-/var/tmp/snapimport-bench}/results
mkdir -p "$results"
export SOAK_CURVE=$results/soak-$(date +%Y%m%d-%H%M%S).tsv
"$REPO/tests/ops/soak.sh"
echo "curve: $SOAK_CURVE"
