"""A test upstream that reads paths the way common backend frameworks do.

For every request it answers JSON with: its own name (one server per gateway route, so the
test learns which route the gateway applied), the target it received, and the path that
target resolves to under three backend models:
  python:  urllib.parse.unquote + posixpath.normpath, leading slashes merged (Flask/Django-like)
  servlet: ';' parameters cut from each segment first, then the same (Tomcat, Spring)
  lower:   the python model, lower-cased (backends that route case-insensitively)
plus the query and the headers as received.

Usage: python3 normalizing_upstream.py NAME [NAME...]; prints "NAME PORT" per server on
stdout, then "ready". Binds 127.0.0.1 only; exits when stdin closes.
"""

import http.server
import json
import posixpath
import sys
import threading
import urllib.parse


def python_model(raw_path):
    p = urllib.parse.unquote(raw_path, errors="surrogateescape")
    p = posixpath.normpath(p)
    while p.startswith("//"):
        p = p[1:]
    return p


def servlet_model(raw_path):
    segs = [s.split(";", 1)[0] for s in raw_path.split("/")]
    return python_model("/".join(segs))


def make_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = self.path
            raw_path, _, query = target.partition("?")
            py = python_model(raw_path)
            out = {
                "name": name,
                "method": self.command,
                "target": target,
                "query": query,
                "resolved": {"python": py, "servlet": servlet_model(raw_path), "lower": py.lower()},
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_bytes": len(body),
            }
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = answer

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main():
    servers = []
    for name in sys.argv[1:]:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(name))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        print(name, srv.server_address[1], flush=True)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
