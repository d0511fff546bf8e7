//! A stream over TLS reaching EOF (the peer's `close_notify`, or TCP closed without one) is a
//! plain end of stream: the stream protocol answers `eof_received` with `false` over TLS, as
//! asyncio's `StreamReaderProtocol` does (`_over_ssl`), so the TLS layer's "returning true
//! has no effect" warning never fires for streams. Its own process, so that no other test's
//! protocol can have logged that once-per-process warning first.

mod support;
mod tls_support;

use std::io::{self, Read, Write};
use std::net::Shutdown;

use tls_support::*;
use tulip::{net::ServerOptions, tls::TlsOptions};

#[tulip::test]
async fn a_tls_stream_at_eof_logs_no_keep_open_warning() {
    let _w = support::watchdog("tls_stream_eof", 10);
    capture_logs();
    let pki = Pki::new();
    let got = std::rc::Rc::new(std::cell::RefCell::new(None));
    let g = got.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let g = g.clone();
            async move {
                let data = r.read_to_eof().await?;
                *g.borrow_mut() = Some(data);
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<()> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"hello over tls")?;
        s.flush()?;
        // No close_notify: TCP's FIN alone ends the stream.
        s.sock.shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        let _ = s.sock.read_to_end(&mut rest);
        Ok(())
    });
    let t0 = std::time::Instant::now();
    while got.borrow().is_none() && t0.elapsed().as_secs() < 5 {
        tulip::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(got.borrow().as_deref(), Some(&b"hello over tls"[..]));
    h.join().unwrap().unwrap();
    assert_eq!(
        logs_with("has no effect when using TLS"),
        Vec::<String>::new(),
        "the stream protocol must not ask to keep a TLS connection half-open"
    );
    server.close();
}
