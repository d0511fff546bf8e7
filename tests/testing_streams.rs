//! `tulip::testing::MemorySocket` under streams: `readline`, `readexactly` and `readuntil`
//! at every split point of a message, EOF in the middle of a frame, `LimitOverrun` with
//! chunked feeding, the reader pausing the transport when its buffer is full, `drain` with a
//! stalled peer, and two stream pairs (and a `tulip::Stream` with futures-io) over a pair.

mod support;

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use tulip::testing::{MemorySocket, settle};
use tulip::{IncompleteRead, LimitOverrun};

/// A frame: a 2-byte big-endian length, then the payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

async fn read_frame(r: &mut tulip::StreamReader) -> io::Result<Vec<u8>> {
    let len = r.readexactly(2).await?;
    r.readexactly(u16::from_be_bytes([len[0], len[1]]) as usize)
        .await
}

#[tulip::test]
async fn readline_at_every_split_point() {
    let _w = support::watchdog("readline_split", 20);
    let msg = b"first line\nsecond\n\nno newline";
    for i in 0..=msg.len() {
        let sock = MemorySocket::new();
        let (mut r, _w) = sock.open_connection(None);
        sock.feed_chunks([&msg[..i], &msg[i..]]);
        sock.feed_eof();
        assert_eq!(r.readline().await.unwrap(), b"first line\n", "split at {i}");
        assert_eq!(r.readline().await.unwrap(), b"second\n");
        assert_eq!(r.readline().await.unwrap(), b"\n");
        assert_eq!(
            r.readline().await.unwrap(),
            b"no newline",
            "the partial line at EOF"
        );
        assert_eq!(r.readline().await.unwrap(), b"");
        assert!(r.at_eof());
    }
}

#[tulip::test]
async fn readexactly_frames_at_every_pair_of_split_points() {
    let _w = support::watchdog("readexactly_split", 30);
    let mut msg = frame(b"hello");
    msg.extend(frame(b""));
    msg.extend(frame(b"a longer payload"));
    for i in 0..=msg.len() {
        for j in i..=msg.len() {
            let sock = MemorySocket::new();
            let (mut r, _w) = sock.open_connection(None);
            sock.feed_chunks([&msg[..i], &msg[i..j], &msg[j..]]);
            assert_eq!(
                read_frame(&mut r).await.unwrap(),
                b"hello",
                "split {i}, {j}"
            );
            assert_eq!(read_frame(&mut r).await.unwrap(), b"");
            assert_eq!(read_frame(&mut r).await.unwrap(), b"a longer payload");
        }
    }
}

#[tulip::test]
async fn readuntil_a_separator_split_across_chunks() {
    let _w = support::watchdog("readuntil_split", 10);
    let msg = b"HEADER\r\n\r\nbody";
    for i in 0..=msg.len() {
        let sock = MemorySocket::new();
        let (mut r, _w) = sock.open_connection(None);
        sock.feed_chunks([&msg[..i], &msg[i..]]);
        assert_eq!(
            r.readuntil(b"\r\n\r\n").await.unwrap(),
            b"HEADER\r\n\r\n",
            "split at {i}"
        );
        assert_eq!(r.readexactly(4).await.unwrap(), b"body");
    }
}

#[tulip::test]
async fn eof_in_the_middle_of_a_frame_is_an_incomplete_read() {
    let _w = support::watchdog("eof_mid_frame", 10);
    let msg = frame(b"truncated payload");
    for cut in 0..msg.len() {
        let sock = MemorySocket::new();
        let (mut r, _w) = sock.open_connection(None);
        // The bytes before the cut arrive one by one, then the EOF.
        sock.feed_chunks(msg[..cut].chunks(1));
        sock.feed_eof();
        let err = read_frame(&mut r).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        let inc = IncompleteRead::from_io(&err).expect("an IncompleteRead");
        if cut < 2 {
            assert_eq!(
                (inc.partial.as_slice(), inc.expected),
                (&msg[..cut], Some(2))
            );
        } else {
            assert_eq!(inc.partial, &msg[2..cut]);
            assert_eq!(inc.expected, Some(msg.len() - 2));
        }
        assert!(r.at_eof());
    }
}

#[tulip::test]
async fn limit_overrun_with_chunked_feeding_and_the_stream_stays_usable() {
    let _w = support::watchdog("limit_overrun", 10);
    let long = b"way too long a line\n";
    for chunk in [1, 3, 7, 100] {
        let sock = MemorySocket::new();
        let (mut r, _w) = sock.open_connection(Some(8));
        let mut msg = long.to_vec();
        msg.extend_from_slice(b"ok\n");
        sock.feed_chunks(msg.chunks(chunk));
        let err = r.readline().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "chunks of {chunk}");
        assert!(LimitOverrun::from_io(&err).is_some());
        // asyncio's readline drops what it has of the overlong line. Arrived whole, that
        // is the line and the next one reads; arrived in pieces, the pieces still to come
        // are read as lines of their own (each an overrun again, or a tail of it).
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(
                rounds <= long.len(),
                "chunks of {chunk}: never got to the next line"
            );
            match r.readline().await {
                Ok(line) if line == b"ok\n" => break,
                Ok(line) => assert!(long.ends_with(&line), "chunks of {chunk}: {line:?}"),
                Err(e) => assert!(
                    LimitOverrun::from_io(&e).is_some(),
                    "chunks of {chunk}: {e}"
                ),
            }
        }
        if chunk >= msg.len() {
            assert_eq!(rounds, 1, "the whole line was dropped at once");
        }
    }
    // readuntil leaves the data in the buffer.
    let sock = MemorySocket::new();
    let (mut r, _w) = sock.open_connection(Some(4));
    sock.feed(b"0123456789;");
    let err = r.readuntil(b";").await.unwrap_err();
    let lo = LimitOverrun::from_io(&err).expect("a LimitOverrun");
    assert_eq!(lo.consumed, 10);
    assert_eq!(r.readexactly(11).await.unwrap(), b"0123456789;");
}

