//! Helpers for the TLS tests: a throw-away PKI made with rcgen at test time (a CA, server
//! and client leaves), rustls configs built with rustls's own builder (ALPN, client
//! authentication, TLS 1.2 only), a blocking rustls peer for std threads, a log capture,
//! and the `openssl` binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tulip::tls::rustls;
use tulip::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tulip::tls::rustls::server::WebPkiClientVerifier;
use tulip::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tulip::transports::ExtraInfo;

// ---- certificates ---------------------------------------------------------------------------

/// A certificate authority made at test time.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) der: CertificateDer<'static>,
    pub(crate) pem: String,
}

/// A leaf certificate (signed by a [`Ca`], or self-signed) and its key.
pub(crate) struct Leaf {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) pem: String,
    key_der: Vec<u8>,
    pub(crate) key_pem: String,
}

impl Leaf {
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }

    /// A self-signed server certificate for `names` (nobody's CA trusts it).
    pub(crate) fn self_signed(names: &[&str]) -> Leaf {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        Leaf {
            der: ck.cert.der().clone(),
            pem: ck.cert.pem(),
            key_der: ck.signing_key.serialize_der(),
            key_pem: ck.signing_key.serialize_pem(),
        }
    }
}

impl Ca {
    pub(crate) fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    fn leaf(&self, cn: &str, names: &[&str], eku: ExtendedKeyUsagePurpose) -> Leaf {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![eku];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub(crate) fn server_leaf(&self) -> Leaf {
        self.leaf(
            "tulip test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    pub(crate) fn client_leaf(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        let mut r = RootCertStore::empty();
        r.add(self.der.clone()).unwrap();
        Arc::new(r)
    }
}

/// A CA with one server leaf: what most tests need.
pub(crate) struct Pki {
    pub(crate) ca: Ca,
    pub(crate) server: Leaf,
}

impl Pki {
    /// A new CA (with a name of its own: a verifier matches issuers by name) and leaf.
    pub(crate) fn new() -> Pki {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let ca = Ca::new(&format!(
            "tulip test CA {}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let server = ca.server_leaf();
        Pki { ca, server }
    }

    /// The server config of tulip's helper.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        tulip::tls::server_config(self.server.chain(), self.server.key()).unwrap()
    }

    /// A client config (tulip's helper) trusting this CA.
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        tulip::tls::client_config_with_roots([self.ca.der.clone()]).unwrap()
    }
}

// ---- rustls configs built with rustls's builder ------------------------------------------------

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config with `alpn` (most preferred first) and, with `client_ca`, a required
/// client certificate.
pub(crate) fn custom_server_config(
    leaf: &Leaf,
    alpn: &[&[u8]],
    client_ca: Option<&Ca>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let b = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let b = match client_ca {
        Some(ca) => b.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(ca.roots(), provider())
                .build()
                .unwrap(),
        ),
        None => b.with_no_client_auth(),
    };
    let mut cfg = b.with_single_cert(leaf.chain(), leaf.key()).unwrap();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// A client config trusting `ca`, offering `alpn`, presenting `client_cert` if given.
pub(crate) fn custom_client_config(
    ca: &Ca,
    alpn: &[&[u8]],
    client_cert: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(ca.roots());
    let mut cfg = match client_cert {
        Some(l) => b.with_client_auth_cert(l.chain(), l.key()).unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

pub(crate) const ALL: &[&rustls::SupportedProtocolVersion] = rustls::DEFAULT_VERSIONS;
pub(crate) const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

// ---- extra info --------------------------------------------------------------------------------

pub(crate) fn text(i: Option<ExtraInfo>) -> Option<String> {
    match i {
        Some(ExtraInfo::Text(s)) => Some(s),
        None => None,
        other => panic!("not text: {other:?}"),
    }
}

pub(crate) fn bytes(i: Option<ExtraInfo>) -> Option<Vec<u8>> {
    match i {
        Some(ExtraInfo::Bytes(b)) => Some(b),
        None => None,
        other => panic!("not bytes: {other:?}"),
    }
}

pub(crate) fn certs(i: Option<ExtraInfo>) -> Option<Vec<Vec<u8>>> {
    match i {
        Some(ExtraInfo::Certificates(c)) => Some(c),
        None => None,
        other => panic!("not certificates: {other:?}"),
    }
}

pub(crate) fn sock_addr(i: Option<ExtraInfo>) -> SocketAddr {
    match i {
        Some(ExtraInfo::Address(a)) => a.as_socket().expect("an IP address"),
        other => panic!("not an address: {other:?}"),
    }
}

// ---- errors ----------------------------------------------------------------------------------

/// Asserts `err` is `InvalidData` carrying a `TlsError` whose message (lowercased) contains
/// every one of `words`; returns the message.
pub(crate) fn assert_tls_error(err: &io::Error, words: &[&str]) -> String {
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err:?}");
    let tls =
        tulip::tls::TlsError::from_io(err).unwrap_or_else(|| panic!("no TlsError inside {err:?}"));
    let msg = err.to_string();
    assert_eq!(msg, tls.to_string());
    let lower = msg.to_lowercase();
    for w in words {
        assert!(lower.contains(&w.to_lowercase()), "{w:?} not in {msg:?}");
    }
    msg
}

// ---- a log capture -----------------------------------------------------------------------------

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LOGS.lock()
                .unwrap()
                .push(format!("{} {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per process; warnings and errors).
pub(crate) fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("no other logger");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The captured lines that contain `needle`.
pub(crate) fn logs_with(needle: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// Waits (on the loop) until a captured line contains `needle`; returns it.
pub(crate) async fn wait_log(needle: &str, secs: f64) -> String {
    let until = std::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(l) = logs_with(needle).pop() {
            return l;
        }
        assert!(
            std::time::Instant::now() < until,
            "no log line with {needle:?} within {secs} s"
        );
        tulip::sleep(Duration::from_millis(2)).await;
    }
}

// ---- a blocking rustls peer --------------------------------------------------------------------

pub(crate) type ClientStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
pub(crate) type ServerStream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

pub(crate) fn blocking(s: TcpStream) -> TcpStream {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A rustls client on a blocking std socket, handshake done.
pub(crate) fn rustls_client(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
) -> io::Result<ClientStream> {
    let sock = blocking(TcpStream::connect(addr)?);
    let conn = rustls::ClientConnection::new(cfg, name.to_owned().try_into().unwrap())
        .map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// A rustls server on an accepted blocking std socket, handshake done.
pub(crate) fn rustls_server(sock: TcpStream, cfg: Arc<ServerConfig>) -> io::Result<ServerStream> {
    let conn = rustls::ServerConnection::new(cfg).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, blocking(sock));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Reads a TLS stream up to `\n` (included).
pub(crate) fn read_line<S: Read>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b)? {
            0 => return Ok(out),
            _ => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    return Ok(out);
                }
            }
        }
    }
}

/// Sends close_notify through a rustls stream.
pub(crate) fn send_close_notify<C, S>(s: &mut rustls::StreamOwned<C, TcpStream>) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
{
    s.conn.send_close_notify();
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    s.sock.flush()
}

// ---- files and the openssl binary --------------------------------------------------------------

/// A fresh temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tulip-tls-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the `openssl` binary can run here (prints why not, for a skipped test).
pub(crate) fn have_openssl(test: &str) -> bool {
    match std::process::Command::new("openssl")
        .arg("version")
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            println!("SKIPPED {test}: `openssl version` failed: {o:?}");
            false
        }
        Err(e) => {
            println!("SKIPPED {test}: no `openssl` binary ({e})");
            false
        }
    }
}
