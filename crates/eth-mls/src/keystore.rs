//! Keystore v3 files (Web3 Secret Storage Definition), the encrypted key files geth, cast and
//! most wallets write: the account's secp256k1 key under AES-128-CTR, keyed by scrypt or
//! PBKDF2-HMAC-SHA256 of a password, with a keccak256 MAC checked before anything is
//! decrypted. [`load`] opens one as an [`EthereumSigner`] for
//! [`crate::Client`]; [`encrypt`] writes one (scrypt, n = 2^18, r = 8, p = 1, as geth).

use aes::cipher::{KeyIvInit, StreamCipher};
use alloy_primitives::keccak256;
use eth_mls_core::{EthereumSigner, LocalEthereumSigner};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Largest scrypt cost accepted (log2 n): a file may not make us spend unbounded memory.
const MAX_LOG_N: u8 = 20;
/// Largest PBKDF2 iteration count accepted.
const MAX_ITERATIONS: u32 = 10_000_000;
/// The largest scrypt block size `r` accepted (geth and cast write 8; memory is 128·r·n).
const MAX_R: u32 = 32;
/// The largest scrypt parallelism `p` accepted (geth and cast write 1; work grows with p).
const MAX_P: u32 = 16;

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    crypto: Crypto,
    id: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct Crypto {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(Serialize, Deserialize)]
struct CipherParams {
    iv: String,
}

fn bad(what: &'static str) -> Error {
    Error::Keystore(what.into())
}

fn unhex(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    hex::decode(s.trim_start_matches("0x")).map_err(|_| bad(what))
}

fn field<'a>(
    params: &'a serde_json::Value,
    name: &'static str,
) -> Result<&'a serde_json::Value, Error> {
    params
        .get(name)
        .ok_or(Error::Keystore(format!("kdfparams.{name} missing")))
}

fn uint(params: &serde_json::Value, name: &'static str) -> Result<u64, Error> {
    field(params, name)?.as_u64().ok_or(Error::Keystore(format!(
        "kdfparams.{name} is not an unsigned integer"
    )))
}

/// The 32-byte key derived from `password` as the file's KDF says.
fn derive(crypto: &Crypto, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let p = &crypto.kdfparams;
    if uint(p, "dklen")? != 32 {
        return Err(bad("kdfparams.dklen must be 32"));
    }
    let salt = unhex(
        field(p, "salt")?
            .as_str()
            .ok_or(bad("kdfparams.salt is not a string"))?,
        "kdfparams.salt is not hex",
    )?;
    let mut key = Zeroizing::new([0u8; 32]);
    match crypto.kdf.as_str() {
        "scrypt" => {
            let n = uint(p, "n")?;
            if n < 2 || !n.is_power_of_two() || n.trailing_zeros() > MAX_LOG_N.into() {
                return Err(bad("kdfparams.n must be a power of two up to 2^20"));
            }
            let r = u32::try_from(uint(p, "r")?).map_err(|_| bad("kdfparams.r too large"))?;
            let pp = u32::try_from(uint(p, "p")?).map_err(|_| bad("kdfparams.p too large"))?;
            // Checked before anything is allocated: a file from elsewhere could otherwise
            // ask for 128·r·n bytes (terabytes) or years of work (security review L8).
            if r == 0 || r > MAX_R {
                return Err(bad("kdfparams.r must be 1 to 32"));
            }
            if pp == 0 || pp > MAX_P {
                return Err(bad("kdfparams.p must be 1 to 16"));
            }
            // RFC 7914 bounds n below 2^(16 r); the scrypt crate enforces it, so files with
            // r = 1 and n >= 2^16 (the specification's own example) are refused.
            let params = scrypt::Params::new(n.trailing_zeros() as u8, r, pp, 32)
                .map_err(|_| bad("scrypt parameters outside RFC 7914's bounds (n < 2^(16 r))"))?;
            scrypt::scrypt(password, &salt, &params, key.as_mut())
                .map_err(|_| bad("scrypt failed"))?;
        }
        "pbkdf2" => {
            if field(p, "prf")?.as_str() != Some("hmac-sha256") {
                return Err(bad("kdfparams.prf must be hmac-sha256"));
            }
            let c = u32::try_from(uint(p, "c")?).map_err(|_| bad("kdfparams.c too large"))?;
            if c == 0 || c > MAX_ITERATIONS {
                return Err(bad("kdfparams.c out of range"));
            }
            pbkdf2::pbkdf2_hmac::<sha2_legacy::Sha256>(password, &salt, c, key.as_mut());
        }
        _ => return Err(Error::Keystore(format!("unsupported kdf {:?}", crypto.kdf))),
    }
    Ok(key)
}

