//! The `http_hello` connection: a `Protocol` that answers with `http.rs`'s parser. Shared by
//! the example and the network benchmark (`benches/net/http.rs`), so both run this code.

use tulip::{Protocol, Transport};

use super::http;

/// A connection's buffer grown past this by a large read is given back once it is empty.
const MAX_KEPT_CAPACITY: usize = 4 * http::MAX_HEAD;

/// One connection.
pub(crate) struct HttpHello {
    transport: Option<Transport>,
    /// The start of a request that a read cut short (empty on the fast path).
    partial: Vec<u8>,
    /// How much of `partial` was already searched for the end of the header block.
    scanned: usize,
    /// A response closed the connection: ignore whatever still arrives.
    closing: bool,
}

impl HttpHello {
    /// A connection before `connection_made`.
    pub(crate) fn new() -> HttpHello {
        HttpHello {
            transport: None,
            partial: Vec::new(),
            scanned: 0,
            closing: false,
        }
    }
}

impl Protocol for HttpHello {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = &self.transport else { return };
        if self.closing {
            return;
        }
        let respond = |response: &'static [u8]| t.write(response);
        if self.partial.is_empty() {
            // Fast path: parse right in the read buffer.
            match http::answer(data, &mut self.scanned, respond) {
                Some(used) => self.partial.extend_from_slice(&data[used..]),
                None => {
                    self.closing = true;
                    t.close();
                }
            }
        } else {
            // A request was split: complete it in the connection's buffer.
            self.partial.extend_from_slice(data);
            match http::answer(&self.partial, &mut self.scanned, respond) {
                Some(used) => {
                    self.partial.drain(..used);
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

    fn pause_writing(&mut self) {
        // The client does not read its responses: stop reading its requests.
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}
