//! Standard base64 (RFC 4648, with or without padding, whitespace ignored) decoding: how
//! Deluge's clients send torrent files (`core.add_torrent_file(filename, filedump, …)`);
//! and encoding, for the web server's uploaded files passed on to that method.

/// Why a base64 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Error {
    /// A character outside the alphabet, at this byte offset.
    #[error("invalid base64 character {found:?} at offset {at}")]
    BadChar {
        /// The character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The length (without padding) leaves a single 6-bit group.
    #[error("truncated base64 ({0} significant characters)")]
    Truncated(usize),
}

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes `text`; the standard and the URL-safe alphabets are both accepted.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits, mut count) = (0u32, 0u32, 0usize);
    let body = text.trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
    for (at, c) in body.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = sextet(c).ok_or(Base64Error::BadChar {
            found: body[at..].chars().next().unwrap_or('?'),
            at,
        })?;
        acc = (acc << 6) | v;
        bits += 6;
        count += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if count % 4 == 1 {
        return Err(Base64Error::Truncated(count));
    }
    Ok(out)
}

/// Encodes `bytes` with the standard alphabet and padding.
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub fn encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (text, bytes) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9v\nYmFy", "foobar"),
            ("Zm9vYg", "foob"),
        ] {
            assert_eq!(decode(text).unwrap(), bytes.as_bytes(), "{text:?}");
        }
        assert_eq!(decode("/+8=").unwrap(), [0xff, 0xef]);
        for (text, bytes) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(encode(bytes.as_bytes()), text);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(decode("_-8").unwrap(), [0xff, 0xef]);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            decode("Zm9v!"),
            Err(Base64Error::BadChar { found: '!', at: 4 })
        ));
        assert_eq!(decode("Zm9vY"), Err(Base64Error::Truncated(5)));
        assert!(decode("d8:announce").is_err());
    }
}
