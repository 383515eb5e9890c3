//! Segment names: what `shm_open` will accept and what we allow.

use crate::error::{Error, Result};

/// Longest name we accept, leaving room for the leading `/` within NAME_MAX.
pub const MAX_NAME_LEN: usize = 254;

/// A validated segment name, stored without its leading `/`.
///
/// ```
/// use shmring::{Error, SegmentName};
/// let name = SegmentName::new("/quotes")?; // a leading slash is optional
/// assert_eq!(name.as_str(), "quotes");
/// assert!(matches!(SegmentName::new("a/b"), Err(Error::InvalidName { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegmentName(String);

impl SegmentName {
    /// Accept `quotes` and `/quotes`; refuse empty or over-long names, `.`
    /// and `..`, a `/` anywhere after the first byte, and any character
    /// outside `[A-Za-z0-9._-]` (so a name can never walk out of /dev/shm or
    /// hide control characters in a listing).
    pub fn new(name: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        let bare = name.strip_prefix('/').unwrap_or(name);
        if bare.is_empty() {
            return Err(bad("empty"));
        }
        if bare.len() > MAX_NAME_LEN {
            return Err(bad("longer than 254 bytes"));
        }
        if bare == "." || bare == ".." {
            return Err(bad("`.` and `..` are not segment names"));
        }
        if bare.contains('/') {
            return Err(bad("contains `/` after the first character"));
        }
        if !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(bad("only A-Z a-z 0-9 . _ - are allowed"));
        }
        Ok(SegmentName(bare.to_owned()))
    }

    /// The name without its leading `/`, as it appears in /dev/shm.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with its leading `/`, as `shm_open` wants it.
    #[cfg_attr(shmring_loom, allow(dead_code))]
    pub(crate) fn os_name(&self) -> String {
        format!("/{}", self.0)
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_with_and_without_slash() {
        assert_eq!(SegmentName::new("quotes").unwrap().as_str(), "quotes");
        assert_eq!(SegmentName::new("/quotes").unwrap().as_str(), "quotes");
        assert_eq!(SegmentName::new("/a.b_c-9").unwrap().os_name(), "/a.b_c-9");
    }

    #[test]
    fn rejects_bad_names() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for name in [
            "",
            "/",
            "a/b",
            "//a",
            "..",
            ".",
            "a b",
            "é",
            "a\n",
            long.as_str(),
        ] {
            assert!(
                matches!(SegmentName::new(name), Err(Error::InvalidName { .. })),
                "{name:?} was accepted"
            );
        }
        assert!(SegmentName::new(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }
}
