#!/usr/bin/env python3
"""Independent verifier for QuantumVault's anchor log (docs/batch-signing.md section 11).

Written from the specification text and the C2SP documents it names
(signed-note, tlog-checkpoint, tlog-tiles, tlog-proof) and RFC 9162, not from
the gateway's code. Only the Python standard library and ``cryptography``
(Ed25519, ML-DSA-65) are used.

Usage:
    verify_log.py checkpoint  --note FILE                         KEYS
    verify_log.py inclusion   --proof FILE --tbs-hex HEX          KEYS
    verify_log.py consistency --old FILE --new FILE --log PREFIX  KEYS
    verify_log.py entries     --log PREFIX --note FILE            KEYS

    KEYS:  --key VKEY [--key VKEY ...] and/or --keys-file FILE  [--any-key]

VKEY is a verifier key ``<name>+<hex key id, 8 digits>+<base64(type || public key)>``
(section 11.4; type 0x01 Ed25519, 0xFF || "ml-dsa-65" ML-DSA-65). --keys-file
reads one per line (the log's /keys; blank lines and lines starting with '#'
are skipped). Every configured key must have a verifying signature on each
checkpoint unless --any-key (then one is enough). PREFIX is the log's URL
prefix, e.g. ``http://127.0.0.1:8080/.well-known/http-batch-sig/v1/log``.

* checkpoint: verify the signed checkpoint -> ``ok checkpoint <origin> <size>``.
* inclusion: verify the tlog-proof's checkpoint and the inclusion path of
  SHA-256(0x00 || TBS) at its index -> ``ok inclusion index=<i> size=<n>``.
  HEX is the TBS (section 5), e.g. the second column of verify_batch.py --tbs-out.
* consistency: verify both checkpoints (same origin), recompute the new root
  from the log's tiles, build the RFC 9162 consistency proof from those tiles and
  verify it against both roots -> ``ok consistency <m> -> <n>``.
* entries: fetch every entry bundle of the checkpoint's tree, check that each
  entry hashes to its level-0 tile hash, that every tile (all levels) matches
  the hashes recomputed from the entries, and that the entries' tree has the
  checkpoint's root -> ``ok entries <n>``.

A failed check prints ``FAIL <reason>`` and exits 1 (this includes a tile or
bundle the checkpoint implies that the log answers with an HTTP error, or
serves with the wrong length). Usage errors, unreadable files, bad --key
values and network errors (connection refused, timeout) print ``error: ...``
to stderr and exit 2.

Library: parse_vkey, verify_note, parse_checkpoint_body, parse_proof,
verify_inclusion, verify_consistency, root_from_inclusion, TileReader,
tile_path, entries_path, encode_tile_index, tile_width, node_hash_from_tiles,
subtree_hash_from_tiles, root_from_tiles, inclusion_proof_from_tiles,
consistency_proof_from_tiles, verify_entries, main.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import http.client
import ipaddress
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import NamedTuple

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
except ImportError as _e:  # pragma: no cover - environment problem
    print(f"error: missing dependency ({_e}); run tests/interop/setup.sh and use its python", file=sys.stderr)
    sys.exit(2)

# --------------------------------------------------------------------------
# Constants (section 11 and the C2SP documents)
# --------------------------------------------------------------------------

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962 MTH of the empty list

#: signed-note signature type identifiers (section 11.3).
TYPE_ED25519 = b"\x01"
TYPE_ML_DSA_65 = b"\xff" + b"ml-dsa-65"
ED25519_PUBLIC_KEY_LEN = 32
ED25519_SIG_LEN = 64
ML_DSA_65_PUBLIC_KEY_LEN = 1952
ML_DSA_65_SIG_LEN = 3309
KEY_TYPES = {  # type bytes -> (label, public key length, signature length)
    TYPE_ED25519: ("Ed25519", ED25519_PUBLIC_KEY_LEN, ED25519_SIG_LEN),
    TYPE_ML_DSA_65: ("ML-DSA-65", ML_DSA_65_PUBLIC_KEY_LEN, ML_DSA_65_SIG_LEN),
}

SIG_LINE_PREFIX = "\u2014 "  # EM DASH, space
#: C2SP signed-note: verifiers SHOULD limit the number of signatures and MUST accept 16.
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_TREE_SIZE = (1 << 64) - 1
MAX_PATH_LEN = 64

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes per full tile
MAX_TILE_LEVEL = 63
MAX_ENTRY_LEN = 0xFFFF
FETCH_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 64 << 20

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class UsageError(Exception):
    """Bad CLI usage, unreadable file or malformed --key: exit status 2."""


class LogIOError(Exception):
    """The log could not be reached (connection error, timeout): exit status 2."""


class VerifyError(ValueError):
    """A check failed (exit status 1). The message is the reason."""


class TileError(VerifyError):
    """A tile or entry bundle the checkpoint implies is missing or malformed."""


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash of a log entry: SHA-256(0x00 || entry)."""
    return _h(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def _b64decode_strict(text: str, what: str) -> bytes:
    """Standard, padded base64 (RFC 4648 section 4), canonical only."""
    if not isinstance(text, str) or not text.isascii():
        raise VerifyError(f"{what}: not ASCII base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerifyError(f"{what}: invalid base64 ({e})") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise VerifyError(f"{what}: non-canonical base64")
    return data


def _decimal(text: str, what: str, maximum: int = MAX_TREE_SIZE) -> int:
    if not _DECIMAL.fullmatch(text):
        raise VerifyError(f"{what} {text!r} is not a decimal without leading zeroes")
    value = int(text)
    if value > maximum:
        raise VerifyError(f"{what} {text} is larger than {maximum}")
    return value


def _is_valid_key_name(name: str) -> bool:
    # signed-note: non-empty, no Unicode spaces, no '+'. (Control characters are
    # rejected for the whole note anyway; refuse them in names too.)
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in name)


# --------------------------------------------------------------------------
# Verifier keys (section 11.4)
# --------------------------------------------------------------------------


def key_id(name: str, key_type: bytes, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[0:4] as a big-endian uint32."""
    return int.from_bytes(_h(name.encode("utf-8") + b"\n" + key_type + public_key)[:4], "big")


class VerifierKey(NamedTuple):
    name: str
    key_id: int
    type: bytes
    public_key: bytes

    @property
    def label(self) -> str:
        return KEY_TYPES[self.type][0]

    def describe(self) -> str:
        return f"{self.name}+{self.key_id:08x} ({self.label})"


def parse_vkey(s: str) -> VerifierKey:
    """``<name>+<hex key id>+<base64(type || public key)>`` -> VerifierKey, a
    (name, key_id, type_bytes, public_key) tuple. Raises VerifyError when the
    text is malformed, the type is unknown, the key length is wrong, the public
    key does not load, or the key id is not the one the spec derives."""
    if not isinstance(s, str):
        raise VerifyError("verifier key is not a string")
    name, plus1, rest = s.partition("+")
    hex_id, plus2, b64 = rest.partition("+")
    if not plus1 or not plus2:
        raise VerifyError("verifier key is not <name>+<hex id>+<base64 key>")
    if not _is_valid_key_name(name):
        raise VerifyError(f"verifier key name {name!r} is empty or has spaces, '+' or control characters")
    if not _HEX8.fullmatch(hex_id):
        raise VerifyError(f"verifier key id {hex_id!r} is not 8 hex digits")
    data = _b64decode_strict(b64, "verifier key")
    for key_type, (label, pk_len, _sig_len) in KEY_TYPES.items():
        if data.startswith(key_type):
            public_key = data[len(key_type):]
            if len(public_key) != pk_len:
                raise VerifyError(f"{label} verifier key has {len(public_key)} key bytes (want {pk_len})")
            break
    else:
        raise VerifyError(f"unsupported verifier key type 0x{data[:1].hex() or '(none)'}")
    want = key_id(name, key_type, public_key)
    if int(hex_id, 16) != want:
        raise VerifyError(f"verifier key id {hex_id} does not match the key (computed {want:08x})")
    _public_key_object(key_type, public_key)  # must load
    return VerifierKey(name, want, key_type, public_key)


_KEY_OBJECTS: dict = {}


def _public_key_object(key_type: bytes, public_key: bytes):
    k = (key_type, public_key)
    if k not in _KEY_OBJECTS:
        try:
            if key_type == TYPE_ED25519:
                obj = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
            else:
                obj = mldsa.MLDSA65PublicKey.from_public_bytes(public_key)
        except ValueError as e:
            raise VerifyError(f"{KEY_TYPES[key_type][0]} public key does not load ({e})") from None
        _KEY_OBJECTS[k] = obj
    return _KEY_OBJECTS[k]


def format_vkey(name: str, key_type: bytes, public_key: bytes) -> str:
    """The verifier key text of (name, type, public key)."""
    kid = key_id(name, key_type, public_key)
    return f"{name}+{kid:08x}+{base64.b64encode(key_type + public_key).decode()}"


def _load_vkeys(vkeys) -> list[VerifierKey]:
    if isinstance(vkeys, (str, VerifierKey)):
        vkeys = [vkeys]
    out: list[VerifierKey] = []
    for v in vkeys:
        k = v if isinstance(v, VerifierKey) else parse_vkey(v)
        if any(o.name == k.name and o.key_id == k.key_id for o in out):
            if k in out:
                continue  # the same key twice
            raise VerifyError(f"two configured keys share name {k.name!r} and key id {k.key_id:08x}")
        out.append(k)
    if not out:
        raise VerifyError("no verifier key configured")
    return out


def _verify_sig(key: VerifierKey, sig: bytes, message: bytes) -> bool:
    label, _pk_len, sig_len = KEY_TYPES[key.type]
    if len(sig) != sig_len:
        return False
    obj = _public_key_object(key.type, key.public_key)
    try:
        obj.verify(sig, message)  # Ed25519 (RFC 8032); ML-DSA-65 pure, empty context
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------
# Signed notes and checkpoints (section 11.3)
# --------------------------------------------------------------------------


@dataclass
class NoteSignature:
    name: str
    key_id: int
    sig: bytes
    line: str


@dataclass
class Note:
    text: str  # the note text, final newline included
    signatures: list[NoteSignature]


@dataclass
class Checkpoint:
    """A verified checkpoint. Unpacks as (origin, size, root)."""

    origin: str
    size: int
    root: bytes
    text: str = ""
    extensions: list[str] = field(default_factory=list)
    verified_by: list[VerifierKey] = field(default_factory=list)
    unknown_signatures: int = 0

    def __iter__(self):
        return iter((self.origin, self.size, self.root))


def _note_str(text) -> str:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_NOTE_BYTES:
            raise VerifyError(f"note larger than {MAX_NOTE_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise VerifyError(f"note is not UTF-8 ({e})") from None
    if not isinstance(text, str):
        raise VerifyError("note is not text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise VerifyError(f"note larger than {MAX_NOTE_BYTES} bytes")
    return text


def parse_note(text) -> Note:
    """Split a signed note (C2SP signed-note) into its text and signature lines.

    Rejects: invalid UTF-8 (or lone surrogates), control characters other than
    newline, no final newline, no blank line before the signatures, no
    signature, a malformed signature line (prefix, key name, base64, fewer than
    5 bytes), more than MAX_SIGNATURES signatures."""
    s = _note_str(text)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise VerifyError("note is not valid Unicode text") from None
    for i, c in enumerate(s):
        if ord(c) < 0x20 and c != "\n":
            raise VerifyError(f"control character U+{ord(c):04X} at offset {i} of the note")
    if not s.endswith("\n"):
        raise VerifyError("note does not end with a newline")
    split = s.rfind("\n\n")
    if split < 0:
        raise VerifyError("note has no blank line before the signatures")
    body, sigs = s[:split + 1], s[split + 2:]
    if not sigs:
        raise VerifyError("note has no signature line")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerifyError(f"note has {len(lines)} signatures (limit {MAX_SIGNATURES})")
    out: list[NoteSignature] = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(SIG_LINE_PREFIX):
            raise VerifyError(f"signature line {n} does not start with an em dash and a space: {line[:40]!r}")
        name, sp, b64 = line[len(SIG_LINE_PREFIX):].partition(" ")
        if not sp or not _is_valid_key_name(name):
            raise VerifyError(f"signature line {n}: bad key name {name!r}")
        if not b64:
            raise VerifyError(f"signature line {n}: no signature")
        raw = _b64decode_strict(b64, f"signature line {n}")
        if len(raw) < 5:
            raise VerifyError(f"signature line {n}: {len(raw)} bytes (want a 4-byte key id and a signature)")
        out.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:], line))
    return Note(body, out)


def parse_checkpoint_body(text: str, allow_extensions: bool = False) -> Checkpoint:
    """The note text of a checkpoint: origin, size, base64 root, each with a newline.

    Extension lines (C2SP tlog-checkpoint allows non-empty ones) are rejected
    unless allow_extensions: section 11.3 says the note has three lines."""
    if not text.endswith("\n"):
        raise VerifyError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerifyError(f"checkpoint has {len(lines)} lines (want origin, size, root)")
    origin, size_line, root_line, *ext = lines
    if not origin:
        raise VerifyError("checkpoint origin line is empty")
    size = _decimal(size_line, "checkpoint size")
    root = _b64decode_strict(root_line, "checkpoint root")
    if len(root) != HASH_LEN:
        raise VerifyError(f"checkpoint root is {len(root)} bytes (want {HASH_LEN})")
    if size == 0 and root != EMPTY_ROOT:
        raise VerifyError("checkpoint of size 0 whose root is not SHA-256 of the empty string")
    if ext:
        if not allow_extensions:
            raise VerifyError(f"checkpoint has {len(ext)} extension line(s) after the root (section 11.3: three lines)")
        if any(not e for e in ext):
            raise VerifyError("checkpoint has an empty extension line")
    return Checkpoint(origin, size, root, text=text, extensions=ext)


def verify_note(text, vkeys, require_all: bool = True, allow_extensions: bool = False,
                require_origin_key: bool = True) -> Checkpoint:
    """Verify a signed checkpoint against the configured verifier keys.

    vkeys: verifier key strings or VerifierKey tuples (or one of them).
    Signatures from unknown keys (name and key id not both matching) are
    ignored; a signature from a configured key that fails rejects the note; at
    least one configured key must verify; with require_all every configured key
    must have a verifying signature. With require_origin_key (section 11.3:
    "every signature line's key name is the origin") at least one verifying
    key's name must be the checkpoint's origin. Returns the Checkpoint."""
    keys = _load_vkeys(vkeys)
    note = parse_note(text)
    cp = parse_checkpoint_body(note.text, allow_extensions=allow_extensions)
    message = note.text.encode("utf-8")
    by_id = {(k.name, k.key_id): k for k in keys}
    verified: list[VerifierKey] = []
    unknown = 0
    for n, s in enumerate(note.signatures, 1):
        k = by_id.get((s.name, s.key_id))
        if k is None:
            unknown += 1
            continue
        if not _verify_sig(k, s.sig, message):
            raise VerifyError(f"signature line {n} by configured key {k.describe()} does not verify")
        if k not in verified:
            verified.append(k)
    if not verified:
        seen = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
        raise VerifyError(f"no signature from a configured key (signatures by: {seen})")
    if require_all:
        missing = [k for k in keys if k not in verified]
        if missing:
            raise VerifyError("no signature from configured key(s) " + ", ".join(k.describe() for k in missing))
    if require_origin_key and not any(k.name == cp.origin for k in verified):
        raise VerifyError(f"no verified signature by a key named as the origin {cp.origin!r}")
    cp.verified_by = verified
    cp.unknown_signatures = unknown
    return cp


# --------------------------------------------------------------------------
# tlog-proof (section 11.5)
# --------------------------------------------------------------------------


@dataclass
class Proof:
    index: int
    path: list[bytes]
    checkpoint: str  # the checkpoint note, verbatim (verify it with verify_note)
    extra: bytes | None = None


def parse_proof(text) -> Proof:
    """Parse a c2sp.org/tlog-proof@v1 (does not verify the checkpoint)."""
    s = _note_str(text)
    header, nl, rest = s.partition("\n")
    if header != PROOF_HEADER or not nl:
        raise VerifyError(f"proof does not start with the line {PROOF_HEADER!r}")
    extra = None
    line, nl, after = rest.partition("\n")
    if line.startswith("extra "):
        extra = _b64decode_strict(line[len("extra "):], "proof extra line")
        line, nl, after = after.partition("\n")
    if not line.startswith("index ") or not nl:
        raise VerifyError(f"proof has no 'index N' line (got {line[:40]!r})")
    index = _decimal(line[len("index "):], "proof index")
    path: list[bytes] = []
    rest = after
    while True:
        line, nl, after = rest.partition("\n")
        if not nl:
            raise VerifyError("proof has no blank line before the checkpoint")
        rest = after
        if line == "":
            break
        if len(path) >= MAX_PATH_LEN:
            raise VerifyError(f"proof has more than {MAX_PATH_LEN} hashes")
        h = _b64decode_strict(line, f"proof hash {len(path) + 1}")
        if len(h) != HASH_LEN:
            raise VerifyError(f"proof hash {len(path) + 1} is {len(h)} bytes (want {HASH_LEN})")
        path.append(h)
    if not rest:
        raise VerifyError("proof has no checkpoint")
    return Proof(index, path, rest, extra)


# --------------------------------------------------------------------------
# RFC 9162 proofs
# --------------------------------------------------------------------------


def _check_hashes(hashes, what: str) -> list[bytes]:
    out = list(hashes)
    for i, h in enumerate(out):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_LEN:
            raise VerifyError(f"{what} element {i} is not a {HASH_LEN}-byte hash")
    return [bytes(h) for h in out]


def root_from_inclusion(leaf: bytes, index: int, size: int, path) -> bytes:
    """RFC 9162 section 2.1.3.2: the root the audit path leads to (raises VerifyError)."""
    path = _check_hashes(path, "inclusion path")
    if not (0 <= index < size <= MAX_TREE_SIZE):
        raise VerifyError(f"leaf index {index} not in a tree of size {size}")
    if len(path) > MAX_PATH_LEN:
        raise VerifyError(f"inclusion path of {len(path)} hashes")
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in path:
        if sn == 0:
            raise VerifyError(f"inclusion path too long for index {index} in size {size}")
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
        raise VerifyError(f"inclusion path too short for index {index} in size {size}")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, path, root: bytes) -> bool:
    """Check the inclusion of leaf (a leaf hash) at index in the tree of size with root."""
    got = root_from_inclusion(leaf, index, size, path)
    if got != root:
        raise VerifyError(f"inclusion path of index {index} in size {size} leads to {got.hex()}, "
                          f"not the root {bytes(root).hex()}")
    return True


def verify_consistency(m: int, n: int, proof, old_root: bytes, new_root: bytes) -> bool:
    """RFC 9162 section 2.1.4.2 (raises VerifyError). m == n needs an empty proof
    and equal roots; m == 0 an empty proof (and the old root is the empty tree's)."""
    proof = _check_hashes(proof, "consistency proof")
    if not (0 <= m and 0 <= n <= MAX_TREE_SIZE):
        raise VerifyError(f"bad tree sizes {m}, {n}")
    if m > n:
        raise VerifyError(f"the newer tree ({n}) is smaller than the older one ({m})")
    if m == n:
        if proof:
            raise VerifyError(f"consistency proof of {len(proof)} hashes between equal sizes")
        if old_root != new_root:
            raise VerifyError(f"two different roots for size {m}")
        return True
    if m == 0:
        if proof:
            raise VerifyError("consistency proof from the empty tree is not empty")
        if old_root != EMPTY_ROOT:
            raise VerifyError("the root of size 0 is not SHA-256 of the empty string")
        return True
    if not proof:
        raise VerifyError("empty consistency proof")
    if len(proof) > MAX_PATH_LEN + 1:
        raise VerifyError(f"consistency proof of {len(proof)} hashes")
    if m & (m - 1) == 0:
        proof = [bytes(old_root)] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerifyError(f"consistency proof too long for {m} -> {n}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerifyError(f"consistency proof too short for {m} -> {n}")
    if fr != old_root:
        raise VerifyError(f"consistency proof {m} -> {n} does not lead to the old root")
    if sr != new_root:
        raise VerifyError(f"consistency proof {m} -> {n} does not lead to the new root")
    return True


# --------------------------------------------------------------------------
# Tiles (C2SP tlog-tiles)
# --------------------------------------------------------------------------


def encode_tile_index(n: int) -> str:
    """1234067 -> 'x001/x234/067'; 0 -> '000'."""
    if n < 0:
        raise ValueError("negative tile index")
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def _width_suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level {level}")
    return f"tile/{level}/{encode_tile_index(index)}{_width_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    return f"tile/entries/{encode_tile_index(index)}{_width_suffix(width)}"


def tile_width(level: int, index: int, size: int) -> int:
    """Width of tile (level, index) in a tree of `size` leaves: 256 for a full
    tile, floor(size / 256**level) mod 256 for the partial one at the right
    edge; raises VerifyError for a tile that the tree does not have."""
    full = size >> (TILE_HEIGHT * (level + 1))
    if index < full:
        return TILE_WIDTH
    if index == full:
        w = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
        if w:
            return w
    raise VerifyError(f"tree of size {size} has no tile {level}/{index}")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TileReader:
    """Fetches hash tiles and entry bundles under a log's URL prefix.

    Everything fetched is cached (tiles are immutable). When a partial tile is
    not found (404) and fallback_full, the full tile is tried and its first
    `width` hashes used (tlog-tiles allows logs to delete partial tiles once
    the full one exists). `fetched` lists every path requested, in order."""

    def __init__(self, prefix_url: str, timeout: float = FETCH_TIMEOUT, fallback_full: bool = True):
        parts = urllib.parse.urlsplit(prefix_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise UsageError(f"log prefix {prefix_url!r} is not an http(s) URL")
        self.prefix = prefix_url.rstrip("/")
        self.timeout = timeout
        self.fallback_full = fallback_full
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)
        self._cache: dict[str, bytes] = {}
        self._nodes: dict = {}  # (level, tile, width, offset, height mod 8) -> subtree hash
        self.fetched: list[str] = []

    def url(self, path: str) -> str:
        return f"{self.prefix}/{path}"

    def get(self, path: str) -> bytes:
        """GET prefix/path; TileError on an HTTP status other than 200, LogIOError
        on a network error."""
        if path in self._cache:
            return self._cache[path]
        url = self.url(path)
        self.fetched.append(path)
        req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity",
                                                   "User-Agent": "qv-verify-log/1"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
                body = resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as e:
            raise TileError(f"GET {url}: HTTP {e.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise LogIOError(f"GET {url}: {type(e).__name__}: {reason}") from None
        if status != 200:
            raise TileError(f"GET {url}: HTTP {status} (want 200)")
        if len(body) > MAX_RESPONSE_BYTES:
            raise TileError(f"GET {url}: response larger than {MAX_RESPONSE_BYTES} bytes")
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, ValueError) as e:
                raise TileError(f"GET {url}: bad gzip body ({e})") from None
        elif encoding != "identity":
            raise TileError(f"GET {url}: unsupported Content-Encoding {encoding!r}")
        self._cache[path] = body
        return body

    def _get_with_fallback(self, partial: str, full: str, width: int) -> tuple[bytes, bool]:
        """(body, is_full_tile)."""
        if width == TILE_WIDTH:
            return self.get(full), True
        if full in self._cache:
            return self._cache[full], True
        try:
            return self.get(partial), False
        except TileError as e:
            if not self.fallback_full or "HTTP 404" not in str(e):
                raise
            try:
                return self.get(full), True
            except TileError:
                raise e from None

    def tile(self, level: int, index: int, width: int) -> list[bytes]:
        """The `width` hashes of tile (level, index)."""
        body, full = self._get_with_fallback(tile_path(level, index, width), tile_path(level, index), width)
        want = (TILE_WIDTH if full else width) * HASH_LEN
        if len(body) != want:
            raise TileError(f"tile {tile_path(level, index, TILE_WIDTH if full else width)} is {len(body)} "
                            f"bytes (want {want})")
        return [body[i * HASH_LEN:(i + 1) * HASH_LEN] for i in range(width)]

    def entry_bundle(self, index: int, width: int) -> list[bytes]:
        """The first `width` entries of entry bundle `index`."""
        body, full = self._get_with_fallback(entries_path(index, width), entries_path(index), width)
        path = entries_path(index, TILE_WIDTH if full else width)
        entries: list[bytes] = []
        pos = 0
        while pos < len(body):
            if pos + 2 > len(body):
                raise TileError(f"entry bundle {path}: truncated length at byte {pos}")
            n = int.from_bytes(body[pos:pos + 2], "big")
            if pos + 2 + n > len(body):
                raise TileError(f"entry bundle {path}: entry {len(entries)} runs past the end")
            entries.append(body[pos + 2:pos + 2 + n])
            pos += 2 + n
        want = TILE_WIDTH if full else width
        if len(entries) != want:
            raise TileError(f"entry bundle {path} has {len(entries)} entries (want {want})")
        return entries[:width]

    def checkpoint(self) -> bytes:
        return self.get("checkpoint")


def node_hash_from_tiles(reader: TileReader, size: int, height: int, index: int) -> bytes:
    """Hash of the full subtree at `height` (2**height leaves) number `index`, in a
    tree of `size` leaves: taken from tile level height // 8, hashed up from its
    256**level-spaced hashes when height is not a multiple of 8."""
    if height < 0 or index < 0 or (index + 1) << height > size:
        raise VerifyError(f"no full subtree of height {height} at index {index} in a tree of size {size}")
    level, r = divmod(height, TILE_HEIGHT)
    first, count = index << r, 1 << r
    t, off = first >> TILE_HEIGHT, first & (TILE_WIDTH - 1)
    w = tile_width(level, t, size)
    memo = getattr(reader, "_nodes", None)
    key = (level, t, w, off, r)
    if memo is not None and key in memo:
        return memo[key]
    hashes = reader.tile(level, t, w)
    row = hashes[off:off + count]
    if len(row) != count:  # cannot happen for a well-formed request
        raise VerifyError(f"tile {level}/{t} lacks hashes {off}..{off + count - 1}")
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    if memo is not None:
        memo[key] = row[0]
    return row[0]


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash_from_tiles(reader: TileReader, size: int, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range of the tree of `size` leaves, from tiles."""
    if not 0 <= start < end <= size:
        raise VerifyError(f"bad range {start}..{end} of a tree of size {size}")
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        h = n.bit_length() - 1
        return node_hash_from_tiles(reader, size, h, start >> h)
    k = _largest_power_of_two_below(n)
    return node_hash(subtree_hash_from_tiles(reader, size, start, start + k),
                     subtree_hash_from_tiles(reader, size, start + k, end))


def root_from_tiles(reader: TileReader, size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return subtree_hash_from_tiles(reader, size, 0, size)


def inclusion_proof_from_tiles(reader: TileReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 PATH(index, D[0:size]), leaf's sibling first."""
    if not 0 <= index < size:
        raise VerifyError(f"leaf index {index} not in a tree of size {size}")

    def path(m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return path(m, start, start + k) + [subtree_hash_from_tiles(reader, size, start + k, end)]
        return path(m - k, start + k, end) + [subtree_hash_from_tiles(reader, size, start, start + k)]

    return path(index, 0, size)


def consistency_proof_from_tiles(reader: TileReader, m: int, n: int) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 PROOF(m, D[0:n]) (SUBPROOF), from tiles of the size-n tree."""
    if not 0 <= m <= n:
        raise VerifyError(f"no consistency proof from size {m} to size {n}")
    if m == 0 or m == n:
        return []

    def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
        size = end - start
        if m == size:
            return [] if whole else [subtree_hash_from_tiles(reader, n, start, end)]
        k = _largest_power_of_two_below(size)
        if m <= k:
            return subproof(m, start, start + k, whole) + [subtree_hash_from_tiles(reader, n, start + k, end)]
        return subproof(m - k, start + k, end, False) + [subtree_hash_from_tiles(reader, n, start, start + k)]

    return subproof(m, 0, n, True)


def _mth_block(hashes: list[bytes]) -> bytes:
    """MTH of a power-of-two-sized list of node hashes."""
    row = hashes
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH over leaf hashes, level by level (odd nodes are carried up)."""
    if not leaves:
        return EMPTY_ROOT
    row = list(leaves)
    while len(row) > 1:
        nxt = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        if len(row) & 1:
            nxt.append(row[-1])
        row = nxt
    return row[0]


def verify_entries(reader: TileReader, cp: Checkpoint) -> list[bytes]:
    """Fetch every entry of the checkpoint's tree and check it against the tiles
    (every level) and the root; returns the entries."""
    size = cp.size
    entries: list[bytes] = []
    leaves: list[bytes] = []
    for b in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        w = tile_width(0, b, size)
        bundle = reader.entry_bundle(b, w)
        tile = reader.tile(0, b, w)
        for i, e in enumerate(bundle):
            lh = leaf_hash(e)
            if lh != tile[i]:
                raise VerifyError(f"entry {b * TILE_WIDTH + i} does not hash to its level-0 tile hash "
                                  f"({entries_path(b, w)} vs {tile_path(0, b, w)})")
            leaves.append(lh)
        entries.extend(bundle)
    # Tiles above level 0: each hash is the MTH of a full tile below.
    level_hashes = leaves
    level = 1
    while size >> (TILE_HEIGHT * level):
        level_hashes = [_mth_block(level_hashes[i:i + TILE_WIDTH])
                        for i in range(0, len(level_hashes) - TILE_WIDTH + 1, TILE_WIDTH)]
        for t in range((len(level_hashes) + TILE_WIDTH - 1) // TILE_WIDTH):
            w = tile_width(level, t, size)
            if reader.tile(level, t, w) != level_hashes[t * TILE_WIDTH:t * TILE_WIDTH + w]:
                raise VerifyError(f"tile {tile_path(level, t, w)} does not match the entries")
        level += 1
    root = merkle_root(leaves)
    if root != cp.root:
        raise VerifyError(f"the tree of the {size} entries has root {root.hex()}, not the checkpoint's "
                          f"{cp.root.hex()}")
    return entries


def verify_consistency_from_tiles(reader: TileReader, old: Checkpoint, new: Checkpoint) -> list[bytes]:
    """Both checkpoints verified already: same origin, new root from tiles, proof from tiles."""
    if old.origin != new.origin:
        raise VerifyError(f"origins differ: {old.origin!r} vs {new.origin!r}")
    if new.size < old.size:
        raise VerifyError(f"the newer checkpoint ({new.size}) is smaller than the older one ({old.size})")
    got = root_from_tiles(reader, new.size)
    if got != new.root:
        raise VerifyError(f"the tiles give root {got.hex()} for size {new.size}, not the new checkpoint's "
                          f"{new.root.hex()}")
    proof = consistency_proof_from_tiles(reader, old.size, new.size)
    verify_consistency(old.size, new.size, proof, old.root, new.root)
    return proof


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_NOTE_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e}") from None
    if len(data) > MAX_NOTE_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_NOTE_BYTES} bytes")
    return data


def _keys_from_args(args) -> list[VerifierKey]:
    texts = list(args.key or [])
    for path in args.keys_file or []:
        try:
            lines = _read(path, "keys file").decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise UsageError(f"keys file {path} is not UTF-8 ({e})") from None
        texts += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not texts:
        raise UsageError("no verifier key: give --key VKEY or --keys-file FILE")
    try:
        return _load_vkeys(texts)
    except VerifyError as e:
        raise UsageError(f"bad verifier key: {e}") from None


def run(args, out=sys.stdout) -> int:
    keys = _keys_from_args(args)
    require_all = not args.any_key
    if args.cmd == "checkpoint":
        cp = verify_note(_read(args.note, "note"), keys, require_all=require_all)
        print(f"ok checkpoint {cp.origin} {cp.size}", file=out)
    elif args.cmd == "inclusion":
        try:
            entry = bytes.fromhex(args.tbs_hex)
        except ValueError:
            raise UsageError("--tbs-hex is not hex") from None
        proof = parse_proof(_read(args.proof, "proof"))
        cp = verify_note(proof.checkpoint, keys, require_all=require_all)
        verify_inclusion(leaf_hash(entry), proof.index, cp.size, proof.path, cp.root)
        print(f"ok inclusion index={proof.index} size={cp.size}", file=out)
    elif args.cmd == "consistency":
        reader = TileReader(args.log, timeout=args.timeout)
        old = verify_note(_read(args.old, "old checkpoint"), keys, require_all=require_all)
        new = verify_note(_read(args.new, "new checkpoint"), keys, require_all=require_all)
        verify_consistency_from_tiles(reader, old, new)
        print(f"ok consistency {old.size} -> {new.size}", file=out)
    elif args.cmd == "entries":
        reader = TileReader(args.log, timeout=args.timeout)
        cp = verify_note(_read(args.note, "note"), keys, require_all=require_all)
        verify_entries(reader, cp)
        print(f"ok entries {cp.size}", file=out)
    else:  # pragma: no cover
        raise UsageError(f"unknown command {args.cmd}")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="verify_log.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)
    sub.required = True

    def keys(sp):
        sp.add_argument("--key", action="append", metavar="VKEY", help="verifier key (repeatable)")
        sp.add_argument("--keys-file", action="append", metavar="FILE", help="file of verifier keys, one a line")
        sp.add_argument("--any-key", action="store_true",
                        help="accept a checkpoint that one configured key signed (default: all of them)")

    sp = sub.add_parser("checkpoint", help="verify a signed checkpoint")
    sp.add_argument("--note", required=True, metavar="FILE")
    keys(sp)
    sp = sub.add_parser("inclusion", help="verify a tlog-proof for a TBS")
    sp.add_argument("--proof", required=True, metavar="FILE")
    sp.add_argument("--tbs-hex", required=True, metavar="HEX")
    keys(sp)
    sp = sub.add_parser("consistency", help="verify that the log grew from --old to --new, from tiles")
    sp.add_argument("--old", required=True, metavar="FILE")
    sp.add_argument("--new", required=True, metavar="FILE")
    sp.add_argument("--log", required=True, metavar="PREFIX_URL")
    sp.add_argument("--timeout", type=float, default=FETCH_TIMEOUT)
    keys(sp)
    sp = sub.add_parser("entries", help="fetch and check every entry of a checkpoint's tree")
    sp.add_argument("--log", required=True, metavar="PREFIX_URL")
    sp.add_argument("--note", required=True, metavar="FILE")
    sp.add_argument("--timeout", type=float, default=FETCH_TIMEOUT)
    keys(sp)
    return p


def main(argv=None, out=sys.stdout, err=sys.stderr) -> int:
    p = build_parser()
    try:
        args = p.parse_args(argv)
        return run(args, out=out)
    except VerifyError as e:
        print(f"FAIL {str(e).replace(chr(10), ' ')}", file=out)
        return 1
    except (UsageError, LogIOError) as e:
        print(f"error: {e}", file=err)
        if isinstance(e, UsageError):
            print(p.format_usage().rstrip(), file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
