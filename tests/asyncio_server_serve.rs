//! CPython's `Lib/test/test_asyncio/test_server.py` (`BaseStartServer`, `TestServer2`),
//! translated: `start_serving=False` then `serve_forever` ended by a cancel, and
//! `wait_closed` / `close_clients` / `abort_clients` with connections still open. Each test
//! names the CPython test it comes from. (`UnixServerCleanupTests` is in
//! `tests/asyncio_server.rs`.)

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tulip::{LoopFuture, Server, StreamReader, StreamWriter, net::ServerOptions};

const HELLO: usize = 5 * 1024;

fn hello_msg() -> Vec<u8> {
    let mut m = vec![b'1'; HELLO];
    m.push(b'\n');
    m
}

/// asyncio's `serve`: reads the line, has the main task cancelled, answers one byte.
fn serve(
    cancel_main: LoopFuture<()>,
) -> impl Fn(
    StreamReader,
    StreamWriter,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>>>>
+ 'static {
    move |mut r, w| {
        let cancel_main = cancel_main.clone();
        Box::pin(async move {
            r.readline().await?;
            if !cancel_main.done() {
                cancel_main.set_result(());
            }
            w.write(b"1");
            w.close();
            w.wait_closed().await
        })
    }
}

/// asyncio's `main`: `serve_forever`, as a task the test cancels when told to; then checks
/// what asyncio checks of the closed server.
async fn run_main(srv: Rc<Server>, cancel_main: LoopFuture<()>) {
    let s2 = srv.clone();
    let main = tulip::spawn(async move { s2.serve_forever().await });
    cancel_main.await.unwrap();
    assert!(main.cancel().await.is_none(), "CancelledError");
    assert!(srv.sockets().is_empty(), "{:?}", srv.sockets());
    assert!(!srv.is_serving());
    let e = srv.serve_forever().await.unwrap_err();
    assert!(e.to_string().contains("is closed"), "{e}");
}

// CPython: test_server.py BaseStartServer.test_start_server_1
#[tulip::test]
async fn test_start_server_1() {
    let _w = support::watchdog("test_start_server_1", 10);
    let cancel_main = tulip::get_running_loop().create_future::<()>();
    let srv = tulip::start_server(
        serve(cancel_main.clone()),
        "127.0.0.1",
        0,
        ServerOptions::new().start_serving(false),
    )
    .await
    .unwrap();
    assert!(!srv.is_serving());
    let addr = srv.local_addr().unwrap();
    let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        // Connecting before serve_forever starts serving only queues in the backlog.
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(&hello_msg())?;
        let mut b = vec![0; 1];
        s.read_exact(&mut b)?;
        Ok(b)
    });
    run_main(Rc::new(srv), cancel_main).await;
    assert_eq!(support_join(client).await, b"1");
}

// CPython: test_server.py SelectorStartServerTests.test_start_unix_server_1 (with
// `start_serving()` called by hand before `serve_forever`)
#[tulip::test]
async fn test_start_unix_server_1() {
    let _w = support::watchdog("test_start_unix_server_1", 10);
    let path = SockPath::new("start_unix_server_1");
    let cancel_main = tulip::get_running_loop().create_future::<()>();
    let srv = tulip::start_unix_server(
        serve(cancel_main.clone()),
        &path.0,
        ServerOptions::new().start_serving(false),
    )
    .await
    .unwrap();
    assert!(!srv.is_serving());
    srv.start_serving();
    assert!(srv.is_serving());
    let p = path.0.clone();
    let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = std::os::unix::net::UnixStream::connect(p)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(&hello_msg())?;
        let mut b = vec![0; 1];
        s.read_exact(&mut b)?;
        Ok(b)
    });
    run_main(Rc::new(srv), cancel_main).await;
    assert_eq!(support_join(client).await, b"1");
}

