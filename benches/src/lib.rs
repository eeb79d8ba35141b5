//! Criterion benchmarks of eth-mls; run them with `cargo xtask bench`.
