#!/usr/bin/env bash
# Private registries, kubelet credential providers: a registry with htpasswd Basic auth; snapimport
# gets its credentials only from a kubelet credential provider plugin (credential_provider_plugin.py,
# the real exec protocol), configured with a kubelet CredentialProviderConfig. `snapimport pull`
# passes no credentials.
#
# containerd needs credentials too (manifests, configs, and the layers of a fallback): it gets them
# from a hosts.toml `header` in its own hosts dir, which snapimport does not read (snapimport's
# hosts dir has no header). That stands for kubelet, which would pass the same plugin's
# credentials to containerd in CRI PullImage; here the pull carries none, so whatever snapimport
# imports, it imported with the provider's credentials.
#
#   0. A provider config naming a plugin that is not installed stops start-up, naming the file.
#   1. matchImages: providers whose patterns miss (another port, one label too many, another path)
#      are never run; the one matching with a wildcard, the port and a path prefix is.
#   2. team/app:v1: every layer imported by snapimport (containerd applies none, fetches no layer).
#   3. team/other:v1 right after: the Registry cache key serves it, the plugin is not run again.
#   4. short/...: cacheKeyType Image with no cacheDuration, so defaultCacheDuration (5s) applies:
#      another repository runs the plugin again; after 5s the same repository does too.
#   5. broken/app: the plugin exits 1; slow/app: it hangs past the 2s timeout and is killed with
#      the child it started. Each time snapimport logs a clear line, falls back, and containerd
#      pulls the layer itself: the pull succeeds.
#   6. The password is in no log and nowhere under snapimport's root.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_require python3
si_init_workdir e2e-cred-provider
USER_NAME=puller
PASSWORD="pw-$RANDOM$RANDOM-secret"
HTPASSWD=$SI_WORK/htpasswd
si_step "write a bcrypt htpasswd file" si_imp_htpasswd "$HTPASSWD" "$USER_NAME" "$PASSWORD"
si_step "start a registry with htpasswd Basic auth" si_start_registry "$HTPASSWD"
REG=$SI_REGISTRY
PORT=$SI_REGISTRY_PORT

# --- images: one base, then one more layer per scenario so each pull has work for the importer ---
OCI=$SI_WORK/oci
si_step "build the three-layer test image" si_build_test_image "$OCI" v1
derive() {
  local t
  for t in "$@"; do
    umoci tag --image "$OCI:v1" "$t"
    si_imp_add_layer "$OCI" "$t" "$t"
  done
}
si_step "derive one image per scenario (base + one layer)" derive other short1 short2 short3 broken slow
push_all() {
  local creds=$USER_NAME:$PASSWORD
  si_imp_push_image_creds "$OCI" v1 "$REG/team/app:v1" "$creds"
  si_imp_push_image_creds "$OCI" other "$REG/team/other:v1" "$creds"
  si_imp_push_image_creds "$OCI" short1 "$REG/short/app:v1" "$creds"
  si_imp_push_image_creds "$OCI" short2 "$REG/short/web:v1" "$creds"
  si_imp_push_image_creds "$OCI" short3 "$REG/short/app:v2" "$creds"
  si_imp_push_image_creds "$OCI" broken "$REG/broken/app:v1" "$creds"
  si_imp_push_image_creds "$OCI" slow "$REG/slow/app:v1" "$creds"
}
si_step "push them (with credentials)" push_all
layers_of() { jq -r ".layers[].digest" "$(si_image_manifest "$OCI" "$1")"; }
mapfile -t BASE_LAYERS < <(layers_of v1)
top_layer() { layers_of "$1" | tail -n1; }

# --- hosts: containerd's with an Authorization header, snapimport's without ----------------------
SI_HOSTS_DIR=$SI_WORK/certs.d
mkdir -p "$SI_HOSTS_DIR/$REG" "$SI_WORK/certs-snapimport/$REG"
cat >"$SI_HOSTS_DIR/$REG/hosts.toml" <<EOF
server = "http://$REG"

