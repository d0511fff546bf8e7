//! A guided tour of tulip: one event loop, callbacks and `async fn`s on one thread.
//!
//! Run it with
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! It takes no arguments, prints what happens step by step and exits within a second:
//!
//! 1. `call_soon` and `call_later` callbacks, and the order in which they run;
//! 2. a future made with `create_future`, completed by a `call_later` callback and awaited;
//! 3. `tulip::timeout` expiring (and the inner future being cancelled);
//! 4. `call_soon_threadsafe` from another thread, through `lp.handle()`;
//! 5. an echo server task built on `sock_accept` / `sock_recv` / `sock_sendall`, one task per
//!    connection, and five concurrent clients that `sock_connect` to it and check the echo;
//!    at the end the server task is cancelled;
//! 6. callbacks on the network: a `Protocol` served by `create_server` answers in upper
//!    case, and a client `Protocol` on `create_connection` completes a future from
//!    `connection_lost`, which `main` awaits;
//! 7. streams: `start_server` runs an `async fn` per connection on a
//!    `StreamReader`/`StreamWriter` pair, and `open_connection` gives the client its pair;
//!    both sides work line by line with `readline`.
//!
//! Sections 5 to 7 are tulip's three ways to write network code — `sock_*` futures,
//! protocols and streams — side by side.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tulip::socket2::{Domain, Socket, Type};
use tulip::{LoopFuture, Protocol, StreamReader, StreamWriter, Transport};

/// How many echo clients run at the same time.
const CLIENTS: usize = 5;

thread_local! {
    /// Where the loop thread keeps the future that the worker thread's callback completes:
    /// a `LoopFuture` belongs to its loop's thread, so only the callback, which runs there,
    /// may touch it.
    static FROM_WORKER: RefCell<Option<LoopFuture<u64>>> = const { RefCell::new(None) };
}

#[tulip::main]
async fn main() -> io::Result<()> {
    let lp = tulip::get_running_loop();

    println!("== 1. call_soon and call_later");
    lp.call_later(Duration::from_millis(20), || {
        println!("[callback] call_later(20 ms)")
    });
    lp.call_later(Duration::from_millis(10), || {
        println!("[callback] call_later(10 ms)")
    });
    lp.call_soon(|| println!("[callback] call_soon #1"));
    lp.call_soon(|| println!("[callback] call_soon #2"));
    println!("[main] scheduled 2 timers, then 2 callbacks; sleeping 50 ms");
    tulip::sleep(Duration::from_millis(50)).await;
    println!(
        "[main] awake: call_soon callbacks ran first, in FIFO order, then the timers by deadline"
    );

    println!();
    println!("== 2. create_future, completed by a callback");
    let fut: LoopFuture<String> = lp.create_future();
    let completer = fut.clone();
    lp.call_later(Duration::from_millis(30), move || {
        println!("[callback] call_later(30 ms) sets the future's result");
        completer.set_result("the answer is 42".to_string());
    });
    println!("[main] awaiting the future");
    let value = fut.await?;
    println!("[main] the future resolved: {value:?}");

    println!();
    println!("== 3. timeout");
    match tulip::timeout(
        Duration::from_millis(50),
        tulip::sleep(Duration::from_secs(10)),
    )
    .await
    {
        Ok(()) => println!("[main] sleep(10 s) finished?!"),
        Err(err) => {
            println!("[main] timeout(50 ms, sleep(10 s)) expired: {err}; the sleep was cancelled")
        }
    }
    let quick = tulip::timeout(Duration::from_secs(1), async { 6 * 7 }).await;
    println!("[main] timeout(1 s, async {{ 6 * 7 }}) = {quick:?}");

    println!();
    println!("== 4. call_soon_threadsafe from another thread");
    let fut: LoopFuture<u64> = lp.create_future();
    FROM_WORKER.with(|slot| *slot.borrow_mut() = Some(fut.clone()));
    let handle = lp.handle();
    let worker = thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            let sum: u64 = (1..=1000).sum();
            println!("[worker] computed {sum}; sending it to the loop with call_soon_threadsafe");
            handle
                .call_soon_threadsafe(move || {
                    let me = thread::current();
                    println!(
                        "[callback] running on thread {:?}, completing the future",
                        me.name().unwrap_or("?")
                    );
                    let fut = FROM_WORKER.with(|slot| slot.borrow_mut().take());
                    fut.expect("the future is in the slot").set_result(sum);
                })
                .expect("the loop is open");
        })?;
    let sum = fut.await?;
    worker.join().expect("the worker thread panicked");
    println!("[main] got {sum} from the worker thread");

    println!();
    println!("== 5. sock_* echo server and {CLIENTS} concurrent clients");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    println!("[server] listening on {addr}");
    let server = tulip::spawn(serve(listener));

    let clients: Vec<_> = (1..=CLIENTS)
        .map(|i| tulip::spawn(client(i, addr)))
        .collect();
    for c in clients {
        c.await?;
    }
    // Let the connection tasks see their clients' EOF before the server stops.
    tulip::sleep(Duration::from_millis(20)).await;
    match server.cancel().await {
        None => println!("[server] task cancelled"),
        Some(result) => println!("[server] had already stopped: {result:?}"),
    }

    println!();
    println!("== 6. a Protocol on create_server, and one on create_connection");
    let server = tulip::create_server(
        || UpperServer { transport: None },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let addr = server.local_addr().expect("a TCP listener");
    println!("[protocol server] listening on {addr}");
    let answered: LoopFuture<Vec<u8>> = lp.create_future();
    let question = b"hello from a protocol".to_vec();
    tulip::create_connection(
        || AskOnce {
            question,
            answer: Vec::new(),
            transport: None,
            answered: answered.clone(),
        },
        "127.0.0.1",
        addr.port(),
        Default::default(),
    )
    .await?;
    let answer = answered.await?;
    println!(
        "[main] the client protocol's future resolved: {:?}",
        String::from_utf8_lossy(&answer)
    );
    server.close();
    tulip::timeout(Duration::from_secs(2), server.wait_closed()).await?;
    println!("[protocol server] closed, and its connection is gone");

    println!();
    println!("== 7. streams: start_server and open_connection");
    let server = tulip::start_server(greet, "127.0.0.1", 0, Default::default()).await?;
    let addr = server.local_addr().expect("a TCP listener");
    println!("[stream server] listening on {addr}");
    let (mut reader, writer) =
        tulip::open_connection("127.0.0.1", addr.port(), Default::default()).await?;
    for name in ["Ada", "Grace"] {
        println!("[stream client] write({name:?} + newline)");
        writer.write(format!("{name}\n").as_bytes());
    }
    writer.drain().await?;
    for _ in 0..2 {
        let line = reader.readline().await?;
        println!(
            "[stream client] readline() = {:?}",
            String::from_utf8_lossy(&line)
        );
    }
    println!("[stream client] write_eof()");
    writer.write_eof();
    let rest = reader.read_to_eof().await?;
    println!(
        "[stream client] read_to_eof() = {} bytes: the server closed",
        rest.len()
    );
    drop((reader, writer)); // the last handle of a stream pair closes its transport
    server.close();
    tulip::timeout(Duration::from_secs(2), server.wait_closed()).await?;
    println!("[stream server] closed, and its connection is gone");

    println!();
    println!("done: tulip::run closes the loop when main returns");
    Ok(())
}

