//! ARCHITECTURE.md checked against the workspace: its dependency table lists exactly the
//! workspace crates each crate depends on (normal dependencies, as `cargo metadata` reports
//! them), the domain stays free of IO crates, and the map stays short. Reads files and runs
//! `cargo metadata` only; needs no running server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const MAP: &str = "ARCHITECTURE.md";
const MAP_MAX_BYTES: usize = 12_288;
const TABLE_HEADER: &str = "| crate | may depend on (workspace crates) |";
/// What the table writes for a crate that depends on no workspace crate.
const NONE: &str = "–";
/// Crates the domain must not depend on: it does no IO.
const IO_CRATES: [&str; 5] = ["tokio", "mongodb", "async-nats", "axum", "reqwest"];

fn repo_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

/// `cargo metadata --format-version 1 --no-deps` of the workspace.
fn metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(repo_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// The workspace's members, each with the names of its normal (not dev, not build)
/// dependencies.
fn members(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| package["id"].as_str().is_some_and(|id| ids.contains(id)))
        .map(|package| {
            let name = package["name"].as_str().expect("package name").to_owned();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .filter_map(|dependency| dependency["name"].as_str())
                .map(str::to_owned)
                .collect();
            (name, dependencies)
        })
        .collect()
}

/// Each member's normal dependencies on other members.
fn workspace_dependencies(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let members = members(metadata);
    let names: BTreeSet<String> = members.keys().cloned().collect();
    members
        .into_iter()
        .map(|(name, dependencies)| {
            let internal = dependencies.intersection(&names).cloned().collect();
            (name, internal)
        })
        .collect()
}

/// The rows of the map's dependency table: crate → the crates it may depend on, as written
/// (each cell's list must be alphabetical and without repeats).
fn table(map: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut lines = map.lines().skip_while(|line| line.trim() != TABLE_HEADER);
    assert!(lines.next().is_some(), "{MAP} has no line `{TABLE_HEADER}`");
    let separator = lines.next().unwrap_or_default();
    assert!(
        separator.trim().starts_with("|-") || separator.trim().starts_with("| -"),
        "the dependency table's header is not followed by a separator row: {separator:?}"
    );
    let mut rows = BTreeMap::new();
    for line in lines.take_while(|line| line.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().trim_matches('`'))
            .collect();
        let [krate, listed] = cells[..] else {
            panic!("a row of the dependency table has not two cells: {line:?}");
        };
        let written: Vec<String> = if listed == NONE {
            Vec::new()
        } else {
            listed
                .split(',')
                .map(|name| name.trim().trim_matches('`').to_owned())
                .collect()
        };
        let mut sorted = written.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            written, sorted,
            "{MAP}: the dependencies of {krate} are not listed alphabetically and once each"
        );
        let previous = rows.insert(krate.to_owned(), written.into_iter().collect());
        assert!(previous.is_none(), "{MAP} lists {krate} twice");
    }
    rows
}

fn names(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        NONE.to_owned()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[test]
fn the_architecture_map_lists_each_crate_s_real_dependencies() {
    let map = std::fs::read_to_string(repo_root().join(MAP)).expect("reading ARCHITECTURE.md");
    let documented = table(&map);
    let actual = workspace_dependencies(&metadata());
    let mut problems = Vec::new();
    for (krate, depends_on) in &actual {
        match documented.get(krate) {
            None => problems.push(format!(
                "{krate} is missing from the table; its row is `| {krate} | {} |`",
                names(depends_on)
            )),
            Some(listed) if listed != depends_on => {
                let missing: BTreeSet<String> = depends_on.difference(listed).cloned().collect();
                let extra: BTreeSet<String> = listed.difference(depends_on).cloned().collect();
                problems.push(format!(
                    "{krate}: the table says `{}`, Cargo.toml says `{}` (not listed: {}; listed but not a dependency: {})",
                    names(listed),
                    names(depends_on),
                    names(&missing),
                    names(&extra)
                ));
            }
            Some(_) => {}
        }
    }
    for krate in documented.keys() {
        if !actual.contains_key(krate) {
            problems.push(format!(
                "{krate} is in the table but not a workspace member"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{MAP}'s dependency table is out of date:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_domain_depends_on_no_crate_that_does_io() {
    let members = members(&metadata());
    let domain = members.get("domain").expect("a domain crate");
    let io: Vec<&str> = IO_CRATES
        .into_iter()
        .filter(|name| domain.contains(*name))
        .collect();
    assert!(io.is_empty(), "domain depends on {io:?}; it must do no IO");
}

#[test]
fn the_architecture_map_stays_a_map_of_at_most_12_kib() {
    let bytes = std::fs::metadata(repo_root().join(MAP))
        .expect("reading ARCHITECTURE.md")
        .len();
    assert!(
        bytes as usize <= MAP_MAX_BYTES,
        "{MAP} is {bytes} bytes, more than {MAP_MAX_BYTES}: move details into module docs"
    );
}
