//! The lists of merge methods written in prose (README, the merge crate's docs,
//! docs/merge-operators.md) name exactly the methods the registry implements: a method added,
//! renamed or removed without its docs fails here.

use std::collections::BTreeSet;

use led_merging::merge::ops::methods;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The backticked words of `text` between the first `start` and the next `end` after it.
fn backticked(text: &str, start: &str, end: &str, path: &str) -> BTreeSet<String> {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{path}: no {start:?}"))
        + start.len();
    let to = from
        + text[from..]
            .find(end)
            .unwrap_or_else(|| panic!("{path}: no {end:?} after {start:?}"));
    text[from..to]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn registry() -> BTreeSet<String> {
    methods().into_iter().map(str::to_owned).collect()
}

fn without_led(mut names: BTreeSet<String>) -> BTreeSet<String> {
    names.remove("led");
    names
}

#[test]
fn readme_lists_every_method() {
    let readme = read("README.md");
    let listed = backticked(&readme, "`merge_method` may also be", "with", "README.md");
    assert_eq!(
        listed,
        without_led(registry()),
        "README.md's list of methods"
    );
    assert!(readme.contains("merge_method: led"), "README.md shows led");
}

#[test]
fn merge_crate_docs_list_every_method() {
    let path = "crates/led-merging-merge/src/lib.rs";
    let mut listed = backticked(&read(path), "the classic baselines (", ")", path);
    listed.remove("slices");
    assert_eq!(listed, without_led(registry()), "{path}'s list of methods");
}

#[test]
fn merge_operators_doc_describes_every_method() {
    let path = "docs/merge-operators.md";
    let text = read(path);
    let section = &text[text.find("## Methods").expect("a Methods section")
        ..text.find("## Where we differ").expect("the next section")];
    // `- **a / b**: ...`: every method named in bold at the start of an item.
    let listed: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("- **"))
        .filter_map(|l| l.split_once("**").map(|(names, _)| names))
        .flat_map(|names| names.split(" / "))
        .map(|n| n.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, without_led(registry()), "{path}'s list of methods");
}
