#!/usr/bin/env python3
"""Independent verifier for QuantumVault's batch (Merkle) response signatures.

Implements ``http-batch-sig/v1`` as specified in docs/batch-signing.md, written
from that text alone (not from the gateway's code). Only the Python standard
library and ``cryptography`` are used: the RFC 9421 signature base, the RFC 8941
structured-field parsing, the RFC 9162 Merkle tree and the wire format are all
built here.

Usage:
    verify_batch.py EXCHANGE.json JWKS.json [--label LABEL ...] [--require-digest]
                    [--max-age SECONDS] [--clock-skew SECONDS]
                    [--batch BATCH.json ...] [--no-fetch] [--tbs-out FILE]

The exchange file has the same format as for verify.py::

    {"request":  {"method": "GET", "url": "http://127.0.0.1:8080/api/x?y=1",
                  "headers": [["Host", "127.0.0.1:8080"], ...]},
     "response": {"status": 200,
                  "headers": [["Content-Type", "application/json"], ...],
                  "body_b64": "..."}}

Labels: without --label, every Signature-Input entry whose ``alg`` starts with
``merkle-`` is verified (``sig-batch`` first, and always when present); other
labels (e.g. an inline ``sig-ecdsa``, see verify.py) are reported as ``skip``.

Each batch label goes through the steps of the spec's section 8, one output
line per check (``ok label=L <check> ...`` / ``FAIL label=L <check> reason=...``):
``signature-input`` (1), ``signature-base`` and ``time`` (2), ``value`` (3),
``root`` (4), ``batch-document`` (detached values only, see below),
``codes`` and ``keyid`` (5), ``tbs`` (6), one
``root-signature code=N`` per root signature (7), then ``content-digest`` (8)
and a final ``result: PASS`` or ``result: FAIL (n failed)`` line.
A label that passes every check also gets an ``ok label=L verified ...`` line.

Detached form (spec section 6.1): a value with flags 0x01 carries no root
signatures (count must be 0); they come from the batch document, a JSON object
``{"signatures": [{"code": 1, "keyid": "...", "sig": "<base64>"}, ...], ...}``.
It is taken from a ``--batch FILE`` whose ``batch_id`` member (32 hex digits)
names the value's batch (a file without ``batch_id`` serves any batch), or else
fetched with ``GET {scheme}://{authority}/.well-known/http-batch-sig/v1/batch/{hex(batch_id)}``
from the origin of the exchange's request URL (http or https, 10 s timeout;
--no-fetch forbids it). The line ``ok label=L batch-document from FILE`` /
``... fetched from URL`` (or ``FAIL label=L batch-document reason=...``) comes
between ``root`` and ``codes``; the steps after it use the document's
``(code, keyid, sig)`` list as if it had been in the value. The document's
``tbs`` (and ``log``, ``log_index``) are never used: the TBS is rebuilt from
the value, ``alg``, the document's ``(code, keyid)`` list and the computed root.
A document whose own ``batch_id`` names another batch is rejected.

--tbs-out FILE writes one line ``<hex(batch_id)> <hex(TBS)>`` (lower-case) per
batch label that verified (its ``verified`` line), with the TBS this verifier
built itself in step 6, e.g. to look the batch's entry up in the anchor log
(section 11; tests/interop/verify_log.py). The file is written (possibly
empty) whatever the result.

Exit status: 0 every selected label (and the digest) verified; 1 a check
failed; 2 usage error or unreadable/malformed exchange, JWKS or --batch file.

Time checks (as verify.py): ``created`` must be present and not in the future
by more than --clock-skew (default 300 s); no maximum age unless --max-age;
``expires``, if present, must not be past (minus the skew).

Content-Digest (RFC 9530, sha-256 and sha-512) is checked against the body
whenever the header is present; --require-digest also makes it mandatory and
requires every verified batch label to cover ``content-digest``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import http.client
import ipaddress
import json
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, mldsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
except ImportError as _e:  # pragma: no cover - environment problem
    print(f"error: missing dependency ({_e}); run tests/interop/setup.sh and use its python", file=sys.stderr)
    sys.exit(2)

# --------------------------------------------------------------------------
# Constants of the spec
# --------------------------------------------------------------------------

VERSION = 1
#: TBS prefix (section 5): 64 spaces, the context string, one zero byte.
TBS_PREFIX = b"\x20" * 64 + b"http-batch-sig/v1 root" + b"\x00"
HASH_LEN = 32
SALT_LEN = 16
BATCH_ID_LEN = 16
MAX_TREE_SIZE = 65536
MAX_PATH_LEN = 16

CODE_ECDSA_P256 = 1
CODE_ML_DSA_65 = 2
CODE_NAMES = {CODE_ECDSA_P256: "ecdsa-p256-sha256", CODE_ML_DSA_65: "ml-dsa-65"}
#: alg parameter -> root signature codes, in order (section 2).
ALG_CODES: dict[str, tuple[int, ...]] = {
    "merkle-ecdsa-p256-sha256": (CODE_ECDSA_P256,),
    "merkle-ml-dsa-65": (CODE_ML_DSA_65,),
    "merkle-hybrid-ml-dsa-65-ecdsa-p256": (CODE_ECDSA_P256, CODE_ML_DSA_65),
}
ECDSA_P256_SIG_LEN = 64
MLDSA65_SIG_LEN = 3309
MLDSA65_PUBLIC_KEY_LEN = 1952
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

FLAG_DETACHED = 0x01
#: Path of the batch document (section 6.1); hex(batch_id) follows.
BATCH_DOCUMENT_PATH = "/.well-known/http-batch-sig/v1/batch/"
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 4 << 20
#: batch_documents key of a document used for any batch.
ANY_BATCH = "*"

DEFAULT_LABEL = "sig-batch"
BATCH_ALG_PREFIX = "merkle-"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class UsageError(Exception):
    """Bad CLI usage or malformed input file: exit status 2."""


class VerifyError(ValueError):
    """A check failed (exit status 1). The message is the reason."""


class SFError(VerifyError):
    """Malformed RFC 8941 structured field."""


class BaseError(VerifyError):
    """The RFC 9421 signature base cannot be built."""


class BatchFormatError(VerifyError):
    """Malformed batch signature value (section 6)."""


class MerkleError(VerifyError):
    """Bad tree size, leaf index or inclusion path (section 4)."""


class BatchDocumentError(VerifyError):
    """The batch document of a detached value (section 6.1) is missing, unreachable or malformed."""


# --------------------------------------------------------------------------
# RFC 8941 structured fields (enough for Signature-Input, Signature, Content-Digest)
# --------------------------------------------------------------------------


class Token(str):
    """An sf-token (serialized bare, unlike an sf-string)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Token({str(self)!r})"


