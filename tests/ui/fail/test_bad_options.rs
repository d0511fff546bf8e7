#[tulip::test(timeout = 5)]
async fn no_unit() {}

#[tulip::test(timeout = "5 parsecs")]
async fn bad_unit() {}

#[tulip::test(timeout = "0s")]
async fn zero() {}

#[tulip::test(virtual_time, virtual_time)]
async fn twice() {}

#[tulip::test(handle_sigint = false)]
async fn main_only() {}

fn main() {}
