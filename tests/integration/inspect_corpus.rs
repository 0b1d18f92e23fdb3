//! Accuracy of request inspection on the labelled corpus in tests/corpus/ (attacks and benign
//! requests real APIs see). Prints a table per class; fails below 95% detection or above 1%
//! false positives overall.

use std::collections::BTreeMap;

use quantumvault::inspect::extract::{inspect, RequestView};
use quantumvault::inspect::Inspector;

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    class: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    body: Option<String>,
}

fn load(name: &str) -> Vec<Case> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fires(insp: &Inspector, c: &Case) -> Option<quantumvault::inspect::Finding> {
    let mut headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if let Some(ct) = &c.content_type {
        headers.push(("Content-Type", ct.as_str()));
    }
    let view = RequestView {
        path: &c.path,
        query: (!c.query.is_empty()).then_some(c.query.as_str()),
        headers,
        content_type: c.content_type.as_deref(),
        body: c.body.as_deref().map(str::as_bytes),
        exclude: &[],
    };
    inspect(insp, &view)
}

#[test]
fn corpus_detection_and_false_positive_rates() {
    let insp = Inspector::new(1, &[]);
    let attacks = load("attacks.jsonl");
    let benign = load("benign.jsonl");
    let mut per_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut missed = Vec::new();
    for c in &attacks {
        let e = per_class.entry(c.class.clone()).or_default();
        e.1 += 1;
        if fires(&insp, c).is_some() {
            e.0 += 1;
        } else {
            missed.push(c.id.clone());
        }
    }
    let mut false_positives = Vec::new();
    let mut fp_by_rule: BTreeMap<u32, usize> = BTreeMap::new();
    for c in &benign {
        if let Some(f) = fires(&insp, c) {
            false_positives.push(format!("{} ({} {})", c.id, f.rule_id, f.location));
            *fp_by_rule.entry(f.rule_id).or_default() += 1;
        }
    }
    println!("| class | detected | total | rate |");
    println!("|---|---:|---:|---:|");
    let (mut d, mut t) = (0, 0);
    for (class, (det, tot)) in &per_class {
        println!(
            "| {class} | {det} | {tot} | {:.1}% |",
            100.0 * *det as f64 / *tot as f64
        );
        d += det;
        t += tot;
    }
    let detection = d as f64 / t as f64;
    let fp = false_positives.len() as f64 / benign.len() as f64;
    println!("| all attacks | {d} | {t} | {:.1}% |", 100.0 * detection);
    println!(
        "| benign flagged | {} | {} | {:.2}% |",
        false_positives.len(),
        benign.len(),
        100.0 * fp
    );
    println!("missed: {missed:?}");
    println!("false positives by rule: {fp_by_rule:?}\n{false_positives:?}");
    assert!(detection >= 0.95, "detection {:.1}% below 95%", 100.0 * detection);
    assert!(fp <= 0.01, "false positives {:.2}% above 1%", 100.0 * fp);
}
