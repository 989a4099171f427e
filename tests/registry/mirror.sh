#!/usr/bin/env bash
# A distribution pull-through cache (proxy.remoteurl) configured as a mirror in hosts.toml: pulls
# go through it (with ?ns=), and with the mirror stopped they fall back to the origin. Pushes skip
# the mirror (it has no push capability).
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 77
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
si_require docker-registry skopeo umoci jq
si_init_workdir registry-mirror
W=$SI_WORK

step_setup() {
  si_build_test_image "$W/img" t1 >/dev/null
  sir_registry origin ""
  O=$SIR_ADDR
  sir_registry cache "proxy:
  remoteurl: http://$O"
  C=$SIR_ADDR
  mkdir -p "$W/certs.d/$O"
  cat >"$W/certs.d/$O/hosts.toml" <<TOML
server = "http://$O"

[host."http://$C"]
  capabilities = ["pull", "resolve"]
TOML
  sir_copy --hosts-dir "$W/certs.d" "oci:$W/img:t1" "docker://$O/lib/img:t1"
  if grep -q 'PUT\|POST' "$SI_WORK/logs/reg-cache.log"; then si_fail "a push went to the mirror"; fi
}
si_step "origin, pull-through cache and hosts.toml" step_setup

step_pull_via_mirror() {
  sir_copy --hosts-dir "$W/certs.d" "docker://$O/lib/img:t1" "oci:$W/via-mirror:t1"
  grep -q "ns=${O%%:*}%3A${O##*:}" "$SI_WORK/logs/reg-cache.log" || si_fail "the mirror saw no ?ns= requests"
  grep -q 'GET /v2/lib/img/blobs/sha256' "$SI_WORK/logs/reg-cache.log" || si_fail "blobs did not come through the mirror"
  [ "$(sir_manifest_digest "$W/via-mirror" t1)" = "$(sir_manifest_digest "$W/img" t1)" ] || si_fail "digest changed"
}
si_step "pull goes through the mirror" step_pull_via_mirror

step_fallback() {
  si_stop_pid "$SIR_cache_PID" cache
  local before
  before=$(grep -c 'GET /v2/lib/img/manifests' "$SI_WORK/logs/reg-origin.log" || true)
  sir_copy --hosts-dir "$W/certs.d" "docker://$O/lib/img:t1" "oci:$W/fallback:t1"
  [ "$(grep -c 'GET /v2/lib/img/manifests' "$SI_WORK/logs/reg-origin.log")" -gt "$before" ] ||
    si_fail "the origin was not asked after the mirror stopped"
  [ "$(sir_manifest_digest "$W/fallback" t1)" = "$(sir_manifest_digest "$W/img" t1)" ] || si_fail "digest changed"
}
si_step "with the mirror stopped, pulls fall back to the origin" step_fallback
si_print_timings
