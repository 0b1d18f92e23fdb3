#!/usr/bin/env python3
"""Self-test of tests/interop/verify_log.py, the anchor log verifier (docs/batch-signing.md section 11).

    python selftest_log.py            # exit 0 on success, 1 on failure

The logs checked here are built by this file, with its own reference code: a
naive recursive RFC 6962 MTH (memoized over ranges), the RFC 9162 PATH and
SUBPROOF recursions, tiles and entry bundles laid out from the tlog-tiles
text, checkpoints and signed notes written out as text and signed with fresh
Ed25519 and ML-DSA-65 keys. Nothing on the building side calls verify_log.

a) known answers: the golang.org/x/mod/sumdb/note example key and note, the
   Certificate Transparency tree, inclusion and consistency vectors, tile path
   encoding;
b) logs of sizes 0..70 (a checkpoint for every size): every checkpoint verifies,
   the tiles give the reference root, every inclusion proof (index, size) and
   every consistency proof m <= n built from tiles equals the reference and
   verifies; flipped proof hashes, wrong index, size or root fail;
c) larger logs (300 with every size, 1000 and 70000 entries with chosen sizes),
   served from a local http.server: the same checks (sampled for 70000), tile
   levels 0-2, the fetch discipline (only the partial tiles the size implies),
   entry bundles (also gzip-encoded), fallback to a full tile;
d) signed-note and checkpoint tampering, verifier keys, tlog-proof parsing;
e) the CLI (in process and as a subprocess): exit codes 0 / 1 / 2; tampered
   tiles and bundles on the server;
f) end to end: batches signed by selftest_batch's reference signer, verified by
   verify_batch.py --tbs-out, logged here; their TBS lines prove inclusion.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import verify_log as vl  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa  # noqa: E402

RNG = random.Random(0x5EED_106)
LOG_PATH = "/.well-known/http-batch-sig/v1/log"

# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------

COUNTS = {"check": [0, 0], "valid": [0, 0], "tamper": [0, 0]}  # kind -> [passed, failed]
FAILURES: list[str] = []


def expect(cond: bool, what: str, detail: str = "", kind: str = "check", quiet: bool = False) -> bool:
    COUNTS[kind][0 if cond else 1] += 1
    if cond:
        if not quiet:
            print(f"  pass  {what}")
    else:
        FAILURES.append(what)
        print(f"  FAIL  {what}")
        if detail:
            print("".join(f"        {line}\n" for line in str(detail).splitlines()), end="")
    return cond


def fails(fn, exc=vl.VerifyError):
    """(True, message) if fn raises exc, else (False, repr of the result)."""
    try:
        r = fn()
    except exc as e:
        return True, str(e)
    return False, f"accepted: {r!r}"


def must_fail(what, fn, contains: str = "", quiet=False, exc=vl.VerifyError) -> bool:
    ok, msg = fails(fn, exc)
    if ok and contains and contains not in msg:
        ok, msg = False, f"rejected, but for another reason: {msg}"
    return expect(ok, f"tamper: {what} -> rejected" + (f" ({msg})" if ok and not quiet else ""), msg,
                  kind="tamper", quiet=quiet)


def must_pass(what, fn, quiet=False):
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001
        return expect(False, f"valid: {what}", f"{type(e).__name__}: {e}", kind="valid")
    return expect(True, f"valid: {what}", kind="valid", quiet=quiet) and r


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------
# Reference log (building side), from the spec text
# --------------------------------------------------------------------------


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class RefLog:
    """Entries, the RFC 6962 tree over them, proofs, tiles and bundles."""

    def __init__(self, entries: list[bytes]):
        self.entries = entries
        self.leaves = [H(b"\x00" + e) for e in entries]
        self._memo: dict = {}

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]), naive recursion (RFC 6962 section 2.1), memoized."""
        key = (start, end)
        if key in self._memo:
            return self._memo[key]
        n = end - start
        if n == 0:
            r = H(b"")
        elif n == 1:
            r = self.leaves[start]
        else:
            k = split_point(n)
            r = H(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))
        self._memo[key] = r
        return r

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def path(self, m: int, n: int) -> list[bytes]:
        """RFC 6962 PATH(m, D[0:n])."""

        def rec(m, start, end):
            if end - start == 1:
                return []
            k = split_point(end - start)
            if m < k:
                return rec(m, start, start + k) + [self.mth(start + k, end)]
            return rec(m - k, start + k, end) + [self.mth(start, start + k)]

        return rec(m, 0, n)

    def consistency(self, m: int, n: int) -> list[bytes]:
        """RFC 6962 PROOF(m, D[0:n]); [] for m == 0 or m == n."""
        if m == 0 or m == n:
            return []

        def sub(m, start, end, b):
            n_ = end - start
            if m == n_:
                return [] if b else [self.mth(start, end)]
            k = split_point(n_)
            if m <= k:
                return sub(m, start, start + k, b) + [self.mth(start + k, end)]
            return sub(m - k, start + k, end, False) + [self.mth(start, start + k)]

        return sub(m, 0, n, True)

    def tiles(self, sizes) -> dict:
        """{path: bytes} of every full tile and bundle of the largest size, and the
        partial ones every size in `sizes` implies (tlog-tiles)."""
        out: dict = {}
        top = len(self.entries)
        level = 0
        while 256 ** (level + 1) <= top:
            span = 256 ** level
            for t in range(top // 256 ** (level + 1)):
                out[ref_tile_path(level, t)] = b"".join(
                    self.mth((t * 256 + i) * span, (t * 256 + i + 1) * span) for i in range(256))
                if level == 0:
                    out[ref_bundle_path(t)] = b"".join(
                        len(e).to_bytes(2, "big") + e for e in self.entries[t * 256:(t + 1) * 256])
            level += 1
        for s in sizes:
            assert s <= top
            for level in range(0, 8):
                span = 256 ** level
                w = (s // span) % 256
                if w == 0:
                    continue
                t = s // (span * 256)
                out[ref_tile_path(level, t, w)] = b"".join(
                    self.mth((t * 256 + i) * span, (t * 256 + i + 1) * span) for i in range(w))
                if level == 0:
                    out[ref_bundle_path(t, w)] = b"".join(
                        len(e).to_bytes(2, "big") + e for e in self.entries[t * 256:t * 256 + w])
        return out


def ref_index(n: int) -> str:
    groups = []
    while True:
        groups.append("%03d" % (n % 1000))
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])


def ref_tile_path(level: int, t: int, w: int = 256) -> str:
    return f"tile/{level}/{ref_index(t)}" + ("" if w == 256 else f".p/{w}")


def ref_bundle_path(t: int, w: int = 256) -> str:
    return f"tile/entries/{ref_index(t)}" + ("" if w == 256 else f".p/{w}")


