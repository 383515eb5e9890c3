//! The folders of `src/` are layers, and this test keeps them honest: a
//! module may name (`crate::...`, the crate root's re-exports included)
//! only modules of its own layer or below, and the modules of one layer
//! import each other without a cycle. The order is the one `src/lib.rs`
//! declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A folder is a layer; so is a top-level file.
const LAYERS: &[&str] = &[
    "kind",
    "error",
    "platform",
    "peers",
    "format",
    "wait",
    "lifecycle",
    "hook",
    "rings",
    "services",
    "inspect",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `platform/segment.rs` -> ["platform", "segment"]; `wait.rs` -> ["wait"];
/// `rings/mod.rs` -> ["rings"].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The modules a file names through `crate::` paths, outside comments, as
/// (layer, module within the layer if the layer is a folder).
fn references(text: &str) -> BTreeSet<(String, Option<String>)> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let mut words = rest.split("::").map(|w| {
                w.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")
            });
            let layer = words.next().unwrap_or("").to_owned();
            let module = words.next().filter(|m| !m.is_empty()).map(str::to_owned);
            found.insert((layer, module));
        }
    }
    found
}

fn layer_index(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// What the crate root re-exports, by name, and the layer each comes from:
/// `pub use rings::spsc::{Spsc, ...}` makes `crate::Spsc` a name of
/// `rings`, and `pub mod spsc { pub use crate::rings::spsc::...; }` makes
/// `crate::spsc` one. A module naming `crate::Error` names `error`, and is
/// held to the layer order like one that names `crate::error::Error`.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let code: String = lib
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut exports = BTreeMap::new();
    // Inline modules first: their own `pub use` lines name `crate::` paths.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("pub mod ") {
        rest = &rest[at + "pub mod ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body = &rest[name.len()..];
        if body.trim_start().starts_with('{') {
            if let Some(path) = body.split("crate::").nth(1) {
                let layer = path.split("::").next().unwrap_or("").to_owned();
                exports.insert(name, layer);
            }
        }
    }
    for stmt in code.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let path = stmt[at + "pub use ".len()..].trim();
        let path = path.strip_prefix("crate::").unwrap_or(path);
        let layer = path.split("::").next().unwrap_or("").trim().to_owned();
        if layer_index(&layer).is_none() {
            continue; // another crate's items (bytemuck)
        }
        let names = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_owned(),
            _ => path.rsplit("::").next().unwrap_or("").to_owned(),
        };
        for item in names.split(',') {
            // `A as B` exports B.
            if let Some(name) = item.split_whitespace().last() {
                exports.insert(name.to_owned(), layer.clone());
            }
        }
    }
    exports
}

#[test]
fn modules_import_only_their_own_layer_or_below_and_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();

    let exports = root_exports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        exports.get("Error").map(String::as_str) == Some("error")
            && exports.get("Spsc").map(String::as_str) == Some("rings")
            && exports.get("spsc").map(String::as_str) == Some("rings"),
        "the crate root's re-exports were not read: {exports:?}"
    );
    let mut violations = Vec::new();
    // Within-layer edges between modules of one folder, for the cycle check.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut layers_seen = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == ["lib"] {
            continue; // the crate root declares and re-exports every layer
        }
        let own = layer_index(&module[0]).unwrap_or_else(|| {
            panic!("{}: layer {:?} is not in LAYERS", file.display(), module[0])
        });
        layers_seen.insert(module[0].clone());
        let text = std::fs::read_to_string(file).unwrap();
        for (name, target) in references(&text) {
            // A root re-export stands for the layer it comes from.
            let (layer, target) = match exports.get(&name) {
                Some(layer) if layer_index(&name).is_none() => (layer.clone(), None),
                _ => (name, target),
            };
            let Some(theirs) = layer_index(&layer) else {
                continue; // a macro at the root, not a module
            };
            if theirs > own {
                violations.push(format!(
                    "{} ({}) names crate::{layer} (higher layer)",
                    file.display(),
                    module[0]
                ));
            }
            if theirs == own && module.len() > 1 {
                if let Some(target) = target.filter(|t| *t != module[1]) {
                    edges
                        .entry(format!("{layer}::{}", module[1]))
                        .or_default()
                        .insert(format!("{layer}::{target}"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
    let every_layer: BTreeSet<String> = LAYERS.iter().map(|l| l.to_string()).collect();
    assert_eq!(layers_seen, every_layer, "LAYERS and src/ disagree");

    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => return None, // done
            Some(false) => {
                let start = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node.to_owned(), false);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_owned(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut state, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The checker itself: it must see an upward import and a cycle.
#[test]
fn the_checker_sees_paths_in_code_and_not_in_comments() {
    let text = "use crate::platform::segment::Segment;\n// crate::rings::spsc\nlet x = crate::format::header::offsets::HEAD;";
    let refs = references(text);
    assert!(refs.contains(&("platform".into(), Some("segment".into()))));
    assert!(refs.contains(&("format".into(), Some("header".into()))));
    assert!(!refs.iter().any(|(l, _)| l == "rings"));
}
