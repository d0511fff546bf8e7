#[tulip::main]
async fn main(port: u16, host: &str) {
    println!("{host}:{port}");
}
