#!/usr/bin/env python3
"""A small registry that serves one image from an OCI layout and misbehaves on purpose.

The repository name picks the fault (everything else is a plain, correct registry):
  drop/*        closes the connection half-way through every blob the first time (Range resumes)
  busy/*        answers 503 to the first two requests of every path, then serves
  ratelimit/*   answers 429 with Retry-After: 1 to the first request of every path
  baddigest/*   serves blobs with one byte flipped
  bigmanifest/* serves a manifest larger than 4 MiB
  badjson/*     serves a manifest that is not JSON
  schema1/*     serves a schema1 manifest
  redirect/*    redirects blob GETs to another origin (http://localhost:<redirect port>), which
                records whether an Authorization header arrived
  trickle/*     sends blob bytes one every 2 seconds, forever
  badlayer/*    serves the image's last layer with one byte in its middle flipped
  slowlast/*    serves the image's last layer 64 KiB every quarter second
  auth/*        like plain, but requires Basic auth (user:pass) - used with redirect checks
  range416/*    accepts pushes (POST, chunked PATCH, PUT ?digest=, manifest PUT); the second PATCH
                of every upload keeps only the first half of its chunk and answers 416 with
                Range: 0-<last byte it has>; GET on the session answers 204 + Location + Range.
                A PATCH whose Content-Range doesn't start where the session is also gets 416.
                The closing PUT checks the digest of what was assembled. Pushed blobs and
                manifests are served back on GET.
Any repository: tags/list returns tags t0..t6 in pages of 3 with a relative Link: rel="next".
GET /_stats returns counters as JSON (requests, ranges, auth_leaks, redirected, patches,
injected_416, unexpected_416, session_gets, uploads_ok, uploads_bad, manifests_pushed).
Usage: fault_registry.py OCI_DIR TAG PORT REDIRECT_PORT
"""
import base64
import hashlib
import json
import os
import sys
import threading
import time
from urllib.parse import unquote
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI, TAG, PORT, RPORT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stats = {"requests": 0, "ranges": 0, "auth_leaks": 0, "redirected": 0, "auth_seen": 0,
         "patches": 0, "injected_416": 0, "unexpected_416": 0, "session_gets": 0,
         "uploads_ok": 0, "uploads_bad": 0, "manifests_pushed": 0}
seen = {}
sessions = {}   # upload uuid -> {"data": bytearray, "patches": int, "state": int}
pushed = {}     # digest -> bytes (blobs and manifests pushed to range416/*)
pushed_tags = {}  # "repo:tag" -> (digest, mediaType)
lock = threading.Lock()


def blob(digest):
    if digest in pushed:
        return pushed[digest]
    alg, hexd = digest.split(":", 1)
    with open(os.path.join(OCI, "blobs", alg, hexd), "rb") as f:
        return f.read()


def last_layer():
    digest, _ = top_manifest()
    return json.loads(blob(digest))["layers"][-1]["digest"]


