//! The TLS application transport: what the user's protocol sees (asyncio's
//! `_SSLProtocolTransport`). Its lifecycle, protocol calls and flow delivery are the
//! transport core's; writes go into rustls and out through the raw transport.
//!
//! Borrowing: the rustls connection sits in its own cell and is never borrowed while user
//! code runs, nor while anything reaches the raw transport (which may call back into the
//! user's protocol with `pause_writing`): records are gathered into an owned buffer and the
//! connection released first.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;

use super::state::{AppState, TlsState};
use super::{Role, TlsConfig, TlsOptions, tls_io_error};
use crate::event_loop::{EventLoop, TimerHandle};
use crate::future::LoopFuture;
use crate::transports::core::{Core, Host};
use crate::transports::{ExtraInfo, ExtraObject, ProtoRc, Transport, TransportImpl};

/// An outgoing-records buffer bigger than this is not kept between flushes.
const KEEP_OUT_BUFFER: usize = 32 * 1024;

/// One TLS connection: the rustls state, the raw transport under it and the user's
/// protocol (in the core) over it.
pub(crate) struct TlsTransport {
    pub(super) core: Core<TlsTransport>,
    pub(super) conn: RefCell<rustls::Connection>,
    pub(super) opts: TlsOptions,
    pub(super) raw: RefCell<Option<Transport>>,
    pub(super) state: Cell<TlsState>,
    pub(super) app: Cell<AppState>,
    /// Give the user's protocol `connection_made` after the handshake (not for `start_tls`).
    pub(super) call_connection_made: bool,
    /// Someone awaits the handshake (`create_connection`, `start_tls`); for connections a
    /// server accepted nobody does, and a failure is logged instead.
    pub(super) awaited: bool,
    /// The application paused reading; `pending_in` holds the records not processed yet.
    pub(super) read_paused: Cell<bool>,
    pub(super) pending_in: RefCell<Vec<u8>>,
    pub(super) close_notify_seen: Cell<bool>,
    /// Set when the TLS layer fails or the peer misbehaves: what `connection_lost` reports.
    pub(super) error: RefCell<Option<io::Error>>,
    pub(super) waiter: RefCell<Option<LoopFuture<()>>>,
    pub(super) timer: RefCell<Option<TimerHandle>>,
    /// Decrypted data on its way to the protocol.
    pub(super) plain: RefCell<Vec<u8>>,
    /// Records on their way to the raw transport.
    out: RefCell<Vec<u8>>,
    /// Inside `feed`: writes are flushed once at its end, in one raw write.
    pub(super) batching: Cell<bool>,
}