/// The echo server: accepts connections forever, one task per connection.
async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (conn, peer) = tulip::sock_accept(&listener).await?;
        println!("[server] accepted {peer}");
        tulip::spawn(echo(conn, peer)).detach();
    }
}

/// Sends back whatever arrives on `conn`, until EOF.
async fn echo(conn: TcpStream, peer: SocketAddr) {
    loop {
        let data = match tulip::sock_recv(&conn, 64 * 1024).await {
            Ok(data) if data.is_empty() => break,
            Ok(data) => data,
            Err(err) => {
                println!("[server] {peer}: {err}");
                return;
            }
        };
        if let Err(err) = tulip::sock_sendall(&conn, &data).await {
            println!("[server] {peer}: {err}");
            return;
        }
    }
    println!("[server] {peer} closed the connection");
}

/// Connects to `addr`, sends a greeting and checks that it comes back.
async fn client(i: usize, addr: SocketAddr) -> io::Result<()> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    tulip::sock_connect(&sock, addr).await?;
    let local = sock.local_addr()?.as_socket().expect("an IP socket");
    println!("[client {i}] connected from {local}");

    let msg = format!("hello from {i}");
    tulip::sock_sendall(&sock, msg.as_bytes()).await?;
    let mut echoed = Vec::new();
    while echoed.len() < msg.len() {
        let chunk = tulip::sock_recv(&sock, 1024).await?;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed early",
            ));
        }
        echoed.extend_from_slice(&chunk);
    }
    if echoed != msg.as_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "client {i}: wrong echo {:?}",
                String::from_utf8_lossy(&echoed)
            ),
        ));
    }
    println!("[client {i}] echoed '{msg}'");
    Ok(())
}

/// Section 6, server side: answers every piece of data in upper case.
struct UpperServer {
    transport: Option<Transport>,
}

impl Protocol for UpperServer {
    fn connection_made(&mut self, transport: &Transport) {
        println!("[protocol server] connection_made");
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        println!(
            "[protocol server] data_received({:?}), answering in upper case",
            String::from_utf8_lossy(data)
        );
        if let Some(t) = &self.transport {
            t.write(&data.to_ascii_uppercase());
        }
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        println!("[protocol server] connection_lost");
    }

    // Flow control: a client that does not read its answers makes the transport's buffer
    // pass its high-water mark; stop reading until it drains, or it grows without bound.
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

/// Section 6, client side: sends `question`, collects as many bytes back, hangs up, and
/// hands the answer to async code through the `answered` future.
struct AskOnce {
    question: Vec<u8>,
    answer: Vec<u8>,
    transport: Option<Transport>,
    answered: LoopFuture<Vec<u8>>,
}

impl Protocol for AskOnce {
    fn connection_made(&mut self, transport: &Transport) {
        println!(
            "[protocol client] connection_made, writing {:?}",
            String::from_utf8_lossy(&self.question)
        );
        transport.write(&self.question);
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        println!(
            "[protocol client] data_received({:?})",
            String::from_utf8_lossy(data)
        );
        self.answer.extend_from_slice(data);
        if self.answer.len() >= self.question.len() {
            if let Some(t) = &self.transport {
                t.close();
            }
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        println!("[protocol client] connection_lost, completing the future");
        match exc {
            None => self.answered.set_result(std::mem::take(&mut self.answer)),
            Some(e) => self.answered.set_exception(e),
        }
    }
}

/// Section 7, server side: one task per connection, greeting every name it reads, one per
/// line, until EOF.
async fn greet(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        let line = reader.readline().await?;
        if line.is_empty() {
            println!("[stream server] readline() = \"\": EOF, closing");
            break;
        }
        let name = String::from_utf8_lossy(&line);
        let name = name.trim_end();
        println!(
            "[stream server] readline() = {:?}",
            String::from_utf8_lossy(&line)
        );
        writer.write(format!("hello, {name}!\n").as_bytes());
        writer.drain().await?;
    }
    writer.close();
    Ok(())
}
