#[tulip::main(handle_sigint = "no")]
async fn main() {}
