//! `quantumvault verify`'s anchor log checks (`docs/batch-signing.md` §11): a response's batch
//! is an entry of a signed checkpoint (its `tlog-proof`), and an older checkpoint is consistent
//! with that one (a consistency proof built from the log's tiles).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::integrity::merkle::{self, node, Hash};
use crate::integrity::tlog::{self, Checkpoint, NoteKey, Subtrees, TILE_WIDTH};
use crate::proxy::LOG_PATH;

/// Why a log check could not be made (a check that was made and failed is a `FAIL` line
/// instead). The texts are what `quantumvault verify` prints.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("bad request URL {0}")]
    BadUrl(String),
    #[error("request URL {0} has no origin")]
    NoOrigin(String),
    #[error("fetching {url}: {source}")]
    Fetch { url: String, source: Box<ureq::Error> },
    /// Reading a response body.
    #[error("{url}: {source}")]
    Body { url: String, source: std::io::Error },
    #[error("{0}: HTTP {1}")]
    Status(String, u16),
    #[error("{0}: not UTF-8")]
    NotUtf8(String),
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(transparent)]
    Note(#[from] tlog::NoteError),
    #[error("the TBS is too short to hold a batch id")]
    ShortTbs,
    /// A `tlog-proof` that does not parse (the parser's text).
    #[error("{0}")]
    Proof(String),
    #[error("{0}: the batch is not in a checkpoint after 5 s")]
    NotYetLogged(String),
    #[error("the older checkpoint: {0}")]
    OlderCheckpoint(tlog::NoteError),
    #[error("the checkpoints name different logs ({0} and {1})")]
    OtherLog(String, String),
    #[error("the newer checkpoint ({newer}) is smaller than the older ({older})")]
    Shrunk { newer: u64, older: u64 },
    #[error("size {old} is not a prefix of size {new}: the log was rewritten")]
    Rewritten { old: u64, new: u64 },
    #[error("tile {level}/{n} is not part of a tree of {size}")]
    TileOutside { level: u32, n: u64, size: u64 },
    #[error("{url}: {got} bytes, not {width} hashes")]
    TileLength { url: String, got: usize, width: u64 },
    #[error("tile {level}/{n} is too narrow")]
    TileNarrow { level: u32, n: u64 },
}

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
pub fn origin_of(request_url: &str) -> Result<String, LogError> {
    let uri: http::Uri = request_url
        .parse()
        .map_err(|_| LogError::BadUrl(request_url.to_string()))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(LogError::NoOrigin(request_url.to_string()));
    };
    Ok(format!("{scheme}://{authority}"))
}

/// The log's prefix URL at the origin of `request_url`.
pub fn log_prefix(request_url: &str) -> Result<String, LogError> {
    Ok(format!("{}{}", origin_of(request_url)?, LOG_PATH.trim_end_matches('/')))
}

fn get(url: &str) -> Result<Result<Vec<u8>, u16>, LogError> {
    use std::io::Read;
    match ureq::get(url).timeout(std::time::Duration::from_secs(10)).call() {
        Ok(r) => {
            let mut body = Vec::new();
            r.into_reader()
                .take(16 << 20)
                .read_to_end(&mut body)
                .map_err(|source| LogError::Body {
                    url: url.to_string(),
                    source,
                })?;
            Ok(Ok(body))
        }
        Err(ureq::Error::Status(code, _)) => Ok(Err(code)),
        Err(e) => Err(LogError::Fetch {
            url: url.to_string(),
            source: Box::new(e),
        }),
    }
}

/// Verifier keys from `/keys` lines (a file or a URL): trust on first use.
pub fn load_keys(source: &str) -> Result<Vec<NoteKey>, LogError> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let body = get(source)?.map_err(|code| LogError::Status(source.to_string(), code))?;
        String::from_utf8(body).map_err(|_| LogError::NotUtf8(source.to_string()))?
    } else {
        std::fs::read_to_string(source).map_err(|e| LogError::Read {
            path: source.to_string(),
            source: e,
        })?
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Ok(NoteKey::parse(l)?))
        .collect()
}

