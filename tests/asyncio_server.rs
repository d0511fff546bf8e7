//! CPython's `Lib/test/test_asyncio/test_server.py` (`UnixServerCleanupTests`), translated:
//! a Unix server's close unlinks its socket path only if the path is still its socket
//! (asyncio compares the inode); and `serve_forever` on a closed server fails, as asyncio
//! raises `RuntimeError`. Each test names the CPython test it comes from.

mod support;

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

struct Nothing;
impl tulip::Protocol for Nothing {}

/// A socket path in a fresh temporary directory (removed on drop).
struct SockPath(PathBuf);

impl SockPath {
    fn new(name: &str) -> SockPath {
        let dir = std::env::temp_dir().join(format!(
            "tulip-asyncio-server-{}-{name}",
            std::process::id()
        ));
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

/// `test_unix_server_addr_cleanup`: the default — close removes the socket file.
#[test]
fn test_unix_server_addr_cleanup() {
    let p = SockPath::new("addr_cleanup");
    tulip::run(async {
        let srv = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        assert!(p.0.exists());
        srv.close();
        assert!(!p.0.exists());
    });
}

/// `test_unix_server_cleanup_gone`: someone else removed the socket file already — close
/// is quiet.
#[test]
fn test_unix_server_cleanup_gone() {
    let p = SockPath::new("cleanup_gone");
    tulip::run(async {
        let srv = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        std::fs::remove_file(&p.0).unwrap();
        srv.close();
        assert!(!p.0.exists());
    });
}

/// `test_unix_server_cleanup_replaced`: someone else replaced the socket file with their
/// own — close leaves it alone.
#[test]
fn test_unix_server_cleanup_replaced() {
    let p = SockPath::new("cleanup_replaced");
    tulip::run(async {
        let srv = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        std::fs::remove_file(&p.0).unwrap();
        let theirs = UnixListener::bind(&p.0).unwrap();
        srv.close();
        assert!(p.0.exists(), "the other socket's file is still there");
        drop(UnixStream::connect(&p.0).expect("and it still answers"));
        drop(theirs);
    });
}

/// tulip: a rolling restart — a new server takes the path over (create_unix_server removes
/// the stale socket file), then the old one closes: the new server's socket must survive.
#[test]
fn a_rolling_restart_keeps_the_new_servers_socket() {
    let p = SockPath::new("rolling_restart");
    tulip::run(async {
        let old = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        let new = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        old.close();
        assert!(p.0.exists());
        drop(UnixStream::connect(&p.0).expect("the new server answers"));
        new.close();
        assert!(!p.0.exists(), "the new server cleans up its own socket");
    });
}

/// tulip: dropping the last handle closes (and cleans up) the same way.
#[test]
fn dropping_a_unix_server_removes_its_socket_file() {
    let p = SockPath::new("drop_cleanup");
    tulip::run(async {
        let srv = tulip::create_unix_server(|| Nothing, &p.0, Default::default())
            .await
            .unwrap();
        drop(srv);
        assert!(!p.0.exists());
    });
}

/// tulip (asyncio's `Server.serve_forever` raises `RuntimeError('server … is closed')`):
/// `serve_forever` on a closed server returns an error at once instead of waiting.
#[test]
fn serve_forever_on_a_closed_server_is_an_error() {
    let _w = support::watchdog("serve_forever_on_a_closed_server_is_an_error", 10);
    tulip::run(async {
        let srv = tulip::create_server(|| Nothing, "127.0.0.1", 0, Default::default())
            .await
            .unwrap();
        srv.close();
        let e = srv.serve_forever().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert!(e.to_string().contains("server is closed"), "{e}");
        assert!(!srv.is_serving());
    });
}
