#[tulip::test(start_paused)]
async fn attr_args() {}

fn main() {}
