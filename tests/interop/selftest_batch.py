#!/usr/bin/env python3
"""Self-test of tests/interop/verify_batch.py (run with the interop venv's python).

    python selftest_batch.py            # exit 0 on success, 1 on failure

Everything signed here is signed by this file, from docs/batch-signing.md, with
its own reference code (recursive RFC 9162 tree and audit paths, explicit TBS
and value layouts, signature bases written out as text): nothing on the signing
side calls verify_batch, so the two halves check each other.

a) the tree: RFC 6962 / Certificate Transparency reference roots and inclusion
   proofs, verify_batch's level-by-level tree against the recursive one for
   sizes 1..33 (and 100, 1000, 65536), every index's proof, bad indices,
   truncated and extended proofs, the spec's limits;
b) the byte layouts: TBS and signature value against the reference encoders,
   structured-field parsing and serialization;
c) the RFC 9421 signature base: the committed RFC 9421 and library-made
   fixtures (their signatures are checked over verify_batch's bases), and a
   batch covering @authority/@scheme/@path/@query and repeated fields;
d) batches of 1, 2, 3, 5, 8, 13 and 100 realistic responses for each of the
   three merkle algorithms: every leaf must verify (library; the CLI in and out
   of process);
e) tampering: every case must fail, most at a named check;
f) usage errors (exit 2);
g) the detached form (section 6.1): batches signed with flags 0x01 and a batch
   document per batch; every leaf verifies with the document given to the
   library, via the CLI's --batch FILE, and fetched from a local http.server at
   the request's origin; tampered documents and values, served errors (404,
   malformed JSON, timeout, refused connection) fail; an altered served tbs
   does not matter.
"""

from __future__ import annotations

import base64
import contextlib
import copy
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
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, HERE)

import verify_batch as vb  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, mldsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

RNG = random.Random(20240601)
LABEL = "sig-batch"
TAG = "quantumvault-batch"
ECDSA_KID = "qv-batch-ecdsa-p256"
MLDSA_KID = "qv-batch-ml-dsa-65"
KIDS = {1: ECDSA_KID, 2: MLDSA_KID}
# The table of section 2, copied here (not taken from verify_batch).
SPEC_ALGS = {
    "merkle-ecdsa-p256-sha256": [1],
    "merkle-ml-dsa-65": [2],
    "merkle-hybrid-ml-dsa-65-ecdsa-p256": [1, 2],
}
ECDSA_ALG, MLDSA_ALG, HYBRID_ALG = SPEC_ALGS
SIZES = (1, 2, 3, 5, 8, 13, 100)

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
            print("".join(f"        {line}\n" for line in detail.splitlines()), end="")
    return cond


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------
# Reference implementation (signing side), from the spec text
# --------------------------------------------------------------------------


def ref_leaf(salt: bytes, base: bytes) -> bytes:
    return H(b"\x00" + salt + base)


