//! hyper 1.x "Hello, World!" over HTTP/1.1 keep-alive: hyper on tulip (the `hyper` feature)
//! against hyper on tokio's current-thread runtime, under the suite's HTTP client (50
//! connections, one request in flight each) and `wrk` when it is on `PATH`.
//!
//! Built only with `--features hyper` (without it the workloads are not there):
//! `cargo bench --bench net --features hyper -- hyper hyper-wrk`.
//!
//! Both servers run the same service and builder settings, each runtime with its own timer
//! (so hyper's default 30 s `header_read_timeout` is armed on every request on both):
//! - `hyper-tulip`: `tulip::start_server`, the connection as one `tulip::Stream`
//!   (`tulip::hyper`'s `hyper::rt` impls), `tulip::hyper::TulipTimer`;
//! - `hyper-tokio`: tokio's `TcpListener`, the adapter of `hyper-util`'s `TokioIo` (written
//!   out below: hyper-util is not a dependency), a timer on `tokio::time::sleep`.

#[cfg(feature = "hyper")]
pub use imp::{SERVERS, workloads};

/// Without the feature: no servers, no workloads.
#[cfg(not(feature = "hyper"))]
pub static SERVERS: &[crate::servers::Server] = &[];

#[cfg(not(feature = "hyper"))]
pub fn workloads() -> Vec<crate::suite::Workload> {
    Vec::new()
}

#[cfg(feature = "hyper")]
mod imp {
    use std::convert::Infallible;
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    use crate::echo::run_tulip_server;
    use crate::http::hello_load;
    use crate::servers::{Ready, Server};
    use crate::suite::{self, Unit, Workload};

    /// Connections of the suite's load, as `http`.
    const CONNS: usize = 50;

    pub static SERVERS: &[Server] = &[
        Server {
            id: "hyper-tulip",
            name: "hyper 1.x on tulip (tulip::hyper)",
            serve: serve_tulip,
        },
        Server {
            id: "hyper-tokio",
            name: "hyper 1.x on tokio current-thread",
            serve: serve_tokio,
        },
    ];

    pub fn workloads() -> Vec<Workload> {
        let ids = ["http-floor", "hyper-tulip", "hyper-tokio"];
        let mut out = vec![Workload {
            id: "hyper".into(),
            label: format!("hyper HTTP/1.1 hello, {CONNS} conns (suite client)"),
            servers: suite::servers(&ids),
            floor: "http-floor",
            tokio: "hyper-tokio",
            unit: Unit::Request,
            drive: Box::new(|addr, limit| hello_load(addr, CONNS, limit)),
        }];
        // Not on every machine (CI): then the workload is simply not there.
        if let Some(wrk) = crate::http::which("wrk") {
            out.push(Workload {
                id: "hyper-wrk".into(),
                label: format!("hyper HTTP/1.1 hello, {CONNS} conns (wrk -t1)"),
                servers: suite::servers(&ids),
                floor: "http-floor",
                tokio: "hyper-tokio",
                unit: Unit::Request,
                drive: Box::new(move |addr, limit| crate::http::wrk_load(&wrk, addr, limit)),
            });
        }
        out
    }

    async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(Response::new(Full::new(Bytes::from_static(
            b"Hello, World!",
        ))))
    }

    fn builder<T: hyper::rt::Timer + Send + Sync + 'static>(
        timer: T,
    ) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(timer);
        b
    }

    // ---- tulip -----------------------------------------------------------------------------

    fn serve_tulip(addr: SocketAddr, ready: Ready) -> io::Result<()> {
        async fn conn(reader: tulip::StreamReader, writer: tulip::StreamWriter) {
            let _ = builder(tulip::hyper::TulipTimer)
                .serve_connection(reader.unsplit(writer), hyper::service::service_fn(hello))
                .await;
        }
        let lp = tulip::EventLoop::new()?;
        let server = lp.run_until_complete(tulip::start_server(
            conn,
            &addr.ip().to_string(),
            addr.port(),
            tulip::net::ServerOptions::new().backlog(1024),
        ))?;
        run_tulip_server(lp, server, ready)
    }

    // ---- tokio -----------------------------------------------------------------------------

    /// `hyper-util`'s `TokioIo`: tokio's `AsyncRead` reads straight into hyper's buffer.
    struct TokioIo(tokio::net::TcpStream);

    impl hyper::rt::Read for TokioIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            // SAFETY: tokio's `ReadBuf` only writes initialized bytes into the uninitialized
            // part of hyper's buffer and never de-initializes; `advance` then counts exactly
            // the bytes it filled (hyper-util's `TokioIo` does the same).
            let n = unsafe {
                let mut tbuf = tokio::io::ReadBuf::uninit(buf.as_mut());
                match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, &mut tbuf) {
                    Poll::Ready(Ok(())) => tbuf.filled().len(),
                    other => return other,
                }
            };
            // SAFETY: the first `n` bytes were filled just above.
            unsafe { buf.advance(n) };
            Poll::Ready(Ok(()))
        }
    }

    impl hyper::rt::Write for TokioIo {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
        }
    }

    /// `hyper-util`'s `TokioTimer`.
    #[derive(Clone, Copy)]
    struct TokioTimer;

    pin_project_lite::pin_project! {
        struct TokioSleep {
            #[pin]
            inner: tokio::time::Sleep,
        }
    }

    impl Future for TokioSleep {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.project().inner.poll(cx)
        }
    }

    impl hyper::rt::Sleep for TokioSleep {}

    impl hyper::rt::Timer for TokioTimer {
        fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
            Box::pin(TokioSleep {
                inner: tokio::time::sleep(duration),
            })
        }

        fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
            Box::pin(TokioSleep {
                inner: tokio::time::sleep_until(deadline.into()),
            })
        }
    }

    fn serve_tokio(addr: SocketAddr, ready: Ready) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let r = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            ready(
                listener.local_addr()?,
                Box::new(move || {
                    let _ = tx.send(());
                }),
            );
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    s.set_nodelay(true).ok();
                    tokio::spawn(async move {
                        let _ = builder(TokioTimer)
                            .serve_connection(TokioIo(s), hyper::service::service_fn(hello))
                            .await;
                    });
                }
            });
            let _ = rx.await;
            io::Result::Ok(())
        });
        drop(rt);
        r
    }
}