/// Decrypts a keystore v3 file's JSON with `password`: the 32-byte secp256k1 key. A wrong
/// password is [`Error::WrongPassword`] (the MAC does not match); anything malformed is
/// [`Error::Keystore`].
pub fn decrypt(json: &str, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let file: File =
        serde_json::from_str(json).map_err(|e| Error::Keystore(format!("not a keystore: {e}")))?;
    if file.version != 3 {
        return Err(Error::Keystore(format!(
            "version {} (only 3 is supported)",
            file.version
        )));
    }
    let c = &file.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(Error::Keystore(format!(
            "unsupported cipher {:?}",
            c.cipher
        )));
    }
    let iv = unhex(&c.cipherparams.iv, "cipherparams.iv is not hex")?;
    let ciphertext = unhex(&c.ciphertext, "ciphertext is not hex")?;
    let mac = unhex(&c.mac, "mac is not hex")?;
    if iv.len() != 16 || ciphertext.len() != 32 || mac.len() != 32 {
        return Err(bad("iv, ciphertext or mac of the wrong length"));
    }
    let key = derive(c, password)?;
    let mut input = Zeroizing::new(key[16..32].to_vec());
    input.extend_from_slice(&ciphertext);
    let expected = keccak256(input.as_slice());
    if !subtle_eq(expected.as_slice(), &mac) {
        return Err(Error::WrongPassword);
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&ciphertext);
    let mut cipher = Aes128Ctr::new(key[..16].into(), iv.as_slice().into());
    cipher.apply_keystream(secret.as_mut());
    Ok(secret)
}

/// Constant-time equality of two byte strings of the same length.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Opens the keystore file at `path` with `password` as a signer.
pub fn load(path: &std::path::Path, password: &[u8]) -> Result<LocalEthereumSigner, Error> {
    let json = std::fs::read_to_string(path)
        .map_err(|e| Error::Keystore(format!("{}: {e}", path.display())))?;
    let key = decrypt(&json, password)?;
    LocalEthereumSigner::from_bytes(key.as_ref()).map_err(|e| Error::Keystore(e.to_string()))
}

