"""A stand-in for the Hugging Face Hub's file endpoints, as hf-hub (and huggingface_hub) use
them, for crates/led-merging-cli/tests/hub_download.rs. Python's standard library only.

    python3 hub_server.py MANIFEST.json PORT_FILE LOG_FILE

MANIFEST: {"repos": {"org/name": {"refs": {"main": COMMIT, ...},
                                  "commits": {COMMIT: DIRECTORY, ...},
                                  "token": null or "TOKEN"}},
           "stall": PATH}
The server binds a free port on 127.0.0.1, writes it to PORT_FILE, and appends one line per
request ("GET /path range") to LOG_FILE. It answers:

- GET /api/models/ORG/NAME/revision/REV: {"id", "sha", "siblings": [{"rfilename"}]}, every file
  under the commit's directory (subfolders too, as the Hub lists them).
- GET /ORG/NAME/resolve/REV/FILE: for weights (.safetensors, .bin), as the Hub answers LFS files:
  302 to an absolute CDN address with X-Repo-Commit, X-Linked-Etag (the sha256) and
  X-Linked-Size; for other files 200/206 with X-Repo-Commit and ETag (git's blob sha1).
- GET /cdn/SHA256: the bytes, honouring Range. While the file at "stall" exists, a download
  from offset 0 that asks for more than one byte sends half the file and then hangs (a download
  to kill).

A repository with a token answers 401 without "Authorization: Bearer TOKEN"; an unknown repo
401 (as the Hub answers anonymous requests for repos it does not show); an unknown revision or
file 404.
"""

import hashlib
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST = json.load(open(sys.argv[1]))
PORT_FILE, LOG_FILE = sys.argv[2], sys.argv[3]
WEIGHTS = (".safetensors", ".bin")
BLOBS = {}  # sha256 -> path


def files_of(directory):
    out = []
    for root, _, names in os.walk(directory):
        for name in names:
            out.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(out)


def sha256(path):
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    BLOBS[digest] = path
    return digest


def git_sha1(path):
    data = open(path, "rb").read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def repo_and_commit(self, repo, rev):
        entry = MANIFEST["repos"].get(repo)
        if entry is None:
            self.answer(401, b'{"error": "Repository not found"}')
            return None
        token = entry.get("token")
        if token and self.headers.get("Authorization") != "Bearer " + token:
            self.answer(401, b'{"error": "Access to this repository is restricted"}')
            return None
        commit = entry["refs"].get(rev, rev if rev in entry["commits"] else None)
        if commit is None:
            self.answer(404, b'{"error": "Invalid rev id"}')
            return None
        return entry["commits"][commit], commit

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        with open(LOG_FILE, "a") as log:
            log.write("GET %s %s\n" % (path, self.headers.get("Range", "-")))
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
            found = self.repo_and_commit(parts[2] + "/" + parts[3], parts[5])
            if found:
                directory, commit = found
                body = json.dumps({
                    "id": parts[2] + "/" + parts[3],
                    "sha": commit,
                    "siblings": [{"rfilename": f} for f in files_of(directory)],
                }).encode()
                self.answer(200, body, [("Content-Type", "application/json")])
        elif len(parts) >= 5 and parts[2] == "resolve":
            found = self.repo_and_commit(parts[0] + "/" + parts[1], parts[3])
            if found:
                directory, commit = found
                name = "/".join(parts[4:])
                file = os.path.join(directory, name)
                if not os.path.isfile(file):
                    self.answer(404, b'{"error": "Entry not found"}')
                elif name.endswith(WEIGHTS):
                    digest = sha256(file)
                    host = "http://127.0.0.1:%d" % self.server.server_address[1]
                    self.answer(302, b"", [
                        ("Location", "%s/cdn/%s" % (host, digest)),
                        ("X-Repo-Commit", commit),
                        ("X-Linked-Etag", '"%s"' % digest),
                        ("X-Linked-Size", str(os.path.getsize(file))),
                        ("ETag", '"%s"' % git_sha1(file)),
                    ])
                else:
                    self.send_file(file, [("X-Repo-Commit", commit),
                                          ("ETag", '"%s"' % git_sha1(file))])
        elif len(parts) == 2 and parts[0] == "cdn" and parts[1] in BLOBS:
            self.send_file(BLOBS[parts[1]], [], stall=os.path.exists(MANIFEST["stall"]))
        else:
            self.answer(404, b"not found")

    def send_file(self, file, headers, stall=False):
        data = open(file, "rb").read()
        start, end, status = 0, len(data) - 1, 200
        asked = self.headers.get("Range")
        if asked and asked.startswith("bytes="):
            first, _, last = asked[len("bytes="):].partition("-")
            start = int(first)
            end = min(int(last), len(data) - 1) if last else len(data) - 1
            status = 206
            if start >= len(data):
                self.answer(416, b"", [("Content-Range", "bytes */%d" % len(data))])
                return
            headers = headers + [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))]
        body = data[start:end + 1]
        if stall and start == 0 and len(body) > 1:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(120)
            return
        self.answer(status, body, headers)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that hangs up (a killed download) is part of the tests, not an error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Hub)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
