#[tulip::test]
struct NotATest;

fn main() {}
