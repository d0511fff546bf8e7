//! Write-side flow control of the socket transport: water marks, `pause_writing` /
//! `resume_writing`, the write-buffer size, and 64 MiB through a slow reader.

mod proto_support;
mod support;

use std::io;
use std::time::Duration;

use proto_support::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[tulip::test]
async fn write_buffer_limits_defaults_and_validation() {
    let _w = support::watchdog("limits", 10);
    let p = Probe::new();
    let (t, _peer) = connect_to_std_peer(Rec::new(&p)).await;
    // asyncio's defaults: high 64 KiB, low high / 4; returned as (low, high).
    assert_eq!(t.get_write_buffer_limits(), (16 * KIB, 64 * KIB));
    t.set_write_buffer_limits(Some(100), Some(10)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (10, 100));
    t.set_write_buffer_limits(None, Some(1000)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (1000, 4000), "high = 4 x low");
    t.set_write_buffer_limits(Some(80), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (20, 80), "low = high / 4");
    t.set_write_buffer_limits(Some(50), Some(50)).unwrap();
    assert_eq!(
        t.get_write_buffer_limits(),
        (50, 50),
        "high == low is allowed"
    );
    let err = t.set_write_buffer_limits(Some(1), Some(2)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        t.get_write_buffer_limits(),
        (50, 50),
        "unchanged by the error"
    );
    t.set_write_buffer_limits(None, None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * KIB, 64 * KIB));
    assert_eq!(t.get_write_buffer_size(), 0);
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

/// With the peer not reading and the kernel's buffers full, everything written stays in the
/// transport's buffer, so the size is exact and the water marks can be tested to the byte.
/// Nothing here awaits: the loop cannot flush in between.
#[tulip::test]
async fn pause_strictly_over_high_and_resume_at_or_below_low() {
    let _w = support::watchdog("pause_resume_marks", 20);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.set_write_buffer_limits(Some(usize::MAX / 4), Some(0))
        .unwrap();
    let mut bs = ByteStream::new(5);
    let mut sum = Checksum::default();
    let first = bs.take(16 * MIB);
    sum.update(&first);
    t.write(&first);
    let s = t.get_write_buffer_size();
    assert!(
        s > 0 && s < 16 * MIB,
        "the kernel took some, the rest is buffered: {s}"
    );
    let ten = bs.take(10);
    sum.update(&ten);
    t.write(&ten);
    assert_eq!(t.get_write_buffer_size(), s + 10, "exact size");
    let size = s + 10;

    // At high exactly: no pause.
    t.set_write_buffer_limits(Some(size), Some(0)).unwrap();
    assert_eq!(
        p.count(|e| *e == Event::PW),
        0,
        "size == high must not pause"
    );
    // One byte over: pause, at once (the protocol is not busy).
    let one = bs.take(1);
    sum.update(&one);
    t.write(&one);
    assert_eq!(p.events(), [Event::CM, Event::PW]);
    assert_eq!(p.flow_sizes.borrow()[0], (true, size + 1));
    // More while paused: buffered, no second pause.
    let more = bs.take(1000);
    sum.update(&more);
    t.write(&more);
    assert_eq!(t.get_write_buffer_size(), size + 1001);
    assert_eq!(p.count(|e| *e == Event::PW), 1);
    let size = size + 1001;

    // low just below the size: still paused; at the size: resumed.
    t.set_write_buffer_limits(Some(usize::MAX / 4), Some(size - 1))
        .unwrap();
    assert_eq!(
        p.count(|e| *e == Event::RW),
        0,
        "size > low must not resume"
    );
    t.set_write_buffer_limits(Some(usize::MAX / 4), Some(size))
        .unwrap();
    assert_eq!(
        p.events(),
        [Event::CM, Event::PW, Event::RW],
        "size == low resumes"
    );
    assert_eq!(p.flow_sizes.borrow()[1], (false, size));

    // A drain to low pauses/resumes through the loop as well: pause again, then read.
    t.set_write_buffer_limits(Some(size - 1), Some(64 * KIB))
        .unwrap();
    assert_eq!(
        p.count(|e| *e == Event::PW),
        2,
        "already over the new high: pause"
    );
    let reader = checksum_reader(peer, 0);
    p.wait_resumed(10.0).await;
    let (paused, at) = p.flow_sizes.borrow()[3];
    assert!(!paused && at <= 64 * KIB, "resumed at {at} > low");
    t.close();
    assert_eq!(p.wait_lost(10.0).await, None);
    let got = join_thread(reader, 10.0).await.unwrap();
    assert_eq!(got, sum.finish(), "no byte lost");
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(
        ev,
        [
            Event::CM,
            Event::PW,
            Event::RW,
            Event::PW,
            Event::RW,
            Event::CL(None)
        ]
    );
}

