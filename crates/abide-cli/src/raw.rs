//! Reading one raw HTTP/1.x response (status line, headers, blank line, body).

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::fmt;

/// At most this many header lines are kept; more are reported and skipped.
const MAX_HEADER_LINES: usize = 1_000;

/// A response as read from a file.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// Lines that were skipped, with why, for the user.
    pub(crate) warnings: Vec<String>,
}

/// Why the input is not an HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NotAResponse(pub(crate) String);

impl fmt::Display for NotAResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits off one line ending in LF or CRLF; the rest follows. A last line without an
/// ending is returned whole.
fn next_line(input: &[u8]) -> (&[u8], &[u8], bool) {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &input[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, &input[i + 1..], true)
        }
        None => (input, &[], false),
    }
}

fn parse_status_line(line: &[u8]) -> Result<StatusCode, NotAResponse> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
    let text = std::str::from_utf8(line)
        .map_err(|_| NotAResponse(format!("the first line is not text: {:?}", shown())))?;
    let mut parts = text.trim_start_matches('\u{feff}').splitn(3, [' ', '\t']);
    let version = parts.next().unwrap_or_default();
    let valid_version = version
        .strip_prefix("HTTP/")
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if !valid_version {
        return Err(NotAResponse(format!(
            "expected a status line like `HTTP/1.1 429 Too Many Requests`, found {:?}",
            shown()
        )));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 {
        return Err(NotAResponse(format!(
            "the status line has no three-digit status code: {:?}",
            shown()
        )));
    }
    StatusCode::from_bytes(code.as_bytes())
        .map_err(|_| NotAResponse(format!("invalid status code {code:?}")))
}

/// Parses a raw response. Header lines that are not `name: value` are skipped with a
/// warning; input without a valid status line is not a response.
pub(crate) fn parse(input: &[u8]) -> Result<RawResponse, NotAResponse> {
    // Tolerate blank lines before the status line, as RFC 9112 section 2.2 allows.
    let mut rest = input;
    while let Some(r) = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
    {
        rest = r;
    }
    if rest.is_empty() {
        return Err(NotAResponse("the input is empty".into()));
    }
    let (status_line, after, _) = next_line(rest);
    let status = parse_status_line(status_line)?;
    rest = after;

    let mut headers = HeaderMap::new();
    let mut warnings = Vec::new();
    let mut lines = 0usize;
    let mut ended = false;
    while !rest.is_empty() {
        let (line, after, _) = next_line(rest);
        rest = after;
        if line.is_empty() {
            ended = true;
            break;
        }
        lines += 1;
        if lines > MAX_HEADER_LINES {
            if lines == MAX_HEADER_LINES + 1 {
                warnings.push(format!(
                    "more than {MAX_HEADER_LINES} header lines; the rest are ignored"
                ));
            }
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Obsolete line folding (RFC 9112 section 5.2): rejected rather than guessed.
            warnings.push(format!(
                "header line {lines} is a folded continuation; ignored"
            ));
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            warnings.push(format!(
                "header line {lines} has no colon; ignored: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            ));
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => warnings.push(format!(
                "header line {lines} is not a valid field; ignored: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )),
        }
    }
    if !ended && rest.is_empty() && lines > 0 {
        // A response cut before its blank line still says what its headers say.
        warnings.push("the headers end without a blank line (truncated input?)".into());
    }
    Ok(RawResponse {
        status,
        headers,
        body: rest.to_vec(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_lf_responses_parse_alike() {
        let crlf = parse(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n{}").unwrap();
        let lf = parse(b"HTTP/1.1 429 Too Many Requests\nRetry-After: 3\n\n{}").unwrap();
        assert_eq!(crlf.status, 429);
        assert_eq!(crlf.headers, lf.headers);
        assert_eq!(crlf.body, b"{}");
        assert_eq!(lf.body, b"{}");
    }

    #[test]
    fn repeated_header_lines_are_kept() {
        let r = parse(b"HTTP/1.1 200 OK\nRateLimit: \"a\";r=1\nRateLimit: \"b\";r=2\n\n").unwrap();
        assert_eq!(r.headers.get_all("ratelimit").iter().count(), 2);
    }

    #[test]
    fn any_reason_phrase_or_none_is_accepted() {
        assert_eq!(parse(b"HTTP/1.0 503\n\n").unwrap().status, 503);
        assert_eq!(
            parse(b"HTTP/2 529 Site is overloaded\n\n").unwrap().status,
            529
        );
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert!(parse(b"").is_err());
        assert!(parse(b"hello world").is_err());
        assert!(parse(b"HTTP/1.1 abc OK\n\n").is_err());
        assert!(parse(b"HTTP/1.1 99 Low\n\n").is_err());
        assert!(parse(&[0xff, 0xfe, 0x00, 0x01]).is_err());
    }

    #[test]
    fn bad_header_lines_are_skipped_with_a_warning() {
        let r = parse(b"HTTP/1.1 429 X\nno colon here\nbad name: 1\nRetry-After: 7\n\n").unwrap();
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.warnings.len(), 2);
    }

    #[test]
    fn truncated_headers_still_parse() {
        let r = parse(b"HTTP/1.1 429 X\r\nRetry-After: 7").unwrap();
        assert_eq!(r.headers["retry-after"], "7");
        assert!(r.body.is_empty());
        assert_eq!(r.warnings.len(), 1);
    }
}
