//! The outpost image the manifests run, always pinned by digest: a tag can
//! be moved to other bytes, a digest cannot, so every node of a fleet runs
//! the image that was built, checked and pushed. `targets/image/build.sh`
//! writes the digest of its image index to `target/image.digest`; a push
//! with `skopeo copy --all --preserve-digests` keeps it, so the same digest
//! names the image in the user's registry.
//!
//! The reference comes from the spec's `image` key or `--image` (which wins),
//! and its digest from the reference itself or from `--image-digest`.

use crate::diag::Diagnostic;
use crate::spec::Fleet;
use crate::tree::DocPath;
use std::fmt;
use std::path::Path;

/// `name[:tag]@sha256:<64 hex>`; the tag is kept for people reading the
/// manifests, the runtime pulls by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    pub name: String,
    pub tag: Option<String>,
    pub digest: String,
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        write!(f, "@{}", self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("no image to run: set `image` in the spec or pass --image REGISTRY/outpost@sha256:…")]
    Missing,
    #[error("image `{reference}`: {reason}")]
    Bad { reference: String, reason: String },
    #[error(
        "image `{reference}` is not pinned by digest: append @sha256:… or pass --image-digest \
         (targets/image/build.sh writes it to target/image.digest)"
    )]
    NotPinned { reference: String },
    #[error("image `{reference}` is pinned to another digest than --image-digest {digest}")]
    DigestConflict { reference: String, digest: String },
    #[error("--image-digest {arg}: {reason}")]
    BadDigestArg { arg: String, reason: String },
}

/// A reference as written, digest optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parses `[registry[:port]/]path[:tag][@sha256:hex]` with the rules of the
/// OCI distribution reference grammar: lowercase path components joined by
/// `.`, `_`, `__` or dashes; tags of at most 128 word characters, `.` and `-`.
pub fn parse(reference: &str) -> Result<Reference, ImageError> {
    let bad = |reason: String| ImageError::Bad {
        reference: reference.to_string(),
        reason,
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => {
            check_digest(digest).map_err(bad)?;
            (rest, Some(digest.to_string()))
        }
        None => (reference, None),
    };
    // A `:` after the last `/` starts the tag; before it, it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad(format!(
                "tag `{tag}`: at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
            )));
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    if components.len() > 1 && (first.contains(['.', ':']) || first == "localhost") {
        let (host, port) = match first.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Err(bad(format!(
                "registry `{first}` is not a host name with an optional port"
            )));
        }
        components.remove(0);
    }
    for c in components {
        if !is_path_component(c) {
            return Err(bad(format!(
                "`{c}` in the repository path: lowercase letters and digits, joined by `.`, `_`, `__` or dashes"
            )));
        }
    }
    Ok(Reference {
        name: name.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    // Between alphanumeric runs: one `.`, one or two `_`, or any number of `-`.
    c.split(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "digest `{digest}` is not sha256: and 64 lowercase hex digits"
        )),
    }
}

/// `--image-digest`: a digest, or a file holding one (such as the
/// `target/image.digest` the image build writes).
pub fn digest_arg(arg: &str) -> Result<String, ImageError> {
    let bad = |reason: String| ImageError::BadDigestArg {
        arg: arg.to_string(),
        reason,
    };
    let digest = if arg.starts_with("sha256:") {
        arg.to_string()
    } else {
        std::fs::read_to_string(Path::new(arg))
            .map_err(|e| bad(format!("neither a sha256: digest nor a readable file ({e})")))?
            .trim()
            .to_string()
    };
    check_digest(&digest).map_err(bad)?;
    Ok(digest)
}

/// The image the manifests run: `--image` or the spec's `image`, pinned by
/// its own digest or by `digest` (from [`digest_arg`]); both must agree.
pub fn resolve(
    fleet: &Fleet,
    image_flag: Option<&str>,
    digest: Option<&str>,
) -> Result<PinnedImage, ImageError> {
    let reference = image_flag.or(fleet.image.as_deref()).ok_or(ImageError::Missing)?;
    let parsed = parse(reference)?;
    let digest = match (parsed.digest, digest) {
        (Some(own), Some(given)) if own != given => {
            return Err(ImageError::DigestConflict {
                reference: reference.to_string(),
                digest: given.to_string(),
            })
        }
        (Some(own), _) => own,
        (None, Some(given)) => given.to_string(),
        (None, None) => {
            return Err(ImageError::NotPinned {
                reference: reference.to_string(),
            })
        }
    };
    Ok(PinnedImage {
        name: parsed.name,
        tag: parsed.tag,
        digest,
    })
}

