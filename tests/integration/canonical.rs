//! The canonical request against a backend that normalises paths the way common frameworks
//! do (tests/integration/normalizing_upstream.py: Python's unquote + normpath, a servlet model
//! that cuts `;` parameters, a case-insensitive model). One upstream server per route, so the
//! server that answers names the route the gateway applied; for every variant that the gateway
//! forwards, every backend model must resolve the received path to that same route. Variants
//! aimed at a protected route must be refused or get its policy (401 without a key).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::common::*;

/// The Python upstream: one server per name, on ports it chose.
pub struct PyUpstream {
    child: Child,
    pub ports: HashMap<String, u16>,
}

impl PyUpstream {
    pub fn start(names: &[&str]) -> PyUpstream {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/normalizing_upstream.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(names)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the normalising upstream");
        let mut ports = HashMap::new();
        let out = child.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            let (name, port) = line.split_once(' ').unwrap();
            ports.insert(name.to_string(), port.parse().unwrap());
        }
        assert_eq!(ports.len(), names.len(), "the upstream started every server");
        PyUpstream { child, ports }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[name]))
    }
}

impl Drop for PyUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn new_key(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

fn key_entry(id: &str, tier: &str, key: &str) -> String {
    format!(
        "  - {{id: {id}, name: t, tier: {tier}, sha256: {}, created: '2026-01-01T00:00:00Z'}}\n",
        hex::encode(quantumvault::filters::auth::hash_key(key))
    )
}

struct Setup {
    gw: Gateway,
    _up: PyUpstream,
    key: String,
    plain_key: String,
}

fn setup(normalization: &str) -> Setup {
    let up = PyUpstream::start(&["private", "internal", "vhost", "public"]);
    let key = new_key("qv_");
    let plain_key = new_key("plain");
    let pool = |n: &str| format!("  - {{name: {n}, peers: [\"{}\"]}}\n", up.addr(n));
    let policy = format!(
        "upstreams:\n{}{}{}{}tiers:\n  - name: reader\n    methods: [GET]\napi_keys:\n{}{}\
routes:\n\
  - {{name: private, path_prefix: /private/, upstream: private, case_insensitive: true, auth: {{required: true, query_param: api_key}}}}\n\
  - {{name: internal, path_prefix: /internal/, upstream: internal, auth: {{required: true}}}}\n\
  - {{name: vhost, hosts: [secure.test], path_prefix: /, upstream: vhost, auth: {{required: true}}}}\n\
  - {{name: public, path_prefix: /, upstream: public}}\n{normalization}",
        pool("private"),
        pool("internal"),
        pool("vhost"),
        pool("public"),
        key_entry("k_reader", "reader", &key),
        key_entry("k_plain", "reader", &plain_key),
    );
    Setup {
        gw: Gateway::start(&policy),
        _up: up,
        key,
        plain_key,
    }
}

/// The route each backend model gives a resolved path and host.
fn model_route(path: &str, host: &str) -> &'static str {
    if host == "secure.test" {
        return "vhost";
    }
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/private/") || lower == "/private" {
        "private"
    } else if path.starts_with("/internal/") || path == "/internal" {
        "internal"
    } else {
        "public"
    }
}

struct Answer {
    status: u16,
    body: serde_json::Value,
    text: String,
}

fn send_raw(gw: &Gateway, request: &[u8]) -> Answer {
    let text = raw(gw.listen, request);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    Answer {
        status: status_of(&text),
        body,
        text,
    }
}

fn request(target: &str, headers: &[&str]) -> Vec<u8> {
    let mut r = format!("GET {target} HTTP/1.1\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("Connection: close\r\n\r\n");
    r.into_bytes()
}

fn upstream_header<'a>(body: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    body["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|kv| kv[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                .filter_map(|kv| kv[1].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The host a backend reads from the Host it received: lower case, no port, no trailing dot.
fn backend_host(body: &serde_json::Value) -> String {
    let h = upstream_header(body, "host")
        .first()
        .copied()
        .unwrap_or("")
        .to_ascii_lowercase();
    let h = h.rsplit_once(':').map_or(h.as_str(), |(h, _)| h).to_string();
    h.trim_end_matches('.').to_string()
}

/// Every model agrees with the route the gateway applied (which server answered).
fn assert_agree(variant: &str, a: &Answer) {
    let served = a.body["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{variant}: no upstream answer: {}", a.text));
    let host = backend_host(&a.body);
    for model in ["python", "servlet", "lower"] {
        let resolved = a.body["resolved"][model].as_str().unwrap();
        assert_eq!(
            model_route(resolved, &host),
            served,
            "{variant}: gateway applied route {served:?}, the {model} backend model resolves {resolved:?} (host {host:?})"
        );
    }
}

