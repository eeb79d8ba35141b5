//! # eth-mls-siwe
//!
//! Sign-In with Ethereum ([EIP-4361]) for Rust: the message type with a parser that follows
//! the ABNF exactly (and a lenient mode for what wallets send), exact printing, a builder
//! with secure nonces, EIP-55 addresses, EIP-191 signatures, verification with ERC-1271 for
//! contract accounts through a trait you implement (or take from `eth-mls-chain`), sessions
//! bound to the address, and the wallet-side origin and phishing checks. It depends on
//! `alloy-primitives` and `k256` only: no provider, no HTTP, no async runtime.
//!
//! ```
//! use eth_mls_siwe::{Message, TimeStamp, VerificationOpts, eip191};
//! # use alloy_primitives::Address;
//! # let key = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
//! # let address = eip191::address_of(key.verifying_key());
//! let message = Message::builder("example.com", address, "https://example.com/login", 1)
//!     .statement("Sign in to Example")
//!     .build()
//!     .unwrap();
//! let text = message.to_string(); // what the wallet shows and signs
//! let signature = eip191::sign_message(&key, text.as_bytes());
//!
//! // The relying party:
//! let received: Message = text.parse().unwrap();
//! let opts = VerificationOpts {
//!     domain: Some("example.com"),
//!     nonce: Some(message.nonce()),
//!     chain_id: Some(1),
//!     ..Default::default()
//! };
//! let session = block_on(received.verify(&signature, &opts)).unwrap();
//! assert_eq!(session.address(), address);
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```
//!
//! [EIP-4361]: https://eips.ethereum.org/EIPS/eip-4361

mod abnf;
pub mod address;
pub mod eip191;
mod message;
mod origin;
mod time;
mod verify;

pub use address::{AddressError, to_checksum};
pub use alloy_primitives::{Address, B256};
pub use message::{Message, MessageBuilder, ParseError, Warning};
pub use origin::{
    OriginError, OriginPolicy, OriginWarning, SIWE_PHRASE, SigningRequest, check_request_origin,
    classify_signing_request,
};
pub use time::TimeStamp;
pub use verify::{
    BoxFuture, ERC1271_MAGIC_VALUE, Erc1271Error, Erc1271Verifier, Session, VerificationError,
    VerificationOpts,
};

/// A fresh nonce: 24 letters and digits from the operating system's CSPRNG (about 143 bits;
/// EIP-4361 asks for at least 8 characters, this crate for at least 17 random ones).
pub fn generate_nonce() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    let mut buf = [0u8; 64];
    while out.len() < 24 {
        if getrandom::fill(&mut buf).is_err() {
            // No OS randomness: refusing is the only safe answer for a nonce.
            panic!("the operating system's random number generator failed");
        }
        // Rejection sampling: 248 = 4 * 62 keeps the distribution uniform.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == 24 {
                break;
            }
            out.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    out
}
