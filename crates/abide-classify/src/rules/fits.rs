//! Requests that can never fit: the body states a request larger than the whole limit.
//! The account is fine; the request must shrink, so waiting or retrying cannot help.

use super::text::{contains, find_from};
use crate::{Class, Classification, QuotaScope};

/// The reason of the never-fits verdict; `finish` leaves such a verdict alone.
pub(crate) const NEVER_FITS: &str = "body: request larger than the whole limit";

/// True when `c` says the request can never fit.
pub(crate) fn is_never_fits(c: &Classification) -> bool {
    c.reason.0 == NEVER_FITS
}

/// The verdict for a request that can never fit.
pub(crate) fn never_fits() -> Classification {
    Classification::new(Class::ClientError, NEVER_FITS).with_scope(QuotaScope::Tokens)
}

/// True when `t` says the request is larger than the whole limit: OpenAI's and Groq's
/// "Request too large for gpt-4 ... The input or output tokens must be reduced"
/// (platform.openai.com/docs/guides/rate-limits, console.groq.com/docs/rate-limits), or
/// any text stating `Limit L ... Requested R` with `R > L > 0` (OpenAI prints it even
/// beside "Please try again in", which cannot help then).
pub(crate) fn text_never_fits(t: &[u8]) -> bool {
    if contains(t, "request too large") || contains(t, "must be reduced") {
        return true;
    }
    match (number_after(t, "limit"), number_after(t, "requested")) {
        (Some(limit), Some(requested)) => limit > 0 && requested > limit,
        _ => false,
    }
}

/// The first number right after a whole-word occurrence of `word` (lowercase ASCII),
/// past blanks, `:`, `=` and `~`: "Limit 7000", "limit: 7,000", "Requested ~12903".
pub(crate) fn number_after(t: &[u8], word: &str) -> Option<u64> {
    let mut from = 0;
    while let Some(at) = find_from(t, word, from) {
        from = at + word.len();
        if at > 0 && t[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        if let Some(n) = number_at(&t[from..]) {
            return Some(n);
        }
    }
    None
}

/// The most digits a stated limit may have; longer numbers are not limits.
const MAX_DIGITS: usize = 15;

/// A whole number at the start of `s` after separators, digit groups by commas allowed
/// ("50,000"). `None` when the word is followed by anything else.
fn number_at(s: &[u8]) -> Option<u64> {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b':' | b'=' | b'~'))?;
    let s = &s[start..];
    let mut value: u64 = 0;
    let mut digits = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_digit() {
            value = value * 10 + u64::from(b - b'0');
            digits += 1;
            if digits > MAX_DIGITS {
                return None;
            }
        } else if b == b','
            && digits > 0
            && s.get(i + 1..i + 4)
                .is_some_and(|g| g.iter().all(u8::is_ascii_digit))
            && !s.get(i + 4).is_some_and(u8::is_ascii_digit)
        {
            // A thousands separator: three digits follow, then no fourth.
        } else {
            break;
        }
        i += 1;
    }
    (digits > 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_larger_than_the_whole_limit_never_fits() {
        let cases: &[(&str, bool)] = &[
            // OpenAI rate-limits guide.
            ("on tokens per min (TPM): Limit 7000, Used 0, Requested ~12903. Please try again in 8.1s.", true),
            ("Request too large for gpt-4 in organization org-x on tokens per min (TPM): Limit 10000, Requested 15000.", true),
            // Fits the limit, just not now.
            ("on tokens per min (TPM): Limit 30000, Used 29250, Requested 1500. Please try again in 3.89s.", false),
            ("Limit: 50,000, requested: 60,000", true),
            ("Limit 50,000, requested 40,000", false),
            // A limit of 0 says nothing about the request's size.
            ("Limit 0, Used 0, Requested 1", false),
            ("Rate limit reached. Unlimited 5, Requested 9", false),
            ("limit 1234567890123456789, requested 9", false),
            ("no numbers here", false),
        ];
        for (text, want) in cases {
            assert_eq!(text_never_fits(text.as_bytes()), *want, "{text}");
        }
    }

    #[test]
    fn numbers_after_words_skip_other_occurrences() {
        assert_eq!(
            number_after(b"Rate limit reached ... Limit 200, Used 3", "limit"),
            Some(200)
        );
        assert_eq!(number_after(b"limit,5", "limit"), None);
        assert_eq!(number_after(b"limit 1,2345", "limit"), Some(1));
    }
}
