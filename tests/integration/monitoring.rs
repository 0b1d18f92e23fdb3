//! The shipped Prometheus rules and Grafana dashboard against a live gateway: promtool accepts
//! the rules and a live scrape, every metric the rules and the dashboard use exists after
//! traffic, and 10,000 distinct paths add no series.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .expect("promtool is installed by scripts/test.sh (Debian package prometheus)");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("quantumvault_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        names.insert(base.to_string());
        i = end;
    }
    names
}

fn series(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

#[test]
fn rules_dashboard_and_live_scrape_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = promtool(
        &["check", "rules", root.join("prometheus/alerts.yml").to_str().unwrap()],
        None,
    );
    assert!(ok, "promtool check rules: {out}");

    let up = echo("u");
    let policy = format!(
        r#"rate_limits:
  - {{ name: tight, scope: client_ip, rate: 1, per: 1h, shared: true }}
upstreams:
  - {{ name: u, peers: ["{}"], health_check: {{ path: /, interval: 200ms }} }}
  - {{ name: dead, peers: ["{}"] }}
inspection:
  mode: block
routes:
  - {{ name: api, path_prefix: /api/, upstream: u }}
  - {{ name: limited, path_prefix: /limited/, upstream: u, rate_limits: [tight] }}
  - {{ name: gone, path_prefix: /gone/, upstream: dead }}
  - {{ name: signed, path_prefix: /signed/, upstream: u, signing: {{ enabled: true }} }}
  - {{ name: batch, path_prefix: /batch/, upstream: u, signing: {{ enabled: true, mode: batch }} }}
"#,
        up.addr(),
        free_addr()
    );
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("k");
    std::fs::write(&key_file, "7a".repeat(32)).unwrap();
    // In cluster mode (a real redis-server), so that the cluster panels' series are live too.
    let redis = crate::cluster::Redis::start(dir.path(), &[]);
    let extra = format!(
        "keys:\n  key_file: {}\n  lifetime: 30d\ncluster:\n  redis: [\"{}\"]\n  instance: mon\n",
        key_file.display(),
        redis.url()
    );
    let gw = Gateway::start_with_pre(&policy, &extra, |conf| {
        keys_init(conf);
    });
    let ag = agent();
    for path in [
        "/api/a",
        "/api/b",
        "/limited/x",
        "/limited/x",
        "/gone/x",
        "/signed/x",
        "/batch/x",
        "/nowhere",
        "/api/?q=%3Cscript%3E",
    ] {
        send(&ag, "GET", &gw.url(path), &[]).unwrap();
    }
    gw.wait_for(5, "healthy gauge", || {
        get(&gw.admin_url("/metrics"))
            .body
            .contains("quantumvault_upstream_peers_healthy")
    });
    let scrape = get(&gw.admin_url("/metrics")).body;
    let (ok, out) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok, "promtool check metrics: {out}");

    let live = metric_names_in(&scrape);
    let rules = std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("grafana/dashboards/quantumvault.json")).unwrap();
    for (what, text) in [("alert rules", &rules), ("dashboard", &dashboard)] {
        let used = metric_names_in(text);
        assert!(!used.is_empty());
        let missing: Vec<&String> = used.iter().filter(|n| !live.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{what} use metrics missing from a live scrape: {missing:?}"
        );
    }

    // Bounded cardinality: 10,000 distinct paths (and query strings) add no series.
    let before = series(&get(&gw.admin_url("/metrics")).body);
    for i in 0..10_000 {
        send(&ag, "GET", &gw.url(&format!("/api/item/{i}?user={i}")), &[]).unwrap();
    }
    let after = series(&get(&gw.admin_url("/metrics")).body);
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(new.is_empty(), "new series after 10,000 distinct paths: {new:?}");
    assert!(
        !after.iter().any(|s| s.contains("/api/item/")),
        "no raw paths as labels"
    );
}
