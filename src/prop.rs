//! Seeded random and mutated inputs for the parsers' property tests: the short pass CI runs of
//! what the targets in `fuzz/` explore with coverage guidance. Seeds are fixed, so a failure
//! reproduces on every run; each test names the failing input in its message.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `seed` after one to four edits: a byte replaced, inserted or removed (the new bytes from
/// `alphabet` or, one time in four, any byte), a piece repeated, or the end cut off.
pub fn mutate(rng: &mut StdRng, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let byte = if alphabet.is_empty() || rng.gen_ratio(1, 4) {
            rng.gen()
        } else {
            alphabet[rng.gen_range(0..alphabet.len())]
        };
        let at = rng.gen_range(0..=out.len());
        match rng.gen_range(0..5) {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let end = rng.gen_range(at..=out.len().min(at + 16));
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// [`mutate`] read as text (invalid UTF-8 replaced).
pub fn mutate_str(rng: &mut StdRng, seed: &str, alphabet: &[u8]) -> String {
    String::from_utf8_lossy(&mutate(rng, seed.as_bytes(), alphabet)).into_owned()
}

/// Up to `max` characters from `alphabet`.
pub fn text(rng: &mut StdRng, alphabet: &[u8], max: usize) -> String {
    let len = rng.gen_range(0..=max);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}
