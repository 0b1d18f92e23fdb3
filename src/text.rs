//! Hand-written formatting for the request path (access-log lines, X-Forwarded-For): through
//! `core::fmt`, an address or a number costs about a thousand instructions, several times what
//! these take.

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
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.push('.');
        out.extend(digits[..len].iter().map(|&d| d as char));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
