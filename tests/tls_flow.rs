//! TLS under flow control: 32 MiB with a pausing reader, slow stream readers, writes far
//! larger than rustls's buffers, write-then-close right after the handshake, pause_reading
//! inside data_received. Certificates are made with rcgen at test time.
mod proto_support;
mod support;
mod tls_common;
mod tls_support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_support::*;
use tls_common::*;
use tls_support::*;
use tulip::tls::rustls;

// ---- 32 MiB under flow control ------------------------------------------------------------------

#[tulip::test]
async fn thirty_two_mib_with_a_pausing_reader_arrive_intact_and_memory_stays_bounded() {
    let _w = support::watchdog("bulk_32mib", 30);
    const TOTAL: usize = 32 * MIB;
    let pki = Pki::new();
    // The server pauses reading for 150 ms at 4, 12, 20 and 28 MiB.
    let pauses: Rc<RefCell<Vec<(usize, usize)>>> = Rc::default();
    let ps = pauses.clone();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), move |p| {
        let next = Rc::new(Cell::new(4 * MIB));
        let (p2, ps) = (p.clone(), ps.clone());
        Rec::new(p).on_data(move |t, _| {
            let got = p2.received_len();
            if got >= next.get() {
                next.set(next.get() + 8 * MIB);
                t.pause_reading();
                assert!(!t.is_reading());
                let (t, p3, ps) = (t.clone(), p2.clone(), ps.clone());
                tulip::get_running_loop().call_later(Duration::from_millis(150), move || {
                    ps.borrow_mut().push((got, p3.received_len()));
                    t.resume_reading();
                });
            }
        })
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    let (low, high) = t.get_write_buffer_limits();
    let mut src = ByteStream::new(0x5eed);
    let mut rng = Rng::new(42);
    let mut sum = Checksum::default();
    let (mut sent, mut max_buf) = (0, 0);
    while sent < TOTAL {
        if cp.paused.get() {
            cp.wait_resumed(10.0).await;
        }
        let n = rng.range(1, 64 * KIB).min(TOTAL - sent);
        let chunk = src.take(n);
        sum.update(&chunk);
        t.write(&chunk);
        sent += n;
        max_buf = max_buf.max(t.get_write_buffer_size());
    }
    t.close();
    assert_eq!(cp.wait_lost(20.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    assert_eq!(sp.wait_lost(20.0).await, None);
    assert_eq!(sp.received_len(), TOTAL);
    let mut got = Checksum::default();
    got.update(&sp.received());
    assert_eq!(got.finish(), sum.finish(), "every byte, in order");
    // The writer was held back: pause_writing came over the high-water mark, and the
    // buffer never grew past it by more than one write.
    let ce = cp.events();
    assert_stream_order(&ce);
    assert!(cp.count(|e| *e == Event::PW) >= 1, "no pause_writing");
    for (pause, size) in cp.flow_sizes.borrow().iter() {
        if *pause {
            assert!(*size > high, "PW at {size} <= high {high}");
        } else {
            assert!(*size <= low, "RW at {size} > low {low}");
        }
    }
    assert!(
        max_buf < high + 64 * KIB + 4 * KIB,
        "write buffer reached {max_buf}"
    );
    // The reader's pauses held: little arrived while paused (at most the rest of one read).
    let pauses = pauses.borrow();
    assert_eq!(pauses.len(), 4, "{pauses:?}");
    for (at, at_resume) in pauses.iter() {
        assert!(
            at_resume - at <= 300 * KIB,
            "{} bytes arrived while paused",
            at_resume - at
        );
    }
    let se = sp.events();
    assert_stream_order(&se);
    assert_eq!(se[se.len() - 2], Event::ER);
    server.close();
}

#[tulip::test]
async fn eight_mib_through_tls_streams_to_a_slow_reader() {
    let _w = support::watchdog("bulk_streams", 30);
    const TOTAL: usize = 8 * MIB;
    let pki = Pki::new();
    let result: Rc<RefCell<Option<(u64, u64)>>> = Rc::default();
    let res = result.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let res = res.clone();
            async move {
                let mut sum = Checksum::default();
                let mut reads = 0;
                loop {
                    let d = r.read(32 * KIB).await?;
                    if d.is_empty() {
                        break;
                    }
                    sum.update(&d);
                    reads += 1;
                    if reads % 16 == 0 {
                        tulip::sleep(Duration::from_millis(3)).await;
                    }
                }
                *res.borrow_mut() = Some(sum.finish());
                w.write(b"done");
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    let (_, high) = w.transport().get_write_buffer_limits();
    let mut src = ByteStream::new(77);
    let mut rng = Rng::new(78);
    let mut sum = Checksum::default();
    let (mut sent, mut max_buf, mut paused) = (0, 0, 0);
    while sent < TOTAL {
        let n = rng.range(1, 64 * KIB).min(TOTAL - sent);
        let chunk = src.take(n);
        sum.update(&chunk);
        w.write(&chunk);
        sent += n;
        max_buf = max_buf.max(w.transport().get_write_buffer_size());
        if w.transport().get_write_buffer_size() > high {
            paused += 1;
        }
        w.drain().await.unwrap();
    }
    // No half-close with TLS: close (close_notify) is the end of the data.
    w.close();
    // The server answers with "done" only after reading everything; the client closed,
    // so the answer may or may not arrive. What matters: the server got every byte.
    let _ = r.read_to_eof().await;
    let until = Instant::now() + Duration::from_secs(20);
    while result.borrow().is_none() {
        assert!(Instant::now() < until, "the server never saw the end");
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(result.borrow().unwrap(), sum.finish());
    assert!(paused > 0, "the slow reader never held the writer back");
    assert!(
        max_buf < high + 64 * KIB + 4 * KIB,
        "write buffer reached {max_buf}"
    );
    server.close();
}

#[tulip::test]
async fn one_write_far_larger_than_rustls_buffers_arrives_whole() {
    // rustls refuses plaintext past 64 KiB of unsent records by default; one write of
    // 4 MiB must still go out whole (the raw transport buffers; pause_writing follows).
    let _w = support::watchdog("one_big_write", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_made(|t| t.write(b"hi"))
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    cp.wait_bytes(2, 5.0).await;
    let big = ByteStream::new(9).take(4 * MIB);
    t.write(&big);
    assert!(
        cp.paused.get(),
        "one big write goes over the high-water mark"
    );
    assert!(t.get_write_buffer_size() > t.get_write_buffer_limits().1);
    cp.wait_resumed(10.0).await;
    t.close();
    assert_eq!(cp.wait_lost(10.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    assert_eq!(sp.wait_lost(10.0).await, None);
    assert_eq!(sp.received_len(), 4 * MIB, "bytes lost in one 4 MiB write");
    assert!(sp.received() == big);
    server.close();
}

#[tulip::test]
async fn one_write_larger_than_64_kib_through_streams_arrives_whole() {
    let _w = support::watchdog("one_big_stream_write", 10);
    let pki = Pki::new();
    let got: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let g = g.clone();
            async move {
                w.write(b"hi\n");
                let all = r.read_to_eof().await?;
                *g.borrow_mut() = Some(all);
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    assert_eq!(r.readline().await.unwrap(), b"hi\n");
    let big = ByteStream::new(1).take(MIB + 7);
    w.write(&big);
    w.drain().await.unwrap();
    w.close();
    w.wait_closed().await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while got.borrow().is_none() {
        assert!(Instant::now() < until, "the server never saw the end");
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert!(got.borrow().as_deref() == Some(&big[..]));
    server.close();
}

/// Writes `n` × 60 KiB right after the handshake, closes at once, and returns what the
/// server got and how its connection ended.
async fn write_then_close_at_once(
    scfg: Arc<rustls::ServerConfig>,
    ccfg: Arc<rustls::ClientConfig>,
    n: usize,
) -> (bool, Option<io::ErrorKind>, usize) {
    let (server, probes, addr) = recording_server(tls_server(scfg), Rec::new).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(ccfg), &cp).await.unwrap();
    let mut src = ByteStream::new(11);
    let mut sent = Vec::new();
    for _ in 0..n {
        let c = src.take(60 * KIB);
        t.write(&c);
        sent.extend_from_slice(&c);
    }
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    let kind = sp.wait_lost(5.0).await;
    assert_stream_order(&sp.events());
    server.close();
    (sp.received() == sent, kind, sp.received_len())
}

#[tulip::test]
async fn write_then_close_right_after_the_handshake_loses_nothing() {
    // close() must not stop reading at once: the server's TLS 1.3 session tickets arrive
    // just after the client's handshake is done, and closing a socket with unread data
    // makes the kernel send RST, which destroys what the peer has not read yet.
    let _w = support::watchdog("write_close_at_once", 10);
    let pki = Pki::new();
    let (same, kind, got) =
        write_then_close_at_once(pki.server_config(), pki.client_config(), 16).await;
    assert_eq!(
        (got, kind),
        (16 * 60 * KIB, None),
        "data lost, connection reset"
    );
    assert!(same);
}

#[tulip::test]
async fn write_then_close_right_after_the_handshake_without_post_handshake_messages() {
    // The same with nothing unread at the client (TLS 1.2, or no TLS 1.3 tickets): all of
    // it arrives, then the close_notify.
    let _w = support::watchdog("write_close_at_once_ok", 10);
    let pki = Pki::new();
    let ccfg = custom_client_config(&pki.ca, &[], None, TLS12);
    let r = write_then_close_at_once(pki.server_config(), ccfg, 16).await;
    assert_eq!(r, (true, None, 16 * 60 * KIB));
    let mut scfg = (*custom_server_config(&pki.server, &[], None, ALL)).clone();
    scfg.send_tls13_tickets = 0;
    let r = write_then_close_at_once(Arc::new(scfg), pki.client_config(), 16).await;
    assert_eq!(r, (true, None, 16 * 60 * KIB));
}

#[tulip::test]
async fn pause_reading_inside_data_received_stops_delivery_at_once() {
    let _w = support::watchdog("pause_inside_data_received", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_data(|t, _| t.pause_reading())
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    const TOTAL: usize = 512 * KIB;
    let mut src = ByteStream::new(5);
    for _ in 0..TOTAL / (16 * KIB) {
        t.write(&src.take(16 * KIB));
    }
    let sp = wait_probes(&probes, 1, 5.0).await[0].clone();
    let mut seen = 0;
    while sp.received_len() < TOTAL {
        sp.wait_for(5.0, "a data_received", |p| {
            p.count(|e| matches!(e, Event::DR(_))) > seen
        })
        .await;
        tulip::sleep(Duration::from_millis(5)).await;
        let drs = sp.count(|e| matches!(e, Event::DR(_)));
        assert_eq!(
            drs,
            seen + 1,
            "data_received after pause_reading: {:?}",
            sp.events()
        );
        seen = drs;
        sp.transport().resume_reading();
    }
    t.close();
    cp.wait_lost(5.0).await;
    server.close();
}