#[tulip::test]
async fn a_full_reader_pauses_the_transport_until_it_is_read() {
    let _w = support::watchdog("reader_pauses", 10);
    let sock = MemorySocket::new();
    let (mut r, w) = sock.open_connection(Some(100));
    settle().await;
    for _ in 0..10 {
        sock.feed(&[7; 50]);
    }
    settle().await;
    // More than 2 x limit buffered: the stream paused its transport; the rest is unread.
    assert!(!w.transport().is_reading());
    assert!(
        sock.unread() > 0 && sock.unread() < 500,
        "{}",
        sock.unread()
    );
    assert_eq!(r.readexactly(500).await.unwrap(), [7; 500]);
    settle().await;
    assert!(w.transport().is_reading());
    assert_eq!(sock.unread(), 0);
}

#[tulip::test]
async fn drain_waits_while_the_peer_does_not_read() {
    let _w = support::watchdog("drain_stalled", 10);
    let sock = MemorySocket::new();
    let (_r, w) = sock.open_connection(None);
    settle().await;
    sock.pause_peer_reading();
    w.write(&vec![1; 100 * 1024]); // over the 64 KiB high-water mark
    let drained = Rc::new(Cell::new(false));
    let d = drained.clone();
    let task = tulip::spawn(async move {
        w.drain().await?;
        d.set(true);
        w.close();
        w.wait_closed().await
    });
    settle().await;
    assert!(!drained.get(), "drain waits for the peer");
    assert!(sock.written().is_empty());
    sock.resume_peer_reading();
    task.await.unwrap();
    assert!(drained.get());
    assert_eq!(sock.written().len(), 100 * 1024);
    assert!(sock.is_closed());
}

#[tulip::test]
async fn a_reset_fails_the_waiting_reader() {
    let _w = support::watchdog("reset_reader", 10);
    let sock = MemorySocket::new();
    let (mut r, _w) = sock.open_connection(None);
    sock.feed(b"par");
    let s = sock.clone();
    tulip::get_running_loop().call_soon(move || s.reset());
    let err = r.readexactly(10).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tulip::test]
async fn two_stream_pairs_talk_over_a_pair() {
    let _w = support::watchdog("stream_pair", 10);
    let (a, b) = MemorySocket::pair();
    let (mut ar, aw) = a.open_connection(None);
    let (br, bw) = b.open_connection(None);
    let server = tulip::spawn(async move {
        // Uppercases lines until EOF, then closes.
        let mut br = br;
        loop {
            let line = br.readline().await?;
            if line.is_empty() {
                break;
            }
            bw.write(&line.to_ascii_uppercase());
            bw.drain().await?;
        }
        bw.close();
        bw.wait_closed().await
    });
    aw.write(b"one\ntwo\n");
    aw.write_eof();
    assert_eq!(ar.readline().await.unwrap(), b"ONE\n");
    assert_eq!(ar.readline().await.unwrap(), b"TWO\n");
    assert_eq!(ar.read(10).await.unwrap(), b"");
    server.await.unwrap();
    assert!(
        aw.get_extra_info("peername").is_some(),
        "a made-up peer name"
    );
}

#[tulip::test]
async fn a_stream_copies_through_futures_io() {
    let _w = support::watchdog("stream_futures_io", 10);
    let (a, b) = MemorySocket::pair();
    let (ar, aw) = a.open_connection(None);
    let (br, bw) = b.open_connection(None);
    let echo = tulip::spawn(async move {
        let (mut r, mut w) = br.unsplit(bw).into_split();
        futures_util::io::copy(&mut r, &mut w).await?;
        AsyncWriteExt::close(&mut w).await
    });
    let mut stream = ar.unsplit(aw);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut back = Vec::new();
    {
        let (mut r, mut w) = stream.into_split();
        let send = async {
            w.write_all(&data).await?;
            w.flush().await?;
            w.write_eof();
            io::Result::Ok(w)
        };
        let recv = async {
            r.read_to_end(&mut back).await?;
            io::Result::Ok(r)
        };
        let (w, r) = futures_util::future::try_join(send, recv).await.unwrap();
        stream = r.unsplit(w);
    }
    assert_eq!(back, data);
    echo.await.unwrap();
    AsyncWriteExt::close(&mut stream).await.unwrap();
}
