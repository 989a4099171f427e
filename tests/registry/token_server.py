#!/usr/bin/env python3
"""A token issuer for distribution's `auth.token` mode: signs real RS256 JWTs (x5c header, so the
registry verifies them against its rootcertbundle) and grants only the actions each user has.

Users: alice:alicepw may pull and push everything; bob:bobpw may only pull; anonymous gets nothing.
Both the GET endpoint (Basic auth, one scope= per scope) and the OAuth2 POST (grant_type=password or
refresh_token; refresh token "alice-refresh" stands for alice) are served. GET /_stats counts them.
Usage: token_server.py KEY_PEM CERT_PEM PORT SERVICE ISSUER
"""
import base64
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

KEY, CERT, PORT, SERVICE, ISSUER = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
key = serialization.load_pem_private_key(open(KEY, "rb").read(), password=None)
cert = x509.load_pem_x509_certificate(open(CERT, "rb").read())
x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
USERS = {"alice": ("alicepw", {"pull", "push"}), "bob": ("bobpw", {"pull"})}
REFRESH = {"alice-refresh": "alice"}
stats = {"get": 0, "post": 0, "denied_login": 0}
lock = threading.Lock()


def grant(user, scopes):
    allowed = USERS[user][1] if user else set()
    access = []
    for s in scopes:
        for one in s.split(" "):
            if not one:
                continue
            typ, rest = one.split(":", 1)
            name, actions = rest.rsplit(":", 1)
            got = [a for a in actions.split(",") if a in allowed]
            access.append({"type": typ, "name": name, "actions": got})
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
              "iat": now, "jti": str(uuid.uuid4()), "access": access}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"x5c": x5c})
    return {"token": token, "access_token": token, "expires_in": 300}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + (fmt % args) + "\n")

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/_stats":
            return self.reply(200, stats)
        q = parse_qs(u.query)
        user = None
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            name, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            if USERS.get(name, (None,))[0] != pw:
                with lock:
                    stats["denied_login"] += 1
                return self.reply(401, {"details": "bad credentials"})
            user = name
        with lock:
            stats["get"] += 1
        self.reply(200, grant(user, q.get("scope", [])))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(n).decode())
        f = lambda k: form.get(k, [""])[0]
        if f("grant_type") == "password":
            user = f("username")
            if USERS.get(user, (None,))[0] != f("password"):
                with lock:
                    stats["denied_login"] += 1
                return self.reply(401, {"error": "invalid_grant"})
        elif f("grant_type") == "refresh_token":
            user = REFRESH.get(f("refresh_token"))
            if not user:
                return self.reply(401, {"error": "invalid_grant"})
        else:
            return self.reply(400, {"error": "unsupported_grant_type"})
        with lock:
            stats["post"] += 1
        self.reply(200, grant(user, [f("scope")]))


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
