//! Hand-written formatting for the request path (access-log lines, X-Forwarded-For): through
//! `core::fmt`, an address or a number costs about a thousand instructions, several times what
//! these take. And the one parsing of a media type that request validation, body inspection
//! and response signing share.

use std::net::IpAddr;

pub fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// An address as `Display` writes it (IPv6 through `Display`: rare, and its rules are subtle).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// `micros` as milliseconds with at most three decimals and no trailing zeros: what `Display`
/// prints for `micros as f64 / 1000.0`.
pub fn push_millis(out: &mut String, micros: u64) {
    push_u64(out, micros / 1000);
    let frac = micros % 1000;
    if frac != 0 {
        let digits = three_digits(frac);
        let len = 3 - digits.iter().rev().take_while(|&&d| d == '0').count();
        out.push('.');
        out.extend(&digits[..len]);
    }
}

/// `n` (below 1000) as three decimal digits, zero-padded: fractions of a second.
pub fn three_digits(n: u64) -> [char; 3] {
    [n / 100 % 10, n / 10 % 10, n % 10].map(|d| char::from(b'0' + d as u8))
}

/// Whether any byte is below `limit` or equal to one of `also`, tested eight bytes at a time:
/// `(x - n) & !x & 0x80` in each byte lane is non-zero exactly when some lane of `x` is below
/// `n` (the classic "has zero byte" test; bytes equal to `c` become zeros by XOR with `c`).
/// Exact for every input as long as `limit` is at most 0x80.
#[inline]
pub fn any_byte_below_or(bytes: &[u8], limit: u8, also: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        let mut hit = below(w, limit);
        for &c in also {
            hit |= below(w ^ (ONES * u64::from(c)), 1);
        }
        if hit & HIGHS != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|b| *b < limit || also.contains(b))
}

/// The media type of a `Content-Type` value: what comes before its parameters, trimmed, in
/// lower case (`Text/HTML; charset=utf-8` is `text/html`).
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The media type of the `Content-Type` field of `headers` (the first one); empty when there is
/// none or it is not visible ASCII.
pub fn media_type_of(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_below_or_matches_the_byte_by_byte_test() {
        // Every byte value at every position of strings of 1 to 19 bytes, over plain ASCII and
        // over bytes with the high bit set (where borrows between lanes could mislead), for the
        // two uses: JSON escapes and header control characters.
        for (limit, also) in [(0x20, &b"\"\\"[..]), (0x20, &[0x7f][..])] {
            let naive = |b: &[u8]| b.iter().any(|c| *c < limit || also.contains(c));
            for len in 1..20 {
                for fill in [b'a', b'\t', 0x80, 0xff, b' ', b'!'] {
                    for pos in 0..len {
                        for v in 0..=255u8 {
                            let mut s = vec![fill; len];
                            s[pos] = v;
                            assert_eq!(
                                any_byte_below_or(&s, limit, also),
                                naive(&s),
                                "limit {limit:#x} also {also:?} len {len} fill {fill:#x} pos {pos} byte {v:#x}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type("Application/JSON; charset=UTF-8"), "application/json");
        assert_eq!(media_type("  text/plain  "), "text/plain");
        assert_eq!(media_type(";x=1"), "");
        assert_eq!(media_type(""), "");
        let mut h = http::HeaderMap::new();
        assert_eq!(media_type_of(&h), "");
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("Text/HTML;q=1"),
        );
        h.append(http::header::CONTENT_TYPE, http::HeaderValue::from_static("image/png"));
        assert_eq!(media_type_of(&h), "text/html", "the first field");
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_bytes(b"text/html\xe9").unwrap(),
        );
        assert_eq!(media_type_of(&h), "", "not visible ASCII");
    }

    #[test]
    fn addresses_match_display() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.3.40",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn millis_match_float_display() {
        for micros in (0..5000).chain([123_456, 1_000_000, 1_000_001, 99_999_999, u32::MAX as u64]) {
            let mut out = String::new();
            push_millis(&mut out, micros);
            assert_eq!(out, (micros as f64 / 1000.0).to_string(), "{micros}");
        }
    }
}