def is_sf_string(v) -> bool:
    return isinstance(v, str) and not isinstance(v, Token)


_LCALPHA = "abcdefghijklmnopqrstuvwxyz"
_DIGIT = "0123456789"
_ALPHA = _LCALPHA + _LCALPHA.upper()
_KEY_FIRST = _LCALPHA + "*"
_KEY_CHARS = _LCALPHA + _DIGIT + "_-.*"
_TCHAR = "!#$%&'*+-.^_`|~" + _DIGIT + _ALPHA
_TOKEN_CHARS = _TCHAR + ":/"
_B64_CHARS = _ALPHA + _DIGIT + "+/="


class _SFParser:
    """RFC 8941 section 4.2 parsing, for dictionaries, items and inner lists.

    Results: an item is ``(bare, params)``; an inner list is
    ``([(bare, params), ...], params)``; params is an ordered dict whose values
    are bare items (``True`` for a bare key). Bare items map to int, float
    (decimal), str (string), Token, bytes and bool.
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.isascii():
            raise SFError("field value is not ASCII")
        self.s = text
        self.i = 0

    def _peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def _eof(self) -> bool:
        return self.i >= len(self.s)

    def _fail(self, what: str):
        raise SFError(f"{what} at offset {self.i} of {self.s[:80]!r}")

    def _sp(self):
        while not self._eof() and self.s[self.i] == " ":
            self.i += 1

    def _ows(self):
        while not self._eof() and self.s[self.i] in " \t":
            self.i += 1

    def dictionary(self) -> dict:
        self._sp()
        out: dict = {}
        if self._eof():
            return out
        while True:
            key = self._key()
            if self._peek() == "=":
                self.i += 1
                member = self._item_or_inner_list()
            else:
                member = (True, self._params())
            out[key] = member  # RFC 8941: a repeated key overwrites the value
            self._ows()
            if self._eof():
                return out
            if self._peek() != ",":
                self._fail("expected ',' between dictionary members")
            self.i += 1
            self._ows()
            if self._eof():
                self._fail("trailing ',' in dictionary")

    def _key(self) -> str:
        c = self._peek()
        if c == "" or c not in _KEY_FIRST:
            self._fail("expected a key")
        start = self.i
        while not self._eof() and self.s[self.i] in _KEY_CHARS:
            self.i += 1
        return self.s[start:self.i]

    def _item_or_inner_list(self):
        if self._peek() == "(":
            return self._inner_list()
        return self._item()

    def _inner_list(self):
        self.i += 1  # "("
        items = []
        while not self._eof():
            self._sp()
            if self._peek() == ")":
                self.i += 1
                return (items, self._params())
            items.append(self._item())
            if self._peek() not in (" ", ")"):
                self._fail("expected ' ' or ')' in inner list")
        self._fail("unterminated inner list")

    def _item(self):
        return (self._bare_item(), self._params())

    def _params(self) -> dict:
        params: dict = {}
        while self._peek() == ";":
            self.i += 1
            self._sp()
            key = self._key()
            value = True
            if self._peek() == "=":
                self.i += 1
                value = self._bare_item()
            params[key] = value
        return params

    def _bare_item(self):
        c = self._peek()
        if c == "":
            self._fail("expected an item")
        if c == "-" or c in _DIGIT:
            return self._number()
        if c == '"':
            return self._string()
        if c == ":":
            return self._bytes()
        if c == "?":
            return self._boolean()
        if c == "*" or c in _ALPHA:
            return self._token()
        self._fail(f"unexpected character {c!r}")

    def _number(self):
        sign = 1
        if self._peek() == "-":
            sign = -1
            self.i += 1
        if self._peek() == "" or self._peek() not in _DIGIT:
            self._fail("expected a digit")
        digits_start = self.i
        is_decimal = False
        while not self._eof():
            c = self.s[self.i]
            if c in _DIGIT:
                self.i += 1
            elif c == "." and not is_decimal:
                if self.i - digits_start > 12:
                    self._fail("decimal with more than 12 integer digits")
                is_decimal = True
                self.i += 1
            else:
                break
            n = self.i - digits_start
            if (not is_decimal and n > 15) or (is_decimal and n > 16):
                self._fail("number too long")
        text = self.s[digits_start:self.i]
        if is_decimal:
            if text.endswith(".") or len(text.split(".")[1]) > 3:
                self._fail("decimal needs 1 to 3 fractional digits")
            return sign * float(text)
        return sign * int(text)

    def _string(self) -> str:
        self.i += 1  # opening quote
        out = []
        while not self._eof():
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                if self._eof() or self.s[self.i] not in '"\\':
                    self._fail("bad escape in string")
                out.append(self.s[self.i])
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not 0x20 <= ord(c) <= 0x7E:
                self._fail("control character in string")
            else:
                out.append(c)
        self._fail("unterminated string")

    def _token(self) -> Token:
        start = self.i
        self.i += 1
        while not self._eof() and self.s[self.i] in _TOKEN_CHARS:
            self.i += 1
        return Token(self.s[start:self.i])

    def _bytes(self) -> bytes:
        self.i += 1  # opening colon
        end = self.s.find(":", self.i)
        if end < 0:
            self._fail("unterminated byte sequence")
        text = self.s[self.i:end]
        if any(c not in _B64_CHARS for c in text):
            self._fail("invalid base64 character in byte sequence")
        self.i = end + 1
        try:
            # RFC 8941: parsers SHOULD accept a value without '=' padding.
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as e:
            raise SFError(f"invalid base64 in byte sequence ({e})") from None

    def _boolean(self) -> bool:
        self.i += 1
        c = self._peek()
        if c not in ("0", "1") or c == "":
            self._fail("expected ?0 or ?1")
        self.i += 1
        return c == "1"


def parse_dictionary(text: str) -> dict:
    """Parse an RFC 8941 dictionary (raises SFError)."""
    return _SFParser(text).dictionary()


def serialize_bare_item(v) -> str:
    if isinstance(v, bool):
        return "?1" if v else "?0"
    if isinstance(v, int):
        if abs(v) > 999_999_999_999_999:
            raise SFError(f"integer {v} out of range")
        return str(v)
    if isinstance(v, float):
        text = f"{round(v, 3):.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(v, Token):
        return str(v)
    if isinstance(v, str):
        if not all(0x20 <= ord(c) <= 0x7E for c in v):
            raise SFError("string with a non-printable-ASCII character")
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (bytes, bytearray)):
        return ":" + base64.b64encode(bytes(v)).decode("ascii") + ":"
    raise SFError(f"cannot serialize {type(v).__name__}")


def serialize_params(params: dict) -> str:
    return "".join(f";{k}" if v is True else f";{k}={serialize_bare_item(v)}" for k, v in params.items())


def serialize_item(bare, params: dict) -> str:
    return serialize_bare_item(bare) + serialize_params(params)


def serialize_inner_list(items, params: dict) -> str:
    """Canonical serialization: items space-separated in parentheses, then ;key=value."""
    return "(" + " ".join(serialize_item(b, p) for b, p in items) + ")" + serialize_params(params)


# --------------------------------------------------------------------------
# Exchange and keys
# --------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: list  # [(name, value)] in wire order
    status: int
    response_headers: list
    body: bytes

    def field_values(self, name: str, request: bool = False) -> list[str]:
        hdrs = self.request_headers if request else self.response_headers
        return [v for n, v in hdrs if n.lower() == name.lower()]


def _headers_from_json(value, what: str) -> list:
    if not isinstance(value, list):
        raise UsageError(f"{what}: expected a list of [name, value] pairs")
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise UsageError(f"{what}[{i}]: expected [name, value] strings")
        pairs.append((pair[0], pair[1]))
    return pairs


def load_exchange(obj) -> Exchange:
    """Exchange JSON (already parsed) -> Exchange; raises UsageError."""
    if isinstance(obj, Exchange):
        return obj
    if not isinstance(obj, dict):
        raise UsageError("exchange: expected a JSON object")
    req, resp = obj.get("request"), obj.get("response")
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
    return Exchange(
        method=method,
        url=url,
        request_headers=_headers_from_json(req.get("headers", []), "exchange.request.headers"),
        status=status,
        response_headers=_headers_from_json(resp.get("headers", []), "exchange.response.headers"),
        body=body,
    )


def _b64url_decode(value, what: str) -> bytes:
    if not isinstance(value, str) or "=" in value:
        raise UsageError(f"{what}: expected base64url without padding")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(f"{what}: invalid base64url ({e})") from None


def _load_jwk(jwk: dict, what: str, notes: list):
    kty = jwk.get("kty")
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            notes.append(f"{what}: crv {jwk.get('crv')!r} unsupported, key ignored")
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
            notes.append(f"{what}: AKP alg {jwk.get('alg')!r} unsupported, key ignored")
            return None
        pub = _b64url_decode(jwk.get("pub"), f"{what}.pub")
        if len(pub) != MLDSA65_PUBLIC_KEY_LEN:
            raise UsageError(f"{what}: pub is {len(pub)} bytes (want {MLDSA65_PUBLIC_KEY_LEN})")
        try:
            return mldsa.MLDSA65PublicKey.from_public_bytes(pub)
        except ValueError as e:
            raise UsageError(f"{what}: invalid ML-DSA-65 public key ({e})") from None
    notes.append(f"{what}: kty {kty!r} unsupported, key ignored")
    return None


class KeySet(dict):
    """{kid: public key}, as returned by load_jwks."""


def load_jwks(obj, notes: list | None = None) -> KeySet:
    """JWKS JSON (already parsed) -> KeySet {kid: public key}; raises UsageError.

    EC P-256 keys become ``ec.EllipticCurvePublicKey``, AKP ML-DSA-65 keys
    ``mldsa.MLDSA65PublicKey``; other keys (and ``use`` other than ``sig``)
    are ignored with a note.
    """
    notes = [] if notes is None else notes
    if not isinstance(obj, dict) or not isinstance(obj.get("keys"), list):
        raise UsageError('JWKS: expected {"keys": [...]}')
    keys = KeySet()
    seen = set()
    for i, jwk in enumerate(obj["keys"]):
        if not isinstance(jwk, dict):
            raise UsageError(f"JWKS.keys[{i}]: expected an object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise UsageError(f'JWKS.keys[{i}]: missing "kid"')
        if kid in seen:
            raise UsageError(f"JWKS: duplicate kid {kid!r}")
        seen.add(kid)
        if jwk.get("use", "sig") != "sig":
            notes.append(f"JWKS kid={kid} use={jwk.get('use')!r} ignored")
            continue
        key = _load_jwk(jwk, f"JWKS kid={kid}", notes)
        if key is not None:
            keys[kid] = key
    return keys


def load_json(path: str, what: str):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read {what} file {path}: {e}") from None
    except ValueError as e:
        raise UsageError(f"{what} file {path} is not valid JSON: {e}") from None


# --------------------------------------------------------------------------
# RFC 9421 signature base (section 2.5)
# --------------------------------------------------------------------------

#: Derived components of the request, usable on a response only with ;req.
REQUEST_DERIVED = ("@method", "@target-uri", "@authority", "@scheme", "@path", "@query")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _authority(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2].lower()
    if not netloc:
        raise BaseError(f"@authority: target URI {url!r} has no authority")
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            raise BaseError(f"@authority: bad IPv6 literal in {url!r}")
        host, rest = netloc[: close + 1], netloc[close + 1:]
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port = netloc.rpartition(":")
        if not sep:
            host, port = netloc, None
    if port is None or port == "" or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def derived_component(ex: Exchange, name: str) -> str:
    """Value of a request-derived component (RFC 9421 section 2.2)."""
    if name == "@method":
        return ex.method
    if name == "@target-uri":
        return ex.url
    parts = urllib.parse.urlsplit(ex.url)
    if name == "@scheme":
        if not parts.scheme:
            raise BaseError(f"@scheme: target URI {ex.url!r} has no scheme")
        return parts.scheme.lower()
    if name == "@authority":
        return _authority(ex.url)
    if name == "@path":
        return parts.path or "/"
    if name == "@query":
        return "?" + parts.query
    raise BaseError(f"unsupported derived component {name!r}")


def component_value(ex: Exchange, name, params: dict) -> str:
    """The value of one covered component of a response (raises BaseError)."""
    ident = serialize_item(name, params) if is_sf_string(name) else repr(name)
    if not is_sf_string(name):
        raise BaseError(f"component identifier {ident} is not an sf-string")
    unknown = [k for k in params if k != "req"]
    if unknown:
        raise BaseError(f"component {ident}: unsupported parameter(s) {', '.join(unknown)}")
    if "req" in params and params["req"] is not True:
        raise BaseError(f"component {ident}: req must be a bare flag")
    req = "req" in params
    if name != name.lower() or not name:
        raise BaseError(f"component {ident}: names must be lowercase and non-empty")
    if name.startswith("@"):
        if name == "@signature-params":
            raise BaseError('"@signature-params" must not be listed as a covered component')
        if name == "@status":
            if req:
                raise BaseError('"@status";req: a request has no status')
            value = f"{ex.status:03d}"
        elif name in REQUEST_DERIVED:
            if not req:
                raise BaseError(f"component {ident}: a request component needs ;req on a response")
            value = derived_component(ex, name)
        else:
            raise BaseError(f"unsupported derived component {ident}")
    else:
        values = ex.field_values(name, request=req)
        if not values:
            raise BaseError(f"component {ident}: no {name} field in the {'request' if req else 'response'}")
        value = ", ".join(v.strip(" \t") for v in values)
    if "\n" in value or "\r" in value:
        raise BaseError(f"component {ident}: value contains a newline")
    return value


def signature_base(ex: Exchange, components, signature_params: str) -> bytes:
    """RFC 9421 section 2.5 signature base as UTF-8 bytes (no trailing newline).

    components: ``[(name, params), ...]`` as parsed from Signature-Input;
    signature_params: the serialized inner list with its parameters (the
    value of ``"@signature-params"``), e.g. ``serialize_inner_list(items, params)``.
    """
    lines = []
    seen = set()
    for name, params in components:
        value = component_value(ex, name, params)
        ident = serialize_item(name, params)
        if ident in seen:
            raise BaseError(f"component {ident} listed twice")
        seen.add(ident)
        lines.append(f"{ident}: {value}")
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("utf-8")


# --------------------------------------------------------------------------
# Leaf and tree (sections 3 and 4)
# --------------------------------------------------------------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(salt: bytes, base: bytes) -> bytes:
    """leaf = H(0x00 || salt || base)."""
    if len(salt) != SALT_LEN:
        raise BatchFormatError(f"salt is {len(salt)} bytes (want {SALT_LEN})")
    return _h(b"\x00" + salt + base)


def node_hash(left: bytes, right: bytes) -> bytes:
    """node = H(0x01 || left || right)."""
    return _h(b"\x01" + left + right)


def merkle_root(leaves) -> bytes:
    """RFC 9162 section 2.1.1 tree head over leaf hashes (already 0x00-prefixed hashes).

    Computed level by level (a trailing odd node moves up unchanged), which
    gives the same tree as the RFC's split at the largest power of two < n.
    """
    level = list(leaves)
    if not level:
        raise MerkleError("a batch has at least one leaf")
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_path(leaves, index: int) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 audit path of leaves[index], leaf level first."""
    level = list(leaves)
    if not 0 <= index < len(level):
        raise MerkleError(f"leaf index {index} outside a tree of {len(level)}")
    path = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        index >>= 1
    return path


