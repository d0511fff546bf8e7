//! The asyncio docs' "Connecting Existing Sockets" example: a protocol run on a socket that
//! was connected elsewhere, with `connect_accepted_socket`.
//!
//! A `UnixStream::pair()` stands in for the network. One end goes to
//! `tulip::connect_accepted_socket`, which makes a transport for it and runs `MyProtocol` on
//! it; a `call_soon` callback writes to the other end with plain std I/O, "simulating the
//! reception of data from the network". The protocol prints what it receives and closes
//! the transport; `connection_lost` then completes the `on_con_lost` future that `main`
//! awaits. Finally the writing end reads EOF: the transport closed its socket.
//!
//! ```sh
//! cargo run --release --example existing_socket
//! ```
//!
//! It needs no arguments and exits with status 0 (1 if anything fails).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use tulip::{LoopFuture, Protocol, Transport};

/// Prints the first data that arrives, then closes.
struct MyProtocol {
    transport: Option<Transport>,
    on_con_lost: LoopFuture<()>,
}

impl Protocol for MyProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Received: {}", String::from_utf8_lossy(data));
        // We are done: close the transport; connection_lost follows by itself.
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        // The socket has been closed.
        match exc {
            None => self.on_con_lost.set_result(()),
            Some(e) => self.on_con_lost.set_exception(e),
        }
    }
}

#[tulip::main]
async fn main() -> io::Result<()> {
    // Get a reference to the event loop: we use its low-level API.
    let lp = tulip::get_running_loop();
    let on_con_lost = lp.create_future::<()>();

    // A pair of connected sockets.
    let (rsock, wsock) = UnixStream::pair()?;

    // Run the protocol on one end; the transport owns it from now on.
    let (transport, _protocol) = tulip::connect_accepted_socket(
        || MyProtocol {
            transport: None,
            on_con_lost: on_con_lost.clone(),
        },
        rsock,
        Default::default(),
    )
    .await?;

    // Simulate the reception of data from the network: a callback writes to the other end.
    let wsock = Rc::new(wsock);
    let writer = wsock.clone();
    lp.call_soon(move || {
        if let Err(e) = (&*writer).write_all(b"abc") {
            eprintln!("existing_socket: write failed: {e}");
        }
    });

    let lost = on_con_lost.await;
    transport.close(); // a no-op here: the protocol closed it already
    lost?;

    // The transport closed its end, so the other end reads EOF (the timeout only guards
    // against a bug: this read is blocking, and runs on the loop's thread).
    wsock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut rest = Vec::new();
    (&*wsock).read_to_end(&mut rest)?;
    println!("The other end reads EOF: the transport closed its socket");
    Ok(())
}
