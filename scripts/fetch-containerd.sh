#!/usr/bin/env bash
# Fetches the containerd releases snapimport is tested against besides Debian 12's own 1.6, as
# Debian packages from Debian's archive, and unpacks them (never installs them):
#
#   scripts/fetch-containerd.sh [VERSION...]     VERSION: 1.7 (suite trixie) and/or 2.1 (suite sid);
#                                               default: both
#
# Each release lands in $SNAPIMPORT_CONTAINERD_CACHE/<VERSION>/ (default
# /var/cache/snapimport/containerd), with the binaries in <VERSION>/usr/bin, and the script prints
# "<VERSION> <bin dir> <full version>" per release. The system's containerd 1.6 is left alone.
#
# How: a private apt configuration (its own sources list, lists, cache and an empty dpkg status)
# points the machine's own Debian mirror at the newer suite; `apt-get download` fetches the .deb,
# checked against the suite's signed Release file with Debian's archive keyring as usual, and
# `dpkg -x` unpacks it. Already unpacked releases are reused (a stamp file records the .deb).
# Set SNAPIMPORT_CONTAINERD_PACKAGES to fetch more packages of the same suite into the same tree
# (e.g. golang-github-containerd-containerd-dev, to read a release's source).
set -euo pipefail

cache=${SNAPIMPORT_CONTAINERD_CACHE:-/var/cache/snapimport/containerd}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

fail() { echo "fetch-containerd.sh: $*" >&2; exit 1; }

# suite and the upstream version we test, per release line
suite_of() {
  case "$1" in
    1.7) echo trixie ;;
    2.1) echo sid ;;
    *) fail "unknown containerd release '$1' (known: 1.7, 2.1)" ;;
  esac
}
wanted_of() {
  case "$1" in
    1.7) echo 1.7.24 ;;
    2.1) echo 2.1.9 ;;
  esac
}

# The Debian mirror this machine already uses for bookworm (deb822 or one-line sources).
mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      /^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) { print u; exit } u = ""; s = "" }
      /^URIs:/ { u = $2 }
      /^Suites:/ { $1 = ""; s = $0 " " }
      END { if (u != "" && s ~ /(^| )bookworm( |$)/) print u }' "$f" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i+1) == "bookworm") { print $i; exit } break } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  fail "no Debian bookworm source found in /etc/apt/sources.list{,.d}; cannot tell which mirror to use"
}

fetch_one() {
  local rel=$1 suite want dest apt pkgs
  suite=$(suite_of "$rel")
  want=$(wanted_of "$rel")
  dest=$cache/$rel
  pkgs="containerd ${SNAPIMPORT_CONTAINERD_PACKAGES:-}"
  if [ -f "$dest/.stamp" ] && [ "$(sed -n 1p "$dest/.stamp")" = "$pkgs" ] && [ -x "$dest/usr/bin/containerd" ]; then
    report "$rel" "$dest"
    return
  fi
  command -v apt-get >/dev/null || fail "apt-get not found"
  [ -r "$keyring" ] || fail "$keyring missing (package debian-archive-keyring)"
  apt=$cache/.apt-$suite
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc/preferences.d" "$apt/etc/sources.list.d"
  : >"$apt/status"
  echo "deb [signed-by=$keyring] $(mirror) $suite main" >"$apt/etc/sources.list"
  local -a opts=(
    -o "Dir::Etc::SourceList=$apt/etc/sources.list"
    -o "Dir::Etc::SourceParts=$apt/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$apt/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::State::status=$apt/status"
    -o "Dir::Cache=$apt"
    -o "Dir::Cache::archives=$apt/archives"
    -o "APT::Get::List-Cleanup=false"
    -o "Acquire::Languages=none"
    -o "APT::Architecture=amd64"
    -o "APT::Sandbox::User=root"
  )
  echo "fetch-containerd.sh: containerd $rel from suite $suite" >&2
  apt-get -qq "${opts[@]}" update >&2 || fail "apt-get update of suite $suite failed"
  local p ver
  ver=$(apt-cache "${opts[@]}" show containerd 2>/dev/null | awk '/^Version:/ { print $2; exit }')
  [ -n "$ver" ] || fail "suite $suite has no package containerd"
  case "$ver" in
    "$want"*) ;;
    *) echo "fetch-containerd.sh: note: suite $suite has containerd $ver, not $want; using $ver" >&2 ;;
  esac
  rm -rf "$dest.new"
  mkdir -p "$dest.new"
  (
    cd "$apt/archives"
    rm -f ./*.deb
    # shellcheck disable=SC2086 # a word list on purpose
    apt-get -qq "${opts[@]}" download $pkgs >&2
  ) || fail "apt-get download $pkgs from $suite failed"
  for p in "$apt"/archives/*.deb; do
    dpkg -x "$p" "$dest.new" || fail "dpkg -x $p failed"
  done
  [ -x "$dest.new/usr/bin/containerd" ] || fail "containerd $ver from $suite has no usr/bin/containerd"
  { echo "$pkgs"; echo "$ver"; } >"$dest.new/.stamp"
  rm -rf "$dest"
  mv "$dest.new" "$dest"
  report "$rel" "$dest"
}

report() {
  local rel=$1 dest=$2 v
  v=$("$dest/usr/bin/containerd" --version 2>/dev/null | awk '{ print $3 }')
  [ -n "$v" ] || fail "$dest/usr/bin/containerd does not run on this machine"
  echo "$rel $dest/usr/bin $v"
}

[ "$#" -gt 0 ] || set -- 1.7 2.1
for r in "$@"; do fetch_one "$r"; done
