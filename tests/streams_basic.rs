//! Smoke tests of streams: start_server + open_connection line echo, readexactly at EOF.

mod support;

use std::io;

#[tulip::test]
async fn line_echo_over_streams() -> io::Result<()> {
    let _w = support::watchdog("line_echo_over_streams", 20);
    let server = tulip::start_server(
        |mut r: tulip::StreamReader, w: tulip::StreamWriter| async move {
            loop {
                let line = r.readline().await?;
                if line.is_empty() {
                    w.close();
                    return io::Result::Ok(());
                }
                w.write(&line);
                w.drain().await?;
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let addr = server.local_addr().unwrap();
    let (mut r, w) = tulip::open_connection("127.0.0.1", addr.port(), Default::default()).await?;
    w.write(b"hello\nwor");
    w.drain().await?;
    assert_eq!(r.readline().await?, b"hello\n");
    w.write(b"ld\n");
    assert_eq!(r.readline().await?, b"world\n");
    w.write_eof();
    assert_eq!(r.read(100).await?, b"");
    assert!(r.at_eof());
    let err = r.readexactly(1).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(tulip::IncompleteRead::from_io(&err).is_some());
    server.close();
    Ok(())
}