def ref_node(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list) -> bytes:
    """RFC 9162 2.1.1, recursively: MTH(D[n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    if len(d) == 1:
        return d[0]
    k = ref_split(len(d))
    return ref_node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list) -> list:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), recursively."""
    if len(d) == 1:
        return []
    k = ref_split(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_tbs(alg: str, batch_id: bytes, batch_time_ms: int, tree_size: int, signers, root: bytes) -> bytes:
    out = b" " * 64 + "http-batch-sig/v1 root".encode("ascii") + b"\x00" + b"\x01"
    out += batch_id + batch_time_ms.to_bytes(8, "big") + tree_size.to_bytes(4, "big")
    out += bytes([len(alg)]) + alg.encode("ascii") + bytes([len(signers)])
    for code, kid in signers:
        out += bytes([code, len(kid)]) + kid.encode("ascii")
    return out + root


def ref_value(batch_id, batch_time_ms, tree_size, leaf_index, salt, path, sigs, version=1, flags=0) -> bytes:
    out = bytes([version, flags]) + batch_id + batch_time_ms.to_bytes(8, "big")
    out += tree_size.to_bytes(4, "big") + leaf_index.to_bytes(4, "big") + salt
    out += bytes([len(path)]) + b"".join(path) + bytes([len(sigs)])
    for code, kid, sig in sigs:
        out += bytes([code, len(kid)]) + kid.encode("ascii") + len(sig).to_bytes(2, "big") + sig
    return out


class Keys:
    def __init__(self, name: str):
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        seed = H(f"{name}-ecdsa".encode())
        self.ec = ec.derive_private_key(int.from_bytes(seed, "big") % (n - 1) + 1, ec.SECP256R1())
        self.ml = mldsa.MLDSA65PrivateKey.from_seed_bytes(H(f"{name}-mldsa".encode()))
        nums = self.ec.public_key().public_numbers()
        self.ec_jwk = {"kty": "EC", "crv": "P-256", "x": _b64url(nums.x.to_bytes(32, "big")),
                       "y": _b64url(nums.y.to_bytes(32, "big")), "kid": ECDSA_KID, "alg": "ES256", "use": "sig"}
        self.ml_jwk = {"kty": "AKP", "alg": "ML-DSA-65", "pub": _b64url(self.ml.public_key().public_bytes_raw()),
                       "kid": MLDSA_KID, "use": "sig"}
        self.jwks = {"keys": [self.ec_jwk, self.ml_jwk]}

    def sign(self, code: int, msg: bytes) -> bytes:
        if code == 1:
            r, s = decode_dss_signature(self.ec.sign(msg, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if code == 2:
            return self.ml.sign(msg)  # pure ML-DSA-65, empty context
        raise ValueError(code)


def make_exchange(i: int) -> dict:
    """A realistic unsigned exchange; kinds vary method, status, body, query and digests."""
    kind = i % 5
    method = ("GET", "POST", "GET", "DELETE", "PUT")[kind]
    status = (200, 201, 404, 204, 200)[kind]
    query = f"?page={i % 7}&q=a%20b" if kind in (0, 2) else ""
    scheme = "https" if i % 4 == 3 else "http"
    url = f"{scheme}://127.0.0.1:8080/api/items/{i}{query}"
    if status == 204:
        body = b""
    elif kind == 2:
        body = b'{"error":"not found"}'
    elif i % 3 == 0:
        body = json.dumps({"id": i, "items": [f"item-{j}" for j in range(i % 9)]}).encode() + b"\n"
    else:
        body = f'{{"id":{i},"ok":true}}'.encode()
    req_headers = [["Host", "127.0.0.1:8080"], ["User-Agent", "qv-selftest-batch/1"], ["Accept", "*/*"]]
    if method in ("POST", "PUT"):
        req_headers.append(["Content-Type", "application/json"])
    headers = []
    if body:
        headers.append(["Content-Type", "application/json" if kind != 4 else "application/json; charset=utf-8"])
    headers.append(["Content-Length", str(len(body))])
    headers.append(["X-Request-Id", f"{i:08x}-{RNG.getrandbits(64):016x}"])
    if body:
        digest = "sha-256=:" + _b64(hashlib.sha256(body).digest()) + ":"
        if kind == 4:
            digest += ", sha-512=:" + _b64(hashlib.sha512(body).digest()) + ":"
        headers.append(["Content-Digest", digest])
    if i % 2:
        headers += [["Cache-Control", "no-store"], ["Cache-Control", "private"]]
    return {"request": {"method": method, "url": url, "headers": req_headers},
            "response": {"status": status, "headers": headers, "body_b64": _b64(body)}}


def _hdr(ex, side, name):
    return [v for n, v in ex[side]["headers"] if n.lower() == name]


def gateway_prepare(ex: dict, alg: str, created: int, keyid: str, expires=None):
    """(components, serialized @signature-params, base) as the spec says the gateway covers them."""
    resp = ex["response"]
    comps = ['"@status"']
    if resp["body_b64"]:
        comps.append('"content-digest"')
    if _hdr(ex, "response", "content-type"):
        comps.append('"content-type"')
    comps += ['"x-request-id"', '"@method";req', '"@target-uri";req']
    nonce = _b64url(RNG.randbytes(16))
    params = f"({' '.join(comps)});created={created}"
    if expires is not None:
        params += f";expires={expires}"
    params += f';keyid="{keyid}";alg="{alg}";nonce="{nonce}";tag="{TAG}"'
    values = {
        '"@status"': str(resp["status"]),
        '"content-digest"': ", ".join(_hdr(ex, "response", "content-digest")),
        '"content-type"': ", ".join(_hdr(ex, "response", "content-type")),
        '"x-request-id"': ", ".join(_hdr(ex, "response", "x-request-id")),
        '"@method";req': ex["request"]["method"],
        '"@target-uri";req': ex["request"]["url"],
    }
    base = "\n".join([f"{c}: {values[c]}" for c in comps] + [f'"@signature-params": {params}'])
    return params, base.encode()


class Batch:
    pass


def sign_batch(items, alg, keys: Keys, *, seq=1, label=LABEL, created=None, expires=None, keyid_param=None,
               root_override=None, prepare=None, inline_ecdsa=False, detached=False) -> Batch:
    """Sign a list of unsigned exchanges as one batch; returns a Batch with signed exchanges.

    detached: section 6.1, the values have flags 0x01 and no root signatures;
    b.document is the batch document that carries them."""
    codes = SPEC_ALGS[alg]
    created = int(time.time()) - 2 if created is None else created
    b = Batch()
    b.alg, b.size, b.keys, b.detached, b.seq = alg, len(items), keys, detached, seq
    b.batch_id = bytes.fromhex("5156474154455701") + seq.to_bytes(8, "big")  # instance id || sequence
    b.batch_time_ms = int(time.time() * 1000)
    keyid_param = keyid_param or KIDS[codes[0]]
    b.params, b.bases, b.salts, b.leaves = [], [], [], []
    for ex in items:
        if prepare is None:
            params, base = gateway_prepare(ex, alg, created, keyid_param, expires)
        else:
            params, base = prepare(ex, alg, created, keyid_param)
        salt = RNG.randbytes(16)
        b.params.append(params)
        b.bases.append(base)
        b.salts.append(salt)
        b.leaves.append(ref_leaf(salt, base))
    b.root = ref_mth(b.leaves)
    b.signers = [(c, KIDS[c]) for c in codes]
    b.tbs = ref_tbs(alg, b.batch_id, b.batch_time_ms, b.size, b.signers, root_override or b.root)
    b.sigs = [(c, KIDS[c], keys.sign(c, b.tbs)) for c in codes]
    b.paths = [ref_path(i, b.leaves) for i in range(b.size)]
    b.document = ref_document(b)
    b.exchanges = []
    for i, ex in enumerate(items):
        ex = copy.deepcopy(ex)
        value = value_of(b, i)
        si, sig = f"{label}={b.params[i]}", f"{label}=:{_b64(value)}:"
        if inline_ecdsa:
            params, base = inline_ecdsa_prepare(ex, created)
            si += f", sig-ecdsa={params}"
            sig += f", sig-ecdsa=:{_b64(keys.sign(1, base))}:"
        ex["response"]["headers"] += [["Signature-Input", si], ["Signature", sig]]
        b.exchanges.append(ex)
    return b


def inline_ecdsa_prepare(ex, created):
    """Section 9: an inline ecdsa-p256-sha256 signature under sig-ecdsa (verify.py's profile)."""
    params, base = gateway_prepare(ex, "ecdsa-p256-sha256", created, ECDSA_KID)
    params = params.replace(f'tag="{TAG}"', 'tag="quantumvault-ecdsa-p256"')
    base = base.replace(f'tag="{TAG}"'.encode(), b'tag="quantumvault-ecdsa-p256"')
    return params, base


def ref_document(b: Batch) -> dict:
    """The batch document of section 6.1. Its log part stands for a one-entry anchor log
    (log_index 0, root = H(0x00 || TBS)); a verifier uses none of it, nor the tbs."""
    return {
        "batch_id": b.batch_id.hex(),
        "log_index": 0,
        "tbs": _b64(b.tbs),
        "signatures": [{"code": c, "keyid": kid, "sig": _b64(sig)} for c, kid, sig in b.sigs],
        "log": {"size": 1, "root": _b64(H(b"\x00" + b.tbs)), "inclusion": []},
    }


def value_of(b: Batch, i: int, **over) -> bytes:
    fields = dict(batch_id=b.batch_id, batch_time_ms=b.batch_time_ms, tree_size=b.size, leaf_index=i,
                  salt=b.salts[i], path=list(b.paths[i]), sigs=[] if b.detached else list(b.sigs),
                  flags=1 if b.detached else 0)
    fields.update(over)
    return ref_value(**fields)


def set_header(ex, side, name, value):
    for pair in ex[side]["headers"]:
        if pair[0].lower() == name.lower():
            pair[1] = value
            return ex
    raise KeyError(name)


def get_header(ex, side, name):
    return next(v for n, v in ex[side]["headers"] if n.lower() == name.lower())


def tampered(ex, fn):
    ex = copy.deepcopy(ex)
    fn(ex)
    return ex


def with_value(ex, value: bytes, label=LABEL):
    return tampered(ex, lambda e: set_header(e, "response", "Signature", f"{label}=:{_b64(value)}:"))


def with_si(ex, old, new):
    def fn(e):
        si = get_header(e, "response", "Signature-Input")
        assert old in si, (old, si)
        set_header(e, "response", "Signature-Input", si.replace(old, new))
    return tampered(ex, fn)


def vcheck(ex, jwks, **kw):
    checks = vb.verify_exchange(ex, jwks, **kw)
    return vb.exit_code(checks), "\n".join(line for _, line in checks)


def must_pass(what, ex, jwks, quiet=False, **kw):
    rc, out = vcheck(ex, jwks, **kw)
    labels = kw.get("labels") or [LABEL]
    ok = rc == 0 and all(f"ok label={lb} verified" in out for lb in labels)
    return expect(ok, f"valid: {what}", out, kind="valid", quiet=quiet)


def must_fail(what, ex, jwks, contains=(f"FAIL label={LABEL}",), quiet=False, **kw):
    rc, out = vcheck(ex, jwks, **kw)
    ok = rc == 1 and all(c in out for c in contains)
    return expect(ok, f"tamper: {what} -> FAIL", f"exit {rc}, want FAIL containing {list(contains)}:\n{out}",
                  kind="tamper", quiet=quiet)


def flip(data: bytes, i: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[i] ^= mask
    return bytes(b)


# --------------------------------------------------------------------------
# a) tree
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
# (0-based leaf index, tree size, audit path) from the CT reference tests.
CT_PROOFS = [
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


def raises(fn, exc=vb.VerifyError) -> bool:
    try:
        fn()
    except exc:
        return True
    return False


def test_tree():
    print("a) RFC 9162 tree and inclusion proofs")
    ct = [H(b"\x00" + bytes.fromhex(d)) for d in CT_DATA]
    expect(all(vb.merkle_root(ct[:n]).hex() == CT_ROOTS[n - 1] == ref_mth(ct[:n]).hex() for n in range(1, 9)),
           "CT reference roots for sizes 1..8 (verify_batch and the recursive reference)")
    ok = True
    for idx, size, proof in CT_PROOFS:
        path = [bytes.fromhex(p) for p in proof]
        ok &= vb.inclusion_path(ct[:size], idx) == path == ref_path(idx, ct[:size])
        ok &= vb.root_from_path(ct[idx], idx, size, path).hex() == CT_ROOTS[size - 1]
    expect(ok, "CT reference inclusion proofs (leaf 0/8, 5/8, 2/3, 1/5)")

    leaves = [H(bytes([i]) * 3) for i in range(5)]
    # explicit shapes: n=3 splits 2+1, n=5 splits 4+1
    n01, n23 = ref_node(leaves[0], leaves[1]), ref_node(leaves[2], leaves[3])
    expect(vb.merkle_root(leaves[:3]) == H(b"\x01" + n01 + leaves[2])
           and vb.merkle_root(leaves[:5]) == H(b"\x01" + H(b"\x01" + n01 + n23) + leaves[4])
           and vb.merkle_root(leaves[:1]) == leaves[0],
           "tree shape: 1 leaf is its own root, 3 = (2,1), 5 = (4,1)")
    expect(vb.node_hash(b"a" * 32, b"b" * 32) == H(b"\x01" + b"a" * 32 + b"b" * 32)
           and vb.leaf_hash(b"s" * 16, b"base") == H(b"\x00" + b"s" * 16 + b"base"),
           "leaf = H(0x00||salt||base), node = H(0x01||l||r)")

    bad = []
    same_root_other_size = 0
    for n in range(1, 34):
        d = [H(f"leaf-{n}-{i}".encode()) for i in range(n)]
        root = ref_mth(d)
        if vb.merkle_root(d) != root:
            bad.append(f"root n={n}")
        for i in range(n):
            path = vb.inclusion_path(d, i)
            if path != ref_path(i, d):
                bad.append(f"path {i}/{n}")
            if vb.root_from_path(d[i], i, n, path) != root:
                bad.append(f"verify {i}/{n}")
            if path and not raises(lambda: vb.root_from_path(d[i], i, n, path[:-1])):
                bad.append(f"truncated {i}/{n}")
            if not raises(lambda: vb.root_from_path(d[i], i, n, path + [root])):
                bad.append(f"extended {i}/{n}")
            if not raises(lambda: vb.root_from_path(d[i], n, n, path)):
                bad.append(f"index=size {i}/{n}")
            for j in (i - 1, i + 1):  # neighbour index with this proof: error or another root
                if 0 <= j < n:
                    try:
                        if vb.root_from_path(d[i], j, n, path) == root:
                            bad.append(f"index {j} accepted for leaf {i}/{n}")
                    except vb.MerkleError:
                        pass
            try:  # one more leaf in the tree with this proof: RFC 9162 proofs do not bind the size
                if vb.root_from_path(d[i], i, n + 1, path) == root:
                    same_root_other_size += 1
            except vb.MerkleError:
                pass
            if vb.root_from_path(flip(d[i], 0), i, n, path) == root:
                bad.append(f"flipped leaf {i}/{n}")
            for k in range(len(path)):
                p2 = list(path)
                p2[k] = flip(p2[k], 31)
                if vb.root_from_path(d[i], i, n, p2) == root:
                    bad.append(f"flipped path[{k}] {i}/{n}")
    expect(not bad, "sizes 1..33: root, every index's path (== recursive), proof verifies; truncated/extended/"
           "index=size rejected; neighbour index, flipped leaf or path element give another root",
           ", ".join(bad[:20]))
    # E.g. leaf 0 of 3 and of 4 leaves: both compute H(1||H(1||l0||l1)||p). The path alone does not
    # authenticate tree_size; the TBS does (see the "tree_size 13 -> 14" tamper case).
    expect(same_root_other_size > 0, f"note: {same_root_other_size} (index, size) proofs also give the same root "
           "under size + 1 (RFC 9162 property; tree_size is bound by the TBS)")
    for n in (100, 1000):
        d = [H(f"big-{i}".encode()) for i in range(n)]
        expect(vb.merkle_root(d) == ref_mth(d), f"size {n}: root equals the recursive reference")

    # The spec's limits: 65536 leaves (path_len 16) is the largest tree.
    n = 65536
    d = [H(i.to_bytes(4, "big")) for i in range(n)]
    root = vb.merkle_root(d)
    expect(root == ref_mth(d), "size 65536: root equals the recursive reference")
    ok = True
    for i in (0, 40000, n - 1):
        path = vb.inclusion_path(d, i)
        ok &= len(path) == 16 and path == ref_path(i, d) and vb.root_from_path(d[i], i, n, path) == root
    expect(ok, "size 65536: proofs of 16 hashes verify")
    expect(raises(lambda: vb.root_from_path(d[0], 0, n + 1, vb.inclusion_path(d, 0) + [root]), vb.MerkleError),
           "tree_size 65537 rejected")
    expect(raises(lambda: vb.root_from_path(d[0], 0, 0, []), vb.MerkleError),
           "tree_size 0 rejected")
    expect(raises(lambda: vb.root_from_path(d[0], 0, n, [root] * 17), vb.MerkleError), "path_len 17 rejected")
    expect(vb.root_from_path(d[0], 0, 1, []) == d[0], "size 1: empty path, root = leaf")


# --------------------------------------------------------------------------
# b) byte layouts and structured fields
# --------------------------------------------------------------------------


def test_layouts():
    print("b) TBS, signature value and structured fields")
    bid, ms, root = bytes(range(16)), 1_718_000_000_123, H(b"root")
    signers = [(1, ECDSA_KID), (2, MLDSA_KID)]
    t = vb.tbs(HYBRID_ALG, bid, ms, 13, signers, root)
    want = ref_tbs(HYBRID_ALG, bid, ms, 13, signers, root)
    expect(t == want, "tbs() equals the reference layout")
    expect(t[:64] == b" " * 64 and t[64:86] == b"http-batch-sig/v1 root" and t[86:88] == b"\x00\x01"
           and t[88:104] == bid and t[104:112] == ms.to_bytes(8, "big") and t[112:116] == (13).to_bytes(4, "big")
           and t[116] == len(HYBRID_ALG) and t[-32:] == root
           and len(t) == 64 + 22 + 1 + 1 + 16 + 8 + 4 + 1 + len(HYBRID_ALG) + 1
           + sum(2 + len(k) for _, k in signers) + 32,
           "tbs: 64 spaces, context, 0x00, version, batch_id, time, size, alg, list, root at the right offsets")
    path = [H(b"p1"), H(b"p2")]
    sigs = [(1, ECDSA_KID, b"\x11" * 64), (2, MLDSA_KID, b"\x22" * 3309)]
    raw = ref_value(bid, ms, 13, 6, b"\x5a" * 16, path, sigs)
    v = vb.decode_value(raw)
    expect(v.version == 1 and v.flags == 0 and v.batch_id == bid and v.batch_time_ms == ms and v.tree_size == 13
           and v.leaf_index == 6 and v.salt == b"\x5a" * 16 and v.path == path
           and [(s.code, s.keyid, s.sig) for s in v.signatures] == sigs,
           "decode_value() reads every field of the reference encoding")
    expect(vb.encode_value(v) == raw, "encode_value(decode_value(x)) == x")
    expect(len(raw) == 2 + 16 + 8 + 4 + 4 + 16 + 1 + 64 + 1 + (1 + 1 + len(ECDSA_KID) + 2 + 64)
           + (1 + 1 + len(MLDSA_KID) + 2 + 3309), "value length matches the section 6 layout")
    bad = [n for n in range(len(raw)) if not raises(lambda: vb.decode_value(raw[:n]), vb.BatchFormatError)]
    expect(not bad, "decode_value rejects every truncation", f"accepted prefixes: {bad[:10]}")
    for what, data in (
        ("trailing byte", raw + b"\x00"),
        ("version 0", b"\x00" + raw[1:]),
        ("version 2", b"\x02" + raw[1:]),
        ("flags 0x01 (detached) with count 2", raw[:1] + b"\x01" + raw[2:]),
        ("flags 0x02", raw[:1] + b"\x02" + raw[2:]),
        ("flags 0x03", raw[:1] + b"\x03" + raw[2:]),
        ("flags 0x80", raw[:1] + b"\x80" + raw[2:]),
        ("non-ASCII keyid", raw.replace(ECDSA_KID.encode(), b"\xff" + ECDSA_KID.encode()[1:])),
        ("sig_len past the end", raw[:-3309 - 2] + (3310).to_bytes(2, "big") + raw[-3309:]),
    ):
        expect(raises(lambda: vb.decode_value(data), vb.BatchFormatError), f"decode_value rejects {what}")

    # The detached form (section 6.1): flags 0x01, count 0.
    draw = ref_value(bid, ms, 13, 6, b"\x5a" * 16, path, [], flags=1)
    dv = vb.decode_value(draw)
    expect(dv.detached is True and dv.flags == 1 and dv.signatures == [] and dv.path == path and dv.leaf_index == 6
           and v.detached is False, "decode_value: flags 0x01 with count 0 is detached, without signatures")
    built = vb.BatchValue(batch_id=bid, batch_time_ms=ms, tree_size=13, leaf_index=6, salt=b"\x5a" * 16, path=path,
                          detached=True)
    expect(vb.encode_value(dv) == draw and vb.encode_value(built) == draw,
           "encode_value(decode_value(detached)) == detached; detached=True sets flag 0x01")
    for what, data in (
        ("flags 0x01 with count 1", ref_value(bid, ms, 13, 6, b"\x5a" * 16, path, sigs[:1], flags=1)),
        ("flags 0x02 with count 0", ref_value(bid, ms, 13, 6, b"\x5a" * 16, path, [], flags=2)),
        ("detached, trailing byte", draw + b"\x00"),
        ("detached, count byte missing", draw[:-1]),
    ):
        expect(raises(lambda: vb.decode_value(data), vb.BatchFormatError), f"decode_value rejects {what}")
    expect(vb.batch_document_url("https://u:p@Example.com:8443/a/b?c=d#e", bid)
           == "https://Example.com:8443/.well-known/http-batch-sig/v1/batch/" + bid.hex()
           and vb.batch_document_url("HTTP://127.0.0.1/x", bytes(16)).endswith("/v1/batch/" + "0" * 32)
           and vb.batch_document_url("http://127.0.0.1/x", bytes(16)).startswith("http://127.0.0.1/.well-known/")
           and raises(lambda: vb.batch_document_url("ftp://h/x", bid), vb.BatchDocumentError),
           "batch_document_url: origin of the request URL (no userinfo, path or query), lower-case hex, http(s)")

    # Structured fields.
    d = vb.parse_dictionary('a=("x" "y";req);created=1;k="v\\"q", b=:AQID:, c=tok/x:1, d, e=?0;p=-1.5, f=42')
    expect(d["a"] == ([("x", {}), ("y", {"req": True})], {"created": 1, "k": 'v"q'})
           and d["b"] == (b"\x01\x02\x03", {}) and isinstance(d["c"][0], vb.Token) and d["c"][0] == "tok/x:1"
           and d["d"] == (True, {}) and d["e"] == (False, {"p": -1.5}) and d["f"] == (42, {}),
           "parse_dictionary: inner list + params, string escapes, bytes, token, bare key, bool, decimal, int")
    expect(vb.serialize_inner_list(*d["a"]) == '("x" "y";req);created=1;k="v\\"q"',
           "serialize_inner_list is canonical")
    expect(vb.parse_dictionary("a=:AQI:")["a"][0] == b"\x01\x02", "byte sequence without padding accepted")
    expect(vb.parse_dictionary('a=(  "x"   "y" );n=1')["a"] == ([("x", {}), ("y", {})], {"n": 1}),
           "inner list with extra spaces parses")
    bad_inputs = ('a=("x",', "a=1,", 'a="unterminated', "a=:AQ$D:", "A=1", "a=(\"x\"", "a=1 b=2",
                  'a="x\\n"', "a=?2", "a=1234567890123456", "a=1.2345", "a=é")
    accepted = [t for t in bad_inputs if not raises(lambda: vb.parse_dictionary(t), vb.SFError)]
    expect(not accepted, f"parse_dictionary rejects {len(bad_inputs)} malformed inputs", f"accepted: {accepted}")


# --------------------------------------------------------------------------
# c) signature base
# --------------------------------------------------------------------------


def _base_for(exchange, label):
    ex = vb.load_exchange(exchange)
    si = vb.parse_dictionary(", ".join(ex.field_values("signature-input")))
    sigs = vb.parse_dictionary(", ".join(ex.field_values("signature")))
    comps, params = si[label]
    return vb.signature_base(ex, comps, vb.serialize_inner_list(comps, params)), sigs[label][0]


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def custom_exchanges():
    ex1 = {
        "request": {"method": "POST", "url": "https://Example.COM:443/a%20b/c?x=1&y=%7E",
                    "headers": [["Host", "example.com"], ["Accept", "  text/html "], ["accept", "application/json"]]},
        "response": {"status": 200, "headers": [["Cache-Control", "no-cache"], ["cache-control", "  max-age=0\t"],
                                                ["X-Request-Id", "abc"]], "body_b64": _b64(b"hi")},
    }
    ex2 = {
        "request": {"method": "OPTIONS", "url": "http://127.0.0.1:80",
                    "headers": [["Accept", "*/*"]]},
        "response": {"status": 503, "headers": [["Cache-Control", "no-store"], ["X-Request-Id", " r2 "]],
                     "body_b64": ""},
    }
    return ex1, ex2


CUSTOM_COMPS = ('"@status" "@authority";req "@scheme";req "@path";req "@query";req "@method";req "accept";req '
                '"cache-control" "x-request-id"')
CUSTOM_BASES = [
    '"@status": 200\n"@authority";req: example.com\n"@scheme";req: https\n"@path";req: /a%20b/c\n'
    '"@query";req: ?x=1&y=%7E\n"@method";req: POST\n"accept";req: text/html, application/json\n'
    '"cache-control": no-cache, max-age=0\n"x-request-id": abc\n',
    '"@status": 503\n"@authority";req: 127.0.0.1\n"@scheme";req: http\n"@path";req: /\n"@query";req: ?\n'
    '"@method";req: OPTIONS\n"accept";req: */*\n"cache-control": no-store\n"x-request-id": r2\n',
]


def custom_prepare(ex, alg, created, keyid):
    i = 0 if ex["request"]["method"] == "POST" else 1
    params = f'({CUSTOM_COMPS});created={created};keyid="{keyid}";alg="{alg}";nonce="n{i}";tag="{TAG}"'
    return params, (CUSTOM_BASES[i] + f'"@signature-params": {params}').encode()


def test_base(keys):
    print("c) RFC 9421 signature base")
    rfc_jwks = vb.load_jwks(load_fixture("rfc9421-b24.jwks.json"))
    for name, label in (("rfc9421-b24", "sig-b24"), ("rfc9421-s2.4-reqres", "reqres")):
        base, sig = _base_for(load_fixture(f"{name}.exchange.json"), label)
        try:
            vb.verify_root_signature(1, rfc_jwks["test-key-ecc-p256"], sig, base)
            good = True
        except vb.VerifyError as e:
            good = str(e)
        expect(good is True, f"fixtures/{name}: the RFC's ECDSA signature verifies over verify_batch's base",
               f"{good}\n{base.decode()}")
    hy = load_fixture("pyhms-hybrid.exchange.json")
    hy_keys = vb.load_jwks(load_fixture("pyhms-hybrid.jwks.json"))
    for label, code, kid in (("sig-ecdsa", 1, "qv-test-ecdsa-p256"), ("sig-mldsa", 2, "qv-test-ml-dsa-65")):
        base, sig = _base_for(hy, label)
        with open(os.path.join(FIXTURES, f"pyhms-hybrid.{label}.base.txt"), "rb") as f:
            want = f.read()
        expect(base == want, f"fixtures/pyhms-hybrid {label}: base equals http-message-signatures' base",
               base.decode())
        try:
            vb.verify_root_signature(code, hy_keys[kid], sig, base)
            good = True
        except vb.VerifyError as e:
            good = str(e)
        expect(good is True, f"fixtures/pyhms-hybrid {label}: signature verifies over it", str(good))

    ex1, ex2 = custom_exchanges()
    b = sign_batch([ex1, ex2], HYBRID_ALG, keys, prepare=custom_prepare, seq=900)
    for i in range(2):
        base, _ = _base_for(b.exchanges[i], LABEL)
        expect(base == b.bases[i], f"custom components #{i}: @authority/@scheme/@path/@query/;req fields, "
               "repeated fields joined, whitespace trimmed", base.decode() + "\n-- want --\n" + b.bases[i].decode())
        must_pass(f"custom components #{i} batch leaf", b.exchanges[i], keys.jwks)
    e = b.exchanges[0]
    must_fail("custom: @authority changed (;req)", tampered(e, lambda x: x["request"].update(
        url="https://example.org/a%20b/c?x=1&y=%7E")), keys.jwks, ("root-signature code=1",))
    must_fail("custom: @scheme changed (;req)", tampered(e, lambda x: x["request"].update(
        url="http://example.com:443/a%20b/c?x=1&y=%7E")), keys.jwks)
    must_fail("custom: @path percent-encoding changed (;req)", tampered(e, lambda x: x["request"].update(
        url="https://example.com/a b/c?x=1&y=%7E")), keys.jwks)
    must_fail("custom: accept;req changed", tampered(e, lambda x: set_header(x, "request", "accept", "x/y")),
              keys.jwks)
    must_fail("custom: repeated field order swapped", tampered(e, lambda x: x["response"].update(headers=[
        ["cache-control", "max-age=0"], ["Cache-Control", "no-cache"]] + x["response"]["headers"][2:])), keys.jwks)
    # @target-uri is not covered by the custom list, so only the normalised parts matter:
    must_pass("custom: host case / default port do not change @authority",
              tampered(e, lambda x: x["request"].update(url="https://EXAMPLE.com/a%20b/c?x=1&y=%7E")), keys.jwks)


# --------------------------------------------------------------------------
# d) valid batches
# --------------------------------------------------------------------------


def test_batches(keys, wd):
    print("d) signed batches: every leaf verifies")
    batches = {}
    seq = 1
    keyset = vb.load_jwks(keys.jwks)
    for alg in SPEC_ALGS:
        for n in SIZES:
            b = sign_batch([make_exchange(i) for i in range(n)], alg, keys, seq=seq)
            seq += 1
            batches[(alg, n)] = b
            failed = []
            for i, ex in enumerate(b.exchanges):
                rc, out = vcheck(ex, keyset, require_digest=bool(ex["response"]["body_b64"]))
                if rc != 0 or f"ok label={LABEL} verified" not in out:
                    failed.append(f"leaf {i}:\n{out}")
                COUNTS["valid"][0 if rc == 0 else 1] += 1
            expect(not failed, f"{alg} size {n}: all {n} leaves verify", "\n".join(failed[:2]))
    # The JWKS as JSON (not preloaded), and the CLI in process with files.
    b = batches[(HYBRID_ALG, 13)]
    must_pass("hybrid size 13 leaf 6 with the JWKS dict", b.exchanges[6], keys.jwks, require_digest=True)
    ex_path, jwks_path = wd.write(b.exchanges[5]), wd.write(keys.jwks)
    rc, out = run_main([ex_path, jwks_path, "--require-digest"])
    expect(rc == 0 and out.rstrip().endswith("result: PASS") and "ok content-digest sha-256" in out
           and "ok label=sig-batch root-signature code=1" in out and "ok label=sig-batch root-signature code=2" in out,
           "CLI (in process): hybrid leaf, --require-digest -> exit 0, one line per check", out, kind="valid")
    rc, out = run_main([ex_path, jwks_path, "--label", LABEL, "--max-age", "600", "--clock-skew", "5"])
    expect(rc == 0, "CLI: --label sig-batch --max-age 600 --clock-skew 5 -> exit 0", out, kind="valid")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_batch.py"), ex_path, jwks_path,
                           "--require-digest"], capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 0 and proc.stdout.rstrip().endswith("result: PASS"),
           "CLI subprocess: exit 0, result: PASS", proc.stdout + proc.stderr, kind="valid")
    bad_path = wd.write(tampered(b.exchanges[5], lambda e: e["response"].update(status=500)))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_batch.py"), bad_path, jwks_path],
                          capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 1 and "result: FAIL" in proc.stdout, "CLI subprocess: tampered status -> exit 1",
           proc.stdout + proc.stderr, kind="tamper")

    # Valid variations of the encoding.
    ex = b.exchanges[6]
    raw6 = value_of(b, 6)
    expect(get_header(ex, "response", "Signature") == f"{LABEL}=:{_b64(raw6)}:" and _b64(raw6).endswith("="),
           "leaf 6's Signature is the reference value (padded base64)")
    must_pass("Signature byte sequence without '=' padding", tampered(ex, lambda e: set_header(
        e, "response", "Signature", f"{LABEL}=:{_b64(raw6).rstrip('=')}:")), keys.jwks)
    must_pass("Signature-Input with extra spaces (re-serialized canonically)",
              with_si(ex, '("@status" "content-digest"', '( "@status"   "content-digest"'), keys.jwks)
    must_pass("header names in another case, values with surrounding spaces",
              tampered(ex, lambda e: e["response"].update(headers=[
                  [n.upper() if n.lower() in ("x-request-id", "content-type") else n,
                   f"  {v} " if n.lower() == "x-request-id" else v] for n, v in e["response"]["headers"]])),
              keys.jwks)
    relabelled = tampered(ex, lambda e: e["response"].update(headers=[
        [n, v.replace("sig-batch=", "qv-b=")] if n in ("Signature", "Signature-Input") else [n, v]
        for n, v in e["response"]["headers"]]))
    rc, out = vcheck(relabelled, keys.jwks)
    expect(rc == 0 and "ok label=qv-b verified" in out, "valid: another label name is found by its merkle- alg",
           out, kind="valid")
    must_fail("--label sig-batch when the batch label is named otherwise", relabelled, keys.jwks,
              ("FAIL label=sig-batch signature-input reason=label not in Signature-Input",), labels=[LABEL])
    split = tampered(ex, lambda e: e["response"].update(headers=[
        p for p in e["response"]["headers"] if p[0] != "Signature"] + [
        ["Signature", "other=:AAAA:"], ["Signature", get_header(e, "response", "Signature")]]))
    must_pass("Signature split over two field lines (combined)", split, keys.jwks)
    no_content = batches[(HYBRID_ALG, 5)].exchanges[3]
    expect(no_content["response"]["status"] == 204 and not no_content["response"]["body_b64"],
           "size-5 leaf 3 is a 204 without content")
    must_pass("204 without content (no content-digest covered)", no_content, keys.jwks)
    must_fail("204 without content but --require-digest", no_content, keys.jwks,
              ("FAIL content-digest reason=missing",), require_digest=True)
    sha512 = batches[(MLDSA_ALG, 13)].exchanges[4]
    rc, out = vcheck(sha512, keys.jwks, require_digest=True)
    expect(rc == 0 and "ok content-digest sha-256" in out and "ok content-digest sha-512" in out,
           "valid: Content-Digest with sha-256 and sha-512, both checked", out, kind="valid")

    # Section 9: inline sig-ecdsa beside the batch label.
    inl = sign_batch([make_exchange(i) for i in (0, 1, 5)], HYBRID_ALG, keys, seq=800, inline_ecdsa=True)
    rc, out = vcheck(inl.exchanges[1], keys.jwks, require_digest=True)
    expect(rc == 0 and "skip label=sig-ecdsa reason=not a batch label" in out and "ok label=sig-batch verified" in out,
           "valid: inline sig-ecdsa beside sig-batch is skipped, the batch label verifies", out, kind="valid")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import verify  # noqa: F401  (http-message-signatures; optional here)
    except Exception as e:  # pragma: no cover
        print(f"  skip  verify.py on the inline sig-ecdsa label ({e})")
    else:
        p_ex, p_jwks = wd.write(inl.exchanges[1]), wd.write(keys.jwks)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = verify.main([p_ex, p_jwks, "--label", "sig-ecdsa", "--require-digest"], out=out)
        expect(rc == 0, "valid: verify.py (http-message-signatures) verifies the inline sig-ecdsa label",
               out.getvalue() + err.getvalue(), kind="valid")
    return batches, inl


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = vb.main(argv, out=out)
    return rc, out.getvalue() + err.getvalue()


# --------------------------------------------------------------------------
# e) tampering
# --------------------------------------------------------------------------


def test_tamper(keys, batches, inl):
    print("e) tampering: every case must fail")
    J = keys.jwks
    b = batches[(HYBRID_ALG, 13)]
    i = 6
    ex = b.exchanges[i]
    both = ("root-signature code=1", "root-signature code=2")
    expect(len(b.paths[i]) == 4 and ex["response"]["status"] == 201, "hybrid size 13, leaf 6: POST 201, 4-hash path")

    body = base64.b64decode(ex["response"]["body_b64"])
    results = []
    for k in range(len(body)):
        e2 = tampered(ex, lambda e: e["response"].update(body_b64=_b64(flip(body, k))))
        results.append(must_fail(f"body byte {k} flipped", e2, J, ("FAIL content-digest sha-256",), quiet=True))
    expect(all(results), f"tamper: each of the {len(body)} body bytes flipped -> FAIL content-digest", kind="check")
    must_fail("body byte flipped, --require-digest", tampered(ex, lambda e: e["response"].update(
        body_b64=_b64(flip(body, 0)))), J, ("FAIL content-digest",), require_digest=True)
    must_fail("body truncated", tampered(ex, lambda e: e["response"].update(body_b64=_b64(body[:-1]))), J,
              ("FAIL content-digest",))
    must_fail("status 201 -> 200", tampered(ex, lambda e: e["response"].update(status=200)), J, both)
    must_fail("content-type changed", tampered(ex, lambda e: set_header(e, "response", "Content-Type", "text/html")),
              J, both)
    must_fail("x-request-id changed", tampered(ex, lambda e: set_header(e, "response", "X-Request-Id", "other")),
              J, both)
    must_fail("content-digest header replaced (matching another body)", tampered(ex, lambda e: (
        e["response"].update(body_b64=_b64(b"{}")),
        set_header(e, "response", "Content-Digest", "sha-256=:" + _b64(hashlib.sha256(b"{}").digest()) + ":"))),
        J, both)
    url = ex["request"]["url"]
    for what, fn in (
        ("request method POST -> GET (;req)", lambda e: e["request"].update(method="GET")),
        ("request method case post (;req)", lambda e: e["request"].update(method="post")),
        ("URL path (;req)", lambda e: e["request"].update(url=url.replace("/items/6", "/items/7"))),
        ("URL query added (;req)", lambda e: e["request"].update(url=url + "?x=1")),
        ("URL port (;req)", lambda e: e["request"].update(url=url.replace(":8080", ":8081"))),
        ("URL scheme (;req)", lambda e: e["request"].update(url=url.replace("http://", "https://"))),
    ):
        must_fail(what, tampered(ex, fn), J, both)
    q = batches[(HYBRID_ALG, 13)].exchanges[5]
    must_fail("URL query value (;req)", tampered(q, lambda e: e["request"].update(
        url=e["request"]["url"].replace("page=5", "page=6"))), J, both)
    must_fail("covered header removed", tampered(ex, lambda e: e["response"].update(headers=[
        p for p in e["response"]["headers"] if p[0] != "X-Request-Id"])), J, ("signature-base reason=",))
    must_fail("Content-Digest removed while covered", tampered(ex, lambda e: e["response"].update(headers=[
        p for p in e["response"]["headers"] if p[0] != "Content-Digest"])), J, ("signature-base reason=",))
    must_fail("signed parameter changed (nonce)", with_si(ex, 'nonce="', 'nonce="x'), J, both)
    must_fail("signed parameter changed (tag)", with_si(ex, TAG, "other-app"), J, both)
    must_fail("signed parameter changed (created)", with_si(ex, ";created=", ";created=1"), J, both)
    must_fail("keyid parameter changed", with_si(ex, f'keyid="{ECDSA_KID}"', 'keyid="other"'), J,
              both + ("FAIL label=sig-batch keyid reason=",))
    must_fail("covered component dropped from Signature-Input", with_si(ex, ' "x-request-id"', ""), J, both)
    must_fail("covered component listed twice", with_si(ex, '"x-request-id"', '"x-request-id" "x-request-id"'), J,
              ("signature-base reason=component \"x-request-id\" listed twice",))
    must_fail('"@status";req', with_si(ex, '"@status"', '"@status";req'), J, ("signature-base",))
    must_fail('"@method" without ;req', with_si(ex, '"@method";req', '"@method"'), J, ("signature-base",))
    must_fail("unsupported component parameter ;sf", with_si(ex, '"x-request-id"', '"x-request-id";sf'), J,
              ("signature-base",))

    # The value: index, path, salt, batch fields.
    must_fail("leaf_index + 1", with_value(ex, value_of(b, i, leaf_index=i + 1)), J)
    must_fail("leaf_index = tree_size", with_value(ex, value_of(b, i, leaf_index=b.size)), J,
              ("FAIL label=sig-batch root reason=leaf_index 13 >= tree_size 13",))
    must_fail("leaf_index = 2^32 - 1", with_value(ex, value_of(b, i, leaf_index=2**32 - 1)), J, ("root reason=",))
    res = []
    for k in range(len(b.paths[i])):
        for byte in (0, 31):
            p2 = list(b.paths[i])
            p2[k] = flip(p2[k], byte)
            res.append(must_fail(f"path[{k}] byte {byte} flipped", with_value(ex, value_of(b, i, path=p2)), J, both,
                                 quiet=True))
    expect(all(res), "tamper: each path element flipped (first and last byte) -> FAIL both root signatures")
    must_fail("path truncated", with_value(ex, value_of(b, i, path=b.paths[i][:-1])), J,
              ("root reason=path too short",))
    must_fail("path extended", with_value(ex, value_of(b, i, path=b.paths[i] + [H(b"x")])), J,
              ("root reason=path too long",))
    must_fail("path elements swapped", with_value(ex, value_of(b, i, path=[b.paths[i][1], b.paths[i][0]]
                                                                + b.paths[i][2:])), J, both)
    must_fail("path_len 17", with_value(ex, value_of(b, i, path=[H(b"x")] * 17)), J, ("root reason=path_len 17",))
    must_fail("empty path for a 13-leaf tree", with_value(ex, value_of(b, i, path=[])), J, ("root reason=",))
    must_fail("salt byte flipped", with_value(ex, value_of(b, i, salt=flip(b.salts[i], 7))), J, both)
    must_fail("another leaf's salt", with_value(ex, value_of(b, i, salt=b.salts[i + 1])), J, both)
    must_fail("batch_id first byte", with_value(ex, value_of(b, i, batch_id=flip(b.batch_id, 0))), J, both)
    must_fail("batch_id last byte (sequence)", with_value(ex, value_of(b, i, batch_id=flip(b.batch_id, 15))), J, both)
    must_fail("batch_time_ms + 1", with_value(ex, value_of(b, i, batch_time_ms=b.batch_time_ms + 1)), J, both)
    must_fail("tree_size 13 -> 14", with_value(ex, value_of(b, i, tree_size=14)), J)
    must_fail("tree_size 13 -> 12", with_value(ex, value_of(b, i, tree_size=12)), J)
    must_fail("tree_size 0", with_value(ex, value_of(b, i, tree_size=0)), J, ("root reason=tree_size 0",))
    must_fail("tree_size 65537", with_value(ex, value_of(b, i, tree_size=65537)), J, ("root reason=tree_size 65537",))

    # Root and root signatures.
    wrong = sign_batch([make_exchange(j) for j in range(13)], HYBRID_ALG, keys, seq=700,
                       root_override=flip(H(b"not the root"), 0))
    must_fail("root signatures over a TBS with another root", wrong.exchanges[i], J, both)
    wrong_root = ref_tbs(HYBRID_ALG, b.batch_id, b.batch_time_ms, b.size, b.signers, flip(b.root, 31))
    resigned = [(c, KIDS[c], keys.sign(c, wrong_root)) for c in (1, 2)]
    must_fail("re-signed with the real keys over root with one bit flipped", with_value(
        ex, value_of(b, i, sigs=resigned)), J, both)
    ec_sig, ml_sig = b.sigs
    for what, sigs, contains in (
        ("ECDSA signature byte 0 flipped", [(1, ECDSA_KID, flip(ec_sig[2], 0)), ml_sig], ("FAIL label=sig-batch root-signature code=1",)),
        ("ECDSA signature byte 63 flipped", [(1, ECDSA_KID, flip(ec_sig[2], 63)), ml_sig], ("FAIL label=sig-batch root-signature code=1",)),
        ("ML-DSA signature byte 0 flipped", [ec_sig, (2, MLDSA_KID, flip(ml_sig[2], 0))], ("FAIL label=sig-batch root-signature code=2",)),
        ("ML-DSA signature byte 1700 flipped", [ec_sig, (2, MLDSA_KID, flip(ml_sig[2], 1700))], ("FAIL label=sig-batch root-signature code=2",)),
        ("ML-DSA signature last byte flipped", [ec_sig, (2, MLDSA_KID, flip(ml_sig[2], 3308, 0x80))], ("FAIL label=sig-batch root-signature code=2",)),
        ("ECDSA signature 63 bytes", [(1, ECDSA_KID, ec_sig[2][:63]), ml_sig], ("root-signature code=1", "64")),
        ("ECDSA signature 65 bytes", [(1, ECDSA_KID, ec_sig[2] + b"\x00"), ml_sig], ("root-signature code=1",)),
        ("ECDSA r = 0", [(1, ECDSA_KID, bytes(32) + ec_sig[2][32:]), ml_sig], ("root-signature code=1",)),
        ("ML-DSA signature 3308 bytes", [ec_sig, (2, MLDSA_KID, ml_sig[2][:-1])], ("root-signature code=2", "3309")),
        ("ECDSA signature copied into the ML-DSA slot", [ec_sig, (2, MLDSA_KID, ec_sig[2])], ("root-signature code=2",)),
        ("code 1 keyid names the ML-DSA key", [(1, MLDSA_KID, ec_sig[2]), ml_sig], ("root-signature code=1",)),
        ("keyid not in the JWKS", [(1, "nope", ec_sig[2]), ml_sig], ("not in the JWKS",)),
        ("one half of the hybrid stripped (ML-DSA)", [ec_sig], ("codes reason=value lists codes [1] but alg",)),
        ("one half of the hybrid stripped (ECDSA)", [ml_sig], ("codes reason=value lists codes [2]",)),
        ("hybrid signatures swapped", [ml_sig, ec_sig], ("codes reason=value lists codes [2, 1]",)),
        ("ECDSA signature repeated", [ec_sig, ec_sig], ("codes reason=",)),
        ("extra third signature", [ec_sig, ml_sig, ml_sig], ("codes reason=",)),
        ("count 0", [], ("codes reason=value lists codes []",)),
        ("unknown code 3 appended", [ec_sig, ml_sig, (3, "x", b"")], ("codes reason=",)),
    ):
        must_fail(what, with_value(ex, value_of(b, i, sigs=sigs)), J, contains)
    ec_b = batches[(ECDSA_ALG, 8)]
    ec_ex = ec_b.exchanges[3]
    r, s = int.from_bytes(ec_b.sigs[0][2][:32], "big"), int.from_bytes(ec_b.sigs[0][2][32:], "big")
    n = vb.P256_ORDER
    must_pass("ECDSA (r, n - s) is the same signature (no low-S rule in the spec)", with_value(
        ec_ex, value_of(ec_b, 3, sigs=[(1, ECDSA_KID, r.to_bytes(32, "big") + (n - s).to_bytes(32, "big"))])), J)
    must_fail("ECDSA s = n (out of range)", with_value(ec_ex, value_of(ec_b, 3, sigs=[
        (1, ECDSA_KID, r.to_bytes(32, "big") + n.to_bytes(32, "big"))])), J, ("root-signature code=1", "out of range"))
    must_fail("ECDSA r = n (out of range)", with_value(ec_ex, value_of(ec_b, 3, sigs=[
        (1, ECDSA_KID, n.to_bytes(32, "big") + s.to_bytes(32, "big"))])), J, ("root-signature code=1", "out of range"))

    # Relabelling the algorithm (alg is inside the base, so the leaf changes too).
    must_fail("alg merkle-hybrid -> merkle-ecdsa, ML-DSA signature removed", with_value(
        with_si(ex, f'alg="{HYBRID_ALG}"', f'alg="{ECDSA_ALG}"'), value_of(b, i, sigs=[ec_sig])), J,
        ("FAIL label=sig-batch root-signature code=1",))
    must_fail("alg merkle-hybrid -> merkle-ml-dsa (keyid too), ECDSA signature removed", with_value(
        with_si(with_si(ex, f'alg="{HYBRID_ALG}"', f'alg="{MLDSA_ALG}"'), f'keyid="{ECDSA_KID}"', f'keyid="{MLDSA_KID}"'),
        value_of(b, i, sigs=[ml_sig])), J, ("FAIL label=sig-batch root-signature code=2",))
    must_fail("alg merkle-ecdsa -> merkle-ml-dsa", with_si(ec_ex, f'alg="{ECDSA_ALG}"', f'alg="{MLDSA_ALG}"'), J,
              ("codes reason=value lists codes [1] but alg merkle-ml-dsa-65 names [2]",))
    ml_b = batches[(MLDSA_ALG, 8)]
    ml_ex = ml_b.exchanges[2]
    must_fail("alg merkle-ml-dsa -> merkle-ecdsa", with_si(ml_ex, f'alg="{MLDSA_ALG}"', f'alg="{ECDSA_ALG}"'), J,
              ("codes reason=",))
    must_fail("alg merkle-ecdsa -> merkle-hybrid", with_si(ec_ex, f'alg="{ECDSA_ALG}"', f'alg="{HYBRID_ALG}"'), J,
              ("codes reason=",))
    must_fail("alg merkle-ecdsa -> merkle-hybrid with an ML-DSA signature added", with_value(
        with_si(ec_ex, f'alg="{ECDSA_ALG}"', f'alg="{HYBRID_ALG}"'),
        value_of(ec_b, 3, sigs=[ec_b.sigs[0], (2, MLDSA_KID, keys.sign(2, ec_b.tbs))])), J, both)
    must_fail("unknown alg merkle-foo", with_si(ex, f'alg="{HYBRID_ALG}"', 'alg="merkle-foo"'), J,
              ("signature-input reason=unsupported alg 'merkle-foo'",))
    must_fail("alg as a token, not a string", with_si(ex, f'alg="{HYBRID_ALG}"', f"alg={HYBRID_ALG}"), J,
              ("FAIL",), labels=[LABEL])
    must_fail("no created parameter", with_si(ex, ";created=", ";x="), J, ("signature-input reason=no created",))

    # Value framing.
    raw = value_of(b, i)
    must_fail("trailing byte appended", with_value(ex, raw + b"\x00"), J, ("value reason=1 trailing byte",))
    must_fail("flags 0x01 (detached) but the signatures still in the value", with_value(ex, value_of(b, i, flags=1)),
              J, ("value reason=detached value (flags 0x01) with count 2",))
    must_fail("unknown flags 0x02", with_value(ex, value_of(b, i, flags=2)), J, ("value reason=unknown flags 0x02",))
    must_fail("unknown flags 0x80", with_value(ex, value_of(b, i, flags=0x80)), J, ("value reason=unknown flags",))
    must_fail("version 2", with_value(ex, value_of(b, i, version=2)), J, ("value reason=unsupported version 2",))
    must_fail("version 0", with_value(ex, value_of(b, i, version=0)), J, ("value reason=unsupported version 0",))
    must_fail("sig_len runs past the end", with_value(ex, raw[:-3309 - 2] + (3310).to_bytes(2, "big") + raw[-3309:]),
              J, ("value reason=truncated",))
    res = []
    for cut in list(range(0, 140)) + [len(raw) - 3309 - 2, len(raw) - 1]:
        res.append(must_fail(f"value truncated to {cut} bytes", with_value(ex, raw[:cut]), J, ("value reason=",),
                             quiet=True))
    ec_raw = value_of(ec_b, 3)
    for cut in range(len(ec_raw)):
        res.append(must_fail(f"ECDSA value truncated to {cut} bytes", with_value(ec_ex, ec_raw[:cut]), J,
                             ("value reason=",), quiet=True))
    expect(all(res), f"tamper: value truncated at {len(res)} lengths -> FAIL value")
    must_fail("Signature member is not a byte sequence", tampered(ex, lambda e: set_header(
        e, "response", "Signature", 'sig-batch="abc"')), J, ("signature reason=Signature member is not a byte",))
    must_fail("Signature has no sig-batch member", tampered(ex, lambda e: set_header(
        e, "response", "Signature", "sig-other=:" + _b64(raw) + ":")), J, ("signature reason=label not in",))
    must_fail("Signature-Input removed", tampered(ex, lambda e: e["response"].update(headers=[
        p for p in e["response"]["headers"] if p[0] != "Signature-Input"])), J, ("FAIL signature-input reason=",))
    must_fail("Signature-Input malformed", tampered(ex, lambda e: set_header(
        e, "response", "Signature-Input", get_header(e, "response", "Signature-Input") + ",")), J,
        ("FAIL signature-input reason=",))
    must_fail("Signature malformed", tampered(ex, lambda e: set_header(e, "response", "Signature", "sig-batch=:@@:")),
              J, ("FAIL signature reason=",))
    must_fail("another response's signature value (same batch)", with_value(ex, value_of(b, i + 1)), J, both)
    other = sign_batch([make_exchange(j) for j in range(13)], HYBRID_ALG, keys, seq=701)
    must_fail("another batch's signature value (same index and size)", tampered(ex, lambda e: set_header(
        e, "response", "Signature", get_header(other.exchanges[i], "response", "Signature"))), J, both)

    # Keys.
    ec_jwk, ml_jwk = keys.ec_jwk, keys.ml_jwk
    for what, jwks, exm, contains in (
        ("an ECDSA key offered for the ML-DSA code (hybrid)", {"keys": [ec_jwk, dict(ec_jwk, kid=MLDSA_KID)]}, ex,
         ("root-signature code=2 alg=ml-dsa-65 keyid=qv-batch-ml-dsa-65 reason=key type",)),
        ("an ECDSA key offered for the ML-DSA code (merkle-ml-dsa)", {"keys": [dict(ec_jwk, kid=MLDSA_KID)]}, ml_ex,
         ("root-signature code=2 alg=ml-dsa-65 keyid=qv-batch-ml-dsa-65 reason=key type",)),
        ("an ML-DSA key offered for the ECDSA code", {"keys": [dict(ml_jwk, kid=ECDSA_KID), ml_jwk]}, ex,
         ("root-signature code=1 alg=ecdsa-p256-sha256 keyid=qv-batch-ecdsa-p256 reason=key type",)),
        ("kids of the two keys swapped", {"keys": [dict(ec_jwk, kid=MLDSA_KID), dict(ml_jwk, kid=ECDSA_KID)]}, ex,
         ("reason=key type",)),
        ("empty JWKS", {"keys": []}, ex, ("not in the JWKS",)),
        ("wrong keys under the same kids", Keys("other-gateway").jwks, ex, both),
        ("wrong ECDSA key only", {"keys": [Keys("other-gateway").ec_jwk, ml_jwk]}, ex, ("FAIL label=sig-batch root-signature code=1",)),
        ("wrong ML-DSA key only", {"keys": [ec_jwk, Keys("other-gateway").ml_jwk]}, ex, ("FAIL label=sig-batch root-signature code=2",)),
        ("key with use=enc", {"keys": [dict(ec_jwk, use="enc"), ml_jwk]}, ex, ("not in the JWKS",)),
    ):
        must_fail(what, exm, jwks, contains, notes=[])

    # keyid parameter that does not repeat the first root signature's keyid, all signatures valid.
    kb = sign_batch([make_exchange(j) for j in range(2)], ECDSA_ALG, keys, seq=702, keyid_param="gateway-key")
    rc, out = vcheck(kb.exchanges[1], J)
    expect(rc == 1 and "FAIL label=sig-batch keyid reason=" in out and "ok label=sig-batch root-signature code=1" in out,
           "tamper: keyid parameter != first root signature keyid (signatures valid) -> FAIL keyid", out, kind="tamper")

    # Time.
    now = int(time.time())
    fut = sign_batch([make_exchange(1)], HYBRID_ALG, keys, seq=703, created=now + 3600)
    must_fail("created one hour in the future", fut.exchanges[0], J, ("time reason=created", "future"))
    old = sign_batch([make_exchange(1)], HYBRID_ALG, keys, seq=704, created=now - 1000)
    must_pass("created 1000 s ago, no --max-age", old.exchanges[0], J)
    must_fail("created 1000 s ago, --max-age 60", old.exchanges[0], J, ("time reason=", "max-age"), max_age=60)
    must_pass("created 1000 s ago, --max-age 5000", old.exchanges[0], J, max_age=5000)
    exp = sign_batch([make_exchange(1)], HYBRID_ALG, keys, seq=705, created=now - 2000, expires=now - 1000)
    must_fail("expires in the past", exp.exchanges[0], J, ("time reason=expires",))
    live = sign_batch([make_exchange(1)], HYBRID_ALG, keys, seq=706, created=now - 10, expires=now + 600)
    must_pass("expires in the future", live.exchanges[0], J)

    # The inline label never makes up for a broken batch label.
    def break_batch_flags(x):
        head, rest = get_header(x, "response", "Signature").split(", sig-ecdsa=", 1)
        raw = base64.b64decode(head[len(LABEL) + 2:-1])
        set_header(x, "response", "Signature", f"{LABEL}=:{_b64(raw[:1] + bytes([2]) + raw[2:])}:, sig-ecdsa={rest}")

    must_fail("inline sig-ecdsa fine, batch value broken", tampered(inl.exchanges[1], break_batch_flags), J,
              ("value reason=unknown flags 0x02",))


# --------------------------------------------------------------------------
# f) usage errors
# --------------------------------------------------------------------------


class Workdir:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="qv-interop-batch-")
        self.n = 0

    def write(self, obj) -> str:
        self.n += 1
        path = os.path.join(self.tmp, f"f{self.n}.json")
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
        return path


def test_usage(wd, keys, batches):
    print("f) usage errors (exit 2)")
    ex = batches[(HYBRID_ALG, 3)].exchanges[0]
    good_ex, good_jwks = wd.write(ex), wd.write(keys.jwks)
    bad_json = os.path.join(wd.tmp, "bad.json")
    with open(bad_json, "w") as f:
        f.write("{not json")
    for what, argv in (
        ("missing arguments", [good_ex]),
        ("unknown option", [good_ex, good_jwks, "--bogus"]),
        ("--max-age not a number", [good_ex, good_jwks, "--max-age", "x"]),
        ("nonexistent file", [good_ex, os.path.join(wd.tmp, "nope.json")]),
        ("exchange not JSON", [bad_json, good_jwks]),
        ("JWKS not JSON", [good_ex, bad_json]),
        ("exchange missing response", [wd.write({"request": ex["request"]}), good_jwks]),
        ("bad body_b64", [wd.write(tampered(ex, lambda e: e["response"].update(body_b64="@@@"))), good_jwks]),
        ("status not an integer", [wd.write(tampered(ex, lambda e: e["response"].update(status="200"))), good_jwks]),
        ("JWKS without keys", [good_ex, wd.write({"k": []})]),
        ("JWKS AKP pub wrong length", [good_ex, wd.write({"keys": [dict(keys.ml_jwk, pub=_b64url(b"x" * 10))]})]),
        ("JWKS EC point not on curve", [good_ex, wd.write({"keys": [dict(keys.ec_jwk, y=keys.ec_jwk["x"])]})]),
        ("JWKS duplicate kid", [good_ex, wd.write({"keys": [keys.ec_jwk, keys.ec_jwk]})]),
    ):
        rc, out = run_main(argv)
        expect(rc == 2, f"usage/parse error: {what} -> exit 2", f"got {rc}: {out}")


# --------------------------------------------------------------------------
# g) the detached form (section 6.1)
# --------------------------------------------------------------------------

DOC_PATH = "/.well-known/http-batch-sig/v1/batch/"  # section 6.1, copied here


class DocServer:
    """A tiny http.server on 127.0.0.1 (a free port, its own thread) serving batch documents.

    routes: path -> (status, body bytes, delay in seconds); any other path is a 404. hits: the
    paths requested, in order."""

    def __init__(self):
        routes, hits = {}, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                status, body, delay = routes.get(self.path, (404, b'{"error":"no_batch"}', 0))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    if status != 204:
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if status != 204:
                        self.wfile.write(body)
                except OSError:  # the client gave up (timeout case)
                    pass

            def log_message(self, *args):
                pass

        self.routes, self.hits = routes, hits
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="docserver", daemon=True)
        self.thread.start()

    def path(self, batch_id: bytes) -> str:
        return DOC_PATH + batch_id.hex()

    def serve(self, batch_id: bytes, doc=None, *, status=200, raw=None, delay=0):
        body = raw if raw is not None else json.dumps(doc).encode()
        self.routes[self.path(batch_id)] = (status, body, delay)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def at_origin(ex: dict, origin: str) -> dict:
    """An unsigned exchange whose request went to origin (so @target-uri;req names it)."""
    ex = copy.deepcopy(ex)
    url = ex["request"]["url"]
    ex["request"]["url"] = origin + url[url.index("/", url.index("//") + 2):]
    set_header(ex, "request", "Host", origin.split("//", 1)[1])
    return ex


