//! Cancelling TLS operations leaves nothing half-done: a `start_tls` dropped before its
//! handshake completes closes the connection (asyncio's `start_tls` closes the transport
//! when cancelled).

mod proto_support;
mod support;
mod tls_support;

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use proto_support::*;
use tls_support::*;
use tulip::tls::TlsOptions;

// CPython: test_sslproto.py BaseStartTLS.test_start_tls_slow_client_cancel
#[tulip::test]
async fn a_cancelled_start_tls_closes_the_connection() {
    let _w = support::watchdog("start_tls_cancelled", 10);
    let pki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // A peer that takes the ClientHello and never answers it.
    let h = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut all = Vec::new();
        s.read_to_end(&mut all)?; // Ok only at EOF
        Ok(all.len())
    });
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, Default::default())
        .await
        .unwrap();
    let opts = TlsOptions::client(pki.client_config()).server_hostname("localhost");
    let r = tulip::timeout(Duration::from_millis(50), tulip::start_tls(&t, opts, &[])).await;
    assert!(
        r.is_err(),
        "the peer never answers: the timeout cancels start_tls"
    );
    assert!(t.is_closing(), "the half-upgraded connection is closed");
    let hello = join_thread(h, 5.0)
        .await
        .expect("the peer sees EOF, not a hang");
    assert!(hello > 0, "the ClientHello went out");
}

/// `create_connection` with TLS, cancelled during the handshake: the raw transport is
/// aborted, the peer sees the connection end, and the protocol never heard of it.
// CPython: test_sslproto.py BaseStartTLS.test_handshake_timeout (wait_for around a TLS create_connection)
#[tulip::test]
async fn a_cancelled_tls_create_connection_aborts_the_connection() {
    let _w = support::watchdog("create_connection_cancelled", 10);
    let pki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut all = Vec::new();
        s.read_to_end(&mut all)?;
        Ok(all.len())
    });
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let opts = tulip::net::ConnectOptions::new()
        .tls(TlsOptions::client(pki.client_config()).server_hostname("localhost"));
    let r = tulip::timeout(
        Duration::from_millis(50),
        tulip::create_connection(move || rec, "127.0.0.1", port, opts),
    )
    .await;
    assert!(r.is_err(), "the peer never answers the ClientHello");
    let hello = join_thread(h, 5.0)
        .await
        .expect("the peer sees the end, not a hang");
    assert!(hello > 0, "the ClientHello went out");
    tulip::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        cp.events(),
        vec![],
        "no connection_made, so no connection_lost"
    );
}
