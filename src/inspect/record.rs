//! A labelled request as the corpus in `tests/corpus/` writes it (see its README, "Record
//! format"), and what inspection finds in it. Shared by the corpus test and the replay example
//! (`cargo run --release --example inspect_replay -- FILE.jsonl`).

use super::extract::{inspect, RequestView};
use super::{Finding, Inspector};

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Record {
    pub id: String,
    pub class: String,
    #[serde(default)]
    pub location: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    #[serde(default)]
    pub note: String,
}

impl Record {
    /// Reads a JSONL file of records.
    pub fn load(path: &std::path::Path) -> Result<Vec<Record>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
            .collect()
    }

    /// The first rule that fires on the whole request, as the gateway would inspect it.
    pub fn inspect(&self, insp: &Inspector) -> Option<Finding> {
        let mut headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(ct) = &self.content_type {
            headers.push(("Content-Type", ct.as_str()));
        }
        let view = RequestView {
            path: &self.path,
            query: (!self.query.is_empty()).then_some(self.query.as_str()),
            headers,
            content_type: self.content_type.as_deref(),
            body: self.body.as_deref().map(str::as_bytes),
            exclude: &[],
            limits: super::Limits::default(),
        };
        inspect(insp, &view)
    }
}