def top_manifest():
    idx = json.load(open(os.path.join(OCI, "index.json")))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == TAG:
            return m["digest"], m["mediaType"]
    raise SystemExit("tag not found")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fault-registry: " + (fmt % args) + "\n")

    def count(self, key):
        with lock:
            seen[key] = seen.get(key, 0) + 1
            return seen[key]

    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        with lock:
            stats["requests"] += 1
        if self.server.server_port == RPORT:
            return self.storage()
        if self.path == "/_stats":
            return self.send(200, json.dumps(stats).encode())
        if self.path in ("/v2/", "/v2"):
            return self.send(200, b"{}")
        parts = self.path.split("?")[0].split("/")
        # /v2/<fault>/<name>/(manifests|blobs)/<ref>
        if len(parts) < 6 or parts[1] != "v2":
            return self.send(404)
        fault, kind, ref = parts[2], parts[-2], parts[-1]
        if kind == "tags" and ref == "list":
            return self.tags("/".join(parts[2:-2]))
        if fault in ("auth", "redirect"):
            want = "Basic " + base64.b64encode(b"user:pass").decode()
            if self.headers.get("Authorization") != want:
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                 {"WWW-Authenticate": 'Basic realm="fault"', "Content-Type": "application/json"})
            with lock:
                stats["auth_seen"] += 1
        n = self.count(self.command + self.path)
        if fault == "busy" and n <= 2:
            return self.send(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')
        if fault == "ratelimit" and n <= 1:
            return self.send(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', {"Retry-After": "1"})
        if kind == "manifests":
            return self.manifest(fault, ref)
        if kind == "blobs":
            return self.blob(fault, ref, n)
        return self.send(404)

    def tags(self, name):
        q = dict(p.split("=", 1) for p in (self.path.split("?", 1) + [""])[1].split("&") if "=" in p)
        all_tags = ["t%d" % i for i in range(7)]
        start = all_tags.index(q["last"]) + 1 if "last" in q else 0
        page = all_tags[start:start + 3]
        headers = {"Content-Type": "application/json"}
        if start + 3 < len(all_tags):
            headers["Link"] = '</v2/%s/tags/list?last=%s&n=3>; rel="next"' % (name, page[-1])
        return self.send(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def manifest(self, fault, ref):
        if fault == "range416":
            repo = "/".join(self.path.split("?")[0].split("/")[2:-2])
            key = ref if ref.startswith("sha256:") else pushed_tags.get(repo + ":" + ref, (None,))[0]
            if key not in pushed:
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')
            body = pushed[key]
            mt = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
            return self.send(200, body, {"Content-Type": mt, "Docker-Content-Digest": key})
        digest, mt = top_manifest()
        if fault == "bigmanifest":
            body = json.dumps({"schemaVersion": 2, "mediaType": mt, "pad": "x" * (5 << 20)}).encode()
        elif fault == "badjson":
            body = b'{"schemaVersion": 2, "mediaType": "' + mt.encode() + b'", "config": {'
        elif fault == "schema1":
            body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "t", "fsLayers": []}).encode()
            mt = "application/vnd.docker.distribution.manifest.v1+prettyjws"
        else:
            if ref.startswith("sha256:"):
                digest = ref
            body = blob(digest)
        return self.send(200, body, {"Content-Type": mt,
                                     "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()})

    def blob(self, fault, digest, n):
        if fault == "range416" and digest not in pushed:
            return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}')
        data = blob(digest)
        if fault == "redirect" and self.command == "GET":
            with lock:
                stats["redirected"] += 1
            return self.send(307, b"", {"Location": "http://localhost:%d/storage/%s?sig=secret" % (RPORT, digest)})
        if fault == "baddigest":
            data = bytes([data[0] ^ 0xff]) + data[1:]
        last = fault in ("badlayer", "slowlast") and digest == last_layer()
        if fault == "badlayer" and last:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xff]) + data[mid + 1:]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            with lock:
                stats["ranges"] += 1
            start = int(rng[6:].split("-")[0])
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "trickle":
            for b in body:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(2)
            return
        if fault == "slowlast" and last:
            for i in range(0, len(body), 64 << 10):
                self.wfile.write(body[i:i + (64 << 10)])
                self.wfile.flush()
                time.sleep(0.25)
            return
        if fault == "drop" and n == 1 and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def storage(self):
        if self.headers.get("Authorization"):
            with lock:
                stats["auth_leaks"] += 1
        digest = self.path.split("?")[0].split("/")[-1]
        return self.send(200, blob(digest), {"Content-Type": "application/octet-stream"})


