//! The Stats plugin's `stats.*` methods on a remote daemon, with typed results, over the
//! Deluge-RPC [`Client`] (feature `rpc-client`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), torrent_stats::rpc::client::ClientError> {
//! use torrent_stats::rpc::client::Client;
//! use torrent_stats::rpc::tls::CertPolicy;
//! use torrent_stats::remote::RemoteStats;
//! let mut client = Client::connect("127.0.0.1", 58846, CertPolicy::AnyCertificate).await?;
//! client.login("localclient", "secret").await?;
//! let totals = client.stats().get_totals().await?;
//! println!("{} bytes up", totals.total_upload);
//! # Ok(()) }
//! ```

use serde_json::{json, Map, Value};

use crate::rpc::client::{Client, ClientError};
use crate::stats::{Counters, StatsConfig};

/// Adds [`stats`](RemoteStats::stats) to the RPC [`Client`].
pub trait RemoteStats {
    /// The typed Stats API of the daemon this client is logged in to.
    fn stats(&mut self) -> StatsApi<'_>;
}

impl RemoteStats for Client {
    fn stats(&mut self) -> StatsApi<'_> {
        StatsApi { client: self }
    }
}

/// The `stats.*` methods with typed results.
#[derive(Debug)]
pub struct StatsApi<'a> {
    client: &'a mut Client,
}

fn parse<T: serde::de::DeserializeOwned>(method: &str, v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("{method}: {e}")))
}

impl StatsApi<'_> {
    async fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value, ClientError> {
        self.client.call(method, args, Map::new()).await
    }

    /// All-time totals.
    pub async fn get_totals(&mut self) -> Result<Counters, ClientError> {
        let v = self.call("stats.get_totals", vec![]).await?;
        parse("stats.get_totals", v)
    }

    /// The current session's totals.
    pub async fn get_session_totals(&mut self) -> Result<Counters, ClientError> {
        let v = self.call("stats.get_session_totals", vec![]).await?;
        parse("stats.get_session_totals", v)
    }

    /// The preferences.
    pub async fn get_config(&mut self) -> Result<StatsConfig, ClientError> {
        let v = self.call("stats.get_config", vec![]).await?;
        parse("stats.get_config", v)
    }

    /// Changes preferences (all or nothing).
    pub async fn set_config(&mut self, changes: Map<String, Value>) -> Result<(), ClientError> {
        self.call("stats.set_config", vec![Value::Object(changes)])
            .await
            .map(|_| ())
    }

    /// History series for `keys` at resolution `interval` seconds.
    pub async fn get_stats(&mut self, keys: &[&str], interval: u64) -> Result<Value, ClientError> {
        self.call("stats.get_stats", vec![json!(keys), json!(interval)])
            .await
    }

    /// The history resolutions, seconds.
    pub async fn get_intervals(&mut self) -> Result<Vec<u64>, ClientError> {
        let v = self.call("stats.get_intervals", vec![]).await?;
        parse("stats.get_intervals", v)
    }

    /// Zeroes the all-time totals (ADMIN); returns the totals before.
    pub async fn reset_totals(&mut self) -> Result<Counters, ClientError> {
        let v = self.call("stats.reset_totals", vec![]).await?;
        parse("stats.reset_totals", v)
    }
}