def root_from_path(leaf: bytes, index: int, size: int, path) -> bytes:
    """Root from an inclusion path: the algorithm of RFC 9162 section 2.1.3.2,
    with the spec's limits (1 <= size <= 65536, index < size, len(path) <= 16).
    Raises MerkleError when the index, size or path is rejected."""
    if not 1 <= size <= MAX_TREE_SIZE:
        raise MerkleError(f"tree_size {size} outside 1..{MAX_TREE_SIZE}")
    if not 0 <= index < size:
        raise MerkleError(f"leaf_index {index} >= tree_size {size}")
    if len(path) > MAX_PATH_LEN:
        raise MerkleError(f"path_len {len(path)} > {MAX_PATH_LEN}")
    if len(leaf) != HASH_LEN or any(len(p) != HASH_LEN for p in path):
        raise MerkleError("hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise MerkleError(f"path too long for leaf {index} of {size} ({len(path)} elements)")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError(f"path too short for leaf {index} of {size} ({len(path)} elements)")
    return r


# --------------------------------------------------------------------------
# TBS (section 5) and the signature value (section 6)
# --------------------------------------------------------------------------


@dataclass
class RootSignature:
    code: int
    keyid: str
    sig: bytes


@dataclass
class BatchValue:
    batch_id: bytes
    batch_time_ms: int
    tree_size: int
    leaf_index: int
    salt: bytes
    path: list = field(default_factory=list)
    signatures: list = field(default_factory=list)  # [RootSignature]
    version: int = VERSION
    flags: int = 0
    #: flags 0x01: the root signatures are in the batch document (section 6.1), not in the value.
    detached: bool = False


def _ascii(s: str, what: str) -> bytes:
    try:
        b = s.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {s!r} is not ASCII") from None
    if len(b) > 255:
        raise ValueError(f"{what} is {len(b)} bytes (max 255)")
    return b


def tbs(alg: str, batch_id: bytes, batch_time_ms: int, tree_size: int, signers, root: bytes,
        version: int = VERSION) -> bytes:
    """The signed block of section 5.

    signers: the root signatures' ``(code, keyid)`` list in value order
    (RootSignature objects are accepted too).
    """
    if len(batch_id) != BATCH_ID_LEN or len(root) != HASH_LEN:
        raise ValueError("batch_id must be 16 bytes and root 32 bytes")
    pairs = [(s.code, s.keyid) if isinstance(s, RootSignature) else tuple(s) for s in signers]
    if len(pairs) > 255:
        raise ValueError("more than 255 root signatures")
    alg_b = _ascii(alg, "alg")
    out = bytearray(TBS_PREFIX)
    out += bytes([version]) + batch_id + struct.pack(">QI", batch_time_ms, tree_size)
    out += bytes([len(alg_b)]) + alg_b + bytes([len(pairs)])
    for code, keyid in pairs:
        kid = _ascii(keyid, "keyid")
        out += bytes([code, len(kid)]) + kid
    out += root
    return bytes(out)


def encode_value(v: BatchValue) -> bytes:
    """Serialize a BatchValue (section 6). Any version/flags/sizes are encoded
    as given (so that tests can build invalid values, e.g. a detached value
    with signatures); ``detached=True`` sets flag 0x01. Only lengths that the
    format cannot represent raise ValueError."""
    if len(v.batch_id) != BATCH_ID_LEN or len(v.salt) != SALT_LEN:
        raise ValueError("batch_id and salt must be 16 bytes")
    if len(v.path) > 255 or any(len(p) != HASH_LEN for p in v.path):
        raise ValueError("path: at most 255 hashes of 32 bytes")
    if len(v.signatures) > 255:
        raise ValueError("more than 255 root signatures")
    out = bytearray([v.version, v.flags | (FLAG_DETACHED if v.detached else 0)])
    out += v.batch_id + struct.pack(">QII", v.batch_time_ms, v.tree_size, v.leaf_index) + v.salt
    out += bytes([len(v.path)]) + b"".join(v.path) + bytes([len(v.signatures)])
    for s in v.signatures:
        kid = _ascii(s.keyid, "keyid")
        if len(s.sig) > 0xFFFF:
            raise ValueError("signature longer than 65535 bytes")
        out += bytes([s.code, len(kid)]) + kid + struct.pack(">H", len(s.sig)) + s.sig
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BatchFormatError(
                f"truncated: {what} needs {n} byte(s) at offset {self.pos}, {len(self.data) - self.pos} left"
            )
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")


def decode_value(data: bytes) -> BatchValue:
    """Parse the section 6 value; rejects a bad version, flags other than 0x00
    and 0x01, a detached value (flags 0x01) with count != 0, truncation,
    lengths running past the end, non-ASCII key ids and trailing bytes
    (raises BatchFormatError). Tree limits are checked by root_from_path.
    A detached value gets ``detached=True`` and no signatures."""
    r = _Reader(data)
    version = r.uint(1, "version")
    if version != VERSION:
        raise BatchFormatError(f"unsupported version {version} (want {VERSION})")
    flags = r.uint(1, "flags")
    if flags not in (0, FLAG_DETACHED):
        raise BatchFormatError(f"unknown flags 0x{flags:02x}")
    batch_id = r.take(BATCH_ID_LEN, "batch_id")
    batch_time_ms = r.uint(8, "batch_time_ms")
    tree_size = r.uint(4, "tree_size")
    leaf_index = r.uint(4, "leaf_index")
    salt = r.take(SALT_LEN, "salt")
    path_len = r.uint(1, "path_len")
    path = [r.take(HASH_LEN, f"path[{i}]") for i in range(path_len)]
    count = r.uint(1, "count")
    if flags == FLAG_DETACHED and count != 0:
        raise BatchFormatError(f"detached value (flags 0x01) with count {count}: "
                               "a detached value carries no root signatures")
    sigs = []
    for i in range(count):
        code = r.uint(1, f"signature[{i}].code")
        kid_len = r.uint(1, f"signature[{i}].keyid_len")
        kid_raw = r.take(kid_len, f"signature[{i}].keyid")
        try:
            keyid = kid_raw.decode("ascii")
        except UnicodeDecodeError:
            raise BatchFormatError(f"signature[{i}].keyid is not ASCII") from None
        sig_len = r.uint(2, f"signature[{i}].sig_len")
        sig = r.take(sig_len, f"signature[{i}].sig")
        sigs.append(RootSignature(code, keyid, sig))
    if r.pos != len(r.data):
        raise BatchFormatError(f"{len(r.data) - r.pos} trailing byte(s) after the last signature")
    return BatchValue(batch_id=batch_id, batch_time_ms=batch_time_ms, tree_size=tree_size,
                      leaf_index=leaf_index, salt=salt, path=path, signatures=sigs,
                      version=version, flags=flags, detached=flags == FLAG_DETACHED)


# --------------------------------------------------------------------------
# The batch document of the detached form (section 6.1)
# --------------------------------------------------------------------------


@dataclass
class BatchDocument:
    """A parsed batch document. Only ``signatures`` is used for verification;
    ``batch_id`` (lower-case hex, or None when the document has none) only to
    reject a document for another batch. ``tbs``, ``log_index`` and ``log``
    are deliberately not kept."""

    signatures: list  # [RootSignature], in document order
    batch_id: str | None = None
    source: str = ""  # how it was obtained, for the output line


def _batch_id_hex(value, what: str) -> str:
    """A batch id as 32 lower-case hex digits (from 16 bytes or a hex string)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != BATCH_ID_LEN:
            raise BatchDocumentError(f"{what}: batch id is {len(value)} bytes (want {BATCH_ID_LEN})")
        return bytes(value).hex()
    if not isinstance(value, str) or len(value) != 2 * BATCH_ID_LEN or any(
            c not in "0123456789abcdefABCDEF" for c in value):
        raise BatchDocumentError(f"{what}: batch_id {value!r} is not {2 * BATCH_ID_LEN} hex digits")
    return value.lower()


def _b64_decode_std(text, what: str) -> bytes:
    if not isinstance(text, str) or any(c not in _B64_CHARS for c in text):
        raise BatchDocumentError(f"{what}: expected a base64 string")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BatchDocumentError(f"{what}: invalid base64 ({e})") from None


def parse_batch_document(obj, source: str = "") -> BatchDocument:
    """A batch document (parsed JSON) -> BatchDocument; raises BatchDocumentError.

    ``signatures`` must be a list of ``{"code": int 0..255, "keyid": ASCII
    string (<= 255 bytes), "sig": base64 (<= 65535 bytes)}``; other members of
    the entries and of the document are ignored, except ``batch_id`` which, if
    present, must be 32 hex digits.
    """
    if isinstance(obj, BatchDocument):
        return obj
    if not isinstance(obj, dict):
        raise BatchDocumentError("batch document is not a JSON object")
    batch_id = None
    if "batch_id" in obj:
        batch_id = _batch_id_hex(obj["batch_id"], "batch document")
    entries = obj.get("signatures")
    if not isinstance(entries, list):
        raise BatchDocumentError('batch document has no "signatures" list')
    if len(entries) > 255:
        raise BatchDocumentError(f"batch document lists {len(entries)} signatures (max 255)")
    sigs = []
    for i, e in enumerate(entries):
        what = f"batch document signatures[{i}]"
        if not isinstance(e, dict):
            raise BatchDocumentError(f"{what} is not an object")
        code, keyid = e.get("code"), e.get("keyid")
        if type(code) is not int or not 0 <= code <= 255:
            raise BatchDocumentError(f"{what}.code {code!r} is not an integer 0..255")
        if not isinstance(keyid, str):
            raise BatchDocumentError(f"{what}.keyid is not a string")
        try:
            _ascii(keyid, f"{what}.keyid")
        except ValueError as err:
            raise BatchDocumentError(str(err)) from None
        sig = _b64_decode_std(e.get("sig"), f"{what}.sig")
        if len(sig) > 0xFFFF:
            raise BatchDocumentError(f"{what}.sig is {len(sig)} bytes (max 65535)")
        sigs.append(RootSignature(code, keyid, sig))
    return BatchDocument(signatures=sigs, batch_id=batch_id, source=source)


def batch_document_url(request_url: str, batch_id: bytes) -> str:
    """``{scheme}://{authority}/.well-known/http-batch-sig/v1/batch/{hex(batch_id)}`` on
    the origin of the request URL (http or https; userinfo, path, query dropped)."""
    parts = urllib.parse.urlsplit(request_url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BatchDocumentError(f"request URL {request_url!r} is not http or https: no origin to fetch from")
    authority = parts.netloc.rpartition("@")[2]
    if not authority:
        raise BatchDocumentError(f"request URL {request_url!r} has no authority")
    return f"{scheme}://{authority}{BATCH_DOCUMENT_PATH}{batch_id.hex()}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def fetch_batch_document(url: str, timeout: float = FETCH_TIMEOUT) -> BatchDocument:
    """GET the batch document; raises BatchDocumentError on a network error, a
    status other than 200, a body over 4 MiB, invalid JSON or a malformed document.
    Environment proxies are honoured, except for loopback hosts."""
    host = urllib.parse.urlsplit(url).hostname
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "qv-verify-batch/1"})
    try:
        with opener.open(req, timeout=timeout) as resp:
            status = resp.status
            body = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise BatchDocumentError(f"GET {url}: HTTP {e.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        raise BatchDocumentError(f"GET {url}: {type(e).__name__}: {reason}") from None
    if status != 200:
        raise BatchDocumentError(f"GET {url}: HTTP {status} (want 200)")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise BatchDocumentError(f"GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise BatchDocumentError(f"GET {url}: not valid JSON ({e})") from None
    try:
        return parse_batch_document(obj, source=f"fetched from {url}")
    except BatchDocumentError as e:
        raise BatchDocumentError(f"GET {url}: {e}") from None


class DocumentSource:
    """Where detached values get their batch document: the given documents
    (batch_id hex -> document, ``"*"`` for any batch), else a fetch from the
    request URL's origin (when ``fetch``), cached by URL in ``cache``."""

    def __init__(self, documents=None, *, fetch: bool = True, timeout: float = FETCH_TIMEOUT,
                 cache: dict | None = None):
        self.documents = {}
        for key, doc in (documents or {}).items():
            k = ANY_BATCH if key in (ANY_BATCH, None) else _batch_id_hex(key, "batch_documents key")
            self.documents[k] = doc
        self.fetch = fetch
        self.timeout = timeout
        self.cache = {} if cache is None else cache

    def get(self, ex: Exchange, batch_id: bytes) -> BatchDocument:
        hexid = batch_id.hex()
        for key in (hexid, ANY_BATCH):
            if key in self.documents:
                doc = self.documents[key]
                source = doc.source if isinstance(doc, BatchDocument) and doc.source else \
                    f"from batch_documents[{key!r}]"
                doc = parse_batch_document(doc, source=source)
                break
        else:
            if not self.fetch:
                raise BatchDocumentError(f"no batch document for batch_id {hexid} (fetching is off)")
            url = batch_document_url(ex.url, batch_id)
            doc = self.cache.get(url)
            if doc is None:
                doc = fetch_batch_document(url, self.timeout)
                self.cache[url] = doc
        if doc.batch_id is not None and doc.batch_id != hexid:
            raise BatchDocumentError(f"the document ({doc.source}) is for batch_id {doc.batch_id}, "
                                     f"the value names {hexid}")
        return doc


# --------------------------------------------------------------------------
# Root signatures (sections 2 and 7)
# --------------------------------------------------------------------------


def _key_type(key) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, mldsa.MLDSA65PublicKey):
        return "ML-DSA-65"
    return type(key).__name__


