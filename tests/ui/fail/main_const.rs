#[tulip::main]
const async fn main() {}
