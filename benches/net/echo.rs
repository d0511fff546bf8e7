//! The echo servers: tulip's four ways to write one, tokio (current-thread and multi-thread),
//! smol, and the floor — a level-triggered epoll loop written with `libc` directly.
//!
//! Servers that own a buffer per connection (every one but tulip's `Protocol` and the floor,
//! which read into one buffer per loop) allocate 16 KiB: large enough for the largest
//! ping-pong message in one read, and the size a real server would pick (std's and tokio's
//! `BufReader` default to 8 KiB) — it shows in the memory workload.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use smol::Async;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tulip::{BufferedProtocol, Protocol, Transport};

use crate::servers::{Ready, Server};
use crate::sys::{self, Epoll, StopFd};

/// A per-connection buffer.
pub const CONN_BUF: usize = 16 * 1024;
/// The floor's one receive buffer.
const FLOOR_BUF: usize = 64 * 1024;

pub static SERVERS: &[Server] = &[
    Server {
        id: "floor",
        name: "floor: epoll loop (libc)",
        serve: serve_floor,
    },
    Server {
        id: "tulip",
        name: "tulip `Protocol`",
        serve: |addr, ready| serve_tulip(addr, ready, || EchoProto { transport: None }),
    },
    Server {
        id: "tulip-buffered",
        name: "tulip `BufferedProtocol`",
        serve: |addr, ready| {
            serve_tulip(addr, ready, || {
                tulip::Buffered(EchoBuffered {
                    transport: None,
                    buf: vec![0; CONN_BUF],
                })
            })
        },
    },
    Server {
        id: "streams",
        name: "tulip streams, `read` + `write` + `drain`",
        serve: serve_tulip_streams,
    },
    Server {
        id: "tulip-sock",
        name: "tulip `sock_recv_into` + `sock_sendall`",
        serve: serve_tulip_sock,
    },
    Server {
        id: "tokio",
        name: "tokio current-thread, `read` + `write_all`",
        serve: |addr, ready| serve_tokio(addr, ready, false),
    },
    Server {
        id: "tokio-mt",
        name: "tokio multi-thread (2 workers), `read` + `write_all`",
        serve: |addr, ready| serve_tokio(addr, ready, true),
    },
    Server {
        id: "smol",
        name: "smol `Async<TcpStream>`, `LocalExecutor`",
        serve: serve_smol,
    },
];

// ---- the floor ---------------------------------------------------------------------------------

/// One floor connection: the socket and what `send` left.
struct FloorConn {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// The floor: one level-triggered epoll loop; `recv` into one buffer, `send` it back, and
/// buffer only what `send` leaves (then stop reading that connection and wait for `EPOLLOUT`
/// until the rest is sent).
fn serve_floor(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let ep = Epoll::new()?;
    let stop = StopFd::new()?;
    const LISTENER: u64 = u64::MAX;
    const STOP: u64 = u64::MAX - 1;
    ep.add(listener.as_raw_fd(), LISTENER)?;
    ep.add(stop.raw(), STOP)?;
    ready(listener.local_addr()?, stop.signaller()?);
    let mut conns: Vec<Option<FloorConn>> = Vec::new();
    let mut buf = vec![0u8; FLOOR_BUF];
    let mut events = sys::no_events::<64>();
    loop {
        let n = ep.wait(&mut events, -1)?;
        for ev in &events[..n] {
            match ev.u64 {
                STOP => return Ok(()),
                LISTENER => loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            let fd = s.as_raw_fd() as usize;
                            ep.add(fd as RawFd, fd as u64)?;
                            if conns.len() <= fd {
                                conns.resize_with(fd + 1, || None);
                            }
                            conns[fd] = Some(FloorConn {
                                stream: s,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if sys::would_block(&e) => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        Err(e) => return Err(e),
                    }
                },
                token => {
                    let fd = token as usize;
                    let Some(c) = conns[fd].as_mut() else {
                        continue;
                    };
                    let keep = if c.pending.is_empty() {
                        floor_read(c, &ep, &mut buf)
                    } else {
                        floor_flush(c, &ep)
                    };
                    if !keep {
                        // Closing the last descriptor removes it from the epoll set.
                        conns[fd] = None;
                    }
                }
            }
        }
    }
}

/// Reads and echoes; `false` when the connection is done.
fn floor_read(c: &mut FloorConn, ep: &Epoll, buf: &mut [u8]) -> bool {
    let k = match c.stream.read(buf) {
        Ok(0) => return false,
        Ok(k) => k,
        Err(e) => return sys::would_block(&e),
    };
    let sent = match c.stream.write(&buf[..k]) {
        Ok(s) => s,
        Err(e) if sys::would_block(&e) => 0,
        Err(_) => return false,
    };
    if sent < k {
        c.pending.extend_from_slice(&buf[sent..k]);
        let fd = c.stream.as_raw_fd();
        return ep.modify(fd, fd as u64, false, true).is_ok();
    }
    true
}

/// Sends what is pending; reads again once it is all sent. `false` when the connection is done.
fn floor_flush(c: &mut FloorConn, ep: &Epoll) -> bool {
    match c.stream.write(&c.pending) {
        Ok(s) => {
            c.pending.drain(..s);
        }
        Err(e) => return sys::would_block(&e),
    }
    if c.pending.is_empty() {
        let fd = c.stream.as_raw_fd();
        return ep.modify(fd, fd as u64, true, false).is_ok();
    }
    true
}

// ---- tulip -------------------------------------------------------------------------------------

/// tulip `Protocol` echo, as `examples/tcp_echo_server.rs`.
pub struct EchoProto {
    pub transport: Option<Transport>,
}

impl Protocol for EchoProto {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn pause_writing(&mut self) {
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

/// tulip `BufferedProtocol` echo: receives into its own reused buffer.
struct EchoBuffered {
    transport: Option<Transport>,
    buf: Vec<u8>,
}

impl BufferedProtocol for EchoBuffered {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        if let Some(t) = &self.transport {
            t.write(&self.buf[..nbytes]);
        }
    }

