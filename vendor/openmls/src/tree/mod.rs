use crate::ciphersuite::*;

// Tree modules
// Public
pub mod sender_ratchet;

// Crate
#[cfg(feature = "virtual-clients-draft")]
pub(crate) mod dual_use_ratchet;
pub(crate) mod secret_tree;

#[cfg(any(feature = "test-utils", test))]
pub mod tests_and_kats;
