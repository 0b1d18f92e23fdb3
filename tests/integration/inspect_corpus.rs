//! Accuracy of request inspection on the labelled corpus in tests/corpus/ (attacks and benign
//! requests real APIs see). Prints a table per class; fails below 95% detection or above 1%
//! false positives overall.

use std::collections::BTreeMap;

use quantumvault::inspect::record::Record;
use quantumvault::inspect::Inspector;

type Case = Record;

fn load(name: &str) -> Vec<Case> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    Record::load(&p).unwrap()
}

/// The challenge set (tests/corpus/challenge/, written apart from the rules by someone who had
/// not read them): the same targets. Its first, blind run is in its README.
#[test]
fn challenge_set_detection_and_false_positive_rates() {
    let insp = Inspector::new(1, &[]);
    let attacks = load("challenge/attacks.jsonl");
    let benign = load("challenge/benign.jsonl");
    let missed: Vec<&str> = attacks
        .iter()
        .filter(|c| fires(&insp, c).is_none())
        .map(|c| c.id.as_str())
        .collect();
    let flagged: Vec<String> = benign
        .iter()
        .filter_map(|c| fires(&insp, c).map(|f| format!("{} ({} {})", c.id, f.rule_id, f.location)))
        .collect();
    let detection = 1.0 - missed.len() as f64 / attacks.len() as f64;
    let fp = flagged.len() as f64 / benign.len() as f64;
    println!(
        "challenge: {}/{} attacks detected ({:.1}%), {}/{} benign flagged ({:.2}%)\nmissed: {missed:?}\nflagged: {flagged:?}",
        attacks.len() - missed.len(),
        attacks.len(),
        100.0 * detection,
        flagged.len(),
        benign.len(),
        100.0 * fp
    );
    assert!(detection >= 0.95, "detection {:.1}% below 95%", 100.0 * detection);
    assert!(fp <= 0.01, "false positives {:.2}% above 1%", 100.0 * fp);
}

fn fires(insp: &Inspector, c: &Case) -> Option<quantumvault::inspect::Finding> {
    c.inspect(insp)
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

/// libinjection (the `libinjectionrs` port) judged on the same corpus before it is trusted:
/// alone, the pattern rules alone, and both, for the classes it covers (sqli, xss), with the
/// false positives each adds on the benign set. The figures decide its paranoia level (README);
/// the assertions pin what the README says, so a change in the crate or the corpus shows here.
#[test]
fn libinjection_judged_on_the_corpus() {
    use quantumvault::inspect::rules::{builtin, tokenizers};
    let attacks = load("attacks.jsonl");
    let benign = load("benign.jsonl");
    let pattern_ids: Vec<u32> = builtin().iter().map(|r| r.id).collect();
    let tokenizer_ids: Vec<u32> = tokenizers().iter().map(|t| t.id).collect();
    let p2_patterns: Vec<u32> = builtin().iter().filter(|r| r.paranoia > 1).map(|r| r.id).collect();
    // Paranoia 4 turns every rule on; the disabled lists pick the detectors under test.
    let patterns_only = Inspector::new(4, &[tokenizer_ids.clone(), p2_patterns.clone()].concat());
    let tokenizers_only = Inspector::new(4, &pattern_ids);
    let both = Inspector::new(4, &p2_patterns);
    println!("| detector | sqli detected | xss detected | benign flagged |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for (name, insp) in [
        ("pattern rules (paranoia 1)", &patterns_only),
        ("libinjection alone", &tokenizers_only),
        ("both", &both),
    ] {
        let rate = |class: &str| {
            let cases: Vec<&Case> = attacks.iter().filter(|c| c.class == class).collect();
            let hit = cases.iter().filter(|c| fires(insp, c).is_some()).count();
            (hit, cases.len())
        };
        let (s, st) = rate("sqli");
        let (x, xt) = rate("xss");
        let fp = benign.iter().filter(|c| fires(insp, c).is_some()).count();
        println!(
            "| {name} | {s}/{st} ({:.1}%) | {x}/{xt} ({:.1}%) | {fp}/{} ({:.2}%) |",
            100.0 * s as f64 / st as f64,
            100.0 * x as f64 / xt as f64,
            benign.len(),
            100.0 * fp as f64 / benign.len() as f64
        );
        rows.push((s, x, fp));
    }
    let benign_hits: Vec<String> = benign
        .iter()
        .filter(|c| fires(&tokenizers_only, c).is_some())
        .map(|c| c.id.clone())
        .collect();
    println!("benign flagged by libinjection alone: {benign_hits:?}");
    let (patterns, both) = (rows[0], rows[2]);
    // Combined never detects less than the pattern rules alone.
    assert!(both.0 >= patterns.0 && both.1 >= patterns.1);
    // What puts libinjection at paranoia 2: it adds false positives the patterns do not have.
    assert!(
        both.2 > patterns.2,
        "libinjection no longer adds false positives: reconsider putting it at paranoia 1"
    );
}
