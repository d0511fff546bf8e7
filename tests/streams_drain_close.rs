//! Streams against asyncio's semantics, part 2: `drain` (waiting, returning at once, errors
//! after a reset), the `futures-io` impls (32 MiB through `futures_util::io::copy`,
//! `AsyncBufRead` lines), `close` / `wait_closed`, `at_eof`, `read(n)`, `read_to_eof`, and Unix
//! sockets. The readers and the limit are in `streams.rs`.

mod proto_support;
mod stream_support;
mod support;

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, copy, copy_buf};
use proto_support::{ByteStream, Checksum, capture_exceptions, set_rst_on_close};
use tulip::{StreamReader, StreamWriter, streams::DEFAULT_LIMIT};

use stream_support::*;

// ---- 5. drain ------------------------------------------------------------------------------

#[tulip::test]
async fn drain_waits_while_the_peer_does_not_read() -> io::Result<()> {
    let _w = support::watchdog("drain_waits_while_the_peer_does_not_read", 10);
    let lp = tulip::get_running_loop();
    let go = lp.create_future::<()>();
    let total = lp.create_future::<(u64, u64)>();
    let (g, t) = (go.clone(), total.clone());
    let server = tulip::start_server(
        move |mut r: StreamReader, w: StreamWriter| {
            let (go, total) = (g.clone(), t.clone());
            async move {
                go.await?;
                let mut sum = Checksum::default();
                loop {
                    let d = r.read(256 * KIB).await?;
                    if d.is_empty() {
                        break;
                    }
                    sum.update(&d);
                }
                total.set_result(sum.finish());
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let (_r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    // Not paused: drain is ready at the first poll.
    w.write(b"small");
    assert!(matches!(w.drain().now_or_never(), Some(Ok(()))));
    let mut sum = Checksum::default();
    sum.update(b"small");
    let mut bs = ByteStream::new(77);
    let mut chunk = vec![0u8; 256 * KIB];
    let mut rounds = 0;
    loop {
        bs.fill(&mut chunk);
        w.write(&chunk);
        sum.update(&chunk);
        rounds += 1;
        match tulip::timeout(ms(100), w.drain()).await {
            Ok(r) => r?,
            Err(_) => break,
        }
        assert!(rounds < 400, "drain never waited after {rounds} x 256 KiB");
    }
    let (_, high) = w.transport().get_write_buffer_limits();
    assert!(w.transport().get_write_buffer_size() > high);
    // Still waiting a moment later.
    assert!(tulip::timeout(ms(30), w.drain()).await.is_err());
    // The peer reads: drain completes.
    go.set_result(());
    tulip::timeout(Duration::from_secs(5), w.drain())
        .await
        .expect("drain did not complete once the peer read")?;
    w.write_eof();
    let got = tulip::timeout(Duration::from_secs(5), total)
        .await
        .expect("server did not finish")?;
    assert_eq!(got, sum.finish());
    eprintln!("drain waited after {rounds} x 256 KiB");
    server.close();
    Ok(())
}

#[tulip::test]
async fn drain_pending_when_the_peer_resets_returns_an_error() -> io::Result<()> {
    let _w = support::watchdog("drain_pending_when_the_peer_resets_returns_an_error", 10);
    let (mut r, w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    let chunk = vec![7u8; 256 * KIB];
    let (_, high) = w.transport().get_write_buffer_limits();
    let mut n = 0;
    while w.transport().get_write_buffer_size() <= high {
        w.write(&chunk);
        n += 1;
        assert!(n < 400, "the write buffer never filled");
    }
    let w2 = w.clone();
    let drain = tulip::spawn(async move { w2.drain().await });
    tulip::sleep(ms(30)).await;
    assert!(!drain.is_finished(), "drain returned while paused");
    set_rst_on_close(&peer);
    drop(peer);
    let e = tulip::timeout(Duration::from_secs(5), drain)
        .await
        .expect("drain still pending after the reset")
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    // Every later operation reports the connection's error.
    assert_eq!(w.drain().await.unwrap_err().kind(), e.kind());
    assert_eq!(w.wait_closed().await.unwrap_err().kind(), e.kind());
    assert_eq!(r.read(10).await.unwrap_err().kind(), e.kind());
    Ok(())
}

/// asyncio's `drain`: "if self._transport.is_closing(): await sleep(0)" — "Without this,
/// _drain_helper() would return immediately, and code that calls write(...); await drain()
/// in a loop would never call connection_lost(), so it would not see an error when the
/// socket is closed." Here the send fails (the peer reset) and `connection_lost` is only
/// scheduled: `drain` must yield once so that the loop sees the error (it spun before that fix).
// CPython: test_streams.py StreamTests.test_drain_raises
#[tulip::test]
async fn write_drain_loop_sees_the_reset() -> io::Result<()> {
    let _w = support::watchdog("write_drain_loop_sees_the_reset", 10);
    let (_r, w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    // Only the send path may notice the reset.
    w.transport().pause_reading();
    set_rst_on_close(&peer);
    drop(peer);
    tulip::sleep(ms(50)).await;
    let mut err = None;
    for i in 0..1000 {
        w.write(b"data");
        if let Err(e) = w.drain().await {
            err = Some((i, e));
            break;
        }
    }
    assert!(
        w.transport().is_closing(),
        "premise: a send failed and the transport is closing"
    );
    let (i, e) = err.expect("1000 rounds of write + drain on a reset connection, no error");
    assert!(i <= 2, "the error came only after {i} rounds");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    Ok(())
}

/// asyncio: after `close()`, `drain` yields (`connection_lost` runs) and raises
/// `ConnectionResetError('Connection lost')`.
#[tulip::test]
async fn drain_after_close_reports_connection_lost() -> io::Result<()> {
    let _w = support::watchdog("drain_after_close_reports_connection_lost", 10);
    let (_r, w, _peer) = sock_peer(DEFAULT_LIMIT).await?;
    w.write(b"bye");
    w.close();
    let e = w.drain().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    Ok(())
}

// ---- 6. futures-io -------------------------------------------------------------------------

/// 32 MiB: client → proxy (a start_server task running `futures_util::io::copy` from its
/// reader to a stream opened to the sink) → sink (checksums with `AsyncReadExt::read`) →
/// the checksum line back through the proxy (`copy_buf`) → `AsyncBufReadExt::read_line`.
#[tulip::test]
async fn futures_io_copy_32mib_through_a_proxy_with_checksums() -> io::Result<()> {
    let _w = support::watchdog("futures_io_copy_32mib_through_a_proxy_with_checksums", 30);
    const TOTAL: usize = 32 * MIB;
    let sink = tulip::start_server(
        |mut r: StreamReader, mut w: StreamWriter| async move {
            let mut sum = Checksum::default();
            let mut buf = vec![0u8; 64 * KIB];
            loop {
                let n = AsyncReadExt::read(&mut r, &mut buf).await?;
                if n == 0 {
                    break;
                }
                sum.update(&buf[..n]);
            }
            let (h, len) = sum.finish();
            w.write_all(format!("{len} {h:016x}\n").as_bytes()).await?;
            w.flush().await?;
            AsyncWriteExt::close(&mut w).await
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let sink_port = sink.local_addr().unwrap().port();
    let proxy = tulip::start_server(
        move |mut cr: StreamReader, mut cw: StreamWriter| async move {
            let (sr, mut sw) =
                tulip::open_connection("127.0.0.1", sink_port, Default::default()).await?;
            let n = copy(&mut cr, &mut sw).await?;
            if n != TOTAL as u64 {
                return Err(io::Error::other(format!("proxy copied {n} bytes")));
            }
            sw.write_eof();
            copy_buf(sr, &mut cw).await?;
            AsyncWriteExt::close(&mut cw).await
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = proxy.local_addr().unwrap().port();
    let (mut r, mut w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    let t0 = Instant::now();
    let writer = tulip::spawn(async move {
        let mut bs = ByteStream::new(0x5eed);
        let mut sum = Checksum::default();
        let mut chunk = vec![0u8; 256 * KIB];
        for _ in 0..TOTAL / chunk.len() {
            bs.fill(&mut chunk);
            sum.update(&chunk);
            w.write_all(&chunk).await?;
        }
        w.flush().await?;
        w.write_eof();
        io::Result::Ok((sum.finish(), w))
    });
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let ((h, len), _w) = writer.await?;
    assert_eq!(line, format!("{len} {h:016x}\n"));
    assert_eq!(len, TOTAL as u64);
    line.clear();
    assert_eq!(r.read_line(&mut line).await?, 0, "EOF after the answer");
    assert!(r.at_eof());
    eprintln!("32 MiB through the proxy in {:?}", t0.elapsed());
    proxy.close();
    sink.close();
    Ok(())
}

#[tulip::test]
async fn async_buf_read_lines_read_line_and_read_until() -> io::Result<()> {
    let _w = support::watchdog("async_buf_read_lines_read_line_and_read_until", 10);
    let (mut r, _w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    let sender = tulip::spawn(async move {
        for piece in [
            &b"fir"[..],
            b"st\nkey=val",
            b"ue;alpha\nbe",
            b"ta\r\n",
            b"gamma",
        ] {
            tulip::sock_sendall(&peer, piece).await?;
            tulip::sleep(ms(5)).await;
        }
        peer.shutdown(Shutdown::Write)?;
        io::Result::Ok(peer)
    });
    let mut s = String::new();
    assert_eq!(r.read_line(&mut s).await?, 6);
    assert_eq!(s, "first\n");
    let mut v = Vec::new();
    r.read_until(b';', &mut v).await?;
    assert_eq!(v, b"key=value;");
    let lines: Vec<String> = (&mut r).lines().map(|l| l.expect("line")).collect().await;
    assert_eq!(lines, ["alpha", "beta", "gamma"]);
    assert!(r.at_eof());
    // AsyncRead at EOF: 0.
    let mut buf = [0u8; 8];
    assert_eq!(AsyncReadExt::read(&mut r, &mut buf).await?, 0);
    drop(sender.await?);
    Ok(())
}

// ---- 7. close, wait_closed, at_eof, read(n), read_to_eof -----------------------------------

// CPython: test_streams.py StreamTests.test_wait_closed_on_close
#[tulip::test]
async fn close_then_wait_closed() -> io::Result<()> {
    let _w = support::watchdog("close_then_wait_closed", 10);
    let (mut r, w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    assert!(
        tulip::timeout(ms(30), w.wait_closed()).await.is_err(),
        "wait_closed completed on an open connection"
    );
    assert!(!w.is_closing());
    w.write(b"last words");
    w.close();
    assert!(w.is_closing());
    tulip::timeout(Duration::from_secs(2), w.wait_closed())
        .await
        .expect("wait_closed did not complete after close")?;
    w.wait_closed().await?; // again: at once
    let (got, err) = proto_support::read_to_end(&peer, 5.0).await;
    assert_eq!((got.as_slice(), err), (&b"last words"[..], None));
    // The reader sees EOF after a close.
    assert_eq!(r.read(10).await?, b"");
    assert!(r.at_eof());
    Ok(())
}

#[tulip::test]
async fn wait_closed_returns_the_error_the_connection_was_lost_with() -> io::Result<()> {
    let _w = support::watchdog("wait_closed_returns_the_error", 10);
    let (mut r, w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    let waiter = {
        let w = w.clone();
        tulip::spawn(async move { w.wait_closed().await })
    };
    tulip::sleep(ms(10)).await;
    assert!(!waiter.is_finished());
    set_rst_on_close(&peer);
    drop(peer);
    let e = tulip::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait_closed did not complete after the reset")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    assert_eq!(
        w.wait_closed().await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    assert_eq!(
        r.readline().await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    assert_eq!(
        w.drain().await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
    Ok(())
}

#[tulip::test]
async fn at_eof_read_n_and_read_to_eof() -> io::Result<()> {
    let _w = support::watchdog("at_eof_read_n_and_read_to_eof", 10);
    let (mut r, _w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    assert!(!r.at_eof());
    assert_eq!(r.read(0).await?, b"", "read(0) is empty at once");
    let data = ByteStream::new(11).take(1000);
    tulip::sock_sendall(&peer, &data).await?;
    let a = r.read(10).await?;
    assert!(!a.is_empty() && a.len() <= 10, "read(10) gave {}", a.len());
    let mut got = a;
    while got.len() < 500 {
        let b = r.read(500 - got.len()).await?;
        assert!(!b.is_empty() && b.len() <= 500 - got.len());
        got.extend_from_slice(&b);
    }
    assert_eq!(got, data[..500]);
    // EOF received, data still buffered: not at EOF yet (asyncio: `_eof and not _buffer`).
    let more = ByteStream::new(12).take(300 * KIB);
    let sender = tulip::spawn(async move {
        tulip::sock_sendall(&peer, &more).await?;
        peer.shutdown(Shutdown::Write)?;
        io::Result::Ok(peer)
    });
    let _peer = sender.await?;
    tulip::sleep(ms(20)).await;
    assert!(!r.at_eof());
    let rest = r.read_to_eof().await?;
    assert_eq!(rest.len(), 500 + 300 * KIB);
    assert_eq!(rest[..500], data[500..]);
    assert_eq!(rest[500..], ByteStream::new(12).take(300 * KIB));
    assert!(r.at_eof());
    assert_eq!(r.read(5).await?, b"");
    assert_eq!(r.read_to_eof().await?, b"");
    assert_eq!(r.readline().await?, b"");
    Ok(())
}

/// asyncio's `StreamWriter.__del__` closes the transport: here when the last of the reader
/// and writer handles goes.
// CPython: test_streams.py StreamTests.test_unclosed_resource_warnings (tulip closes the connection when the last handle goes; no warning)
#[tulip::test]
async fn dropping_the_last_handle_closes_the_connection() -> io::Result<()> {
    let _w = support::watchdog("dropping_the_last_handle_closes_the_connection", 10);
    let (r, w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    let t = w.transport().clone();
    let w2 = w.clone();
    drop(w);
    drop(r);
    tulip::sleep(ms(20)).await;
    assert!(!t.is_closing(), "a writer clone still holds the connection");
    w2.write(b"still open");
    drop(w2);
    assert!(t.is_closing());
    let (got, err) = proto_support::read_to_end(&peer, 5.0).await;
    assert_eq!((got.as_slice(), err), (&b"still open"[..], None));
    Ok(())
}

#[tulip::test]
async fn start_server_handler_error_goes_to_the_exception_handler() -> io::Result<()> {
    let _w = support::watchdog("start_server_handler_error", 10);
    let seen = capture_exceptions();
    let server = tulip::start_server(
        |mut r: StreamReader, _w: StreamWriter| async move {
            let l = r.readline().await?;
            Err::<(), _>(io::Error::other(format!(
                "boom: {}",
                String::from_utf8_lossy(&l).trim()
            )))
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    w.write(b"hi\n");
    // The handler's reader and writer are dropped with its task: the connection closes.
    assert_eq!(
        tulip::timeout(Duration::from_secs(2), r.read_to_eof())
            .await
            .expect("no EOF")?,
        b""
    );
    let msgs: Vec<String> = seen.borrow().iter().map(|(m, _)| m.clone()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("client_connected_cb failed") && m.contains("boom: hi")),
        "{msgs:?}"
    );
    server.close();
    Ok(())
}

// ---- 9. Unix sockets -----------------------------------------------------------------------

// CPython: test_streams.py StreamTests.test_start_unix_server
#[tulip::test]
async fn unix_server_and_connection_echo() -> io::Result<()> {
    let _w = support::watchdog("unix_server_and_connection_echo", 10);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let path =
        std::env::temp_dir().join(format!("tulip-streams-{}-{nanos}.sock", std::process::id()));
    let server = tulip::start_unix_server(
        |mut r: StreamReader, w: StreamWriter| async move {
            loop {
                let line = r.readline().await?;
                if line.is_empty() {
                    w.close();
                    return io::Result::Ok(());
                }
                w.write(&line.to_ascii_uppercase());
                w.drain().await?;
            }
        },
        &path,
        Default::default(),
    )
    .await?;
    let (mut r, w) = tulip::open_unix_connection(&path, Default::default()).await?;
    w.write(b"hello\nunix ");
    w.drain().await?;
    assert_eq!(r.readline().await?, b"HELLO\n");
    w.write(b"sockets\n");
    assert_eq!(r.readline().await?, b"UNIX SOCKETS\n");
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| {
            if i % 100 == 99 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    // Written by a task while this one reads: the echo server's drain waits for us.
    let writer = {
        let (w, big) = (w.clone(), big.clone());
        tulip::spawn(async move {
            w.write(&big);
            w.drain().await
        })
    };
    let mut echoed = Vec::new();
    while echoed.len() < big.len() {
        echoed.extend_from_slice(&r.readline().await?);
    }
    assert_eq!(
        echoed,
        big.to_ascii_uppercase(),
        "200 kB echoed line by line"
    );
    writer.await?;
    assert!(w.can_write_eof());
    w.write_eof();
    assert_eq!(r.read_to_eof().await?, b"");
    // Both directions are shut down; the transport stays open until closed (as asyncio's).
    assert!(!w.is_closing());
    w.close();
    w.wait_closed().await?;
    server.close();
    server.wait_closed().await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
