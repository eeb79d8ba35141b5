//! The home is private (security review L5): the directory and every directory in it 0700,
//! every file 0600 — stores with their WAL and shared memory, locks, config, deployment,
//! devnet and relay files, keystores. Files are created so; a home written by an earlier
//! version (with the umask's modes) is tightened by [`secure_home`] at every command.

use std::path::Path;

use crate::out::Failure;

/// How deep [`secure_home`] looks (the home's layout is two levels: `stores/`, `keystores/`,
/// `devnet/`, and their files).
const DEPTH: usize = 4;

/// Creates `dir` (and its parents) with mode 0700 where it creates them.
pub(crate) fn dir(dir: &Path) -> Result<(), Failure> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| Failure::io(dir, e))
}

/// Writes `bytes` to `path` (replacing it), readable by its owner only.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| Failure::io(path, e))?;
    restrict(path, false)?;
    f.write_all(bytes).map_err(|e| Failure::io(path, e))
}

/// Sets `path` to 0600 (a file) or 0700 (a directory) when group or others have any bit.
pub(crate) fn restrict(path: &Path, is_dir: bool) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path).map_err(|e| Failure::io(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            let mode = if is_dir { 0o700 } else { 0o600 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Failure::io(path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, is_dir);
    Ok(())
}

/// Creates the home 0700 when missing, and tightens what is in it: directories to 0700, files
/// to 0600 (symbolic links are left alone, and not followed).
pub(crate) fn secure_home(home: &Path) -> Result<(), Failure> {
    dir(home)?;
    tighten(home, DEPTH)
}

fn tighten(dir: &Path, depth: usize) -> Result<(), Failure> {
    restrict(dir, true)?;
    if depth == 0 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Failure::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Failure::io(dir, e))?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            tighten(&path, depth - 1)?;
        } else if kind.is_file() {
            // A file may vanish between the listing and here (a WAL checkpointed away).
            match restrict(&path, false) {
                Ok(()) => {}
                Err(_) if !path.exists() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Refuses a password file that other users can read (security review I3).
pub(crate) fn check_password_file(path: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| Failure::io(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Failure::usage(
                format!(
                    "the password file {} can be read by other users",
                    path.display()
                ),
                format!("chmod 600 {}", path.display()),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
