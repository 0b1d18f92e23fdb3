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
    let gopher = "/?q=gopher%3A%2F%2Finternal%3A70%2F";
    assert_eq!(send(&ag, "GET", &gw.url(gopher), &[]).unwrap().status, 200);
    let more = format!(
        "{rules}  - id: 1000002\n    class: cmdi\n    description: gopher smuggling\n    pattern: 'gopher://'\n"
    );
    let g = gw.generation();
    std::fs::write(&rules_file, &more).unwrap();
    gw.wait_for(10, "reload with the new rule", || gw.generation() > g);
    assert_eq!(send(&ag, "GET", &gw.url(gopher), &[]).unwrap().status, 403);

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
