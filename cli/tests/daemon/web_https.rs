//! The web server over HTTPS (`--web-https`, `--web-cert`/`--web-key`, `web.toml`) against
//! the daemon binary: curl and Python's TLS (OpenSSL, verifying the daemon's certificate)
//! load the page and log in to `/json`; a rustls client checks the certificate served is
//! the file's, that plain HTTP, garbage and stalled handshakes cost other clients nothing,
//! that a given key pair is served and reloaded on SIGHUP; an unusable pair or `web.toml`
//! stops the start with the file named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support;
use crate::support::daemon::{command, DaemonProc, SOURCE};

/// Starts the daemon on a new config dir with `args` added.
fn start(args: &[&str]) -> Result<DaemonProc> {
    let dir = tempfile::tempdir()?;
    start_in(dir, args)
}

/// Starts the daemon on config dir `dir` with `args` added; checks it says `https://`.
fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Result<DaemonProc> {
    let mut cmd = command(dir.path(), SOURCE);
    cmd.args(args);
    let d = DaemonProc::launch(cmd, dir)?;
    let web = d.web_addr()?;
    ensure!(
        d.log().contains(&format!("Web listening on https://{web}")),
        "no https:// start line:\n{}",
        d.log()
    );
    Ok(d)
}

/// The first certificate of a PEM file, DER.
fn cert_der(path: &Path) -> Result<Vec<u8>> {
    let cert = CertificateDer::from_pem_file(path).with_context(|| path.display().to_string())?;
    Ok(cert.as_ref().to_vec())
}

/// A self-signed pair for `localhost` (rcgen), written as `cert.pem` and `key.pem` (mode
/// 0600) in `dir`; returns their paths.
fn write_key_pair(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    Ok((cert_path, key_path))
}

/// A TLS connection to `addr` as `localhost`, trusting only the certificate `trust` (DER),
/// verified as browsers do (webpki: chain and name).
async fn tls_connect(addr: SocketAddr, trust: &[u8]) -> Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trust.to_vec()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost")?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(tls)
}

/// The certificate the server showed on `tls`, DER.
fn peer_cert(tls: &TlsStream<TcpStream>) -> Result<Vec<u8>> {
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .context("no peer certificate")?;
    Ok(certs.first().context("empty chain")?.as_ref().to_vec())
}