def allowed_fetch(path: str, n: int) -> bool:
    """Whether a verifier of a checkpoint of size n may fetch path (tlog-tiles)."""
    parts = path.split("/")
    if parts[0] != "tile" or len(parts) < 3:
        return False
    level = 0 if parts[1] == "entries" else int(parts[1])
    rest = parts[2:]
    width = 256
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width = int(rest[-1])
        rest = rest[:-2] + [rest[-2][:-2]]
    t = int("".join(g.lstrip("x") for g in rest))
    full = n // 256 ** (level + 1)
    if width == 256:
        return t < full
    return t == full and width == (n // 256 ** level) % 256


class Signer:
    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        if kind == "ed25519":
            self.sk = ed25519.Ed25519PrivateKey.generate()
            self.type = b"\x01"
        else:
            self.sk = mldsa.MLDSA65PrivateKey.from_seed_bytes(os.urandom(32))
            self.type = b"\xff" + b"ml-dsa-65"
        self.pub = self.sk.public_key().public_bytes_raw()
        self.kid = H(name.encode() + b"\n" + self.type + self.pub)[:4]
        self.vkey = f"{name}+{self.kid.hex()}+{b64(self.type + self.pub)}"

    def line(self, text: str, name: str | None = None, kid: bytes | None = None) -> str:
        sig = self.sk.sign(text.encode())
        return f"\u2014 {name or self.name} {b64((kid or self.kid) + sig)}\n"


def cp_body(origin: str, size, root: bytes) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n"


def make_note(body: str, signers) -> str:
    return body + "\n" + "".join(s.line(body) for s in signers)


def make_proof(index: int, path, note: str, extra: bytes | None = None) -> str:
    head = "c2sp.org/tlog-proof@v1\n" + (f"extra {b64(extra)}\n" if extra is not None else "")
    return head + f"index {index}\n" + "".join(b64(p) + "\n" for p in path) + "\n" + note


def flip(data: bytes, i: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[i % len(b)] ^= mask
    return bytes(b)


# --------------------------------------------------------------------------
# HTTP server for the tiles
# --------------------------------------------------------------------------


class LogServer:
    def __init__(self):
        self.routes: dict = {}  # path -> (status, body, headers)
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                status, body, headers = outer.routes.get(self.path, (404, b"not found\n", {}))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def prefix(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}{LOG_PATH}"

    def publish(self, name: str, files: dict, gzip_entries: bool = False):
        for path, body in files.items():
            headers = {"Content-Type": "application/octet-stream"}
            if gzip_entries and path.startswith("tile/entries/"):
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
            self.routes[f"/{name}{LOG_PATH}/{path}"] = (200, body, headers)

    def set(self, name: str, path: str, body=None, status=200):
        key = f"/{name}{LOG_PATH}/{path}"
        if body is None and status == 404:
            self.routes.pop(key, None)
        else:
            self.routes[key] = (status, body, {"Content-Type": "application/octet-stream"})

    def get(self, name: str, path: str):
        return self.routes.get(f"/{name}{LOG_PATH}/{path}")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# a) known answers
# --------------------------------------------------------------------------

CT_DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# (m, n, proof) from the Certificate Transparency reference tests.
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# golang.org/x/mod/sumdb/note documentation example.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
                     "dngotpRZb6KE6RyyBwJnAM=\n")


def test_known_answers():
    print("a) known answers")
    k = vl.parse_vkey(GO_VKEY)
    name, kid, ktype, pub = k
    expect(name == "PeterNeumann" and kid == 0xC74F20A3 and ktype == b"\x01" and len(pub) == 32,
           "Go sumdb/note example vkey parses (name, key id c74f20a3 recomputed, type 0x01, 32-byte key)")
    note = vl.parse_note(GO_NOTE)
    expect(note.text == GO_TEXT and len(note.signatures) == 1 and note.signatures[0].key_id == kid
           and vl._verify_sig(k, note.signatures[0].sig, GO_TEXT.encode()),
           "Go sumdb/note example note: text split at the blank line, Ed25519 signature verifies")
    expect(not vl._verify_sig(k, note.signatures[0].sig, GO_TEXT.encode() + b"x"),
           "Go example signature does not verify over other text")
    must_fail("Go example note given to verify_note (its text is not a checkpoint)",
              lambda: vl.verify_note(GO_NOTE, [GO_VKEY]), "checkpoint")

    ref = RefLog([bytes.fromhex(d) for d in CT_DATA])
    expect(all(ref.root(n).hex() == CT_ROOTS[n - 1] == vl.merkle_root(ref.leaves[:n]).hex() for n in range(1, 9))
           and vl.merkle_root([]) == H(b"") == ref.root(0),
           "CT reference roots 1..8 (reference MTH and verify_log.merkle_root); empty tree = SHA-256('')")
    ok = True
    for i, n, p in CT_INCLUSION:
        path = [bytes.fromhex(x) for x in p]
        ok &= ref.path(i, n) == path and vl.verify_inclusion(ref.leaves[i], i, n, path, bytes.fromhex(CT_ROOTS[n - 1]))
    expect(ok, "CT reference inclusion proofs (0/8, 5/8, 2/3, 1/5): reference PATH and verify_inclusion")
    ok = True
    for m, n, p in CT_CONSISTENCY:
        proof = [bytes.fromhex(x) for x in p]
        ok &= ref.consistency(m, n) == proof
        ok &= vl.verify_consistency(m, n, proof, bytes.fromhex(CT_ROOTS[m - 1]), bytes.fromhex(CT_ROOTS[n - 1]))
    expect(ok, "CT reference consistency proofs (1->1, 1->8, 6->8, 2->5): reference SUBPROOF and verify_consistency")

    cases = {0: "000", 7: "007", 999: "999", 1000: "x001/000", 1234067: "x001/x234/067",
             10 ** 9: "x001/x000/x000/000"}
    expect(all(vl.encode_tile_index(n) == want == ref_index(n) for n, want in cases.items()),
           "tile index encoding (0 -> 000, 1000 -> x001/000, 1234067 -> x001/x234/067)")
    expect(vl.tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8" and vl.tile_path(2, 0) == "tile/2/000"
           and vl.entries_path(3, 255) == "tile/entries/003.p/255" and vl.entries_path(1) == "tile/entries/001",
           "tile and entry bundle paths, full and partial")
    # tlog-tiles example: 70,000 leaves = 273 full level-0 tiles + one of width 112, one full level-1 tile
    # + one of width 17, one level-2 tile of width 1; 256 leaves: one full level-0 tile, a level-1 of width 1.
    expect(vl.tile_width(0, 272, 70000) == 256 and vl.tile_width(0, 273, 70000) == 112
           and vl.tile_width(1, 0, 70000) == 256 and vl.tile_width(1, 1, 70000) == 17
           and vl.tile_width(2, 0, 70000) == 1 and vl.tile_width(0, 0, 256) == 256 and vl.tile_width(1, 0, 256) == 1
           and fails(lambda: vl.tile_width(0, 1, 256))[0] and fails(lambda: vl.tile_width(2, 0, 65535))[0]
           and fails(lambda: vl.tile_width(0, 0, 0))[0],
           "tile widths of the tlog-tiles examples (70000 and 256 leaves); tiles that do not exist rejected")


# --------------------------------------------------------------------------
# b, c) logs, proofs, tiles
# --------------------------------------------------------------------------


class Env:
    def __init__(self):
        self.origin = "quantumvault.invalid/anchor/0123456789abcdef"
        self.ed = Signer(self.origin, "ed25519")
        self.ml = Signer(self.origin, "mldsa")
        self.keys = [self.ed.vkey, self.ml.vkey]
        self.other = Signer(self.origin, "ed25519")  # same name, another key
        self.server = LogServer()
        self.tmp = tempfile.mkdtemp(prefix="qv-selftest-log-")
        self.notes: dict = {}

    def note(self, log_name: str, ref: RefLog, n: int) -> str:
        key = (log_name, n)
        if key not in self.notes:
            self.notes[key] = make_note(cp_body(self.origin, n, ref.root(n)), [self.ed, self.ml])
        return self.notes[key]

    def write(self, text, name=None) -> str:
        fd, path = tempfile.mkstemp(dir=self.tmp, suffix=name or ".txt")
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path


def random_entries(n: int, lo: int = 0, hi: int = 200) -> list[bytes]:
    return [RNG.randbytes(RNG.randint(lo, hi)) for _ in range(n)]


def check_log(env: Env, log_name: str, ref: RefLog, sizes, *, all_pairs: bool, samples: int = 0,
              tamper: bool = False):
    """Inclusion and consistency proofs from tiles for the given checkpoint sizes."""
    prefix = env.server.prefix(log_name)
    stats = {"incl": 0, "cons": 0, "tamper": 0, "fetches": 0}
    bad: list[str] = []
    bad_fetch: list[str] = []
    tamper_bad: list[str] = []

    def tamper_fail(what, fn):
        ok, msg = fails(fn)
        COUNTS["tamper"][0 if ok else 1] += 1
        stats["tamper"] += 1
        if not ok:
            tamper_bad.append(f"{what}: {msg}")

    roots = {n: ref.root(n) for n in range(0, max(sizes) + 1)} if all_pairs else {n: ref.root(n) for n in sizes}
    for n in sizes:
        note = env.note(log_name, ref, n)
        try:
            cp = vl.verify_note(note, env.keys)
            if (cp.origin, cp.size, cp.root) != (env.origin, n, roots[n]) or tuple(cp) != (env.origin, n, roots[n]):
                bad.append(f"checkpoint {n}: parsed {cp}")
        except vl.VerifyError as e:
            bad.append(f"checkpoint {n}: {e}")
        reader = vl.TileReader(prefix)
        try:
            got = vl.root_from_tiles(reader, n)
            if got != roots[n]:
                bad.append(f"root from tiles of size {n}")
        except vl.VerifyError as e:
            bad.append(f"root from tiles of size {n}: {e}")
        if all_pairs or n <= samples:
            idx = range(n)
            ms = range(n + 1)
        else:
            idx = sorted(set(RNG.randrange(n) for _ in range(samples)) | {0, n - 1})
            ms = sorted(set(RNG.randrange(n + 1) for _ in range(samples)) | {0, 1, n - 1, n} | {s for s in sizes
                                                                                                 if s <= n})
        for i in idx:
            stats["incl"] += 1
            try:
                path = vl.inclusion_proof_from_tiles(reader, i, n)
                if path != ref.path(i, n):
                    bad.append(f"inclusion path {i}/{n} differs from the reference")
                    continue
                vl.verify_inclusion(ref.leaves[i], i, n, path, roots[n])
            except vl.VerifyError as e:
                bad.append(f"inclusion {i}/{n}: {e}")
                continue
            if tamper:
                leaf = ref.leaves[i]
                for j in range(len(path)):
                    p2 = list(path)
                    p2[j] = flip(p2[j], j * 7 + i)
                    tamper_fail(f"inclusion {i}/{n} hash {j} flipped",
                                lambda: vl.verify_inclusion(leaf, i, n, p2, roots[n]))
                for i2 in {i - 1, i + 1, i ^ 1, n, n + 5} - {i}:
                    if i2 >= 0:
                        tamper_fail(f"inclusion {i}/{n} at index {i2}",
                                    lambda: vl.verify_inclusion(leaf, i2, n, path, roots[n]))
                for n2 in {n - 1, n + 1, 2 * n} - {n}:
                    if i < n2 and n2 in roots:
                        tamper_fail(f"inclusion {i}/{n} in size {n2} (with its root)",
                                    lambda: vl.verify_inclusion(leaf, i, n2, path, roots[n2]))
                if n > 1:
                    tamper_fail(f"inclusion {i}/{n} against the root of size {n - 1}",
                                lambda: vl.verify_inclusion(leaf, i, n, path, roots[n - 1]))
                tamper_fail(f"inclusion {i}/{n}: another leaf",
                            lambda: vl.verify_inclusion(flip(leaf, 3), i, n, path, roots[n]))
                tamper_fail(f"inclusion {i}/{n}: path extended",
                            lambda: vl.verify_inclusion(leaf, i, n, path + [leaf], roots[n]))
                if path:
                    tamper_fail(f"inclusion {i}/{n}: path truncated",
                                lambda: vl.verify_inclusion(leaf, i, n, path[:-1], roots[n]))
        for m in ms:
            stats["cons"] += 1
            try:
                proof = vl.consistency_proof_from_tiles(reader, m, n)
                if proof != ref.consistency(m, n):
                    bad.append(f"consistency proof {m}->{n} differs from the reference")
                    continue
                vl.verify_consistency(m, n, proof, ref.root(m), roots[n])
            except vl.VerifyError as e:
                bad.append(f"consistency {m}->{n}: {e}")
                continue
            if tamper:
                om = ref.root(m)
                for j in range(len(proof)):
                    p2 = list(proof)
                    p2[j] = flip(p2[j], j * 5 + m)
                    tamper_fail(f"consistency {m}->{n} hash {j} flipped",
                                lambda: vl.verify_consistency(m, n, p2, om, roots[n]))
                if m != n:
                    tamper_fail(f"consistency {m}->{n} roots swapped",
                                lambda: vl.verify_consistency(m, n, proof, roots[n], om))
                    tamper_fail(f"consistency {m}->{n} reversed sizes",
                                lambda: vl.verify_consistency(n, m, proof, roots[n], om))
                    tamper_fail(f"consistency {m}->{n} old root flipped",
                                lambda: vl.verify_consistency(m, n, proof, flip(om, 9), roots[n]))
                    if m > 0:  # (from the empty tree, any new root is consistent)
                        tamper_fail(f"consistency {m}->{n} new root flipped",
                                    lambda: vl.verify_consistency(m, n, proof, om, flip(roots[n], 9)))
                    tamper_fail(f"consistency {m}->{n} proof extended",
                                lambda: vl.verify_consistency(m, n, proof + [om], om, roots[n]))
                    if proof:
                        tamper_fail(f"consistency {m}->{n} proof truncated",
                                    lambda: vl.verify_consistency(m, n, proof[:-1], om, roots[n]))
                        tamper_fail(f"consistency {m}->{n} first hash dropped",
                                    lambda: vl.verify_consistency(m, n, proof[1:], om, roots[n]))
                for m2 in {m - 1, m + 1} - {m}:
                    if 0 <= m2 <= n and ref.consistency(m2, n) != proof:
                        tamper_fail(f"consistency {m}->{n}'s proof for {m2}->{n}",
                                    lambda: vl.verify_consistency(m2, n, proof, ref.root(m2), roots[n]))
                for n2 in {n - 1, n + 1} - {n}:
                    if m <= n2 and n2 in roots and ref.consistency(m, n2) != proof:
                        tamper_fail(f"consistency {m}->{n}'s proof for {m}->{n2}",
                                    lambda: vl.verify_consistency(m, n2, proof, om, roots[n2]))
                if m == n and n > 0:
                    tamper_fail(f"consistency {m}->{n}: equal sizes, different roots",
                                lambda: vl.verify_consistency(m, n, [], flip(om, 0), roots[n]))
                    tamper_fail(f"consistency {m}->{n}: equal sizes, non-empty proof",
                                lambda: vl.verify_consistency(m, n, [om], om, roots[n]))
                if m == 0 and n > 0:
                    tamper_fail(f"consistency 0->{n}: non-empty proof",
                                lambda: vl.verify_consistency(0, n, [roots[n]], om, roots[n]))
                    tamper_fail(f"consistency 0->{n}: old root not the empty tree's",
                                lambda: vl.verify_consistency(0, n, [], roots[n], roots[n]))
        stats["fetches"] += len(reader.fetched)
        dup = len(reader.fetched) != len(set(reader.fetched))
        wrong = [p for p in reader.fetched if not allowed_fetch(p, n)]
        if wrong or dup:
            bad_fetch.append(f"size {n}: " + (f"fetched {wrong[:4]} not implied by the size" if wrong else "")
                             + (" a path fetched twice" if dup else ""))
    COUNTS["valid"][0] += stats["incl"] + stats["cons"] - len(bad)
    COUNTS["valid"][1] += len(bad)
    expect(not bad, f"{log_name}: sizes {min(sizes)}..{max(sizes)} ({len(sizes)} checkpoints): "
                    f"{stats['incl']} inclusion and {stats['cons']} consistency proofs from tiles equal the "
                    f"reference and verify; roots from tiles = reference MTH", "\n".join(bad[:10]))
    expect(not bad_fetch, f"{log_name}: {stats['fetches']} tile fetches, each a full tile or the partial tile "
                          f"of the width the checkpoint size implies, none twice", "\n".join(bad_fetch[:10]))
    if tamper:
        expect(not tamper_bad, f"{log_name}: {stats['tamper']} tampered proofs (each hash flipped, wrong index, "
                               f"size, leaf or root, swapped roots, truncated/extended) all rejected",
               "\n".join(tamper_bad[:10]))


def test_logs(env: Env) -> dict:
    print("b, c) logs from tiles served on 127.0.0.1")
    logs = {}
    # b) sizes 0..70, a checkpoint for every size.
    ref70 = RefLog(random_entries(70))
    env.server.publish("log70", ref70.tiles(range(71)))
    check_log(env, "log70", ref70, list(range(71)), all_pairs=True, tamper=True)
    logs["log70"] = ref70
    # c) 300 with every size (levels 0 and 1; all pairs), entries gzip-encoded.
    ref300 = RefLog(random_entries(300, 0, 600))
    env.server.publish("log300", ref300.tiles(range(301)), gzip_entries=True)
    check_log(env, "log300", ref300, list(range(301)), all_pairs=True)
    logs["log300"] = ref300
    # 1000 entries, chosen sizes; every index and every older size for each.
    ref1000 = RefLog(random_entries(1000))
    sizes1000 = sorted({1, 2, 255, 256, 257, 300, 511, 512, 513, 767, 768, 999, 1000} | {RNG.randrange(1, 1000)
                                                                                          for _ in range(3)})
    env.server.publish("log1000", ref1000.tiles(sizes1000))
    check_log(env, "log1000", ref1000, sizes1000, all_pairs=False, samples=1000)
    logs["log1000"] = ref1000
    # 70000 entries (levels 0, 1, 2), sampled.
    t0 = time.monotonic()
    ref70k = RefLog([RNG.randbytes(RNG.randint(1, 24)) for _ in range(70000)])
    sizes70k = sorted({65535, 65536, 65537, 66000, 70000, RNG.randrange(65536, 70000)})
    env.server.publish("log70k", ref70k.tiles(sizes70k))
    expect(True, f"log70k: reference tree and tiles built ({time.monotonic() - t0:.1f}s)")
    check_log(env, "log70k", ref70k, sizes70k, all_pairs=False, samples=60)
    logs["log70k"] = ref70k

    # Entry bundles: every entry against level-0 tiles, every tile level, the root.
    for name, ref, sizes in (("log70", ref70, (0, 1, 69, 70)), ("log300", ref300, (255, 256, 257, 300)),
                             ("log1000", ref1000, (512, 1000)), ("log70k", ref70k, (65536, 70000))):
        for n in sizes:
            cp = vl.verify_note(env.note(name, ref, n), env.keys)
            reader = vl.TileReader(env.server.prefix(name))
            ok, msg = True, ""
            try:
                got = vl.verify_entries(reader, cp)
                ok = got == ref.entries[:n]
            except vl.VerifyError as e:
                ok, msg = False, str(e)
            wrong = [p for p in reader.fetched if not allowed_fetch(p, n)]
            expect(ok and not wrong, f"{name}: verify_entries at size {n}: {len(reader.fetched)} fetches "
                                     f"(bundles{', gzip' if name == 'log300' else ''}, tiles of every level), "
                                     f"only implied ones", msg + str(wrong[:3]), kind="valid")

    # A partial tile the size implies is not served, and no full tile exists yet: a failure.
    path = ref_tile_path(0, 1, 44)
    saved = env.server.get("log300", path)
    env.server.set("log300", path, status=404)
    reader = vl.TileReader(env.server.prefix("log300"))
    must_fail("log300: size 300's partial tile 0/001.p/44 not served (404), no full tile 0/001",
              lambda: vl.root_from_tiles(reader, 300), "HTTP 404")
    env.server.routes[f"/log300{LOG_PATH}/{path}"] = saved
    # A partial tile no longer served, the full one is: the reader falls back to it.
    path = ref_tile_path(0, 0, 200)
    saved = env.server.get("log300", path)
    env.server.set("log300", path, status=404)
    reader = vl.TileReader(env.server.prefix("log300"))
    try:
        ok = (vl.root_from_tiles(reader, 200) == ref300.root(200)
              and vl.inclusion_proof_from_tiles(reader, 5, 200) == ref300.path(5, 200))
        msg = ""
    except vl.VerifyError as e:
        ok, msg = False, str(e)
    expect(ok and reader.fetched[:2] == [path, ref_tile_path(0, 0)],
           "log300 size 200 with tile/0/000.p/200 gone (404): the partial tile is tried, then the full tile "
           "0/000 is used (root and a proof match the reference)", msg + str(reader.fetched), kind="valid")
    env.server.routes[f"/log300{LOG_PATH}/{path}"] = saved
    return logs


# --------------------------------------------------------------------------
# d) notes, keys, proofs
# --------------------------------------------------------------------------


def test_notes(env: Env, logs: dict):
    print("d) signed notes, checkpoints, verifier keys, tlog-proof")
    ref = logs["log70"]
    n = 70
    root = ref.root(n)
    body = cp_body(env.origin, n, root)
    note = env.note("log70", ref, n)
    ed, ml, keys = env.ed, env.ml, env.keys
    ed_line, ml_line = ed.line(body), ml.line(body)

    must_pass("both signatures, both keys required", lambda: vl.verify_note(note, keys))
    cp = vl.verify_note(note, keys)
    expect(cp.verified_by == [vl.parse_vkey(k) for k in keys] and cp.unknown_signatures == 0,
           "both configured keys are reported as verified")
    must_pass("bytes input (UTF-8)", lambda: vl.verify_note(note.encode(), keys))
    must_pass("signature lines in the other order", lambda: vl.verify_note(body + "\n" + ml_line + ed_line, keys))
    must_pass("Ed25519 key only configured", lambda: vl.verify_note(note, [ed.vkey]))
    must_pass("ML-DSA-65 key only configured", lambda: vl.verify_note(note, [ml.vkey]))
    must_pass("an extra signature by an unknown key (same name, other key) is ignored",
              lambda: vl.verify_note(note + env.other.line(body), keys))
    must_pass("an extra signature by an unknown name is ignored",
              lambda: vl.verify_note(note + f"\u2014 witness.example/w1 {b64(os.urandom(72))}\n", keys))
    must_pass("a repeated valid signature line", lambda: vl.verify_note(note + ed_line, keys))
    must_pass("size 0 with the empty tree's root", lambda: vl.verify_note(
        make_note(cp_body(env.origin, 0, H(b"")), [ed, ml]), keys))

    # Each byte of the checkpoint text changed.
    results = []
    for k in range(len(body)):
        c = body[k]
        repl = {"\n": " ", "0": "1"}.get(c, "0" if c.isalpha() or c in "+/=" else chr(ord(c) ^ 1))
        if repl == c:
            repl = "A"
        bad = body[:k] + repl + body[k + 1:]
        results.append(must_fail(f"checkpoint text byte {k} changed", lambda: vl.verify_note(
            bad + "\n" + ed_line + ml_line, keys), quiet=True))
        results.append(must_fail(f"checkpoint text byte {k} changed (any key)", lambda: vl.verify_note(
            bad + "\n" + ed_line + ml_line, keys, require_all=False), quiet=True))
    expect(all(results), f"tamper: each of the {len(body)} checkpoint text bytes changed -> rejected")

    # Signature bytes changed (not the key id): always rejected.
    results = []
    for signer, line in ((ed, ed_line), (ml, ml_line)):
        raw = base64.b64decode(line.split(" ")[2])
        for pos in (4, 5, 4 + len(raw) // 2, len(raw) - 1):
            bad_line = f"\u2014 {signer.name} {b64(flip(raw, pos, 0x80))}\n"
            other = ml_line if signer is ed else ed_line
            for req in (True, False):
                results.append(must_fail(f"{signer.kind} signature byte {pos} flipped (require_all={req})",
                                         lambda: vl.verify_note(body + "\n" + bad_line + other, keys,
                                                                require_all=req), "does not verify", quiet=True))
        for cut in (raw[:-1], raw + b"\x00"):
            bad_line = f"\u2014 {signer.name} {b64(cut)}\n"
            results.append(must_fail(f"{signer.kind} signature of the wrong length", lambda: vl.verify_note(
                body + "\n" + bad_line + (ml_line if signer is ed else ed_line), keys, require_all=False),
                "does not verify", quiet=True))
        # the key id changed: the line is from an unknown key
        bad_line = f"\u2014 {signer.name} {b64(flip(raw, 0))}\n"
        other = ml_line if signer is ed else ed_line
        results.append(must_fail(f"{signer.kind} key id changed, both keys required",
                                 lambda: vl.verify_note(body + "\n" + bad_line + other, keys), "no signature from "
                                 "configured key", quiet=True))
        must_pass(f"{signer.kind} key id changed, one key enough: the line is ignored (unknown key)",
                  lambda: vl.verify_note(body + "\n" + bad_line + other, keys, require_all=False), quiet=True)
    expect(all(results), f"tamper: {len(results)} signature byte / length / key id changes -> rejected")
    must_fail("a good and a bad signature by the same key (one key enough)", lambda: vl.verify_note(
        note + f"\u2014 {ed.name} {b64(flip(base64.b64decode(ed_line.split(' ')[2]), 30))}\n", keys,
        require_all=False), "does not verify")
    must_fail("Ed25519 signature dropped, both keys required", lambda: vl.verify_note(body + "\n" + ml_line, keys),
              "no signature from configured key")
    must_fail("ML-DSA-65 signature dropped, both keys required", lambda: vl.verify_note(body + "\n" + ed_line, keys),
              "no signature from configured key")
    must_pass("ML-DSA-65 signature dropped, one key enough", lambda: vl.verify_note(body + "\n" + ed_line, keys,
                                                                                   require_all=False))
    must_fail("unknown key only (same name, another Ed25519 key configured)",
              lambda: vl.verify_note(note, [env.other.vkey]), "no signature from a configured key")
    must_fail("unknown key only, one key enough", lambda: vl.verify_note(note, [env.other.vkey], require_all=False),
              "no signature from a configured key")
    must_fail("signed by the configured key but under another key name", lambda: vl.verify_note(
        body + "\n" + ed.line(body, name="other.example") + ml.line(body, name="other.example"), keys),
        "no signature from a configured key")
    renamed = Signer("other.example/log", "ed25519")
    must_fail("signed only by a configured key whose name is not the origin", lambda: vl.verify_note(
        body + "\n" + renamed.line(body), [renamed.vkey]), "origin")
    must_pass("... accepted with require_origin_key=False", lambda: vl.verify_note(
        body + "\n" + renamed.line(body), [renamed.vkey], require_origin_key=False))
    must_fail("a signature made over another checkpoint", lambda: vl.verify_note(
        body + "\n" + ed.line(cp_body(env.origin, 69, ref.root(69))) + ml_line, keys), "does not verify")
    must_fail("the ML-DSA line signed with the Ed25519 key id", lambda: vl.verify_note(
        body + "\n" + ml.line(body, kid=ed.kid), keys, require_all=False), "does not verify")

    # Framing.
    for what, text in (
        ("trailing garbage without newline", note + "garbage"),
        ("trailing garbage line", note + "garbage\n"),
        ("a trailing blank line", note + "\n"),
        ("a trailing space", note + " "),
        ("missing final newline", note[:-1]),
        ("no blank line before the signatures", body + ed_line + ml_line),
        ("no signature lines", body + "\n"),
        ("hyphen instead of em dash", body + "\n" + ed_line.replace("\u2014", "-") + ml_line),
        ("en dash instead of em dash", body + "\n" + ed_line.replace("\u2014", "\u2013") + ml_line),
        ("two spaces after the dash", body + "\n" + ed_line.replace("\u2014 ", "\u2014  ") + ml_line),
        ("no space before the signature", body + "\n" + ed_line.replace(f"{ed.name} ", ed.name) + ml_line),
        ("signature base64 with a space", body + "\n" + ed_line[:-10] + " " + ed_line[-10:] + ml_line),
        ("signature base64 without padding", body + "\n" + ed_line.rstrip("\n").rstrip("=") + "\n" + ml_line),
        ("signature of 4 bytes", body + "\n" + f"\u2014 {ed.name} {b64(ed.kid)}\n" + ml_line),
        ("CRLF line endings", note.replace("\n", "\r\n")),
        ("NUL byte in the origin", note.replace(env.origin, env.origin + "\x00", 1)),
        ("not UTF-8", note.encode()[:5] + b"\xff" + note.encode()[5:]),
        ("101 signature lines", note + "".join(env.other.line(body) for _ in range(99))),
    ):
        must_fail(f"note framing: {what}", lambda: vl.verify_note(text, keys))
    must_fail("note framing: missing final newline (the reason)", lambda: vl.verify_note(note[:-1], keys),
              "does not end with a newline")
    must_fail("note framing: CR before a newline (the reason)", lambda: vl.verify_note(
        note.replace("\n", "\r\n", 1), keys), "control character U+000D")

    # Checkpoint bodies, properly signed.
    rb = b64(root)
    url_root = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    loose_root = rb[:-2] + alphabet[alphabet.index(rb[-2]) | 1] + "="  # a padding bit set
    for what, b, why in (
        ("leading zero in the size", f"{env.origin}\n070\n{rb}\n", "leading zero"),
        ("size 00", f"{env.origin}\n00\n{b64(H(b''))}\n", "leading zero"),
        ("size +70", f"{env.origin}\n+70\n{rb}\n", "decimal"),
        ("size with a space", f"{env.origin}\n 70\n{rb}\n", "decimal"),
        ("size in Arabic-Indic digits", f"{env.origin}\n\u0667\u0660\n{rb}\n", "decimal"),
        ("size 2^64", f"{env.origin}\n{2 ** 64}\n{rb}\n", "larger"),
        ("root of 31 bytes", f"{env.origin}\n70\n{b64(root[:31])}\n", "31 bytes"),
        ("root of 33 bytes", f"{env.origin}\n70\n{b64(root + b'x')}\n", "33 bytes"),
        ("root in base64url", f"{env.origin}\n70\n{url_root}\n", "base64"),
        ("root without padding", f"{env.origin}\n70\n{rb.rstrip('=')}\n", "base64"),
        ("root with a padding bit set (non-canonical)", f"{env.origin}\n70\n{loose_root}\n", "base64"),
        ("root in hex (valid base64 of 48 bytes)", f"{env.origin}\n70\n{root.hex()}\n", "48 bytes"),
        ("empty origin", f"\n70\n{rb}\n", "origin"),
        ("tab in the origin", f"{env.origin}\t\n70\n{rb}\n", "control character"),
        ("two lines only", f"{env.origin}\n70\n", "lines"),
        ("extension line", f"{env.origin}\n70\n{rb}\nextension\n", "extension"),
        ("size 0 with a non-empty root", f"{env.origin}\n0\n{rb}\n", "size 0"),
    ):
        must_fail(f"checkpoint: {what} (signed)", lambda: vl.verify_note(make_note(b, [ed, ml]), keys), why)
    must_pass("checkpoint: extension line accepted with allow_extensions", lambda: vl.verify_note(
        make_note(f"{env.origin}\n70\n{rb}\nextension\n", [ed, ml]), keys, allow_extensions=True))

    # Verifier keys.
    name, hexid, kb64 = ed.vkey.split("+", 2)
    kb = base64.b64decode(kb64)
    type4, type2 = b64(b"\x04" + kb[1:]), b64(b"\x02" + kb[1:])
    for what, v, why in (
        ("key id changed", f"{name}+{(int(hexid, 16) ^ 1):08x}+{kb64}", "does not match"),
        ("name changed", f"{name}x+{hexid}+{kb64}", "does not match"),
        ("public key byte changed", f"{name}+{hexid}+{b64(flip(kb, 5))}", "does not match"),
        ("type 0x04 (cosignature)", f"{name}+{hexid}+{type4}", "unsupported"),
        ("type 0x02", f"{name}+{hexid}+{type2}", "unsupported"),
        ("31-byte Ed25519 key", f"{name}+{hexid}+{b64(kb[:-1])}", "key bytes"),
        ("ML-DSA-65 key truncated", ml.vkey[:-8] + "AAAA", ""),
        ("ML-DSA type without its identifier", ml.vkey.split("+")[0] + "+" + ml.vkey.split("+")[1] + "+"
         + b64(b"\xff" + ml.pub), "unsupported"),
        ("7-digit key id", f"{name}+{hexid[1:]}+{kb64}", "8 hex digits"),
        ("no key id", f"{name}+{kb64}", ""),
        ("empty name", f"+{hexid}+{kb64}", "name"),
        ("name with a space", f"a b+{hexid}+{kb64}", "name"),
        ("key base64 truncated by a character", f"{name}+{hexid}+{kb64[:-1]}", "base64"),
        ("key base64 with padding added", f"{name}+{hexid}+{kb64}=", "base64"),
        ("trailing newline", ed.vkey + "\n", "base64"),
    ):
        must_fail(f"verifier key: {what}", lambda: vl.parse_vkey(v), why)
    must_pass("verifier key: upper-case hex key id", lambda: vl.parse_vkey(f"{name}+{hexid.upper()}+{kb64}"))
    parsed = vl.parse_vkey(ml.vkey)
    expect(parsed == (ml.name, int.from_bytes(ml.kid, "big"), b"\xffml-dsa-65", ml.pub)
           and vl.format_vkey(ml.name, parsed.type, parsed.public_key) == ml.vkey,
           "ML-DSA-65 verifier key: (name, key id, 0xFF||'ml-dsa-65', 1952-byte key), round trip")
    must_fail("verify_note with a bad configured key", lambda: vl.verify_note(note, [ed.vkey[:-4] + "AAA="]))
    must_fail("verify_note with no key", lambda: vl.verify_note(note, []), "no verifier key")

    # tlog-proof parsing.
    i = 37
    path = ref.path(i, n)
    proof_text = make_proof(i, path, note)
    p = must_pass("tlog-proof parses", lambda: vl.parse_proof(proof_text))
    expect(bool(p) and p.index == i and p.path == path and p.checkpoint == note and p.extra is None,
           "tlog-proof: index, path (leaf's sibling first), checkpoint verbatim")
    p = vl.parse_proof(make_proof(i, path, note, extra=b"\x00extra data"))
    expect(p.extra == b"\x00extra data" and p.index == i and p.path == path, "tlog-proof with an extra line")
    p = vl.parse_proof(make_proof(0, [], make_note(cp_body(env.origin, 1, ref.root(1)), [ed, ml])))
    expect(p.index == 0 and p.path == [], "tlog-proof of index 0 in a tree of 1: no hash lines")
    head = "c2sp.org/tlog-proof@v1\n"
    hashes = "".join(b64(h) + "\n" for h in path)
    for what, text, why in (
        ("wrong header", proof_text.replace("@v1", "@v2", 1), "c2sp.org/tlog-proof@v1"),
        ("index with a leading zero", proof_text.replace(f"index {i}", f"index 0{i}"), "leading zero"),
        ("negative index", proof_text.replace(f"index {i}", "index -1"), "decimal"),
        ("no index line", head + hashes + "\n" + note, "index"),
        ("extra after index", head + f"index {i}\nextra AAAA\n" + hashes + "\n" + note, "base64"),
        ("extra not base64", head + "extra !!!\n" + f"index {i}\n" + hashes + "\n" + note, "base64"),
        ("hash of 31 bytes", head + f"index {i}\n" + b64(path[0][:31]) + "\n" + hashes + "\n" + note, "31 bytes"),
        ("hash not base64", head + f"index {i}\n" + "*" * 44 + "\n" + hashes + "\n" + note, "base64"),
        ("no blank line", head + f"index {i}\n" + hashes, "blank line"),
        ("no checkpoint", head + f"index {i}\n" + hashes + "\n", "no checkpoint"),
        ("65 hash lines", head + f"index {i}\n" + hashes * 11 + "\n" + note, "more than"),
    ):
        must_fail(f"tlog-proof: {what}", lambda: vl.parse_proof(text), why)


# --------------------------------------------------------------------------
# e) CLI
# --------------------------------------------------------------------------


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    rc = vl.main(argv, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli(env: Env, logs: dict):
    print("e) command line")
    ref = logs["log300"]
    prefix = env.server.prefix("log300")
    keys = []
    for k in env.keys:
        keys += ["--key", k]
    notes = {n: env.write(env.note("log300", ref, n)) for n in (0, 1, 100, 256, 299, 300)}
    i, n = 123, 300
    entry = ref.entries[i]
    proof = env.write(make_proof(i, ref.path(i, n), env.note("log300", ref, n)))

    def cli(what, argv, rc_want, out_want=None, kind="valid"):
        rc, out, err = run_cli(argv)
        good = rc == rc_want and (out_want is None or (out.strip() == out_want if rc_want == 0
                                                        else out.startswith(out_want)))
        if rc_want == 2:
            good = good and err.startswith("error: ")
        return expect(good, f"CLI {what} -> exit {rc_want}" + (f": {out.strip()}" if rc_want != 2 else
                                                                 f": {err.splitlines()[0] if err else ''}"),
                      f"rc={rc}\nout={out}\nerr={err}", kind=kind)

    cli("checkpoint", ["checkpoint", "--note", notes[300]] + keys, 0, f"ok checkpoint {env.origin} 300")
    cli("checkpoint of size 0", ["checkpoint", "--note", notes[0]] + keys, 0, f"ok checkpoint {env.origin} 0")
    kf = env.write("# log keys\n" + "\n".join(env.keys) + "\n\n")
    cli("checkpoint --keys-file", ["checkpoint", "--note", notes[300], "--keys-file", kf], 0,
        f"ok checkpoint {env.origin} 300")
    cli("checkpoint, one signature dropped", ["checkpoint", "--note", env.write(
        env.note("log300", ref, 300).rsplit("\u2014", 1)[0])] + keys, 1, "FAIL ", kind="tamper")
    cli("checkpoint, one signature dropped, --any-key", ["checkpoint", "--note", env.write(
        env.note("log300", ref, 300).rsplit("\u2014", 1)[0]), "--any-key"] + keys, 0,
        f"ok checkpoint {env.origin} 300")
    cli("checkpoint, unknown key only", ["checkpoint", "--note", notes[300], "--key", env.other.vkey], 1,
        "FAIL no signature from a configured key", kind="tamper")
    cli("inclusion", ["inclusion", "--proof", proof, "--tbs-hex", entry.hex()] + keys, 0,
        f"ok inclusion index={i} size={n}")
    cli("inclusion, TBS byte changed", ["inclusion", "--proof", proof, "--tbs-hex", flip(entry, 3).hex()] + keys,
        1, "FAIL inclusion path", kind="tamper")
    cli("inclusion, another entry's TBS", ["inclusion", "--proof", proof, "--tbs-hex", ref.entries[i + 1].hex()]
        + keys, 1, "FAIL ", kind="tamper")
    cli("inclusion, wrong index in the proof", ["inclusion", "--proof", env.write(
        make_proof(i + 1, ref.path(i, n), env.note("log300", ref, n))), "--tbs-hex", entry.hex()] + keys, 1,
        "FAIL ", kind="tamper")
    cli("inclusion, proof's checkpoint of another size", ["inclusion", "--proof", env.write(
        make_proof(i, ref.path(i, n), env.note("log300", ref, 299))), "--tbs-hex", entry.hex()] + keys, 1,
        "FAIL ", kind="tamper")
    cli("inclusion, index beyond the size", ["inclusion", "--proof", env.write(
        make_proof(n, ref.path(i, n), env.note("log300", ref, n))), "--tbs-hex", entry.hex()] + keys, 1,
        "FAIL leaf index", kind="tamper")
    cli("inclusion, malformed proof", ["inclusion", "--proof", notes[300], "--tbs-hex", entry.hex()] + keys, 1,
        "FAIL proof does not start", kind="tamper")
    cli("consistency", ["consistency", "--old", notes[100], "--new", notes[300], "--log", prefix] + keys, 0,
        "ok consistency 100 -> 300")
    cli("consistency 0 -> 300", ["consistency", "--old", notes[0], "--new", notes[300], "--log", prefix] + keys, 0,
        "ok consistency 0 -> 300")
    cli("consistency 256 -> 256", ["consistency", "--old", notes[256], "--new", notes[256], "--log", prefix] + keys,
        0, "ok consistency 256 -> 256")
    cli("consistency, newer smaller", ["consistency", "--old", notes[300], "--new", notes[100], "--log", prefix]
        + keys, 1, "FAIL the newer checkpoint (100) is smaller", kind="tamper")
    cli("entries", ["entries", "--log", prefix, "--note", notes[300]] + keys, 0, "ok entries 300")
    cli("entries of size 0", ["entries", "--log", prefix, "--note", notes[0]] + keys, 0, "ok entries 0")

    # A fork: a log with other entries after 100, signed by the same keys.
    fork = RefLog(ref.entries[:100] + random_entries(200))
    env.server.publish("fork", fork.tiles([300]))
    fork300 = env.write(make_note(cp_body(env.origin, 300, fork.root(300)), [env.ed, env.ml]))
    cli("consistency with a forked log (same first 100 entries)", ["consistency", "--old", notes[100], "--new",
        fork300, "--log", env.server.prefix("fork")] + keys, 0, "ok consistency 100 -> 300")
    cli("consistency, fork's tiles against the real new checkpoint", ["consistency", "--old", notes[100], "--new",
        notes[300], "--log", env.server.prefix("fork")] + keys, 1, "FAIL the tiles give root", kind="tamper")
    cli("consistency, checkpoint of another fork point (old 299 vs forked 300)", ["consistency", "--old", notes[299],
        "--new", fork300, "--log", env.server.prefix("fork")] + keys, 1, "FAIL consistency proof", kind="tamper")
    o_signer = Signer(env.origin + "x", "ed25519")
    other_origin = env.write(make_note(cp_body(env.origin + "x", 100, ref.root(100)), [o_signer]))
    cli("consistency, different origins", ["consistency", "--old", other_origin, "--new", notes[300], "--log", prefix,
                                           "--key", o_signer.vkey, "--any-key"] + keys, 1, "FAIL origins differ",
        kind="tamper")

    # Tampered tiles and bundles on the server.
    t0 = ref.tiles([300])
    for what, path, body, status, cmd, msg in (
        ("level-0 tile hash flipped", ref_tile_path(0, 0), flip(t0[ref_tile_path(0, 0)], 77), 200, "consistency",
         "FAIL "),
        ("partial level-1 tile hash flipped", ref_tile_path(1, 0, 1), flip(t0[ref_tile_path(1, 0, 1)], 3), 200,
         "consistency", "FAIL the tiles give root"),
        ("partial level-0 tile truncated", ref_tile_path(0, 1, 44), t0[ref_tile_path(0, 1, 44)][:-1], 200,
         "consistency", "FAIL tile tile/0/001.p/44 is 1407 bytes"),
        ("partial level-0 tile gone (404)", ref_tile_path(0, 1, 44), None, 404, "consistency", "FAIL GET "),
        ("tile answered with 500", ref_tile_path(0, 0), b"oops", 500, "consistency", "FAIL GET "),
        ("entry bundle byte flipped", ref_bundle_path(0), gzip.compress(flip(t0[ref_bundle_path(0)], 100)), 200,
         "entries", "FAIL entry"),
        ("entry bundle with trailing bytes", ref_bundle_path(1, 44), gzip.compress(t0[ref_bundle_path(1, 44)] + b"\0"),
         200, "entries", "FAIL entry bundle"),
        ("entry bundle with one entry fewer", ref_bundle_path(1, 44), gzip.compress(
            t0[ref_bundle_path(1, 44)][:-(2 + len(ref.entries[299]))]), 200, "entries", "FAIL entry bundle"),
        ("entry bundle with a bad gzip body", ref_bundle_path(0), b"\x1f\x8b garbage", 200, "entries",
         "FAIL GET "),
        ("level-1 tile hash flipped (entries checks every level)", ref_tile_path(1, 0, 1),
         flip(t0[ref_tile_path(1, 0, 1)], 3), 200, "entries", "FAIL tile tile/1/000.p/1 does not match"),
    ):
        argv = (["consistency", "--old", notes[100], "--new", notes[300], "--log", prefix] if cmd == "consistency"
                else ["entries", "--log", prefix, "--note", notes[300]]) + keys
        key = f"/log300{LOG_PATH}/{path}"
        saved = env.server.routes.get(key)
        if status == 404:
            env.server.routes.pop(key, None)
        else:
            gz = path.startswith("tile/entries/")  # log300 serves its bundles gzip-encoded
            env.server.routes[key] = (status, body, {"Content-Encoding": "gzip"} if gz else {})
        try:
            cli(f"{cmd}, {what}", argv, 1, msg, kind="tamper")
        finally:
            env.server.routes[key] = saved
    cli("consistency after the server is restored", ["consistency", "--old", notes[100], "--new", notes[300],
                                                     "--log", prefix] + keys, 0, "ok consistency 100 -> 300")

    # Usage and I/O errors: exit 2.
    dead = f"http://127.0.0.1:{free_port()}{LOG_PATH}"
    bad_key = env.ed.vkey.split("+")
    bad_key = "+".join([bad_key[0], f"{int(bad_key[1], 16) ^ 1:08x}", bad_key[2]])
    for what, argv in (
        ("no command", []),
        ("unknown command", ["frobnicate"]),
        ("checkpoint without --note", ["checkpoint"] + keys),
        ("checkpoint without keys", ["checkpoint", "--note", notes[300]]),
        ("bad key id in --key", ["checkpoint", "--note", notes[300], "--key", bad_key]),
        ("malformed --key", ["checkpoint", "--note", notes[300], "--key", "nonsense"]),
        ("note file missing", ["checkpoint", "--note", os.path.join(env.tmp, "nope")] + keys),
        ("keys file missing", ["checkpoint", "--note", notes[300], "--keys-file", os.path.join(env.tmp, "nope")]),
        ("--tbs-hex not hex", ["inclusion", "--proof", proof, "--tbs-hex", "xyz"] + keys),
        ("--log not a URL", ["entries", "--log", "not a url", "--note", notes[300]] + keys),
        ("connection refused", ["consistency", "--old", notes[100], "--new", notes[300], "--log", dead] + keys),
        ("entries, connection refused", ["entries", "--log", dead, "--note", notes[300]] + keys),
    ):
        cli(what, argv, 2)

    # As a subprocess.
    for argv, want in (
        (["checkpoint", "--note", notes[300]] + keys, f"ok checkpoint {env.origin} 300"),
        (["inclusion", "--proof", proof, "--tbs-hex", entry.hex()] + keys, f"ok inclusion index={i} size={n}"),
        (["consistency", "--old", notes[1], "--new", notes[300], "--log", prefix] + keys, "ok consistency 1 -> 300"),
        (["entries", "--log", prefix, "--note", notes[256]] + keys, "ok entries 256"),
    ):
        proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_log.py")] + argv, capture_output=True,
                              text=True, timeout=60)
        expect(proc.returncode == 0 and proc.stdout.strip() == want, f"CLI subprocess {argv[0]}: exit 0, {want!r}",
               proc.stdout + proc.stderr, kind="valid")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_log.py"), "inclusion", "--proof", proof,
                           "--tbs-hex", "00" + entry.hex()] + keys, capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 1 and proc.stdout.startswith("FAIL "), "CLI subprocess: wrong TBS -> exit 1, FAIL line",
           proc.stdout + proc.stderr, kind="tamper")