[host."http://$REG"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
  [host."http://$REG".header]
    Authorization = "Basic $(printf '%s' "$USER_NAME:$PASSWORD" | base64 -w0)"
EOF
cat >"$SI_WORK/certs-snapimport/$REG/hosts.toml" <<EOF
server = "http://$REG"

[host."http://$REG"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
EOF

# --- the providers: one plugin under several names ------------------------------------------------
PROV=$SI_WORK/provider
mkdir -p "$PROV/bin"
CALLS=$PROV/calls.jsonl
: >"$CALLS"
for n in wrong-port wrong-labels wrong-path registry-wide short-lived broken hangs; do
  ln -s "$SI_IMP_DIR/credential_provider_plugin.py" "$PROV/bin/$n"
done
cat >"$PROV/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  # Never run: another port, one label too many, another path.
  - name: wrong-port
    matchImages: ["127.0.0.1:1"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS]
  - name: wrong-labels
    matchImages: ["*.127.0.0.1:$PORT"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS]
  - name: wrong-path
    matchImages: ["127.0.0.1:$PORT/elsewhere"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS]
  # A wildcard label, the port and a path prefix; cached per registry for an hour.
  - name: registry-wide
    matchImages: ["*.0.0.1:$PORT/team/"]
    defaultCacheDuration: 0s
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS, --user, $USER_NAME, --cache-key-type, Registry, --cache-duration, 1h]
    env:
      - name: TEST_PROVIDER_PASSWORD
        value: "$PASSWORD"
  # No cacheDuration in its answers: defaultCacheDuration applies, per image.
  - name: short-lived
    matchImages: ["127.0.0.1:$PORT/short/"]
    defaultCacheDuration: 5s
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS, --user, $USER_NAME, --cache-key-type, Image]
    env:
      - name: TEST_PROVIDER_PASSWORD
        value: "$PASSWORD"
  - name: broken
    matchImages: ["127.0.0.1:$PORT/broken/"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS, --exit, "1"]
  - name: hangs
    matchImages: ["127.0.0.1:$PORT/slow/"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [--log, $CALLS, --sleep, "60", --child-pid, $PROV/hangs-child.pid]
    env:
      - name: TEST_PROVIDER_PASSWORD
        value: "$PASSWORD"
EOF
chmod 0600 "$PROV/config.yaml"

SI_IMP_METRICS_PORT=$(si_free_port)
cat >"$SI_WORK/snapimport.toml" <<TOML
[registry]
hosts_dir = "$SI_WORK/certs-snapimport"
credential_provider_config = "$PROV/config.yaml"
credential_provider_bin_dir = "$PROV/bin"
credential_provider_timeout = "2s"

[metrics]
address = "127.0.0.1:$SI_IMP_METRICS_PORT"
TOML
# A bad provider config stops start-up with the file and the reason (here: a provider whose plugin
# is not in the plugin directory).
bad_start() {
  sed 's/name: hangs$/name: not-installed/' "$PROV/config.yaml" >"$PROV/bad.yaml"
  sed "s#$PROV/config.yaml#$PROV/bad.yaml#" "$SI_WORK/snapimport.toml" >"$SI_WORK/bad.toml"
  local rc=0
  timeout 20 "$SNAPIMPORT_BIN" serve --root "$SI_WORK/bad-root" --address "$SI_WORK/bad.sock" \
    --config "$SI_WORK/bad.toml" >"$SI_WORK/logs/bad-start.log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "snapimport started (exit $rc) with a provider whose plugin is missing"
  local line
  line=$(grep 'level=error' "$SI_WORK/logs/bad-start.log" | head -n1)
  si_log "snapimport refused to start: $line"
  grep -qF "$PROV/bad.yaml" <<<"$line" || fail "the start-up error does not name the provider config"
  grep -qF "plugin $PROV/bin/not-installed does not exist" <<<"$line" || fail "the start-up error does not say why"
}
si_step "a bad provider config stops start-up" bad_start
si_step "start snapimport (credentials from providers only)" \
  si_start_snapimport --config "$SI_WORK/snapimport.toml" --log-level debug
grep -q 'msg="credential providers configured".*providers=wrong-port,wrong-labels,wrong-path,registry-wide,short-lived,broken,hangs' \
  "$SI_SNAPIMPORT_LOG" || fail "snapimport did not log the configured providers"
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK

calls() { # calls NAME: how many times plugin NAME ran
  jq -r --arg n "$1" 'select(.name == $n) | .name' "$CALLS" | wc -l
}
pull() { # pull REF: snapimport pull, no credentials; must succeed
  local ref=$1 out=$SI_WORK/logs/pull-$(tr '/:' '__' <<<"$1").out
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" "$ref" | tee "$out"
  grep -q "^1 pulled, 0 failed" "$out" || fail "snapimport pull $ref did not report success"
}
imported() { si_imp_imported_count; }
applied() { si_imp_applied_count; }
check_counts() { # check_counts WHAT IMPORTED APPLIED
  local i a
  i=$(imported)
  a=$(applied)
  si_log "$1: imported-layer lines=$i, containerd diff applied=$a"
  [ "$i" -eq "$2" ] || fail "$1: snapimport imported $i layers in all, want $2"
  [ "$a" -eq "$3" ] || fail "$1: containerd applied $a layers in all, want $3"
}

# --- 1 and 2: the matching provider's credentials import every layer -------------------------------
si_step "snapimport pull $REG/team/app:v1 (no credentials)" pull "$REG/team/app:v1"
check_counts "team/app:v1" 3 0
for l in "${BASE_LAYERS[@]}"; do
  [ "$(si_imp_blob_gets "$l" snapimport/)" -eq 1 ] || fail "snapimport did not fetch layer $l once"
  [ "$(si_imp_blob_gets "$l" containerd/)" -eq 0 ] || fail "containerd fetched layer $l itself"
done
content=$(si_ctr -n k8s.io content ls -q)
for l in "${BASE_LAYERS[@]}"; do
  if grep -qx "$l" <<<"$content"; then fail "containerd stored layer blob $l"; fi
done
for n in wrong-port wrong-labels wrong-path; do
  [ "$(calls "$n")" -eq 0 ] || fail "provider $n ran although its matchImages do not match"
done
[ "$(calls registry-wide)" -eq 1 ] || fail "registry-wide ran $(calls registry-wide) times, want 1"
req=$(jq -c 'select(.name == "registry-wide") | .request' "$CALLS" | head -n1)
si_log "the plugin was sent: $req"
[ "$(jq -r .apiVersion <<<"$req")" = credentialprovider.kubelet.k8s.io/v1 ] || fail "request apiVersion: $req"
[ "$(jq -r .kind <<<"$req")" = CredentialProviderRequest ] || fail "request kind: $req"
[ "$(jq -r .image <<<"$req")" = "$REG/team/app" ] || fail "request image is not $REG/team/app: $req"
[ "$(jq -r 'select(.name == "registry-wide") | .password_from_env' "$CALLS" | head -n1)" = true ] ||
  fail "the configured env did not reach the plugin"
grep -q 'msg="credential provider answered" provider=registry-wide image='"$REG"'/team/app .*cache_key_type=Registry cache_duration=1h' \
  "$SI_SNAPIMPORT_LOG" || fail "snapimport did not log the provider's answer"
si_log "every layer of team/app:v1 imported with registry-wide's credentials (1 plugin run)"

# --- 3: the Registry cache key serves another repository -------------------------------------------
si_step "snapimport pull $REG/team/other:v1" pull "$REG/team/other:v1"
check_counts "team/other:v1" 4 0
[ "$(calls registry-wide)" -eq 1 ] ||
  fail "registry-wide ran $(calls registry-wide) times after a second repository, want 1 (Registry cache key)"

# --- 4: cacheKeyType Image and defaultCacheDuration ------------------------------------------------
si_step "snapimport pull $REG/short/app:v1" pull "$REG/short/app:v1"
T0=$SECONDS
check_counts "short/app:v1" 5 0
[ "$(calls short-lived)" -eq 1 ] || fail "short-lived ran $(calls short-lived) times, want 1"
si_step "snapimport pull $REG/short/web:v1 (another image, Image cache key)" pull "$REG/short/web:v1"
check_counts "short/web:v1" 6 0
[ "$(calls short-lived)" -eq 2 ] || fail "short-lived ran $(calls short-lived) times, want 2 (Image key)"
[ $((SECONDS - T0)) -lt 5 ] || si_warn "the pulls took $((SECONDS - T0))s; the 5s cache may have expired in between"
sleep $((6 - (SECONDS - T0) > 0 ? 6 - (SECONDS - T0) : 0))
si_step "snapimport pull $REG/short/app:v2 (after defaultCacheDuration 5s)" pull "$REG/short/app:v2"
check_counts "short/app:v2" 7 0
[ "$(calls short-lived)" -eq 3 ] ||
  fail "short-lived ran $(calls short-lived) times, want 3 (the 5s defaultCacheDuration expired)"
si_log "cache keys and durations: registry-wide ran once for two repositories, short-lived three times"

# --- 5: a failing and a hanging plugin: clear log line, fallback, the pull succeeds ----------------
fallbacks_before=$(si_imp_metric snapimport_fallbacks_total 'reason="no_credentials"')
si_step "snapimport pull $REG/broken/app:v1 (the plugin exits 1)" pull "$REG/broken/app:v1"
check_counts "broken/app:v1" 7 1
line=$(grep 'level=warn' "$SI_SNAPIMPORT_LOG" | grep 'msg="credential provider failed; falling back to the next credential source" provider=broken' | head -n1 || true)
[ -n "$line" ] || fail "snapimport logged no failure line for the broken provider"
si_log "snapimport said: $line"
grep -q 'exited with status 1' <<<"$line" || fail "the failure line does not say how it failed"
grep -q 'simulated failure: metadata service unreachable' <<<"$line" || fail "the failure line lacks the plugin's stderr"
top=$(top_layer broken)
[ "$(si_imp_blob_gets "$top" containerd/)" -eq 1 ] || fail "containerd did not fetch the broken image's layer itself"
[ "$(si_imp_blob_gets "$top" snapimport/)" -eq 0 ] || fail "snapimport fetched a layer without credentials"

start=$SECONDS
si_step "snapimport pull $REG/slow/app:v1 (the plugin hangs)" pull "$REG/slow/app:v1"
took=$((SECONDS - start))
check_counts "slow/app:v1" 7 2
[ "$took" -lt 30 ] || fail "the pull took ${took}s: the plugin's 60s hang was not cut short"
line=$(grep 'level=warn' "$SI_SNAPIMPORT_LOG" | grep 'provider=hangs' | head -n1 || true)
[ -n "$line" ] || fail "snapimport logged no failure line for the hanging provider"
si_log "snapimport said: $line"
grep -q 'did not answer within 2s and was killed with its process group' <<<"$line" ||
  fail "the timeout line does not say what happened"
child=$(cat "$PROV/hangs-child.pid")
state=$(awk '{ print $3 }' "/proc/$child/stat" 2>/dev/null || echo gone)
[ "$state" = gone ] || [ "$state" = Z ] || fail "the hanging plugin's child $child survived (state $state)"
[ "$(calls hangs)" -eq 1 ] || fail "the hanging plugin ran $(calls hangs) times, want 1"
top=$(top_layer slow)
[ "$(si_imp_blob_gets "$top" containerd/)" -eq 1 ] || fail "containerd did not fetch the slow image's layer itself"
fallbacks=$(si_imp_metric snapimport_fallbacks_total 'reason="no_credentials"')
[ "$fallbacks" -ge $((fallbacks_before + 2)) ] ||
  fail "fallbacks{no_credentials} went from $fallbacks_before to $fallbacks, want +2"
si_log "failing and hanging plugins: logged, fell back, containerd pulled the layers, both pulls succeeded"

# --- 6: the secret stays in memory ------------------------------------------------------------------
B64=$(printf '%s' "$USER_NAME:$PASSWORD" | base64 -w0)
for f in "$SI_SNAPIMPORT_LOG" "$SI_CONTAINERD_LOG" "$CALLS"; do
  if grep -qF -e "$PASSWORD" -e "$B64" "$f"; then fail "the password appears in $f"; fi
done
if grep -rqaF -e "$PASSWORD" -e "$B64" "$SI_SNAPIMPORT_ROOT"; then
  fail "the password was written under snapimport's root $SI_SNAPIMPORT_ROOT"
fi

# --- the imported image runs -------------------------------------------------------------------------
SCRIPT='echo "MARKER=$(cat /top-marker.txt)"; if [ -e '"$SI_IMG_DELETED"' ]; then echo DELETED=present; else echo DELETED=absent; fi'
run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REG/team/app:v1" cred-provider-1 /bin/sh -c "$SCRIPT" \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || { cat "$SI_WORK/logs/run.err" >&2; return 1; }
}
si_step "ctr run team/app:v1" run
grep -qx "MARKER=$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || fail "top-layer marker missing in the container"
grep -qx "DELETED=absent" "$SI_WORK/logs/run.out" || fail "whiteout-deleted file is visible"
si_print_timings
si_log "PASS: kubelet credential providers: matchImages, cache keys and durations, failure and timeout fallbacks"
