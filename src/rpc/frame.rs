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
//!
//! **Memory and speed.** Every message is a zlib stream of its own, so no zlib state
//! outlives a message: encoders and decoders share one deflate and one inflate state per
//! thread (a deflate state is about 300 KiB, an inflate state with its window about
//! 40 KiB; one per connection made a server with 1000 clients hold 340 MiB, and kept it
//! after they left). Payloads of at most [`STORED_MAX`] bytes (nearly every call and
//! answer) are sent as a stored zlib stream, not compressed: deflate would save a few
//! bytes at the price of clearing its 128 KiB hash table per message. A decoder's buffer
//! shrinks back once a large message is consumed.

// The server's half goes unused in a client-only build (feature `rpc-client`).
#![cfg_attr(not(feature = "rpc"), allow(dead_code))]

use std::cell::RefCell;

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

/// Most buffer capacity a decoder keeps once what it holds is consumed.
const KEEP: usize = 4 << 10;

/// Largest payload sent as a stored (uncompressed) zlib stream; larger ones are
/// compressed (fast level).
pub const STORED_MAX: usize = 1 << 10;

/// Appends `data` (at most 65,535 bytes) to `out` as a zlib stream of one stored block:
/// the header (deflate, 32 KiB window, fastest), the block (final, stored: length and its
/// complement), the data, its Adler-32. Every zlib inflater reads it.
fn store_into(data: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(data.len()).expect("a stored block holds at most 65,535 bytes");
    out.reserve(data.len() + 11);
    out.extend_from_slice(&[0x78, 0x01, 0x01]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&adler32(data).to_be_bytes());
}

/// zlib's checksum (RFC 1950).
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // The most bytes before `b` could overflow a u32 (zlib's NMAX).
    const NMAX: usize = 5_552;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(NMAX) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

thread_local! {
    /// The thread's deflate state, shared by every [`FrameEncoder`] on it (set up on first
    /// use: a zlib state costs more to set up than compressing a small message).
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
    /// The thread's inflate state, shared by every [`FrameDecoder`] on it.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

fn new_deflate() -> Compress {
    Compress::new(Compression::fast(), true)
}

/// Runs `f` with the thread's deflate state (a fresh one if that is unavailable: the
/// thread is exiting, or a caller up the stack holds it).
fn with_deflate<R>(f: impl FnOnce(&mut Compress) -> R) -> R {
    let mut f = Some(f);
    let shared = DEFLATE.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let f = f.take()?;
        Some(f(slot.get_or_insert_with(new_deflate)))
    });
    match shared {
        Ok(Some(r)) => r,
        _ => (f.take().expect("not called yet"))(&mut new_deflate()),
    }
}

/// Runs `f` with the thread's inflate state (or a fresh one, as [`with_deflate`]).
fn with_inflate<R>(f: impl FnOnce(&mut Decompress) -> R) -> R {
    let mut f = Some(f);
    let shared = INFLATE.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let f = f.take()?;
        Some(f(slot.get_or_insert_with(|| Decompress::new(true))))
    });
    match shared {
        Ok(Some(r)) => r,
        _ => (f.take().expect("not called yet"))(&mut Decompress::new(true)),
    }
}

/// Incremental decoder: feed it bytes as they arrive, take items out.
pub struct FrameDecoder {
    buf: Vec<u8>,
    limits: Limits,
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
        if self.buf.is_empty() {
            self.trim();
            return Ok(None);
        }
        let Some((item, used)) = with_inflate(|z| parse(&self.buf, &self.limits, z))? else {
            self.trim();
            return Ok(None);
        };
        self.buf.drain(..used);
        Ok(Some(item))
    }

    /// Gives back what a large message left in the buffer's capacity (called when the
    /// decoder waits for more bytes).
    fn trim(&mut self) {
        let keep = self.buf.len().max(KEEP);
        if self.buf.capacity() > 2 * keep {
            self.buf.shrink_to(keep);
        }
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

/// Frames outgoing messages, with the thread's shared zlib state (setting one up costs
/// more than compressing a small message; see the module docs for why it is not
/// one per encoder).
#[derive(Default)]
pub struct FrameEncoder(());

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameEncoder")
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

    /// Appends `data` to `out` as a zlib stream: stored up to [`STORED_MAX`] bytes,
    /// compressed above.
    pub fn deflate_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.len() <= STORED_MAX {
            store_into(data, out);
        } else {
            with_deflate(|z| deflate_with(z, data, out));
        }
    }
}

fn deflate_with(z: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
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

/// Frames a rencoded payload: `0x01`, length, zlib body (for tests and fuzzing).
#[cfg(any(test, feature = "unstable-internals"))]
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::default().encode_into(payload, &mut out);
    out
}

/// `data` as a zlib stream (stored up to [`STORED_MAX`] bytes, fast level above; for tests
/// and fuzzing).
#[cfg(any(test, feature = "unstable-internals"))]
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
    fn stored_and_compressed_streams_inflate() {
        for len in [0, 1, 200, STORED_MAX, STORED_MAX + 1, 6000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let z = deflate(&data);
            if len <= STORED_MAX {
                assert_eq!(z.len(), len + 11, "stored");
            }
            let mut back = Vec::new();
            let mut d = flate2::read::ZlibDecoder::new(&z[..]);
            std::io::Read::read_to_end(&mut d, &mut back).unwrap();
            assert_eq!(back, data, "len {len}");
            let items = decode_all(&encode(&data), 3).unwrap();
            assert_eq!(items, vec![Item::Message(data)], "len {len}");
        }
        // Adler-32 across zlib's NMAX.
        let big = vec![0xffu8; 20_000];
        let mut a = (1u64, 0u64);
        for &x in &big {
            a.0 = (a.0 + x as u64) % 65_521;
            a.1 = (a.1 + a.0) % 65_521;
        }
        assert_eq!(adler32(&big), ((a.1 << 16) | a.0) as u32);
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
