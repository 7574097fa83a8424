//! The connection options every RPC subcommand shares, and the connection they make.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use torrent_stats::auth::LOCALCLIENT;
use torrent_stats::rpc::client::{Client, ClientError};
use torrent_stats::rpc::tls::CertPolicy;
use torrent_stats::{Counters, Event};

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for reaching the daemon over Deluge's RPC protocol.
#[derive(clap::Args, Debug, Clone)]
pub struct RpcArgs {
    /// The daemon's config directory: its `auth` file gives the password when no
    /// --password is given.
    #[arg(long, env = "TORRENT_STATS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// The daemon's host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The daemon's RPC port [default: the one the daemon of the config directory wrote
    /// in its listen.toml, else 58846].
    #[arg(long)]
    pub port: Option<u16>,
    /// Account to log in as [default: localclient].
    #[arg(long)]
    pub user: Option<String>,
    /// Password [default: the account's password from <config-dir>/auth].
    #[arg(long, env = "TORRENT_STATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Accept only this certificate (PEM, e.g. the daemon's ssl/daemon.cert); without it
    /// any certificate is accepted, as Deluge's clients do.
    #[arg(long, value_name = "PATH")]
    pub cert: Option<PathBuf>,
    /// Print JSON (bytes) instead of human units.
    #[arg(long)]
    pub json: bool,
}

/// The daemon could not be reached at all (nothing listens there).
#[derive(Debug)]
pub struct Unreachable {
    /// `host:port`.
    pub addr: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the torrent-stats daemon at {} ({}): is it running? \
             Start it with `torrent-stats daemon`, or pass the right --host/--port",
            self.addr, self.reason
        )
    }
}

impl std::error::Error for Unreachable {}

/// Runs one command's async part on a fresh single-threaded runtime.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// The password of `user` from the daemon's auth file, read without creating anything.
fn password_from_auth_file(dir: &Path, user: &str) -> anyhow::Result<String> {
    let path = dir.join("auth");
    match torrent_stats::auth::read_password(dir, user) {
        Ok(Some(password)) => Ok(password),
        Ok(None) => Err(anyhow!(
            "the auth file {} has no account {user:?}: pass --password, or add the account",
            path.display()
        )),
        Err(e) => Err(anyhow!(
            "cannot read the auth file ({e}): pass --config-dir with the daemon's config \
             directory (start the daemon once to create it), or --user and --password"
        )),
    }
}

/// A logged-in connection.
pub struct Conn {
    client: Client,
    user: String,
}

impl RpcArgs {
    /// The port: given, else the running daemon's (`listen.toml`), else Deluge's.
    pub fn port(&self) -> u16 {
        self.port
            .or_else(|| self.dir().ok().and_then(|d| crate::listen::rpc_port(&d)))
            .unwrap_or(58846)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }

    /// The config directory (given or the platform's).
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        crate::config_dir(self.config_dir.clone())
    }

    fn credentials(&self) -> anyhow::Result<(String, String)> {
        let user = self.user.clone().unwrap_or_else(|| LOCALCLIENT.to_string());
        if let Some(password) = &self.password {
            return Ok((user, password.clone()));
        }
        let password = password_from_auth_file(&self.dir()?, &user)?;
        Ok((user, password))
    }

    /// Connects and logs in. An [`Unreachable`] error when nothing listens at the address.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let (user, password) = self.credentials()?;
        let policy = match &self.cert {
            Some(path) => CertPolicy::pin_pem_file(path)
                .with_context(|| format!("reading the certificate to pin ({})", path.display()))?,
            None => CertPolicy::AnyCertificate,
        };
        let addr = self.addr();
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Client::connect(&self.host, self.port(), policy),
        )
        .await
        .map_err(|_| {
            anyhow!("no answer from {addr} within {CONNECT_TIMEOUT:?}: is the daemon running?")
        })?;
        let mut client = match connected {
            Ok(client) => client,
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::AddrNotAvailable
                        | std::io::ErrorKind::NotFound
                ) =>
            {
                return Err(Unreachable {
                    addr,
                    reason: e.to_string(),
                }
                .into())
            }
            Err(e @ ClientError::Setup(_)) if self.cert.is_some() => {
                return Err(anyhow!(
                    "TLS with {addr} failed ({e}): the daemon's certificate is not the one \
                     pinned with --cert"
                ))
            }
            Err(e) => return Err(anyhow!("connecting to {addr}: {e}")),
        };
        match client.login(&user, &password).await {
            Ok(_) => Ok(Conn { client, user }),
            Err(e @ ClientError::Remote { .. }) => Err(anyhow!(
                "login to {addr} as {user:?} failed: {e}; check --user/--password or the \
                 daemon's auth file"
            )),
            Err(e) => Err(anyhow!("login to {addr}: {e}")),
        }
    }
}

impl Conn {
    fn error(&self, method: &str, e: ClientError) -> anyhow::Error {
        let ClientError::Remote { class, .. } = &e else {
            return anyhow!("{method}: {e}");
        };
        let hint = match class.as_str() {
            "AttributeError" if method.starts_with("stats.") => format!(
                "\nThe daemon has no method {method}: enable the Stats plugin \
                 (`torrent-stats plugin enable Stats`); an older daemon may lack it"
            ),
            "NotAuthorizedError" => format!(
                "\n{:?} may not call {method}: log in as an ADMIN account with --user/--password",
                self.user
            ),
            _ => String::new(),
        };
        anyhow!("{method} failed: {e}{hint}")
    }

    /// Calls `method` with positional `args`.
    pub async fn call(&mut self, method: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        match self.client.call(method, args, Map::new()).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.error(method, e)),
        }
    }

    /// Asks the daemon for the events named `events`; they arrive among later answers.
    pub async fn subscribe(&mut self, events: &[&str]) -> anyhow::Result<()> {
        self.client
            .subscribe(events)
            .await
            .map_err(|e| self.error("daemon.set_event_interest", e))
    }

    /// The events that arrived so far (read while waiting for answers, or waiting on the
    /// connection now), oldest first; waits for none.
    pub async fn events(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut out = Vec::new();
        while let Some(event) = self
            .client
            .next_event(Duration::ZERO)
            .await
            .map_err(|e| anyhow!("reading events: {e}"))?
        {
            out.push(event);
        }
        Ok(out)
    }

    /// Several calls in one round trip; fails with the first failed call.
    pub async fn calls(&mut self, calls: &[(&str, Vec<Value>)]) -> anyhow::Result<Vec<Value>> {
        let batch = calls
            .iter()
            .map(|(m, a)| (m.to_string(), a.clone(), Map::new()))
            .collect();
        let methods = calls.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ");
        let answers = self
            .client
            .pipeline(batch)
            .await
            .map_err(|e| anyhow!("{methods}: {e}"))?;
        let mut out = Vec::with_capacity(answers.len());
        for ((method, _), answer) in calls.iter().zip(answers) {
            out.push(answer.map_err(|e| self.error(method, e))?);
        }
        Ok(out)
    }
}

/// Reads the four counters out of an answer.
pub fn counters(method: &str, v: Value) -> anyhow::Result<Counters> {
    serde_json::from_value(v).with_context(|| format!("{method} returned an unexpected shape"))
}
