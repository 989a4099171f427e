#!/usr/bin/env python3
"""A TCP proxy that slows the upstream->client direction to RATE bytes/s per connection, so a
pull lasts long enough for a test to watch it in flight. Prints its port on stdout.

    throttle_proxy.py UPSTREAM_HOST:PORT RATE_BYTES_PER_SECOND
"""
import socket, sys, threading, time

upstream_host, upstream_port = sys.argv[1].rsplit(":", 1)
rate = int(sys.argv[2])


def pump(src, dst, limit):
    try:
        while True:
            data = src.recv(16384 if limit else 65536)
            if not data:
                break
            dst.sendall(data)
            if limit:
                time.sleep(len(data) / limit)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    try:
        up = socket.create_connection((upstream_host, int(upstream_port)))
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, up, 0), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, rate), daemon=True).start()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    serve(conn)
