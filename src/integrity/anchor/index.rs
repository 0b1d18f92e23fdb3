//! The anchor log's index, rebuilt from `anchor.log` whenever the log opens: where each record
//! is in the file, which record holds a batch id, and the log's Merkle tree. In the gateway it
//! spills to anonymous files in the data directory ([`crate::integrity::spill`]), so its heap
//! stays at a few blocks whatever the log's length; tests may keep it in memory.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use crate::integrity::merkle::Hash;
use crate::integrity::spill::SpillVec;
use crate::integrity::tlog::Tree;

/// Where a record is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Offset of the payload.
    pub offset: u64,
    pub len: u32,
    /// Length of the entry (the TBS).
    pub entry: u16,
}

/// A record's place as stored: offset, length and entry length (14 bytes), padded.
pub const PLACE: usize = 16;

pub fn encode_place(r: Record) -> [u8; PLACE] {
    let mut s = [0; PLACE];
    s[..8].copy_from_slice(&r.offset.to_be_bytes());
    s[8..12].copy_from_slice(&r.len.to_be_bytes());
    s[12..14].copy_from_slice(&r.entry.to_be_bytes());
    s
}

pub fn decode_place(s: &[u8]) -> Record {
    Record {
        offset: u64::from_be_bytes(s[..8].try_into().expect("8 bytes")),
        len: u32::from_be_bytes(s[8..12].try_into().expect("4 bytes")),
        entry: u16::from_be_bytes(s[12..14].try_into().expect("2 bytes")),
    }
}

/// A record as stored in the index: its place, whether it has a batch id (byte 14), and the
/// id (bytes 16..32).
const SLOT: usize = 32;

fn encode(r: Record, id: Option<[u8; 16]>) -> [u8; SLOT] {
    let mut s = [0; SLOT];
    s[..PLACE].copy_from_slice(&encode_place(r));
    if let Some(id) = id {
        s[14] = 1;
        s[16..].copy_from_slice(&id);
    }
    s
}

fn decode(s: &[u8; SLOT]) -> (Record, Option<[u8; 16]>) {
    (
        decode_place(s),
        (s[14] == 1).then(|| s[16..].try_into().expect("16 bytes")),
    )
}

/// Records, batch ids and the tree, in log order.
#[derive(Debug)]
pub struct Index {
    records: SpillVec<SLOT>,
    /// Batch ids of one instance increase with the log (`instance || sequence`), so an id is
    /// found by binary search over the records. A log that breaks that order (a record from
    /// another instance id, or one without an id) keeps a map of every id from then on.
    last_id: Option<[u8; 16]>,
    map: Option<HashMap<[u8; 16], u64>>,
    pub tree: Tree,
    /// Where the records spill, if they do.
    dir: Option<std::path::PathBuf>,
}

impl Index {
    /// An index spilling to anonymous files in `dir`, or in memory with `None`.
    pub fn new(dir: Option<&Path>) -> io::Result<Index> {
        Ok(Index {
            records: match dir {
                Some(d) => SpillVec::on_disk(d)?,
                None => SpillVec::in_memory(),
            },
            last_id: None,
            map: None,
            tree: dir.map(Tree::on_disk).unwrap_or_default(),
            dir: dir.map(Path::to_path_buf),
        })
    }

    pub fn len(&self) -> u64 {
        self.records.len()
    }

    /// Heap bytes: the tails of the spilled arrays, and the id map if the log needed one.
    pub fn heap_bytes(&self) -> u64 {
        // hashbrown: one control byte per bucket beside each (key, value) slot.
        let map = self
            .map
            .as_ref()
            .map_or(0, |m| m.capacity() * (std::mem::size_of::<([u8; 16], u64)>() + 1));
        self.records.heap_bytes() + map as u64 + self.tree.heap_bytes()
    }

    /// Adds the next record, its batch id and its leaf. An error leaves the index unfit for
    /// further appends (the log then refuses them until it is reopened).
    pub fn push(&mut self, record: Record, id: Option<[u8; 16]>, leaf: Hash) -> io::Result<()> {
        let index = self.records.len();
        if self.map.is_none() && (id.is_none() || id <= self.last_id) {
            self.map = Some(self.all_ids()?);
        }
        self.records.push(encode(record, id))?;
        match (&mut self.map, id) {
            (Some(map), Some(id)) => {
                map.insert(id, index);
            }
            (None, Some(id)) => self.last_id = Some(id),
            _ => {}
        }
        self.tree.push(leaf)
    }

    fn all_ids(&self) -> io::Result<HashMap<[u8; 16], u64>> {
        let mut map = HashMap::new();
        for i in 0..self.records.len() {
            if let Some((_, Some(id))) = self.get(i)? {
                map.insert(id, i);
            }
        }
        Ok(map)
    }

    /// Record `i` and its batch id.
    pub fn get(&self, i: u64) -> io::Result<Option<(Record, Option<[u8; 16]>)>> {
        Ok(self.records.get(i)?.as_ref().map(decode))
    }

