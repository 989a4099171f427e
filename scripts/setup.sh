#!/usr/bin/env bash
# Installs every Debian 12 package snapimport needs to build, test and run its demo.
# Idempotent: packages already present are left alone, and apt-get update runs only when
# something is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git clang-format
  # libraries (see README "Dependencies")
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libcurl4-openssl-dev libssl-dev libarchive-dev libisal-dev libzstd-dev libsystemd-dev
  libyaml-cpp-dev
  prometheus-cpp-dev
  libgtest-dev libgmock-dev
  # conformance harness (containerd's own Go test suites, GOPATH mode)
  golang-go golang-github-containerd-containerd-dev
  # real parts for integration tests and the demo
  containerd runc docker-registry skopeo umoci busybox-static
  # packaging checks (.deb contents, lintian, systemd-analyze verify)
  dpkg-dev lintian systemd
  # helpers used by tests
  attr curl jq python3 procps psmisc util-linux e2fsprogs openssl
  # registry client tests: htpasswd (bcrypt) for Basic auth, PyJWT for the token issuer
  apache2-utils python3-jwt
  # unpack benchmark baseline (igzip CLI)
  isal
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: must run as root to install packages (try: sudo $0)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Keep the packaged services from starting system-wide copies; tests run their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
fi
echo "setup.sh: all ${#packages[@]} packages present" >&2

# containerd 1.7 and 2.1 for the integration tests, as Debian packages unpacked into a cache
# (never installed: the system's 1.6 stays). Reused when already there.
"$(dirname "$0")/fetch-containerd.sh" >/dev/null
echo "setup.sh: containerd 1.7 and 2.1 unpacked under ${SNAPIMPORT_CONTAINERD_CACHE:-/var/cache/snapimport/containerd}" >&2
