//! TLS and credentials. The spec holds only file paths: an inline secret
//! becomes a path under [`SECRETS_DIR`] and a warning that says where to
//! put it, and the secret itself is never written anywhere.

use super::keys::Keys;
use super::read::{Findings, MapView};
use crate::diag::Diagnostic;
use crate::manifests::secret_name_for_dir;
use crate::spec::TlsSpec;
use crate::tree::DocPath;

/// Where secrets that were inline are expected, one file each.
pub const SECRETS_DIR: &str = "/etc/outpost/secrets";

/// The file an inline secret moves to, and the warning saying so.
pub fn inline_secret(f: &mut Findings, path: DocPath, file_name: &str) -> String {
    let file = format!("{SECRETS_DIR}/{file_name}");
    let secret = secret_name_for_dir(SECRETS_DIR);
    f.push(
        Diagnostic::warning(
            "inline-secret",
            path,
            format!("inline secret moved out of the spec: the agent reads it from {file}"),
        )
        .on_key()
        .label("secret in the config")
        .help(format!(
            "put the value in the Secret `{secret}` under the key `{file_name}` (mounted at {SECRETS_DIR}) and rotate it: it was stored in plain text"
        )),
    );
    file
}

/// A Kubernetes Secret reference (`{name, key}`) as the path it is mounted at.
pub fn secret_ref_file(mut m: MapView, f: &mut Findings) -> Option<String> {
    let name = m.text("name", f)?;
    let key = m.text("key", f)?;
    let dir = format!("/etc/outpost/{name}");
    f.push(
        Diagnostic::warning(
            "secret-reference",
            m.path.clone(),
            format!("the Secret `{name}`'s key `{key}` is read from {dir}/{key}"),
        )
        .on_key()
        .label("Secret reference")
        .help(format!(
            "`outpostc manifests` mounts {dir} from the Secret `{}`: create it with the same keys",
            secret_name_for_dir(&dir)
        )),
    );
    m.rest(f, |_| "not part of a Secret reference".into());
    Some(format!("{dir}/{key}"))
}

/// `tls_config` / `tlsConfig`. In the operator's spelling, `ca` and `cert`
/// are Secret or ConfigMap references and `keySecret` a Secret reference:
/// they become the paths those are mounted at.
pub fn tls(mut m: MapView, keys: Keys, what: &str, f: &mut Findings) -> TlsSpec {
    let k = |s: &str| keys.name(s);
    let mut t = TlsSpec {
        ca_file: m.file(&k("ca_file"), f),
        cert_file: m.file(&k("cert_file"), f),
        key_file: m.file(&k("key_file"), f),
        server_name: m.text(&k("server_name"), f),
        insecure_skip_verify: m.bool(&k("insecure_skip_verify"), f).unwrap_or(false),
    };
    match keys {
        Keys::Snake => {
            // Inline PEM: the certificates are not secret, the key is; all three move to files.
            for (key, slot) in [
                ("ca", &mut t.ca_file),
                ("cert", &mut t.cert_file),
                ("key", &mut t.key_file),
            ] {
                if let Some((_, path)) = m.get(key) {
                    *slot = Some(inline_secret(f, path, &format!("{what}-{key}.pem")));
                }
            }
        }
        Keys::Camel => {
            for (key, slot) in [("ca", &mut t.ca_file), ("cert", &mut t.cert_file)] {
                if let Some(mut source) = m.map(key, f) {
                    for kind in ["secret", "configMap"] {
                        if let Some(r) = source.map(kind, f) {
                            *slot = secret_ref_file(r, f);
                        }
                    }
                    source.rest(f, |_| "not a Secret or ConfigMap reference".into());
                }
            }
            if let Some(r) = m.map("keySecret", f) {
                t.key_file = secret_ref_file(r, f);
            }
        }
    }
    m.rest(f, |key| match key {
        "min_version" | "minVersion" | "max_version" | "maxVersion" => {
            "outpost negotiates TLS 1.2 or 1.3 with rustls's defaults".into()
        }
        _ => "outpost's TLS settings are ca_file, cert_file, key_file, server_name and insecure_skip_verify"
            .into(),
    });
    t
}
