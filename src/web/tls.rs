//! HTTPS on the web port: the key pair of `web.toml` ([`WebConfig`]) and a TLS listener in
//! front of the axum router (needs the `rpc` feature, whose TLS code it shares).
//!
//! The listener accepts TCP connections in its own task and does each handshake in a task
//! of its own, bounded in time ([`HANDSHAKE_TIMEOUT`]) and in number
//! ([`MAX_HANDSHAKES`] at once; more connections wait in the kernel's backlog), so a
//! client that stalls or fails its handshake costs others nothing. The router gets only
//! finished TLS streams, with their peer address (for the login throttle), and serves them
//! as it serves plain TCP ones. A plain HTTP request to the HTTPS port is answered
//! `400 Bad Request` in plain text saying to use `https://`, then closed.
//!
//! The key pair is re-read with the daemon's others on SIGHUP (new connections get it).

/// Why the web server's HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebTlsError {
    /// The certificate or key could not be used (the message names the file).
    #[error("web server HTTPS: {0}")]
    KeyPair(String),
    /// This build has no TLS (the library's `rpc` feature).
    #[error("web server HTTPS: this build has no TLS (the library's `rpc` feature)")]
    NotBuilt,
}

#[cfg(feature = "rpc")]
pub(crate) use served::*;

#[cfg(feature = "rpc")]
mod served {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, Semaphore};
    use tokio::task::JoinHandle;
    use tokio_rustls::server::TlsStream;
    use tokio_rustls::TlsAcceptor;

    use super::WebTlsError;
    use crate::rpc::tls::{ensure_key_pair, ServedKeyPair};
    use crate::web::WebConfig;

    /// Longest a client may take from connecting to a finished TLS handshake.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Handshakes under way at once.
    pub const MAX_HANDSHAKES: usize = 512;
    /// Largest plain HTTP request head read before the `400` answer.
    const MAX_PLAIN_HEAD: usize = 8 << 10;

    /// The server configuration for `config`'s key pair (the daemon's own, generated when
    /// missing, or the given files), and the pair, to reload it. Reads files: call it off
    /// the async workers.
    pub(crate) fn load(
        config_dir: &Path,
        config: &WebConfig,
    ) -> Result<(Arc<rustls::ServerConfig>, Arc<ServedKeyPair>), WebTlsError> {
        let key_pair_error = |e: crate::rpc::RpcError| WebTlsError::KeyPair(e.to_string());
        if config.is_daemon_pair(config_dir) {
            ensure_key_pair(config_dir).map_err(key_pair_error)?;
        }
        let (cert, key) = config.key_pair_paths(config_dir);
        let pair = ServedKeyPair::open(&cert, &key).map_err(key_pair_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebTlsError::KeyPair(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(pair.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(server), pair))
    }

    /// TCP connections with their TLS handshake done, for `axum::serve`.
    #[derive(Debug)]
    pub struct TlsListener {
        addr: SocketAddr,
        ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        accepting: JoinHandle<()>,
    }

    impl TlsListener {
        /// Accepts on `listener` (in a task of its own, ended when this is dropped) with
        /// the key pair of `config`.
        pub fn new(
            listener: TcpListener,
            config: Arc<rustls::ServerConfig>,
        ) -> std::io::Result<Self> {
            let addr = listener.local_addr()?;
            let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
            let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
            Ok(TlsListener {
                addr,
                ready,
                accepting,
            })
        }
    }

    impl Drop for TlsListener {
        fn drop(&mut self) {
            self.accepting.abort();
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.ready.recv().await {
                Some(connection) => connection,
                // The accept task ended (it only does when this is dropped).
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            Ok(self.addr)
        }
    }

    /// Accepts connections while a handshake slot is free; each handshake in its own task.
    async fn accept_loop(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    ) {
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(tcp, acceptor)).await;
                drop(slot);
                match done {
                    Ok(Ok(Some(stream))) => {
                        // Fails only when the server stopped.
                        let _ = ready.send((stream, peer)).await;
                    }
                    Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the HTTPS port"),
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    }

    /// After a failed `accept`: a connection's own error is skipped; others (out of file
    /// descriptors) are logged and the loop backs off a second, as axum's own listener does.
    async fn accept_error(e: std::io::Error) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        tracing::error!(error = %e, "web server (HTTPS): accept failed; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// The TLS handshake; `None` for a plain HTTP request, answered with a `400`.
    async fn handshake(
        tcp: TcpStream,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<Option<TlsStream<TcpStream>>> {
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await?;
        // A TLS record starts with its type (0x16 for a handshake); HTTP with a method name.
        if n == 1 && first[0].is_ascii_uppercase() {
            refuse_plain_http(tcp).await?;
            return Ok(None);
        }
        acceptor.accept(tcp).await.map(Some)
    }

    /// Reads the request head (so that closing does not reset the connection before the
    /// client reads the answer), answers `400` saying to use HTTPS, and closes.
    async fn refuse_plain_http(mut tcp: TcpStream) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 1024];
        while head.len() < MAX_PLAIN_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        const BODY: &str = "This port serves HTTPS: use https:// in the address.\n";
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    }
}
