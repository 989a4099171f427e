#!/usr/bin/env bash
# The .deb: CPack builds it from the build tree; it is unpacked with dpkg-deb -x into a folder and
# the binary runs from there: --version, `config default` equals the packaged conffile, the
# containerd snippets equal `config containerd --version V`, and
# `serve` (with the packaged config, root and sockets moved into the folder) reports READY=1 to a
# NOTIFY_SOCKET only once its sockets answer. lintian runs when installed (errors fail the test,
# warnings are printed); `systemd-analyze verify` checks the unit and the containerd drop-in.
#
#   SNAPIMPORT_BUILD_DIR=build SNAPIMPORT_SOURCE_DIR=. tests/ops/deb.sh
set -euo pipefail
BUILD=${SNAPIMPORT_BUILD_DIR:?SNAPIMPORT_BUILD_DIR is not set}
for tool in cpack dpkg-deb python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
work=$(mktemp -d /tmp/snapimport-ops-deb.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- build ----------------------------------------------------------------------------------------
(cd "$BUILD" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/out/snapimport_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb -I "$deb" | sed -n '/Package:/,$p'

# --- contents -------------------------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$work/contents"
for f in /usr/bin/snapimport /lib/systemd/system/snapimport.service \
  /lib/systemd/system/containerd.service.d/10-snapimport.conf /etc/snapimport/config.toml \
  /usr/share/snapimport/containerd/config-1.6.toml /usr/share/snapimport/containerd/config-1.7.toml \
  /usr/share/snapimport/containerd/config-2.x.toml /usr/share/doc/snapimport/copyright \
  /usr/share/doc/snapimport/changelog.Debian.gz /usr/share/man/man1/snapimport.1.gz; do
  grep -qx "$f" "$work/contents" || fail "the package lacks $f"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/snapimport/config.toml || fail "config.toml is not a conffile"
grep -q '^/usr/share/doc/snapimport/operations.md$' "$work/contents" || echo "note: docs/operations.md not packaged"

# --- unpack and run from the folder ---------------------------------------------------------------
root=$work/root
dpkg-deb -x "$deb" "$root"
bin=$root/usr/bin/snapimport
"$bin" --version
"$bin" config default | diff -u "$root/etc/snapimport/config.toml" - >&2 ||
  fail "the packaged config differs from the packaged binary's 'config default'"
for release in 1.6 1.7 2.x; do
  "$bin" config containerd --version "$release" |
    diff -u "$root/usr/share/snapimport/containerd/config-$release.toml" - >&2 ||
    fail "the packaged config-$release.toml differs from 'config containerd --version $release'"
done
file "$bin" 2>/dev/null | grep -q 'not stripped' && fail "the packaged binary is not stripped"

# The packaged config, with its paths moved into the work dir (as an operator would edit it).
sed -e "s|^root = .*|root = \"$work/state\"|" -e "0,/^address = /s|^address = .*|address = \"$work/run/snapimport.sock\"|" \
  "$root/etc/snapimport/config.toml" >"$work/config.toml"
# A NOTIFY_SOCKET like systemd's: when READY=1 arrives, both sockets must already answer.
cat >"$work/notify.py" <<'PY'
import os, socket, sys
path, grpc_sock, admin_sock, out = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
msgs = []
while True:
    msg = s.recv(4096).decode()
    msgs.append(msg)
    if "READY=1" in msg.split("\n"):
        break
ok = []
for p in (grpc_sock, admin_sock):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(p)
        ok.append(p)
    except OSError as e:
        print("not listening at READY: %s: %s" % (p, e), file=sys.stderr)
    c.close()
open(out, "w").write("\n".join(msgs))
sys.exit(0 if len(ok) == 2 else 1)
PY
python3 "$work/notify.py" "$work/notify.sock" "$work/run/snapimport.sock" "$work/run/snapimport-admin.sock" \
  "$work/notify.out" &
notifier=$!
for _ in $(seq 50); do [ -S "$work/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$work/notify.sock "$bin" serve --config "$work/config.toml" >"$work/serve.log" 2>&1 &
pid=$!
wait "$notifier" || { cat "$work/serve.log" >&2; fail "READY=1 came before the sockets listened (or never)"; }
grep -q '^STATUS=serving on ' "$work/notify.out" || fail "no STATUS= in the notification: $(cat "$work/notify.out")"
echo "ok: READY=1 sent once both sockets listen ($(tr '\n' ' ' <"$work/notify.out"))"
"$bin" status --config "$work/config.toml" | grep -q "No imports in flight" || fail "status from the packaged binary failed"
kill "$pid"
wait "$pid" || fail "serve did not exit cleanly on SIGTERM: $(tail -5 "$work/serve.log")"
pid=
echo "ok: the unpacked binary serves with the packaged config and stops on SIGTERM"

# --- systemd-analyze verify -----------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart= to exist, so point it at the unpacked binary; containerd.service is
  # a stand-in so the drop-in is checked as part of a unit.
  units=$work/units
  mkdir -p "$units/containerd.service.d"
  sed "s|/usr/bin/snapimport|$bin|" "$root/lib/systemd/system/snapimport.service" >"$units/snapimport.service"
  printf '[Unit]\nDescription=containerd stand-in\n[Service]\nExecStart=/bin/true\n' >"$units/containerd.service"
  cp "$root/lib/systemd/system/containerd.service.d/10-snapimport.conf" "$units/containerd.service.d/"
  out=$(systemd-analyze verify "$units/snapimport.service" "$units/containerd.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify printed warnings: $out"
  grep -qx 'Type=notify' "$units/snapimport.service" || fail "the unit is not Type=notify"
  echo "ok: systemd-analyze verify passes on snapimport.service and the containerd drop-in"
else
  echo "skip: systemd-analyze is not installed"
fi

# --- lintian --------------------------------------------------------------------------------------
if command -v lintian >/dev/null; then
  lintian --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>&1 || true
  grep -v 'running with root privileges' "$work/lintian.out" | sed 's/^/lintian: /' || true
  if grep -q '^E: ' "$work/lintian.out"; then fail "lintian reports errors"; fi
  echo "ok: lintian reports no errors ($(grep -c '^W: ' "$work/lintian.out" || true) warnings)"
else
  echo "skip: lintian is not installed"
fi
echo "PASS: .deb builds, unpacks and runs; unit verified"
