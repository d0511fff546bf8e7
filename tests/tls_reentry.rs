//! TLS is never re-entered while it holds the rustls connection: a protocol that calls back
//! into its TLS transport from `pause_writing` (delivered synchronously while records go out)
//! sees no borrow failure, and the connection closes cleanly.

mod support;
mod tls_support;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tulip::{Protocol, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

type Log = Rc<RefCell<Vec<String>>>;

/// Stops reading as soon as it is connected: the writer's buffers fill up.
struct Sink;

impl Protocol for Sink {
    fn connection_made(&mut self, t: &Transport) {
        t.pause_reading();
    }
}

/// In `pause_writing`: asks for the peer's certificate and closes. With `burst`, writes
/// 32 MiB from `connection_made` itself (a protocol writer); otherwise a task writes.
struct Writer {
    t: Option<Transport>,
    log: Log,
    burst: bool,
}

fn write_32mib(t: &Transport) -> usize {
    let chunk = vec![7u8; 64 * 1024];
    let mut n = 0;
    while n < 32 * 1024 * 1024 && !t.is_closing() {
        t.write(&chunk);
        n += chunk.len();
    }
    n
}

impl Protocol for Writer {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
        if self.burst {
            write_32mib(t);
        }
    }

    fn pause_writing(&mut self) {
        let t = self.t.as_ref().expect("connected");
        let cert = tls_support::certs(t.get_extra_info("peercert"));
        self.log.borrow_mut().push(format!(
            "pause peercert={}",
            cert.is_some_and(|c| !c.is_empty())
        ));
        t.close();
        self.log
            .borrow_mut()
            .push(format!("closing={}", t.is_closing()));
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.log
            .borrow_mut()
            .push(format!("lost {:?}", exc.map(|e| e.kind())));
    }
}

async fn run(burst: bool) -> io::Result<Vec<String>> {
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let e2 = errors.clone();
    tulip::get_running_loop()
        .set_exception_handler(move |_, ctx| e2.borrow_mut().push(format!("{ctx:?}")));
    let pki = tls_support::Pki::new();
    let server = tulip::create_server(
        || Sink,
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let log: Log = Rc::default();
    let l2 = log.clone();
    let (t, _p) = tulip::create_connection(
        move || Writer {
            t: None,
            log: l2,
            burst,
        },
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(
            TlsOptions::client(pki.client_config())
                .server_hostname("localhost")
                .shutdown_timeout(Duration::from_millis(200)),
        ),
    )
    .await?;
    if !burst {
        let written = write_32mib(&t);
        assert!(
            written < 32 * 1024 * 1024,
            "the writer was paused (and closed) before 32 MiB went out"
        );
    }
    for _ in 0..500 {
        if log.borrow().iter().any(|l| l.starts_with("lost")) {
            break;
        }
        tulip::sleep(Duration::from_millis(10)).await;
    }
    server.close();
    server.abort_clients();
    tulip::get_running_loop().reset_exception_handler();
    assert_eq!(
        *errors.borrow(),
        Vec::<String>::new(),
        "nothing was reported"
    );
    assert!(t.is_closing());
    let got = log.borrow().clone();
    Ok(got)
}

#[tulip::test]
async fn pause_writing_from_a_task_write_may_close_and_ask_for_extra_info() -> io::Result<()> {
    let _w = support::watchdog("tls_pause_writing_task", 30);
    let log = run(false).await?;
    assert_eq!(
        log,
        vec![
            "pause peercert=true".to_string(),
            "closing=true".into(),
            "lost None".into()
        ]
    );
    Ok(())
}

#[tulip::test]
async fn pause_writing_after_a_protocol_burst_may_close_and_ask_for_extra_info() -> io::Result<()> {
    let _w = support::watchdog("tls_pause_writing_protocol", 30);
    let log = run(true).await?;
    assert_eq!(
        log,
        vec![
            "pause peercert=true".to_string(),
            "closing=true".into(),
            "lost None".into()
        ]
    );
    Ok(())
}
