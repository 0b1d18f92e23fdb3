//! TLS end to end: a gateway terminating TLS (HTTP/1.1 and HTTP/2 by ALPN, HSTS, X-Forwarded-Proto
//! https) in front of a plain upstream, and a second gateway that speaks TLS to it as its upstream,
//! checking the certificate and the name (SNI) against the CA it trusts. Certificates are made by
//! the test with the openssl command-line tool; curl is the client.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it, in `dir`.
pub(crate) fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed by scripts/test.sh");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // `openssl req` with a new P-256 key: a self-signed CA (`-x509`) or a signing request.
    let req = |extra: &[&str], key: &str, out: &str, subject: &str| {
        let mut args = vec!["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-keyout", key, "-out", out, "-subj", subject]);
        run(&args);
    };
    req(&["-x509", "-days", "2"], "ca.key", "ca.pem", "/CN=QuantumVault test CA");
    req(&[], "key.pem", "server.csr", "/CN=localhost");
    // A CA that signed nothing here: trusting only it means trusting no server.
    req(&["-x509", "-days", "2"], "other.key", "other.pem", "/CN=Unrelated CA");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Turns the harness's plain listener in `conf` into a TLS one with `cert` and `key`.
pub(crate) fn with_tls_listener(conf: &Path, cert: &Path, key: &Path) {
    let text = std::fs::read_to_string(conf).unwrap();
    // The second line is the listener: `  - address: 127.0.0.1:PORT`.
    let listen_line = text.lines().nth(1).unwrap().to_string();
    let tls = format!(
        "{listen_line}\n    tls: {{cert: {}, key: {}}}\n",
        cert.display(),
        key.display()
    );
    std::fs::write(conf, text.replacen(&format!("{listen_line}\n"), &tls, 1)).unwrap();
}

fn curl(args: &[&str]) -> String {
    curl_stdin(args, b"")
}