/// Checks that the batch whose TBS is `tbs` is in the log; the report lines and whether all
/// passed. `request_url` locates the log.
pub fn check(check: &LogCheck, request_url: &str, tbs: &[u8]) -> Result<(Vec<String>, bool), LogError> {
    let prefix = log_prefix(request_url)?;
    let id = tbs.get(88..104).ok_or(LogError::ShortTbs)?;
    let text = match &check.proof {
        Some(p) => std::fs::read_to_string(p).map_err(|e| read_error(p, e))?,
        None => fetch_proof(&format!("{prefix}/proof/{}", hex::encode(id)))?,
    };
    if let Some(p) = &check.save_proof {
        std::fs::write(p, &text).map_err(|e| write_error(p, e))?;
    }
    let mut lines = Vec::new();
    let (index, path, note) = tlog::parse_proof(&text).map_err(LogError::Proof)?;
    let cp = match tlog::verify_checkpoint(&note, &check.keys) {
        Ok(cp) => cp,
        Err(e) => return Ok((vec![format!("FAIL log checkpoint: {e}")], false)),
    };
    if let Some(p) = &check.save_checkpoint {
        std::fs::write(p, &cp.note).map_err(|e| write_error(p, e))?;
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
        let note = std::fs::read_to_string(older).map_err(|e| read_error(older, e))?;
        let (line, ok) = match consistency(&note, &cp, &check.keys, &prefix) {
            Ok(line) => (line, true),
            Err(e) => (format!("FAIL log consistency: {e}"), false),
        };
        lines.push(line);
        return Ok((lines, ok));
    }
    Ok((lines, true))
}

fn read_error(path: &std::path::Path, source: std::io::Error) -> LogError {
    LogError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn write_error(path: &std::path::Path, source: std::io::Error) -> LogError {
    LogError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Fetches a proof, waiting (up to about 5 s) while the batch is newer than the checkpoint.
fn fetch_proof(url: &str) -> Result<String, LogError> {
    for _ in 0..25 {
        match get(url)? {
            Ok(body) => return String::from_utf8(body).map_err(|_| LogError::NotUtf8(url.to_string())),
            Err(404) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(code) => return Err(LogError::Status(url.to_string(), code)),
        }
    }
    Err(LogError::NotYetLogged(url.to_string()))
}

/// Checks that the checkpoint `older_note` is consistent with `newer`, from the log's tiles.
pub fn consistency(older_note: &str, newer: &Checkpoint, keys: &[NoteKey], prefix: &str) -> Result<String, LogError> {
    let old = tlog::verify_checkpoint(older_note, keys).map_err(LogError::OlderCheckpoint)?;
    if old.origin != newer.origin {
        return Err(LogError::OtherLog(old.origin, newer.origin.clone()));
    }
    if old.size > newer.size {
        return Err(LogError::Shrunk {
            newer: newer.size,
            older: old.size,
        });
    }
    let mut tiles = Tiles::new(prefix, newer.size);
    let proof = tlog::consistency(&mut tiles, old.size, newer.size)?;
    if !tlog::verify_consistency(old.size, newer.size, &proof, &old.root, &newer.root) {
        return Err(LogError::Rewritten {
            old: old.size,
            new: newer.size,
        });
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
    fn tile(&mut self, level: u32, n: u64) -> Result<&Vec<Hash>, LogError> {
        if !self.cache.contains_key(&(level, n)) {
            let hashes_at_level = self.size >> (8 * level);
            let width = if (n + 1) * TILE_WIDTH <= hashes_at_level {
                TILE_WIDTH
            } else {
                hashes_at_level % TILE_WIDTH
            };
            if width == 0 || n * TILE_WIDTH >= hashes_at_level {
                return Err(LogError::TileOutside {
                    level,
                    n,
                    size: self.size,
                });
            }
            let mut url = format!("{}/tile/{level}/{}", self.prefix, tlog::tile_index_path(n));
            if width < TILE_WIDTH {
                url.push_str(&format!(".p/{width}"));
            }
            let body = get(&url)?.map_err(|code| LogError::Status(url.clone(), code))?;
            if body.len() as u64 != 32 * width {
                return Err(LogError::TileLength {
                    got: body.len(),
                    url,
                    width,
                });
            }
            let hashes = body.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
            self.fetched += 1;
            self.cache.insert((level, n), hashes);
        }
        Ok(&self.cache[&(level, n)])
    }
}

impl Subtrees for Tiles {
    type Error = LogError;
    fn perfect(&mut self, height: u32, index: u64) -> Result<Hash, LogError> {
        // The 2^r hashes at tile level `level` under this node, hashed up pairwise.
        let (level, r) = (height / 8, height % 8);
        let first = index << r;
        let tile = self.tile(level, first / TILE_WIDTH)?;
        let at = (first % TILE_WIDTH) as usize;
        let mut row: Vec<Hash> = tile
            .get(at..at + (1 << r))
            .ok_or(LogError::TileNarrow {
                level,
                n: first / TILE_WIDTH,
            })?
            .to_vec();
        while row.len() > 1 {
            row = row.chunks(2).map(|p| node(&p[0], &p[1])).collect();
        }
        Ok(row[0])
    }
}
