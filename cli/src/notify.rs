//! systemd's service notifications (`sd_notify`, for `Type=notify` units) without
//! libsystemd: one datagram per state change to the socket named by `$NOTIFY_SOCKET`.
//! Nothing is sent when the variable is unset (not started by systemd).

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where systemd listens for this service's notifications.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace);
    /// `None` without it. A bad value is logged and ignored.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
        let addr = match bytes.split_first() {
            Some((b'@', abstract_name)) => abstract_addr(abstract_name),
            _ => SocketAddr::from_pathname(&name),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => Some(Notifier { socket, addr }),
            Err(e) => {
                tracing::warn!(socket = ?name, error = %e, "NOTIFY_SOCKET unusable; systemd is not told");
                None
            }
        }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); a failure is logged.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, "could not notify systemd");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> std::io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::other(
        "abstract socket names are Linux-only",
    ))
}
