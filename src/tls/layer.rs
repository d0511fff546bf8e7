//! The TLS layer: `TlsProtocol` is the raw transport's protocol; `TlsLayer` holds the
//! `rustls::Connection` and is the application transport the user's protocol sees.
//!
//! Borrowing: the rustls connection sits in its own cell and is never borrowed while user
//! code runs — records are decrypted into a plaintext buffer first, then handed over.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;

use super::{TlsConfig, TlsOptions};
use crate::event_loop::{EventLoop, TimerHandle};
use crate::future::LoopFuture;
use crate::protocols::Protocol;
use crate::transports::proto::{ProtoObj, call_protocol, report_panic};
use crate::transports::{ExtraInfo, ProtoRc, Transport, TransportImpl};

/// A TLS failure: what went wrong, wrapping the rustls error. It travels inside an
/// `io::Error` of kind `InvalidData`.
#[derive(Debug)]
pub struct TlsError {
    context: &'static str,
    source: rustls::Error,
}

impl TlsError {
    /// The rustls error.
    pub fn rustls_error(&self) -> &rustls::Error {
        &self.source
    }

    /// The `TlsError` inside `err`, if that is what it carries.
    pub fn from_io(err: &io::Error) -> Option<&TlsError> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn tls_io_error(context: &'static str, source: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError { context, source })
}

/// Writes TLS records into the raw transport (which never blocks: it buffers).
struct RawWriter<'a>(&'a Transport);

