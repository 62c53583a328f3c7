//! `led merge` on a config of several YAML documents (mergekit-multi): the named merge is
//! written to `--intermediate-dir/NAME`, the final one reads it and goes to OUT, and the result
//! is what the two single-document configs give run one after the other.

mod fixtures;
mod peers;

use fixtures::{led, same_tensors};
use peers::text;

#[test]
fn several_documents_merge_in_order_through_the_intermediate_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = d.join("demo");
    let o = led()
        .args(["demo", "--synthetic", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m = |n: &str| demo.join(n).display().to_string();
    let first = |name: &str| {
        format!(
            "{name}merge_method: slerp\nbase_model: {b}\nmodels:\n  - model: {b}\n  - model: {s}\nparameters: {{t: 0.3}}\n",
            b = m("base"),
            s = m("safety")
        )
    };
    let second = |mid: &str| {
        format!(
            "merge_method: task_arithmetic\nbase_model: {b}\nmodels:\n  - model: {mid}\n    parameters: {{weight: 1.0}}\n  - model: {x}\n    parameters: {{weight: 0.5}}\n",
            b = m("base"),
            x = m("math")
        )
    };
    // The final document first: the order in the file does not matter.
    let multi = d.join("multi.yml");
    std::fs::write(
        &multi,
        format!("{}---\n{}", second("slerped"), first("name: slerped\n")),
    )
    .unwrap();
    // Without --intermediate-dir: said, nothing written.
    let o = led()
        .arg("merge")
        .arg(&multi)
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--intermediate-dir"), "{}", text(&o));
    assert!(!d.join("out").exists());
    // The dry run plans what it can: the named merge; the final one once that exists.
    let o = led()
        .args(["merge", "--dry-run", "--intermediate-dir"])
        .arg(d.join("inter"))
        .arg(&multi)
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("planned once slerped is merged"),
        "{}",
        text(&o)
    );
    assert!(!d.join("out").exists() && !d.join("inter/slerped").exists());
    let o = led()
        .args(["merge", "--intermediate-dir"])
        .arg(d.join("inter"))
        .arg(&multi)
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // The same two merges as separate configs, one after the other.
    std::fs::write(d.join("one.yml"), first("")).unwrap();
    let o = led()
        .arg("merge")
        .arg(d.join("one.yml"))
        .arg(d.join("one"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        d.join("two.yml"),
        second(&d.join("one").display().to_string()),
    )
    .unwrap();
    let o = led()
        .arg("merge")
        .arg(d.join("two.yml"))
        .arg(d.join("two"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    same_tensors(&d.join("inter/slerped"), &d.join("one"));
    same_tensors(&d.join("out"), &d.join("two"));
    // Run again with a new OUT: the intermediate merge is reused, not redone.
    let o = led()
        .args(["merge", "--intermediate-dir"])
        .arg(d.join("inter"))
        .arg(&multi)
        .arg(d.join("out2"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("exists: reused"), "{}", text(&o));
    same_tensors(&d.join("out2"), &d.join("two"));
}