def verify_root_signature(code: int, key, sig: bytes, message: bytes) -> None:
    """Check one root signature over the TBS; raises VerifyError."""
    if code == CODE_ECDSA_P256:
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
            raise VerifyError(f"key type: code 1 needs an EC P-256 key, the keyid names a {_key_type(key)} key")
        if len(sig) != ECDSA_P256_SIG_LEN:
            raise VerifyError(f"ECDSA signature is {len(sig)} bytes (want 64, r || s)")
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        if not (1 <= r < P256_ORDER and 1 <= s < P256_ORDER):
            raise VerifyError("ECDSA r or s out of range")
        try:
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerifyError("signature does not verify (cryptography InvalidSignature)") from None
    elif code == CODE_ML_DSA_65:
        if not isinstance(key, mldsa.MLDSA65PublicKey):
            raise VerifyError(f"key type: code 2 needs an ML-DSA-65 key, the keyid names a {_key_type(key)} key")
        if len(sig) != MLDSA65_SIG_LEN:
            raise VerifyError(f"ML-DSA-65 signature is {len(sig)} bytes (want {MLDSA65_SIG_LEN})")
        try:
            key.verify(sig, message)  # pure ML-DSA, empty context string
        except InvalidSignature:
            raise VerifyError("signature does not verify (cryptography InvalidSignature)") from None
    else:
        raise VerifyError(f"unknown root signature code {code}")