impl Write for RawWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    /// rustls hands over all pending records at once: one raw write (one `send`) for them
    /// all instead of one per record.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().filter(|b| !b.is_empty()).count() {
            0 => Ok(0),
            1 => self.write(bufs.iter().find(|b| !b.is_empty()).expect("one")),
            _ => {
                let total = bufs.iter().map(|b| b.len()).sum();
                let mut all = Vec::with_capacity(total);
                for b in bufs {
                    all.extend_from_slice(b);
                }
                self.0.write(&all);
                Ok(total)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One TLS connection: the rustls state, the raw transport under it and the user's
/// protocol over it.
pub(crate) struct TlsLayer {
    lp: EventLoop,
    this: Weak<TlsLayer>,
    conn: RefCell<rustls::Connection>,
    opts: TlsOptions,
    raw: RefCell<Option<Transport>>,
    user: RefCell<Option<ProtoRc>>,
    /// Give the user's protocol `connection_made` after the handshake (not for `start_tls`).
    call_connection_made: bool,
    /// Someone awaits the handshake (`create_connection`, `start_tls`); for connections a
    /// server accepted nobody does, and a failure is logged instead.
    awaited: bool,
    handshake_done: Cell<bool>,
    /// The application paused reading; `pending_in` holds the records not processed yet.
    paused: Cell<bool>,
    pending_in: RefCell<Vec<u8>>,
    connected: Cell<bool>,
    lost: Cell<bool>,
    closing: Cell<bool>,
    close_notify_seen: Cell<bool>,
    /// Set when the TLS layer fails or the peer misbehaves: what `connection_lost` reports.
    error: RefCell<Option<io::Error>>,
    waiter: RefCell<Option<LoopFuture<()>>>,
    timer: RefCell<Option<TimerHandle>>,
    plain: RefCell<Vec<u8>>,
    /// The user's protocol was busy when `pause_writing`/`resume_writing` fell due.
    pending_flow: Cell<Option<bool>>,
    dropped_writes: Cell<u32>,
    /// Inside `feed`: writes are flushed once at its end, in one raw write.
    batching: Cell<bool>,
}

/// The raw transport's protocol.
pub(crate) struct TlsProtocol(pub(crate) Rc<TlsLayer>);

impl TlsLayer {
    /// A TLS layer for `user`; `waiter` completes when the handshake does (or fails).
    pub(crate) fn new(
        lp: &EventLoop,
        opts: TlsOptions,
        default_name: Option<&str>,
        user: ProtoRc,
        call_connection_made: bool,
        awaited: bool,
    ) -> io::Result<(Rc<TlsLayer>, LoopFuture<()>)> {
        let conn: rustls::Connection = match &opts.config {
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
        let mut conn = conn;
        // rustls would refuse plaintext past 64 KiB of unsent records; the raw transport
        // under us buffers and applies the flow control (pause_writing), so let it all through.
        conn.set_buffer_limit(None);
        let waiter = lp.create_future::<()>();
        let layer = Rc::new_cyclic(|this| TlsLayer {
            lp: lp.clone(),
            this: this.clone(),
            conn: RefCell::new(conn),
            opts: TlsOptions {
                server_hostname: match &opts.config {
                    TlsConfig::Client(_) => opts
                        .server_hostname
                        .clone()
                        .or(default_name.map(str::to_owned)),
                    TlsConfig::Server(_) => None,
                },
                ..opts
            },
            raw: RefCell::new(None),
            user: RefCell::new(Some(user)),
            call_connection_made,
            awaited,
            handshake_done: Cell::new(false),
            paused: Cell::new(false),
            pending_in: RefCell::new(Vec::new()),
            connected: Cell::new(false),
            lost: Cell::new(false),
            closing: Cell::new(false),
            close_notify_seen: Cell::new(false),
            error: RefCell::new(None),
            waiter: RefCell::new(Some(waiter.clone())),
            timer: RefCell::new(None),
            plain: RefCell::new(Vec::new()),
            pending_flow: Cell::new(None),
            dropped_writes: Cell::new(0),
            batching: Cell::new(false),
        });
        Ok((layer, waiter))
    }

    /// The application transport.
    pub(crate) fn app_transport(self: &Rc<Self>) -> Transport {
        Transport {
            inner: self.clone(),
        }
    }

    fn raw(&self) -> Option<Transport> {
        self.raw.borrow().clone()
    }

    /// The raw transport is there: start the handshake and its timer.
    pub(crate) fn start(&self, raw: &Transport, already_received: &[u8]) {
        *self.raw.borrow_mut() = Some(raw.clone());
        if let Some(me) = self.this.upgrade() {
            let h = self.lp.call_later(self.opts.handshake_timeout, move || {
                if !me.handshake_done.get() {
                    me.fail_with(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ));
                }
            });
            *self.timer.borrow_mut() = Some(h);
        }
        self.flush();
        if !already_received.is_empty() {
            self.feed(already_received);
        }
    }

    /// Sends whatever rustls wants to send.
    fn flush(&self) {
        let Some(raw) = self.raw() else { return };
        let mut conn = self.conn.borrow_mut();
        while conn.wants_write() {
            if conn.write_tls(&mut RawWriter(&raw)).is_err() {
                break;
            }
        }
    }

    /// Fails the connection: the error goes to `connection_lost` (or to whoever waits for
    /// the handshake), pending alerts are sent, the raw transport closed.
    fn fail_with(&self, err: io::Error) {
        if self.error.borrow().is_none() {
            *self.error.borrow_mut() = Some(err);
        }
        self.flush();
        if let Some(raw) = self.raw() {
            raw.close();
        }
    }

    /// TLS records from the peer; what the user writes meanwhile goes out in one flush.
    fn feed(&self, data: &[u8]) {
        let outer = !self.batching.replace(true);
        self.feed_records(data);
        if outer {
            self.batching.set(false);
            self.flush();
        }
    }

    fn feed_records(&self, data: &[u8]) {
        let mut rd = data;
        loop {
            let r = {
                let mut conn = self.conn.borrow_mut();
                let mut res = Ok(());
                if !rd.is_empty() {
                    if let Err(e) = conn.read_tls(&mut rd) {
                        res = Err(io::Error::new(e.kind(), format!("TLS read failed: {e}")));
                    }
                }
                match res.and_then(|()| {
                    conn.process_new_packets().map_err(|e| {
                        tls_io_error(
                            if conn.is_handshaking() {
                                "TLS handshake failed"
                            } else {
                                "TLS error"
                            },
                            e,
                        )
                    })
                }) {
                    Ok(state) => {
                        if state.plaintext_bytes_to_read() > 0 {
                            let mut plain = self.plain.borrow_mut();
                            let mut reader = conn.reader();
                            while let Ok(chunk) = reader.fill_buf() {
                                if chunk.is_empty() {
                                    break;
                                }
                                let n = chunk.len();
                                plain.extend_from_slice(chunk);
                                reader.consume(n);
                            }
                        }
                        if state.peer_has_closed() {
                            self.close_notify_seen.set(true);
                        }
                        Ok(!conn.is_handshaking())
                    }
                    Err(e) => Err(e),
                }
            };
            // No flush here: `feed` flushes once at its end, so records (handshake replies
            // and what the protocol writes back) leave in one raw write.
            match r {
                Err(e) => {
                    self.fail_with(e);
                    return;
                }
                Ok(done) => {
                    if done && !self.handshake_done.get() {
                        self.on_handshake_done();
                    }
                }
            }
            self.deliver_plaintext();
            if rd.is_empty() || self.lost.get() {
                break;
            }
            if self.paused.get() {
                // The protocol paused reading: keep the rest for `resume_reading`.
                self.pending_in.borrow_mut().extend_from_slice(rd);
                return;
            }
        }
        if self.close_notify_seen.get() {
            if self.closing.get() {
                // Our close_notify went out earlier; the peer's answer completes the shutdown.
                if let Some(raw) = self.raw() {
                    raw.close();
                }
            } else {
                // The peer's close_notify: EOF for the user's protocol.
                let keep_open = self.call_user(|p| p.eof_received()).unwrap_or(false);
                if !keep_open {
                    TransportImpl::close(self);
                }
            }
        }
    }

    fn on_handshake_done(&self) {
        self.handshake_done.set(true);
        if let Some(t) = self.timer.borrow_mut().take() {
            t.cancel();
        }
        if self.call_connection_made {
            if let Some(me) = self.this.upgrade() {
                let app = me.app_transport();
                self.connected.set(true);
                self.call_user(|p| p.connection_made(&app));
            }
        } else {
            self.connected.set(true);
        }
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                w.set_result(());
            }
        }
    }

    fn deliver_plaintext(&self) {
        if !self.connected.get() || self.plain.borrow().is_empty() {
            return;
        }
        if self.closing.get() {
            // Data that arrives after close() is discarded, as asyncio does.
            self.plain.borrow_mut().clear();
            return;
        }
        let data = std::mem::take(&mut *self.plain.borrow_mut());
        self.call_user(|p| p.feed(&data));
        let mut plain = self.plain.borrow_mut();
        if plain.is_empty() {
            let mut data = data;
            data.clear();
            *plain = data;
        }
    }

    /// Calls the user's protocol, catching a panic (reported; the connection aborted).
    fn call_user<R>(&self, f: impl FnOnce(&mut dyn ProtoObj) -> R) -> Option<R> {
        let p = self.user.borrow().clone()?;
        match call_protocol(&p, f) {
            Ok(v) => {
                self.deliver_flow();
                v
            }
            Err(payload) => {
                report_panic(&self.lp, payload);
                *self.error.borrow_mut() = Some(io::Error::other("protocol callback panicked"));
                if let Some(raw) = self.raw() {
                    raw.abort();
                }
                None
            }
        }
    }

    fn deliver_flow(&self) {
        let Some(pause) = self.pending_flow.take() else {
            return;
        };
        let Some(p) = self.user.borrow().clone() else {
            return;
        };
        let r = call_protocol(&p, |g| {
            if pause {
                g.pause_writing();
            } else {
                g.resume_writing();
            }
        });
        match r {
            Ok(Some(())) => {}
            // Busy in a callback: `call_user` delivers it when that callback returns.
            Ok(None) => self.pending_flow.set(Some(pause)),
            Err(payload) => {
                report_panic(&self.lp, payload);
                if let Some(raw) = self.raw() {
                    raw.abort();
                }
            }
        }
    }

    fn flow(&self, pause: bool) {
        if !self.connected.get() {
            return;
        }
        self.pending_flow.set(Some(pause));
        self.deliver_flow();
        if self.pending_flow.get().is_some() {
            if let Some(me) = self.this.upgrade() {
                self.lp.call_soon(move || me.deliver_flow());
            }
        }
    }

    /// The raw connection is gone.
    fn raw_lost(&self, exc: Option<io::Error>) {
        if let Some(t) = self.timer.borrow_mut().take() {
            t.cancel();
        }
        let stored = self.error.borrow_mut().take();
        let err = stored.or(exc);
        if !self.handshake_done.get() {
            let e = err.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection closed during the TLS handshake",
                )
            });
            let peer = self
                .raw()
                .and_then(|r| r.peername())
                .and_then(|a| a.as_socket())
                .map_or_else(|| "peer".to_owned(), |a| a.to_string());
            match self.waiter.borrow_mut().take() {
                Some(w) if !w.done() && self.awaited => w.set_exception(e),
                _ => log::warn!("TLS connection with {peer}: {e}"),
            }
        } else if !self.lost.replace(true) && self.connected.get() {
            self.call_user(|p| p.connection_lost(err));
        }
        self.lost.set(true);
        drop(self.user.borrow_mut().take());
        drop(self.raw.borrow_mut().take());
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.0.start(transport, &[]);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.feed(data);
    }

    fn eof_received(&mut self) -> bool {
        if !self.0.close_notify_seen.get() && !self.0.closing.get() && self.0.handshake_done.get() {
            let mut e = self.0.error.borrow_mut();
            if e.is_none() {
                *e = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection without sending TLS close_notify",
                ));
            }
        }
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.raw_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.0.flow(true);
    }

    fn resume_writing(&mut self) {
        self.0.flow(false);
    }
}