# --------------------------------------------------------------------------
# f) end to end with verify_batch.py --tbs-out
# --------------------------------------------------------------------------


def test_end_to_end(env: Env):
    print("f) end to end: selftest_batch's signer -> verify_batch.py --tbs-out -> the log -> verify_log.py")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import selftest_batch as sb
            import verify_batch as vb
    except Exception as e:  # noqa: BLE001  (pragma: no cover)
        expect(False, f"import selftest_batch / verify_batch ({e})")
        return
    keys = sb.Keys("qv-selftest-log")
    batches = [sb.sign_batch([sb.make_exchange(k) for k in range(3)], alg, keys, seq=900 + j)
               for j, alg in enumerate((sb.ECDSA_ALG, sb.MLDSA_ALG, sb.HYBRID_ALG))]
    jwks = env.write(json.dumps(keys.jwks))
    lines: list[str] = []
    for j, b in enumerate(batches):
        for k in (0, 2):
            ex = env.write(json.dumps(b.exchanges[k]))
            tbs_out = os.path.join(env.tmp, f"tbs-{j}-{k}.txt")
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = vb.main([ex, jwks, "--tbs-out", tbs_out], out=out)
            with open(tbs_out) as f:
                got = f.read()
            want = f"{b.batch_id.hex()} {b.tbs.hex()}\n"
            expect(rc == 0 and got == want, f"verify_batch --tbs-out: batch {j} leaf {k}: one line "
                                            "'<hex batch_id> <hex TBS>', the signer's TBS",
                   f"rc={rc}\n{out.getvalue()}\n{err.getvalue()}\ngot={got[:120]!r}", kind="valid")
            lines.append(got)
    bad_ex = json.loads(json.dumps(batches[0].exchanges[0]))
    bad_ex["response"]["status"] = 599
    tbs_out = os.path.join(env.tmp, "tbs-bad.txt")
    with contextlib.redirect_stderr(io.StringIO()):
        rc = vb.main([env.write(json.dumps(bad_ex)), jwks, "--tbs-out", tbs_out], out=io.StringIO())
    with open(tbs_out) as f:
        got = f.read()
    expect(rc == 1 and got == "", "verify_batch --tbs-out: a label that fails writes no line (empty file)",
           f"rc={rc} got={got!r}", kind="tamper")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        rc = vb.main([env.write(json.dumps(batches[0].exchanges[0])), jwks, "--tbs-out",
                      os.path.join(env.tmp, "no-such-dir", "x")], out=io.StringIO())
    expect(rc == 2, "verify_batch --tbs-out into a missing directory -> exit 2")

    # The log: some random entries, then the three batches' TBS, then more.
    tbs_list = [b.tbs for b in batches]
    entries = random_entries(5) + tbs_list[:1] + random_entries(3) + tbs_list[1:] + random_entries(2)
    ref = RefLog(entries)
    n = len(entries)
    env.server.publish("e2e", ref.tiles([n]))
    note = make_note(cp_body(env.origin, n, ref.root(n)), [env.ed, env.ml])
    keys_argv = []
    for k in env.keys:
        keys_argv += ["--key", k]
    for line in sorted(set(lines)):
        batch_id_hex, tbs_hex = line.split()
        index = entries.index(bytes.fromhex(tbs_hex))
        proof = env.write(make_proof(index, ref.path(index, n), note))
        rc, out, err = run_cli(["inclusion", "--proof", proof, "--tbs-hex", tbs_hex] + keys_argv)
        expect(rc == 0 and out.strip() == f"ok inclusion index={index} size={n}",
               f"verify_log inclusion of batch {batch_id_hex[:8]}… from its --tbs-out line: index {index}",
               out + err, kind="valid")
    rc, out, err = run_cli(["entries", "--log", env.server.prefix("e2e"), "--note", env.write(note)] + keys_argv)
    expect(rc == 0 and out.strip() == f"ok entries {n}", "verify_log entries of the end-to-end log", out + err,
           kind="valid")


def main() -> int:
    t0 = time.monotonic()
    env = Env()
    try:
        test_known_answers()
        logs = test_logs(env)
        test_notes(env, logs)
        test_cli(env, logs)
        test_end_to_end(env)
    finally:
        env.server.close()
        import shutil

        shutil.rmtree(env.tmp, ignore_errors=True)
    expect(not env.server.thread.is_alive(), "tile server stopped")
    dt = time.monotonic() - t0
    (vp, vf), (tp, tf), (cp, cf) = COUNTS["valid"], COUNTS["tamper"], COUNTS["check"]
    print(f"selftest_log took {dt:.2f}s")
    print(f"selftest_log: valid cases {vp} verified, {vf} failed; tamper cases {tp} rejected, {tf} accepted; "
          f"other checks {cp} passed, {cf} failed")
    if FAILURES:
        print(f"selftest_log: FAIL ({len(FAILURES)} failed: " + "; ".join(FAILURES[:5])
              + (" ..." if len(FAILURES) > 5 else "") + ")")
        return 1
    print("selftest_log: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
