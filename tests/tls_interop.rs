//! TLS interop with the machine's `openssl` binary: `openssl s_client` against tulip
//! servers (protocols, client certificates, ALPN, SMTP-style STARTTLS through
//! `StreamWriter::start_tls`) and tulip clients against `openssl s_server`. Certificates are
//! made with rcgen at test time and written to a temporary directory. Each test is skipped
//! (with a printed reason) when `openssl` is missing.

mod proto_support;
mod support;
mod tls_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto_support::*;
use tls_support::*;
use tulip::{Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

/// What an `openssl` run printed and how it ended.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `openssl args…` in a thread: writes `input` to its stdin and closes it, waits at
/// most `secs` (then kills it).
fn openssl_thread(
    args: Vec<String>,
    input: Vec<u8>,
    secs: u64,
) -> std::thread::JoinHandle<io::Result<Run>> {
    std::thread::spawn(move || {
        let mut child = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        stdin.write_all(&input)?;
        drop(stdin);
        let until = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
        match status {
            Some(st) => Ok(Run {
                ok: st.success(),
                stdout,
                stderr,
            }),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "openssl {args:?} killed after {secs} s\nstdout:\n{stdout}\nstderr:\n{stderr}"
                ),
            )),
        }
    })
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The certificate files of a [`Pki`] (and a client leaf) in a temporary directory.
struct Files {
    dir: TempDir,
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Files {
    fn new(pki: &Pki, client: &Leaf, tag: &str) -> Files {
        let dir = TempDir::new(tag);
        let p = |name: &str, text: &str| dir.write(name, text).display().to_string();
        Files {
            ca: p("ca.pem", &pki.ca.pem),
            server_cert: p("server.pem", &pki.server.pem),
            server_key: p("server.key", &pki.server.key_pem),
            client_cert: p("client.pem", &client.pem),
            client_key: p("client.key", &client.key_pem),
            dir,
        }
    }
}

/// A running `openssl s_server`, killed on drop if still running.
struct SServer {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl SServer {
    /// Starts `openssl s_server -accept 127.0.0.1:0 …` and waits (on the loop) for the
    /// port it prints.
    async fn start(args: &[&str]) -> SServer {
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", "-naccept", "1"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openssl s_server");
        let (tx, rx) = mpsc::channel();
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (o, e) = (stdout.clone(), stderr.clone());
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(rest.trim().parse::<u16>().unwrap());
                }
                let mut o = o.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let until = Instant::now() + Duration::from_secs(5);
        let port = loop {
            if let Ok(p) = rx.try_recv() {
                break p;
            }
            assert!(
                Instant::now() < until,
                "s_server printed no port; stderr: {}",
                stderr.lock().unwrap()
            );
            tulip::sleep(Duration::from_millis(2)).await;
        };
        SServer {
            child,
            port,
            stdout,
            stderr,
        }
    }

    /// Waits (on the loop) for the process to end; returns whether it succeeded.
    async fn wait(&mut self, secs: f64) -> bool {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads catch up with the last lines.
                tulip::sleep(Duration::from_millis(20)).await;
                return st.success();
            }
            assert!(
                Instant::now() < until,
                "s_server still running after {secs} s; stderr: {}",
                self.stderr()
            );
            tulip::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type Probes = std::rc::Rc<std::cell::RefCell<Vec<Probe>>>;

/// A recording server on 127.0.0.1 with TLS whose protocols answer a line with the line in
/// capitals and close.
async fn upper_server(cfg: Arc<tulip::tls::rustls::ServerConfig>) -> (tulip::Server, Probes, u16) {
    let probes: Probes = Default::default();
    let ps = probes.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            let p2 = p.clone();
            Rec::new(&p).on_data(move |t: &Transport, _| {
                let all = p2.received();
                if all.ends_with(b"\n") {
                    t.write(&all.to_ascii_uppercase());
                    t.close();
                }
            })
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(cfg)),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, probes, port)
}