/// The bypass table: each variant is aimed at a protected route (private, internal or the
/// secure.test host) without a key. It must be refused (400) or get the protected route's
/// policy (401). A variant that is forwarded must be forwarded to the route the backend
/// resolves.
#[test]
fn bypass_table_is_refused_or_protected() {
    let s = setup("");
    let h = "Host: localhost";
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("plain", request("/private/data", &[h])),
        ("escaped letter", request("/%70rivate/data", &[h])),
        ("all escaped", request("/%70%72%69%76%61%74%65/data", &[h])),
        ("lower-case hex", request("/priv%61te/data", &[h])),
        ("double slash", request("//private/data", &[h])),
        ("many slashes", request("///private//data", &[h])),
        ("dot segment", request("/./private/data", &[h])),
        ("dot-dot", request("/public/../private/data", &[h])),
        ("escaped dot-dot", request("/public/%2e%2e/private/data", &[h])),
        ("upper escaped dot-dot", request("/public/%2E%2E/private/data", &[h])),
        ("half escaped dot-dot", request("/public/.%2e/private/data", &[h])),
        ("dot-dot beyond root", request("/../../private/data", &[h])),
        ("escaped slash after dots", request("/public/..%2fprivate/data", &[h])),
        ("escaped slashes around", request("/public%2f..%2fprivate/data", &[h])),
        ("escaped slash inside", request("/private%2fdata", &[h])),
        ("leading escaped slash", request("/%2fprivate/data", &[h])),
        ("escaped backslash", request("/public/..%5cprivate/data", &[h])),
        ("raw backslashes", request("/public\\..\\private\\data", &[h])),
        ("double-encoded dots", request("/public/%252e%252e/private/data", &[h])),
        ("double-encoded letter", request("/%2570rivate/data", &[h])),
        ("path parameter", request("/private;x/data", &[h])),
        ("tomcat dot-dot parameter", request("/public/..;/private/data", &[h])),
        ("session parameter", request("/private/data;jsessionid=1", &[h])),
        ("upper case", request("/PRIVATE/data", &[h])),
        ("mixed case", request("/PrIvAtE/data", &[h])),
        ("escaped upper case", request("/%50RIVATE/data", &[h])),
        ("no trailing slash", request("/private", &[h])),
        ("dot inside", request("/private/./data", &[h])),
        ("dot-dot back in", request("/private/../private/data", &[h])),
        ("escaped NUL before", request("/%00/../private/data", &[h])),
        ("escaped NUL inside", request("/private%00/data", &[h])),
        ("escaped newline", request("/private%0a/data", &[h])),
        ("dotless i", request("/pr%C4%B1vate/data", &[h])),
        ("long s", request("/%C5%BFecret/../private/x", &[h])),
        ("overlong slash", request("/public/..%c0%afprivate/data", &[h])),
        ("invalid UTF-8", request("/private/%FF", &[h])),
        ("invalid escape", request("/private%zz/data", &[h])),
        ("truncated escape", request("/private/data%4", &[h])),
        ("fragment", request("/private/data#x", &[h])),
        ("internal, escaped", request("/%69nternal/data", &[h])),
        ("internal, dot-dot", request("/x/../internal/data", &[h])),
        ("internal, no slash", request("/internal", &[h])),
        ("absolute form, no Host", request("http://localhost/private/data", &[])),
        (
            "absolute form, escaped",
            request("http://localhost/%70rivate/data", &[h]),
        ),
        (
            "absolute form, upper scheme",
            request("HTTP://localhost/private/data", &[h]),
        ),
        (
            "absolute form, other host",
            request("http://other.test/private/data", &[h]),
        ),
        (
            "absolute form, vhost without Host",
            request("http://secure.test/data", &[]),
        ),
        (
            "absolute form, vhost upper and dot",
            request("http://Secure.Test./data", &[]),
        ),
        ("vhost upper case", request("/data", &["Host: SECURE.TEST"])),
        ("vhost trailing dot", request("/data", &["Host: secure.test."])),
        ("vhost with port", request("/data", &["Host: secure.test:8080"])),
        (
            "vhost trailing dot and port",
            request("/data", &["Host: Secure.Test.:80"]),
        ),
        (
            "absolute vhost, Host elsewhere",
            request("http://secure.test/data", &["Host: localhost"]),
        ),
        ("no Host at all", request("/private/data", &[])),
        ("Host with space", request("/data", &["Host: secure.test x"])),
        ("Host with escape", request("/data", &["Host: secure%2etest"])),
        (
            "override to a protected path",
            request("/public", &[h, "X-Original-URL: /private/data"]),
        ),
        (
            "rewrite to a protected path",
            request("/public", &[h, "X-Rewrite-URL: /private/data"]),
        ),
    ];
    assert!(variants.len() >= 40);
    let mut refused = 0;
    for (name, req) in &variants {
        let a = send_raw(&s.gw, req);
        match a.status {
            400 => refused += 1,
            401 => {}
            // Forwarded: only to a route the backend agrees on, never to a protected one.
            200 => {
                assert_agree(name, &a);
                let served = a.body["name"].as_str().unwrap();
                assert!(
                    served == "public",
                    "{name}: a protected route was served without a key: {}",
                    a.text
                );
                // A proxy-only header from an untrusted client never reaches the backend.
                assert!(upstream_header(&a.body, "x-original-url").is_empty(), "{name}");
                assert!(upstream_header(&a.body, "x-rewrite-url").is_empty(), "{name}");
            }
            other => panic!("{name}: unexpected status {other}: {}", a.text),
        }
        if a.status == 400 {
            // The gateway's JSON error, or Pingora's own empty 400 for what its parser refuses
            // before any hook runs (two Host lines, Host against absolute-form authority).
            if a.body.is_null() {
                assert!(a.text.contains("Content-Length: 0"), "{name}: {}", a.text);
            } else {
                assert_eq!(a.body["error"], "bad_request", "{name}: {}", a.text);
                assert!(a.body["request_id"].is_string(), "{name}");
            }
        }
    }
    assert!(refused >= 20, "most ambiguous spellings are refused ({refused})");

    // With the key, the spellings that are not refused reach the protected route and the
    // backend receives the canonical target.
    let auth = format!("X-API-Key: {}", s.key);
    for (target, expect) in [
        ("/%70rivate/./data", "/private/data"),
        ("//private//data/", "/private/data/"),
        ("/public/%2e%2e/PRIVATE/data?q=%2F", "/PRIVATE/data?q=%2F"),
        ("http://localhost/private/x", "/private/x"),
        ("/private/data#x", "/private/data"),
    ] {
        let a = send_raw(&s.gw, &request(target, &[h, &auth]));
        assert_eq!(a.status, 200, "{target}: {}", a.text);
        assert_eq!(a.body["name"], "private", "{target}");
        assert_eq!(a.body["target"], expect, "{target}");
        assert_agree(target, &a);
    }
    // A vhost request in absolute form with no Host: the upstream gets the canonical Host.
    let a = send_raw(&s.gw, &request("http://Secure.Test./data", &[&auth]));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["name"], "vhost");
    assert_eq!(upstream_header(&a.body, "host"), vec!["secure.test"]);
}

