#!/usr/bin/env python3
"""A loopback RFC 7662 introspection endpoint over HTTPS, the peer the packaging checks
probe the packaged exporter against (.ci/checks/image.sh and .ci/checks/deb.sh).

    introspection-peer.py --cert C --key K --secrets DIR --port-file F

DIR holds `client-id`, `client-secret` and `token`. POST /introspect answers 401
invalid_client unless the exporter authenticates with that client (client_secret_basic), then
{"active": true, "exp": now + 30 days, ...} for that token and {"active": false} for any other.
A `valid` verdict therefore proves that the exporter trusted the peer's CA, resolved its host
name and read both of its secret files. Secrets are compared, never printed.
"""

import argparse
import base64
import hmac
import json
import pathlib
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()

    secrets = pathlib.Path(args.secrets)
    client_id = (secrets / "client-id").read_text().strip()
    client_secret = (secrets / "client-secret").read_text().strip()
    token = (secrets / "token").read_text().strip()
    expected_auth = "Basic " + base64.b64encode(
        f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}".encode()
    ).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != "/introspect":
                return self.answer(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            auth = self.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), expected_auth.encode()):
                return self.answer(401, {"error": "invalid_client"})
            presented = form.get("token", [""])[0]
            if not hmac.compare_digest(presented.encode(), token.encode()):
                return self.answer(200, {"active": False})
            now = int(time.time())
            return self.answer(
                200,
                {
                    "active": True,
                    "exp": now + 30 * 86400,
                    "iat": now - 86400,
                    "sub": "packaging-check",
                    "client_id": client_id,
                    "scope": "read",
                    "token_type": "Bearer",
                },
            )

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *fargs):
            # Request line and status only; bodies and headers carry secrets.
            sys.stderr.write("introspection-peer: " + (fmt % fargs) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port_file = pathlib.Path(args.port_file)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.rename(port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
