//! Property tests of the on-disk format: any truncation or bit flip of a segment is
//! detected and reported, and never read as an entry that was not written.

mod support;

use abide_spool::{Entry, Spool, SpoolConfig};
use proptest::prelude::*;
use std::path::PathBuf;
use support::{request, TempDir};

/// A spool of `n` entries; returns the entries, the segment file and its length after
/// each push (the frame boundaries).
fn written(dir: &TempDir, n: u32) -> (Vec<Entry>, PathBuf, Vec<u64>) {
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut ends = Vec::new();
    for i in 0..n {
        let mut entry = request(i);
        // Bodies of varied length, so frames are too.
        entry.body = bytes::Bytes::from(vec![b'a' + (i % 26) as u8; (i as usize * 37) % 300]);
        spool.push(entry).unwrap();
        ends.push(std::fs::metadata(&segment).unwrap().len());
    }
    (spool.entries(), segment, ends)
}

fn reopen(dir: &TempDir) -> (Vec<Entry>, abide_spool::OpenReport) {
    let (spool, report) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    (spool.entries(), report)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_truncated_segment_yields_exactly_the_complete_frames(n in 1u32..12, cut in any::<prop::sample::Index>()) {
        let dir = TempDir::new("trunc");
        let (entries, segment, ends) = written(&dir, n);
        let len = cut.index(*ends.last().unwrap() as usize + 1) as u64;
        std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len).unwrap();
        let (got, report) = reopen(&dir);
        let complete = ends.iter().filter(|&&end| end <= len).count();
        prop_assert_eq!(&got[..], &entries[..complete]);
        let at_boundary = len == 0 || ends.contains(&len);
        prop_assert_eq!(report.torn.is_empty(), at_boundary);
        if let Some(torn) = report.torn.first() {
            prop_assert!(torn.truncated);
            prop_assert_eq!(torn.offset, if complete == 0 { 0 } else { ends[complete - 1] });
        }
        // The torn tail was cut off: a new entry after it reads back too.
        let (spool, report) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
        prop_assert!(report.torn.is_empty());
        let id = spool.push(request(99)).unwrap();
        drop(spool);
        let (got, _) = reopen(&dir);
        prop_assert_eq!(got.len(), complete + 1);
        prop_assert_eq!(got.last().unwrap().id, id);
    }

    #[test]
    fn a_flipped_bit_is_detected_and_nothing_from_its_frame_on_is_read(n in 1u32..12, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let dir = TempDir::new("flip");
        let (entries, segment, ends) = written(&dir, n);
        let mut bytes = std::fs::read(&segment).unwrap();
        let pos = at.index(bytes.len());
        bytes[pos] ^= 1 << bit;
        std::fs::write(&segment, &bytes).unwrap();
        let (got, report) = reopen(&dir);
        let damaged_frame = ends.iter().filter(|&&end| end <= pos as u64).count();
        prop_assert_eq!(&got[..], &entries[..damaged_frame]);
        prop_assert_eq!(report.torn.len(), 1);
        prop_assert_eq!(report.torn[0].offset, if damaged_frame == 0 { 0 } else { ends[damaged_frame - 1] });
        // The damaged file is kept; new entries go to a new segment and read back.
        let (spool, _) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
        let id = spool.push(request(99)).unwrap();
        drop(spool);
        let (got, _) = reopen(&dir);
        prop_assert_eq!(got.len(), damaged_frame + 1);
        prop_assert_eq!(got.last().unwrap().id, id);
    }
}
