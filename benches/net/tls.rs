//! TLS echo over rustls: servers and load (being written).

use crate::servers::Server;
use crate::suite::Workload;

pub static SERVERS: &[Server] = &[];

pub fn workloads(_quick: bool) -> Vec<Workload> {
    Vec::new()
}
