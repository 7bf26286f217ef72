//! Reading a file of frames back, stopping at the first frame that does not verify.

use crate::entry::Record;
use crate::frame::{self, Decoded};
use std::path::PathBuf;

/// A file whose end could not be read as frames: a write cut by a crash (torn), or damage.
/// Nothing at or after `offset` in that file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The file.
    pub file: PathBuf,
    /// Where the first unreadable frame starts.
    pub offset: u64,
    /// How many bytes were left unread.
    pub bytes: u64,
    /// True when the bytes end inside a frame (an interrupted write); false when a
    /// complete-looking frame failed its checksum or could not be parsed (damage).
    pub truncated: bool,
}

/// The records of one file, and where reading stopped if it stopped early.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) records: Vec<Record>,
    /// The length of the readable prefix.
    pub(crate) good_len: u64,
    pub(crate) torn: Option<TornTail>,
}

/// Reads every verified record of `bytes`.
pub(crate) fn scan(file: PathBuf, bytes: &[u8]) -> Scanned {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let stop = |truncated| TornTail {
            file: file.clone(),
            offset: at as u64,
            bytes: (bytes.len() - at) as u64,
            truncated,
        };
        let torn = match frame::decode(&bytes[at..]) {
            Decoded::Frame { payload, len } => match Record::decode(payload) {
                Ok(record) => {
                    records.push(record);
                    at += len;
                    continue;
                }
                Err(_) => stop(false),
            },
            Decoded::Torn => stop(true),
            Decoded::Corrupt => stop(false),
        };
        return Scanned {
            records,
            good_len: at as u64,
            torn: Some(torn),
        };
    }
    Scanned {
        records,
        good_len: at as u64,
        torn: None,
    }
}
