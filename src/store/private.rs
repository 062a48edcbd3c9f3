//! The data dir is its user's alone: folders 0700 and the database's files 0600, set on every open
//! whatever the umask (files created later inside a 0700 folder are out of other users' reach).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

const DIR: u32 = 0o700;
const FILE: u32 = 0o600;

/// Creates `data_dir` and `db` if needed, private, before the database writes anything in them.
pub fn private_dirs(data_dir: &Path, db: &Path) -> std::io::Result<()> {
    for dir in [data_dir, db] {
        std::fs::DirBuilder::new().recursive(true).mode(DIR).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR))?;
    }
    Ok(())
}

/// Narrows what the database made in `db` (files 0600, folders 0700), once it is open.
pub fn private_files(db: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(db)? {
        let entry = entry?;
        let mode = if entry.file_type()?.is_dir() { DIR } else { FILE };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