/// The peer stops reading: tulip writes until `pause_writing` (once); then the peer reads
/// everything: `resume_writing` once, and every byte arrives.
#[tulip::test]
async fn a_stalled_peer_pauses_once_then_resumes_once_without_loss() {
    let _w = support::watchdog("stalled_peer", 20);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    let (low, high) = t.get_write_buffer_limits();
    let mut bs = ByteStream::new(42);
    let mut sum = Checksum::default();
    let chunk = 16 * KIB;
    let mut written = 0usize;
    while !p.paused.get() {
        let d = bs.take(chunk);
        sum.update(&d);
        t.write(&d);
        written += chunk;
        assert!(written < 512 * MIB, "never paused");
    }
    assert_eq!(p.count(|e| *e == Event::PW), 1);
    let at_pause = p.flow_sizes.borrow()[0].1;
    assert!(at_pause > high, "paused at {at_pause} <= high {high}");
    assert_eq!(t.get_write_buffer_size(), at_pause);
    // Writing on while paused is allowed: it is buffered, with no second pause.
    for _ in 0..4 {
        let d = bs.take(chunk);
        sum.update(&d);
        t.write(&d);
        written += chunk;
    }
    assert!(t.get_write_buffer_size() >= at_pause + 4 * chunk - chunk);
    tulip::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.events(),
        [Event::CM, Event::PW],
        "still one pause, no resume"
    );
    let reader = checksum_reader(peer, 0);
    p.wait_resumed(10.0).await;
    assert_eq!(p.count(|e| *e == Event::RW), 1);
    let at_resume = p.flow_sizes.borrow()[1].1;
    assert!(at_resume <= low, "resumed at {at_resume} > low {low}");
    t.close();
    assert_eq!(p.wait_lost(10.0).await, None);
    let (h, len) = join_thread(reader, 10.0).await.unwrap();
    assert_eq!(len as usize, written);
    assert_eq!((h, len), sum.finish(), "checksum");
    assert_eq!(
        p.events(),
        [Event::CM, Event::PW, Event::RW, Event::CL(None)]
    );
}

/// 64 MiB of a seeded stream in random-size writes (1 byte to 256 KiB) to a reader thread
/// that is slow for the first 4 MiB; the writer respects pause/resume.
#[tulip::test]
async fn sixty_four_mib_with_random_writes_and_a_slow_reader() {
    let _w = support::watchdog("64mib", 60);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    let (low, high) = t.get_write_buffer_limits();
    let reader = checksum_reader(peer, 4 * MIB);
    let total = 64 * MIB;
    let mut rng = Rng::new(0x5EED);
    let mut bs = ByteStream::new(0xDA7A);
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 256 * KIB];
    let (mut sent, mut writes, mut max_buffered) = (0usize, 0usize, 0usize);
    while sent < total {
        if p.paused.get() {
            p.wait_resumed(20.0).await;
            continue;
        }
        let n = if rng.next_u64() % 4 == 0 {
            rng.range(1, 100)
        } else {
            rng.range(1, 256 * KIB)
        }
        .min(total - sent);
        bs.fill(&mut buf[..n]);
        sum.update(&buf[..n]);
        t.write(&buf[..n]);
        sent += n;
        writes += 1;
        max_buffered = max_buffered.max(t.get_write_buffer_size());
    }
    t.close();
    assert_eq!(p.wait_lost(30.0).await, None);
    let (h, len) = join_thread(reader, 30.0).await.unwrap();
    assert_eq!(len as usize, total);
    assert_eq!((h, len), sum.finish(), "checksum");
    let ev = p.events();
    assert_stream_order(&ev);
    let pw = p.count(|e| *e == Event::PW);
    assert!(
        pw >= 1,
        "a slow reader must cause a pause ({writes} writes)"
    );
    assert_eq!(pw, p.count(|e| *e == Event::RW), "{ev:?}");
    for &(paused, size) in p.flow_sizes.borrow().iter() {
        if paused {
            assert!(size > high, "paused at {size}");
        } else {
            assert!(size <= low, "resumed at {size}");
        }
    }
    assert!(
        max_buffered <= high + 256 * KIB,
        "buffer grew to {max_buffered}"
    );
}

/// A pause that falls due while the protocol is inside a callback (here it writes 8 MiB in
/// `connection_made`) is delivered right after that callback returns.
#[tulip::test]
async fn a_pause_due_inside_a_callback_comes_right_after_it() {
    let _w = support::watchdog("pause_after_callback", 10);
    let p = Probe::new();
    let probe = p.clone();
    let seen_inside = std::rc::Rc::new(std::cell::Cell::new(None));
    let si = seen_inside.clone();
    let (t, _peer) = connect_to_std_peer(Rec::new(&p).on_made(move |t| {
        t.write(&vec![0u8; 8 * MIB]);
        si.set(Some((probe.paused.get(), t.get_write_buffer_size())));
    }))
    .await;
    let (paused_inside, size) = seen_inside.get().unwrap();
    assert!(!paused_inside, "not delivered re-entrantly");
    assert!(size > 64 * KIB);
    // create_connection returns after connection_made; the pause came right after it.
    assert_eq!(p.events(), [Event::CM, Event::PW]);
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.events(), [Event::CM, Event::PW, Event::CL(None)]);
}

