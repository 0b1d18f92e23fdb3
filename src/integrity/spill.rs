//! An append-only array of fixed-size items that keeps only its last, partly filled block in
//! memory and writes each full block to a file: the anchor log's index (record offsets and the
//! tree's hashes) grows on disk instead of on the heap, so the gateway's memory stays flat
//! however many batches it logs (about 130 bytes of heap a batch before, measured by the soak).
//!
//! The file is anonymous (created in the data directory and unlinked at once): the index is
//! derived from `anchor.log` and rebuilt when the log opens, so nothing of it needs to survive
//! a restart, a crash cannot leave a stale one behind, and the old and new process of a
//! graceful upgrade never share one. Reads of spilled items go through the page cache.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Items per block: a full block is written in one `pwrite` (8 KiB for 32-byte items).
pub const BLOCK: usize = 256;

/// A read of a spilled index that failed (the disk) is logged and answers like a missing
/// item: the anchor log's proofs, tiles and entries are then "not found", never wrong.
pub fn readable<T>(r: io::Result<T>) -> Option<T> {
    r.map_err(|e| log::error!("anchor log index: {e}")).ok()
}

/// Items `[0, spilled)` are in the file, `[spilled, len)` in `tail`.
#[derive(Debug, Default)]
pub struct SpillVec<const N: usize> {
    file: Option<File>,
    spilled: u64,
    tail: Vec<[u8; N]>,
}

/// Creates an anonymous read-write file in `dir`.
pub fn anonymous_file(dir: &Path) -> io::Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".anchor-index-{}-{n}", std::process::id()));
        match OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

impl<const N: usize> SpillVec<N> {
    /// Everything in memory (no file): for small trees, tests and verifiers.
    pub fn in_memory() -> Self {
        SpillVec {
            file: None,
            spilled: 0,
            tail: Vec::new(),
        }
    }

    /// Spills full blocks to an anonymous file in `dir`.
    pub fn on_disk(dir: &Path) -> io::Result<Self> {
        Ok(SpillVec {
            file: Some(anonymous_file(dir)?),
            spilled: 0,
            // Grown as items come: the upper levels of a tree never fill a block.
            tail: Vec::new(),
        })
    }

    pub fn len(&self) -> u64 {
        self.spilled + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held (the tail's capacity).
    pub fn heap_bytes(&self) -> u64 {
        (self.tail.capacity() * N) as u64
    }

    /// Appends `item`, first writing the tail out if it is a full block. On a write error
    /// nothing changes.
    pub fn push(&mut self, item: [u8; N]) -> io::Result<()> {
        if let Some(file) = &self.file {
            if self.tail.len() == BLOCK {
                file.write_all_at(self.tail.as_flattened(), self.spilled * N as u64)?;
                self.spilled += BLOCK as u64;
                self.tail.clear();
            }
        }
        self.tail.push(item);
        Ok(())
    }

    /// Item `i`, `None` past the end.
    pub fn get(&self, i: u64) -> io::Result<Option<[u8; N]>> {
        if i >= self.len() {
            return Ok(None);
        }
        if i >= self.spilled {
            return Ok(Some(self.tail[(i - self.spilled) as usize]));
        }
        let mut item = [0; N];
        self.file_ref()?.read_exact_at(&mut item, i * N as u64)?;
        Ok(Some(item))
    }

    /// Items `[start, start + count)` appended to `out` as bytes; `false` (and `out` as it
    /// was) if the range runs past the end.
    pub fn read_range(&self, start: u64, count: u64, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(end) = start.checked_add(count).filter(|&e| e <= self.len()) else {
            return Ok(false);
        };
        let at = out.len();
        let from_file = end.min(self.spilled).saturating_sub(start);
        if from_file > 0 {
            out.resize(at + (from_file as usize) * N, 0);
            if let Err(e) = self.file_ref()?.read_exact_at(&mut out[at..], start * N as u64) {
                out.truncate(at);
                return Err(e);
            }
        }
        let tail_from = start.max(self.spilled) - self.spilled;
        let tail_to = end - self.spilled.min(end);
        if tail_to > tail_from {
            out.extend_from_slice(self.tail[tail_from as usize..tail_to as usize].as_flattened());
        }
        Ok(true)
    }

    fn file_ref(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("spilled items without a file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: u64) -> [u8; 8] {
        i.to_be_bytes()
    }

    #[test]
    fn spilled_and_in_memory_arrays_read_back_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = SpillVec::<8>::on_disk(dir.path()).unwrap();
        let mut mem = SpillVec::<8>::in_memory();
        for i in 0..(3 * BLOCK as u64 + 17) {
            disk.push(item(i)).unwrap();
            mem.push(item(i)).unwrap();
        }
        // The file is anonymous: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(disk.len(), mem.len());
        assert!(disk.heap_bytes() <= (BLOCK * 8) as u64, "only the tail is on the heap");
        assert!(mem.heap_bytes() >= (3 * BLOCK * 8) as u64);
        for i in [0, 1, 255, 256, 257, 511, 512, 767, 768, 784] {
            assert_eq!(disk.get(i).unwrap(), Some(item(i)), "item {i}");
            assert_eq!(mem.get(i).unwrap(), Some(item(i)));
        }
        assert_eq!(disk.get(785).unwrap(), None);
        // Ranges across the file and the tail, inside either, empty, and past the end.
        for (start, count) in [(0, 785), (250, 10), (760, 20), (770, 5), (300, 0), (784, 1)] {
            let (mut a, mut b) = (vec![9], vec![9]);
            assert!(disk.read_range(start, count, &mut a).unwrap());
            assert!(mem.read_range(start, count, &mut b).unwrap());
            let want: Vec<u8> = std::iter::once(9)
                .chain((start..start + count).flat_map(|i| item(i)))
                .collect();
            assert_eq!(a, want, "range {start}+{count}");
            assert_eq!(b, want);
        }
        let mut out = Vec::new();
        assert!(!disk.read_range(780, 6, &mut out).unwrap());
        assert!(out.is_empty());
    }
}
