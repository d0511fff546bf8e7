//! Streams with the futures-io ecosystem and under cancellation: `asynchronous-codec`'s
//! `FramedWrite` closes cleanly (flush after a clean close is Ok, futures-io's contract), a
//! connection lost with an error still reports it, and `read_to_eof` cancelled mid-way
//! keeps every byte it had read for the next read; a cancelled `pause_reading_until` task
//! resumes reading.

mod proto_support;
mod support;

use std::io;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use asynchronous_codec::{FramedWrite, LinesCodec};
use futures_util::SinkExt;
use futures_util::io::AsyncWriteExt;
use proto_support::{read_to_end, set_rst_on_close};
use tulip::{StreamReader, StreamWriter};

/// A stream pair connected to a non-blocking std socket on the same loop.
async fn sock_peer() -> io::Result<(StreamReader, StreamWriter, TcpStream)> {
    let (l, addr) = support::listener();
    let (r, w) = tulip::open_connection("127.0.0.1", addr.port(), Default::default()).await?;
    let (peer, _) = tulip::sock_accept(&l).await?;
    peer.set_nodelay(true)?;
    Ok((r, w, peer))
}

#[tulip::test]
async fn framed_write_close_is_ok_and_the_peer_gets_every_line() -> io::Result<()> {
    let _wd = support::watchdog("framed_write_close", 20);
    let (_r, w, peer) = sock_peer().await?;
    let mut framed = FramedWrite::new(w, LinesCodec);
    let mut want = Vec::new();
    for i in 0..500 {
        let line = format!("line {i} {}\n", "x".repeat(i % 97));
        want.extend_from_slice(line.as_bytes());
        framed.send(line).await.map_err(io::Error::other)?;
    }
    // Flushes, then closes the writer and waits for the connection to be closed: before
    // the fix the flush after the close failed with ConnectionReset "Connection lost".
    framed.close().await.map_err(io::Error::other)?;
    let (got, err) = read_to_end(&peer, 10.0).await;
    assert_eq!(err, None);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the peer got other bytes");
    Ok(())
}

#[tulip::test]
async fn flush_and_close_after_a_clean_close_are_ok() -> io::Result<()> {
    let _wd = support::watchdog("flush_after_close", 20);
    let (_r, mut w, peer) = sock_peer().await?;
    AsyncWriteExt::write_all(&mut w, b"hello").await?;
    AsyncWriteExt::close(&mut w).await?;
    // Already closed: flushing and closing again are not connection errors.
    AsyncWriteExt::flush(&mut w).await?;
    AsyncWriteExt::close(&mut w).await?;
    w.wait_closed().await?;
    // Writing is: the bytes could not go anywhere.
    let e = AsyncWriteExt::write(&mut w, b"late").await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    // asyncio's `drain` keeps raising after the connection is lost.
    let e = w.drain().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    let (got, err) = read_to_end(&peer, 10.0).await;
    assert_eq!((got.as_slice(), err), (&b"hello"[..], None));
    Ok(())
}

#[tulip::test]
async fn flush_after_a_reset_reports_the_error() -> io::Result<()> {
    let _wd = support::watchdog("flush_after_reset", 20);
    let (_r, mut w, peer) = sock_peer().await?;
    set_rst_on_close(&peer);
    drop(peer);
    // Write until the reset is seen: the connection is lost with an error.
    let mut lost = None;
    for _ in 0..1000 {
        match AsyncWriteExt::write_all(&mut w, &[7u8; 1024]).await {
            Ok(()) => tulip::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                lost = Some(e);
                break;
            }
        }
    }
    let lost = lost.expect("the reset was never seen");
    w.wait_closed().await.unwrap_err();
    for e in [
        AsyncWriteExt::flush(&mut w).await.unwrap_err(),
        AsyncWriteExt::close(&mut w).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), lost.kind(), "{e}");
    }
    Ok(())
}

#[tulip::test]
async fn read_to_eof_cancelled_keeps_what_it_had_read() -> io::Result<()> {
    let _wd = support::watchdog("read_to_eof_cancel", 20);
    let (mut r, _w, peer) = sock_peer().await?;
    tulip::sock_sendall(&peer, b"first ").await?;
    // The timeout fires while read_to_eof holds "first " and waits for more.
    let e = tulip::timeout(Duration::from_millis(50), r.read_to_eof()).await;
    assert!(e.is_err(), "read_to_eof ended before EOF: {e:?}");
    tulip::sock_sendall(&peer, b"second ").await?;
    let e = tulip::timeout(Duration::from_millis(50), r.read_to_eof()).await;
    assert!(e.is_err(), "read_to_eof ended before EOF: {e:?}");
    // A plain read gets the start again.
    assert_eq!(r.read(3).await?, b"fir");
    tulip::sock_sendall(&peer, b"third").await?;
    peer.shutdown(Shutdown::Write)?;
    assert_eq!(r.read_to_eof().await?, b"st second third");
    assert!(r.at_eof());
    Ok(())
}

#[tulip::test]
async fn pause_reading_until_cancelled_resumes_reading() -> io::Result<()> {
    let _wd = support::watchdog("pause_reading_until_cancel", 20);
    let (mut r, w, peer) = sock_peer().await?;
    let t = w.transport().clone();
    let task = t.pause_reading_until(std::future::pending::<()>());
    assert!(!t.is_reading());
    // Cancelled: the future is dropped where it waits, and reading resumes.
    assert_eq!(task.cancel().await, None);
    assert!(t.is_reading(), "the connection stayed paused");
    tulip::sock_sendall(&peer, b"after").await?;
    assert_eq!(r.readexactly(5).await?, b"after");
    Ok(())
}

#[tulip::test]
async fn bytes_received_before_a_reset_are_read_before_the_error() -> io::Result<()> {
    let _wd = support::watchdog("bytes_before_reset", 20);
    let (mut r, w, peer) = sock_peer().await?;
    tulip::sock_sendall(&peer, b"last words").await?;
    set_rst_on_close(&peer);
    drop(peer);
    // The reset is seen when the loop reads after the data; wait for the connection loss.
    let e = w.wait_closed().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    assert_eq!(r.read(4).await?, b"last");
    assert_eq!(r.readexactly(6).await?, b" words");
    // Then the error, on every read.
    for _ in 0..2 {
        let e = r.read(100).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }
    Ok(())
}
