//! `outpost chown-wal`: hands a WAL directory that the platform created
//! root-owned (a Kubernetes hostPath) to the agent's user. It runs once, as
//! root with CAP_CHOWN alone, in an init container of the agent's own image,
//! so the agent itself never holds a capability.

use std::fs;
use std::path::Path;

use super::error::DiskWalError;

/// Only the directory changes owner: whatever is inside was written by the
/// agent already. A symlink is refused rather than followed.
pub fn chown_dir(dir: &Path, uid: u32, gid: u32) -> Result<(), DiskWalError> {
    let meta = fs::symlink_metadata(dir).map_err(DiskWalError::io("cannot inspect", dir))?;
    if !meta.is_dir() {
        return Err(DiskWalError::NotADirectory(dir.to_path_buf()));
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(|err| DiskWalError::Chown {
        path: dir.to_path_buf(),
        uid,
        gid,
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_dir_hands_the_directory_over_or_says_why_not() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        fs::create_dir(&wal).unwrap();
        let root = rustix::process::geteuid().is_root();
        match chown_dir(&wal, 65534, 65533) {
            Ok(()) => {
                assert!(root, "only root may give a directory away");
                let meta = fs::metadata(&wal).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (65534, 65533));
            }
            Err(e) => {
                let e = e.to_string();
                assert!(!root, "root could not chown: {e}");
                assert!(
                    e.contains("cannot give to 65534:65533") && e.contains("wal"),
                    "{e}"
                );
            }
        }
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&wal, &link).unwrap();
        for (path, what) in [(&file, "file"), (&link, "link")] {
            let e = chown_dir(path, 65534, 65534).unwrap_err().to_string();
            assert!(e.contains("is not a directory") && e.contains(what), "{e}");
        }
        let e = chown_dir(&dir.path().join("missing"), 65534, 65534)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot inspect") && e.contains("missing"), "{e}");
    }
}
