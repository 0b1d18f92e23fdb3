//! `Content-Encoding`: which codings a request names, and undoing them within a bound.

use std::borrow::Cow;
use std::io::Read;

use super::BodyError;

/// A content coding the gateway can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped, or raw deflate (servers accept both).
    Deflate,
}

/// Codings stacked deeper than this are refused (one is usual; two is already odd).
pub(super) const MAX_CODINGS: usize = 2;

/// The codings of every `Content-Encoding` value, in the order they were applied. Names are
/// case-insensitive (`GZIP`); `identity` means none.
pub fn content_codings<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<Coding>, BodyError> {
    let mut out = Vec::new();
    for v in values {
        for token in v.split(|b| *b == b',') {
            let token = token.trim_ascii();
            let coding = if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if token.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else {
                return Err(BodyError::UnsupportedEncoding);
            };
            out.push(coding);
        }
    }
    if out.len() > MAX_CODINGS {
        return Err(BodyError::UnsupportedEncoding);
    }
    Ok(out)
}

/// Reads `r` to its end or to `max + 1` bytes, whichever is first.
pub(super) fn read_bounded(mut r: impl Read, max: u64) -> Result<Vec<u8>, (Vec<u8>, BodyError)> {
    let mut out = Vec::new();
    let limit = max.saturating_add(1);
    match r.by_ref().take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > max => Err((out, BodyError::TooLarge)),
        Ok(_) => Ok(out),
        Err(_) => Err((out, BodyError::Corrupt)),
    }
}

/// A zlib stream starts with a CMF/FLG pair whose 16-bit value is a multiple of 31 and whose
/// method is 8 (RFC 1950); anything else under `deflate` is taken as raw deflate.
pub(super) fn is_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Undoes `codings` (last applied, first undone), never producing more than `max` bytes: a
/// small body that expands past the bound is `TooLarge`, however it was built. On error the
/// bytes decoded so far come back too (what `oversize: pass` inspects).
pub fn decode(body: &[u8], codings: &[Coding], max: u64) -> Result<Vec<u8>, (Vec<u8>, BodyError)> {
    let mut cur = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        let next = match coding {
            Coding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(&cur[..]), max),
            Coding::Deflate if is_zlib(&cur) => read_bounded(flate2::read::ZlibDecoder::new(&cur[..]), max),
            Coding::Deflate => read_bounded(flate2::read::DeflateDecoder::new(&cur[..]), max),
        };
        cur = Cow::Owned(next?);
    }
    Ok(cur.into_owned())
}
