//! `quantumvault verify`'s anchor log checks (`docs/batch-signing.md` §11): a response's batch
//! is an entry of a signed checkpoint (its `tlog-proof`), and an older checkpoint is consistent
//! with that one (a consistency proof built from the log's tiles).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::integrity::merkle::{self, node, Hash};
use crate::integrity::tlog::{self, Checkpoint, NoteKey, Subtrees, TILE_WIDTH};
use crate::proxy::LOG_PATH;

/// What to check of the log, from the command line.
#[derive(Default)]
pub struct LogCheck {
    /// The log's verifier keys; every one must sign a checkpoint.
    pub keys: Vec<NoteKey>,
    /// A saved `tlog-proof` to check instead of fetching one.
    pub proof: Option<PathBuf>,
    pub save_proof: Option<PathBuf>,
    /// An older checkpoint the proof's checkpoint must be consistent with.
    pub older: Option<PathBuf>,
    pub save_checkpoint: Option<PathBuf>,
}

/// `scheme://authority` of `request_url`: where its well-known documents are.
pub fn origin_of(request_url: &str) -> Result<String, String> {
    let uri: http::Uri = request_url
        .parse()
        .map_err(|_| format!("bad request URL {request_url}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("request URL {request_url} has no origin"));
    };
    Ok(format!("{scheme}://{authority}"))
}

/// The log's prefix URL at the origin of `request_url`.
pub fn log_prefix(request_url: &str) -> Result<String, String> {
    Ok(format!("{}{}", origin_of(request_url)?, LOG_PATH.trim_end_matches('/')))
}

fn get(url: &str) -> Result<Result<Vec<u8>, u16>, String> {
    use std::io::Read;
    match ureq::get(url).timeout(std::time::Duration::from_secs(10)).call() {
        Ok(r) => {
            let mut body = Vec::new();
            r.into_reader()
                .take(16 << 20)
                .read_to_end(&mut body)
                .map_err(|e| format!("{url}: {e}"))?;
            Ok(Ok(body))
        }
        Err(ureq::Error::Status(code, _)) => Ok(Err(code)),
        Err(e) => Err(format!("fetching {url}: {e}")),
    }
}

/// Verifier keys from `/keys` lines (a file or a URL): trust on first use.
pub fn load_keys(source: &str) -> Result<Vec<NoteKey>, String> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let body = get(source)?.map_err(|code| format!("{source}: HTTP {code}"))?;
        String::from_utf8(body).map_err(|_| format!("{source}: not UTF-8"))?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("reading {source}: {e}"))?
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| NoteKey::parse(l).map_err(|e| e.to_string()))
        .collect()
}

