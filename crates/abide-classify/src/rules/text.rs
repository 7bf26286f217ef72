//! Byte-level, ASCII-case-insensitive text helpers. They work on any bytes (non-UTF-8
//! included), so a body that is not valid text still gets scanned.

/// The index of the first ASCII-case-insensitive occurrence of `needle` in `hay`.
/// `needle` must be lowercase ASCII.
pub(crate) fn find(hay: &[u8], needle: &str) -> Option<usize> {
    find_from(hay, needle, 0)
}

/// Like [`find`], starting at `from`.
pub(crate) fn find_from(hay: &[u8], needle: &str, from: usize) -> Option<usize> {
    let n = needle.as_bytes();
    if n.is_empty() || from > hay.len() || hay.len() - from < n.len() {
        return None;
    }
    let first = n[0];
    let last_start = hay.len() - n.len();
    let mut i = from;
    while i <= last_start {
        if hay[i].to_ascii_lowercase() == first && hay[i..i + n.len()].eq_ignore_ascii_case(n) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// True when `hay` contains `needle` (lowercase ASCII), ignoring ASCII case.
pub(crate) fn contains(hay: &[u8], needle: &str) -> bool {
    find(hay, needle).is_some()
}

/// True when `hay` contains any of `needles`.
pub(crate) fn contains_any(hay: &[u8], needles: &[&str]) -> bool {
    needles.iter().any(|n| contains(hay, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_ignores_ascii_case_and_tolerates_non_utf8() {
        assert_eq!(find(b"\xff\xfeRate Limit", "rate limit"), Some(2));
        assert_eq!(find(b"abc", "abcd"), None);
        assert_eq!(find_from(b"aXa", "a", 1), Some(2));
        assert!(!contains(b"", "a"));
    }
}
