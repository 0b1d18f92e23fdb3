//! CIDR and IP lists (`ip_filter` lists, list files, `trusted_proxies`) on arbitrary text,
//! one entry a line as in a list file. Never panics, and:
//! - the set contains every listed address, and every range's first and last address;
//! - membership agrees with a linear scan of the parsed ranges, at and next to each edge;
//! - a list file's error names a line that does not parse on its own.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ipset -- -max_total_time=60`.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use quantumvault::filters::ipset::{parse_cidr, parse_list_file, IpSet};

fn ip(x: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(x))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let ranges = match parse_list_file(text) {
        Ok(r) => r,
        Err((line, _)) => {
            let l = text.lines().nth(line - 1).expect("the error names a line of the file");
            assert!(parse_cidr(l.split('#').next().unwrap_or("").trim()).is_err());
            return;
        }
    };
    let set = IpSet::from_ranges(ranges.clone());
    assert_eq!(set.len(), ranges.len());
    for line in text.lines() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let addr = entry.split_once('/').map_or(entry, |(a, _)| a);
        let addr: IpAddr = addr.parse().expect("a listed entry's address parses");
        assert!(set.contains(addr), "{entry}");
    }
    let naive = |x: u128| ranges.iter().any(|&(s, e)| s <= x && x <= e);
    for &(s, e) in &ranges {
        assert!(s <= e);
        for x in [s.wrapping_sub(1), s, e, e.wrapping_add(1)] {
            assert_eq!(set.contains(ip(x)), naive(x), "{x:#x}");
        }
    }
    // Splitting the list in two and joining the halves is the same set.
    let (a, b) = ranges.split_at(ranges.len() / 2);
    assert_eq!(
        IpSet::from_ranges(a.to_vec()).union(&IpSet::from_ranges(b.to_vec())),
        set
    );
});
