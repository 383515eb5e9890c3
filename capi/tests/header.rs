//! The checked-in header is the one the code generates, and it keeps every
//! prototype its ABI version recorded: a change that breaks C callers
//! fails here until the version is bumped.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate")
        .write(&mut out);
    plain_links(&String::from_utf8(out).unwrap())
}

/// The header's comments are the code's docs, whose intra-doc links
/// (`` [`X`](crate::X) `` and `` [`X`] ``) read as plain `` `X` `` in C.
fn plain_links(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut rest = header;
    while let Some(at) = rest.find("[`") {
        let Some(close) = rest[at..].find("`]").map(|c| at + c) else {
            break;
        };
        out.push_str(&rest[..at]);
        out.push_str(&rest[at + 1..close + 1]);
        rest = &rest[close + 2..];
        // A link's target, if any, goes too.
        if rest.starts_with('(') {
            if let Some(end) = rest.find(')') {
                rest = &rest[end + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_checked_in_header_is_the_generated_one() {
    let path = crate_dir().join("include/shmring.h");
    let fresh = generated();
    if blessing() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "{} differs from what the code generates: run \
         `SHMRING_BLESS=1 cargo test -p shmring-c --test header` and commit it",
        path.display()
    );
}

/// Whether to write what the code generates (`SHMRING_BLESS=1`); never in
/// CI, where it would make the checks pass whatever changed.
fn blessing() -> bool {
    let bless = std::env::var_os("SHMRING_BLESS").is_some();
    assert!(
        !(bless && std::env::var_os("CI").is_some()),
        "SHMRING_BLESS is refused in CI"
    );
    bless
}

/// What C callers compile against, one per line: every `SHMRING_` value
/// the header defines (a status renumbered breaks them too), then every
/// declaration, whitespace joined.
fn prototypes(header: &str) -> Vec<String> {
    let defines = header.lines().filter(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("#define")
            && words.next().is_some_and(|n| n.starts_with("SHMRING_"))
            && words.next().is_some_and(|v| v.parse::<i64>().is_ok())
    });
    let defines: Vec<String> = defines.map(str::to_owned).collect();
    // Block comments out first (the header's preamble names functions).
    let mut text = header.to_owned();
    while let (Some(a), Some(b)) = (text.find("/*"), text.find("*/")) {
        text.replace_range(a..b + 2, " ");
    }
    let mut code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    // A struct the caller allocates is ABI too, field by field, recorded
    // whole (its fields end in `;` like declarations do); an opaque one
    // is a name only.
    let mut structs = Vec::new();
    while let Some(at) = code.find("typedef struct ") {
        let rest = &code[at..];
        let semi = rest.find(';').expect("a typedef ends");
        let end = match rest.find('{') {
            Some(brace) if brace < semi => {
                let close = rest.find('}').expect("a struct body ends");
                let end = close + rest[close..].find(';').expect("a typedef ends");
                structs.push(rest[..end].split_whitespace().collect::<Vec<_>>().join(" "));
                end
            }
            _ => semi,
        };
        code.replace_range(at..at + end + 1, " ");
    }
    let declarations = code
        .split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| d.contains("shmring_") && d.contains('('))
        .map(|d| d.trim_start_matches("extern \"C\" { ").to_owned());
    defines
        .into_iter()
        .chain(structs)
        .chain(declarations)
        .collect()
}

fn recorded(version: u32) -> PathBuf {
    crate_dir().join(format!("abi/v{version}.txt"))
}

#[test]
fn every_prototype_of_this_abi_version_is_still_there() {
    let header = generated();
    let version: u32 = header
        .lines()
        .find_map(|l| l.strip_prefix("#define SHMRING_C_ABI_VERSION "))
        .expect("the header names its ABI version")
        .trim()
        .parse()
        .unwrap();
    let now = prototypes(&header);
    let path = recorded(version);
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if blessing() && missing(&before, &now).is_empty() {
        // New functions, structs and values join the record, only while
        // nothing it holds changed or went (that is a new version, and
        // fails below: a changed line must not join the old version's).
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut kept: Vec<String> = before.lines().map(str::to_owned).collect();
        let new: Vec<String> = now.iter().filter(|p| !kept.contains(p)).cloned().collect();
        kept.extend(new);
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
    let kept = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} records ABI version {version}", path.display()));
    let gone = missing(&kept, &now);
    assert!(
        gone.is_empty(),
        "these prototypes of ABI version {version} changed or went, which breaks \
         C callers: bump SHMRING_C_ABI_VERSION (and record the new version) \
         or keep them:\n{}",
        gone.join("\n")
    );
}

/// The recorded prototypes that `now` no longer declares.
fn missing<'a>(kept: &'a str, now: &[String]) -> Vec<&'a str> {
    kept.lines()
        .filter(|p| !now.iter().any(|n| n == p))
        .collect()
}

#[test]
fn the_prototype_check_catches_a_changed_or_removed_function() {
    let kept = std::fs::read_to_string(recorded(1)).unwrap();
    let now = prototypes(&generated());
    assert!(missing(&kept, &now).is_empty());
    // A length of another type is another ABI; so is a function gone.
    let mut changed = now.clone();
    let send = changed
        .iter_mut()
        .find(|p| p.contains("shmring_bytes_try_send("))
        .expect("try_send is declared");
    let before = send.clone();
    *send = send.replace("size_t len", "uint32_t len");
    assert_eq!(missing(&kept, &changed), [before.as_str()]);
    let removed: Vec<String> = now
        .iter()
        .filter(|p| !p.contains("shmring_bytes_abort("))
        .cloned()
        .collect();
    assert_eq!(missing(&kept, &removed).len(), 1);
    // A status renumbered is another ABI too.
    let renumbered: Vec<String> = now
        .iter()
        .map(|p| p.replace("#define SHMRING_FULL 2", "#define SHMRING_FULL 20"))
        .collect();
    assert_eq!(missing(&kept, &renumbered), ["#define SHMRING_FULL 2"]);
    // A field of a struct the caller allocates, narrowed, is too.
    let narrowed: Vec<String> = now
        .iter()
        .map(|p| p.replace("uint64_t capacity;", "uint32_t capacity;"))
        .collect();
    let info = missing(&kept, &narrowed);
    assert!(
        info.len() == 1 && info[0].starts_with("typedef struct ShmringInfo {"),
        "{info:?}"
    );
    assert!(Path::new(&recorded(1)).exists());
}
