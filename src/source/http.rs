//! Fetching a `.torrent` over HTTP(S) for `core.add_torrent_url`, bounded: a scheme check,
//! a deadline, a redirect limit and a size limit enforced while the body streams in (a
//! `Content-Length` over the limit is refused before any of the body is read).

use std::time::Duration;

use super::error_chain;
use crate::torrent::TorrentError;

/// Whole fetch deadline (connect, redirects, body).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed.
const MAX_REDIRECTS: usize = 5;

/// An HTTP client for torrent files.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A client with the deadline and redirect limit.
    pub(crate) fn new() -> Result<Self, TorrentError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("torrent-stats/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TorrentError::Engine(format!("HTTP client: {e}")))?;
        Ok(Fetcher { client })
    }

    /// The body at `url` (http or https), at most `max` bytes, with `headers` sent along.
    pub(crate) async fn fetch(
        &self,
        url: &str,
        headers: &[(String, String)],
        max: usize,
    ) -> Result<Vec<u8>, TorrentError> {
        let fail = |what: String| TorrentError::Fetch(format!("{url}: {what}"));
        let parsed =
            reqwest::Url::parse(url).map_err(|e| TorrentError::BadUrl(format!("{url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TorrentError::BadUrl(format!(
                "{url}: only http and https URLs are fetched (magnet links go to core.add_torrent_magnet)"
            )));
        }
        let mut request = self.client.get(parsed);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(fail(format!(
                "{} bytes, more than a torrent file may have ({max})",
                response.content_length().unwrap_or_default()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(error_chain(&e)))? {
            if body.len() + chunk.len() > max {
                return Err(fail(format!(
                    "more than {max} bytes, more than a torrent file may have"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
