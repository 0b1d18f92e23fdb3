#!/usr/bin/env python3
"""Independent verifier for QuantumVault's signed HTTP responses.

Checks RFC 9421 HTTP Message Signatures (ecdsa-p256-sha256 and ML-DSA-65) and
the RFC 9530 Content-Digest of one recorded request/response exchange, using
only third-party code: the ``http-message-signatures`` library builds every
signature base, ``cryptography`` checks the signatures.

Usage:
    verify.py EXCHANGE.json JWKS.json [--label LABEL ...] [--require-digest]
              [--no-profile] [--max-age SECONDS] [--clock-skew SECONDS]

Exchange file::

    {"request":  {"method": "GET", "url": "http://127.0.0.1:8080/api/x?y=1",
                  "headers": [["Host", "127.0.0.1:8080"], ...]},
     "response": {"status": 200,
                  "headers": [["Content-Type", "application/json"], ...],
                  "body_b64": "..."}}

Headers are [name, value] pairs in wire order; repeated names are allowed and
are combined the RFC 9421 way (values joined with ", " in order).

Output: one line per check, ``ok ...`` / ``FAIL ...`` / ``skip ...``, then a
``result: PASS`` or ``result: FAIL`` line.
Exit status: 0 every selected signature (and the digest) verified; 1 a check
failed; 2 usage error or unreadable/malformed exchange or JWKS file.

Without --label every label in Signature-Input is verified. The labels
``sig-ecdsa`` and ``sig-mldsa`` are also checked against the gateway's wire
profile (alg, tag, parameters, covered components in order) unless
--no-profile is given. Any other label (e.g. the RFC 9421 examples) is
verified cryptographically only, with the algorithm taken from its ``alg``
parameter or, when absent, from the type of the JWK its ``keyid`` names.

Time checks: ``created`` must be present and not in the future by more than
--clock-skew (default 300 s); there is no maximum age unless --max-age is given
(the RFC fixtures are from 2021); ``expires``, if present, must not be past.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import sys
import warnings

try:
    import http_sf
    import requests
    from cryptography.hazmat.primitives.asymmetric import ec, mldsa
    from http_message_signatures import (
        HTTPMessageVerifier,
        HTTPSignatureAlgorithm,
        HTTPSignatureKeyResolver,
        algorithms,
    )
    from http_message_signatures.exceptions import HTTPMessageSignaturesException
except ImportError as _e:  # pragma: no cover - environment problem
    print(f"error: missing dependency ({_e}); run tests/interop/setup.sh and use its python", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------
# ML-DSA-65 in the library's algorithm framework
# --------------------------------------------------------------------------

MLDSA65_PUBLIC_KEY_LEN = 1952
MLDSA65_SIGNATURE_LEN = 3309


class ML_DSA_65(HTTPSignatureAlgorithm):
    """FIPS 204 ML-DSA-65 ("pure" mode, empty context string) over the signature base.

    The library has no ML-DSA algorithm; ``HTTPSignatureAlgorithm`` subclasses
    are passed as ``signature_algorithm=`` to HTTPMessageSigner/Verifier (no
    registration needed), so the library still builds the signature base and
    enforces that the ``alg`` parameter, when present, equals ``algorithm_id``.
    """

    algorithm_id = "ml-dsa-65"

    def __init__(self, public_key=None, private_key=None):
        if isinstance(public_key, (bytes, bytearray)):
            public_key = mldsa.MLDSA65PublicKey.from_public_bytes(bytes(public_key))
        if public_key is not None and not isinstance(public_key, mldsa.MLDSA65PublicKey):
            raise HTTPMessageSignaturesException("Unexpected public key type (need ML-DSA-65)")
        if private_key is not None and not isinstance(private_key, mldsa.MLDSA65PrivateKey):
            raise HTTPMessageSignaturesException("Unexpected private key type (need ML-DSA-65)")
        self.public_key = public_key
        self.private_key = private_key

    def sign(self, message: bytes) -> bytes:
        # context omitted == empty context string (FIPS 204, ctx = "").
        return self.private_key.sign(message)

    def verify(self, signature: bytes, message: bytes) -> None:
        if len(signature) != MLDSA65_SIGNATURE_LEN:
            raise HTTPMessageSignaturesException(
                f"Unexpected ML-DSA-65 signature length {len(signature)} (want {MLDSA65_SIGNATURE_LEN})"
            )
        # Raises cryptography.exceptions.InvalidSignature on mismatch.
        self.public_key.verify(signature, message)


ALGORITHMS: dict[str, type[HTTPSignatureAlgorithm]] = {
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "ml-dsa-65": ML_DSA_65,
}

# The gateway's wire profile, per label: algorithm id and signed tag.
GATEWAY_LABELS = {
    "sig-ecdsa": ("ecdsa-p256-sha256", "quantumvault-ecdsa-p256"),
    "sig-mldsa": ("ml-dsa-65", "quantumvault-ml-dsa-65"),
}
GATEWAY_PARAMS = ("created", "keyid", "alg", "nonce", "tag")


def gateway_components(response_headers: "Headers") -> list[str]:
    """Serialized component identifiers the gateway covers, in its order."""
    comps = ['"@status"', '"content-digest"']
    if "content-type" in response_headers:
        comps.append('"content-type"')
    comps += ['"x-request-id"', '"@method";req', '"@target-uri";req']
    return comps


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


class UsageError(Exception):
    """Bad CLI usage or malformed input file: exit status 2."""


class Headers:
    """Ordered multi-valued header list with the interface the library reads.

    ``items()`` yields every field line in order (the library groups and joins
    repeated names itself); the mutators exist so HTTPMessageSigner can write
    Signature/Signature-Input/Content-Digest in the self-test.
    """

    def __init__(self, pairs=()):
        self._pairs: list[tuple[str, str]] = [(str(n), str(v)) for n, v in pairs]

    def items(self):
        return list(self._pairs)

    def __iter__(self):
        return iter(dict.fromkeys(n for n, _ in self._pairs))

    def __contains__(self, name) -> bool:
        return any(n.lower() == str(name).lower() for n, _ in self._pairs)

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self._pairs if n.lower() == name.lower()]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        self.__delitem__(name, missing_ok=True)
        self._pairs.append((name, value))

    def __delitem__(self, name: str, missing_ok: bool = False) -> None:
        if not missing_ok and name not in self:
            raise KeyError(name)
        self._pairs = [(n, v) for n, v in self._pairs if n.lower() != name.lower()]

    def to_json(self) -> list[list[str]]:
        return [[n, v] for n, v in self._pairs]


def _b64url_decode(value, what: str) -> bytes:
    if not isinstance(value, str) or "=" in value:
        raise UsageError(f"{what}: expected base64url without padding")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(f"{what}: invalid base64url ({e})") from None


def load_json(path: str, what: str):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read {what} file {path}: {e}") from None
    except ValueError as e:
        raise UsageError(f"{what} file {path} is not valid JSON: {e}") from None


def _headers_from_json(value, what: str) -> Headers:
    if not isinstance(value, list):
        raise UsageError(f"{what}: expected a list of [name, value] pairs")
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise UsageError(f"{what}[{i}]: expected [name, value] strings")
        pairs.append((pair[0], pair[1]))
    return Headers(pairs)


def build_messages(exchange) -> tuple[requests.Response, bytes]:
    """Turn the exchange JSON into the requests-style objects the library reads.

    The library's component resolver reads ``request.method``, ``request.url``
    and ``request.headers.items()``, and treats anything with ``status_code``
    as a response whose ``.request`` supplies ``;req`` components. We use a
    ``requests.PreparedRequest`` and a ``requests.Response`` as containers,
    but set method, URL and headers verbatim afterwards: ``prepare()`` would
    upper-case the method, re-quote the URL (e.g. %7E -> ~, "" path -> "/")
    and fold duplicate headers, while the signature covers what was on the wire.
    """
    if not isinstance(exchange, dict):
        raise UsageError("exchange: expected a JSON object")
    req, resp = exchange.get("request"), exchange.get("response")
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise UsageError('exchange: need "request" and "response" objects')
    method, url = req.get("method"), req.get("url")
    if not isinstance(method, str) or not method or not isinstance(url, str) or not url:
        raise UsageError('exchange.request: need string "method" and "url"')
    status = resp.get("status")
    if type(status) is not int or not 100 <= status <= 999:
        raise UsageError('exchange.response: "status" must be an integer 100..999')
    body_b64 = resp.get("body_b64", "")
    if not isinstance(body_b64, str):
        raise UsageError('exchange.response: "body_b64" must be a string')
    try:
        body = base64.b64decode(body_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(f"exchange.response.body_b64: invalid base64 ({e})") from None

    try:
        prepared = requests.Request(method=method, url=url).prepare()
    except requests.RequestException as e:
        raise UsageError(f"exchange.request.url: {e}") from None
    prepared.method = method
    prepared.url = url
    prepared.headers = _headers_from_json(req.get("headers", []), "exchange.request.headers")

    response = requests.Response()
    response.status_code = status
    response.headers = _headers_from_json(resp.get("headers", []), "exchange.response.headers")
    response.request = prepared
    response._content = body
    response.url = url
    return response, body


class JWKSKeyResolver(HTTPSignatureKeyResolver):
    """Public keys from a JWKS: EC P-256 (RFC 7518) and AKP ML-DSA-65."""

    def __init__(self, jwks):
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise UsageError('JWKS: expected {"keys": [...]}')
        self.keys: dict[str, object] = {}
        for i, jwk in enumerate(jwks["keys"]):
            if not isinstance(jwk, dict):
                raise UsageError(f"JWKS.keys[{i}]: expected an object")
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid:
                raise UsageError(f'JWKS.keys[{i}]: missing "kid"')
            if kid in self.keys:
                raise UsageError(f"JWKS: duplicate kid {kid!r}")
            if jwk.get("use", "sig") != "sig":
                print(f"note: JWKS kid={kid} use={jwk.get('use')!r} ignored", file=sys.stderr)
                continue
            key = self._load(jwk, f"JWKS kid={kid}")
            if key is not None:
                self.keys[kid] = key

    @staticmethod
    def _load(jwk, what: str):
        kty = jwk.get("kty")
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                print(f"note: {what}: crv {jwk.get('crv')!r} unsupported, key ignored", file=sys.stderr)
                return None
            if jwk.get("alg", "ES256") != "ES256":
                raise UsageError(f"{what}: EC P-256 key with alg {jwk.get('alg')!r} (want ES256)")
            x = _b64url_decode(jwk.get("x"), f"{what}.x")
            y = _b64url_decode(jwk.get("y"), f"{what}.y")
            if len(x) != 32 or len(y) != 32:
                raise UsageError(f"{what}: x and y must be 32 bytes each")
            try:
                return ec.EllipticCurvePublicNumbers(
                    int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
                ).public_key()
            except ValueError as e:
                raise UsageError(f"{what}: invalid P-256 point ({e})") from None
        if kty == "AKP":
            if jwk.get("alg") != "ML-DSA-65":
                print(f"note: {what}: AKP alg {jwk.get('alg')!r} unsupported, key ignored", file=sys.stderr)
                return None
            pub = _b64url_decode(jwk.get("pub"), f"{what}.pub")
            if len(pub) != MLDSA65_PUBLIC_KEY_LEN:
                raise UsageError(f"{what}: pub is {len(pub)} bytes (want {MLDSA65_PUBLIC_KEY_LEN})")
            try:
                return mldsa.MLDSA65PublicKey.from_public_bytes(pub)
            except ValueError as e:
                raise UsageError(f"{what}: invalid ML-DSA-65 public key ({e})") from None
        print(f"note: {what}: kty {kty!r} unsupported, key ignored", file=sys.stderr)
        return None

    def resolve_public_key(self, key_id: str):
        return self.keys.get(key_id)

    def resolve_private_key(self, key_id: str):
        raise NotImplementedError("verification only")


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


class Verifier(HTTPMessageVerifier):
    # Labels are not signed, so the library refuses label-only selection unless
    # told otherwise. Gateway labels are selected by label AND signed tag;
    # other labels (RFC examples carry no tag) by label alone.
    allow_label_only_selection = True


def _reason(e: BaseException) -> str:
    from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature

    cur = e
    while cur is not None:
        if isinstance(cur, CryptoInvalidSignature):
            return "signature does not verify (cryptography InvalidSignature)"
        cur = cur.__cause__
    parts = []
    while e is not None and len(parts) < 4:
        msg = str(e).strip()
        parts.append(f"{type(e).__name__}: {msg}" if msg else type(e).__name__)
        e = e.__cause__
    return " <- ".join(dict.fromkeys(parts)).replace("\n", " ")


def parse_signature_inputs(response: requests.Response) -> dict:
    """Label -> (components, params) from Signature-Input (raises ValueError)."""
    if "signature-input" not in response.headers:
        raise ValueError("response has no Signature-Input header")
    value = response.headers["signature-input"]
    parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    return parsed


def check_signature(label, sig_input, response, body, resolver, args) -> tuple[bool, str]:
    members, params = sig_input if isinstance(sig_input, tuple) else (None, {})
    if not isinstance(members, list):
        return False, f"FAIL label={label} reason=Signature-Input member is not an inner list"
    keyid = params.get("keyid")
    alg_param = params.get("alg")
    profile = None if args.no_profile else GATEWAY_LABELS.get(label)

    # Pick the algorithm class: from alg, else from the key type.
    if alg_param is not None:
        alg_cls = ALGORITHMS.get(alg_param)
        if alg_cls is None:
            return False, f"FAIL label={label} keyid={keyid} reason=unsupported alg {alg_param!r}"
    else:
        key = resolver.resolve_public_key(keyid) if isinstance(keyid, str) else None
        if isinstance(key, ec.EllipticCurvePublicKey):
            alg_cls = algorithms.ECDSA_P256_SHA256
        elif isinstance(key, mldsa.MLDSA65PublicKey):
            alg_cls = ML_DSA_65
        else:
            return False, f"FAIL label={label} keyid={keyid} reason=no alg parameter and no usable JWK for keyid"

    expect_tag = None
    require = ()
    if profile is not None:
        want_alg, want_tag = profile
        if alg_param != want_alg:
            return False, f"FAIL label={label} keyid={keyid} reason=profile: alg is {alg_param!r}, want {want_alg!r}"
        missing = [p for p in GATEWAY_PARAMS if p not in params]
        if missing:
            return False, f"FAIL label={label} keyid={keyid} reason=profile: missing parameter(s) {missing}"
        if params.get("tag") != want_tag:
            return False, f"FAIL label={label} keyid={keyid} reason=profile: tag is {params.get('tag')!r}, want {want_tag!r}"
        expect_tag = want_tag
        require = tuple(gateway_components(response.headers))

    covers_digest = any(
        isinstance(m, tuple) and m[0] == "content-digest" and not (set(m[1]) - {"sf", "key"}) for m in members
    )
    verifier = Verifier(signature_algorithm=alg_cls, key_resolver=resolver)
    verifier.max_clock_skew = datetime.timedelta(seconds=args.clock_skew)
    max_age = None if args.max_age is None else datetime.timedelta(seconds=args.max_age)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = verifier.verify(
                response,
                max_age=max_age,
                expect_tag=expect_tag,
                expect_label=label,
                require_components=require,
                # Let the library also bind the body: it checks the *signed*
                # Content-Digest value against these bytes.
                body=body if covers_digest else None,
            )
    except HTTPMessageSignaturesException as e:
        return False, f"FAIL label={label} keyid={keyid} alg={alg_cls.algorithm_id} reason={_reason(e)}"
    if len(results) != 1 or results[0].label != label:
        return False, f"FAIL label={label} reason=library selected {[r.label for r in results]}"
    result = results[0]
    if profile is not None:
        got = [c for c in result.covered_components if c != '"@signature-params"']
        if got != list(require):
            return False, (
                f"FAIL label={label} keyid={keyid} reason=profile: covered components "
                f"{' '.join(got)} != {' '.join(require)}"
            )
    extra = "".join(f" {p}={result.parameters[p]}" for p in ("tag", "created", "nonce") if p in result.parameters)
    return True, f"ok label={label} keyid={keyid} alg={alg_cls.algorithm_id}{extra}"


DIGEST_ALGS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def check_content_digest(response, body, required: bool) -> list[tuple[bool, str]]:
    values = response.headers.get_all("content-digest")
    if not values:
        if required:
            return [(False, "FAIL content-digest reason=missing Content-Digest header")]
        return [(True, "skip content-digest reason=absent (not required)")]
    try:
        parsed = http_sf.parse(", ".join(values).encode("ascii"), tltype="dictionary")
    except Exception as e:  # http_sf raises ValueError subclasses
        return [(False, f"FAIL content-digest reason=malformed Content-Digest ({_reason(e)})")]
    if not parsed:
        return [(False, "FAIL content-digest reason=empty Content-Digest")]
    out = []
    for alg, (value, _params) in parsed.items():
        if alg not in DIGEST_ALGS:
            out.append((False, f"FAIL content-digest {alg} reason=unsupported algorithm"))
        elif not isinstance(value, bytes):
            out.append((False, f"FAIL content-digest {alg} reason=value is not a byte sequence"))
        elif hmac.compare_digest(value, DIGEST_ALGS[alg](body).digest()):
            out.append((True, f"ok content-digest {alg}"))
        else:
            out.append((False, f"FAIL content-digest {alg} reason=does not match body ({len(body)} bytes)"))
    return out


def run(args, out=sys.stdout) -> int:
    response, body = build_messages(load_json(args.exchange, "exchange"))
    resolver = JWKSKeyResolver(load_json(args.jwks, "JWKS"))

    checks: list[tuple[bool, str]] = []
    try:
        sig_inputs = parse_signature_inputs(response)
    except Exception as e:
        sig_inputs = None
        checks.append((False, f"FAIL signature-input reason={_reason(e)}"))
    if sig_inputs is not None:
        labels = args.label or list(sig_inputs)
        if not labels:
            checks.append((False, "FAIL signature-input reason=no labels"))
        for label in dict.fromkeys(labels):
            if label not in sig_inputs:
                checks.append((False, f"FAIL label={label} reason=label not in Signature-Input"))
                continue
            checks.append(check_signature(label, sig_inputs[label], response, body, resolver, args))
    checks += check_content_digest(response, body, args.require_digest)

    for _ok, line in checks:
        print(line, file=out)
    failed = sum(1 for ok, _ in checks if not ok)
    print("result: PASS" if failed == 0 else f"result: FAIL ({failed} failed)", file=out)
    return 0 if failed == 0 else 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main(argv=None, out=sys.stdout) -> int:
    p = _Parser(prog="verify.py", description=__doc__.split("\n\n")[0])
    p.add_argument("exchange")
    p.add_argument("jwks")
    p.add_argument("--label", action="append", help="verify only this label (repeatable)")
    p.add_argument("--require-digest", action="store_true", help="Content-Digest must be present and match")
    p.add_argument("--no-profile", action="store_true", help="skip gateway wire-profile checks for sig-ecdsa/sig-mldsa")
    p.add_argument("--max-age", type=int, default=None, help="reject signatures created longer ago (seconds)")
    p.add_argument("--clock-skew", type=int, default=300, help="tolerated clock skew in seconds (default 300)")
    try:
        args = p.parse_args(argv)
        return run(args, out=out)
    except UsageError as e:
        print(f"usage error: {e}", file=sys.stderr)
        print(p.format_usage().rstrip(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
