//! One path from a source specification to a running source: [`SourceSpec::parse`], then
//! [`SourceSpec::build`] with a [`SourceContext`] (vector's `SourceConfig::build(context)`
//! shape). Every kind goes through it, the embedded engine too.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::session::SessionSource;
use crate::torrent::TorrentEngine;

#[cfg(feature = "rpc-client")]
use super::{DelugeSource, DelugeSpecError};
#[cfg(feature = "rqbit")]
use super::{EngineError, EngineOptions, RqbitEngine};
#[cfg(feature = "sidecars")]
use super::{QbittorrentSource, RqbitHttpSource, SidecarSpecError, TransmissionSource};
use super::{SimParamError, SimSource};

/// The embedded engine's kind name.
pub(crate) const ENGINE: &str = "engine";

/// A source specification could not be understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("bad source {spec:?}: {reason}")]
pub struct SourceSpecError {
    /// The specification as given, any password replaced by `***`.
    pub spec: String,
    /// What is wrong with it (in this error's message, so not its source).
    pub reason: SourceSpecReason,
}

/// What is wrong with a source specification.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceSpecReason {
    /// A bad `sim:` parameter list.
    #[error(transparent)]
    Sim(#[from] SimParamError),
    /// A bad `deluge://` address.
    #[cfg(feature = "rpc-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
    #[error(transparent)]
    Deluge(#[from] DelugeSpecError),
    /// A bad `transmission://`, `qbittorrent://` or `rqbit://` address.
    #[cfg(feature = "sidecars")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sidecars")))]
    #[error(transparent)]
    Sidecar(#[from] SidecarSpecError),
    /// A `transmission://`, `qbittorrent://` or `rqbit://` source in a build without
    /// feature `sidecars`.
    #[error("this build has no HTTP sidecar sources (feature `sidecars`)")]
    NoSidecars,
    /// A `deluge://` source in a build without feature `rpc-client`.
    #[error("this build has no Deluge client (feature `rpc-client`)")]
    NoDelugeClient,
    /// `rqbit` in a build without feature `rqbit`.
    #[error("this build has no embedded BitTorrent engine (feature `rqbit`)")]
    NoEngine,
    /// `rqbit` with parameters (it takes none: its options come from the context).
    #[error("rqbit takes no parameters; the engine's options are the daemon's flags")]
    EngineParams,
    /// None of the kinds.
    #[error(
        "unknown source kind; expected engine, sim:up=RATE,down=RATE[,peers=N], \
         deluge://USER:PASS@HOST[:PORT], transmission://USER:PASS@HOST[:PORT], \
         qbittorrent://USER:PASS@HOST[:PORT] or rqbit://HOST[:PORT]"
    )]
    UnknownKind,
}

/// A source could not be built from a valid specification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The embedded engine did not start.
    #[cfg(feature = "rqbit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
    #[error("starting the embedded BitTorrent engine: {0}")]
    Engine(#[from] EngineError),
}

/// A parsed source specification: which kind of source, with its parameters.
///
/// ```
/// use torrent_stats::{SourceSpec, SourceSpecReason};
/// let spec: SourceSpec = "sim:up=2MiB/s,down=8MiB/s".parse().unwrap();
/// assert_eq!(spec.kind(), "sim");
/// let Err(err) = SourceSpec::parse("ftp://x") else { panic!() };
/// assert_eq!(err.reason, SourceSpecReason::UnknownKind);
/// // Errors never repeat a password.
/// let Err(err) = SourceSpec::parse("deluge://me:s3cret@host:0") else {
///     panic!("port 0 accepted")
/// };
/// assert!(!err.to_string().contains("s3cret"), "{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceSpec {
    /// `sim:up=RATE,down=RATE[,peers=N]`: deterministic synthetic traffic.
    Sim(SimSource),
    /// `deluge://USER:PASS@HOST[:PORT]`: a running Deluge 2 daemon.
    #[cfg(feature = "rpc-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rpc-client")))]
    Deluge(Box<DelugeSource>),
    /// `engine` (or `rqbit`, its older name): the embedded librqbit engine, started with
    /// the context's options.
    #[cfg(feature = "rqbit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
    Rqbit,
    /// `transmission://[USER:PASS@]HOST[:PORT][/PATH]` (or `transmission+https://`): a
    /// running Transmission daemon.
    #[cfg(feature = "sidecars")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sidecars")))]
    Transmission(Box<TransmissionSource>),
    /// `qbittorrent://[USER:PASS@]HOST[:PORT]` (or `qbittorrent+https://`): a running
    /// qBittorrent's WebUI API.
    #[cfg(feature = "sidecars")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sidecars")))]
    Qbittorrent(Box<QbittorrentSource>),
    /// `rqbit://[USER:PASS@]HOST[:PORT]` (or `rqbit+https://`): a running rqbit server's
    /// HTTP API.
    #[cfg(feature = "sidecars")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sidecars")))]
    RqbitHttp(Box<RqbitHttpSource>),
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        SourceSpec::parse(spec)
    }
}

