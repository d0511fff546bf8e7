//! `#[tulip::main]` on a plain `async fn main()`.

async fn answer() -> u32 {
    42
}

/// Doc comments and other attributes are kept.
#[tulip::main]
#[allow(clippy::needless_return)]
async fn main() {
    let n = answer().await;
    assert_eq!(n, 42);
    if n == 42 {
        // `return` leaves the async block, i.e. returns from `main`.
        return;
    }
    unreachable!();
}
