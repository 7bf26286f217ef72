//! The on-disk framing of one record: `magic | length | crc32 | payload`.
//!
//! ```text
//! offset 0   4 bytes  magic  b"ABSP"
//! offset 4   4 bytes  payload length, little endian
//! offset 8   4 bytes  CRC-32 (IEEE) of the length bytes and the payload, little endian
//! offset 12  length   payload
//! ```
//!
//! The checksum covers the length too, so a flipped length bit cannot make the reader take
//! a wrong slice for a record. A frame that ends early, or whose checksum does not match, is
//! reported as [`Decoded::Torn`] or [`Decoded::Corrupt`]; the reader never returns a
//! payload it did not verify.

/// The four bytes every frame starts with.
pub(crate) const MAGIC: [u8; 4] = *b"ABSP";
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 12;
/// The largest payload a frame may carry (a spooled request with its body). Bounds what a
/// corrupted length can make the reader allocate.
pub(crate) const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// One frame read from the front of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A verified payload and the frame's total length.
    Frame { payload: &'a [u8], len: usize },
    /// The slice ends inside the frame: a write that did not finish (a torn tail).
    Torn,
    /// The bytes are there but are not a valid frame (bad magic, length or checksum).
    Corrupt,
}

/// Appends the frame for `payload` to `out`.
pub(crate) fn encode(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = (payload.len() as u32).to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads the frame at the start of `bytes` (which must not be empty).
pub(crate) fn decode(bytes: &[u8]) -> Decoded<'_> {
    let magic_seen = bytes.len().min(MAGIC.len());
    if bytes[..magic_seen] != MAGIC[..magic_seen] {
        return Decoded::Corrupt;
    }
    if bytes.len() < HEADER_LEN {
        return Decoded::Torn;
    }
    let len_bytes: [u8; 4] = bytes[4..8].try_into().expect("four bytes");
    let crc_bytes: [u8; 4] = bytes[8..12].try_into().expect("four bytes");
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Corrupt;
    }
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
        // Too short for the length it states: either the write was cut, or the length
        // itself is damaged. Both read as torn; neither yields a payload.
        return Decoded::Torn;
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    if hasher.finalize() != u32::from_le_bytes(crc_bytes) {
        return Decoded::Corrupt;
    }
    Decoded::Frame {
        payload,
        len: HEADER_LEN + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(payload, &mut out);
        out
    }

    #[test]
    fn a_frame_reads_back_its_payload() {
        let bytes = framed(b"hello");
        assert_eq!(
            decode(&bytes),
            Decoded::Frame {
                payload: b"hello",
                len: HEADER_LEN + 5
            }
        );
    }

    #[test]
    fn an_empty_payload_is_a_frame() {
        let bytes = framed(b"");
        assert!(matches!(
            decode(&bytes),
            Decoded::Frame { payload: b"", .. }
        ));
    }

    #[test]
    fn a_huge_stated_length_is_corrupt_not_an_allocation() {
        let mut bytes = framed(b"x");
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Decoded::Corrupt);
    }

    #[test]
    fn a_frame_cut_in_its_magic_is_torn() {
        assert_eq!(decode(b"AB"), Decoded::Torn);
        assert_eq!(decode(b"AX"), Decoded::Corrupt);
    }
}