/// The `i`-th connection's probe, once the server has accepted it.
async fn nth_probe(probes: &Probes, i: usize, secs: f64) -> Probe {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(p) = probes.borrow().get(i) {
            return p.clone();
        }
        assert!(Instant::now() < until, "connection {i} never accepted");
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

fn s_client_args(port: u16, files: &Files, extra: &[&str]) -> Vec<String> {
    let mut a = s(&[
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        "localhost",
        "-CAfile",
        &files.ca,
        "-verify_return_error",
        "-brief",
        "-ign_eof",
    ]);
    a.extend(s(extra));
    a
}

// ---- openssl s_client -> tulip server ---------------------------------------------------------

#[tulip::test]
async fn openssl_s_client_talks_to_a_tulip_server_with_alpn() {
    let _w = support::watchdog("s_client_to_tulip", 20);
    if !have_openssl("openssl_s_client_talks_to_a_tulip_server_with_alpn") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_client");
    let cfg = custom_server_config(&pki.server, &[b"h2", b"http/1.1"], None, ALL);
    let (server, probes, port) = upper_server(cfg).await;
    let h = openssl_thread(
        s_client_args(port, &files, &["-alpn", "http/1.1"]),
        b"hello from openssl\n".to_vec(),
        10,
    );
    let run = join_thread(h, 15.0).await.unwrap();
    println!("{run:#?}");
    assert!(run.stdout.contains("HELLO FROM OPENSSL"), "{run:#?}");
    assert!(run.stderr.contains("Verification: OK"), "{run:#?}");
    assert!(run.stderr.contains("Protocol version: TLSv1.3"), "{run:#?}");
    assert!(run.ok, "{run:#?}");
    let sp = nth_probe(&probes, 0, 5.0).await;
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_stream_order(&sp.events());
    assert_eq!(sp.received(), b"hello from openssl\n");
    let t = sp.transport();
    assert_eq!(
        bytes(t.get_extra_info("alpn_protocol")).unwrap(),
        b"http/1.1"
    );
    assert_eq!(
        text(t.get_extra_info("server_hostname")).unwrap(),
        "localhost"
    );
    assert!(
        certs(t.get_extra_info("peercert")).is_none(),
        "no client certificate"
    );
    server.close();
}

#[tulip::test]
async fn openssl_s_client_tls12_talks_to_a_tulip_server() {
    let _w = support::watchdog("s_client_tls12", 20);
    if !have_openssl("openssl_s_client_tls12_talks_to_a_tulip_server") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_client12");
    let (server, probes, port) = upper_server(pki.server_config()).await;
    let h = openssl_thread(
        s_client_args(port, &files, &["-tls1_2"]),
        b"twelve\n".to_vec(),
        10,
    );
    let run = join_thread(h, 15.0).await.unwrap();
    assert!(run.stdout.contains("TWELVE"), "{run:#?}");
    assert!(run.stderr.contains("Protocol version: TLSv1.2"), "{run:#?}");
    let sp = nth_probe(&probes, 0, 5.0).await;
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_eq!(
        text(sp.transport().get_extra_info("protocol_version")).unwrap(),
        "TLSv1_2"
    );
    assert_stream_order(&sp.events());
    server.close();
}

#[tulip::test]
async fn openssl_s_client_with_and_without_a_client_certificate() {
    let _w = support::watchdog("s_client_client_cert", 20);
    if !have_openssl("openssl_s_client_with_and_without_a_client_certificate") {
        return;
    }
    let pki = Pki::new();
    let bob = pki.ca.client_leaf("bob");
    let files = Files::new(&pki, &bob, "s_client_cert");
    let cfg = custom_server_config(&pki.server, &[], Some(&pki.ca), ALL);
    let (server, probes, port) = upper_server(cfg).await;
    // With bob's certificate.
    let h = openssl_thread(
        s_client_args(
            port,
            &files,
            &["-cert", &files.client_cert, "-key", &files.client_key],
        ),
        b"it is bob\n".to_vec(),
        10,
    );
    let run = join_thread(h, 15.0).await.unwrap();
    assert!(run.stdout.contains("IT IS BOB"), "{run:#?}");
    let sp = nth_probe(&probes, 0, 5.0).await;
    assert_eq!(sp.wait_lost(5.0).await, None);
    // Leaf first; openssl also sends the CA it found in -CAfile.
    let chain = certs(sp.transport().get_extra_info("peercert")).unwrap();
    assert_eq!(chain[0], bob.der.to_vec());
    assert!(
        chain[1..].iter().all(|c| *c == pki.ca.der.to_vec()),
        "{}",
        chain.len()
    );
    // Without: the server refuses; openssl reports the alert, the protocol never starts.
    let h = openssl_thread(s_client_args(port, &files, &[]), b"anon\n".to_vec(), 10);
    let run = join_thread(h, 15.0).await.unwrap();
    println!("{run:#?}");
    assert!(!run.stdout.contains("ANON"), "{run:#?}");
    assert!(
        run.stderr.contains("certificate required"),
        "openssl names the alert: {run:#?}"
    );
    let sp = nth_probe(&probes, 1, 5.0).await;
    tulip::sleep(Duration::from_millis(50)).await;
    assert!(sp.events().is_empty(), "{:?}", sp.events());
    server.close();
}

#[tulip::test]
async fn openssl_s_client_starttls_smtp_against_stream_writer_start_tls() {
    let _w = support::watchdog("s_client_starttls", 20);
    if !have_openssl("openssl_s_client_starttls_smtp_against_stream_writer_start_tls") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "starttls");
    let scfg = pki.server_config();
    let done: std::rc::Rc<std::cell::RefCell<Option<String>>> = Default::default();
    let d = done.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, mut w: tulip::StreamWriter| {
            let (scfg, d) = (scfg.clone(), d.clone());
            async move {
                w.write(b"220 tulip ESMTP\r\n");
                let ehlo = r.readline().await?;
                assert!(ehlo.starts_with(b"EHLO "), "{ehlo:?}");
                w.write(b"250-tulip\r\n250 STARTTLS\r\n");
                assert_eq!(r.readline().await?, b"STARTTLS\r\n");
                w.write(b"220 Go ahead\r\n");
                w.start_tls(&mut r, TlsOptions::server(scfg)).await?;
                let line = r.readline().await?;
                *d.borrow_mut() = text(w.get_extra_info("protocol_version"));
                w.write(&line.to_ascii_uppercase());
                w.drain().await?;
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let h = openssl_thread(
        s_client_args(port, &files, &["-starttls", "smtp"]),
        b"mail from tulip\n".to_vec(),
        10,
    );
    let run = join_thread(h, 15.0).await.unwrap();
    assert!(run.stdout.contains("MAIL FROM TULIP"), "{run:#?}");
    assert!(run.stderr.contains("Verification: OK"), "{run:#?}");
    assert!(
        done.borrow()
            .as_deref()
            .is_some_and(|v| v.starts_with("TLSv1_"))
    );
    server.close();
}

// ---- tulip client -> openssl s_server ---------------------------------------------------------

#[tulip::test]
async fn a_tulip_client_talks_to_openssl_s_server_with_alpn() {
    let _w = support::watchdog("tulip_to_s_server", 20);
    if !have_openssl("a_tulip_client_talks_to_openssl_s_server_with_alpn") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_server");
    let mut srv = SServer::start(&[
        "-cert",
        &files.server_cert,
        "-key",
        &files.server_key,
        "-rev",
        "-alpn",
        "h2,http/1.1",
    ])
    .await;
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let ccfg = custom_client_config(&pki.ca, &[b"h2"], None, ALL);
    let (t, _) = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        srv.port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost")),
    )
    .await
    .unwrap();
    assert_eq!(bytes(t.get_extra_info("alpn_protocol")).unwrap(), b"h2");
    assert_eq!(
        certs(t.get_extra_info("peercert")).unwrap()[0],
        pki.server.der.to_vec()
    );
    t.write(b"hello openssl\n");
    cp.wait_bytes(14, 5.0).await;
    assert_eq!(cp.received(), b"lssnepo olleh\n");
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_stream_order(&cp.events());
    assert!(srv.wait(5.0).await, "s_server failed: {}", srv.stderr());
    let out = srv.stdout();
    assert!(out.contains("ALPN protocols selected: h2"), "{out}");
    assert!(
        srv.stderr().contains("CONNECTION CLOSED"),
        "{}",
        srv.stderr()
    );
}

#[tulip::test]
async fn a_tulip_client_with_a_certificate_against_openssl_s_server_requiring_one() {
    let _w = support::watchdog("tulip_cert_to_s_server", 20);
    if !have_openssl("a_tulip_client_with_a_certificate_against_openssl_s_server_requiring_one") {
        return;
    }
    let pki = Pki::new();
    let carol = pki.ca.client_leaf("carol");
    let files = Files::new(&pki, &carol, "s_server_verify");
    let mut srv = SServer::start(&[
        "-cert",
        &files.server_cert,
        "-key",
        &files.server_key,
        "-rev",
        "-Verify",
        "1",
        "-CAfile",
        &files.ca,
    ])
    .await;
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let ccfg = custom_client_config(&pki.ca, &[], Some(&carol), ALL);
    let (t, _) = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        srv.port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost")),
    )
    .await
    .unwrap();
    t.write(b"carol\n");
    cp.wait_bytes(6, 5.0).await;
    assert_eq!(cp.received(), b"lorac\n");
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert!(srv.wait(5.0).await, "s_server failed: {}", srv.stderr());
    let all = format!("{}{}", srv.stdout(), srv.stderr());
    assert!(
        all.contains("carol"),
        "s_server saw the client certificate: {all}"
    );
}

