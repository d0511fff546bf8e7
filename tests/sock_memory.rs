//! Memory that follows the data: `sock_recv(sock, n)` and `sock_recvfrom(sock, n)` hold no
//! `n`-byte buffer while they wait and return vectors of the size received (asyncio
//! allocates in the `recv` and returns `bytes` of the exact length). Measured with a
//! counting allocator: bytes live on the test's thread.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const KIB: usize = 1024;

/// The system allocator, counting the bytes allocated minus freed on each thread.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + n));
}

// SAFETY: every call is forwarded to `System` unchanged; the counter is a plain
// thread-local cell with a const initialiser and no destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(l.size() as isize));
        // SAFETY: `p` came from this allocator (so from `System`) with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add(new as isize - l.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

#[tulip::test]
async fn an_11_byte_receive_returns_an_11_byte_vector() -> io::Result<()> {
    let _w = support::watchdog("recv_exact_size", 10);
    let (a, b) = pair()?;
    // At once (the data is there)…
    tulip::sock_sendall(&a, b"hello world").await?;
    let got = tulip::sock_recv(&b, 64 * KIB).await?;
    assert_eq!(got, b"hello world");
    assert!(got.capacity() < 64, "capacity {}", got.capacity());
    // …after waiting…
    let reader = tulip::spawn(async move {
        let v = tulip::sock_recv(&b, 64 * KIB).await;
        (v, b)
    });
    tulip::sleep(Duration::from_millis(5)).await;
    tulip::sock_sendall(&a, b"hello again").await?;
    let (got, b) = reader.await;
    let got = got?;
    assert_eq!(got, b"hello again");
    assert!(got.capacity() < 64, "capacity {}", got.capacity());
    // …and for an `n` beyond the loop's shared buffer.
    tulip::sock_sendall(&a, b"big n small data").await?;
    let got = tulip::sock_recv(&b, 4096 * KIB).await?;
    assert_eq!(got, b"big n small data");
    assert!(got.capacity() < 64, "capacity {}", got.capacity());
    // EOF is an empty vector that holds nothing.
    drop(a);
    let eof = tulip::sock_recv(&b, 64 * KIB).await?;
    assert!(eof.is_empty());
    assert_eq!(eof.capacity(), 0);
    Ok(())
}

#[tulip::test]
async fn an_11_byte_datagram_returns_an_11_byte_vector() -> io::Result<()> {
    let _w = support::watchdog("recvfrom_exact_size", 10);
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let to = b.local_addr()?;
    tulip::sock_sendto(&a, b"hello world", to).await?;
    let (d, from) = tulip::sock_recvfrom(&b, 64 * KIB).await?;
    assert_eq!(d, b"hello world");
    assert_eq!(from, a.local_addr()?);
    assert!(d.capacity() < 64, "capacity {}", d.capacity());
    Ok(())
}

/// 200 idle connections, each with a task waiting in `sock_recv(conn, 64 KiB)` (as
/// `examples/sock_echo_server.rs` does): before, each future took its 64 KiB on its first
/// poll and held it while it waited — 12.5 MiB for nothing.
#[tulip::test]
async fn waiting_sock_recv_futures_hold_no_buffer() -> io::Result<()> {
    let _w = support::watchdog("recv_holds_nothing", 20);
    const N: usize = 200;
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..N {
        let (a, b) = pair()?;
        writers.push(a);
        readers.push(b);
    }
    // Warm up: the loop's shared buffer and the selector's tables.
    {
        let (a, b) = pair()?;
        tulip::sock_sendall(&a, b"x").await?;
        tulip::sock_recv(&b, 64 * KIB).await?;
    }
    let before = live();
    let mut tasks = Vec::new();
    for b in readers {
        tasks.push(tulip::spawn(
            async move { tulip::sock_recv(&b, 64 * KIB).await },
        ));
    }
    // Let every task poll its future once and wait.
    for _ in 0..3 {
        tulip::sleep(Duration::from_millis(2)).await;
    }
    // Tasks, their futures and registrations: a few hundred bytes each, not 64 KiB.
    let per_task = (live() - before) / N as isize;
    assert!(
        per_task < 4 * KIB as isize,
        "{per_task} bytes per waiting sock_recv"
    );
    for a in &writers {
        tulip::sock_sendall(a, b"0123456789a").await?;
    }
    let mut total_capacity = 0;
    for t in tasks {
        let v = t.await?;
        assert_eq!(v, b"0123456789a");
        total_capacity += v.capacity();
    }
    assert!(
        total_capacity < N * 64,
        "{total_capacity} bytes for {N} × 11"
    );
    Ok(())
}
