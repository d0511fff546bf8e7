//! The raw transport's protocol (asyncio's `SSLProtocol`): it drives the
//! `rustls::Connection` — handshake, records in, records out, `close_notify` — and hands the
//! plaintext to the user's protocol through the TLS transport's core.

use std::io::{self, BufRead};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::state::{AppState, TlsState, set_app, set_tls};
use super::tls_io_error;
use super::transport::TlsTransport;
use crate::protocols::Protocol;
use crate::transports::core::Core;
use crate::transports::{Transport, TransportImpl};

/// Whether the "`eof_received` returned true" warning was logged in this process.
static KEEP_OPEN_WARNED: AtomicBool = AtomicBool::new(false);

/// The raw transport's protocol: the TLS transport seen from below.
pub(crate) struct TlsProtocol(pub(crate) Rc<TlsTransport>);

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.0.start(transport, &[]);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.feed(data);
    }

    fn eof_received(&mut self) -> bool {
        self.0.raw_eof();
        // The raw transport closes itself (after sending what it holds).
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

impl TlsTransport {
    /// The raw transport is there: start the handshake and its timer.
    pub(crate) fn start(&self, raw: &Transport, already_received: &[u8]) {
        *self.raw.borrow_mut() = Some(raw.clone());
        set_tls(&self.state, TlsState::DoHandshake);
        if let Some(me) = self.core.this() {
            let h = self
                .core
                .lp
                .call_later(self.opts.handshake_timeout, move || {
                    if me.state.get() == TlsState::DoHandshake {
                        me.fail_with(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        ));
                    }
                });
            let old = self.timer.replace(Some(h));
            if let Some(old) = old {
                old.cancel();
            }
        }
        self.flush();
        if !already_received.is_empty() {
            self.feed(already_received);
        }
    }

    /// Fails the connection: the error goes to `connection_lost` (or to whoever waits for
    /// the handshake), pending alerts are sent, the raw transport closed.
    fn fail_with(&self, err: io::Error) {
        {
            let mut e = self.error.borrow_mut();
            if e.is_none() {
                *e = Some(err);
            }
        }
        self.flush();
        if let Some(raw) = self.raw() {
            raw.close();
        }
    }

    /// TLS records from the peer; what the user writes meanwhile goes out in one flush.
    pub(super) fn feed(&self, data: &[u8]) {
        let outer = !self.batching.replace(true);
        self.feed_records(data);
        if outer {
            self.batching.set(false);
            self.flush();
        }
    }

    /// Decrypts into `plain` with the connection borrowed; nothing else runs meanwhile.
    /// Returns whether the handshake is over.
    fn process(&self, rd: &mut &[u8]) -> io::Result<bool> {
        let mut conn = self.conn.borrow_mut();
        if !rd.is_empty() {
            conn.read_tls(rd)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS read failed: {e}")))?;
        }
        let state = conn.process_new_packets().map_err(|e| {
            let context = if conn.is_handshaking() {
                "TLS handshake failed"
            } else {
                "TLS error"
            };
            tls_io_error(context, e)
        })?;
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

    fn feed_records(&self, data: &[u8]) {
        let mut rd = data;
        loop {
            // No flush here: `feed` flushes once at its end, so records (handshake replies
            // and what the protocol writes back) leave in one raw write.
            match self.process(&mut rd) {
                Err(e) => {
                    self.fail_with(e);
                    return;
                }
                Ok(done) => {
                    if done && self.state.get() == TlsState::DoHandshake {
                        self.on_handshake_done();
                    }
                }
            }
            if !self.deliver_plaintext() {
                return;
            }
            if rd.is_empty() || self.core.is_lost() {
                break;
            }
            if self.read_paused.get() {
                // The protocol paused reading: keep the rest for `resume_reading`.
                self.pending_in.borrow_mut().extend_from_slice(rd);
                return;
            }
        }
        if !self.close_notify_seen.get() {
            return;
        }
        if self.core.is_closing() {
            // Our close_notify went out earlier; the peer's answer completes the shutdown.
            if let Some(raw) = self.raw() {
                raw.close();
            }
        } else if self.app.get() == AppState::ConMade {
            // The peer's close_notify: EOF for the user's protocol, and our close_notify.
            self.call_eof_received();
            TransportImpl::close(self);
        }
    }

    /// The user's protocol hears EOF (asyncio's `_call_eof_received`). TLS has no
    /// half-close, so the connection closes whatever `eof_received` answers; a `true` is
    /// logged, once per process, as asyncio warns.
    fn call_eof_received(&self) {
        set_app(&self.app, AppState::Eof);
        let keep_open = self.core.call(|p| p.eof_received()).unwrap_or(false);
        if keep_open && !KEEP_OPEN_WARNED.swap(true, Ordering::Relaxed) {
            log::warn!("returning true from eof_received() has no effect when using TLS");
        }
    }

    /// The raw transport read the end of TCP.
    fn raw_eof(&self) {
        if self.close_notify_seen.get() || self.core.is_closing() || !self.handshake_done() {
            // An EOF already delivered; the end of our own shutdown; or a handshake cut
            // short (its error comes from `raw_lost`).
            return;
        }
        if self.opts.require_close_notify {
            let mut e = self.error.borrow_mut();
            if e.is_none() {
                *e = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection without sending TLS close_notify",
                ));
            }
            return;
        }
        // A close without close_notify is an EOF (Python's `suppress_ragged_eofs`). Every
        // record read before it has been decrypted and delivered (or is kept in
        // `pending_in`, but then reading is paused and the raw EOF cannot be seen yet).
        if self.app.get() == AppState::ConMade {
            self.call_eof_received();
        }
        if self.core.begin_closing() {
            // The peer may still read: end our side cleanly too.
            if self.state.get() == TlsState::Wrapped {
                set_tls(&self.state, TlsState::Flushing);
                set_tls(&self.state, TlsState::Shutdown);
            }
            self.conn.borrow_mut().send_close_notify();
            self.flush();
        }
    }

    fn on_handshake_done(&self) {
        set_tls(&self.state, TlsState::Wrapped);
        let t = self.timer.take();
        if let Some(t) = t {
            t.cancel();
        }
        set_app(&self.app, AppState::ConMade);
        if self.call_connection_made {
            if let Some(me) = self.core.this() {
                self.core.connection_made(&me.handle());
            }
        } else {
            self.core.set_connected();
        }
        let w = self.waiter.take();
        if let Some(w) = w {
            if !w.done() {
                w.set_result(());
            }
        }
    }

    /// Hands the decrypted bytes to the user's protocol; `false` if it failed on them (a
    /// `BufferedProtocol`'s empty buffer), which fails the connection.
    fn deliver_plaintext(&self) -> bool {
        if self.plain.borrow().is_empty() || !self.core.is_connected() {
            return true;
        }
        if self.core.is_closing() || !self.app.get().receives() {
            // Data that arrives after close() is discarded, as asyncio does.
            self.plain.borrow_mut().clear();
            return true;
        }
        let data = self.plain.take();
        if let Some(Err(e)) = self.core.call(|p| p.feed(&data)) {
            self.fail_with(e);
            return false;
        }
        let mut plain = self.plain.borrow_mut();
        if plain.is_empty() {
            let mut data = data;
            data.clear();
            *plain = data;
        }
        true
    }

    /// The raw transport paused or resumed writing: so does the TLS transport.
    fn flow(&self, pause: bool) {
        if self.core.is_connected() && self.core.flow.force(pause) {
            self.core.deliver_flow();
        }
    }

    /// The raw connection is gone.
    fn raw_lost(&self, exc: Option<io::Error>) {
        let t = self.timer.take();
        if let Some(t) = t {
            t.cancel();
        }
        let stored = self.error.take();
        let err = stored.or(exc);
        if self.handshake_done() {
            if matches!(self.app.get(), AppState::ConMade | AppState::Eof) {
                set_app(&self.app, AppState::ConLost);
            }
            Core::finish(self, err);
            return;
        }
        let e = err.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection closed during the TLS handshake",
            )
        });
        let w = self.waiter.take();
        match w {
            Some(w) if !w.done() && self.awaited => w.set_exception(e),
            _ => {
                let peer = self
                    .raw()
                    .and_then(|r| r.peername())
                    .and_then(|a| a.as_socket())
                    .map_or_else(|| "peer".to_owned(), |a| a.to_string());
                crate::event_loop::warn_or_stderr!("TLS connection with {peer}: {e}");
            }
        }
        Core::finish(self, None);
    }
}
