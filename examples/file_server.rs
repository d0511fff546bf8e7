//! Serves one file to every connection with zero-copy `sendfile(2)` (`tulip::sendfile`),
//! then closes it: the page cache goes straight to the socket, the file's bytes never pass
//! through user space.
//!
//! ```sh
//! cargo run --release --example file_server -- 127.0.0.1:8000 big.iso
//! nc 127.0.0.1 8000 | sha256sum
//! ```
//! Prints `listening on IP:PORT` once it listens (port 0 picks a free port); the address
//! may be left out (`127.0.0.1:8000`).

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;

use tulip::{Protocol, Transport};

/// Sends the file as soon as the connection is made, then closes it; ignores what the
/// client sends.
struct FileSender {
    file: Rc<File>,
}

impl Protocol for FileSender {
    fn connection_made(&mut self, transport: &Transport) {
        let (t, file) = (transport.clone(), self.file.clone());
        tulip::spawn(async move {
            // Zero-copy on a TCP transport; `fallback` copies where it cannot be (a pipe).
            if let Err(e) = tulip::sendfile(&t, &file, 0, None, true).await {
                eprintln!("file_server: sendfile to {:?} failed: {e}", t.peername());
            }
            t.close();
        })
        .detach();
    }
}

fn usage() -> ! {
    eprintln!("usage: file_server [ADDR] FILE");
    std::process::exit(2)
}

#[tulip::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, path) = match &args[..] {
        [path] => ("127.0.0.1:8000", path),
        [addr, path] => (addr.as_str(), path),
        _ => usage(),
    };
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| {
        eprintln!("file_server: bad address {addr:?}: {e}");
        usage()
    });
    let file = match File::open(path) {
        Ok(f) => Rc::new(f),
        Err(e) => {
            eprintln!("file_server: cannot open {path:?}: {e}");
            std::process::exit(1);
        }
    };
    let server = tulip::create_server(
        move || FileSender { file: file.clone() },
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    )
    .await?;
    let local = server.local_addr().expect("a TCP listener");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {local}")?;
    out.flush()?;
    drop(out);
    server.serve_forever().await
}
