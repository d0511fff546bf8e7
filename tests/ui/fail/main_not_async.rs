#[tulip::main]
fn main() {}
