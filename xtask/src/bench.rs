use anyhow::Result;
use std::path::Path;
pub fn run(_bin: &Path, _smoke: bool) -> Result<()> {
    Ok(())
}