# --------------------------------------------------------------------------
# Content-Digest (RFC 9530)
# --------------------------------------------------------------------------

DIGEST_ALGS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def check_content_digest(ex: Exchange, required: bool) -> list[tuple[bool, str]]:
    values = ex.field_values("content-digest")
    if not values:
        if required:
            return [(False, "FAIL content-digest reason=missing Content-Digest header")]
        return [(True, "skip content-digest reason=absent (not required)")]
    try:
        parsed = parse_dictionary(", ".join(values))
    except SFError as e:
        return [(False, f"FAIL content-digest reason=malformed Content-Digest ({e})")]
    if not parsed:
        return [(False, "FAIL content-digest reason=empty Content-Digest")]
    out = []
    for alg, (value, _params) in parsed.items():
        if alg not in DIGEST_ALGS:
            out.append((False, f"FAIL content-digest {alg} reason=unsupported algorithm"))
        elif not isinstance(value, bytes):
            out.append((False, f"FAIL content-digest {alg} reason=value is not a byte sequence"))
        elif hmac.compare_digest(value, DIGEST_ALGS[alg](ex.body).digest()):
            out.append((True, f"ok content-digest {alg}"))
        else:
            out.append((False, f"FAIL content-digest {alg} reason=does not match body ({len(ex.body)} bytes)"))
    return out


