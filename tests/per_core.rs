//! One loop per core: `run_per_core` / `PerCore` with `SO_REUSEPORT` servers on real sockets.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use tulip::socket2::{Domain, Socket, Type};
use tulip::{PerCore, Protocol, Transport, net::ServerOptions};

/// Tells each client which loop accepted it (one byte), then echoes.
struct WhichLoop {
    index: u8,
}

impl Protocol for WhichLoop {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&[self.index]);
    }
}

/// A bound, non-listening `SO_REUSEPORT` socket: a free port every loop can bind.
fn reserve() -> TcpListener {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.into()
}

#[test]
fn the_kernel_spreads_connections_over_the_loops() {
    let reserved = reserve();
    let port = reserved.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel::<std::io::Result<()>>();
    let group = PerCore::new(2)
        .spawn(move |ctx| {
            let tx = tx.clone();
            async move {
                let index = ctx.index() as u8;
                let opts = ServerOptions::new().reuse_port(true).backlog(256);
                let server = match tulip::create_server(
                    move || WhichLoop { index },
                    "127.0.0.1",
                    port,
                    opts,
                )
                .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        tx.send(Err(e)).unwrap();
                        return 0;
                    }
                };
                tx.send(Ok(())).unwrap();
                ctx.stopped().await;
                server.close();
                server.abort_clients();
                server.wait_closed().await;
                ctx.index() + 1
            }
        })
        .unwrap();
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a loop did not start")
            .expect("a loop could not listen");
    }
    drop(reserved);
    let mut seen = BTreeSet::new();
    let mut conns = Vec::new();
    for _ in 0..64 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        seen.insert(b[0]);
        conns.push(c);
    }
    // 64 connections all hashed to one of two sockets: probability 2^-63.
    assert_eq!(seen, BTreeSet::from([0, 1]));
    group.stop();
    assert_eq!(group.join().unwrap(), vec![1, 2]);
    // The servers closed their connections on the way out.
    for mut c in conns {
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}

#[test]
fn each_loop_has_its_own_thread_and_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = tulip::run_per_core(2, |ctx| async move {
        tulip::yield_now().await;
        // SAFETY: sched_getcpu has no preconditions.
        let now_on = unsafe { libc::sched_getcpu() };
        let name = std::thread::current().name().map(String::from);
        (ctx.index(), ctx.threads(), ctx.cpu(), now_on, name)
    })
    .unwrap();
    assert_eq!(out.len(), 2);
    for (i, (index, threads, cpu, now_on, name)) in out.iter().enumerate() {
        assert_eq!((*index, *threads), (i, 2));
        assert_eq!(name.as_deref(), Some(format!("tulip-loop-{i}").as_str()));
        if let Some(cpu) = cpu {
            assert_eq!(*now_on, *cpu as i32, "loop {i} is not on its CPU");
        }
    }
    if cpus >= 2 && out.iter().all(|o| o.2.is_some()) {
        assert_ne!(out[0].2, out[1].2, "two loops pinned to one CPU");
    }
}

#[test]
fn zero_threads_means_one_loop_per_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = PerCore::new(0)
        .pin(false)
        .name("worker")
        .run(|ctx| async move { (ctx.threads(), ctx.cpu()) })
        .unwrap();
    assert_eq!(out.len(), cpus);
    assert!(out.iter().all(|&(n, cpu)| n == cpus && cpu.is_none()));
}

#[test]
fn handles_reach_every_loop() {
    let group = PerCore::new(2)
        .spawn(|ctx| async move {
            ctx.stopped().await;
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for (i, h) in group.handles().iter().enumerate() {
        let tx = tx.clone();
        h.call_soon_threadsafe(move || {
            let name = std::thread::current().name().map(String::from);
            tx.send((i, name)).unwrap();
        })
        .unwrap();
    }
    let mut got: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, Some("tulip-loop-0".to_string())),
            (1, Some("tulip-loop-1".to_string()))
        ]
    );
    group.stop();
    group.join().unwrap();
}

#[test]
fn a_panicking_loop_stops_the_others_and_join_resumes_the_panic() {
    let group = PerCore::new(3)
        .pin(false)
        .spawn(|ctx| async move {
            if ctx.index() == 1 {
                tulip::sleep(Duration::from_millis(20)).await;
                panic!("loop 1 failed");
            }
            // The others wait to be stopped: the panic must stop them.
            ctx.stopped().await;
        })
        .unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| group.join())).expect_err("join must panic");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"loop 1 failed"));
}