class PushHandler(Handler):
    """range416/*: the upload protocol of distribution (handlers/blobupload.go), one fault."""

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def session_headers(self, uid, sess):
        sess["state"] += 1
        h = {"Location": "/v2/%s/blobs/uploads/%s?_state=s%d" % (sess["repo"], uid, sess["state"]),
             "Docker-Upload-UUID": uid}
        h["Range"] = "0-%d" % (len(sess["data"]) - 1) if sess["data"] else "0-0"
        return h

    def parse(self):
        path, _, query = self.path.partition("?")
        q = {k: unquote(v) for k, v in (p.split("=", 1) for p in query.split("&") if "=" in p)}
        parts = path.split("/")
        return path, q, parts

    def not_push(self):
        self.send(405, b'{"errors":[{"code":"UNSUPPORTED","message":"push only on range416/*"}]}')

    def do_POST(self):
        path, q, parts = self.parse()
        data = self.body()
        if len(parts) < 6 or parts[2] != "range416" or not path.endswith("/blobs/uploads/"):
            return self.not_push()
        repo = "/".join(parts[2:-3])
        if "digest" in q:  # monolithic
            if "sha256:" + hashlib.sha256(data).hexdigest() != q["digest"]:
                with lock:
                    stats["uploads_bad"] += 1
                return self.send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"bad digest"}]}')
            with lock:
                pushed[q["digest"]] = data
                stats["uploads_ok"] += 1
            return self.send(201, b"", {"Location": "/v2/%s/blobs/%s" % (repo, q["digest"]),
                                        "Docker-Content-Digest": q["digest"]})
        uid = "u%d" % len(sessions)
        with lock:
            sessions[uid] = {"data": bytearray(), "patches": 0, "state": 0, "repo": repo}
        return self.send(202, b"", self.session_headers(uid, sessions[uid]))

    def session(self):
        path, q, parts = self.parse()
        uid = parts[-1]
        if uid not in sessions:
            self.body()
            self.send(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"unknown"}]}')
            return None, None, q
        return uid, sessions[uid], q

    def do_PATCH(self):
        uid, sess, _ = self.session()
        if sess is None:
            return
        data = self.body()
        with lock:
            stats["patches"] += 1
            sess["patches"] += 1
        cr = self.headers.get("Content-Range", "")
        start = int(cr.split("-")[0]) if cr else len(sess["data"])
        if start != len(sess["data"]):
            with lock:
                stats["unexpected_416"] += 1
            return self.send(416, b'{"errors":[{"code":"RANGE_INVALID","message":"out of order"}]}',
                             self.session_headers(uid, sess))
        if sess["patches"] == 2 and len(data) > 1:
            # Keep half of the chunk (as if the rest was lost) and say what we have.
            sess["data"] += data[: len(data) // 2]
            with lock:
                stats["injected_416"] += 1
            return self.send(416, b'{"errors":[{"code":"RANGE_INVALID","message":"injected"}]}',
                             self.session_headers(uid, sess))
        sess["data"] += data
        return self.send(202, b"", self.session_headers(uid, sess))

    def do_GET(self):
        if "/blobs/uploads/" in self.path:
            uid, sess, _ = self.session()
            if sess is None:
                return
            with lock:
                stats["session_gets"] += 1
            return self.send(204, b"", self.session_headers(uid, sess))
        return Handler.do_GET(self)

    def do_PUT(self):
        path, q, parts = self.parse()
        if len(parts) >= 6 and parts[2] == "range416" and parts[-2] == "manifests":
            data = self.body()
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            with lock:
                pushed[d] = data
                pushed_tags["/".join(parts[2:-2]) + ":" + parts[-1]] = (d, self.headers.get("Content-Type"))
                stats["manifests_pushed"] += 1
            return self.send(201, b"", {"Location": "/v2/%s/manifests/%s" % ("/".join(parts[2:-2]), d),
                                        "Docker-Content-Digest": d})
        if "/blobs/uploads/" not in path:
            self.body()
            return self.not_push()
        uid, sess, q = self.session()
        if sess is None:
            return
        sess["data"] += self.body()
        d = "sha256:" + hashlib.sha256(bytes(sess["data"])).hexdigest()
        if d != q.get("digest"):
            with lock:
                stats["uploads_bad"] += 1
            return self.send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"assembled %s"}]}' % d.encode())
        with lock:
            pushed[d] = bytes(sess["data"])
            stats["uploads_ok"] += 1
            del sessions[uid]
        return self.send(201, b"", {"Location": "/v2/%s/blobs/%s" % (sess["repo"], d), "Docker-Content-Digest": d})


def serve(port):
    ThreadingHTTPServer(("127.0.0.1", port), PushHandler).serve_forever()


threading.Thread(target=serve, args=(RPORT,), daemon=True).start()
serve(PORT)
