//! hyper 1.x over tulip's streams — a `tulip::Stream`, reader and writer in one object,
//! which implements `hyper::rt::Read`/`Write` with the `hyper` feature (`tulip::hyper`): an
//! HTTP/1.1 server (`start_server` + `serve_connection`) and client (`open_connection` +
//! `handshake`) on one loop. Requests on a keep-alive connection, then one with
//! `Connection: close`, after which both connection futures end `Ok` — before `poll_flush`
//! was `Ok` after a clean close they ended in hyper's "Connection lost".
//! Then hyper's timeouts on `tulip::hyper::TulipTimer`, and `TulipExecutor`.

#![cfg(feature = "hyper")]

mod support;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::Timer;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};
use tulip::hyper::{TulipExecutor, TulipTimer};
use tulip::{StreamReader, StreamWriter};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {}", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tulip::test]
async fn hyper_http1_client_and_server_end_cleanly() -> io::Result<()> {
    let _wd = support::watchdog("hyper_http1", 20);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let server = tulip::start_server(
        move |reader: StreamReader, writer: StreamWriter| {
            let done = done_tx.clone();
            async move {
                let io = reader.unsplit(writer);
                let r = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(hello))
                    .await;
                let _ = done.send(r.map_err(|e| format!("{e:?}")));
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().expect("a TCP server").port();

    let stream =
        tulip::Stream::from(tulip::open_connection("127.0.0.1", port, Default::default()).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(stream)
        .await
        .map_err(io::Error::other)?;
    let conn = tulip::spawn(conn);
    for (i, close) in [(0, false), (1, false), (2, true)] {
        let mut req = Request::builder()
            .uri(format!("/r{i}"))
            .header("host", "localhost");
        if close {
            req = req.header("connection", "close");
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(io::Error::other)?;
        let resp = sender.send_request(req).await.map_err(io::Error::other)?;
        assert_eq!(resp.status(), 200);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        assert_eq!(body, format!("hello /r{i}"));
    }
    // The client's connection future ends once the server closed after `Connection: close`.
    conn.await.map_err(io::Error::other)?;
    // The server's too, without an error.
    let r = loop {
        match done_rx.try_recv() {
            Ok(r) => break r,
            Err(_) => tulip::sleep(std::time::Duration::from_millis(1)).await,
        }
    };
    assert_eq!(r, Ok(()), "the server's connection ended with an error");
    Ok(())
}

/// hyper's `header_read_timeout` on `TulipTimer`: a client that sends half a request head is
/// cut off after the timeout, not before, and the server's connection ends with an error.
#[tulip::test]
async fn header_read_timeout_fires_on_tulip_timer() -> io::Result<()> {
    let _wd = support::watchdog("header_read_timeout", 20);
    const TIMEOUT: Duration = Duration::from_millis(150);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Duration, bool)>();
    let server = tulip::start_server(
        move |reader: StreamReader, writer: StreamWriter| {
            let done = done_tx.clone();
            async move {
                let t0 = Instant::now();
                let r = hyper::server::conn::http1::Builder::new()
                    .timer(TulipTimer)
                    .header_read_timeout(TIMEOUT)
                    .serve_connection(reader.unsplit(writer), hyper::service::service_fn(hello))
                    .await;
                let _ = done.send((t0.elapsed(), r.is_err()));
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().expect("a TCP server").port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    w.write(b"GET / HTTP/1.1\r\nhost: x\r\n");
    let t0 = Instant::now();
    // The server closes the connection (after a 408, or without a word): EOF.
    let rest = r.read_to_eof().await?;
    let waited = t0.elapsed();
    assert!(
        waited >= TIMEOUT - Duration::from_millis(20),
        "cut off after {waited:?}"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let (elapsed, failed) = loop {
        match done_rx.try_recv() {
            Ok(r) => break r,
            Err(_) => tulip::sleep(Duration::from_millis(1)).await,
        }
    };
    assert!(failed, "the timed-out connection must end with an error");
    assert!(elapsed >= TIMEOUT, "timed out after {elapsed:?}");
    Ok(())
}

/// `TulipTimer`'s sleeps end at their deadline, a past deadline at once; one dropped before
/// its deadline (its timer cancelled) wakes nobody; one moved to another thread and dropped
/// there is harmless.
#[tulip::test]
async fn tulip_timer_sleeps() -> io::Result<()> {
    let _wd = support::watchdog("tulip_timer_sleeps", 20);
    let t0 = Instant::now();
    TulipTimer.sleep(Duration::from_millis(30)).await;
    assert!(t0.elapsed() >= Duration::from_millis(30));
    TulipTimer.sleep_until(Instant::now()).await;

    // Registered (polled once), then dropped: the timer is cancelled.
    let mut s = TulipTimer.sleep(Duration::from_millis(10));
    let pending = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx).is_pending())).await;
    assert!(pending);
    drop(s);
    tulip::sleep(Duration::from_millis(30)).await;

    // Registered here, dropped on another thread: the timer fires later, into nothing.
    let mut s = TulipTimer.sleep(Duration::from_millis(10));
    let _ = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
    std::thread::spawn(move || drop(s))
        .join()
        .expect("dropping a TulipSleep on another thread");
    tulip::sleep(Duration::from_millis(30)).await;
    Ok(())
}

/// `TulipExecutor` runs what hyper hands it as a detached task on the running loop.
#[tulip::test]
async fn tulip_executor_spawns_detached_tasks() {
    let _wd = support::watchdog("tulip_executor", 20);
    let (tx, rx) = std::sync::mpsc::channel();
    hyper::rt::Executor::execute(&TulipExecutor, async move {
        tulip::sleep(Duration::from_millis(5)).await;
        let _ = tx.send(std::thread::current().id());
    });
    let id = loop {
        match rx.try_recv() {
            Ok(id) => break id,
            Err(_) => tulip::sleep(Duration::from_millis(1)).await,
        }
    };
    assert_eq!(id, std::thread::current().id());
}
