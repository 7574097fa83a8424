//! Deluge's message framing, with limits and version-probe resynchronisation.
//!
//! A v1 frame is `0x01`, a big-endian `u32` body length, then the body: zlib-compressed
//! rencode. deluge-client opens every connection with three `daemon.info` probes: a bare
//! zlib stream (Deluge 1.x), `b'D'` + `i32` length + body (a pre-release 2.0 format), and
//! a v1 frame. [`FrameDecoder`] skips the first two without answering, however the bytes
//! are split across reads, and hands back only v1 bodies, inflated.
//!
//! Every size is bounded: the compressed length by [`Limits::max_frame`], the inflated
//! size by [`Limits::max_inflated`] (a zlib bomb is refused after inflating at most that
//! much, not inflated in full).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version byte of a v1 frame.
pub const VERSION: u8 = 1;
const HEADER: usize = 5;
/// Most bytes a bare-zlib (Deluge 1.x) probe may take, compressed and inflated;
/// deluge-client's is a few dozen.
const MAX_PROBE: usize = 4 << 10;

/// Size limits for incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed body accepted, bytes.
    pub max_frame: usize,
    /// Largest inflated body accepted, bytes.
    pub max_inflated: usize,
    /// Deepest rencode nesting accepted.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 1 << 20,
            max_inflated: 8 << 20,
            max_depth: 64,
        }
    }
}

/// Why incoming bytes cannot be framed; the connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first byte is no known frame start.
    #[error("unknown protocol version byte 0x{0:02x}")]
    BadVersion(u8),
    /// The declared or buffered compressed size is over the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Declared size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body inflates past the limit.
    #[error("frame inflates past the limit of {0} bytes")]
    InflateLimit(usize),
    /// The body is not a complete zlib stream.
    #[error("frame body is not valid zlib: {0}")]
    BadZlib(String),
}

/// One thing found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item {
    /// A v1 frame's inflated body (rencode bytes).
    Message(Vec<u8>),
    /// A legacy probe that was skipped.
    Probe,
}

/// Incremental decoder: feed it bytes as they arrive, take items out.
pub struct FrameDecoder {
    buf: Vec<u8>,
    limits: Limits,
    /// Reused for every message: a zlib state is costly to set up.
    z: Decompress,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("pending", &self.buf.len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            limits,
            z: Decompress::new(true),
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet a whole item.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole item, `None` if more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<Item>, FrameError> {
        let Some((item, used)) = parse(&self.buf, &self.limits, &mut self.z)? else {
            return Ok(None);
        };
        self.buf.drain(..used);
        Ok(Some(item))
    }
}

fn parse(
    buf: &[u8],
    limits: &Limits,
    z: &mut Decompress,
) -> Result<Option<(Item, usize)>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first {
        VERSION | b'D' => {
            if buf.len() < HEADER {
                return Ok(None);
            }
            let raw = [buf[1], buf[2], buf[3], buf[4]];
            let size = if first == VERSION {
                u32::from_be_bytes(raw) as usize
            } else {
                // Signed in the pre-release format; a negative length is garbage.
                usize::try_from(i32::from_be_bytes(raw)).unwrap_or(usize::MAX)
            };
            if size > limits.max_frame {
                return Err(FrameError::TooLarge {
                    size,
                    limit: limits.max_frame,
                });
            }
            if buf.len() < HEADER + size {
                return Ok(None);
            }
            if first == b'D' {
                return Ok(Some((Item::Probe, HEADER + size)));
            }
            let body = &buf[HEADER..HEADER + size];
            match inflate(z, body, limits.max_inflated)? {
                Some((out, used)) if used == body.len() => {
                    Ok(Some((Item::Message(out), HEADER + size)))
                }
                Some(_) => Err(FrameError::BadZlib(
                    "trailing bytes after the stream".into(),
                )),
                None => Err(FrameError::BadZlib("truncated stream".into())),
            }
        }
        0x78 => {
            // A bare zlib stream (Deluge 1.x probe): its end is where the stream ends.
            // It is inflated from its start on every read until it ends, so it is kept
            // small: a stream dripped a byte at a time must not cost a large inflation
            // per byte.
            let input = &buf[..buf.len().min(MAX_PROBE)];
            match inflate(z, input, MAX_PROBE.min(limits.max_inflated))? {
                Some((_, used)) => Ok(Some((Item::Probe, used))),
                None if buf.len() >= MAX_PROBE => Err(FrameError::TooLarge {
                    size: buf.len(),
                    limit: MAX_PROBE,
                }),
                None => Ok(None),
            }
        }
        other => Err(FrameError::BadVersion(other)),
    }
}

