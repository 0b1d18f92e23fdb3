//! Per-filter costs (criterion): `cargo bench --bench filters`.
//! The whole-proxy cost of the same filters is measured by `SCENARIO=filters benches/load.sh`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use quantumvault::filters::auth::hash_key;
use quantumvault::filters::client_ip;
use quantumvault::filters::ipset::{parse_cidr, IpSet};
use quantumvault::filters::rate_limit::RateLimiter;
use quantumvault::inspect::extract::{inspect, RequestView};
use quantumvault::inspect::Inspector;

fn hundred_thousand_cidrs() -> Vec<String> {
    (0..100_000u32)
        .map(|i| {
            let ip = Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761) >> 8));
            if i % 4 == 0 {
                format!("{ip}/24")
            } else {
                ip.to_string()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cidrs = hundred_thousand_cidrs();
    let started = Instant::now();
    let set = IpSet::parse(cidrs.iter().map(String::as_str)).unwrap();
    eprintln!("ipset: parsed and built 100,000 entries in {:?}", started.elapsed());

    c.bench_function("ipset_build_100k", |b| {
        b.iter(|| IpSet::from_ranges(cidrs.iter().map(|c| parse_cidr(c).unwrap()).collect()))
    });
    let probes: Vec<IpAddr> = (0..1024u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i * 7919)))
        .collect();
    c.bench_function("ipset_lookup_100k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(set.contains(probes[i]))
        })
    });
    let trusted = IpSet::parse(["10.0.0.0/8"]).unwrap();
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    c.bench_function("client_ip_xff_3_hops", |b| {
        b.iter(|| {
            black_box(client_ip::resolve(
                peer,
                ["203.0.113.9, 10.1.1.1, 10.2.2.2"].into_iter(),
                &trusted,
            ))
        })
    });
    let limiter = RateLimiter::new(1_000_000, Duration::from_secs(1), 1_000_000, 1 << 20);
    c.bench_function("rate_limit_check", |b| {
        let mut t = 0u64;
        b.iter(|| {
            t += 1000;
            black_box(limiter.check(&[127u8, 0, 0, 1][..], t))
        })
    });
    // A typical 2 KiB JSON API request: nested objects, prose with apostrophes, ids, URLs.
    let mut items = Vec::new();
    for i in 0..12 {
        items.push(format!(
            r#"{{"id":"{i:08x}-4b1e-9c3a","name":"O'Brien's order {i}","note":"please select the blue one and drop it at the door","url":"https://shop.example.com/p/{i}?ref=mail%20campaign","qty":{i}}}"#
        ));
    }
    let json = format!(
        r#"{{"customer":{{"email":"anna+shop@example.com","items":[{}]}}}}"#,
        items.join(",")
    );
    eprintln!("inspection: JSON body of {} bytes", json.len());
    let insp = Inspector::new(1, &[]);
    let headers = vec![
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"),
        ("Referer", "https://shop.example.com/cart?step=2"),
    ];
    // Paranoia 2 adds the libinjection tokenizers (942001, 941001) and the noisier patterns.
    let insp2 = Inspector::new(2, &[]);
    for (name, insp) in [
        ("inspect_2k_json_request", &insp),
        ("inspect_2k_json_request_paranoia2", &insp2),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let view = RequestView {
                    path: "/api/v1/orders",
                    query: Some("expand=items&lang=en"),
                    headers: headers.clone(),
                    content_type: Some("application/json"),
                    body: Some(json.as_bytes()),
                    exclude: &[],
                    limits: quantumvault::inspect::Limits::default(),
                };
                black_box(inspect(insp, &view))
            })
        });
    }
    let opts = quantumvault::canonical::PathOptions::default();
    for (name, path) in [
        ("canonical_path_plain", "/api/v1/users/12345/orders"),
        (
            "canonical_path_escaped",
            "//api/v1/./users/%31%32%33/../12345/orders%20x",
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                black_box(quantumvault::canonical::path::canonicalize(
                    black_box(path.as_bytes()),
                    &opts,
                ))
            })
        });
    }
    c.bench_function("api_key_sha256", |b| {
        b.iter(|| {
            black_box(hash_key(
                "qv_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
