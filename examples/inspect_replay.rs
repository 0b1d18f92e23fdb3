//! Replays labelled request records (the JSONL format of tests/corpus/) through the gateway's
//! inspection in-process and prints one line per record: id, class, location, and the rule that
//! fired or `-`; then detection per class and false positives (class `benign`).
//!
//!   cargo run --release --example inspect_replay -- tests/corpus/attacks.jsonl [PARANOIA]

use std::collections::BTreeMap;

use quantumvault::inspect::record::Record;
use quantumvault::inspect::Inspector;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        eprintln!("usage: inspect_replay FILE.jsonl [PARANOIA]");
        std::process::exit(2);
    };
    let paranoia = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(1);
    let records = Record::load(std::path::Path::new(file)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let insp = Inspector::new(paranoia, &[]);
    let mut per_class: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in &records {
        let hit = r.inspect(&insp);
        let e = per_class.entry(r.class.as_str()).or_default();
        e.1 += 1;
        e.0 += usize::from(hit.is_some());
        let rule = hit
            .map(|f| format!("{} {}", f.rule_id, f.class.as_str()))
            .unwrap_or_else(|| "-".into());
        println!("{}\t{}\t{}\t{rule}\t{}", r.id, r.class, r.location, r.note);
    }
    for (class, (hit, total)) in per_class {
        eprintln!(
            "{class}: {hit}/{total} flagged ({:.1}%)",
            100.0 * hit as f64 / total as f64
        );
    }
}
