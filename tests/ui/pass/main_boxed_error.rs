//! `?` converts errors through `From` into the declared error type.

#[tulip::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: i32 = "12".parse()?;
    let text = async { Ok::<_, std::io::Error>(n.to_string()) }.await?;
    if text != "12" {
        return Err("unexpected".into());
    }
    Ok(())
}
