//! TLS smoke tests: a tulip TLS server and client with streams and protocols, rcgen
//! certificates generated here.

mod support;

use std::io;
use std::sync::Arc;

use tulip::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tulip::{net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

fn certs() -> (
    Arc<tulip::tls::rustls::ServerConfig>,
    Arc<tulip::tls::rustls::ClientConfig>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = tulip::tls::server_config(vec![cert.clone()], key).unwrap();
    let client = tulip::tls::client_config_with_roots([cert]).unwrap();
    (server, client)
}

#[tulip::test]
async fn tls_stream_echo() -> io::Result<()> {
    let _w = support::watchdog("tls_stream_echo", 30);
    let (scfg, ccfg) = certs();
    let server = tulip::start_server(
        |mut r: tulip::StreamReader, w: tulip::StreamWriter| async move {
            loop {
                let line = r.readline().await?;
                if line.is_empty() {
                    w.close();
                    return io::Result::Ok(());
                }
                w.write(&line);
                w.drain().await?;
            }
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(scfg)),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection(
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg.clone()).server_hostname("localhost")),
    )
    .await?;
    w.write(b"hello over tls\n");
    assert_eq!(r.readline().await?, b"hello over tls\n");
    assert!(!w.can_write_eof());
    match w.get_extra_info("protocol_version") {
        Some(tulip::transports::ExtraInfo::Text(v)) => assert!(v.contains("TLS"), "{v}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(w.get_extra_info("peercert"), Some(tulip::transports::ExtraInfo::Certificates(c)) if !c.is_empty())
    );
    w.close();
    w.wait_closed().await?;

    // Hostname mismatch: a clear error that wraps the rustls error.
    let err = tulip::open_connection(
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("example.org")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(tulip::tls::TlsError::from_io(&err).is_some(), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    server.close();
    Ok(())
}

#[tulip::test]
async fn starttls_upgrade_over_streams() -> io::Result<()> {
    let _w = support::watchdog("starttls_upgrade_over_streams", 30);
    let (scfg, ccfg) = certs();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, mut w: tulip::StreamWriter| {
            let scfg = scfg.clone();
            async move {
                assert_eq!(r.readline().await?, b"STARTTLS\n");
                w.write(b"OK\n");
                w.start_tls(&mut r, TlsOptions::server(scfg)).await?;
                let line = r.readline().await?;
                w.write(&line);
                w.drain().await?;
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let (mut r, mut w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    w.write(b"STARTTLS\n");
    assert_eq!(r.readline().await?, b"OK\n");
    w.start_tls(
        &mut r,
        TlsOptions::client(ccfg).server_hostname("localhost"),
    )
    .await?;
    w.write(b"secret\n");
    assert_eq!(r.readline().await?, b"secret\n");
    assert!(w.get_extra_info("cipher").is_some());
    server.close();
    Ok(())
}

/// A client that writes 1 MiB and closes in the same step: the server must get every byte
/// (closing must not reset the connection while the peer's late TLS records are unread).
#[tulip::test]
async fn write_then_close_loses_nothing() -> io::Result<()> {
    let _w = support::watchdog("tls_write_then_close", 30);
    let (scfg, ccfg) = certs();
    let got = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let g = got.clone();
    let done = tulip::get_running_loop().create_future::<()>();
    let d = done.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, _w: tulip::StreamWriter| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                let all = r.read_to_eof().await?;
                g.set(all.len());
                d.set_result(());
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(scfg)),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let (_r, w) = tulip::open_connection(
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost")),
    )
    .await?;
    w.write(&vec![7u8; 1 << 20]);
    w.close();
    tulip::timeout(std::time::Duration::from_secs(10), done)
        .await
        .expect("server saw EOF")?;
    assert_eq!(got.get(), 1 << 20);
    server.close();
    Ok(())
}

#[tulip::test]
async fn tls_over_a_unix_socket_with_streams() -> io::Result<()> {
    let _w = support::watchdog("tls_over_unix", 30);
    let (scfg, ccfg) = certs();
    let dir = std::env::temp_dir().join(format!("tulip-tls-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("s.sock");
    let server = tulip::start_unix_server(
        |mut r: tulip::StreamReader, w: tulip::StreamWriter| async move {
            let line = r.readline().await?;
            w.write(&line);
            w.drain().await?;
            io::Result::Ok(())
        },
        &path,
        ServerOptions::new().tls(TlsOptions::server(scfg)),
    )
    .await?;
    let (mut r, w) = tulip::open_unix_connection(
        &path,
        ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost")),
    )
    .await?;
    w.write(b"over unix and tls\n");
    assert_eq!(r.readline().await?, b"over unix and tls\n");
    assert!(w.get_extra_info("cipher").is_some());
    server.close();
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
