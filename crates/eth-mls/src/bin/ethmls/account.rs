//! `ethmls account ...`: keystore v3 files in the home, as cast keeps them.

use std::path::Path;

use eth_mls_chain::alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::args::{AccountCmd, Cli};
use crate::out::{Failure, Kind};
use crate::{
    KEYSTORE_LOG_N, account_file_error, account_name, account_names, keystore_dir, keystore_path,
    password,
};

pub async fn run(cli: &Cli, home: &Path, cmd: &AccountCmd) -> Result<Value, Failure> {
    match cmd {
        AccountCmd::New { name } => {
            let path = keystore_path(home, name)?;
            if path.exists() {
                return Err(Failure::usage(
                    format!("an account named {name} exists"),
                    "pick another name or `ethmls account remove` it",
                ));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            loop {
                getrandom::fill(key.as_mut())
                    .map_err(|e| Failure::new(Kind::Other, format!("no randomness: {e}"), ""))?;
                if PrivateKeySigner::from_slice(key.as_slice()).is_ok() {
                    break;
                }
            }
            save_account(cli, home, name, &path, &key)
        }
        AccountCmd::Import {
            name,
            private_key_file,
        } => {
            let path = keystore_path(home, name)?;
            if path.exists() {
                return Err(Failure::usage(
                    format!("an account named {name} exists"),
                    "pick another name or `ethmls account remove` it",
                ));
            }
            let text = match private_key_file {
                Some(f) => {
                    Zeroizing::new(std::fs::read_to_string(f).map_err(|e| Failure::io(f, e))?)
                }
                None => {
                    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        return Err(Failure::usage(
                            "no key to import",
                            "pass --private-key-file FILE (the key is never taken on the command line)",
                        ));
                    }
                    Zeroizing::new(
                        rpassword::prompt_password("private key (hex): ").map_err(|e| {
                            Failure::usage(format!("could not read the key: {e}"), "")
                        })?,
                    )
                }
            };
            let hexkey = text.trim().trim_start_matches("0x");
            let bytes = Zeroizing::new(hex::decode(hexkey).map_err(|_| {
                Failure::usage("the key is not hex", "a secp256k1 key is 64 hex digits")
            })?);
            let key: Zeroizing<[u8; 32]> =
                Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                    Failure::usage(
                        "the key is not 32 bytes",
                        "a secp256k1 key is 64 hex digits",
                    )
                })?);
            PrivateKeySigner::from_slice(key.as_slice())
                .map_err(|_| Failure::usage("not a valid secp256k1 key", ""))?;
            save_account(cli, home, name, &path, &key)
        }
        AccountCmd::List => {
            let mut list = Vec::new();
            for name in account_names(home)? {
                let path = keystore_path(home, &name)?;
                list.push(json!({ "name": name, "address": keystore_address(&path) }));
            }
            if !cli.json {
                for a in &list {
                    say!(
                        "{}  {}",
                        a["name"].as_str().unwrap_or(""),
                        a["address"].as_str().unwrap_or("?")
                    );
                }
                if list.is_empty() {
                    say!(
                        "no accounts yet: `ethmls account new NAME` or `ethmls account import NAME`"
                    );
                }
                crate::out::printed("accounts");
            }
            Ok(json!({ "accounts": list }))
        }
        AccountCmd::Show { name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => account_name(cli, home)?,
            };
            let path = keystore_path(home, &name)?;
            if !path.exists() {
                return Err(Failure::usage(
                    format!("no account named {name}"),
                    "see `ethmls account list`",
                ));
            }
            Ok(
                json!({ "name": name, "address": keystore_address(&path), "keystore": path.display().to_string() }),
            )
        }
        AccountCmd::Remove { name, yes } => {
            let path = keystore_path(home, name)?;
            if !path.exists() {
                return Err(account_file_error(
                    name,
                    &path,
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
            let address = keystore_address(&path);
            if !*yes {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    return Err(Failure::usage(
                        format!(
                            "removing {name} deletes its key: without a backup the account is lost"
                        ),
                        "run it on a terminal to confirm, or pass --yes",
                    ));
                }
                use std::io::Write;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "This deletes the key of {name} ({}); without a backup it is lost. Type the name to confirm: ",
                    address.as_str().unwrap_or("?")
                );
                let _ = err.flush();
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| Failure::usage(format!("could not read the answer: {e}"), ""))?;
                if answer.trim() != name {
                    return Err(Failure::usage(
                        "nothing was removed",
                        "type the account's name to confirm",
                    ));
                }
            }
            std::fs::remove_file(&path).map_err(|e| account_file_error(name, &path, e))?;
            Ok(json!({ "removed": name, "address": address }))
        }
        AccountCmd::Password {
            name,
            new_password_file,
        } => change_password(cli, home, name, new_password_file.as_deref()),
    }
}

