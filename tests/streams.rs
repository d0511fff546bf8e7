//! Streams against asyncio's semantics, part 1: `readline` / `readuntil` / `readexactly` across
//! chunk boundaries and at EOF, and the buffer limit (`LimitOverrun`, the stream staying usable,
//! reading paused while nobody reads). `drain`, the `futures-io` impls, close and Unix sockets
//! are in `streams_drain_close.rs`.

mod proto_support;
mod stream_support;
mod support;

use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::time::Duration;

use proto_support::{ByteStream, join_thread};
use tulip::streams::DEFAULT_LIMIT;

use stream_support::*;

// ---- 1. readline ---------------------------------------------------------------------------

#[tulip::test]
async fn readline_across_chunk_boundaries_and_at_eof() -> io::Result<()> {
    let _w = support::watchdog("readline_across_chunk_boundaries_and_at_eof", 10);
    let (port, peer) = thread_peer(|mut s| -> io::Result<()> {
        let pieces: [&[u8]; 6] = [b"hel", b"lo wo", b"rld\nsec", b"ond", b"\n", b"\n"];
        for p in pieces {
            s.write_all(p)?;
            std::thread::sleep(ms(10));
        }
        for b in b"one byte at a time\n" {
            s.write_all(&[*b])?;
            std::thread::sleep(ms(1));
        }
        s.write_all(b"no newline")?;
        std::thread::sleep(ms(10));
        s.write_all(b" at the end")?;
        s.shutdown(Shutdown::Write)
    });
    let (mut r, _w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    assert_eq!(r.readline().await?, b"hello world\n");
    assert_eq!(r.readline().await?, b"second\n");
    assert_eq!(r.readline().await?, b"\n", "an empty line is not EOF");
    assert!(!r.at_eof());
    assert_eq!(r.readline().await?, b"one byte at a time\n");
    // EOF without a newline: the partial line, then empty lines for ever.
    assert_eq!(r.readline().await?, b"no newline at the end");
    assert!(r.at_eof());
    assert_eq!(r.readline().await?, b"");
    assert_eq!(r.readline().await?, b"");
    join_thread(peer, 5.0).await?;
    Ok(())
}

// ---- 2. readuntil --------------------------------------------------------------------------

#[tulip::test]
async fn readuntil_multibyte_separator_split_across_reads() -> io::Result<()> {
    let _w = support::watchdog("readuntil_multibyte_separator_split_across_reads", 10);
    let (mut r, _w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    // (first write, second write): the split falls inside the separator, or a false start
    // ("\r\n\r" then "x") precedes it, which the re-scan offset must not skip.
    let mut cases: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for split in 1..SEP.len() {
        let mut a = format!("GET /{split} HTTP/1.1\r\nHost: x").into_bytes();
        a.extend_from_slice(&SEP[..split]);
        cases.push((a, SEP[split..].to_vec()));
    }
    cases.push((b"ab\r\n\r".to_vec(), b"x\r\n\r\n".to_vec()));
    cases.push((b"\r\n\r".to_vec(), b"\r\n\r\n".to_vec()));
    for (a, b) in cases {
        tulip::sock_sendall(&peer, &a).await?;
        let got = {
            let mut fut = pin!(r.readuntil(SEP));
            // The reader takes the first piece and waits for the rest of the separator.
            assert!(
                tulip::timeout(ms(30), fut.as_mut()).await.is_err(),
                "readuntil returned before the separator was complete ({a:?})"
            );
            let mut second = b.clone();
            second.extend_from_slice(b"BODY");
            tulip::sock_sendall(&peer, &second).await?;
            fut.await?
        };
        let mut want = a.clone();
        want.extend_from_slice(&b);
        let first_sep = want.windows(SEP.len()).position(|w| w == SEP).unwrap();
        assert_eq!(got, &want[..first_sep + SEP.len()]);
        let mut rest = want[first_sep + SEP.len()..].to_vec();
        rest.extend_from_slice(b"BODY");
        assert_eq!(r.readexactly(rest.len()).await?, rest);
    }
    // A separator at the very start.
    tulip::sock_sendall(&peer, b"\r\n\r\nz").await?;
    assert_eq!(r.readuntil(SEP).await?, SEP);
    assert_eq!(r.readexactly(1).await?, b"z");

    // EOF before the separator: IncompleteRead with everything read, `expected` None; the
    // bytes are consumed.
    tulip::sock_sendall(&peer, b"tail without").await?;
    tulip::sleep(ms(10)).await;
    tulip::sock_sendall(&peer, b" a separator\r\n\r").await?;
    peer.shutdown(Shutdown::Write)?;
    let e = r.readuntil(SEP).await.unwrap_err();
    assert_incomplete(&e, b"tail without a separator\r\n\r", None);
    assert!(r.at_eof());
    assert_eq!(r.read(10).await?, b"");
    let e = r.readuntil(SEP).await.unwrap_err();
    assert_incomplete(&e, b"", None);
    Ok(())
}

// ---- 3. readexactly ------------------------------------------------------------------------

#[tulip::test]
async fn readexactly_exactly_available_and_incomplete_at_eof() -> io::Result<()> {
    let _w = support::watchdog("readexactly_exactly_available_and_incomplete_at_eof", 10);
    let (mut r, _w, peer) = sock_peer(DEFAULT_LIMIT).await?;
    assert_eq!(
        r.readexactly(0).await?,
        b"",
        "readexactly(0) is empty at once"
    );
    tulip::sock_sendall(&peer, b"0123456789").await?;
    assert_eq!(r.readexactly(10).await?, b"0123456789");
    // Exactly available, but arriving in pieces (under the limit).
    let data = ByteStream::new(3).take(60 * KIB);
    let sender = tulip::spawn(async move {
        for c in data.chunks(7000) {
            tulip::sock_sendall(&peer, c).await?;
            tulip::sleep(ms(1)).await;
        }
        io::Result::Ok(peer)
    });
    let got = r.readexactly(60 * KIB).await?;
    assert_eq!(got, ByteStream::new(3).take(60 * KIB));
    let peer = sender.await?;
    // Then fewer bytes than asked for, and EOF.
    tulip::sock_sendall(&peer, b"abc").await?;
    peer.shutdown(Shutdown::Write)?;
    let e = r.readexactly(5).await.unwrap_err();
    assert_incomplete(&e, b"abc", Some(5));
    assert!(r.at_eof(), "the partial bytes were consumed");
    let e = r.readexactly(1).await.unwrap_err();
    assert_incomplete(&e, b"", Some(1));
    Ok(())
}

/// asyncio's `_wait_for_data` resumes a transport the stream paused ("This is essential for
/// readexactly(n) for case when n > self._limit"). Here the transport is paused with the
/// reader waiting for more: `poll_more` must resume it (a hang before that fix).
#[tulip::test]
async fn readexactly_more_than_the_limit_after_reading_paused() -> io::Result<()> {
    let _w = support::watchdog("readexactly_more_than_the_limit_after_reading_paused", 10);
    let limit = 1024;
    let (mut r, _w, peer) = sock_peer(limit).await?;
    let data = ByteStream::new(9).take(100 * KIB);
    let sender = tulip::spawn(async move {
        tulip::sock_sendall(&peer, &data).await?;
        io::Result::Ok(peer)
    });
    // Nobody reads: over 2 x limit buffered, the stream pauses the transport.
    wait_until(5.0, "the stream to pause reading", || {
        !r.transport().is_reading()
    })
    .await;
    let got = tulip::timeout(Duration::from_secs(3), r.readexactly(100 * KIB))
        .await
        .expect("readexactly(n > limit) hung: the transport stayed paused")?;
    assert_eq!(got, ByteStream::new(9).take(100 * KIB));
    drop(sender.await?);
    Ok(())
}

/// The same root cause through `readuntil`: a header that ends just past the limit's edge
/// with only part of the separator buffered, while the transport is paused.
#[tulip::test]
async fn readuntil_waiting_while_reading_paused() -> io::Result<()> {
    let _w = support::watchdog("readuntil_waiting_while_reading_paused", 10);
    let limit = 1024;
    let (mut r, _w, peer) = sock_peer(limit).await?;
    // Record 1: 1020 bytes + separator; then 1022 bytes + "\r\n\r": 2049 > 2 x limit.
    let mut rec1 = vec![b'a'; 1020];
    rec1.extend_from_slice(SEP);
    let mut rec2 = vec![b'b'; 1022];
    rec2.extend_from_slice(SEP);
    let mut first = rec1.clone();
    first.extend_from_slice(&rec2[..rec2.len() - 1]);
    tulip::sock_sendall(&peer, &first).await?;
    wait_until(5.0, "the stream to pause reading", || {
        !r.transport().is_reading()
    })
    .await;
    assert_eq!(r.readuntil(SEP).await?, rec1);
    tulip::sock_sendall(&peer, b"\n").await?;
    // asyncio: 1022 <= limit, so this is rec2.
    let got = tulip::timeout(Duration::from_secs(3), r.readuntil(SEP))
        .await
        .expect("readuntil hung: the transport stayed paused")?;
    assert_eq!(got, rec2);
    Ok(())
}

// ---- 4. the limit --------------------------------------------------------------------------

/// A 1 MiB line with the default 64 KiB limit. While nobody reads, the stream pauses the
/// transport (memory bounded). `readline` raises `LimitOverrun` (`InvalidData`) and drops
/// what it buffered, as asyncio's `readline` does (`ValueError`, buffer cleared); the
/// following calls go on raising for the rest of the long line, or return its tail (a line
/// of `x`s no longer than the limit) — both asyncio-consistent — and then `next line`.
#[tulip::test]
async fn readline_limit_overrun_on_a_1mib_line_then_next_line() -> io::Result<()> {
    let _w = support::watchdog("readline_limit_overrun_on_a_1mib_line_then_next_line", 10);
    let (port, peer) = thread_peer(|mut s| -> io::Result<()> {
        s.write_all(&vec![b'x'; MIB])?;
        s.write_all(b"\nnext line\n")?;
        s.shutdown(Shutdown::Write)
    });
    let (mut r, _w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    assert_eq!(r.limit(), DEFAULT_LIMIT);
    wait_until(5.0, "the stream to pause reading", || {
        !r.transport().is_reading()
    })
    .await;
    tulip::sleep(ms(50)).await;
    assert!(
        !r.transport().is_reading(),
        "reading stays paused while the reader does not read"
    );

    let e = r.readline().await.unwrap_err();
    let lo = overrun(&e);
    assert!(lo.consumed > DEFAULT_LIMIT, "{lo:?}");
    assert!(
        r.transport().is_reading(),
        "dropping the buffer resumed reading"
    );
    let mut overruns = 1;
    let mut tails = Vec::new();
    loop {
        match r.readline().await {
            Ok(l) if l == b"next line\n" => break,
            Ok(l) => {
                assert!(
                    l.len() >= 2
                        && l.len() <= DEFAULT_LIMIT + 1
                        && l.ends_with(b"\n")
                        && l[..l.len() - 1].iter().all(|&b| b == b'x'),
                    "only the tail of the long line may come back, got {} bytes",
                    l.len()
                );
                tails.push(l.len());
            }
            Err(e) => {
                let lo = overrun(&e);
                assert!(lo.consumed > 0);
                overruns += 1;
            }
        }
        // Each overrun drops more than `limit` bytes: at most 1 MiB / 64 KiB of them.
        assert!(overruns <= MIB / DEFAULT_LIMIT + 1, "{overruns} overruns");
    }
    assert!(tails.len() <= 1, "tails {tails:?}");
    eprintln!("1 MiB line: {overruns} overrun errors, tail lines {tails:?}");
    assert_eq!(r.readline().await?, b"");
    assert!(r.at_eof());
    join_thread(peer, 5.0).await?;
    Ok(())
}

/// `readuntil`'s `LimitOverrun` leaves the data in the buffer (asyncio: the caller reads
/// `consumed` bytes itself); `readline` drops exactly the over-long line when its newline is
/// buffered (asyncio: `del buffer[:consumed + len(sep)]`).
#[tulip::test]
async fn limit_overrun_readuntil_keeps_data_readline_drops_the_line() -> io::Result<()> {
    let _w = support::watchdog(
        "limit_overrun_readuntil_keeps_data_readline_drops_the_line",
        10,
    );
    let (mut r, _w, peer) = sock_peer(1024).await?;
    assert_eq!(r.limit(), 1024);
    let mut long = vec![b'a'; 2000];
    long.push(b'\n');
    tulip::sock_sendall(&peer, &long).await?;
    tulip::sleep(ms(20)).await;
    let e = r.readuntil(b"\n").await.unwrap_err();
    let lo = overrun(&e);
    assert_eq!(
        (lo.message, lo.consumed),
        ("Separator is found, but chunk is longer than limit", 2000)
    );
    assert_eq!(
        r.readexactly(long.len()).await?,
        long,
        "nothing was consumed"
    );

    let mut two = long.clone();
    two.extend_from_slice(b"ok\n");
    tulip::sock_sendall(&peer, &two).await?;
    tulip::sleep(ms(20)).await;
    let e = r.readline().await.unwrap_err();
    assert_eq!(overrun(&e).consumed, 2000);
    assert_eq!(r.readline().await?, b"ok\n");

    // A separator never found within the limit.
    tulip::sock_sendall(&peer, &[b'c'; 3000]).await?;
    tulip::sleep(ms(20)).await;
    let e = r.readuntil(SEP).await.unwrap_err();
    let lo = overrun(&e);
    assert_eq!(
        lo.message,
        "Separator is not found, and chunk exceed the limit"
    );
    assert!(lo.consumed > 1024);
    assert_eq!(r.read(4000).await?, [b'c'; 3000]);
    Ok(())
}
