//! No user code runs while a tulip `RefCell` is borrowed: a protocol's `Drop` may use its
//! transport (socket and TLS transports, at teardown and on `set_protocol`), and a server's
//! protocol factory may call into the server.

mod support;
mod tls_support;

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use tulip::{
    Protocol, Server, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
};

type Log = Rc<RefCell<Vec<String>>>;

/// Records what the loop's exception handler hears.
fn catch_reports() -> Log {
    let errors: Log = Rc::default();
    let e2 = errors.clone();
    tulip::get_running_loop()
        .set_exception_handler(move |_, ctx| e2.borrow_mut().push(format!("{ctx:?}")));
    errors
}

async fn until(log: &Log, what: &str) {
    for _ in 0..500 {
        if log.borrow().iter().any(|l| l.starts_with(what)) {
            return;
        }
        tulip::sleep(Duration::from_millis(5)).await;
    }
    panic!("never saw {what:?} in {:?}", log.borrow());
}

/// A protocol whose `Drop` calls into the transport it kept.
struct UsesTransportInDrop {
    t: Option<Transport>,
    log: Log,
}

impl Protocol for UsesTransportInDrop {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
}

impl Drop for UsesTransportInDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.t {
            let mine = t.get_protocol::<UsesTransportInDrop>().is_some();
            let sock = t.get_extra_info("sockname").is_some();
            t.close();
            t.write(b"late");
            self.log.borrow_mut().push(format!(
                "drop protocol={mine} sockname={sock} closing={}",
                t.is_closing()
            ));
        }
    }
}

/// Another protocol, for `set_protocol`.
struct Other;
impl Protocol for Other {}

#[tulip::test]
async fn a_protocol_dropped_at_teardown_may_use_its_transport() -> io::Result<()> {
    let _w = support::watchdog("drop_at_teardown", 10);
    let errors = catch_reports();
    let log: Log = Rc::default();
    let (a, _b) = UnixStream::pair()?;
    let l2 = log.clone();
    let (t, p) = tulip::connect_accepted_socket(
        move || UsesTransportInDrop { t: None, log: l2 },
        a,
        Default::default(),
    )
    .await?;
    drop(p);
    t.close();
    drop(t);
    until(&log, "drop").await;
    tulip::get_running_loop().reset_exception_handler();
    assert_eq!(*errors.borrow(), Vec::<String>::new());
    // Dropped after the transport let go of it and of its socket.
    assert_eq!(
        *log.borrow(),
        vec!["drop protocol=false sockname=false closing=true".to_string()]
    );
    Ok(())
}

#[tulip::test]
async fn a_protocol_replaced_by_set_protocol_may_use_its_transport_in_drop() -> io::Result<()> {
    let _w = support::watchdog("drop_on_set_protocol", 10);
    let errors = catch_reports();
    let log: Log = Rc::default();
    let (a, _b) = UnixStream::pair()?;
    let l2 = log.clone();
    let (t, p) = tulip::connect_accepted_socket(
        move || UsesTransportInDrop { t: None, log: l2 },
        a,
        Default::default(),
    )
    .await?;
    drop(p);
    t.set_protocol(Other);
    tulip::get_running_loop().reset_exception_handler();
    assert_eq!(*errors.borrow(), Vec::<String>::new());
    // Dropped at once, with the new protocol in place; its close() closed the transport.
    assert_eq!(
        *log.borrow(),
        vec!["drop protocol=false sockname=true closing=true".to_string()]
    );
    assert!(t.get_protocol::<Other>().is_some());
    Ok(())
}

#[tulip::test]
async fn a_tls_protocol_dropped_at_teardown_may_use_its_transport() -> io::Result<()> {
    let _w = support::watchdog("tls_drop_at_teardown", 20);
    let errors = catch_reports();
    let pki = tls_support::Pki::new();
    let server = tulip::create_server(
        || Other,
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let log: Log = Rc::default();
    let l2 = log.clone();
    let (t, p) = tulip::create_connection(
        move || UsesTransportInDrop { t: None, log: l2 },
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(
            TlsOptions::client(pki.client_config())
                .server_hostname("localhost")
                .shutdown_timeout(Duration::from_millis(200)),
        ),
    )
    .await?;
    drop(p);
    t.abort();
    drop(t);
    until(&log, "drop").await;
    server.close();
    server.abort_clients();
    tulip::get_running_loop().reset_exception_handler();
    assert_eq!(*errors.borrow(), Vec::<String>::new());
    // The TLS transport answers from what is left: no protocol, no raw socket.
    assert_eq!(
        *log.borrow(),
        vec!["drop protocol=false sockname=false closing=true".to_string()]
    );
    Ok(())
}

#[tulip::test]
async fn a_protocol_factory_may_call_into_its_server() -> io::Result<()> {
    let _w = support::watchdog("factory_calls_server", 10);
    let errors = catch_reports();
    let slot: Rc<RefCell<Option<Server>>> = Rc::default();
    let log: Log = Rc::default();
    let (s2, l2) = (slot.clone(), log.clone());
    let server = tulip::create_server(
        move || {
            let s = s2.borrow().clone().expect("server set");
            l2.borrow_mut().push(format!(
                "factory connections={} sockets={} serving={}",
                s.connection_count(),
                s.sockets().len(),
                s.is_serving()
            ));
            s.close();
            Other
        },
        "127.0.0.1",
        0,
        ServerOptions::new(),
    )
    .await?;
    *slot.borrow_mut() = Some(server.clone());
    let addr = server.local_addr().unwrap();
    let c = std::net::TcpStream::connect(addr)?;
    until(&log, "factory").await;
    // The connection made by that factory call is served; the server is closed.
    for _ in 0..200 {
        if server.connection_count() == 1 {
            break;
        }
        tulip::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.connection_count(), 1);
    assert!(!server.is_serving());
    drop(c);
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .expect("the server closes once its connection is gone");
    slot.borrow_mut().take();
    tulip::get_running_loop().reset_exception_handler();
    assert_eq!(*errors.borrow(), Vec::<String>::new());
    assert_eq!(
        *log.borrow(),
        vec!["factory connections=0 sockets=1 serving=true".to_string()]
    );
    Ok(())
}