impl TransportImpl for TlsLayer {
    fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.lost.get() || self.closing.get() {
            let n = self.dropped_writes.get() + 1;
            self.dropped_writes.set(n);
            if n == 5 {
                log::warn!("writes to a closed TLS transport are dropped");
            }
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
        if self.closing.replace(true) {
            return;
        }
        self.conn.borrow_mut().send_close_notify();
        self.flush();
        let Some(raw) = self.raw() else { return };
        if !self.handshake_done.get() || self.close_notify_seen.get() {
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
            .lp
            .call_later(self.opts.shutdown_timeout, move || r.abort());
        *self.timer.borrow_mut() = Some(t);
    }

    fn abort(&self) {
        self.closing.set(true);
        if let Some(raw) = self.raw() {
            raw.abort();
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.get() || self.lost.get() || self.raw().is_none_or(|r| r.is_closing())
    }

    fn pause_reading(&self) {
        if self.closing.get() || self.paused.replace(true) {
            return;
        }
        if let Some(r) = self.raw() {
            r.pause_reading();
        }
    }

    fn resume_reading(&self) {
        if self.closing.get() || !self.paused.replace(false) {
            return;
        }
        if let Some(r) = self.raw() {
            r.resume_reading();
        }
        if !self.pending_in.borrow().is_empty() {
            // Process what arrived before the pause, from the loop (we may be inside a
            // protocol callback here).
            if let Some(me) = self.this.upgrade() {
                self.lp.call_soon(move || {
                    if me.paused.get() {
                        return;
                    }
                    let data = std::mem::take(&mut *me.pending_in.borrow_mut());
                    me.feed(&data);
                });
            }
        }
    }

    fn is_reading(&self) -> bool {
        !self.paused.get() && self.raw().is_some_and(|r| r.is_reading())
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
            "sslcontext" => Some(ExtraInfo::TlsConfig(self.opts.config.clone())),
            _ => {
                drop(conn);
                self.raw()?.get_extra_info(name)
            }
        }
    }

    fn set_protocol(&self, p: ProtoRc) {
        *self.user.borrow_mut() = Some(p);
    }

    fn get_protocol(&self) -> Option<ProtoRc> {
        self.user.borrow().clone()
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

/// Upgrades an open connection to TLS (asyncio's `loop.start_tls`): the transport's
/// current protocol keeps receiving, now decrypted, through the returned TLS transport
/// (it gets no second `connection_made`). `already_received` is what was read off the
/// socket but belongs to the TLS handshake (a peer that did not wait); usually empty.
///
/// # Errors
/// The handshake's failure (an `InvalidData` error carrying a [`TlsError`]), or its
/// timeout (`TimedOut`).
pub async fn start_tls(
    transport: &Transport,
    options: TlsOptions,
    already_received: &[u8],
) -> io::Result<Transport> {
    let lp = crate::get_running_loop();
    let user = transport.inner.get_protocol().ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotConnected, "the transport has no protocol")
    })?;
    let default_name = transport
        .peername()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip().to_string());
    let (layer, waiter) = TlsLayer::new(&lp, options, default_name.as_deref(), user, false, true)?;
    let obj: ProtoRc = <TlsProtocol as crate::StreamProtocol<crate::kind::Stream>>::into_obj(
        TlsProtocol(layer.clone()),
    );
    transport.inner.set_protocol(obj);
    layer.start(transport, already_received);
    waiter.await?;
    Ok(layer.app_transport())
}

impl fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsLayer")
            .field("handshake_done", &self.handshake_done.get())
            .field("closing", &self.closing.get())
            .finish_non_exhaustive()
    }
}