fn save_account(
    cli: &Cli,
    home: &Path,
    name: &str,
    path: &Path,
    key: &[u8; 32],
) -> Result<Value, Failure> {
    let pw = password(cli, &format!("new password for {name}: "))?;
    if pw.is_empty() {
        return Err(Failure::usage("the password is empty", "choose a password"));
    }
    let json = eth_mls::keystore::encrypt(key, pw.as_bytes(), KEYSTORE_LOG_N)
        .map_err(Failure::from_client)?;
    let dir = keystore_dir(home);
    crate::private::dir(&dir)?;
    write_private(path, json.as_bytes())?;
    let address = PrivateKeySigner::from_slice(key)
        .map(|s| s.address())
        .map_err(|_| Failure::usage("not a valid secp256k1 key", ""))?;
    Ok(
        json!({ "name": name, "address": format!("{address:#x}"), "keystore": path.display().to_string() }),
    )
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| Failure::io(path, e))?;
    f.write_all(bytes).map_err(|e| Failure::io(path, e))
}

/// The address a keystore file names (its `address` field), as cast shows it.
fn keystore_address(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| {
            v.get("address")
                .and_then(|a| a.as_str())
                .map(|a| format!("0x{}", a.trim_start_matches("0x")))
        })
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// The home's accounts by lowercase address: the names `chat`, `read` and the lists show.
pub fn names(home: &Path) -> std::collections::BTreeMap<String, String> {
    let mut names = std::collections::BTreeMap::new();
    for name in account_names(home).unwrap_or_default() {
        if let Ok(path) = keystore_path(home, &name)
            && let Some(a) = keystore_address(&path).as_str()
        {
            names.insert(a.to_ascii_lowercase(), name);
        }
    }
    names
}

/// `ethmls account password NAME`: the keystore re-encrypted under a new password (read from
/// `--new-password-file`, or asked twice on a terminal), written whole then renamed over the
/// old one. The account's store is keyed by the account's key, not the password: it opens as
/// before (one keyed by the old password, made by an earlier version, is re-keyed now).
fn change_password(
    cli: &Cli,
    home: &Path,
    name: &str,
    new_file: Option<&Path>,
) -> Result<Value, Failure> {
    let path = keystore_path(home, name)?;
    let (key, old) =
        crate::open::unlock(cli, home, name, &format!("current password for {name}: "))?;
    let new = new_password(new_file, name)?;
    // Stores made before the store key came from the account key: re-keyed while the old
    // password is known.
    let address = PrivateKeySigner::from_slice(key.as_slice())
        .map_err(|_| Failure::usage("not a valid secp256k1 key", ""))?
        .address();
    let mut rekeyed = Vec::new();
    let prefix = format!("{address:#x}-");
    let stores = home.join("stores");
    for entry in std::fs::read_dir(&stores).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".db") {
            let p = entry.path();
            let out = crate::out::Out::new(true);
            crate::open::prepare_store(&p, &key, &old, &out)?;
            rekeyed.push(p.display().to_string());
        }
    }
    let text = eth_mls::keystore::encrypt(&key, new.as_bytes(), KEYSTORE_LOG_N)
        .map_err(Failure::from_client)?;
    let tmp = path.with_extension("json.new");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(|e| Failure::io(&path, e))?;
    Ok(json!({
        "name": name,
        "address": format!("{address:#x}"),
        "keystore": path.display().to_string(),
        "stores": rekeyed,
    }))
}

/// The new password: `--new-password-file`, else asked twice on a terminal.
fn new_password(new_file: Option<&Path>, name: &str) -> Result<Zeroizing<String>, Failure> {
    let pw = if let Some(path) = new_file {
        crate::private::check_password_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
        Zeroizing::new(text.lines().next().unwrap_or("").to_string())
    } else {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "a new password is needed and there is no terminal to ask on",
                "pass --new-password-file FILE",
            ));
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("new password for {name}: "))
                .map_err(|e| Failure::usage(format!("could not read the password: {e}"), ""))?,
        );
        let again = Zeroizing::new(
            rpassword::prompt_password("the same again: ")
                .map_err(|e| Failure::usage(format!("could not read the password: {e}"), ""))?,
        );
        if *first != *again {
            return Err(Failure::usage("the two passwords differ", "try again"));
        }
        first
    };
    if pw.is_empty() {
        return Err(Failure::usage(
            "the new password is empty",
            "choose a password",
        ));
    }
    Ok(pw)
}