impl SourceSpec {
    /// Parses a specification: `engine` (or `rqbit`), `sim:up=RATE,down=RATE[,peers=N]`,
    /// `deluge://USER:PASS@HOST[:PORT]`, `transmission://[USER:PASS@]HOST[:PORT][/PATH]`,
    /// `qbittorrent://[USER:PASS@]HOST[:PORT]`, `rqbit://[USER:PASS@]HOST[:PORT]` (the
    /// last three also as `KIND+https://`).
    pub fn parse(spec: &str) -> Result<SourceSpec, SourceSpecError> {
        let (scheme, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let bad = |spec: String, reason: SourceSpecReason| SourceSpecError { spec, reason };
        match scheme {
            #[cfg(feature = "sidecars")]
            "rqbit" | "rqbit+https" if rest.starts_with("//") => RqbitHttpSource::from_spec(spec)
                .map(|r| SourceSpec::RqbitHttp(Box::new(r)))
                .map_err(|e| bad(redact_password(spec), e.into())),
            #[cfg(not(feature = "sidecars"))]
            "rqbit" if rest.starts_with("//") => {
                Err(bad(redact_password(spec), SourceSpecReason::NoSidecars))
            }
            "sim" => SimSource::from_params(rest)
                .map(SourceSpec::Sim)
                .map_err(|e| bad(spec.to_string(), e.into())),
            #[cfg(feature = "rpc-client")]
            "deluge" => DelugeSource::from_spec(spec)
                .map(|d| SourceSpec::Deluge(Box::new(d)))
                .map_err(|e| bad(redact_password(spec), e.into())),
            #[cfg(not(feature = "rpc-client"))]
            "deluge" => Err(bad(redact_password(spec), SourceSpecReason::NoDelugeClient)),
            #[cfg(feature = "rqbit")]
            "rqbit" | "engine" if spec == "rqbit" || spec == "engine" => Ok(SourceSpec::Rqbit),
            #[cfg(feature = "rqbit")]
            "engine" => Err(bad(spec.to_string(), SourceSpecReason::EngineParams)),
            #[cfg(not(feature = "rqbit"))]
            "engine" => Err(bad(spec.to_string(), SourceSpecReason::NoEngine)),
            #[cfg(feature = "rqbit")]
            "rqbit" => Err(bad(spec.to_string(), SourceSpecReason::EngineParams)),
            #[cfg(not(feature = "rqbit"))]
            "rqbit" => Err(bad(spec.to_string(), SourceSpecReason::NoEngine)),
            #[cfg(feature = "sidecars")]
            "transmission" | "transmission+https" => TransmissionSource::from_spec(spec)
                .map(|t| SourceSpec::Transmission(Box::new(t)))
                .map_err(|e| bad(redact_password(spec), e.into())),
            #[cfg(feature = "sidecars")]
            "qbittorrent" | "qbittorrent+https" => QbittorrentSource::from_spec(spec)
                .map(|q| SourceSpec::Qbittorrent(Box::new(q)))
                .map_err(|e| bad(redact_password(spec), e.into())),
            #[cfg(not(feature = "sidecars"))]
            "transmission" | "transmission+https" | "qbittorrent" | "qbittorrent+https"
            | "rqbit+https" => Err(bad(redact_password(spec), SourceSpecReason::NoSidecars)),
            _ => Err(bad(redact_password(spec), SourceSpecReason::UnknownKind)),
        }
    }

    /// The kind's name, which is also the name of a source not given one: `engine` (the
    /// embedded engine), `sim`, `deluge`, `transmission`, `qbittorrent`, `rqbit`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Sim(_) => "sim",
            #[cfg(feature = "rpc-client")]
            SourceSpec::Deluge(_) => "deluge",
            #[cfg(feature = "rqbit")]
            SourceSpec::Rqbit => ENGINE,
            #[cfg(feature = "sidecars")]
            SourceSpec::Transmission(_) => "transmission",
            #[cfg(feature = "sidecars")]
            SourceSpec::Qbittorrent(_) => "qbittorrent",
            #[cfg(feature = "sidecars")]
            SourceSpec::RqbitHttp(_) => "rqbit",
        }
    }

    /// Builds the source: starts the embedded engine (in the context's directories), or
    /// makes the client of a remote daemon (it connects on its first poll).
    pub async fn build(self, context: &SourceContext) -> Result<BuiltSource, BuildError> {
        let _ = context;
        match self {
            SourceSpec::Sim(sim) => {
                tracing::warn!(source = %sim.describe(), "counting SYNTHETIC traffic from the sim source");
                Ok(BuiltSource::new(Arc::new(sim)))
            }
            #[cfg(feature = "rpc-client")]
            SourceSpec::Deluge(deluge) => Ok(BuiltSource::new(Arc::new(*deluge))),
            #[cfg(feature = "sidecars")]
            SourceSpec::Transmission(t) => Ok(BuiltSource::new(Arc::new(*t))),
            #[cfg(feature = "sidecars")]
            SourceSpec::Qbittorrent(q) => Ok(BuiltSource::new(Arc::new(*q))),
            #[cfg(feature = "sidecars")]
            SourceSpec::RqbitHttp(r) => Ok(BuiltSource::new(Arc::new(*r))),
            #[cfg(feature = "rqbit")]
            SourceSpec::Rqbit => {
                let engine = Arc::new(RqbitEngine::start(context.engine.clone()).await?);
                tracing::info!(download_dir = %context.engine.download_dir.display(), "the embedded engine is running");
                Ok(BuiltSource {
                    source: engine.clone(),
                    engine: Some(engine),
                })
            }
        }
    }
}