    pub fn record(&self, i: u64) -> io::Result<Option<Record>> {
        Ok(self.get(i)?.map(|(r, _)| r))
    }

    /// Records `[start, start + count)`, or `None` past the end.
    pub fn records(&self, start: u64, count: u64) -> io::Result<Option<Vec<Record>>> {
        let mut bytes = Vec::new();
        if !self.records.read_range(start, count, &mut bytes)? {
            return Ok(None);
        }
        Ok(Some(
            bytes
                .chunks_exact(SLOT)
                .map(|s| decode(s.try_into().expect("a slot")).0)
                .collect(),
        ))
    }

    /// The index of the record holding batch `id`.
    pub fn find(&self, id: &[u8; 16]) -> io::Result<Option<u64>> {
        if let Some(map) = &self.map {
            return Ok(map.get(id).copied());
        }
        let (mut lo, mut hi) = (0, self.records.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some((_, Some(at))) = self.get(mid)? else {
                return Err(io::Error::other("an ordered index holds a record without a batch id"));
            };
            match at.cmp(id) {
                std::cmp::Ordering::Equal => return Ok(Some(mid)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// Replaces the records' positions after the log file was rewritten (`place(i)` for
    /// record `i` of `count`; ids and the tree are unchanged).
    pub fn move_records(&mut self, count: u64, mut place: impl FnMut(u64) -> io::Result<Record>) -> io::Result<()> {
        if count != self.records.len() {
            return Err(io::Error::other(format!(
                "{count} moved records for {} records",
                self.records.len()
            )));
        }
        let mut fresh = match &self.dir {
            Some(d) => SpillVec::on_disk(d)?,
            None => SpillVec::in_memory(),
        };
        for i in 0..count {
            let Some((_, id)) = self.get(i)? else {
                return Err(io::Error::other("an index record is missing"));
            };
            fresh.push(encode(place(i)?, id))?;
        }
        self.records = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::merkle::leaf_of;

    fn rec(i: u64) -> Record {
        Record {
            offset: 8 + 100 * i,
            len: 90,
            entry: 80,
        }
    }

    fn id(instance: u8, seq: u64) -> [u8; 16] {
        let mut id = [instance; 16];
        id[8..].copy_from_slice(&seq.to_be_bytes());
        id
    }

    #[test]
    fn ids_are_found_in_order_and_out_of_it_spilled_or_not() {
        let dir = tempfile::tempdir().unwrap();
        for spill in [true, false] {
            let mut ix = Index::new(spill.then_some(dir.path())).unwrap();
            for i in 0..1000u64 {
                ix.push(rec(i), Some(id(7, i * 3)), leaf_of(&i.to_be_bytes())).unwrap();
            }
            assert!(ix.map.is_none(), "ordered ids need no map");
            // In memory, 1,000 records and their tree take about 96 KiB; spilled, a block per
            // level at most.
            if spill {
                assert!(ix.heap_bytes() < 48 * 1024, "{} heap bytes", ix.heap_bytes());
            } else {
                assert!(ix.heap_bytes() > 90 * 1024, "{}", ix.heap_bytes());
            }
            assert_eq!(ix.find(&id(7, 300)).unwrap(), Some(100));
            assert_eq!(ix.find(&id(7, 0)).unwrap(), Some(0));
            assert_eq!(ix.find(&id(7, 2997)).unwrap(), Some(999));
            assert_eq!(ix.find(&id(7, 301)).unwrap(), None);
            assert_eq!(ix.find(&id(8, 0)).unwrap(), None);
            assert_eq!(ix.record(500).unwrap(), Some(rec(500)));
            // Another instance's ids before ours, then ours again, then a record without one.
            ix.push(rec(1000), Some(id(1, 5)), leaf_of(b"x")).unwrap();
            ix.push(rec(1001), Some(id(7, 5000)), leaf_of(b"y")).unwrap();
            ix.push(rec(1002), None, leaf_of(b"z")).unwrap();
            assert!(ix.map.is_some());
            assert_eq!(ix.find(&id(7, 300)).unwrap(), Some(100));
            assert_eq!(ix.find(&id(1, 5)).unwrap(), Some(1000));
            assert_eq!(ix.find(&id(7, 5000)).unwrap(), Some(1001));
            assert_eq!(ix.tree.size(), 1003);
            let moved: Vec<Record> = (0..1003).map(|i| Record { offset: i, ..rec(i) }).collect();
            ix.move_records(1003, |i| Ok(moved[i as usize])).unwrap();
            assert_eq!(ix.records(990, 13).unwrap().unwrap(), moved[990..].to_vec());
            assert_eq!(ix.find(&id(7, 5000)).unwrap(), Some(1001));
            assert!(ix.records(990, 14).unwrap().is_none());
            assert!(ix.move_records(1002, |i| Ok(moved[i as usize])).is_err());
        }
    }
}
