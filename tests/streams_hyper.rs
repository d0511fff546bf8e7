//! hyper 1.x over tulip's streams — a `tulip::Stream`, reader and writer in one futures-io
//! object — through the generic futures-io → `hyper::rt` adapter: an
//! HTTP/1.1 server (`start_server` + `serve_connection`) and client (`open_connection` +
//! `handshake`) on one loop. Requests on a keep-alive connection, then one with
//! `Connection: close`, after which both connection futures end `Ok` — before `poll_flush`
//! was `Ok` after a clean close they ended in hyper's "Connection lost".

mod support;

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tulip::{StreamReader, StreamWriter};

/// futures-io → `hyper::rt`, for any one `AsyncRead + AsyncWrite` object — here a
/// `tulip::Stream`. Nothing in it is tulip's: it is the adapter any futures-io runtime uses
/// (what `smol-hyper`'s `FuturesIo` is), so one from a crate works as well.
struct HyperIo<T>(T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut tmp = [0u8; 16 * 1024];
        let k = buf.remaining().min(tmp.len());
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, &mut tmp[..k]))?;
        buf.put_slice(&tmp[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

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
                let io = HyperIo(reader.unsplit(writer));
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
    let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo(stream))
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
