//! `#[tulip::main]` on `async fn main() -> Result<(), std::io::Error>` using `?`.

use std::io;

async fn read(ok: bool) -> io::Result<u32> {
    if ok {
        Ok(7)
    } else {
        Err(io::Error::other("nope"))
    }
}

#[tulip::main]
async fn main() -> Result<(), std::io::Error> {
    #![allow(unused_mut)]
    let mut n = read(true).await?;
    assert_eq!(n, 7);
    if n == 7 {
        return Ok(());
    }
    read(false).await?;
    Ok(())
}