async fn support_join<T>(h: std::thread::JoinHandle<io::Result<T>>) -> T {
    for _ in 0..5000 {
        if h.is_finished() {
            return h.join().expect("client thread panicked").expect("client");
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    panic!("client thread still running");
}

/// A socket path in a fresh temporary directory (removed on drop).
struct SockPath(PathBuf);

impl SockPath {
    fn new(name: &str) -> SockPath {
        let dir =
            std::env::temp_dir().join(format!("tulip-asyncio-serve-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        SockPath(dir.join("sock"))
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

/// asyncio's `TestServer2` server: each handler reads to EOF, then closes.
async fn read_to_eof_server() -> Rc<Server> {
    let srv = tulip::start_server(
        |mut rd: StreamReader, wr: StreamWriter| async move {
            let _ = rd.read_to_eof().await;
            wr.close();
            let _ = wr.wait_closed().await;
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    Rc::new(srv)
}

fn wait_closed_task(srv: &Rc<Server>) -> tulip::Task<()> {
    let s = srv.clone();
    tulip::spawn(async move { s.wait_closed().await })
}

/// A few loop iterations (asyncio's `await asyncio.sleep(0)`, a couple of times).
async fn run_briefly() {
    for _ in 0..3 {
        tulip::yield_now().await;
    }
}

// CPython: test_server.py TestServer2.test_wait_closed_basic: `wait_closed` returns only
// once the server is closed and its last connection is gone.
#[tulip::test]
async fn test_wait_closed_basic() {
    let _w = support::watchdog("test_wait_closed_basic", 10);
    let srv = read_to_eof_server().await;
    // Not closed, no connection: waits.
    let task1 = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task1.is_finished());
    // Not closed, a connection: waits.
    let port = srv.local_addr().unwrap().port();
    let (_rd, wr) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    let task2 = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task1.is_finished() && !task2.is_finished());
    // Closed, a connection: waits.
    srv.close();
    run_briefly().await;
    let task3 = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task1.is_finished() && !task2.is_finished() && !task3.is_finished());
    // Closed, no connection: done.
    wr.close();
    wr.wait_closed().await.unwrap();
    for t in [task1, task2, task3] {
        tulip::timeout(Duration::from_secs(5), t)
            .await
            .expect("wait_closed did not return");
    }
    srv.wait_closed().await; // at once
}

// CPython: test_server.py TestServer2.test_wait_closed_race
#[tulip::test]
async fn test_wait_closed_race() {
    let _w = support::watchdog("test_wait_closed_race", 10);
    let srv = read_to_eof_server().await;
    let task = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task.is_finished());
    let port = srv.local_addr().unwrap().port();
    let (_rd, wr) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    let lp = tulip::get_running_loop();
    let s2 = srv.clone();
    lp.call_soon(move || s2.close());
    lp.call_soon(move || wr.close());
    tulip::timeout(Duration::from_secs(5), srv.wait_closed())
        .await
        .expect("wait_closed did not return");
    task.await;
}

// CPython: test_server.py TestServer2.test_close_clients
#[tulip::test]
async fn test_close_clients() {
    let _w = support::watchdog("test_close_clients", 10);
    let srv = read_to_eof_server().await;
    let port = srv.local_addr().unwrap().port();
    let (_rd, _wr) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    let task = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task.is_finished());
    srv.close();
    srv.close_clients();
    run_briefly().await;
    assert!(
        task.is_finished(),
        "close_clients ended the connection at once"
    );
}

// CPython: test_server.py TestServer2.test_abort_clients: the server's writer has data
// buffered (the client does not read), and `abort_clients` still ends it at once.
#[tulip::test]
async fn test_abort_clients() {
    let _w = support::watchdog("test_abort_clients", 10);
    let got: Rc<RefCell<Option<StreamWriter>>> = Rc::default();
    let g2 = got.clone();
    let srv = Rc::new(
        tulip::start_server(
            move |_rd: StreamReader, wr: StreamWriter| {
                let g2 = g2.clone();
                async move {
                    *g2.borrow_mut() = Some(wr.clone());
                    let _ = wr.wait_closed().await;
                }
            },
            "127.0.0.1",
            0,
            Default::default(),
        )
        .await
        .unwrap(),
    );
    let port = srv.local_addr().unwrap().port();
    let (c_rd, _c_wr) = tulip::open_connection(
        "127.0.0.1",
        port,
        tulip::net::ConnectOptions::new().limit(4096),
    )
    .await
    .unwrap();
    while got.borrow().is_none() {
        tulip::sleep(Duration::from_millis(1)).await;
    }
    let s_wr = got.borrow().clone().unwrap();
    // The client's reader pauses (more than twice its limit), then the server's write
    // buffer fills.
    for _ in 0..3 {
        s_wr.write(&[b'a'; 4096]);
    }
    while c_rd.transport().is_reading() {
        tulip::sleep(Duration::from_millis(1)).await;
    }
    let chunk = vec![b'a'; 256 * 1024];
    for _ in 0..100 {
        s_wr.write(&chunk);
        if s_wr.transport().get_write_buffer_size() > 0 {
            break;
        }
    }
    assert_ne!(s_wr.transport().get_write_buffer_size(), 0);
    drop(s_wr);
    got.borrow_mut().take();
    let task = wait_closed_task(&srv);
    run_briefly().await;
    assert!(!task.is_finished());
    srv.close();
    srv.abort_clients();
    run_briefly().await;
    assert!(
        task.is_finished(),
        "abort_clients ended the connection at once"
    );
}