# --------------------------------------------------------------------------
# Verification (section 8)
# --------------------------------------------------------------------------


def is_batch_entry(member) -> bool:
    """A Signature-Input member whose alg parameter starts with "merkle-"."""
    if not (isinstance(member, tuple) and isinstance(member[0], list)):
        return False
    alg = member[1].get("alg")
    return is_sf_string(alg) and alg.startswith(BATCH_ALG_PREFIX)


def parse_entry(member):
    """Step 1: a Signature-Input member -> (components, params, alg, codes)."""
    if not (isinstance(member, tuple) and isinstance(member[0], list)):
        raise VerifyError("Signature-Input member is not an inner list")
    components, params = member
    alg = params.get("alg")
    if alg is None:
        raise VerifyError("no alg parameter")
    if not is_sf_string(alg):
        raise VerifyError(f"alg parameter is not an sf-string ({alg!r})")
    if alg not in ALG_CODES:
        raise VerifyError(f"unsupported alg {alg!r}")
    for name in ("created", "expires"):
        if name in params and (type(params[name]) is not int or params[name] < 0):
            raise VerifyError(f"{name} parameter is not a non-negative integer")
    if "created" not in params:
        raise VerifyError("no created parameter")
    for name in ("keyid", "nonce", "tag"):
        if name in params and not is_sf_string(params[name]):
            raise VerifyError(f"{name} parameter is not an sf-string")
    return components, params, alg, ALG_CODES[alg]


