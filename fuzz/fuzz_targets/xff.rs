//! X-Forwarded-For parsing: never panics, and the result is the peer or an address that is
//! written in the header. Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run xff -- -max_total_time=60`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantumvault::filters::client_ip::{parse_entry, resolve};
use quantumvault::filters::ipset::IpSet;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let trusted = IpSet::parse(["10.0.0.0/8", "::1", "192.168.0.0/16"]).unwrap();
    let peer = "10.0.0.1".parse().unwrap();
    let got = resolve(peer, header.split('\n'), &trusted);
    assert!(got == peer || header.split(['\n', ',']).any(|e| parse_entry(e) == Some(got)));
});
