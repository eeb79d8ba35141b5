//! The eth-mls patch (see `vendor/README.md`): `VLBytes` writes its bytes as one blob, and
//! reads a blob, a sequence of `u8` (what it wrote before) or the legacy struct.
#![cfg(feature = "serde")]
#![cfg_attr(feature = "future_deprecations", allow(deprecated))]

use tls_codec::{SecretVLBytes, VLByteVec, VLBytes};

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    ciborium::into_writer(value, &mut buf).unwrap();
    buf
}

#[test]
fn vlbytes_field_is_a_byte_blob() {
    let payload = vec![0xAAu8; 300];
    // The struct around the field stays (a map with `vec`); the field is the same byte
    // string `VLByteVec` writes, not an array of 300 integers.
    let whole = cbor(&VLBytes::from(payload.clone()));
    let blob = cbor(&VLByteVec::from(payload.clone()));
    assert!(whole.ends_with(&blob), "{whole:x?}");
    // CBOR major type 2 (byte string) with a two-byte length: 0x59 0x01 0x2c.
    assert_eq!(&blob[..3], &[0x59, 0x01, 0x2c]);
    assert_eq!(whole.len(), blob.len() + 5);
}

#[test]
fn vlbytes_reads_what_it_wrote_before() {
    // Before the patch the field was a sequence of `u8`: such records still read.
    #[derive(serde::Serialize)]
    struct Legacy {
        vec: Vec<u8>,
    }
    for payload in [vec![], vec![0u8], vec![1, 2, 3], vec![0x55; 1024]] {
        let legacy = cbor(&Legacy {
            vec: payload.clone(),
        });
        let read: VLBytes = ciborium::from_reader(legacy.as_slice()).unwrap();
        assert_eq!(read.as_slice(), payload.as_slice());
        let read: SecretVLBytes = ciborium::from_reader(legacy.as_slice()).unwrap();
        assert_eq!(read.as_slice(), payload.as_slice());
    }
}

#[test]
fn json_is_unchanged() {
    // Formats without a byte type write a blob as a sequence: the JSON of `VLBytes` (openmls's
    // memory storage) is what it was.
    let json = serde_json::to_string(&VLBytes::from(vec![0u8, 1, 255])).unwrap();
    assert_eq!(json, r#"{"vec":[0,1,255]}"#);
    let back: VLBytes = serde_json::from_str(&json).unwrap();
    assert_eq!(back.as_slice(), &[0u8, 1, 255]);
}

#[test]
fn secret_vlbytes_round_trips_as_a_blob() {
    let secret = SecretVLBytes::new(vec![7u8; 64]);
    let bytes = cbor(&secret);
    assert!(bytes.ends_with(&cbor(&VLByteVec::from(vec![7u8; 64]))));
    let back: SecretVLBytes = ciborium::from_reader(bytes.as_slice()).unwrap();
    assert_eq!(back, secret);
}

#[test]
fn a_wrong_type_is_an_error() {
    let text = cbor(&std::collections::BTreeMap::from([("vec", "not bytes")]));
    assert!(ciborium::from_reader::<VLBytes, _>(text.as_slice()).is_err());
}
