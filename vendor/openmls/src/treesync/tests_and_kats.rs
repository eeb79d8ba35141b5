#[cfg(any(feature = "test-utils", test))]
pub mod kats;
#[cfg(test)]
mod tests;
