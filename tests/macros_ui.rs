//! Compile tests for `#[tulip::main]` and `#[tulip::test]`: what must build,
//! and the errors that misuse must give.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