def check_time(params: dict, now: float, clock_skew: int, max_age) -> tuple[bool, str]:
    created = params["created"]
    if created > now + clock_skew:
        return False, f"created {created} is in the future (now {int(now)}, skew {clock_skew}s)"
    if max_age is not None and created + max_age < now - clock_skew:
        return False, f"created {created} is older than --max-age {max_age}s (now {int(now)})"
    if "expires" in params and params["expires"] < now - clock_skew:
        return False, f"expires {params['expires']} is in the past (now {int(now)})"
    extra = f" expires={params['expires']}" if "expires" in params else ""
    return True, f"created={created}{extra} age={int(now - created)}s"


def verify_label(label: str, entry, signature_member, ex: Exchange, keys: dict, *, now: float,
                 clock_skew: int = 300, max_age=None, documents: DocumentSource | None = None,
                 tbs_sink: list | None = None) -> list[tuple[bool, str]]:
    """Steps 1-7 of section 8 for one label; one (ok, line) per check.

    documents: where a detached value's batch document comes from (default:
    fetched from the request URL's origin). tbs_sink: if a list, a label that
    verifies appends (batch_id, TBS) to it (the TBS built in step 6)."""
    out: list[tuple[bool, str]] = []
    pre = f"label={label}"

    def ok(check, detail=""):
        out.append((True, f"ok {pre} {check}" + (f" {detail}" if detail else "")))

    def fail(check, reason):
        out.append((False, f"FAIL {pre} {check} reason={str(reason).replace(chr(10), ' ')}"))

    # 1. Signature-Input entry and its alg.
    try:
        components, params, alg, codes = parse_entry(entry)
    except VerifyError as e:
        fail("signature-input", e)
        return out
    shown = " ".join(f"{k}={params[k]}" for k in ("keyid", "tag", "nonce") if k in params)
    ok("signature-input", f"alg={alg} {shown}".rstrip())
    if signature_member is None:
        fail("signature", "label not in the Signature header")
        return out
    raw = signature_member[0]
    if not isinstance(raw, bytes):
        fail("signature", "Signature member is not a byte sequence")
        return out

    # 2. Signature base; created/expires.
    try:
        base = signature_base(ex, components, serialize_inner_list(components, params))
    except VerifyError as e:
        fail("signature-base", e)
        return out
    ok("signature-base", f"components={len(components)} bytes={len(base)} sha256={_h(base).hex()[:16]}")
    t_ok, t_msg = check_time(params, now, clock_skew, max_age)
    (ok if t_ok else fail)("time", t_msg)

    # 3. Decode the value.
    try:
        value = decode_value(raw)
    except VerifyError as e:
        fail("value", e)
        return out
    ok("value", f"bytes={len(raw)} batch_id={value.batch_id.hex()} batch_time_ms={value.batch_time_ms} "
                f"tree_size={value.tree_size} leaf_index={value.leaf_index} path_len={len(value.path)} "
                f"count={len(value.signatures)}" + (" detached" if value.detached else ""))

    # 4. Leaf and root.
    leaf = leaf_hash(value.salt, base)
    try:
        root = root_from_path(leaf, value.leaf_index, value.tree_size, value.path)
    except VerifyError as e:
        fail("root", e)
        return out
    ok("root", f"leaf={leaf.hex()[:16]} root={root.hex()}")

    # 4b. Detached form (section 6.1): the root signatures come from the batch document.
    root_sigs, where = value.signatures, "value"
    if value.detached:
        try:
            doc = (documents or DocumentSource()).get(ex, value.batch_id)
        except VerifyError as e:
            fail("batch-document", e)
            return out
        root_sigs, where = doc.signatures, "batch document"
        ok("batch-document", f"{doc.source} signatures={len(root_sigs)}")

    # 5. Code list against alg; the keyid parameter repeats the first root keyid (section 7).
    got = tuple(s.code for s in root_sigs)
    if got != codes:
        fail("codes", f"{where} lists codes {list(got)} but alg {alg} names {list(codes)}")
        return out
    ok("codes", ",".join(map(str, got)))
    if "keyid" in params:
        first = root_sigs[0].keyid
        if params["keyid"] == first:
            ok("keyid", f"keyid={first} (first root signature)")
        else:
            fail("keyid", f"keyid parameter {params['keyid']!r} != first root signature keyid {first!r}")

    # 6. TBS.
    try:
        signed = tbs(alg, value.batch_id, value.batch_time_ms, value.tree_size, root_sigs, root,
                     version=value.version)
    except ValueError as e:
        fail("tbs", e)
        return out
    ok("tbs", f"bytes={len(signed)} sha256={_h(signed).hex()[:16]}")

    # 7. Every root signature.
    for s in root_sigs:
        check = f"root-signature code={s.code} alg={CODE_NAMES.get(s.code, '?')} keyid={s.keyid}"
        key = keys.get(s.keyid)
        if key is None:
            fail(check, f"keyid {s.keyid!r} not in the JWKS")
            continue
        try:
            verify_root_signature(s.code, key, s.sig, signed)
        except VerifyError as e:
            fail(check, e)
            continue
        ok(check)

    if all(o for o, _ in out):
        ok("verified", f"alg={alg} keyid={params.get('keyid')} tree_size={value.tree_size} "
                       f"leaf_index={value.leaf_index} created={params['created']}"
                       + (" detached" if value.detached else ""))
        if tbs_sink is not None:
            tbs_sink.append((value.batch_id, signed))
    return out


def _parse_field(ex: Exchange, name: str):
    values = ex.field_values(name)
    if not values:
        raise VerifyError(f"response has no {name} header")
    return parse_dictionary(", ".join(values))


