//! `#[tulip::main(handle_sigint = false)]` keeps `main`'s return type.

#[tulip::main(handle_sigint = false)]
async fn main() -> Result<(), std::io::Error> {
    tulip::sleep(std::time::Duration::from_millis(1)).await;
    Ok(())
}