#[test]
fn tls_termination_and_tls_to_the_upstream() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (cert, key, ca) = (
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
        certs.path().join("ca.pem"),
    );
    let up = echo("plain");
    // Gateway B terminates TLS in front of the echo upstream.
    let edge = Gateway::start_with_pre(&policy_one("u", &[up.addr()], ""), "", |conf| {
        with_tls_listener(conf, &cert, &key)
    });
    let port = edge.listen.port().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/tls-check?x=1");
    let ca_arg = ca.to_str().unwrap();

    // HTTP/1.1 over TLS, the certificate checked by curl against the test CA.
    let r = curl(&["--http1.1", "--cacert", ca_arg, "--resolve", &resolve, &url]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age="),
        "HSTS on TLS listeners: {r}"
    );
    assert!(lower.contains("\"x-forwarded-proto\": \"https\""), "{r}");
    // HTTP/2 by ALPN.
    let r = curl(&["--http2", "--cacert", ca_arg, "--resolve", &resolve, &url]);
    assert!(r.starts_with("HTTP/2 200"), "{r}");
    // Plain HTTP on the TLS port is not served.
    let plain = curl(&[&format!("http://127.0.0.1:{port}/")]);
    assert!(!plain.contains("200"), "{plain}");

    // Gateway A uses B as a TLS upstream, verifying against the test CA only.
    let tls_pool = |verify: bool, sni: &str| {
        policy_one(
            "edge",
            &[edge.listen],
            &format!("    tls: {{sni: {sni}, verify: {verify}}}\n    retries: 0\n"),
        )
    };
    let inner = Gateway::start_full(
        &tls_pool(true, "localhost"),
        "",
        |_| {},
        &[("SSL_CERT_FILE", ca_arg), ("SSL_CERT_DIR", "/nonexistent")],
    );
    let r = get(&inner.url("/through-tls"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/through-tls");
    // The name is checked: an SNI the certificate does not carry fails (502), and so does a
    // certificate from a CA the gateway does not trust.
    inner.write_policy(&tls_pool(true, "wrong.example"));
    inner.wait_for(10, "reload", || inner.generation() == 2);
    let r = get(&inner.url("/through-tls"));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (502, Some("upstream_unavailable")),
        "{}",
        r.body
    );
    let untrusting = Gateway::start_full(
        &tls_pool(true, "localhost"),
        "",
        |_| {},
        &[
            ("SSL_CERT_FILE", certs.path().join("other.pem").to_str().unwrap()),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    assert_eq!(get(&untrusting.url("/x")).status, 502);
    // verify: false is the operator's explicit choice, and then it connects.
    untrusting.write_policy(&tls_pool(false, "localhost"));
    untrusting.wait_for(10, "reload", || untrusting.generation() == 2);
    assert_eq!(get(&untrusting.url("/x")).status, 200);
}

/// Alert notifications over HTTPS: the webhook is a TLS gateway in front of an Alertmanager
/// stand-in, and the alerting gateway checks its certificate against the test CA.
#[test]
fn alert_webhook_over_https() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let ca = certs.path().join("ca.pem");
    let hook = crate::alerts::Receiver::start(0);
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let relay = Gateway::start_with_pre(&policy_one("hook", &[hook.addr], ""), "", |conf| {
        with_tls_listener(conf, &cert, &key)
    });
    let up = echo("u");
    let policy = format!(
        "{}alerts:\n  builtin: false\n  rules:\n    - {{name: HighErrorRate, metric: error_rate, comparison: \">\", threshold: 0.05, window: 5s, severity: critical, min_requests: 3}}\n",
        policy_one("pool", &[up.addr()], "    retries: 0\n")
    );
    let monitoring = format!(
        "monitoring:\n  resolution: 1s\n  evaluate_every: 200ms\n  webhook:\n    url: https://127.0.0.1:{}/api/v2/alerts\n    timeout: 3s\n",
        relay.listen.port()
    );
    let gw = Gateway::start_full(&policy, &monitoring, |_| {}, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    up.stop();
    let ag = agent();
    gw.wait_for(15, "notification over HTTPS", || {
        let _ = send(&ag, "GET", &gw.url("/"), &[]);
        hook.received()
            .iter()
            .any(|b| b[0]["labels"]["alertname"] == "HighErrorRate")
    });
    let m = get(&gw.admin_url("/metrics")).body;
    assert!(
        m.contains("quantumvault_alert_notifications_total{result=\"ok\"}"),
        "{m}"
    );
}

/// A trust store that cannot load (every CA source named by SSL_CERT_FILE and SSL_CERT_DIR is
/// missing, so the loader fails) stops start-up with a plain message: Pingora would otherwise
/// panic while building its TLS connector.
#[test]
fn unloadable_trust_store_is_a_clear_start_error() {
    let up = echo("u");
    let mut gw = Gateway::start(&policy_one("u", &[up.addr()], ""));
    assert!(gw.stop().success());
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(gw.path("gateway.yaml"))
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .env("SSL_CERT_DIR", "/nonexistent/certs")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot load the trusted CA certificates") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// Runs curl with `stdin` piped in (an upload of unknown length with `-T -`).
fn curl_stdin(args: &[&str], stdin: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Signing routes and proxy routes treat requests alike: an HTTP/2 body without a length
/// arrives whole, the `content_types` allowlist applies to it, and headers named in
/// `Connection` are removed. (`Upgrade` is the one difference, and documented: a signing route
/// cannot hold a protocol switch, so it does not offer it upstream.)
#[test]
fn signing_and_proxy_routes_treat_requests_alike() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (cert, key, ca) = (
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
        certs.path().join("ca.pem"),
    );
    let up = echo("u");
    let policy = format!(
        "upstreams:\n  - {{ name: u, peers: [\"{}\"] }}\n\
routes:\n\
  - {{ name: signed, path_prefix: /signed/, upstream: u, signing: {{ enabled: true, algorithm: ecdsa-p256 }} }}\n\
  - {{ name: plain, path_prefix: /plain/, upstream: u }}\n\
  - {{ name: signed-typed, path_prefix: /signed-typed/, upstream: u, signing: {{ enabled: true, algorithm: ecdsa-p256 }}, validation: {{ content_types: [application/json] }} }}\n\
  - {{ name: plain-typed, path_prefix: /plain-typed/, upstream: u, validation: {{ content_types: [application/json] }} }}\n",
        up.addr()
    );
    let gw = crate::signing::signing_gateway_with(&policy, |conf| with_tls_listener(conf, &cert, &key));
    let port = gw.listen.port().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = |p: &str| format!("https://localhost:{port}{p}");
    let ca_arg = ca.to_str().unwrap();
    let body = vec![b'a'; 70_000];
    let body_json = |r: &str| -> serde_json::Value {
        let (_, b) = r.split_once("\r\n\r\n").unwrap_or(("", ""));
        serde_json::from_str(b).unwrap_or(serde_json::Value::Null)
    };
    for route in ["/signed/", "/plain/"] {
        // HTTP/2 upload of unknown length: DATA frames, no content-length.
        let r = curl_stdin(
            &[
                "--http2",
                "--cacert",
                ca_arg,
                "--resolve",
                &resolve,
                "-X",
                "POST",
                "-T",
                "-",
                &url(&format!("{route}up")),
            ],
            &body,
        );
        assert!(r.starts_with("HTTP/2 200"), "{route}: {r}");
        assert_eq!(
            body_json(&r)["body_bytes"],
            70_000,
            "{route}: the body arrived whole: {r}"
        );
        if route == "/signed/" {
            assert!(r.to_ascii_lowercase().contains("\nsignature: "), "{r}");
        }
    }
    for route in ["/signed-typed/", "/plain-typed/"] {
        let r = curl_stdin(
            &[
                "--http2",
                "--cacert",
                ca_arg,
                "--resolve",
                &resolve,
                "-X",
                "POST",
                "-H",
                "Content-Type: text/plain",
                "-T",
                "-",
                &url(&format!("{route}up")),
            ],
            b"hello",
        );
        assert!(
            r.starts_with("HTTP/2 415"),
            "{route}: the allowlist applies to bodies without a length: {r}"
        );
    }
    for route in ["/signed/", "/plain/"] {
        let r = curl(&[
            "--http1.1",
            "--cacert",
            ca_arg,
            "--resolve",
            &resolve,
            "-H",
            "Connection: keep-alive, X-Secret",
            "-H",
            "X-Secret: 1",
            "-H",
            "Keep-Alive: timeout=5",
            &url(&format!("{route}hop")),
        ]);
        assert!(r.starts_with("HTTP/1.1 200"), "{route}: {r}");
        let headers = &body_json(&r)["headers"];
        assert!(
            headers.get("x-secret").is_none(),
            "{route}: a Connection-listed header reached the upstream: {r}"
        );
        assert!(headers.get("keep-alive").is_none(), "{route}: {r}");
    }
}