/// `get_write_buffer_size` counts exactly what is buffered, and drops to 0 when drained.
#[tulip::test]
async fn write_buffer_size_tracks_buffered_bytes() {
    let _w = support::watchdog("buffer_size", 20);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    t.write(b"small");
    assert_eq!(t.get_write_buffer_size(), 0, "sent at once");
    t.write(&vec![1u8; 16 * MIB]);
    let s = t.get_write_buffer_size();
    assert!(s > 0);
    t.writelines([&b"ab"[..], &b""[..], &b"cde"[..]]);
    assert_eq!(t.get_write_buffer_size(), s + 5);
    let reader = checksum_reader(peer, 0);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while t.get_write_buffer_size() > 0 {
        assert!(std::time::Instant::now() < until, "never drained");
        tulip::sleep(Duration::from_millis(1)).await;
    }
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    let (_, len) = join_thread(reader, 10.0).await.unwrap();
    assert_eq!(len as usize, 5 + 16 * MIB + 5);
    assert_eq!(
        p.events(),
        [Event::CM, Event::CL(None)],
        "no pause with a huge high mark"
    );
}

/// The checksum the tests rely on does not depend on how the bytes are split, and catches a
/// single flipped byte.
#[test]
fn the_checksum_is_split_independent_and_catches_corruption() {
    let data = ByteStream::new(3).take(100_003);
    let mut whole = Checksum::default();
    whole.update(&data);
    let mut split = Checksum::default();
    let mut rng = Rng::new(9);
    let mut i = 0;
    while i < data.len() {
        let n = rng.range(1, 30).min(data.len() - i);
        split.update(&data[i..i + n]);
        i += n;
    }
    assert_eq!(whole.finish(), split.finish());
    let mut bad = data.clone();
    bad[50_000] ^= 1;
    let mut b = Checksum::default();
    b.update(&bad);
    assert_ne!(whole.finish(), b.finish());
    // The stream is the same however it is taken.
    let mut s = ByteStream::new(3);
    let mut v = Vec::new();
    while v.len() < data.len() {
        let n = rng.range(1, 30).min(data.len() - v.len());
        v.extend(s.take(n));
    }
    assert!(v == data);
}

/// asyncio's producer pattern: the protocol writes its next chunk from `resume_writing`.
/// When the flush that resumed it emptied the buffer, the new chunk (bigger than the kernel
/// takes) must still be flushed: the transport has to look at the buffer again after
/// `resume_writing` (asyncio: `_maybe_resume_protocol()  # May append to buffer.`).
#[tulip::test]
async fn writing_from_resume_writing_does_not_stall() {
    let _w = support::watchdog("write_in_resume", 30);
    struct Pump {
        bs: ByteStream,
        sum: Checksum,
        sent: usize,
    }
    const TOTAL: usize = 48 * MIB;
    const CHUNK: usize = 8 * MIB;
    let st = std::rc::Rc::new(std::cell::RefCell::new(Pump {
        bs: ByteStream::new(77),
        sum: Checksum::default(),
        sent: 0,
    }));
    let pump = |st: std::rc::Rc<std::cell::RefCell<Pump>>| {
        move |t: &tulip::Transport| {
            let mut s = st.borrow_mut();
            if s.sent >= TOTAL {
                t.close();
                return;
            }
            let d = s.bs.take(CHUNK);
            s.sum.update(&d);
            s.sent += CHUNK;
            t.write(&d);
        }
    };
    let p = Probe::new();
    let rec = Rec::new(&p)
        .on_made(pump(st.clone()))
        .on_resume(pump(st.clone()));
    let (t, peer) = connect_to_std_peer(rec).await;
    let fd = transport_fd(&t);
    let reader = checksum_reader(peer, 0);
    let lost = tulip::timeout(Duration::from_secs(8), p.lost.clone()).await;
    assert!(
        lost.is_ok(),
        "stalled: {} of {TOTAL} bytes written, {} buffered, (reader, writer) wanted: {:?}, events {:?}",
        st.borrow().sent,
        t.get_write_buffer_size(),
        tulip::get_running_loop().fd_interest(fd).0,
        p.events()
    );
    assert_eq!(p.lost_kind(), Some(None));
    let got = join_thread(reader, 10.0).await.unwrap();
    assert_eq!(got, st.borrow().sum.finish());
    assert_eq!(got.1 as usize, TOTAL);
    assert_stream_order(&p.events());
}