def verify_exchange(exchange, jwks, labels=None, *, require_digest: bool = False, max_age=None,
                    clock_skew: int = 300, now: float | None = None, notes: list | None = None,
                    batch_documents: dict | None = None, fetch: bool = True,
                    fetch_timeout: float = FETCH_TIMEOUT, fetch_cache: dict | None = None,
                    tbs_sink: list | None = None) -> list[tuple[bool, str]]:
    """Verify the batch signature(s) of one exchange; returns [(ok, line), ...].

    exchange / jwks: parsed JSON (dicts), or an Exchange / the KeySet that
    load_jwks returns. Raises UsageError for malformed input. The exchange
    verified iff every returned ok is True (see exit_code).

    Detached values (section 6.1) take their root signatures from
    batch_documents, a mapping of batch id (32 hex digits, any case, or the 16
    raw bytes; ``"*"`` for a document used for any batch) to a batch document
    (parsed JSON, or a BatchDocument). A malformed document is a FAIL line.
    Without a matching document the document is fetched from the request
    URL's origin when ``fetch`` (timeout ``fetch_timeout`` seconds); with
    ``fetch_cache`` (a dict, URL -> BatchDocument) fetched documents are kept
    and reused across calls, so each batch is fetched once. With ``tbs_sink``
    (a list), each label that verifies appends (batch_id, TBS) to it.
    """
    ex = load_exchange(exchange)
    try:
        documents = DocumentSource(batch_documents, fetch=fetch, timeout=fetch_timeout, cache=fetch_cache)
    except BatchDocumentError as e:
        raise UsageError(str(e)) from None
    keys = jwks if isinstance(jwks, KeySet) else load_jwks(jwks, notes)
    now = time.time() if now is None else now
    checks: list[tuple[bool, str]] = []
    try:
        sig_inputs = _parse_field(ex, "signature-input")
    except VerifyError as e:
        checks.append((False, f"FAIL signature-input reason={e}"))
        sig_inputs = None
    try:
        signatures = _parse_field(ex, "signature")
    except VerifyError as e:
        checks.append((False, f"FAIL signature reason={e}"))
        signatures = None

    verified_entries = []
    if sig_inputs is not None:
        if labels:
            selected = list(dict.fromkeys(labels))
        else:
            selected = [lbl for lbl, m in sig_inputs.items() if is_batch_entry(m)]
            if DEFAULT_LABEL in sig_inputs:
                selected = [DEFAULT_LABEL] + [lbl for lbl in selected if lbl != DEFAULT_LABEL]
            for lbl, m in sig_inputs.items():
                if lbl not in selected:
                    alg = m[1].get("alg") if isinstance(m, tuple) else None
                    checks.append((True, f"skip label={lbl} reason=not a batch label (alg={alg})"))
            if not selected:
                checks.append((False, 'FAIL signature-input reason=no batch label (no entry with alg="merkle-...")'))
        for lbl in selected:
            if lbl not in sig_inputs:
                checks.append((False, f"FAIL label={lbl} signature-input reason=label not in Signature-Input"))
                continue
            member = signatures.get(lbl) if signatures is not None else None
            if signatures is None:
                checks.append((False, f"FAIL label={lbl} signature reason=no usable Signature header"))
                continue
            checks += verify_label(lbl, sig_inputs[lbl], member, ex, keys, now=now, clock_skew=clock_skew,
                                   max_age=max_age, documents=documents, tbs_sink=tbs_sink)
            verified_entries.append((lbl, sig_inputs[lbl]))

    # 8. Content-Digest against the body.
    if require_digest:
        for lbl, member in verified_entries:
            comps = member[0] if isinstance(member, tuple) and isinstance(member[0], list) else []
            if not any(n == "content-digest" and p == {} for n, p in comps):
                checks.append((False, f"FAIL content-digest reason=not covered by label={lbl}"))
    checks += check_content_digest(ex, require_digest)
    return checks


def exit_code(checks) -> int:
    return 0 if all(ok for ok, _ in checks) else 1


def load_batch_files(paths) -> dict:
    """--batch files -> {batch_id hex or "*": BatchDocument}; raises UsageError for an
    unreadable or malformed document, two documents for one batch id, or two without one."""
    documents: dict = {}
    for path in paths:
        obj = load_json(path, "batch document")
        try:
            doc = parse_batch_document(obj, source=f"from {path}")
        except BatchDocumentError as e:
            raise UsageError(f"batch document file {path}: {e}") from None
        key = doc.batch_id or ANY_BATCH
        if key in documents:
            what = f"batch_id {key}" if key != ANY_BATCH else "no batch_id (any batch)"
            raise UsageError(f"--batch {path}: another --batch file ({documents[key].source[5:]}) also has {what}")
        documents[key] = doc
    return documents


def run(args, out=sys.stdout) -> int:
    notes: list = []
    exchange = load_json(args.exchange, "exchange")
    jwks = load_json(args.jwks, "JWKS")
    load_exchange(exchange)  # usage errors before any output
    keys = load_jwks(jwks, notes)
    documents = load_batch_files(args.batch or [])
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    tbs_sink: list | None = [] if args.tbs_out else None
    checks = verify_exchange(exchange, keys, args.label, require_digest=args.require_digest,
                             max_age=args.max_age, clock_skew=args.clock_skew, batch_documents=documents,
                             fetch=not args.no_fetch, tbs_sink=tbs_sink)
    if args.tbs_out:
        try:
            with open(args.tbs_out, "w", encoding="ascii") as f:
                f.writelines(f"{bid.hex()} {signed.hex()}\n" for bid, signed in tbs_sink)
        except OSError as e:
            raise UsageError(f"cannot write --tbs-out {args.tbs_out}: {e}") from None
    for _ok, line in checks:
        print(line, file=out)
    failed = sum(1 for ok, _ in checks if not ok)
    print("result: PASS" if failed == 0 else f"result: FAIL ({failed} failed)", file=out)
    return exit_code(checks)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main(argv=None, out=sys.stdout) -> int:
    p = _Parser(prog="verify_batch.py", description=__doc__.split("\n\n")[0])
    p.add_argument("exchange")
    p.add_argument("jwks")
    p.add_argument("--label", action="append", help="verify only this label (repeatable; default: batch labels)")
    p.add_argument("--require-digest", action="store_true",
                   help="Content-Digest must be present, covered and match")
    p.add_argument("--max-age", type=int, default=None, help="reject signatures created longer ago (seconds)")
    p.add_argument("--clock-skew", type=int, default=300, help="tolerated clock skew in seconds (default 300)")
    p.add_argument("--batch", action="append", metavar="FILE",
                   help="batch document (JSON) for detached values, matched by its batch_id; one without "
                        "batch_id serves any batch (repeatable; default: fetch from the request's origin)")
    p.add_argument("--no-fetch", action="store_true",
                   help="never fetch a batch document; a detached value needs a matching --batch file")
    p.add_argument("--tbs-out", metavar="FILE",
                   help="write '<hex(batch_id)> <hex(TBS)>' for every batch label that verified")
    try:
        args = p.parse_args(argv)
        return run(args, out=out)
    except UsageError as e:
        print(f"usage error: {e}", file=sys.stderr)
        print(p.format_usage().rstrip(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
