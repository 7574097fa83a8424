//! A minimal HTTP BitTorrent tracker on 127.0.0.1 for loopback swarms of real clients
//! (Transmission, qBittorrent): every announce gets the other peers of its torrent, at
//! [`peer_ipv4`], in compact form. No DHT or public tracker is needed, nothing leaves the
//! machine. Stopped on drop.
//!
//! Transmission refuses to connect to peers on 127.0.0.0/8 (libtransmission counts them
//! as "martian" addresses), so the peers are given at the machine's own non-loopback
//! address, which the kernel routes over the loopback interface all the same.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The machine's own IPv4 address on its default route (no packet is sent: connecting a
/// UDP socket only picks the route). Panics when the machine has none: Transmission
/// swarms need one.
pub fn peer_ipv4() -> Ipv4Addr {
    let probe = UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("198.51.100.1:9")?;
        s.local_addr()
    });
    match probe.map(|a| a.ip()) {
        Ok(std::net::IpAddr::V4(ip)) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        other => panic!(
            "no non-loopback IPv4 address ({other:?}): Transmission does not connect to peers \
             on 127.0.0.0/8, so its loopback swarms need the machine's own address"
        ),
    }
}

/// The running tracker.
pub struct Tracker {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Announces seen: (info-hash as percent-encoded in the request, peer port, event).
    pub announces: Arc<Mutex<Vec<(String, u16, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tracker {
    /// Starts a tracker handing out peers at [`peer_ipv4`].
    pub fn start() -> Tracker {
        Tracker::start_for(peer_ipv4())
    }

    /// Starts a tracker handing out peers at `ip`.
    pub fn start_for(ip: Ipv4Addr) -> Tracker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let announces = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, announces) = (stop.clone(), announces.clone());
            std::thread::spawn(move || {
                let mut swarms: BTreeMap<String, Vec<u16>> = BTreeMap::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, ip, &mut swarms, &announces);
                    }
                }
            })
        };
        Tracker {
            port,
            announces,
            stop,
            thread: Some(thread),
        }
    }

    /// The announce URL to put in torrents.
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one announce (one request per connection).
fn serve(
    mut conn: TcpStream,
    ip: Ipv4Addr,
    swarms: &mut BTreeMap<String, Vec<u16>>,
    announces: &Mutex<Vec<(String, u16, String)>>,
) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    let (hash, event) = (param("info_hash"), param("event"));
    let body = match param("port").parse::<u16>() {
        Ok(port) if !hash.is_empty() => {
            announces
                .lock()
                .unwrap()
                .push((hash.clone(), port, event.clone()));
            let peers = swarms.entry(hash).or_default();
            if event == "stopped" {
                peers.retain(|&p| p != port);
            } else if !peers.contains(&port) {
                peers.push(port);
            }
            let mut compact = Vec::new();
            for &p in peers.iter().filter(|&&p| p != port) {
                compact.extend_from_slice(&ip.octets());
                compact.extend_from_slice(&p.to_be_bytes());
            }
            let mut body = b"d8:intervali5e12:min intervali2e5:peers".to_vec();
            body.extend_from_slice(format!("{}:", compact.len()).as_bytes());
            body.extend_from_slice(&compact);
            body.push(b'e');
            body
        }
        _ => b"d14:failure reason11:bad requeste".to_vec(),
    };
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    let _ = conn.write_all(&reply);
}
