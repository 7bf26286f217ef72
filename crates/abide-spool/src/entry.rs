//! What a spooled request is, and the byte layout of the records that hold it.
//!
//! Every integer is little endian; every string or byte run is a `u32` length and the
//! bytes. Records are framed by [`frame`](crate::frame), which verifies them before
//! anything here reads them.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::fmt;

/// The id the spool gives an entry: increasing in the order entries were spooled, never
/// reused within one spool directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request as the spool keeps it: everything needed to send it again, less the headers
/// the spool never writes (credentials; see [`SpoolConfig`](crate::SpoolConfig)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's id.
    pub id: EntryId,
    /// The request method.
    pub method: Method,
    /// The request URI, as the caller gave it.
    pub uri: Uri,
    /// The headers that were written (credentials removed), `Idempotency-Key` included.
    pub headers: HeaderMap,
    /// The buffered body.
    pub body: Bytes,
    /// The bucket the request counts against (see `abide_cap::BucketKey`).
    pub bucket: String,
    /// The request's cost (`abide_cap::Cost`), when it had one.
    pub cost: Option<u32>,
    /// The `Idempotency-Key` the request carries when replayed.
    pub idempotency_key: String,
}

/// A request that was moved to the dead-letter part after a permanent failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The request as it was spooled.
    pub entry: Entry,
    /// Why it can never succeed as it is (the verdict, in words).
    pub verdict: String,
}

/// Why an entry left the live spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    Delivered = 1,
    Dropped = 2,
    DeadLettered = 3,
}

/// One record of a segment or of the dead-letter file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Put(Entry),
    Remove(EntryId, Removal),
    Dead(DeadLetter),
}

const TAG_PUT: u8 = 1;
const TAG_REMOVE: u8 = 2;
const TAG_DEAD: u8 = 3;

/// A verified frame whose payload is not a record this version understands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

impl Record {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Put(entry) => {
                out.push(TAG_PUT);
                put_entry(entry, out);
            }
            Record::Remove(id, why) => {
                out.push(TAG_REMOVE);
                out.extend_from_slice(&id.0.to_le_bytes());
                out.push(*why as u8);
            }
            Record::Dead(dead) => {
                out.push(TAG_DEAD);
                put_entry(&dead.entry, out);
                put_bytes(dead.verdict.as_bytes(), out);
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, Malformed> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            TAG_PUT => Record::Put(r.entry()?),
            TAG_REMOVE => {
                let id = EntryId(r.u64()?);
                let why = match r.u8()? {
                    1 => Removal::Delivered,
                    2 => Removal::Dropped,
                    3 => Removal::DeadLettered,
                    _ => return Err(Malformed),
                };
                Record::Remove(id, why)
            }
            TAG_DEAD => {
                let entry = r.entry()?;
                let verdict = r.string()?;
                Record::Dead(DeadLetter { entry, verdict })
            }
            _ => return Err(Malformed),
        };
        if !r.0.is_empty() {
            return Err(Malformed);
        }
        Ok(record)
    }
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_entry(entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&entry.id.0.to_le_bytes());
    put_bytes(entry.method.as_str().as_bytes(), out);
    put_bytes(entry.uri.to_string().as_bytes(), out);
    out.extend_from_slice(&(entry.headers.len() as u32).to_le_bytes());
    for (name, value) in &entry.headers {
        put_bytes(name.as_str().as_bytes(), out);
        put_bytes(value.as_bytes(), out);
    }
    put_bytes(&entry.body, out);
    put_bytes(entry.bucket.as_bytes(), out);
    match entry.cost {
        Some(cost) => {
            out.push(1);
            out.extend_from_slice(&cost.to_le_bytes());
        }
        None => out.push(0),
    }
    put_bytes(entry.idempotency_key.as_bytes(), out);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Malformed)
    }
    fn entry(&mut self) -> Result<Entry, Malformed> {
        let id = EntryId(self.u64()?);
        let method = Method::from_bytes(self.bytes()?).map_err(|_| Malformed)?;
        let uri: Uri = self.string()?.parse().map_err(|_| Malformed)?;
        let count = self.u32()?;
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            let name = HeaderName::from_bytes(self.bytes()?).map_err(|_| Malformed)?;
            let value = HeaderValue::from_bytes(self.bytes()?).map_err(|_| Malformed)?;
            headers.append(name, value);
        }
        let body = Bytes::copy_from_slice(self.bytes()?);
        let bucket = self.string()?;
        let cost = match self.u8()? {
            0 => None,
            1 => Some(self.u32()?),
            _ => return Err(Malformed),
        };
        let idempotency_key = self.string()?;
        Ok(Entry {
            id,
            method,
            uri,
            headers,
            body,
            bucket,
            cost,
            idempotency_key,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(id: u64) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        Entry {
            id: EntryId(id),
            method: Method::POST,
            uri: "http://127.0.0.1:9/v1/events?run=7".parse().unwrap(),
            headers,
            body: Bytes::from(format!("{{\"n\":{id}}}")),
            bucket: "127.0.0.1:9".into(),
            cost: Some(12),
            idempotency_key: format!("key-{id}"),
        }
    }

    #[test]
    fn every_record_kind_reads_back_as_written() {
        let records = [
            Record::Put(sample(3)),
            Record::Remove(EntryId(3), Removal::DeadLettered),
            Record::Dead(DeadLetter {
                entry: sample(4),
                verdict: "client_error: 400".into(),
            }),
        ];
        for record in records {
            let mut out = Vec::new();
            record.encode(&mut out);
            assert_eq!(Record::decode(&out), Ok(record));
        }
    }

    #[test]
    fn trailing_bytes_after_a_record_are_malformed() {
        let mut out = Vec::new();
        Record::Remove(EntryId(1), Removal::Delivered).encode(&mut out);
        out.push(0);
        assert_eq!(Record::decode(&out), Err(Malformed));
    }
}