/// Header spellings: lookalikes of the gateway's own headers, proxy-only headers from an
/// untrusted client, method overrides, and two keys.
#[test]
fn header_spellings_do_not_reach_the_backend() {
    let s = setup("");
    let h = "Host: localhost";
    let a = send_raw(
        &s.gw,
        &request(
            "/open",
            &[
                h,
                "X_Api_Key_Id: k_admin",
                "X-Api-Key-Id: k_admin",
                "x_api_key_tier: gold",
                "X-QV_Inspection: none",
                "X_Forwarded_For: 10.9.9.9",
                "X_Forwarded_Host: secure.test",
                "X_Request_Id: forged",
                "X_API_KEY: qv_forged",
                "Forwarded: for=10.9.9.9;host=secure.test",
                "X-Real-IP: 10.9.9.9",
                "X-Forwarded-Host: secure.test",
                "X-HTTP-Method-Override: DELETE",
                "X-Method-Override: DELETE",
                "X_HTTP_Method_Override: DELETE",
                "X_Custom_Header: kept",
            ],
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let names: Vec<String> = a.body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| kv[0].as_str().unwrap().to_ascii_lowercase().replace('_', "-"))
        .collect();
    for forbidden in [
        "x-api-key-id",
        "x-api-key-tier",
        "x-qv-inspection",
        "x-api-key",
        "forwarded",
        "x-real-ip",
        "x-http-method-override",
        "x-method-override",
    ] {
        assert!(
            !names.iter().any(|n| n == forbidden),
            "{forbidden} reached the backend: {names:?}"
        );
    }
    assert_eq!(upstream_header(&a.body, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(upstream_header(&a.body, "x-forwarded-host"), vec!["localhost"]);
    assert_ne!(upstream_header(&a.body, "x-request-id"), vec!["forged"]);
    assert_eq!(upstream_header(&a.body, "x_custom_header"), vec!["kept"]);

    // Two different keys: the gateway would check one and the backend might use the other.
    let two = send_raw(
        &s.gw,
        &request(
            "/private/x",
            &[h, &format!("X-API-Key: {}", s.key), "X-API-Key: qv_other"],
        ),
    );
    assert_eq!(two.status, 400, "{}", two.text);
    let q = send_raw(
        &s.gw,
        &request(&format!("/private/x?api_key={}&api_key=qv_other", s.key), &[h]),
    );
    assert_eq!(q.status, 400, "{}", q.text);

    // The tier allows GET only: an override to DELETE is removed (default) ...
    let auth = format!("X-API-Key: {}", s.key);
    let a = send_raw(
        &s.gw,
        &request("/private/x", &[h, &auth, "X-HTTP-Method-Override: DELETE"]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(upstream_header(&a.body, "x-http-method-override").is_empty());
    // ... and so is `_method` in the query (Symfony, Laravel, Express read it), in any
    // spelling, the other parameters kept in order.
    for q in [
        "a=1&_method=DELETE&b=2",
        "a=1&%5Fmethod=delete&b=2",
        "a=1;_METHOD=put&b=2",
    ] {
        let a = send_raw(&s.gw, &request(&format!("/private/x?{q}"), &[h, &auth]));
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        assert_eq!(a.body["query"].as_str().unwrap_or(""), "a=1&b=2", "{q}");
    }
}

/// With `method_override: check`, overrides are kept and checked like the method.
#[test]
fn kept_method_overrides_are_checked_against_tier_methods() {
    let s = setup("normalization:\n  headers:\n    method_override: check\n    underscores: reject\n");
    let h = "Host: localhost";
    let auth = format!("X-API-Key: {}", s.key);
    let a = send_raw(
        &s.gw,
        &request("/private/x", &[h, &auth, "X-HTTP-Method-Override: delete"]),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"], "tier_forbidden");
    let a = send_raw(&s.gw, &request("/private/x", &[h, &auth, "X-HTTP-Method: GET"]));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(upstream_header(&a.body, "x-http-method"), vec!["GET"]);
    let a = send_raw(
        &s.gw,
        &request(
            "/private/x",
            &[h, &auth, "X-HTTP-Method: GET", "X-Method-Override: PUT"],
        ),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    // `_method` in the query is kept and checked the same way.
    let a = send_raw(&s.gw, &request("/private/x?_method=delete", &[h, &auth]));
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"], "tier_forbidden");
    let a = send_raw(&s.gw, &request("/private/x?_method=GET&z=1", &[h, &auth]));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["query"], "_method=GET&z=1");
    let a = send_raw(
        &s.gw,
        &request("/private/x?_method=PUT", &[h, &auth, "X-HTTP-Method: GET"]),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    // underscores: reject answers 400 to any underscore header name.
    let a = send_raw(&s.gw, &request("/open", &[h, "X_Custom: 1"]));
    assert_eq!(a.status, 400, "{}", a.text);
}

/// Every credential spelling: the gateway reads the key (or not), and the backend never sees
/// it, in headers or in the query.
#[test]
fn credentials_never_reach_the_backend() {
    let s = setup("");
    let h = "Host: localhost";
    let (k, p) = (s.key.as_str(), s.plain_key.as_str());
    let cases: Vec<(String, Vec<String>, u16, &str)> = vec![
        (
            format!("/private/a"),
            vec![format!("Authorization: bearer    {k}")],
            200,
            "private",
        ),
        (
            format!("/private/a"),
            vec![format!("Authorization: BEARER\t{k}")],
            200,
            "private",
        ),
        (
            format!("/private/a"),
            vec![format!("Authorization: Bearer {p}")],
            200,
            "private",
        ),
        (format!("/private/a"), vec![format!("X-API-Key: {p}")], 200, "private"),
        (format!("/private/a?api_key={k}&x=1"), vec![], 200, "private"),
        (
            format!("/private/a?x=1&api_key={}", k.replace('_', "%5F")),
            vec![],
            200,
            "private",
        ),
        (format!("/open?api.key={k}&x=1"), vec![], 200, "public"),
        (format!("/open?API_KEY[]={k}"), vec![], 200, "public"),
        (format!("/open?token={p}"), vec![], 200, "public"),
        (format!("/open?x=1;t={k}"), vec![], 200, "public"),
        (
            format!("/open"),
            vec![format!("Authorization: Bearer {p}")],
            200,
            "public",
        ),
        (
            format!("/open"),
            vec![format!("Authorization: bearer  {k}")],
            200,
            "public",
        ),
        (format!("/open"), vec![format!("X_API_KEY: {k}")], 200, "public"),
        (format!("/open"), vec![format!("X-Api-Key: {k}")], 200, "public"),
        // Other schemes and cookies a backend may read the key from.
        (
            format!("/open"),
            vec![format!("Authorization: Token {k}")],
            200,
            "public",
        ),
        (format!("/open"), vec![format!("Authorization: {k}")], 200, "public"),
        (
            format!("/open"),
            vec![format!("Authorization: ApiKey {p}")],
            200,
            "public",
        ),
        (
            format!("/open"),
            vec![format!("Authorization: Bearer,{}", k.to_uppercase())],
            200,
            "public",
        ),
        (
            format!("/private/a"),
            vec![format!("X-API-Key: {k}"), format!("Authorization: Token {p}")],
            200,
            "private",
        ),
        (
            format!("/open"),
            vec![format!("Cookie: theme=dark; api_key={k}; lang=en")],
            200,
            "public",
        ),
        (
            format!("/open"),
            vec![format!("Cookie: session=\"{p}\"")],
            200,
            "public",
        ),
    ];
    for (target, headers, status, route) in &cases {
        let mut hs: Vec<&str> = vec![h];
        hs.extend(headers.iter().map(String::as_str));
        let a = send_raw(&s.gw, &request(target, &hs));
        assert_eq!(a.status, *status, "{target} {headers:?}: {}", a.text);
        assert_eq!(a.body["name"], *route, "{target}");
        let echoed = a.body.to_string();
        assert!(
            !echoed.contains(k) && !echoed.contains(p),
            "{target} {headers:?}: the key reached the backend: {echoed}"
        );
        assert!(!echoed.contains(&k.replace('_', "%5F")), "{target}");
    }
    // Other parameters survive, and a bearer token that is not a gateway key passes through.
    let a = send_raw(&s.gw, &request(&format!("/open?a=1&api.key={k}&b=2"), &[h]));
    assert_eq!(a.body["query"], "a=1&b=2");
    let a = send_raw(
        &s.gw,
        &request("/open", &[h, "Authorization: Bearer eyJ.backend.token"]),
    );
    assert_eq!(
        upstream_header(&a.body, "authorization"),
        vec!["Bearer eyJ.backend.token"]
    );
    // The other cookies of a request whose cookie held a key go on.
    let a = send_raw(
        &s.gw,
        &request("/open", &[h, &format!("Cookie: theme=dark; api_key={k}; lang=en")]),
    );
    assert_eq!(upstream_header(&a.body, "cookie"), vec!["theme=dark; lang=en"]);
    let a = send_raw(
        &s.gw,
        &request("/open", &[h, "Authorization: Token backend-token", "Cookie: a=1"]),
    );
    assert_eq!(upstream_header(&a.body, "authorization"), vec!["Token backend-token"]);
    assert_eq!(upstream_header(&a.body, "cookie"), vec!["a=1"]);
}

/// After a 502, a 504, a 413 and a 403 no line of the gateway's stderr (Pingora's error log
/// included) or of the access log holds the key, in the query, a header or a bearer token.
#[test]
fn failed_requests_log_no_key() {
    let dead = free_addr();
    let silent = reserved_listener();
    let silent_addr = silent.local_addr().unwrap();
    // Accepts and never answers: the read timeout fires (504).
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let up = echo("u");
    let key = new_key("qv_");
    let policy = format!(
        "upstreams:\n  - {{name: dead, peers: [\"{dead}\"], retries: 0}}\n  - {{name: slow, peers: [\"{silent_addr}\"], read_timeout: 300ms, retries: 0}}\n  - {{name: u, peers: [\"{}\"]}}\n\
tiers:\n  - name: narrow\n    routes: [dead, slow, small]\napi_keys:\n{}\
routes:\n\
  - {{name: dead, path_prefix: /dead/, upstream: dead, auth: {{required: true, query_param: api_key}}}}\n\
  - {{name: slow, path_prefix: /slow/, upstream: slow, auth: {{required: true, query_param: api_key}}}}\n\
  - {{name: small, path_prefix: /small/, upstream: u, auth: {{required: true, query_param: api_key}}, validation: {{max_body: 16}}}}\n\
  - {{name: other, path_prefix: /other/, upstream: u, auth: {{required: true, query_param: api_key}}}}\n",
        up.addr(),
        key_entry("k_narrow", "narrow", &key),
    );
    let gw = Gateway::start(&policy);
    let spellings = [
        (format!("?api_key={key}"), String::new()),
        (String::new(), format!("X-API-Key: {key}\r\n")),
        (String::new(), format!("Authorization: bearer  {key}\r\n")),
    ];
    for (query, header) in &spellings {
        for (method, path, body, expect) in [
            ("GET", "/dead/x", "", 502),
            ("GET", "/slow/x", "", 504),
            ("POST", "/small/x", "0123456789abcdef0123456789", 413),
            ("GET", "/other/x", "", 403),
        ] {
            let req = format!(
                "{method} {path}{query} HTTP/1.1\r\nHost: localhost\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let a = send_raw(&gw, req.as_bytes());
            assert_eq!(a.status, expect, "{method} {path}{query} {header}: {}", a.text);
        }
    }
    gw.wait_for(10, "access log lines", || {
        std::fs::read_to_string(gw.path("access.log")).is_ok_and(|t| t.lines().count() >= 12)
    });
    let stderr = gw.stderr();
    let access = std::fs::read_to_string(gw.path("access.log")).unwrap();
    // The error log did report the failures (so this test reads the lines that could leak).
    assert!(
        stderr.contains("/dead/x"),
        "the error log names failed requests: {stderr}"
    );
    assert!(stderr.contains("/slow/x"), "{stderr}");
    for (what, text) in [("stderr", &stderr), ("access log", &access)] {
        for line in text.lines() {
            assert!(!line.contains(&key), "{what} holds the key: {line}");
            assert!(!line.contains(&key[3..]), "{what} holds the key's secret part: {line}");
        }
    }
}

/// An HTTP/1.0 request without `Host` goes upstream as HTTP/1.1, which must carry one (RFC 9112
/// section 3.2): the gateway sends the peer's address, as nginx sends its upstream's name.
#[test]
fn a_request_without_host_goes_upstream_with_the_peers_address() {
    let up = echo("u");
    let gw = Gateway::start(&policy_one("u", &[up.addr()], ""));
    let answer = raw(gw.listen, b"GET /x HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&answer), 200, "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let host = body["headers"]["host"].as_str().map(str::to_string);
    assert_eq!(host.as_deref(), Some(up.addr().to_string().as_str()), "{body}");
}
