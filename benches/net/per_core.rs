//! Loop per core: 1 vs 2 tulip loops with `SO_REUSEPORT` (being written).

use crate::servers::Server;

pub static SERVERS: &[Server] = &[];

pub fn run(_reps: usize, _limit: crate::load::Limit, _quick: bool) -> std::io::Result<()> {
    Ok(())
}
