//! `#[tulip::test]`'s arguments, alone and together; the test's return type is kept.

#[tulip::test(virtual_time)]
async fn virtual_only() {
    tulip::sleep(std::time::Duration::from_secs(60)).await;
}

#[tulip::test(timeout = "500ms")]
async fn timeout_only() -> std::io::Result<()> {
    Ok(())
}

#[tulip::test(virtual_time = true, timeout = "2m")]
async fn both() {}

fn main() {}
