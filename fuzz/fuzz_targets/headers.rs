//! The request header scan: a request head built from arbitrary bytes (first line the target,
//! then `name: value` lines; names and values `http` refuses are skipped, as httparse would
//! refuse them) goes through the framing scan, the header sanitiser and the canonical request.
//! Never panics, and:
//! - framing that passes has at most one `Content-Length`, all digits, and no
//!   `Transfer-Encoding` beside it, and no value with a control character;
//! - the word-at-a-time control-byte test agrees with the byte-by-byte one on every input;
//! - after sanitising, no header the options remove is left (underscores under `drop`, the
//!   proxy-only headers and the method overrides from an untrusted peer), and `reject` never
//!   passes a name with `_`.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run headers -- -max_total_time=60`.
#![no_main]

use http::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;
use quantumvault::canonical::headers::{
    sanitize_map, HeaderOptions, MethodOverride, Underscores, METHOD_OVERRIDE_HEADERS,
};
use quantumvault::canonical::{CanonicalRequest, NormalizationSpec};
use quantumvault::filters::validate::check_framing;
use quantumvault::text::any_byte_below_or;

fn naive_control(b: &[u8]) -> bool {
    b.iter().any(|&c| c < 0x20 || c == 0x7f)
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(any_byte_below_or(data, 0x20, &[0x7f]), naive_control(data));
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut lines = data.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or(b"/");
    let Ok(mut req) = RequestHeader::build("POST", target, None).or_else(|_| RequestHeader::build("POST", b"/", None))
    else {
        return;
    };
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        let _ = req.append_header(name, value);
    }
    for (_, v) in req.headers.iter() {
        let b = v.as_bytes();
        assert_eq!(any_byte_below_or(b, 0x20, &[0x7f]), naive_control(b));
    }

    if check_framing(&req).is_ok() {
        let cls: Vec<&HeaderValue> = req.headers.get_all(http::header::CONTENT_LENGTH).iter().collect();
        assert!(cls.len() <= 1);
        if let Some(cl) = cls.first() {
            assert!(!cl.is_empty() && cl.as_bytes().iter().all(u8::is_ascii_digit));
            assert!(!req.headers.contains_key(http::header::TRANSFER_ENCODING));
        }
        assert!(req
            .headers
            .values()
            .all(|v| !v.as_bytes().iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)));
    }

    let _ = quantumvault::text::media_type_of(&req.headers);
    let _ = CanonicalRequest::of(&req, &NormalizationSpec::default());

    let underscores = [
        Underscores::DropLookalikes,
        Underscores::Drop,
        Underscores::Reject,
        Underscores::Allow,
    ][(mode & 3) as usize];
    let method_override = if mode & 4 == 0 {
        MethodOverride::Remove
    } else {
        MethodOverride::Check
    };
    let trusted = mode & 8 != 0;
    let opts = HeaderOptions {
        underscores,
        method_override,
        ..HeaderOptions::default()
    };
    let key = HeaderName::from_static("x-api-key");
    let mut headers = req.headers.clone();
    let had_underscore = headers.keys().any(|n| n.as_str().contains('_'));
    match sanitize_map(&mut headers, &opts, trusted, &[&key]) {
        Ok(_) => {
            assert!(!(underscores == Underscores::Reject && had_underscore));
            if underscores == Underscores::Drop {
                assert!(headers.keys().all(|n| !n.as_str().contains('_')));
            }
            if !trusted {
                assert!(opts.untrusted_remove.iter().all(|n| !headers.contains_key(n)));
                if method_override == MethodOverride::Remove {
                    assert!(METHOD_OVERRIDE_HEADERS.iter().all(|n| !headers.contains_key(*n)));
                }
            }
        }
        Err(_) => assert_eq!(headers, req.headers, "a refused request is left as it came"),
    }
});