#[tulip::test]
async fn a_tulip_client_without_a_certificate_is_refused_by_openssl_s_server() {
    let _w = support::watchdog("tulip_nocert_to_s_server", 20);
    if !have_openssl("a_tulip_client_without_a_certificate_is_refused_by_openssl_s_server") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_server_refuse");
    let _srv = SServer::start(&[
        "-cert",
        &files.server_cert,
        "-key",
        &files.server_key,
        "-rev",
        "-Verify",
        "1",
        "-CAfile",
        &files.ca,
    ])
    .await;
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let ccfg = custom_client_config(&pki.ca, &[], None, ALL);
    let r = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        _srv.port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost")),
    )
    .await;
    // TLS 1.3: the client may finish its handshake before the server refuses it; then the
    // refusal (an alert) ends the connection with a TLS error.
    match r {
        Err(e) => {
            let msg = assert_tls_error(&e, &["alert"]);
            println!("{msg}");
        }
        Ok((t, _)) => {
            t.write(b"anyone?\n");
            assert_eq!(cp.wait_lost(5.0).await, Some(io::ErrorKind::InvalidData));
            assert_stream_order(&cp.events());
            assert!(cp.received().is_empty());
        }
    }
}

#[tulip::test]
async fn a_tulip_client_refuses_openssl_s_server_with_an_unknown_ca_or_the_wrong_name() {
    let _w = support::watchdog("tulip_refuses_s_server", 20);
    if !have_openssl("a_tulip_client_refuses_openssl_s_server_with_an_unknown_ca_or_the_wrong_name")
    {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_server_bad");
    for (cfg, name, words) in [
        (
            Pki::new().client_config(),
            "localhost",
            &["UnknownIssuer"][..],
        ),
        (
            pki.client_config(),
            "wrong.example",
            &["not valid for name"][..],
        ),
    ] {
        let _srv = SServer::start(&[
            "-cert",
            &files.server_cert,
            "-key",
            &files.server_key,
            "-rev",
        ])
        .await;
        let cp = Probe::new();
        let rec = Rec::new(&cp);
        let err = tulip::create_connection(
            move || rec,
            "127.0.0.1",
            _srv.port,
            ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname(name)),
        )
        .await
        .unwrap_err();
        let msg = assert_tls_error(&err, words);
        println!("{msg}");
        assert!(cp.events().is_empty());
    }
    drop(files.dir);
}

