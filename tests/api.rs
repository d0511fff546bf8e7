//! The public API's promises (issue 11 §6): options a Unix socket (or a callback protocol)
//! cannot honour are refused, naming the option; `Buffered(p)` selects the buffered read
//! path; `Stream` is one futures-io object; the safe socket view reports the right
//! addresses and stays valid while lent; the stream `limit` option reaches the reader;
//! `sock_connect` takes any socket.

mod support;

use std::cell::RefCell;
use std::io;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use asynchronous_codec::{Framed, LinesCodec};
use futures_util::{SinkExt, StreamExt};
use tulip::net::{ConnectOptions, ServerOptions};
use tulip::transports::ExtraInfo;
use tulip::{Buffered, BufferedProtocol, Protocol, StreamReader, StreamWriter, Transport};

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "tulip-api-{name}-{}-{nanos}.sock",
        std::process::id()
    ))
}

/// Asserts `r` is an `InvalidInput` error whose message names `option`.
fn assert_refused<T>(r: io::Result<T>, option: &str) {
    match r {
        Ok(_) => panic!("{option} was accepted"),
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(option), "{e} names {option}");
        }
    }
}

struct Quiet;
impl Protocol for Quiet {}

async fn echo(mut r: StreamReader, w: StreamWriter) -> io::Result<()> {
    loop {
        let d = r.read(4096).await?;
        if d.is_empty() {
            return Ok(());
        }
        w.write(&d);
        w.drain().await?;
    }
}

#[tulip::test]
async fn unix_connections_refuse_the_tcp_only_options() {
    let _w = support::watchdog("unix_connect_refuses", 10);
    let path = temp_path("refuse-c");
    let tcp_only = [
        (
            ConnectOptions::new().happy_eyeballs_delay(None),
            "happy_eyeballs_delay",
        ),
        (ConnectOptions::new().interleave(2), "interleave"),
        (
            ConnectOptions::new().local_addr("127.0.0.1:0".parse().unwrap()),
            "local_addr",
        ),
    ];
    for (opts, name) in tcp_only {
        assert_refused(
            tulip::create_unix_connection(|| Quiet, &path, opts.clone()).await,
            name,
        );
        assert_refused(tulip::open_unix_connection(&path, opts).await, name);
    }
    // A callback protocol has no stream buffer.
    assert_refused(
        tulip::create_unix_connection(|| Quiet, &path, ConnectOptions::new().limit(10)).await,
        "limit",
    );
}

#[tulip::test]
async fn unix_servers_refuse_the_tcp_only_options() {
    let _w = support::watchdog("unix_serve_refuses", 10);
    let path = temp_path("refuse-s");
    for (opts, name) in [
        (ServerOptions::new().reuse_port(true), "reuse_port"),
        (ServerOptions::new().reuse_address(false), "reuse_address"),
    ] {
        assert_refused(
            tulip::create_unix_server(|| Quiet, &path, opts.clone()).await,
            name,
        );
        assert_refused(tulip::start_unix_server(echo, &path, opts).await, name);
        assert!(!path.exists(), "nothing was bound");
    }
    assert_refused(
        tulip::create_unix_server(|| Quiet, &path, ServerOptions::new().limit(10)).await,
        "limit",
    );
}

#[tulip::test]
async fn tcp_entry_points_refuse_what_they_cannot_honour() {
    let _w = support::watchdog("tcp_refuses", 10);
    let (_l, addr) = support::listener();
    assert_refused(
        tulip::create_connection(
            || Quiet,
            "127.0.0.1",
            addr.port(),
            ConnectOptions::new().limit(10),
        )
        .await,
        "limit",
    );
    assert_refused(
        tulip::create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new().limit(10)).await,
        "limit",
    );
    let (a, _b) = UnixStream::pair().unwrap();
    assert_refused(
        tulip::connect_accepted_socket(|| Quiet, a, ConnectOptions::new().interleave(1)).await,
        "interleave",
    );
    // TLS on an accepted socket is `tls::start_tls` on its transport.
    let tls = tulip::tls::TlsOptions::client(tulip::tls::client_config().expect("roots"));
    let (a, _b) = UnixStream::pair().unwrap();
    assert_refused(
        tulip::connect_accepted_socket(|| Quiet, a, ConnectOptions::new().tls(tls)).await,
        "tls",
    );
}