/// A keystore v3 file (JSON) holding `key` under `password`: scrypt with `log_n` (geth uses
/// 18; tests may use less), r = 8, p = 1; a fresh salt, IV and id.
pub fn encrypt(key: &[u8; 32], password: &[u8], log_n: u8) -> Result<String, Error> {
    let signer =
        LocalEthereumSigner::from_bytes(key).map_err(|e| Error::Keystore(e.to_string()))?;
    let mut random = [0u8; 64];
    getrandom::fill(&mut random).map_err(|e| Error::Keystore(format!("no randomness: {e}")))?;
    let (salt, rest) = random.split_at(32);
    let (iv, id) = rest.split_at(16);
    let crypto = Crypto {
        cipher: "aes-128-ctr".into(),
        cipherparams: CipherParams {
            iv: hex::encode(iv),
        },
        ciphertext: String::new(),
        kdf: "scrypt".into(),
        kdfparams: serde_json::json!({
            "dklen": 32, "n": 1u64 << log_n.min(MAX_LOG_N), "r": 8, "p": 1, "salt": hex::encode(salt)
        }),
        mac: String::new(),
    };
    let derived = derive(&crypto, password)?;
    let mut ciphertext = Zeroizing::new(*key);
    let mut cipher = Aes128Ctr::new(derived[..16].into(), iv.into());
    cipher.apply_keystream(ciphertext.as_mut());
    let mut input = derived[16..32].to_vec();
    input.extend_from_slice(ciphertext.as_ref());
    let mac = keccak256(&input);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(id);
    uuid[6] = (uuid[6] & 0x0f) | 0x40; // version 4
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(uuid);
    let file = File {
        address: Some(hex::encode(signer.address())),
        crypto: Crypto {
            ciphertext: hex::encode(ciphertext.as_ref()),
            mac: hex::encode(mac),
            ..crypto
        },
        id: format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ),
        version: 3,
    };
    serde_json::to_string_pretty(&file).map_err(|e| Error::Keystore(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The two test vectors of the Web3 Secret Storage Definition (password "testpassword").
    /// The scrypt one uses r = 1 with n = 2^18, outside RFC 7914's bounds: refused.
    const PBKDF2: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
    const SCRYPT: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"83dbcc02d8ccb40e466191a123791e0e"},"ciphertext":"d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c","kdf":"scrypt","kdfparams":{"dklen":32,"n":262144,"p":8,"r":1,"salt":"ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"},"mac":"2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
    const KEY: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";

    #[test]
    fn the_specification_vectors_decrypt() {
        let key = decrypt(PBKDF2, b"testpassword").unwrap();
        assert_eq!(hex::encode(key.as_ref()), KEY);
        assert!(matches!(
            decrypt(PBKDF2, b"wrong"),
            Err(Error::WrongPassword)
        ));
        assert!(matches!(
            decrypt(SCRYPT, b"testpassword"),
            Err(Error::Keystore(_))
        ));
    }

    #[test]
    fn written_files_open_with_their_password_only() {
        let key = [0x42; 32];
        let json = encrypt(&key, b"pw", 10).unwrap();
        assert_eq!(decrypt(&json, b"pw").unwrap().as_ref(), &key);
        assert!(matches!(decrypt(&json, b"pW"), Err(Error::WrongPassword)));
        let address = LocalEthereumSigner::from_bytes(&key).unwrap().address();
        assert!(json.contains(&hex::encode(address)));
        assert!(!json.contains(&hex::encode(key)));
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let written = encrypt(&[0x42; 32], b"testpassword", 10).unwrap();
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&written).unwrap())
                .unwrap();
        assert!(compact.contains("\"n\":1024"));
        for json in [
            &compact.replace("\"n\":1024", "\"n\":1023"),
            &compact.replace("\"n\":1024", "\"n\":2097152"),
            &compact.replace("\"r\":8", "\"r\":0"),
            // L8: memory 128·r·n (128 TiB here) or work ∝ p beyond sane caps, refused before
            // any allocation (this test aborts or runs for years on a client without caps).
            &compact
                .replace("\"r\":8", "\"r\":1048576")
                .replace("\"n\":1024", "\"n\":1048576"),
            &compact.replace("\"r\":8", "\"r\":33"),
            &compact.replace("\"p\":1", "\"p\":17"),
            &compact
                .replace("\"p\":1", "\"p\":536870911")
                .replace("\"r\":8", "\"r\":1"),
            &compact.replace("\"dklen\":32", "\"dklen\":16"),
            "",
            "{}",
            &SCRYPT.replace("\"version\":3", "\"version\":4"),
            &SCRYPT.replace("aes-128-ctr", "aes-256-gcm"),
            &SCRYPT.replace("\"n\":262144", "\"n\":262143"),
            &SCRYPT.replace("\"n\":262144", "\"n\":1073741824"),
            &PBKDF2.replace("hmac-sha256", "hmac-sha1"),
            &PBKDF2.replace("6087dab2", "zz87dab2"),
        ] {
            assert!(
                matches!(decrypt(json, b"testpassword"), Err(Error::Keystore(_))),
                "{json}"
            );
        }
    }
}