/// `openssl s_server` killed after it sent its data: the kernel closes its socket, so the
/// connection ends without `close_notify`. A tulip stream reads to EOF and gets the data
/// (asyncio's and Python's `ssl` default); with `require_close_notify(true)` the same end is
/// an `UnexpectedEof` error, after the data.
#[tulip::test]
async fn a_tulip_stream_reads_to_eof_from_an_openssl_s_server_that_dies() {
    let _w = support::watchdog("s_server_dies", 20);
    if !have_openssl("a_tulip_stream_reads_to_eof_from_an_openssl_s_server_that_dies") {
        return;
    }
    let pki = Pki::new();
    let files = Files::new(&pki, &pki.ca.client_leaf("unused"), "s_server_dies");
    for strict in [false, true] {
        let mut srv =
            SServer::start(&["-cert", &files.server_cert, "-key", &files.server_key]).await;
        let opts = ConnectOptions::new().tls(
            TlsOptions::client(pki.client_config())
                .server_hostname("localhost")
                .require_close_notify(strict),
        );
        let (mut r, w) = tulip::open_connection("127.0.0.1", srv.port, opts)
            .await
            .unwrap();
        let stdin = srv.child.stdin.as_mut().unwrap();
        stdin.write_all(b"last words\n").unwrap();
        stdin.flush().unwrap();
        if strict {
            assert_eq!(r.readline().await.unwrap(), b"last words\n");
            srv.child.kill().unwrap();
            let err = r.read_to_eof().await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        } else {
            let reader = tulip::spawn(async move { (r.read_to_eof().await, r) });
            tulip::sleep(Duration::from_millis(300)).await; // s_server sends the line
            srv.child.kill().unwrap();
            let (got, r) = reader.await;
            assert_eq!(got.unwrap(), b"last words\n");
            assert!(r.at_eof());
        }
        w.close();
        tulip::timeout(Duration::from_secs(5), w.wait_closed())
            .await
            .unwrap()
            .ok();
    }
}
