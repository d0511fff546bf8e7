//! What the stream tests share: a stream connected to a socket or a thread peer, waiting
//! for a condition, and error checks.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tulip::{IncompleteRead, LimitOverrun, StreamReader, StreamWriter, net::ConnectOptions};

pub(crate) const KIB: usize = 1024;
pub(crate) const MIB: usize = 1024 * 1024;
pub(crate) const SEP: &[u8] = b"\r\n\r\n";

/// A stream pair (with buffer `limit`) connected to a non-blocking std socket: the peer,
/// which the test drives with `tulip::sock_*` on the same loop.
pub(crate) async fn sock_peer(limit: usize) -> io::Result<(StreamReader, StreamWriter, TcpStream)> {
    let (l, addr) = crate::support::listener();
    let (r, w) =
        tulip::open_connection("127.0.0.1", addr.port(), ConnectOptions::new().limit(limit))
            .await?;
    let (peer, _) = tulip::sock_accept(&l).await?;
    peer.set_nodelay(true)?;
    Ok((r, w, peer))
}

/// A listener whose one connection is handed, blocking, to a std thread running `f`.
/// Returns the port to connect to and the thread.
pub(crate) fn thread_peer<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (u16, JoinHandle<T>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        f(s)
    });
    (port, h)
}

/// Waits (at most `secs`) until `pred` holds, checking every millisecond.
pub(crate) async fn wait_until(secs: f64, what: &str, mut pred: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while !pred() {
        assert!(
            Instant::now() < until,
            "timed out after {secs} s waiting for {what}"
        );
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) fn assert_incomplete(e: &io::Error, partial: &[u8], expected: Option<usize>) {
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let inc = IncompleteRead::from_io(e).unwrap_or_else(|| panic!("no IncompleteRead in {e:?}"));
    assert_eq!(inc.partial, partial, "partial bytes");
    assert_eq!(inc.expected, expected);
}

pub(crate) fn overrun(e: &io::Error) -> &LimitOverrun {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    LimitOverrun::from_io(e).unwrap_or_else(|| panic!("no LimitOverrun in {e:?}"))
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