/// Checks that the batch whose TBS is `tbs` is in the log; the report lines and whether all
/// passed. `request_url` locates the log.
pub fn check(check: &LogCheck, request_url: &str, tbs: &[u8]) -> Result<(Vec<String>, bool), String> {
    let prefix = log_prefix(request_url)?;
    let id = tbs.get(88..104).ok_or("the TBS is too short to hold a batch id")?;
    let text = match &check.proof {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?,
        None => fetch_proof(&format!("{prefix}/proof/{}", hex::encode(id)))?,
    };
    if let Some(p) = &check.save_proof {
        std::fs::write(p, &text).map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    let mut lines = Vec::new();
    let (index, path, note) = tlog::parse_proof(&text)?;
    let cp = match tlog::verify_checkpoint(&note, &check.keys) {
        Ok(cp) => cp,
        Err(e) => return Ok((vec![format!("FAIL log checkpoint: {e}")], false)),
    };
    if let Some(p) = &check.save_checkpoint {
        std::fs::write(p, &cp.note).map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    if !tlog::verify_inclusion(&merkle::leaf_of(tbs), index, cp.size, &path, &cp.root) {
        lines.push(format!(
            "FAIL log inclusion: batch {} is not entry {index} of checkpoint {} size {}",
            hex::encode(id),
            cp.origin,
            cp.size
        ));
        return Ok((lines, false));
    }
    lines.push(format!(
        "ok   log inclusion: batch {} is entry {index} of checkpoint {} size {} (signed by {} keys)",
        hex::encode(id),
        cp.origin,
        cp.size,
        check.keys.len()
    ));
    if let Some(older) = &check.older {
        let note = std::fs::read_to_string(older).map_err(|e| format!("reading {}: {e}", older.display()))?;
        let (line, ok) = match consistency(&note, &cp, &check.keys, &prefix) {
            Ok(line) => (line, true),
            Err(e) => (format!("FAIL log consistency: {e}"), false),
        };
        lines.push(line);
        return Ok((lines, ok));
    }
    Ok((lines, true))
}

/// Fetches a proof, waiting (up to about 5 s) while the batch is newer than the checkpoint.
fn fetch_proof(url: &str) -> Result<String, String> {
    for _ in 0..25 {
        match get(url)? {
            Ok(body) => return String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8")),
            Err(404) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(code) => return Err(format!("{url}: HTTP {code}")),
        }
    }
    Err(format!("{url}: the batch is not in a checkpoint after 5 s"))
}

/// Checks that the checkpoint `older_note` is consistent with `newer`, from the log's tiles.
pub fn consistency(older_note: &str, newer: &Checkpoint, keys: &[NoteKey], prefix: &str) -> Result<String, String> {
    let old = tlog::verify_checkpoint(older_note, keys).map_err(|e| format!("the older checkpoint: {e}"))?;
    if old.origin != newer.origin {
        return Err(format!(
            "the checkpoints name different logs ({} and {})",
            old.origin, newer.origin
        ));
    }
    if old.size > newer.size {
        return Err(format!(
            "the newer checkpoint ({}) is smaller than the older ({})",
            newer.size, old.size
        ));
    }
    let mut tiles = Tiles::new(prefix, newer.size);
    let proof = tlog::consistency(&mut tiles, old.size, newer.size)?;
    if !tlog::verify_consistency(old.size, newer.size, &proof, &old.root, &newer.root) {
        return Err(format!(
            "size {} is not a prefix of size {}: the log was rewritten",
            old.size, newer.size
        ));
    }
    Ok(format!(
        "ok   log consistency: checkpoint size {} -> {} ({} proof hashes from {} tiles)",
        old.size,
        newer.size,
        proof.len(),
        tiles.fetched
    ))
}

/// Perfect subtree hashes read from a log's tiles (C2SP tlog-tiles) for a tree of `size`.
pub struct Tiles {
    prefix: String,
    size: u64,
    cache: HashMap<(u32, u64), Vec<Hash>>,
    pub fetched: usize,
}

impl Tiles {
    pub fn new(prefix: &str, size: u64) -> Tiles {
        Tiles {
            prefix: prefix.trim_end_matches('/').to_string(),
            size,
            cache: HashMap::new(),
            fetched: 0,
        }
    }

    /// Tile `n` of tile level `level`: full, or as wide as the tree of `size` makes it.
    fn tile(&mut self, level: u32, n: u64) -> Result<&Vec<Hash>, String> {
        if !self.cache.contains_key(&(level, n)) {
            let hashes_at_level = self.size >> (8 * level);
            let width = if (n + 1) * TILE_WIDTH <= hashes_at_level {
                TILE_WIDTH
            } else {
                hashes_at_level % TILE_WIDTH
            };
            if width == 0 || n * TILE_WIDTH >= hashes_at_level {
                return Err(format!("tile {level}/{n} is not part of a tree of {}", self.size));
            }
            let mut url = format!("{}/tile/{level}/{}", self.prefix, tlog::tile_index_path(n));
            if width < TILE_WIDTH {
                url.push_str(&format!(".p/{width}"));
            }
            let body = get(&url)?.map_err(|code| format!("{url}: HTTP {code}"))?;
            if body.len() as u64 != 32 * width {
                return Err(format!("{url}: {} bytes, not {width} hashes", body.len()));
            }
            let hashes = body.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
            self.fetched += 1;
            self.cache.insert((level, n), hashes);
        }
        Ok(&self.cache[&(level, n)])
    }
}

impl Subtrees for Tiles {
    type Error = String;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Hash, String> {
        // The 2^r hashes at tile level `level` under this node, hashed up pairwise.
        let (level, r) = (height / 8, height % 8);
        let first = index << r;
        let tile = self.tile(level, first / TILE_WIDTH)?;
        let at = (first % TILE_WIDTH) as usize;
        let mut row: Vec<Hash> = tile
            .get(at..at + (1 << r))
            .ok_or_else(|| format!("tile {level}/{} is too narrow", first / TILE_WIDTH))?
            .to_vec();
        while row.len() > 1 {
            row = row.chunks(2).map(|p| node(&p[0], &p[1])).collect();
        }
        Ok(row[0])
    }
}
