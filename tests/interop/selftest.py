#!/usr/bin/env python3
"""Self-test of tests/interop/verify.py (run with the interop venv's python).

    python selftest.py                  # check; exit 0 on success, 1 on failure
    python selftest.py --write-fixtures # (re)write tests/interop/fixtures/*

a) RFC 9421 vectors with the RFC's key test-key-ecc-p256 (B.1.3):
   - Appendix B.2.4 "Signing a Response Using ecdsa-p256-sha256" (sig-b24)
   - Section 2.4 "Signing Request Components in a Response" (reqres), which
     covers "@method";req, "@authority";req, "@path";req, "content-digest";req
   The committed fixtures must equal what this file builds from the RFC text,
   must verify, and must fail when tampered.
b) A hybrid response in the gateway's wire format, signed by the
   http-message-signatures library (ECDSA P-256 + our ML-DSA-65 class) with
   keys derived from fixed seeds; it must verify and every tamper must fail.
   With --write-fixtures it is also stored as fixtures/pyhms-hybrid.* (for the
   Rust verifier), together with the exact signature bases.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, HERE)

import verify  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, mldsa  # noqa: E402
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms  # noqa: E402

# --------------------------------------------------------------------------
# RFC 9421 material (values copied from the RFC text; RFC 8792 wrapping undone)
# --------------------------------------------------------------------------

# B.1.3 test-key-ecc-p256 (public part as a JWK; the RFC's private scalar d
# is used only to check that x/y belong to it).
RFC_P256_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA",
    "y": "Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0",
    "kid": "test-key-ecc-p256",
    "alg": "ES256",
    "use": "sig",
}
RFC_P256_D = "UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs"

# B.2 test-request (its body {"hello": "world"} is not part of the exchange format).
RFC_TEST_REQUEST = {
    "method": "POST",
    "url": "https://example.com/foo?param=Value&Pet=dog",
    "headers": [
        ["Host", "example.com"],
        ["Date", "Tue, 20 Apr 2021 02:07:55 GMT"],
        ["Content-Type", "application/json"],
        [
            "Content-Digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ],
        ["Content-Length", "18"],
    ],
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc_b24_exchange():
    return {
        "request": copy.deepcopy(RFC_TEST_REQUEST),
        "response": {
            "status": 200,
            "headers": [
                ["Date", "Tue, 20 Apr 2021 02:07:56 GMT"],
                ["Content-Type", "application/json"],
                [
                    "Content-Digest",
                    "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:",
                ],
                ["Content-Length", "23"],
                [
                    "Signature-Input",
                    'sig-b24=("@status" "content-type" "content-digest" "content-length")'
                    ';created=1618884473;keyid="test-key-ecc-p256"',
                ],
                [
                    "Signature",
                    "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:",
                ],
            ],
            "body_b64": _b64(b'{"message": "good dog"}'),
        },
    }


def rfc_s24_reqres_exchange():
    # RFC 9421 section 2.4: a 503 response to the test-request, signed with
    # test-key-ecc-p256 and covering request components via ;req.
    return {
        "request": copy.deepcopy(RFC_TEST_REQUEST),
        "response": {
            "status": 503,
            "headers": [
                ["Date", "Tue, 20 Apr 2021 02:07:56 GMT"],
                ["Content-Type", "application/json"],
                ["Content-Length", "62"],
                [
                    "Content-Digest",
                    "sha-512=:0Y6iCBzGg5rZtoXS95Ijz03mslf6KAMCloESHObfwnHJDbkkWWQz6PhhU9kxsTbARtY2PTBOzq24uJFpHsMuAg==:",
                ],
                [
                    "Signature-Input",
                    'reqres=("@status" "content-digest" "content-type" "@authority";req "@method";req'
                    ' "@path";req "content-digest";req);created=1618884479;keyid="test-key-ecc-p256"',
                ],
                [
                    "Signature",
                    "reqres=:dMT/A/76ehrdBTD/2Xx8QuKV6FoyzEP/I9hdzKN8LQJLNgzU4W767HK05rx1i8meNQQgQPgQp8wq2ive3tV5Ag==:",
                ],
            ],
            "body_b64": _b64(b'{"busy": true, "message": "Your call is very important to us"}'),
        },
    }


RFC_JWKS = {"keys": [RFC_P256_JWK]}

# --------------------------------------------------------------------------
# Synthetic gateway-format exchange
# --------------------------------------------------------------------------

ECDSA_KID = "qv-test-ecdsa-p256"
MLDSA_KID = "qv-test-ml-dsa-65"
CREATED = 1700000000  # fixed, in the past: verify.py has no max age by default
GW_COMPONENTS = (
    "@status",
    "content-digest",
    "content-type",
    "x-request-id",
    '"@method";req',
    '"@target-uri";req',
)


def _seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def ecdsa_key(name: str) -> ec.EllipticCurvePrivateKey:
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order
    return ec.derive_private_key(int.from_bytes(_seed(name), "big") % (n - 1) + 1, ec.SECP256R1())


def mldsa_key(name: str) -> mldsa.MLDSA65PrivateKey:
    return mldsa.MLDSA65PrivateKey.from_seed_bytes(_seed(name))


def jwks_for(ec_pub, ml_pub) -> dict:
    nums = ec_pub.public_numbers()
    return {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64url(nums.x.to_bytes(32, "big")),
                "y": _b64url(nums.y.to_bytes(32, "big")),
                "kid": ECDSA_KID,
                "alg": "ES256",
                "use": "sig",
            },
            {
                "kty": "AKP",
                "alg": "ML-DSA-65",
                "pub": _b64url(ml_pub.public_bytes_raw()),
                "kid": MLDSA_KID,
                "use": "sig",
            },
        ]
    }


def make_hybrid(seed_prefix="qv-selftest", components=GW_COMPONENTS, created_ts=CREATED):
    """Sign a synthetic response with the library; return (exchange, jwks, bases)."""
    ec_priv, ml_priv = ecdsa_key(seed_prefix + "-ecdsa"), mldsa_key(seed_prefix + "-mldsa")
    body = b'{"id":42,"name":"widget","tags":["a","b"]}\n'
    url = "http://127.0.0.1:8080/api/x?y=1"
    request = verify.requests.Request("GET", url).prepare()
    request.url = url
    request.headers = verify.Headers(
        [["Host", "127.0.0.1:8080"], ["User-Agent", "qv-selftest/1"], ["Accept", "*/*"]]
    )
    response = verify.requests.Response()
    response.status_code = 200
    response.request = request
    response.headers = verify.Headers(
        [
            ["Content-Type", "application/json"],
            ["Content-Length", str(len(body))],
            ["X-Request-Id", "6f1c2a7e-4b1d-4f0e-9a53-2d8c1e0b7f31"],
            ["Content-Digest", "sha-256=:" + _b64(hashlib.sha256(body).digest()) + ":"],
        ]
    )
    created = datetime.datetime.fromtimestamp(created_ts, tz=datetime.timezone.utc)
    bases = {}
    for label, alg_cls, kid, key, tag, nonce in (
        ("sig-ecdsa", algorithms.ECDSA_P256_SHA256, ECDSA_KID, ec_priv, "quantumvault-ecdsa-p256", "bm9uY2UtZWNkc2E"),
        ("sig-mldsa", verify.ML_DSA_65, MLDSA_KID, ml_priv, "quantumvault-ml-dsa-65", "bm9uY2UtbWxkc2E"),
    ):
        signer = HTTPMessageSigner(
            signature_algorithm=alg_cls,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={kid: key}),
        )
        opts = dict(
            key_id=kid,
            created=created,
            nonce=nonce,
            label=label,
            tag=tag,
            covered_component_ids=components,
            body=body,
            use_existing_digest=True,
        )
        bases[label] = signer.prepare(response, **opts).signature_base
        signer.sign(response, append_if_signature_exists=True, **opts)
    exchange = {
        "request": {"method": "GET", "url": url, "headers": request.headers.to_json()},
        "response": {"status": 200, "headers": response.headers.to_json(), "body_b64": _b64(body)},
    }
    return exchange, jwks_for(ec_priv.public_key(), ml_priv.public_key()), bases


# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------

FAILURES: list[str] = []
N_CHECKS = 0


def expect(cond: bool, what: str, detail: str = "") -> None:
    global N_CHECKS
    N_CHECKS += 1
    if cond:
        print(f"  pass  {what}")
    else:
        FAILURES.append(what)
        print(f"  FAIL  {what}\n{detail}")


class Workdir:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="qv-interop-selftest-")
        self.n = 0

    def write(self, obj, name=None) -> str:
        self.n += 1
        path = os.path.join(self.tmp, name or f"f{self.n}.json")
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
        return path


def run_verify(exchange_path, jwks_path, *extra):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = verify.main([exchange_path, jwks_path, *extra], out=out)
    return rc, out.getvalue()


def check_rc(wd, exchange, jwks, want_rc, what, *extra, must_contain=()):
    rc, out = run_verify(wd.write(exchange), wd.write(jwks), *extra)
    ok = rc == want_rc and all(s in out for s in must_contain)
    expect(ok, f"{what} -> exit {want_rc}", f"    got exit {rc}:\n" + "".join(f"      {line}\n" for line in out.splitlines()))
    return out


def set_header(exchange, side, name, value):
    hdrs = exchange[side]["headers"]
    for pair in hdrs:
        if pair[0].lower() == name.lower():
            pair[1] = value
            return exchange
    raise KeyError(name)


def tampered(exchange, fn):
    ex = copy.deepcopy(exchange)
    fn(ex)
    return ex


def flip_body_byte(ex):
    body = bytearray(base64.b64decode(ex["response"]["body_b64"]))
    body[len(body) // 2] ^= 0x01
    ex["response"]["body_b64"] = _b64(bytes(body))


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def write_fixture(name, obj):
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, name)
    if isinstance(obj, bytes):
        with open(path, "wb") as f:
            f.write(obj)
    else:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    print(f"  wrote {os.path.relpath(path, HERE)}")


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_rfc(wd, write_fixtures):
    print("a) RFC 9421 vectors (test-key-ecc-p256)")
    # The JWK's x/y are the public point of the RFC's private scalar.
    d = int.from_bytes(base64.urlsafe_b64decode(RFC_P256_D + "="), "big")
    nums = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    expect(
        _b64url(nums.x.to_bytes(32, "big")) == RFC_P256_JWK["x"]
        and _b64url(nums.y.to_bytes(32, "big")) == RFC_P256_JWK["y"],
        "B.1.3 JWK x/y match the RFC private key",
    )
    vectors = [
        ("rfc9421-b24", rfc_b24_exchange(), "sig-b24"),
        ("rfc9421-s2.4-reqres", rfc_s24_reqres_exchange(), "reqres"),
    ]
    if write_fixtures:
        write_fixture("rfc9421-b24.jwks.json", RFC_JWKS)
        for name, ex, _ in vectors:
            write_fixture(f"{name}.exchange.json", ex)
    expect(load_fixture("rfc9421-b24.jwks.json") == RFC_JWKS, "fixtures/rfc9421-b24.jwks.json is the RFC key")
    jwks_path = os.path.join(FIXTURES, "rfc9421-b24.jwks.json")
    for name, ex, label in vectors:
        expect(load_fixture(f"{name}.exchange.json") == ex, f"fixtures/{name}.exchange.json matches the RFC text")
        path = os.path.join(FIXTURES, f"{name}.exchange.json")
        rc, out = run_verify(path, jwks_path, "--require-digest")
        expect(
            rc == 0 and f"ok label={label} keyid=test-key-ecc-p256 alg=ecdsa-p256-sha256" in out
            and "ok content-digest sha-512" in out,
            f"{name} verifies (label {label}, sha-512 digest)",
            out,
        )
        check_rc(wd, tampered(ex, flip_body_byte), RFC_JWKS, 1, f"{name}: body byte flipped")
        check_rc(wd, tampered(ex, lambda e: e["response"].update(status=201)), RFC_JWKS, 1, f"{name}: status changed")
        check_rc(
            wd,
            tampered(ex, lambda e: set_header(e, "response", "Content-Type", "text/plain")),
            RFC_JWKS,
            1,
            f"{name}: content-type changed",
        )
    ex = rfc_s24_reqres_exchange()
    for what, fn in (
        ("request method POST->PUT", lambda e: e["request"].update(method="PUT")),
        ("request path /foo->/bar", lambda e: e["request"].update(url="https://example.com/bar?param=Value&Pet=dog")),
        ("request authority", lambda e: e["request"].update(url="https://example.org/foo?param=Value&Pet=dog")),
        (
            "request content-digest",
            lambda e: set_header(e, "request", "Content-Digest", "sha-256=:" + _b64(bytes(32)) + ":"),
        ),
    ):
        check_rc(wd, tampered(ex, fn), RFC_JWKS, 1, f"rfc9421-s2.4-reqres: ;req binding, {what}")
    # Subprocess run: the real CLI, shebang-independent.
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "verify.py"), os.path.join(FIXTURES, "rfc9421-b24.exchange.json"),
         jwks_path, "--require-digest", "--label", "sig-b24"],
        capture_output=True, text=True, timeout=60,
    )
    expect(proc.returncode == 0 and proc.stdout.strip().endswith("result: PASS"), "CLI subprocess on B.2.4 exits 0",
           proc.stdout + proc.stderr)


def test_hybrid(wd, write_fixtures):
    print("b) synthetic hybrid response in the gateway wire format (signed by the library)")
    exchange, jwks, bases = make_hybrid()
    expected_base_ecdsa = "\n".join(
        [
            '"@status": 200',
            '"content-digest": sha-256=:' + _b64(hashlib.sha256(base64.b64decode(exchange["response"]["body_b64"])).digest()) + ":",
            '"content-type": application/json',
            '"x-request-id": 6f1c2a7e-4b1d-4f0e-9a53-2d8c1e0b7f31',
            '"@method";req: GET',
            '"@target-uri";req: http://127.0.0.1:8080/api/x?y=1',
            '"@signature-params": ("@status" "content-digest" "content-type" "x-request-id" "@method";req'
            ' "@target-uri";req);created=1700000000;keyid="qv-test-ecdsa-p256";alg="ecdsa-p256-sha256"'
            ';nonce="bm9uY2UtZWNkc2E";tag="quantumvault-ecdsa-p256"',
        ]
    ).encode()
    expect(bases["sig-ecdsa"] == expected_base_ecdsa, "library's sig-ecdsa signature base is the expected text",
           bases["sig-ecdsa"].decode())
    si = dict(exchange["response"]["headers"])["Signature-Input"]
    expect(si.startswith("sig-ecdsa=(") and ", sig-mldsa=(" in si, "one Signature-Input dictionary with both labels", si)
    if write_fixtures:
        write_fixture("pyhms-hybrid.exchange.json", exchange)
        write_fixture("pyhms-hybrid.jwks.json", jwks)
        for label, base in bases.items():
            write_fixture(f"pyhms-hybrid.{label}.base.txt", base)

    ex_path, jwks_path = wd.write(exchange, "hybrid.exchange.json"), wd.write(jwks, "hybrid.jwks.json")
    rc, out = run_verify(ex_path, jwks_path, "--require-digest")
    expect(
        rc == 0
        and f"ok label=sig-ecdsa keyid={ECDSA_KID} alg=ecdsa-p256-sha256 tag=quantumvault-ecdsa-p256" in out
        and f"ok label=sig-mldsa keyid={MLDSA_KID} alg=ml-dsa-65 tag=quantumvault-ml-dsa-65" in out
        and "ok content-digest sha-256" in out,
        "hybrid verifies (both labels + digest)",
        out,
    )
    for label in ("sig-ecdsa", "sig-mldsa"):
        rc, out = run_verify(ex_path, jwks_path, "--label", label, "--require-digest")
        expect(rc == 0 and f"ok label={label}" in out and out.count("ok label=") == 1, f"--label {label} alone verifies", out)

    # Committed library-made fixture still verifies (if present).
    if os.path.exists(os.path.join(FIXTURES, "pyhms-hybrid.exchange.json")):
        rc, out = run_verify(os.path.join(FIXTURES, "pyhms-hybrid.exchange.json"),
                             os.path.join(FIXTURES, "pyhms-hybrid.jwks.json"), "--require-digest")
        expect(rc == 0, "fixtures/pyhms-hybrid verifies", out)

    both = ("FAIL label=sig-ecdsa", "FAIL label=sig-mldsa")
    cases = [
        ("body byte flipped", flip_body_byte, ()),
        ("status 200->201", lambda e: e["response"].update(status=201), both),
        ("x-request-id changed", lambda e: set_header(e, "response", "X-Request-Id", "other"), both),
        ("content-type changed", lambda e: set_header(e, "response", "Content-Type", "text/html"), both),
        ("request method GET->POST (;req)", lambda e: e["request"].update(method="POST"), both),
        ("target URI path (;req)", lambda e: e["request"].update(url="http://127.0.0.1:8080/api/z?y=1"), both),
        ("target URI query (;req)", lambda e: e["request"].update(url="http://127.0.0.1:8080/api/x?y=2"), both),
        ("target URI port (;req)", lambda e: e["request"].update(url="http://127.0.0.1:8081/api/x?y=1"), both),
        ("target URI scheme (;req)", lambda e: e["request"].update(url="https://127.0.0.1:8080/api/x?y=1"), both),
    ]
    for what, fn, must in cases:
        check_rc(wd, tampered(exchange, fn), jwks, 1, f"hybrid: {what}", "--require-digest", must_contain=must)
    check_rc(wd, tampered(exchange, flip_body_byte), jwks, 1, "hybrid: body byte flipped (no --require-digest)")

    _, wrong_jwks, _ = make_hybrid("qv-selftest-WRONG")
    out = check_rc(wd, exchange, wrong_jwks, 1, "hybrid: wrong keys under the same kids", must_contain=both)
    for i, label in enumerate(("sig-ecdsa", "sig-mldsa")):
        mixed = copy.deepcopy(jwks)
        mixed["keys"][i] = wrong_jwks["keys"][i]
        check_rc(wd, exchange, mixed, 1, f"hybrid: wrong key for {label} only", must_contain=(f"FAIL label={label}",))
        check_rc(wd, exchange, mixed, 0, f"hybrid: ...while --label for the other label passes",
                 "--label", ("sig-mldsa", "sig-ecdsa")[i])
    # Swap the two signatures' kids: key type no longer matches the algorithm.
    swapped = copy.deepcopy(jwks)
    swapped["keys"][0]["kid"], swapped["keys"][1]["kid"] = MLDSA_KID, ECDSA_KID
    check_rc(wd, exchange, swapped, 1, "hybrid: kids pointing at the other key type", must_contain=both)
    check_rc(wd, exchange, {"keys": []}, 1, "hybrid: empty JWKS", must_contain=both)

    def corrupt_sig(label):
        def fn(e):
            hdrs = dict((n, v) for n, v in e["response"]["headers"])
            import http_sf

            sigs = http_sf.parse(hdrs["Signature"].encode(), tltype="dictionary")
            raw = bytearray(sigs[label][0])
            raw[5] ^= 0x80
            sigs[label] = (bytes(raw), {})
            set_header(e, "response", "Signature", http_sf.ser(sigs))
        return fn

    for label in ("sig-ecdsa", "sig-mldsa"):
        check_rc(wd, tampered(exchange, corrupt_sig(label)), jwks, 1, f"hybrid: {label} signature bit flipped",
                 must_contain=(f"FAIL label={label}",))
    check_rc(wd, exchange, jwks, 1, "hybrid: --label absent-label", "--label", "sig-other",
             must_contain=("FAIL label=sig-other",))
    no_sig = tampered(exchange, lambda e: e["response"].update(
        headers=[p for p in e["response"]["headers"] if p[0] not in ("Signature", "Signature-Input")]))
    check_rc(wd, no_sig, jwks, 1, "hybrid: no signature headers")
    no_digest = tampered(exchange, lambda e: e["response"].update(
        headers=[p for p in e["response"]["headers"] if p[0] != "Content-Digest"]))
    check_rc(wd, no_digest, jwks, 1, "hybrid: Content-Digest removed", "--require-digest",
             must_contain=("FAIL content-digest reason=missing",))
    # Profile: a tag other than the gateway's must fail even though the label name matches.
    check_rc(wd, tampered(exchange, lambda e: set_header(
        e, "response", "Signature-Input",
        dict(e["response"]["headers"])["Signature-Input"].replace("quantumvault-ecdsa-p256", "other-app"))),
        jwks, 1, "hybrid: wrong tag", must_contain=("FAIL label=sig-ecdsa",))

    # Profile: components in another order verify cryptographically but break the profile.
    reordered = ("@status", "content-type", "content-digest", "x-request-id", '"@method";req', '"@target-uri";req')
    ex2, jwks2, _ = make_hybrid(components=reordered)
    check_rc(wd, ex2, jwks2, 1, "hybrid: components out of gateway order", must_contain=("profile: covered components",))
    check_rc(wd, ex2, jwks2, 0, "hybrid: ...same with --no-profile", "--no-profile")
    ex3, jwks3, _ = make_hybrid(components=GW_COMPONENTS[:-1])
    check_rc(wd, ex3, jwks3, 1, "hybrid: @target-uri;req not covered", must_contain=("not covered",))
    # created one hour in the future (beyond the 300 s default skew).
    ex4, jwks4, _ = make_hybrid(created_ts=int(time.time()) + 3600)
    check_rc(wd, ex4, jwks4, 1, "hybrid: created in the future", must_contain=("future",))


def test_digest_and_usage(wd):
    print("c) Content-Digest rules and usage errors")
    body = b"hello world"
    h = verify.Headers([["Content-Digest",
                         "sha-512=:" + _b64(hashlib.sha512(body).digest()) + ":, sha-256=:"
                         + _b64(hashlib.sha256(body).digest()) + ":"]])

    class R:
        headers = h

    res = verify.check_content_digest(R, body, True)
    expect([ok for ok, _ in res] == [True, True], "sha-512 + sha-256 both checked", repr(res))
    R.headers = verify.Headers([["Content-Digest", "md5=:" + _b64(hashlib.md5(body).digest()) + ":"]])
    res = verify.check_content_digest(R, body, True)
    expect(res and not res[0][0] and "unsupported" in res[0][1], "unsupported digest algorithm fails", repr(res))
    R.headers = verify.Headers([["Content-Digest", "sha-256=:" + _b64(hashlib.sha256(b"x").digest()) + ":"]])
    expect(not verify.check_content_digest(R, body, False)[0][0], "mismatching digest fails even without --require-digest")

    exchange, jwks, _ = make_hybrid()
    good_ex, good_jwks = wd.write(exchange), wd.write(jwks)
    bad_json = os.path.join(wd.tmp, "bad.json")
    with open(bad_json, "w") as f:
        f.write("{not json")
    for what, argv in (
        ("missing arguments", [good_ex]),
        ("unknown option", [good_ex, good_jwks, "--bogus"]),
        ("nonexistent file", [good_ex, os.path.join(wd.tmp, "nope.json")]),
        ("exchange not JSON", [bad_json, good_jwks]),
        ("JWKS not JSON", [good_ex, bad_json]),
        ("exchange missing response", [wd.write({"request": exchange["request"]}), good_jwks]),
        ("bad body_b64", [wd.write(tampered(exchange, lambda e: e["response"].update(body_b64="@@@"))), good_jwks]),
        ("JWKS AKP pub wrong length", [good_ex, wd.write({"keys": [dict(jwks["keys"][1], pub=_b64url(b"x" * 10))]})]),
        ("JWKS EC point not on curve", [good_ex, wd.write({"keys": [dict(jwks["keys"][0], y=jwks["keys"][0]["x"])]})]),
    ):
        if len(argv) == 2:
            rc, out = run_verify(*argv)
        else:
            with contextlib.redirect_stderr(io.StringIO()):
                rc, out = verify.main(argv, out=io.StringIO()), ""
        expect(rc == 2, f"usage/parse error: {what} -> exit 2", f"    got {rc}: {out}")


def main() -> int:
    write_fixtures = "--write-fixtures" in sys.argv[1:]
    t0 = time.monotonic()
    wd = Workdir()
    try:
        test_rfc(wd, write_fixtures)
        test_hybrid(wd, write_fixtures)
        test_digest_and_usage(wd)
    finally:
        import shutil

        shutil.rmtree(wd.tmp, ignore_errors=True)
    dt = time.monotonic() - t0
    print(f"selftest took {dt:.2f}s")
    print(f"selftest: {N_CHECKS - len(FAILURES)} passed, {len(FAILURES)} failed")
    if FAILURES:
        print("failed:\n  " + "\n  ".join(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