/// `outpostc check`: a malformed `image` is reported with its place. One
/// without a digest is fine there: `manifests` may get it from a flag.
pub fn check_spec(fleet: &Fleet) -> Option<Diagnostic> {
    let reference = fleet.image.as_deref()?;
    let ImageError::Bad { reason, .. } = parse(reference).err()? else {
        return None;
    };
    Some(
        Diagnostic::error("bad-image", DocPath::root().at("image"), reason)
            .label("not an image reference")
            .help("e.g. `registry.example.net/outpost:0.1.0@sha256:…`, the digest from target/image.digest"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:3ea3d31ba28da4a61ef5bfb2de15a4c455660555bab8557c4945147f1387b7d4";

    #[test]
    fn references_split_into_name_tag_and_digest() {
        let r = parse(&format!("registry.example.net:5000/edge/outpost:0.1.0@{DIGEST}")).unwrap();
        assert_eq!(r.name, "registry.example.net:5000/edge/outpost");
        assert_eq!(r.tag.as_deref(), Some("0.1.0"));
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        let r = parse("localhost:5000/outpost").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag, r.digest),
            ("localhost:5000/outpost", None, None)
        );
        let r = parse("outpost:v1__rc-2").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_deref()), ("outpost", Some("v1__rc-2")));
        assert!(parse("ghcr.io/a_b/c__d/e---f/g.h").is_ok());
    }

    #[test]
    fn bad_references_say_which_part_is_wrong() {
        for (reference, says) in [
            ("ghcr.io/Outpost", "`Outpost` in the repository path"),
            ("ghcr.io/out..post", "`out..post`"),
            ("ghcr.io/outpost/", "`` in the repository path"),
            ("ghcr.io/outpost:", "tag ``"),
            ("ghcr.io/outpost:-x", "tag `-x`"),
            ("reg_istry.io/outpost", "registry `reg_istry.io`"),
            ("registry.io:port/outpost", "registry `registry.io:port`"),
            ("outpost@sha256:abc", "digest `sha256:abc`"),
            ("outpost@sha512:00", "digest `sha512:00`"),
        ] {
            let e = parse(reference).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(reference), "{reference}: {e}");
        }
        let upper = format!("outpost@sha256:{}", "A".repeat(64));
        assert!(parse(&upper).is_err());
    }

    fn fleet(image: Option<&str>) -> Fleet {
        let mut text = String::from("receiver: {url: 'https://r.example.net/api/v1/write'}\nclusters: []\n");
        if let Some(image) = image {
            text.push_str(&format!("image: '{image}'\n"));
        }
        serde_saphyr::from_str(&text).unwrap()
    }

    #[test]
    fn the_flag_wins_and_the_digest_comes_from_either_side() {
        let pinned = format!("ghcr.io/outpost/outpost:0.1.0@{DIGEST}");
        let image = resolve(&fleet(Some(&pinned)), None, None).unwrap();
        assert_eq!(image.to_string(), pinned);
        let image = resolve(
            &fleet(Some(&pinned)),
            Some("mirror.example.net/outpost"),
            Some(DIGEST),
        )
        .unwrap();
        assert_eq!(image.to_string(), format!("mirror.example.net/outpost@{DIGEST}"));
        let image = resolve(&fleet(Some("ghcr.io/outpost/outpost:0.1.0")), None, Some(DIGEST)).unwrap();
        assert_eq!(image.to_string(), pinned);
        assert_eq!(
            resolve(&fleet(Some(&pinned)), None, Some(DIGEST)).unwrap().digest,
            DIGEST
        );
    }

    #[test]
    fn no_image_no_digest_or_two_digests_are_refused() {
        assert_eq!(
            resolve(&fleet(None), None, Some(DIGEST)),
            Err(ImageError::Missing)
        );
        let e = resolve(&fleet(Some("ghcr.io/outpost/outpost:0.1.0")), None, None).unwrap_err();
        assert!(matches!(e, ImageError::NotPinned { .. }), "{e}");
        assert!(e.to_string().contains("target/image.digest"), "{e}");
        let other = format!("sha256:{}", "0".repeat(64));
        let e = resolve(&fleet(Some(&format!("outpost@{DIGEST}"))), None, Some(&other)).unwrap_err();
        assert!(matches!(e, ImageError::DigestConflict { .. }), "{e}");
    }

    #[test]
    fn digest_arg_takes_a_digest_or_the_file_the_build_writes() {
        assert_eq!(digest_arg(DIGEST).unwrap(), DIGEST);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.digest");
        std::fs::write(&file, format!("{DIGEST}\n")).unwrap();
        assert_eq!(digest_arg(file.to_str().unwrap()).unwrap(), DIGEST);
        std::fs::write(&file, "latest\n").unwrap();
        let e = digest_arg(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("`latest` is not sha256:"), "{e}");
        let e = digest_arg("sha256:xyz").unwrap_err().to_string();
        assert!(e.contains("--image-digest sha256:xyz"), "{e}");
        let e = digest_arg("/nonexistent/image.digest").unwrap_err().to_string();
        assert!(e.contains("neither a sha256: digest nor a readable file"), "{e}");
    }
}