/// Inflates one zlib stream from the start of `input`, producing at most `limit` bytes.
/// Returns the output and the input bytes the stream used, or `None` if the stream
/// needs more input.
fn inflate(
    z: &mut Decompress,
    input: &[u8],
    limit: usize,
) -> Result<Option<(Vec<u8>, usize)>, FrameError> {
    z.reset(true);
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).saturating_add(64).min(cap));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Err(FrameError::InflateLimit(limit));
            }
            out.reserve_exact(out.len().max(1024).min(cap - out.len()));
        }
        let (before_in, before_out) = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(
                &input[before_in as usize..],
                &mut out,
                FlushDecompress::None,
            )
            .map_err(|e| FrameError::BadZlib(e.to_string()))?;
        if out.len() > limit {
            return Err(FrameError::InflateLimit(limit));
        }
        if status == Status::StreamEnd {
            return Ok(Some((out, z.total_in() as usize)));
        }
        let progressed = z.total_in() != before_in || z.total_out() != before_out;
        if out.len() < out.capacity() && (!progressed || z.total_in() as usize == input.len()) {
            return Ok(None); // the stream needs more input
        }
    }
}

/// Frames outgoing messages, reusing one zlib state (setting one up costs more than
/// compressing a small message).
pub struct FrameEncoder(Compress);

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameEncoder")
    }
}

impl Default for FrameEncoder {
    fn default() -> Self {
        FrameEncoder(Compress::new(Compression::fast(), true))
    }
}

impl FrameEncoder {
    /// Appends the frame of a rencoded payload to `out`: `0x01`, length, zlib body.
    pub fn encode_into(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[VERSION, 0, 0, 0, 0]);
        self.deflate_into(payload, out);
        let len = (out.len() - start - HEADER) as u32;
        out[start + 1..start + HEADER].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends zlib-compressed `data` to `out`.
    pub fn deflate_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let z = &mut self.0;
        z.reset();
        out.reserve(data.len() / 2 + 64);
        loop {
            let used = z.total_in() as usize;
            let status = z
                .compress_vec(&data[used..], out, FlushCompress::Finish)
                .expect("compressing into a Vec cannot fail");
            if status == Status::StreamEnd {
                return;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// Frames a rencoded payload: `0x01`, length, zlib body.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::default().encode_into(payload, &mut out);
    out
}

/// zlib-compresses `data` (fast level: messages are small).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::default().deflate_into(data, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<Item>, FrameError> {
        let mut d = FrameDecoder::new(Limits::default());
        let mut items = Vec::new();
        for part in bytes.chunks(chunk) {
            d.extend(part);
            while let Some(item) = d.next_item()? {
                items.push(item);
            }
        }
        assert_eq!(d.pending(), 0);
        Ok(items)
    }

    fn probes_then(payload: &[u8]) -> Vec<u8> {
        let body = deflate(payload);
        let mut all = body.clone(); // 1.x: bare zlib
        all.push(b'D');
        all.extend_from_slice(&(body.len() as i32).to_be_bytes());
        all.extend_from_slice(&body);
        all.extend_from_slice(&encode(payload));
        all
    }

    #[test]
    fn probes_are_skipped_however_split() {
        let payload = b"the request payload, rencoded".to_vec();
        let bytes = probes_then(&payload);
        for chunk in [1, 2, 3, 7, bytes.len()] {
            let items = decode_all(&bytes, chunk).unwrap();
            assert!(
                items == vec![Item::Probe, Item::Probe, Item::Message(payload.clone())],
                "chunk {chunk}: {} items",
                items.len()
            );
        }
    }

    #[test]
    fn limits_hold() {
        let limits = Limits::default();
        let mut d = FrameDecoder::new(limits);
        d.extend(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_item(), Err(FrameError::TooLarge { .. })));

        // A bomb: more than the limit of zeros, compressed hard.
        let zeros = vec![0u8; limits.max_inflated + 1];
        let mut z = Compress::new(Compression::best(), true);
        let mut body = Vec::with_capacity(64 << 10);
        z.compress_vec(&zeros, &mut body, FlushCompress::Finish)
            .unwrap();
        let mut bomb = vec![VERSION];
        bomb.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bomb.extend_from_slice(&body);
        assert!(bomb.len() < 64 << 10);
        let mut d = FrameDecoder::new(limits);
        d.extend(&bomb);
        assert!(
            matches!(d.next_item(), Err(FrameError::InflateLimit(n)) if n == limits.max_inflated),
            "a bomb must be refused"
        );

        let exact = encode(&vec![7u8; limits.max_inflated]);
        let mut d = FrameDecoder::new(limits);
        d.extend(&exact);
        assert!(
            matches!(d.next_item(), Ok(Some(Item::Message(m))) if m.len() == limits.max_inflated)
        );

        let mut d = FrameDecoder::new(limits);
        d.extend(b"GET / HTTP/1.1\r\n");
        assert!(matches!(d.next_item(), Err(FrameError::BadVersion(b'G'))));

        let mut d = FrameDecoder::new(limits);
        d.extend(&[1, 0, 0, 0, 3, 1, 2, 3]);
        assert!(matches!(d.next_item(), Err(FrameError::BadZlib(_))));
    }
}
