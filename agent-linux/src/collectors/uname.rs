//! `uname`: the kernel's uname(2) fields as labels of `node_uname_info`.

use std::ffi::CStr;
use std::io;

use super::expo::{Expo, Kind};

pub(super) fn collect(expo: &mut Expo<'_>) -> io::Result<()> {
    let uts = rustix::system::uname();
    expo.single(
        &["node_uname_info"],
        &["Labeled system information as provided by the uname system call."],
        Kind::Gauge,
        &[
            ("domainname", field(uts.domainname())),
            ("machine", field(uts.machine())),
            ("nodename", field(uts.nodename())),
            ("release", field(uts.release())),
            ("sysname", field(uts.sysname())),
            ("version", field(uts.version())),
        ],
        1u64,
    );
    Ok(())
}

fn field(text: &CStr) -> &str {
    std::str::from_utf8(text.to_bytes()).unwrap_or("")
}
