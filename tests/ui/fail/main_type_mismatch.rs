// Type errors in the body are reported in the body, as for a plain `fn`,
// not on the attribute.

#[tulip::main]
async fn main() -> Result<(), std::io::Error> {
    let n = 5;
    Ok(n)
}
