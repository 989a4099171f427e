#!/usr/bin/env bash
# The config as an operator meets it, through the real binary: every bad config stops
# `snapimport serve` with exit 2 and a message naming the file (and line), the key and the reason;
# `config default` is the packaged file and parses back; `config check` agrees with serve.
#
#   SNAPIMPORT_BIN=build/cli/snapimport SNAPIMPORT_SOURCE_DIR=. tests/ops/config_errors.sh
set -euo pipefail
BIN=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN is not set}
SRC=${SNAPIMPORT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d /tmp/snapimport-ops-config.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_error NAME FILE EXPECTED_SUBSTRING...: serve must exit 2 before listening, printing all
# of the substrings; `config check` must fail the same way. (serve logs logfmt, which escapes the
# quotes around the key, so the key is matched on its own.)
expect_error() {
  local name=$1 file=$2
  shift 2
  local out rc=0
  out=$(timeout 10 "$BIN" serve --config "$file" --root "$work/root" --address "$work/s.sock" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fail "$name: serve exit status $rc, want 2; output: $out"
  [ ! -e "$work/s.sock" ] || fail "$name: serve created its socket despite the bad config"
  local want
  for want in "$@"; do
    grep -qF -- "$want" <<<"$out" || fail "$name: serve output lacks '$want': $out"
  done
  rc=0
  out=$("$BIN" config check "$file" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fail "$name: config check exit status $rc, want 2"
  for want in "$@"; do
    grep -qF -- "$want" <<<"$out" || fail "$name: config check output lacks '$want': $out"
  done
  echo "ok: $name -> $(head -n1 <<<"$out")"
}

# --- unknown key ----------------------------------------------------------------------------------
printf 'root = "/var/lib/x"\n\n[import]\nenabled = true\nmax_jobs = 4\n' >"$work/unknown.toml"
expect_error "unknown key" "$work/unknown.toml" "$work/unknown.toml:5" "unknown key" "import.max_jobs"
printf '[metrix]\naddress = ":9651"\n' >"$work/unknown-section.toml"
expect_error "unknown section" "$work/unknown-section.toml" "$work/unknown-section.toml:1" "unknown key" "metrix"

# --- wrong type -----------------------------------------------------------------------------------
printf '[import]\nmax_concurrent_layers = "eight"\n' >"$work/type.toml"
expect_error "wrong type" "$work/type.toml" "$work/type.toml:2" "key" "import.max_concurrent_layers" \
  "must be an integer, not a string"
printf '[timeouts]\nconnect = 30\n' >"$work/type2.toml"
expect_error "duration given as a number" "$work/type2.toml" "$work/type2.toml:2" "key" "timeouts.connect" \
  "must be a duration string"

# --- bad values -----------------------------------------------------------------------------------
printf '[log]\nlevel = "verbose"\n' >"$work/value.toml"
expect_error "bad value" "$work/value.toml" "$work/value.toml:2" "key" "log.level" \
  'must be one of debug, info, warn, error'
printf '[metrics]\naddress = "127.0.0.1:70000"\n' >"$work/port.toml"
expect_error "bad port" "$work/port.toml" "$work/port.toml:2" "key" "metrics.address" "must be 1 to 65535"
printf 'root = \n' >"$work/syntax.toml"
expect_error "syntax error" "$work/syntax.toml" "$work/syntax.toml:1"

# --- unreadable files -----------------------------------------------------------------------------
expect_error "missing file" "$work/nope.toml" "cannot open config file $work/nope.toml" "No such file or directory"
mkdir "$work/dir.toml"
expect_error "a directory" "$work/dir.toml" "cannot read config file $work/dir.toml" "Is a directory"
cp "$SRC/packaging/config.toml" "$work/secret.toml"
chmod 000 "$work/secret.toml"
if [ "$(id -u)" -eq 0 ]; then
  # root reads anything: drop to nobody for this case (the work dir must let nobody in).
  chmod 0755 "$work"
  if command -v setpriv >/dev/null; then
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" serve --config "$work/secret.toml" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 2 ] || fail "unreadable file: exit status $rc, want 2: $out"
    grep -qF "cannot open config file $work/secret.toml: Permission denied" <<<"$out" ||
      fail "unreadable file: output lacks the file and reason: $out"
    echo "ok: unreadable file -> $out"
  else
    echo "skip: unreadable file as root needs setpriv"
  fi
else
  expect_error "unreadable file" "$work/secret.toml" "cannot open config file $work/secret.toml" "Permission denied"
fi

# --- flags are checked too ------------------------------------------------------------------------
out=$("$BIN" serve --root "$work/root" --address "$work/s.sock" --log-level loud 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 2 ] && grep -qF 'invalid command-line flag' <<<"$out" && grep -qF "log.level" <<<"$out" ||
  fail "bad --log-level: exit $rc: $out"

# --- the default file -----------------------------------------------------------------------------
"$BIN" config default >"$work/default.toml"
diff -u "$SRC/packaging/config.toml" "$work/default.toml" >&2 ||
  fail "packaging/config.toml differs from 'snapimport config default' (regenerate it: snapimport config default > packaging/config.toml)"
"$BIN" config check "$work/default.toml" >/dev/null || fail "config check rejects the default file"
keys=$(grep -cE '^[a-z_]+ = ' "$work/default.toml")
[ "$keys" -ge 20 ] || fail "default file has only $keys keys"
echo "ok: config default matches packaging/config.toml ($keys keys) and passes config check"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "PASS: config errors name file, key and reason; default config is the packaged one"