impl TlsTransport {
    /// A TLS transport for `user`; the future completes when the handshake does (or fails).
    pub(super) fn new(
        lp: &EventLoop,
        opts: TlsOptions,
        user: ProtoRc,
        role: &Role<'_>,
    ) -> io::Result<(Rc<TlsTransport>, LoopFuture<()>)> {
        let default_name = match role {
            Role::Connect(n) | Role::Upgrade(n) => *n,
            Role::Accept => None,
        };
        let mut conn: rustls::Connection = match &opts.config {
            TlsConfig::Client(cfg) => {
                let name = opts
                    .server_hostname
                    .as_deref()
                    .or(default_name)
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "a TLS client needs a server_hostname",
                        )
                    })?;
                let sn = ServerName::try_from(
                    name.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                )
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("bad server_hostname {name:?}: {e}"),
                    )
                })?;
                rustls::ClientConnection::new(cfg.clone(), sn)
                    .map_err(|e| tls_io_error("cannot start a TLS client", e))?
                    .into()
            }
            TlsConfig::Server(cfg) => rustls::ServerConnection::new(cfg.clone())
                .map_err(|e| tls_io_error("cannot start a TLS server", e))?
                .into(),
        };
        // rustls would refuse plaintext past 64 KiB of unsent records; the raw transport
        // under us buffers and applies the flow control (pause_writing), so let it all through.
        conn.set_buffer_limit(None);
        let waiter = lp.create_future::<()>();
        let server_hostname = match &opts.config {
            TlsConfig::Client(_) => opts
                .server_hostname
                .clone()
                .or(default_name.map(str::to_owned)),
            TlsConfig::Server(_) => None,
        };
        let t = Rc::new_cyclic(|this: &Weak<TlsTransport>| TlsTransport {
            core: Core::new(lp, this, Some(user)),
            conn: RefCell::new(conn),
            opts: TlsOptions {
                server_hostname,
                ..opts
            },
            raw: RefCell::new(None),
            state: Cell::new(TlsState::Unwrapped),
            app: Cell::new(AppState::Init),
            call_connection_made: !matches!(role, Role::Upgrade(_)),
            awaited: !matches!(role, Role::Accept),
            read_paused: Cell::new(false),
            pending_in: RefCell::new(Vec::new()),
            close_notify_seen: Cell::new(false),
            error: RefCell::new(None),
            waiter: RefCell::new(Some(waiter.clone())),
            timer: RefCell::new(None),
            plain: RefCell::new(Vec::new()),
            out: RefCell::new(Vec::new()),
            batching: Cell::new(false),
        });
        Ok((t, waiter))
    }

    /// The application transport handle.
    pub(crate) fn handle(self: &Rc<Self>) -> Transport {
        Transport {
            inner: self.clone(),
        }
    }

    pub(super) fn raw(&self) -> Option<Transport> {
        self.raw.borrow().clone()
    }

    /// The handshake completed (and the connection is not gone).
    pub(super) fn handshake_done(&self) -> bool {
        matches!(
            self.state.get(),
            TlsState::Wrapped | TlsState::Flushing | TlsState::Shutdown
        )
    }

    /// Sends whatever rustls wants to send: the records are gathered into an owned buffer,
    /// the connection released, then they go to the raw transport in one write — which may
    /// deliver `pause_writing` to the user's protocol at once, and that may call back into
    /// this transport (`close`, `get_extra_info`, `write`).
    pub(super) fn flush(&self) {
        let Some(raw) = self.raw() else { return };
        let mut out = self.out.take();
        {
            let mut conn = self.conn.borrow_mut();
            while conn.wants_write() {
                match conn.write_tls(&mut out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if out.is_empty() {
            self.keep_out(out);
            return;
        }
        raw.write(&out);
        out.clear();
        self.keep_out(out);
    }

    fn keep_out(&self, out: Vec<u8>) {
        if out.capacity() <= KEEP_OUT_BUFFER {
            let mut cur = self.out.borrow_mut();
            if cur.capacity() < out.capacity() {
                *cur = out;
            }
        }
    }
}

impl Host for TlsTransport {
    type Proto = dyn crate::transports::proto::ProtoObj;

    fn core(&self) -> &Core<Self> {
        &self.core
    }

    fn buffered_bytes(&self) -> Option<usize> {
        Some(TransportImpl::get_write_buffer_size(self))
    }

    /// The user's protocol panicked: the connection is aborted with that error.
    fn force_close(&self, exc: Option<io::Error>) {
        if let Some(e) = exc {
            let mut err = self.error.borrow_mut();
            if err.is_none() {
                *err = Some(e);
            }
        }
        self.core.set_lost();
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    /// The raw transport is gone (its `connection_lost`): let go of it.
    fn release(&self) {
        super::state::set_tls(&self.state, TlsState::Unwrapped);
        let t = self.timer.take();
        if let Some(t) = t {
            t.cancel();
        }
        let raw = self.raw.take();
        drop(raw);
    }
}

impl TransportImpl for TlsTransport {
    fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.core.is_closing() {
            self.core.write_dropped("TLS transport");
            return;
        }
        if self.conn.borrow_mut().writer().write_all(data).is_err() {
            return;
        }
        if !self.batching.get() {
            self.flush();
        }
    }

    fn write_eof(&self) {
        panic!("TLS transports cannot write_eof(): TLS has no half-close (check can_write_eof())");
    }

    fn can_write_eof(&self) -> bool {
        false
    }

    fn close(&self) {
        if !self.core.begin_closing() {
            return;
        }
        let wrapped = self.state.get() == TlsState::Wrapped;
        if wrapped {
            // Nothing of the application's waits outside rustls: flushing is immediate.
            super::state::set_tls(&self.state, TlsState::Flushing);
            super::state::set_tls(&self.state, TlsState::Shutdown);
        }
        self.conn.borrow_mut().send_close_notify();
        self.flush();
        let Some(raw) = self.raw() else { return };
        if !wrapped || self.close_notify_seen.get() {
            raw.close();
            return;
        }
        // As asyncio's sslproto: keep reading until the peer's close_notify (or EOF), then
        // close. Closing at once would leave the peer's late records (TLS 1.3 session
        // tickets, data in flight) unread, and the kernel answers unread data with a reset
        // that destroys what the peer had not read yet. The shutdown timeout bounds the wait.
        raw.resume_reading();
        let r = raw.clone();
        let t = self
            .core
            .lp
            .call_later(self.opts.shutdown_timeout, move || r.abort());
        let old = self.timer.replace(Some(t));
        if let Some(old) = old {
            old.cancel();
        }
    }

    fn abort(&self) {
        self.core.begin_closing();
        self.core.set_lost();
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    fn is_closing(&self) -> bool {
        self.core.is_closing() || self.raw().is_none_or(|r| r.is_closing())
    }

    fn pause_reading(&self) {
        if self.core.is_closing() || self.read_paused.replace(true) {
            return;
        }
        if let Some(r) = self.raw() {
            r.pause_reading();
        }
    }

    fn resume_reading(&self) {
        if self.core.is_closing() || !self.read_paused.replace(false) {
            return;
        }
        if let Some(r) = self.raw() {
            r.resume_reading();
        }
        if !self.pending_in.borrow().is_empty() {
            // Process what arrived before the pause, from the loop (we may be inside a
            // protocol callback here).
            if let Some(me) = self.core.this() {
                self.core.lp.call_soon(move || {
                    if me.read_paused.get() {
                        return;
                    }
                    let data = me.pending_in.take();
                    me.feed(&data);
                });
            }
        }
    }

    fn is_reading(&self) -> bool {
        !self.read_paused.get() && self.raw().is_some_and(|r| r.is_reading())
    }

    fn get_write_buffer_size(&self) -> usize {
        self.raw().map_or(0, |r| r.get_write_buffer_size())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.raw().map_or((0, 0), |r| r.get_write_buffer_limits())
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> io::Result<()> {
        match self.raw() {
            Some(r) => r.set_write_buffer_limits(high, low),
            None => Ok(()),
        }
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let conn = self.conn.borrow();
        match name {
            "peercert" => conn
                .peer_certificates()
                .map(|c| ExtraInfo::Certificates(c.iter().map(|d| d.as_ref().to_vec()).collect())),
            "cipher" => conn
                .negotiated_cipher_suite()
                .map(|s| ExtraInfo::Text(format!("{:?}", s.suite()))),
            "protocol_version" => conn
                .protocol_version()
                .map(|v| ExtraInfo::Text(format!("{v:?}"))),
            "alpn_protocol" => conn.alpn_protocol().map(|a| ExtraInfo::Bytes(a.to_vec())),
            "server_hostname" => match &*conn {
                rustls::Connection::Server(s) => {
                    s.server_name().map(|n| ExtraInfo::Text(n.to_owned()))
                }
                rustls::Connection::Client(_) => {
                    self.opts.server_hostname.clone().map(ExtraInfo::Text)
                }
            },
            "sslcontext" => Some(ExtraInfo::Object(ExtraObject::new(
                self.opts.config.clone(),
            ))),
            _ => {
                drop(conn);
                self.raw()?.get_extra_info(name)
            }
        }
    }

    fn set_protocol(&self, p: ProtoRc) {
        self.core.set_protocol(p);
    }

    fn get_protocol(&self) -> Option<ProtoRc> {
        self.core.protocol()
    }

    fn is_writing_paused(&self) -> bool {
        self.raw().is_some_and(|r| r.inner.is_writing_paused())
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.raw() {
            Some(r) => r.inner.poll_drain(cx),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "Connection lost",
            ))),
        }
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("state", &self.state.get())
            .field("app", &self.app.get())
            .field("life", &self.core.life())
            .finish_non_exhaustive()
    }
}
