#!/usr/bin/env python3
"""A kubelet credential provider plugin for tests/integration/e2e_credential_provider.sh.

Speaks the real exec protocol (credentialprovider.kubelet.k8s.io/v1): reads a
CredentialProviderRequest on stdin, answers a CredentialProviderResponse on stdout. It is
installed under several names (symlinks in the plugin directory); its name is its argv[0].

  --log FILE              append one JSON line per call: name, pid, the request, and whether
                          TEST_PROVIDER_PASSWORD came through the configured env (never its value)
  --user NAME             username of the credential; the password is $TEST_PROVIDER_PASSWORD
  --auth-key KEY          the auth key of the answer (default: the registry of the image)
  --cache-key-type T      Image, Registry or Global (default Image)
  --cache-duration D      cacheDuration (default: none, so defaultCacheDuration applies)
  --exit N                fail: a message on stderr, exit status N
  --sleep S --child-pid F hang: start a child (its pid into F) and sleep S seconds
"""
import argparse
import json
import os
import subprocess
import sys
import time

API = "credentialprovider.kubelet.k8s.io/v1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--user", default="")
    ap.add_argument("--auth-key")
    ap.add_argument("--cache-key-type", default="Image")
    ap.add_argument("--cache-duration")
    ap.add_argument("--exit", type=int)
    ap.add_argument("--sleep", type=float)
    ap.add_argument("--child-pid")
    args = ap.parse_args()
    name = os.path.basename(sys.argv[0])

    raw = sys.stdin.read()
    try:
        req = json.loads(raw)
    except ValueError:
        sys.stderr.write("%s: the request on stdin is not JSON: %r\n" % (name, raw[:200]))
        return 2
    password = os.environ.get("TEST_PROVIDER_PASSWORD", "")
    with open(args.log, "a") as log:
        log.write(json.dumps({"name": name, "pid": os.getpid(), "request": req,
                              "password_from_env": bool(password)}) + "\n")
    if req.get("apiVersion") != API or req.get("kind") != "CredentialProviderRequest" \
            or not isinstance(req.get("image"), str):
        sys.stderr.write("%s: not a %s CredentialProviderRequest\n" % (name, API))
        return 2

    if args.exit is not None:
        sys.stderr.write("%s: simulated failure: metadata service unreachable\n" % name)
        return args.exit
    if args.sleep is not None:
        child = subprocess.Popen(["sleep", str(int(args.sleep) * 10)])
        if args.child_pid:
            with open(args.child_pid, "w") as f:
                f.write("%d\n" % child.pid)
        sys.stderr.write("%s: waiting for a metadata service that never answers\n" % name)
        sys.stderr.flush()
        time.sleep(args.sleep)

    image = req["image"]
    resp = {
        "apiVersion": API,
        "kind": "CredentialProviderResponse",
        "cacheKeyType": args.cache_key_type,
        "auth": {
            args.auth_key or image.split("/", 1)[0]: {"username": args.user, "password": password},
        },
    }
    if args.cache_duration is not None:
        resp["cacheDuration"] = args.cache_duration
    sys.stdout.write(json.dumps(resp) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