    fn pause_writing(&mut self) {
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

/// Serves protocols made by `factory` with `create_server` until stopped.
pub fn serve_tulip<P, F>(addr: SocketAddr, ready: Ready, factory: F) -> io::Result<()>
where
    F: FnMut() -> P + 'static,
    P: tulip::transports::StreamProtocol,
{
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::create_server(
        factory,
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    ))?;
    run_tulip_server(lp, server, ready)
}

/// tulip streams echo (`start_server`): `futures_io::AsyncRead::read` into a reused buffer, the
/// analogue of tokio's `read`, then `write` + `drain`, asyncio's way to write, the analogue of
/// `write_all` (`write` sends at once or buffers; `drain` waits only while the transport's
/// buffer is over its high-water mark).
fn serve_tulip_streams(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    async fn echo(mut reader: tulip::StreamReader, writer: tulip::StreamWriter) {
        let mut buf = vec![0u8; CONN_BUF];
        loop {
            // Fully qualified: smol's `AsyncReadExt` also covers `futures_io::AsyncRead`.
            let n = match futures_util::io::AsyncReadExt::read(&mut reader, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            writer.write(&buf[..n]);
            if writer.drain().await.is_err() {
                return;
            }
        }
    }
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::start_server(
        echo,
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    ))?;
    run_tulip_server(lp, server, ready)
}

/// Runs a tulip server until stopped, then closes it and its connections.
pub fn run_tulip_server(
    lp: tulip::EventLoop,
    server: tulip::Server,
    ready: Ready,
) -> io::Result<()> {
    let handle = lp.handle();
    let local = server
        .local_addr()
        .ok_or_else(|| io::Error::other("no TCP listener"))?;
    ready(
        local,
        Box::new(move || {
            let _ = handle.stop();
        }),
    );
    lp.run_forever();
    server.close();
    server.abort_clients();
    lp.run_until_complete(server.wait_closed());
    lp.close();
    Ok(())
}

/// The `sock_*` echo task of one connection, as `examples/sock_echo_server.rs`.
pub(crate) async fn sock_echo(conn: TcpStream) {
    let mut buf = vec![0u8; CONN_BUF];
    loop {
        let n = match tulip::sock_recv_into(&conn, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tulip::sock_sendall(&conn, &buf[..n]).await.is_err() {
            return;
        }
    }
}

fn serve_tulip_sock(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let lp = tulip::EventLoop::new()?;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let handle = lp.handle();
    ready(
        listener.local_addr()?,
        Box::new(move || {
            let _ = handle.stop();
        }),
    );
    lp.spawn(async move {
        while let Ok((conn, _)) = tulip::sock_accept(&listener).await {
            conn.set_nodelay(true).ok();
            tulip::spawn(sock_echo(conn)).detach();
        }
    })
    .detach();
    lp.run_forever();
    lp.close();
    Ok(())
}

// ---- peers -------------------------------------------------------------------------------------

fn serve_tokio(addr: SocketAddr, ready: Ready, multi_thread: bool) -> io::Result<()> {
    let rt = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
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
            while let Ok((mut s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; CONN_BUF];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let _ = rx.await;
        io::Result::Ok(())
    });
    drop(rt);
    r
}

fn serve_smol(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let ex = smol::LocalExecutor::new();
    let (tx, rx) = smol::channel::bounded::<()>(1);
    smol::block_on(ex.run(async {
        let listener = Async::<TcpListener>::bind(addr)?;
        ready(
            listener.get_ref().local_addr()?,
            Box::new(move || {
                let _ = tx.try_send(());
            }),
        );
        // The accept loop runs in `run`'s own future, so no task borrows the executor.
        let accept = async {
            while let Ok((mut s, _)) = listener.accept().await {
                s.get_ref().set_nodelay(true).ok();
                ex.spawn(async move {
                    let mut buf = vec![0u8; CONN_BUF];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        };
        smol::future::or(accept, async {
            let _ = rx.recv().await;
        })
        .await;
        io::Result::Ok(())
    }))
}
