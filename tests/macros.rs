//! Tests for `#[tulip::test]` (and through it, the expansion shared with
//! `#[tulip::main]`, whose compile-time behaviour is covered by
//! `tests/macros_ui.rs`).

use std::error::Error;
use std::io;

async fn double(n: u32) -> u32 {
    n * 2
}

async fn parse(text: &str) -> io::Result<u32> {
    text.trim()
        .parse()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

#[tulip::test]
async fn plain() {
    let n = double(21).await;
    assert_eq!(n, 42);
}

#[tulip::test]
async fn awaits_in_sequence() {
    let mut total = 0;
    for i in 0..10 {
        total += double(i).await;
    }
    assert_eq!(total, 90);
}

#[tulip::test]
async fn io_result_with_question_mark() -> Result<(), io::Error> {
    let n = parse(" 7 ").await?;
    assert_eq!(n, 7);
    assert!(parse("seven").await.is_err());
    Ok(())
}

/// `?` converts through `From` into the declared error type, and `return`
/// leaves the test early.
#[tulip::test]
async fn boxed_error_and_early_return() -> Result<(), Box<dyn Error>> {
    let n: u32 = "12".parse()?;
    let m = parse("30").await?;
    if n + m == 42 {
        return Ok(());
    }
    Err("unreachable".into())
}

#[tulip::test]
#[should_panic(expected = "boom")]
async fn panics_propagate() {
    let n = double(1).await;
    if n == 2 {
        panic!("boom");
    }
}

#[tulip::test]
#[ignore = "checks that #[ignore] is kept; never meant to run"]
async fn ignored() {
    panic!("an #[ignore]d test ran");
}

#[tulip::test]
async fn inner_attributes_are_kept() {
    #![allow(unused_mut)]
    let mut n = double(2).await;
    assert_eq!(n, 4);
}

/// The generated test is a plain `fn` with the declared return type: it can
/// be called outside any event loop, and each call runs its own loop.
#[test]
fn generated_fns_are_plain_fns() {
    plain();
    plain();
    let result: Result<(), io::Error> = io_result_with_question_mark();
    assert!(result.is_ok());
    let result: Result<(), Box<dyn Error>> = boxed_error_and_early_return();
    assert!(result.is_ok());
}
