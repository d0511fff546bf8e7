//! What the TLS test files share: a recording server, TLS options, a connect helper, and a
//! protocol that keeps the error it got.
#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto_support::*;
use tulip::tls::rustls;
use tulip::{
    Protocol, Server, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
};

pub(crate) const KIB: usize = 1024;
pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) type Probes = Rc<RefCell<Vec<Probe>>>;

/// How an async step on the server ended: its value or (kind, message) of its error.
pub(crate) type Outcome<T> = Rc<RefCell<Option<Result<T, (io::ErrorKind, String)>>>>;

/// A server on 127.0.0.1 whose protocols are `make(probe)`, each probe recorded in order
/// (the factory runs at accept time, so a probe exists even when the handshake fails).
pub(crate) async fn recording_server(
    opts: ServerOptions,
    make: impl Fn(&Probe) -> Rec + 'static,
) -> (Server, Probes, SocketAddr) {
    let probes: Probes = Rc::default();
    let ps = probes.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            make(&p)
        },
        "127.0.0.1",
        0,
        opts,
    )
    .await
    .expect("create_server");
    let addr = server.local_addr().expect("local_addr");
    (server, probes, addr)
}

pub(crate) fn tls_server(cfg: Arc<rustls::ServerConfig>) -> ServerOptions {
    ServerOptions::new().tls(TlsOptions::server(cfg))
}

/// A server that treats a close without `close_notify` as a truncation (not the default).
pub(crate) fn strict_tls_server(cfg: Arc<rustls::ServerConfig>) -> ServerOptions {
    ServerOptions::new().tls(TlsOptions::server(cfg).require_close_notify(true))
}

pub(crate) fn tls_client(cfg: Arc<rustls::ClientConfig>) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname("localhost"))
}

/// Connects a recording protocol with TLS to 127.0.0.1:`port`.
pub(crate) async fn connect(
    port: u16,
    opts: ConnectOptions,
    probe: &Probe,
) -> io::Result<Transport> {
    let rec = Rec::new(probe);
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, opts).await?;
    Ok(t)
}

/// Waits until the server has accepted `n` connections (made their protocols).
pub(crate) async fn wait_probes(probes: &Probes, n: usize, secs: f64) -> Vec<Probe> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while probes.borrow().len() < n {
        assert!(
            Instant::now() < until,
            "fewer than {n} connections accepted"
        );
        tulip::sleep(Duration::from_millis(1)).await;
    }
    probes.borrow().clone()
}

/// A protocol that records like [`Rec`] and also keeps the error `connection_lost` got.
pub(crate) struct Keep {
    pub(crate) rec: Rec,
    pub(crate) err: Rc<RefCell<Option<String>>>,
    pub(crate) tls: Rc<Cell<bool>>,
}

impl Protocol for Keep {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.connection_made(t);
    }
    fn data_received(&mut self, d: &[u8]) {
        self.rec.data_received(d);
    }
    fn eof_received(&mut self) -> bool {
        self.rec.eof_received()
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(e) = &exc {
            *self.err.borrow_mut() = Some(e.to_string());
            self.tls.set(tulip::tls::TlsError::from_io(e).is_some());
        }
        self.rec.connection_lost(exc);
    }
    fn pause_writing(&mut self) {
        self.rec.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.rec.resume_writing();
    }
}

/// What a [`Keep`] kept: the error message and whether it carried a `TlsError`.
#[derive(Clone, Default)]
pub(crate) struct Kept {
    pub(crate) err: Rc<RefCell<Option<String>>>,
    pub(crate) tls: Rc<Cell<bool>>,
}

impl Kept {
    pub(crate) fn protocol(&self, rec: Rec) -> Keep {
        Keep {
            rec,
            err: self.err.clone(),
            tls: self.tls.clone(),
        }
    }
    pub(crate) fn message(&self) -> String {
        self.err
            .borrow()
            .clone()
            .expect("connection_lost had an error")
    }
}

/// A loopback address of its own for a client whose failure the server logs: the log line
/// names the peer, and tests run in parallel.
pub(crate) fn own_ip(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 0))
}