#[tulip::test]
async fn the_limit_option_reaches_the_stream_reader() -> io::Result<()> {
    let _w = support::watchdog("limit_option", 10);
    let path = temp_path("limit");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    let server = tulip::start_unix_server(
        move |r: StreamReader, w: StreamWriter| {
            s2.borrow_mut().push(r.limit());
            echo(r, w)
        },
        &path,
        ServerOptions::new().limit(1234),
    )
    .await?;
    let (mut r, w) = tulip::open_unix_connection(&path, ConnectOptions::new().limit(777)).await?;
    assert_eq!(r.limit(), 777);
    w.write(b"x\n");
    assert_eq!(r.readline().await?, b"x\n");
    assert_eq!(*seen.borrow(), [1234]);
    // Unset, it is asyncio's 64 KiB.
    let (r2, _w2) = tulip::open_unix_connection(&path, Default::default()).await?;
    assert_eq!(r2.limit(), tulip::streams::DEFAULT_LIMIT);
    server.close();
    Ok(())
}

/// A protocol that is both kinds: what it hears tells which read path the transport took.
#[derive(Default)]
struct Both {
    buf: Vec<u8>,
    got: Rc<RefCell<Vec<String>>>,
}

impl Protocol for Both {
    fn data_received(&mut self, data: &[u8]) {
        self.got
            .borrow_mut()
            .push(format!("data_received({})", data.len()));
    }
}

impl BufferedProtocol for Both {
    fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
        self.got.borrow_mut().push("get_buffer".into());
        self.buf.resize(64, 0);
        &mut self.buf
    }
    fn buffer_updated(&mut self, n: usize) {
        self.got.borrow_mut().push(format!("buffer_updated({n})"));
    }
}

