//! Credentials read from files: bearer tokens and basic-auth passwords,
//! re-read when the file changes (rotated service-account tokens). Their
//! content is never logged.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::log;

/// A credential file, re-read when its modification time changes.
struct FileSecret {
    path: PathBuf,
    mtime: Option<SystemTime>,
    value: Vec<u8>,
}

impl FileSecret {
    fn new(path: &str) -> FileSecret {
        FileSecret {
            path: PathBuf::from(path),
            mtime: None,
            value: Vec::new(),
        }
    }

    /// The trimmed file content, refreshed if the file changed.
    fn get(&mut self) -> &[u8] {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime.is_none() || mtime != self.mtime {
            match fs::read(&self.path) {
                Ok(mut v) => {
                    while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
                        v.pop();
                    }
                    self.value = v;
                    self.mtime = mtime;
                }
                Err(e) => {
                    log::warn(
                        "cannot read credential file",
                        &[("path", &self.path.display()), ("err", &e)],
                    );
                }
            }
        }
        &self.value
    }
}

/// An `Authorization` header value made from a credential file, built
/// afresh before each request so that a rotated file is picked up.
pub(super) struct Authorization {
    secret: FileSecret,
    /// `None` for a bearer token, the user name for basic auth.
    user: Option<String>,
    /// `user:password`, kept to encode basic auth without allocating.
    plain: Vec<u8>,
    value: Vec<u8>,
}

impl Authorization {
    /// `Bearer <file content>`.
    pub(super) fn bearer(token_file: &str) -> Authorization {
        Authorization::new(token_file, None)
    }

    /// `Basic base64(user:<file content>)`.
    pub(super) fn basic(user: &str, password_file: &str) -> Authorization {
        Authorization::new(password_file, Some(user.to_string()))
    }

    fn new(path: &str, user: Option<String>) -> Authorization {
        Authorization {
            secret: FileSecret::new(path),
            user,
            plain: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The header value with the file's current content.
    pub(super) fn header_value(&mut self) -> &[u8] {
        self.value.clear();
        let secret = self.secret.get();
        match &self.user {
            None => {
                self.value.extend_from_slice(b"Bearer ");
                self.value.extend_from_slice(secret);
            }
            Some(user) => {
                self.plain.clear();
                self.plain.extend_from_slice(user.as_bytes());
                self.plain.push(b':');
                self.plain.extend_from_slice(secret);
                self.value.extend_from_slice(b"Basic ");
                base64(&self.plain, &mut self.value);
            }
        }
        &self.value
    }
}

fn base64(input: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            let mut out = Vec::new();
            base64(plain.as_bytes(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), encoded, "{plain}");
        }
    }

    #[test]
    fn headers_follow_the_credential_file_as_it_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let set = |content: &str, mtime_s: u64| {
            fs::write(&path, content).unwrap();
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime_s);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        set("first\n", 1_000);
        let file = path.to_str().unwrap();
        let mut bearer = Authorization::bearer(file);
        let mut basic = Authorization::basic("user", file);
        assert_eq!(bearer.header_value(), b"Bearer first");
        assert_eq!(basic.header_value(), b"Basic dXNlcjpmaXJzdA==");
        set("second", 2_000);
        assert_eq!(bearer.header_value(), b"Bearer second", "re-read on a new mtime");
        fs::remove_file(&path).unwrap();
        assert_eq!(
            bearer.header_value(),
            b"Bearer second",
            "an unreadable file keeps the last value"
        );
    }
}