/// What building a source needs beyond its specification.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SourceContext {
    /// The daemon's config directory.
    pub config_dir: PathBuf,
    /// How to start the embedded engine: by default, data in `~/Downloads/torrent-stats`
    /// (`<config dir>/downloads` without `HOME`), its torrent list and fast-resume data in
    /// `<config dir>/rqbit`, and [`EngineOptions::new`]'s network defaults.
    #[cfg(feature = "rqbit")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rqbit")))]
    pub engine: EngineOptions,
}

impl SourceContext {
    /// The context of a daemon whose config directory is `config_dir`, with the defaults.
    pub fn new(config_dir: &Path) -> SourceContext {
        SourceContext {
            config_dir: config_dir.to_path_buf(),
            #[cfg(feature = "rqbit")]
            engine: EngineOptions::new(
                default_download_dir(config_dir),
                Some(config_dir.join("rqbit")),
            ),
        }
    }
}

/// `~/Downloads/torrent-stats`, or `<config dir>/downloads` without `HOME`.
#[cfg(feature = "rqbit")]
fn default_download_dir(config_dir: &Path) -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join("Downloads").join("torrent-stats"),
        None => config_dir.join("downloads"),
    }
}

/// A built source: what the Stats plugin polls and, for an engine that holds torrents,
/// the engine behind Deluge's torrent methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct BuiltSource {
    /// The session source.
    pub source: Arc<dyn SessionSource>,
    /// The torrent engine, when the source is one.
    pub engine: Option<Arc<dyn TorrentEngine>>,
}

impl std::fmt::Debug for BuiltSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltSource")
            .field("source", &self.source.describe())
            .field("engine", &self.engine.is_some())
            .finish()
    }
}

impl BuiltSource {
    /// A source that holds no torrents.
    pub fn new(source: Arc<dyn SessionSource>) -> BuiltSource {
        BuiltSource {
            source,
            engine: None,
        }
    }

    /// Stops the engine, if there is one (call it after the daemon stopped: the final
    /// poll still reads it).
    pub async fn stop(&self) {
        if let Some(engine) = &self.engine {
            engine.stop().await;
        }
    }
}

/// `KIND://USER:PASS@...` with the password replaced by `***`, for messages.
pub(crate) fn redact_password(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hostport}"),
            None => spec.to_string(),
        },
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_specification_never_repeats_the_password() {
        for spec in [
            "deluge://u:s3cr3t%zz@h",
            "deluge://u:s3cr3t%ff@h",
            "deluge://u:s3cr3t@h:99999",
            "deluge://u:s3cr3t@h/x",
        ] {
            let redacted = redact_password(spec);
            assert!(!redacted.contains("s3cr3t"), "{redacted}");
            let e = SourceSpec::parse(spec).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        assert_eq!(redact_password("deluge://u:pw@h:1"), "deluge://u:***@h:1");
        assert_eq!(redact_password("sim:up=1"), "sim:up=1");
    }

    #[cfg(feature = "sidecars")]
    #[test]
    fn sidecar_kinds_parse_and_hide_their_password() {
        for (spec, kind) in [
            ("transmission://u:pw@nas:9091", "transmission"),
            ("transmission+https://u:pw@nas", "transmission"),
            ("qbittorrent://admin:pw@box:8080", "qbittorrent"),
            ("rqbit://localhost:3030", "rqbit"),
            ("rqbit+https://u:pw@host", "rqbit"),
        ] {
            assert_eq!(SourceSpec::parse(spec).unwrap().kind(), kind, "{spec}");
        }
        let e = SourceSpec::parse("qbittorrent://admin:s3cret@box:99999").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("qbittorrent://admin:***@"), "{e}");
    }

    #[test]
    fn every_kind_parses_on_the_one_path() {
        assert_eq!(SourceSpec::parse("sim:up=1,down=2").unwrap().kind(), "sim");
        let rqbit = SourceSpec::parse("rqbit");
        #[cfg(feature = "rqbit")]
        assert_eq!(rqbit.unwrap().kind(), "engine");
        #[cfg(not(feature = "rqbit"))]
        assert_eq!(rqbit.unwrap_err().reason, SourceSpecReason::NoEngine);
        let params = SourceSpec::parse("rqbit:port=1").unwrap_err().reason;
        #[cfg(feature = "rqbit")]
        assert_eq!(params, SourceSpecReason::EngineParams);
        #[cfg(not(feature = "rqbit"))]
        assert_eq!(params, SourceSpecReason::NoEngine);
        assert_eq!(
            SourceSpec::parse("ftp://x").unwrap_err().reason,
            SourceSpecReason::UnknownKind
        );
    }
}