/// Connects `make()` over a socketpair, sends 5 bytes, returns what the protocol heard.
async fn heard<P: tulip::transports::StreamProtocol>(
    make: impl FnOnce(Rc<RefCell<Vec<String>>>) -> P,
) -> Vec<String> {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (t, _p) = tulip::connect_accepted_socket(|| make(got.clone()), a, Default::default())
        .await
        .expect("connect_accepted_socket");
    tulip::sock_sendall(&b, b"hello").await.unwrap();
    for _ in 0..1000 {
        if !got.borrow().is_empty() {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    t.close();
    got.take()
}

#[tulip::test]
async fn buffered_wrapper_selects_the_buffered_read_path() {
    let _w = support::watchdog("buffered_wrapper", 10);
    let plain = heard(|got| Both { buf: vec![], got }).await;
    assert_eq!(plain, ["data_received(5)"]);
    let buffered = heard(|got| Buffered(Both { buf: vec![], got })).await;
    assert_eq!(buffered, ["get_buffer", "buffer_updated(5)"]);
}

#[tulip::test]
async fn buffered_wrapper_hands_out_the_inner_protocol() -> io::Result<()> {
    let _w = support::watchdog("buffered_ref", 10);
    let (a, _b) = UnixStream::pair()?;
    let (t, p) =
        tulip::connect_accepted_socket(|| Buffered(Both::default()), a, Default::default()).await?;
    // `ProtocolRef<Both>`, and the transport knows its protocol as a `Both`.
    assert_eq!(p.with(|b: &mut Both| b.buf.len()), 0);
    assert!(t.get_protocol::<Both>().is_some());
    t.close();
    Ok(())
}

#[tulip::test]
async fn stream_is_one_futures_io_object_for_a_codec() -> io::Result<()> {
    let _w = support::watchdog("stream_codec", 10);
    let server = tulip::start_server(
        |r: StreamReader, w: StreamWriter| async move {
            // The server side through the codec too.
            let mut framed = Framed::new(r.unsplit(w), LinesCodec);
            while let Some(line) = framed.next().await {
                framed.send(line?.to_uppercase()).await?;
            }
            io::Result::Ok(())
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().expect("a TCP server").port();
    let pair = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    let mut framed = Framed::new(tulip::Stream::from(pair), LinesCodec);
    for line in ["hello\n", "world\n"] {
        framed.send(line.to_owned()).await?;
        assert_eq!(framed.next().await.transpose()?, Some(line.to_uppercase()));
    }
    // The halves come back out, still connected.
    let (mut r, w) = framed.into_inner().into_split();
    w.write(b"again\n");
    assert_eq!(r.readline().await?, b"AGAIN\n");
    framed_close(w).await
}

async fn framed_close(mut w: StreamWriter) -> io::Result<()> {
    futures_util::io::AsyncWriteExt::close(&mut w).await
}

#[tulip::test]
async fn the_socket_view_gives_the_right_addresses() -> io::Result<()> {
    let _w = support::watchdog("socket_view", 10);
    let (l, addr) = support::listener();
    let (t, _) =
        tulip::create_connection(|| Quiet, "127.0.0.1", addr.port(), Default::default()).await?;
    let (peer, peer_addr) = tulip::sock_accept(&l).await?;
    let sock = t.socket().expect("a socket transport");
    assert_eq!(sock.peer_addr()?.as_socket(), Some(addr));
    assert_eq!(sock.local_addr()?.as_socket(), Some(peer_addr));
    assert_eq!(sock.with(|s| s.tcp_nodelay().ok()), Some(Some(true)));
    // The same view through get_extra_info.
    match t.get_extra_info("socket") {
        Some(ExtraInfo::Socket(s)) => assert_eq!(s.as_raw_fd(), sock.as_raw_fd()),
        other => panic!("{other:?}"),
    }
    t.close();
    for _ in 0..1000 {
        if sock.as_raw_fd().is_none() {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    assert!(sock.with(|_| ()).is_none(), "closed with the transport");
    assert_eq!(
        sock.local_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert!(t.socket().is_none());
    drop(peer);
    Ok(())
}

#[tulip::test]
async fn the_socket_stays_open_while_lent_even_if_the_transport_is_aborted() -> io::Result<()> {
    let _w = support::watchdog("socket_lent", 10);
    let (a, b) = UnixStream::pair()?;
    let (t, _) = tulip::connect_accepted_socket(|| Quiet, a, Default::default()).await?;
    let sock = t.socket().expect("a socket");
    let t2: Transport = t.clone();
    let still_open = sock.with(|s| {
        t2.abort();
        // Whatever abort did, the fd this closure borrows is still this socket.
        s.r#type().ok()
    });
    assert_eq!(still_open, Some(Some(tulip::socket2::Type::STREAM)));
    for _ in 0..1000 {
        if sock.as_raw_fd().is_none() {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    assert!(sock.as_raw_fd().is_none(), "closed once returned");
    drop(b);
    Ok(())
}

#[tulip::test]
async fn sock_connect_takes_any_socket() -> io::Result<()> {
    let _w = support::watchdog("sock_connect_any", 10);
    let path = temp_path("dgram");
    let server = UnixDatagram::bind(&path)?;
    server.set_nonblocking(true)?;
    // A std socket type, not a socket2::Socket.
    let client = UnixDatagram::unbound()?;
    client.set_nonblocking(true)?;
    tulip::sock_connect(&client, tulip::socket2::SockAddr::unix(&path)?).await?;
    tulip::sock_sendall(&client, b"ping").await?;
    assert_eq!(tulip::sock_recv(&server, 16).await?, b"ping");
    std::fs::remove_file(&path)?;
    Ok(())
}