def doc_with(doc: dict, **over) -> dict:
    """A copy of a batch document with members replaced (None removes one)."""
    d = copy.deepcopy(doc)
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def sigs_entries(doc: dict, *idx, flip_at=None) -> list:
    """The document's signatures entries in the order idx; flip_at=(n, byte) flips one byte of entry n."""
    out = [copy.deepcopy(doc["signatures"][k]) for k in idx]
    if flip_at is not None:
        n, byte = flip_at
        out[n]["sig"] = _b64(flip(base64.b64decode(out[n]["sig"]), byte))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detached(keys, wd):
    print("g) detached form (section 6.1): root signatures in the batch document")
    J = keys.jwks
    keyset = vb.load_jwks(J)
    seq = 1000
    dets = {}
    for alg in SPEC_ALGS:
        for n in SIZES:
            b = sign_batch([make_exchange(i) for i in range(n)], alg, keys, seq=seq, detached=True)
            seq += 1
            dets[(alg, n)] = b
            docs = {b.batch_id.hex(): b.document}
            failed = []
            for i, ex in enumerate(b.exchanges):
                rc, out = vcheck(ex, keyset, batch_documents=docs, fetch=False,
                                 require_digest=bool(ex["response"]["body_b64"]))
                good = (rc == 0 and f"ok label={LABEL} verified" in out and " detached" in out
                        and f"ok label={LABEL} batch-document from batch_documents['{b.batch_id.hex()}'] "
                            f"signatures={len(SPEC_ALGS[alg])}" in out)
                if not good:
                    failed.append(f"leaf {i}:\n{out}")
                COUNTS["valid"][0 if good else 1] += 1
            expect(not failed, f"detached {alg} size {n}: all {n} leaves verify with the document (library)",
                   "\n".join(failed[:2]))
    b = dets[(HYBRID_ALG, 13)]
    i = 6
    ex = b.exchanges[i]
    hexid = b.batch_id.hex()
    raw = base64.b64decode(get_header(ex, "response", "Signature")[len(LABEL) + 2:-1])
    expect(raw[1] == 1 and raw[-1] == 0 and len(raw) == 2 + 16 + 8 + 4 + 4 + 16 + 1 + 32 * len(b.paths[i]) + 1,
           "detached value: flags 0x01, count 0 (last byte), no signature bytes")
    doc = b.document
    docs = {hexid: doc}
    other = dets[(HYBRID_ALG, 8)]  # another batch with the same keys and alg
    both = ("root-signature code=1", "root-signature code=2")

    def dpass(what, exm, documents, **kw):
        return must_pass(f"detached: {what}", exm, J, batch_documents=documents, fetch=False, **kw)

    def dfail(what, exm, documents, contains=(f"FAIL label={LABEL}",), **kw):
        return must_fail(f"detached: {what}", exm, J, contains, batch_documents=documents, fetch=False, **kw)

    # Valid variations of how documents are given.
    dpass("document under the key '*' (any batch)", ex, {"*": doc})
    dpass("document keyed by the 16 raw batch_id bytes", ex, {b.batch_id: doc})
    dpass("document keyed by upper-case hex", ex, {hexid.upper(): doc})
    dpass("a parsed BatchDocument", ex, {hexid: vb.parse_batch_document(doc)})
    dpass("documents for other batches given as well", ex, {other.batch_id.hex(): other.document, hexid: doc})
    dpass("the exact key wins over '*'", ex, {"*": other.document, hexid: doc})
    dpass("document without batch_id", ex, {hexid: doc_with(doc, batch_id=None)})
    dpass("batch_id member in upper-case hex", ex, {hexid: doc_with(doc, batch_id=hexid.upper())})
    dpass("tbs altered (never trusted: the TBS is rebuilt)", ex, {hexid: doc_with(
        doc, tbs=_b64(flip(base64.b64decode(doc["tbs"]), 150)))})
    dpass("tbs of another batch", ex, {hexid: doc_with(doc, tbs=other.document["tbs"])})
    dpass("tbs, log and log_index removed", ex, {hexid: doc_with(doc, tbs=None, log=None, log_index=None)})
    dpass("log and log_index altered", ex, {hexid: doc_with(doc, log={"size": 7, "root": "", "inclusion": ["x"]},
                                                           log_index=99)})
    dpass("extra members (an alg per entry, an unknown top-level member)", ex, {hexid: doc_with(
        doc, signatures=[dict(e, alg={1: "ecdsa-p256-sha256", 2: "ml-dsa-65"}[e["code"]])
                         for e in doc["signatures"]], x_extra={"a": 1})})
    dpass("base64 without '=' padding", ex, {hexid: doc_with(
        doc, signatures=[dict(e, sig=e["sig"].rstrip("=")) for e in doc["signatures"]])})
    rc, out = vcheck(ex, keyset, batch_documents=docs, fetch=False)
    lines = out.splitlines()
    order = [next((k for k, ln in enumerate(lines) if f" {c}" in ln), -1)
             for c in ("root leaf=", "batch-document from", "codes 1,2", "keyid keyid=", "tbs bytes=")]
    expect(rc == 0 and order == sorted(order) and -1 not in order,
           "detached: batch-document line between root and codes", out)

    # Tampering with the document.
    for what, sig_list, contains in (
        ("ECDSA signature in the document flipped", sigs_entries(doc, 0, 1, flip_at=(0, 0)),
         ("FAIL label=sig-batch root-signature code=1",)),
        ("ECDSA signature last byte flipped", sigs_entries(doc, 0, 1, flip_at=(0, 63)),
         ("FAIL label=sig-batch root-signature code=1",)),
        ("ML-DSA signature in the document flipped", sigs_entries(doc, 0, 1, flip_at=(1, 1700)),
         ("FAIL label=sig-batch root-signature code=2",)),
        ("ML-DSA half removed from the list", sigs_entries(doc, 0),
         ("codes reason=batch document lists codes [1] but alg",)),
        ("ECDSA half removed from the list", sigs_entries(doc, 1),
         ("codes reason=batch document lists codes [2] but alg",)),
        ("the two halves swapped", sigs_entries(doc, 1, 0), ("codes reason=batch document lists codes [2, 1]",)),
        ("empty signature list", [], ("codes reason=batch document lists codes []",)),
        ("ECDSA entry repeated", sigs_entries(doc, 0, 0), ("codes reason=",)),
        ("extra third entry", sigs_entries(doc, 0, 1, 1), ("codes reason=",)),
        ("ECDSA keyid changed", [dict(doc["signatures"][0], keyid="other"), doc["signatures"][1]],
         ("keyid reason=keyid parameter", "not in the JWKS")),
        ("the keyids of the two entries swapped",
         [dict(doc["signatures"][0], keyid=MLDSA_KID), dict(doc["signatures"][1], keyid=ECDSA_KID)],
         ("reason=key type",)),
        ("ECDSA signature of another batch", [other.document["signatures"][0], doc["signatures"][1]],
         ("FAIL label=sig-batch root-signature code=1",)),
    ):
        dfail(what, ex, {hexid: doc_with(doc, signatures=sig_list)}, contains)
    dfail("a document for another batch (wrong signatures), batch_id rewritten to this one", ex,
          {hexid: doc_with(other.document, batch_id=hexid)}, both)
    dfail("a document for another batch, without batch_id, given for any batch", ex,
          {"*": doc_with(other.document, batch_id=None)}, both)
    dfail("a document for another batch (its own batch_id) given under this batch's key", ex,
          {hexid: other.document}, (f"batch-document reason=the document (from batch_documents['{hexid}']) is for "
                                    f"batch_id {other.batch_id.hex()}, the value names {hexid}",))
    dfail("documents only for other batches, fetching off", ex, {other.batch_id.hex(): other.document},
          (f"batch-document reason=no batch document for batch_id {hexid} (fetching is off)",))
    dfail("no document, fetching off", ex, None, ("batch-document reason=no batch document",))
    e0 = doc["signatures"][0]
    for what, bad in (
        ("not an object", [doc]),
        ("no signatures member", doc_with(doc, signatures=None)),
        ("signatures not a list", doc_with(doc, signatures={"0": e0})),
        ("an entry not an object", doc_with(doc, signatures=[[1, ECDSA_KID, e0["sig"]]])),
        ("code as a string", doc_with(doc, signatures=[dict(e0, code="1"), doc["signatures"][1]])),
        ("code true", doc_with(doc, signatures=[dict(e0, code=True), doc["signatures"][1]])),
        ("code 256", doc_with(doc, signatures=[dict(e0, code=256), doc["signatures"][1]])),
        ("code missing", doc_with(doc, signatures=[{"keyid": ECDSA_KID, "sig": e0["sig"]}, doc["signatures"][1]])),
        ("keyid a number", doc_with(doc, signatures=[dict(e0, keyid=1), doc["signatures"][1]])),
        ("keyid not ASCII", doc_with(doc, signatures=[dict(e0, keyid="qv-bätch"), doc["signatures"][1]])),
        ("sig not base64", doc_with(doc, signatures=[dict(e0, sig="@@@@"), doc["signatures"][1]])),
        ("sig with base64url characters", doc_with(doc, signatures=[dict(e0, sig=e0["sig"].rstrip("=") + "-_"),
                                                                   doc["signatures"][1]])),
        ("sig missing", doc_with(doc, signatures=[{"code": 1, "keyid": ECDSA_KID}, doc["signatures"][1]])),
        ("batch_id not hex", doc_with(doc, batch_id="not-a-batch-id")),
        ("batch_id of 31 digits", doc_with(doc, batch_id=hexid[:-1])),
    ):
        dfail(f"malformed document: {what}", ex, {hexid: bad}, ("batch-document reason=",))

    # Tampering with the value (the TBS is rebuilt from it, so the document's signatures no longer match).
    dfail("detached value that still carries the signatures (flags 0x01, count 2)", with_value(
        ex, value_of(b, i, sigs=list(b.sigs))), docs, ("value reason=detached value (flags 0x01) with count 2",))
    dfail("detached value carrying the ECDSA signature only (count 1)", with_value(
        ex, value_of(b, i, sigs=b.sigs[:1])), docs, ("value reason=detached value (flags 0x01) with count 1",))
    dfail("flags 0x02 (count 0)", with_value(ex, value_of(b, i, flags=2)), docs, ("value reason=unknown flags 0x02",))
    dfail("flags 0x03 (count 0)", with_value(ex, value_of(b, i, flags=3)), docs, ("value reason=unknown flags 0x03",))
    dfail("flags 0x81 (count 0)", with_value(ex, value_of(b, i, flags=0x81)), docs, ("value reason=unknown flags",))
    dfail("flag cleared (0x00, count 0): the document is not consulted", with_value(
        ex, value_of(b, i, flags=0)), docs, ("codes reason=value lists codes []",))
    dfail("batch_time_ms + 1", with_value(ex, value_of(b, i, batch_time_ms=b.batch_time_ms + 1)), docs, both)
    dfail("tree_size 13 -> 14", with_value(ex, value_of(b, i, tree_size=14)), docs)
    dfail("batch_id changed, document keyed '*'", with_value(ex, value_of(b, i, batch_id=flip(b.batch_id, 15))),
          {"*": doc_with(doc, batch_id=None)}, both)
    dfail("batch_id changed (the document names the real one)", with_value(
        ex, value_of(b, i, batch_id=flip(b.batch_id, 15))), {"*": doc}, ("batch-document reason=the document",))
    dfail("path element flipped", with_value(ex, value_of(b, i, path=[flip(b.paths[i][0], 3)] + b.paths[i][1:])),
          docs, both)
    dfail("status 201 -> 200", tampered(ex, lambda e: e["response"].update(status=200)), docs, both)
    dfail("another leaf's value (same batch)", with_value(ex, value_of(b, i + 1)), docs, both)
    dfail("value of the attached-form batch of the same size (other root, own signatures)", tampered(
        ex, lambda e: set_header(e, "response", "Signature", get_header(other.exchanges[0], "response",
                                                                        "Signature"))), docs)

    # The CLI with --batch FILE.
    ex_path, jwks_path = wd.write(ex), wd.write(J)
    doc_path, other_path = wd.write(doc), wd.write(other.document)
    anon_path = wd.write(doc_with(doc, batch_id=None))
    rc, out = run_main([ex_path, jwks_path, "--batch", doc_path, "--require-digest"])
    expect(rc == 0 and f"ok label=sig-batch batch-document from {doc_path} signatures=2" in out
           and out.rstrip().endswith("result: PASS"),
           "CLI --batch FILE: detached hybrid leaf verifies, 'ok ... batch-document from FILE'", out, kind="valid")
    rc, out = run_main([ex_path, jwks_path, "--batch", other_path, "--batch", doc_path, "--no-fetch"])
    expect(rc == 0 and f"batch-document from {doc_path}" in out,
           "CLI: two --batch files, the one with the value's batch_id is used", out, kind="valid")
    rc, out = run_main([ex_path, jwks_path, "--batch", other_path, "--batch", anon_path, "--no-fetch"])
    expect(rc == 0 and f"batch-document from {anon_path}" in out,
           "CLI: a --batch file without batch_id serves a batch no other file names", out, kind="valid")
    rc, out = run_main([ex_path, jwks_path, "--batch", other_path, "--no-fetch"])
    expect(rc == 1 and "FAIL label=sig-batch batch-document reason=no batch document" in out,
           "CLI: --batch for another batch only, --no-fetch -> exit 1", out, kind="tamper")
    rc, out = run_main([ex_path, jwks_path, "--no-fetch"])
    expect(rc == 1 and "(fetching is off)" in out, "CLI: detached, no --batch, --no-fetch -> exit 1", out,
           kind="tamper")
    flipped_path = wd.write(doc_with(doc, signatures=sigs_entries(doc, 0, 1, flip_at=(1, 5))))
    rc, out = run_main([ex_path, jwks_path, "--batch", flipped_path])
    expect(rc == 1 and "FAIL label=sig-batch root-signature code=2" in out and "result: FAIL (1 failed)" in out,
           "CLI: --batch document with the ML-DSA signature flipped -> exit 1", out, kind="tamper")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_batch.py"), ex_path, jwks_path,
                           "--batch", doc_path], capture_output=True, text=True, timeout=60)
    expect(proc.returncode == 0 and proc.stdout.rstrip().endswith("result: PASS")
           and f"batch-document from {doc_path}" in proc.stdout,
           "CLI subprocess --batch FILE: exit 0, result: PASS", proc.stdout + proc.stderr, kind="valid")
    bad_json = os.path.join(wd.tmp, "bad-doc.json")
    with open(bad_json, "w") as f:
        f.write('{"signatures": [')
    for what, argv in (
        ("--batch without a file", [ex_path, jwks_path, "--batch"]),
        ("--batch nonexistent file", [ex_path, jwks_path, "--batch", os.path.join(wd.tmp, "nope.json")]),
        ("--batch file not JSON", [ex_path, jwks_path, "--batch", bad_json]),
        ("--batch document without signatures", [ex_path, jwks_path, "--batch", wd.write({"batch_id": hexid})]),
        ("--batch document with a bad sig", [ex_path, jwks_path, "--batch", wd.write(
            doc_with(doc, signatures=[dict(e0, sig="!")]))]),
        ("--batch document with a bad batch_id", [ex_path, jwks_path, "--batch",
                                                  wd.write(doc_with(doc, batch_id="x"))]),
        ("two --batch files with one batch_id", [ex_path, jwks_path, "--batch", doc_path, "--batch",
                                                 wd.write(doc)]),
        ("two --batch files without batch_id", [ex_path, jwks_path, "--batch", anon_path, "--batch", anon_path]),
    ):
        rc, out = run_main(argv)
        expect(rc == 2, f"usage/parse error: {what} -> exit 2", f"got {rc}: {out}")

    # Through a real fetch from the request's origin.
    server = DocServer()
    try:
        fetched = {}
        for alg, n in ((ECDSA_ALG, 3), (MLDSA_ALG, 2), (HYBRID_ALG, 13)):
            fb = sign_batch([at_origin(make_exchange(k), server.origin) for k in range(n)], alg, keys, seq=seq,
                            detached=True)
            seq += 1
            server.serve(fb.batch_id, fb.document)
            fetched[alg] = fb
            cache: dict = {}
            url = server.origin + server.path(fb.batch_id)
            failed = []
            for k, fex in enumerate(fb.exchanges):
                rc, out = vcheck(fex, keyset, fetch_cache=cache)
                good = rc == 0 and f"ok label=sig-batch batch-document fetched from {url} signatures=" in out
                if not good:
                    failed.append(f"leaf {k}:\n{out}")
                COUNTS["valid"][0 if good else 1] += 1
            expect(not failed and server.hits.count(server.path(fb.batch_id)) == 1 and list(cache) == [url],
                   f"fetch: detached {alg} size {n}: all leaves verify with the document fetched from "
                   f"{server.origin}{DOC_PATH}<32 hex>, once (fetch_cache)",
                   "\n".join(failed[:2]) + f"\nhits: {server.hits}")
        fb = fetched[HYBRID_ALG]
        fex = fb.exchanges[6]
        fid = fb.batch_id
        url = server.origin + server.path(fid)
        n_hits = len(server.hits)
        must_pass("fetch: without a cache", fex, J)
        expect(len(server.hits) == n_hits + 1 and server.hits[-1] == DOC_PATH + fid.hex()
               and len(fid.hex()) == 32 and fid.hex() == fid.hex().lower(),
               "fetch: GET of the exact path /.well-known/http-batch-sig/v1/batch/{32 lower-case hex}")
        fex_path = wd.write(fex)
        rc, out = run_main([fex_path, jwks_path, "--require-digest"])
        expect(rc == 0 and f"ok label=sig-batch batch-document fetched from {url} signatures=2" in out
               and out.rstrip().endswith("result: PASS"),
               "CLI (in process) fetches the document: 'ok ... batch-document fetched from URL'", out, kind="valid")
        proc = subprocess.run([sys.executable, os.path.join(HERE, "verify_batch.py"), fex_path, jwks_path],
                              capture_output=True, text=True, timeout=60)
        expect(proc.returncode == 0 and proc.stdout.rstrip().endswith("result: PASS")
               and f"batch-document fetched from {url}" in proc.stdout,
               "CLI subprocess fetches the document: exit 0", proc.stdout + proc.stderr, kind="valid")
        n_hits = len(server.hits)
        rc, out = run_main([fex_path, jwks_path, "--batch", wd.write(fb.document)])
        expect(rc == 0 and len(server.hits) == n_hits and "batch-document from " in out,
               "CLI: a matching --batch file is used instead of fetching (no request)", out, kind="valid")
        must_fail("fetch: fetch=False, a served document is not fetched", fex, J,
                  ("batch-document reason=no batch document", "(fetching is off)"), fetch=False)
        expect(len(server.hits) == n_hits, "fetch=False makes no request")

        fdoc = fb.document
        served_ok = (
            ("served tbs altered (the TBS is rebuilt; still verifies)",
             doc_with(fdoc, tbs=_b64(flip(base64.b64decode(fdoc["tbs"]), 120)))),
            ("served tbs replaced by garbage", doc_with(fdoc, tbs="not base64 at all!")),
            ("served tbs, log, log_index removed", doc_with(fdoc, tbs=None, log=None, log_index=None)),
            ("served with an alg member per entry, as a gateway may add", doc_with(
                fdoc, signatures=[dict(e, alg="x") for e in fdoc["signatures"]])),
        )
        for what, d in served_ok:
            server.serve(fid, d)
            must_pass(f"fetch: {what}", fex, J)
        fe0, fe1 = fdoc["signatures"]
        served_bad = (
            ("404", dict(status=404, raw=b'{"error":"no_batch"}'), ("batch-document reason=GET", "HTTP 404")),
            ("500", dict(status=500, raw=b"oops"), ("batch-document reason=", "HTTP 500")),
            ("204 without a body", dict(status=204, raw=b""), ("batch-document reason=", "HTTP 204 (want 200)")),
            ("malformed JSON", dict(raw=json.dumps(fdoc).encode()[:-7]), ("batch-document reason=", "not valid JSON")),
            ("empty body", dict(raw=b""), ("batch-document reason=", "not valid JSON")),
            ("not UTF-8", dict(raw=b"\xff\xfe{}"), ("batch-document reason=", "not valid JSON")),
            ("a JSON array", dict(raw=b"[]"), ("batch-document reason=GET", "batch document is not a JSON object")),
            ("no signatures member", dict(doc=doc_with(fdoc, signatures=None)), ("batch-document reason=",)),
            ("a signature flipped", dict(doc=doc_with(fdoc, signatures=sigs_entries(fdoc, 0, 1, flip_at=(1, 0)))),
             ("FAIL label=sig-batch root-signature code=2",)),
            ("one hybrid half removed", dict(doc=doc_with(fdoc, signatures=[fe0])), ("codes reason=batch document",)),
            ("the two halves swapped", dict(doc=doc_with(fdoc, signatures=[fe1, fe0])),
             ("codes reason=batch document lists codes [2, 1]",)),
            ("a document for another batch (its own batch_id)", dict(doc=fetched[ECDSA_ALG].document),
             ("batch-document reason=the document (fetched from", "is for batch_id")),
            ("another batch's signatures under this batch_id", dict(doc=doc_with(
                dets[(HYBRID_ALG, 13)].document, batch_id=fid.hex())), both),
        )
        for what, kw, contains in served_bad:
            server.serve(fid, **kw)
            must_fail(f"fetch: served {what}", fex, J, contains)
        server.routes.pop(server.path(fid))
        must_fail("fetch: nothing served at the path (404)", fex, J, ("batch-document reason=", "HTTP 404"))
        rc, out = run_main([fex_path, jwks_path])
        expect(rc == 1 and "FAIL label=sig-batch batch-document reason=GET" in out and "HTTP 404" in out,
               "CLI: server returns 404 -> FAIL line, exit 1 (no crash)", out, kind="tamper")
        server.serve(fid, fdoc, delay=1.0)
        t0 = time.monotonic()
        must_fail("fetch: server slower than fetch_timeout=0.3", fex, J, ("batch-document reason=GET",),
                  fetch_timeout=0.3)
        expect(time.monotonic() - t0 < 0.9, "fetch_timeout is honoured")
        server.serve(fid, fdoc)
        dead = f"http://127.0.0.1:{free_port()}"
        must_fail("fetch: connection refused (request URL on a closed port)", tampered(
            fex, lambda e: e["request"].update(url=e["request"]["url"].replace(server.origin, dead))), J,
            (f"batch-document reason=GET {dead}{DOC_PATH}{fid.hex()}:",))
        must_fail("fetch: request URL not http(s)", tampered(
            fex, lambda e: e["request"].update(url=e["request"]["url"].replace("http://", "ftp://"))), J,
            ("batch-document reason=request URL", "is not http or https"))
        must_pass("fetch: the document served again verifies", fex, J)
    finally:
        server.close()
    expect(not server.thread.is_alive(), "document server stopped")


def main() -> int:
    t0 = time.monotonic()
    keys = Keys("qv-selftest-batch")
    wd = Workdir()
    try:
        test_tree()
        test_layouts()
        test_base(keys)
        batches, inl = test_batches(keys, wd)
        test_tamper(keys, batches, inl)
        test_usage(wd, keys, batches)
        test_detached(keys, wd)
    finally:
        import shutil

        shutil.rmtree(wd.tmp, ignore_errors=True)
    dt = time.monotonic() - t0
    (vp, vf), (tp, tf), (cp, cf) = COUNTS["valid"], COUNTS["tamper"], COUNTS["check"]
    print(f"selftest_batch took {dt:.2f}s")
    print(f"selftest_batch: valid cases {vp} verified, {vf} failed; tamper cases {tp} rejected, {tf} accepted; "
          f"other checks {cp} passed, {cf} failed")
    if FAILURES:
        print(f"selftest_batch: FAIL ({len(FAILURES)} failed: " + "; ".join(FAILURES[:5])
              + (" ..." if len(FAILURES) > 5 else "") + ")")
        return 1
    print("selftest_batch: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