/// One HTTP/1.1 request on a kept-alive connection: the status, the head, the body (the
/// server's answers carry a Content-Length).
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> Result<(u16, String, String)> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        ensure!(
            n > 0,
            "closed before the answer's head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("status line of {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .with_context(|| format!("no Content-Length in {head:?}"))?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        ensure!(n > 0, "closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET /` answers the page.
async fn get_page<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<()> {
    let (status, _, body) = request(s, "GET", "/", "", "").await?;
    ensure!(
        status == 200 && body.to_lowercase().starts_with("<!doctype html"),
        "GET /: {status} {:?}",
        &body[..body.len().min(80)]
    );
    Ok(())
}

/// Whether the server closed `tcp` (EOF or reset) rather than leaving it open.
fn closed_by_server(tcp: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    match tcp.try_read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_not_held_up_by_plain_http_garbage_or_stalled_handshakes() -> Result<()> {
    let d = start(&["--web-https"])?;
    let web = d.web_addr()?;
    let own = cert_der(&d.dir.path().join("ssl/daemon.cert"))?;

    let mut kept = tls_connect(web, &own).await?;
    ensure!(
        peer_cert(&kept)? == own,
        "the server showed another certificate than ssl/daemon.cert"
    );
    get_page(&mut kept).await?;

    // Connections that never send a byte, and one whose "handshake" is garbage. What
    // follows is served at once: had it waited behind the stalled handshakes, it would
    // take their 5 s timeout each.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(TcpStream::connect(web).await?);
    }
    let started = Instant::now();
    let mut garbage = TcpStream::connect(web).await?;
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 1, 2, 3, 4])
        .await?;
    // Plain HTTP to the HTTPS port: a 400 saying to use https://, then closed.
    let mut plain = TcpStream::connect(web).await?;
    let (status, _, body) = request(&mut plain, "GET", "/", "", "").await?;
    ensure!(
        status == 400 && body.contains("https://"),
        "plain HTTP: {status} {body:?}"
    );

    // A new TLS client while those are open, and the kept-alive one, are served.
    let mut fresh = tls_connect(web, &own).await?;
    let login =
        serde_json::json!({"method": "auth.login", "params": ["localclient", d.password], "id": 1});
    let (status, head, body) = request(
        &mut fresh,
        "POST",
        "/json",
        "Content-Type: application/json\r\n",
        &login.to_string(),
    )
    .await?;
    ensure!(
        status == 200 && body.contains("\"result\":true"),
        "login: {status} {body}"
    );
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .context("no Set-Cookie")?;
    ensure!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    get_page(&mut kept).await?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(10),
        "plain HTTP and TLS clients took {took:?} to be served beside 20 stalled handshakes: they waited for them"
    );
    // The garbage one is closed at once, the stalled ones after the handshake timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut end = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), garbage.read(&mut end))
        .await
        .context("a garbage handshake was not closed within 10 s")?;
    ensure!(
        !matches!(n, Ok(n) if n > 0 && end[..n].starts_with(b"HTTP")),
        "garbage answered as HTTP"
    );
    loop {
        let open = stalled.iter().filter(|s| !closed_by_server(s)).count();
        if open == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{open} stalled handshakes still open after 30 s"
        );
        for s in &stalled {
            let _ = tokio::time::timeout(Duration::from_millis(100), s.readable()).await;
        }
    }
    get_page(&mut fresh).await?;
    ensure!(
        d.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        d.log()
    );
    d.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_key_pair_is_served_from_flags_or_web_toml_and_reloaded_on_sighup() -> Result<()> {
    let files = tempfile::tempdir()?;
    let (cert, key) = write_key_pair(files.path())?;
    let given = cert_der(&cert)?;
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    // The flags alone turn HTTPS on.
    let d = start(&["--web-cert", &cert_s, "--web-key", &key_s])?;
    let web = d.web_addr()?;
    let mut first = tls_connect(web, &given).await?;
    ensure!(peer_cert(&first)? == given, "not the given certificate");
    get_page(&mut first).await?;
    let own = cert_der(&d.dir.path().join("ssl/daemon.cert"))?;
    ensure!(
        tls_connect(web, &own).await.is_err(),
        "a client trusting only the daemon's own certificate connected"
    );

    // Renewed files, then SIGHUP: new connections get the new pair, the open one goes on.
    let renewed = tempfile::tempdir()?;
    let (cert2, key2) = write_key_pair(renewed.path())?;
    std::fs::copy(&key2, &key)?;
    std::fs::copy(&cert2, &cert)?;
    let second = cert_der(&cert)?;
    support::signal(d.pid, "HUP")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(tls) = tls_connect(web, &second).await {
            ensure!(peer_cert(&tls)? == second);
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the renewed pair not served 20 s after SIGHUP:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    get_page(&mut first).await?;
    d.stop()?;

    // web.toml, with paths relative to the config directory.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("mine"))?;
    write_key_pair(&dir.path().join("mine"))?;
    std::fs::write(
        dir.path().join("web.toml"),
        "https = true\ncert = \"mine/cert.pem\"\npkey = \"mine/key.pem\"\n",
    )?;
    let mine = cert_der(&dir.path().join("mine/cert.pem"))?;
    let d = start_in(dir, &[])?;
    let mut tls = tls_connect(d.web_addr()?, &mine).await?;
    ensure!(peer_cert(&tls)? == mine, "not web.toml's certificate");
    get_page(&mut tls).await?;
    d.stop()?;
    Ok(())
}

/// Runs the daemon with `args` on `dir`, expecting it to refuse to start: its stderr.
fn refused(dir: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = command(dir, SOURCE);
    cmd.args(args).env("NO_COLOR", "1");
    let out = support::run_limited(cmd, Duration::from_secs(30))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(!out.status.success(), "started with {args:?}:\n{stderr}");
    ensure!(!stderr.contains("panicked"), "{stderr}");
    Ok(stderr)
}

#[test]
fn an_unusable_key_pair_or_web_toml_stops_the_start_naming_the_file() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let files = tempfile::tempdir()?;
    let (cert, key) = write_key_pair(files.path())?;
    let other = tempfile::tempdir()?;
    let (_, other_key) = write_key_pair(other.path())?;
    let s = |p: &Path| p.display().to_string();
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    let e = refused(d, &["--web-cert", &s(&cert), "--web-key", &s(&other_key)])?;
    ensure!(
        e.contains(&s(&cert)) && e.contains(&s(&other_key)),
        "mismatched pair:\n{e}"
    );
    let missing = files.path().join("nothing.pem");
    let e = refused(d, &["--web-cert", &s(&missing), "--web-key", &s(&key)])?;
    ensure!(e.contains(&s(&missing)), "missing certificate:\n{e}");
    let e = refused(d, &["--web-cert", &s(&key), "--web-key", &s(&key)])?;
    ensure!(
        e.contains(&s(&key)) && e.contains("no certificate"),
        "a key as certificate:\n{e}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let e = refused(d, &["--web-cert", &s(&cert), "--web-key", &s(&key)])?;
    ensure!(
        e.contains(&format!("chmod 600 {}", s(&key))),
        "a key others may read:\n{e}"
    );
    let e = refused(d, &["--web-cert", &s(&cert)])?;
    ensure!(e.contains("--web-key"), "--web-cert alone:\n{e}");

    std::fs::write(d.join("web.toml"), "https = \"yes\"\n")?;
    let e = refused(d, &[])?;
    ensure!(
        e.contains(&s(&d.join("web.toml"))) && e.contains("line 1"),
        "bad web.toml:\n{e}"
    );
    std::fs::write(d.join("web.toml"), "https = true\ncert = \"absent.pem\"\n")?;
    let e = refused(d, &[])?;
    ensure!(
        e.contains(&s(&d.join("absent.pem"))),
        "web.toml's missing cert:\n{e}"
    );
    Ok(())
}

/// curl: `path` of the daemon's web port over HTTPS trusting `cafile`, with `args`: its
/// standard output.
fn curl(web: SocketAddr, cafile: &Path, path: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--cacert"])
        .arg(cafile)
        .args(args)
        .arg(format!("https://localhost:{}{path}", web.port()));
    let out = support::run_limited(cmd, Duration::from_secs(30))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "curl {path} {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The PEM blocks of `text`, whitespace removed.
fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|rest| rest.split("-----END CERTIFICATE-----").next())
        .map(|b| b.split_whitespace().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl and python3 (scripts/test.sh installs them)"]
async fn curl_and_python_use_the_page_and_json_over_https() -> Result<()> {
    let d = start(&["--web-https"])?;
    let web = d.web_addr()?;
    let cafile = d.dir.path().join("ssl/daemon.cert");
    let page = d.dir.path().join("page.html");
    // The page; the certificate curl saw (OpenSSL's chain dump) is the file's.
    let certs = curl(
        web,
        &cafile,
        "/",
        &["-o", &page.display().to_string(), "-w", "%{certs}"],
    )?;
    ensure!(
        std::fs::read_to_string(&page)?
            .to_lowercase()
            .starts_with("<!doctype html"),
        "curl got no page"
    );
    let file = pem_blocks(&std::fs::read_to_string(&cafile)?);
    ensure!(
        pem_blocks(&certs) == file && file.len() == 1,
        "curl saw another certificate:\n{certs}"
    );
    // Login, then a call with the cookie.
    let login =
        serde_json::json!({"method": "auth.login", "params": ["localclient", d.password], "id": 1});
    let json = |body: &str, cookie: Option<&str>| -> Result<String> {
        let mut args = vec![
            "-D",
            "-",
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
        ];
        let header = cookie.map(|c| format!("Cookie: {c}"));
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        curl(web, &cafile, "/json", &args)
    };
    let out = json(&login.to_string(), None)?;
    ensure!(out.contains("\"result\":true"), "curl login:\n{out}");
    let set_cookie = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .context("no Set-Cookie")?;
    ensure!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie
        .split_once(':')
        .and_then(|(_, v)| v.split(';').next())
        .unwrap_or_default()
        .trim();
    let call = serde_json::json!({"method": "stats.get_totals", "params": [], "id": 2});
    let out = json(&call.to_string(), Some(cookie))?;
    ensure!(
        out.contains("\"total_upload\":") && out.contains("\"error\":null"),
        "curl call:\n{out}"
    );
    // Plain HTTP: curl gets the 400 saying to use https://.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "%{http_code}"])
        .arg(format!("http://{web}/"));
    let out = support::run_limited(cmd, Duration::from_secs(30))?;
    let plain = String::from_utf8_lossy(&out.stdout);
    ensure!(
        plain.contains("https://") && plain.ends_with("400"),
        "plain HTTP with curl: {plain}"
    );

    let port = web.port().to_string();
    let run = support::rpc::run_python(
        "web_https.py",
        &[
            &port,
            &cafile.display().to_string(),
            "localclient",
            &d.password,
        ],
        Duration::from_secs(60),
    )?;
    ensure!(
        run.status.success() && run.stdout.contains("OK"),
        "web_https.py:\n{}\n{}\nlog:\n{}",
        run.stdout,
        run.stderr,
        d.log()
    );
    println!("{}", run.stdout);
    d.stop()?;
    Ok(())
}
