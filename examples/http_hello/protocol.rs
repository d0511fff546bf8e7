//! The `http_hello` connection: a `Protocol` that answers with `http.rs`'s parser. Shared by
//! the example and the network benchmark (`benches/net/http.rs`), so both run this code.
//!
//! Flow control: past the transport's high-water mark it stops answering, in the middle of
//! a read if need be, keeps the requests not answered yet, and answers them at
//! `resume_writing` — so a client that pipelines requests and never reads the responses
//! makes the server queue about the high-water mark, not many times what it read.

use tulip::{Protocol, Transport};

use super::http;

/// A connection's buffer grown past this by a large read is given back once it is empty.
const MAX_KEPT_CAPACITY: usize = 4 * http::MAX_HEAD;

/// One connection.
pub(crate) struct HttpHello {
    transport: Option<Transport>,
    /// The transport's high-water mark: past it, no more requests are answered until
    /// `resume_writing`.
    high: usize,
    /// The start of a request that a read cut short, or the requests not answered yet
    /// because the client does not read (empty on the fast path).
    partial: Vec<u8>,
    /// How much of `partial` was already searched for the end of the header block.
    scanned: usize,
    /// A response closed the connection: ignore whatever still arrives.
    closing: bool,
    /// The loop is in debug mode (`TULIP_DEBUG=1`): say how much is queued at each
    /// `pause_writing` (the example tests check it stays near the high-water mark).
    debug: bool,
}

impl HttpHello {
    /// A connection before `connection_made`.
    pub(crate) fn new() -> HttpHello {
        HttpHello {
            transport: None,
            high: usize::MAX,
            partial: Vec::new(),
            scanned: 0,
            closing: false,
            debug: false,
        }
    }

    /// Answers the requests in `partial` (the transport is `t`).
    fn answer_partial(&mut self, t: &Transport) {
        let high = self.high;
        let respond = |response: &'static [u8]| {
            t.write(response);
            t.get_write_buffer_size() <= high
        };
        match http::answer_while(&self.partial, &mut self.scanned, respond) {
            Some(used) => {
                self.partial.drain(..used);
                if !self.partial.is_empty() && t.get_write_buffer_size() > high {
                    t.pause_reading();
                }
            }
            None => {
                self.closing = true;
                self.partial.clear();
                t.close();
            }
        }
        if self.partial.is_empty() && self.partial.capacity() > MAX_KEPT_CAPACITY {
            self.partial = Vec::new();
        }
    }
}

impl Protocol for HttpHello {
    fn connection_made(&mut self, transport: &Transport) {
        self.high = transport.get_write_buffer_limits().1;
        self.debug = tulip::get_running_loop().get_debug();
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = &self.transport else { return };
        if self.closing {
            return;
        }
        if !self.partial.is_empty() || t.get_write_buffer_size() > self.high {
            // A request was split, or answers wait for the client to read: queue behind.
            self.partial.extend_from_slice(data);
            if t.get_write_buffer_size() <= self.high {
                let t = t.clone();
                self.answer_partial(&t);
            } else {
                t.pause_reading();
            }
            return;
        }
        // Fast path: parse right in the read buffer. Past the high-water mark, stop
        // answering (the transport calls `pause_writing` when this callback returns) and
        // keep the rest for `resume_writing`: one read of pipelined requests could otherwise
        // queue many times its size in responses.
        let high = self.high;
        let respond = |response: &'static [u8]| {
            t.write(response);
            t.get_write_buffer_size() <= high
        };
        match http::answer_while(data, &mut self.scanned, respond) {
            Some(used) if used < data.len() => {
                self.partial.extend_from_slice(&data[used..]);
                if t.get_write_buffer_size() > high {
                    // Stopped for the client: read no more until `resume_writing`.
                    t.pause_reading();
                }
            }
            Some(_) => {}
            None => {
                self.closing = true;
                t.close();
            }
        }
    }

    fn pause_writing(&mut self) {
        // The client does not read its responses: stop reading its requests.
        if let Some(t) = &self.transport {
            if self.debug {
                let queued = t.get_write_buffer_size();
                eprintln!("http_hello: pause_writing with {queued} bytes queued");
            }
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        if self.closing {
            return;
        }
        // Answer what was kept, then read again (unless that filled the buffer again:
        // then `pause_writing` follows this callback and reading stays paused).
        if !self.partial.is_empty() {
            self.answer_partial(&t);
        }
        if t.get_write_buffer_size() <= self.high {
            t.resume_reading();
        }
    }
}
