//! mergekit-multi: a config of several YAML documents, each a merge; a document with a `name`
//! is an intermediate merge that later documents name as a model; the one without a `name` is
//! the final merge (docs/merging.md, "Several documents").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::MergeConfig;
use crate::error::{Error, Result};

/// One merge of a multi-document config, its references to other documents rewritten to
/// where their outputs are.
#[derive(Debug, Clone)]
pub struct Step {
    /// The document's `name` (`None`: the final merge).
    pub name: Option<String>,
    /// Its config, ready to plan.
    pub config: MergeConfig,
    /// Where it writes: `INTERMEDIATE/NAME`, or `OUT` for the final merge.
    pub out: PathBuf,
    /// The names of the documents whose outputs it reads.
    pub needs: Vec<String>,
}

/// The merges of a multi-document config, in an order where every merge comes after those it
/// reads.
#[derive(Debug, Clone)]
pub struct MultiMerge {
    /// The merges, dependencies first.
    pub steps: Vec<Step>,
}

impl MultiMerge {
    /// Order `documents` (as [`MergeConfig::documents`] reads them) and point every reference
    /// to a document's `name` at `intermediate_dir/NAME`. The final merge, written to `out`, is
    /// the document without a `name`; without one, the named document no other reads (as
    /// mergekit-multi writes it to `intermediate_dir/NAME`, led writes it to `out`).
    pub fn new(documents: Vec<MergeConfig>, intermediate_dir: &Path, out: &Path) -> Result<Self> {
        let err = |config: &MergeConfig, key: &str, reason: String| Error::Config {
            path: config.source().into(),
            key: key.into(),
            reason,
        };
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut unnamed = None;
        for (i, d) in documents.iter().enumerate() {
            match &d.name {
                Some(n) => {
                    if n.is_empty() || n.contains(['/', '\\']) || n == "." || n == ".." {
                        return Err(err(
                            d,
                            &format!("document {}: name", i + 1),
                            format!("{n:?} is not a name a directory can have"),
                        ));
                    }
                    if by_name.insert(n.clone(), i).is_some() {
                        return Err(err(
                            d,
                            &format!("document {}: name", i + 1),
                            format!("{n:?} names two documents"),
                        ));
                    }
                }
                None if unnamed.is_some() => {
                    return Err(err(
                        d,
                        &format!("document {}: name", i + 1),
                        "two documents without a `name`: only the final merge has none".into(),
                    ));
                }
                None => unnamed = Some(i),
            }
        }
        // Each document's references to others, rewritten to their outputs.
        let mut steps: Vec<Step> = Vec::with_capacity(documents.len());
        for d in documents {
            let mut config = d;
            let mut needs = Vec::new();
            let _ = config.visit_model_refs(|_, p| {
                if let Some(n) = p.to_str().filter(|t| by_name.contains_key(*t)) {
                    needs.push(n.to_owned());
                    *p = intermediate_dir.join(n);
                }
                Ok::<(), ()>(())
            });
            needs.sort();
            needs.dedup();
            steps.push(Step {
                name: config.name.clone(),
                out: PathBuf::new(),
                config,
                needs,
            });
        }
        let final_step = match unnamed {
            Some(i) => i,
            None => {
                let read: Vec<usize> = (0..steps.len())
                    .filter(|&i| {
                        let n = steps[i].name.as_deref().unwrap_or_default();
                        steps.iter().all(|s| !s.needs.iter().any(|x| x == n))
                    })
                    .collect();
                match read.as_slice() {
                    [i] => *i,
                    _ => {
                        return Err(err(
                            &steps[0].config,
                            "name",
                            format!(
                                "{} documents are read by no other ({}): give the final merge no `name`",
                                read.len(),
                                read.iter()
                                    .filter_map(|&i| steps[i].name.clone())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        for (i, s) in steps.iter_mut().enumerate() {
            s.out = match (&s.name, i == final_step) {
                (_, true) => out.to_path_buf(),
                (Some(n), false) => intermediate_dir.join(n),
                (None, false) => unreachable!("the one unnamed document is the final one"),
            };
        }
        Ok(MultiMerge {
            steps: order(steps)?,
        })
    }

    /// Read a config file of one or several documents.
    pub fn from_file(path: &Path, intermediate_dir: &Path, out: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.into(),
            key: "<file>".into(),
            reason: e.to_string(),
        })?;
        Self::new(MergeConfig::documents(&text, path)?, intermediate_dir, out)
    }
}

/// `steps` with every step after those it needs; an error naming a cycle.
fn order(mut steps: Vec<Step>) -> Result<Vec<Step>> {
    let mut done: Vec<Step> = Vec::with_capacity(steps.len());
    while !steps.is_empty() {
        let ready = steps.iter().position(|s| {
            s.needs
                .iter()
                .all(|n| done.iter().any(|d| d.name.as_deref() == Some(n)))
        });
        match ready {
            Some(i) => done.push(steps.remove(i)),
            None => {
                let names: Vec<String> = steps.iter().filter_map(|s| s.name.clone()).collect();
                return Err(Error::Config {
                    path: steps[0].config.source().into(),
                    key: "name".into(),
                    reason: format!(
                        "the documents {} read each other's outputs in a circle",
                        names.join(", ")
                    ),
                });
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<MergeConfig> {
        MergeConfig::documents(text, Path::new("multi.yml")).unwrap()
    }

    #[test]
    fn documents_run_after_what_they_read_and_read_its_output() {
        let text = "merge_method: linear\nmodels:\n  - model: step-a\n    parameters: {weight: 1}\n  - model: m/x\n    parameters: {weight: 1}\n---\nname: step-a\nmerge_method: linear\nmodels:\n  - model: m/y\n    parameters: {weight: 1}\n  - model: m/z\n    parameters: {weight: 1}\n";
        let m = MultiMerge::new(docs(text), Path::new("inter"), Path::new("out")).unwrap();
        assert_eq!(m.steps.len(), 2);
        assert_eq!(m.steps[0].name.as_deref(), Some("step-a"));
        assert_eq!(m.steps[0].out, Path::new("inter/step-a"));
        assert_eq!(m.steps[1].name, None);
        assert_eq!(m.steps[1].out, Path::new("out"));
        assert_eq!(m.steps[1].needs, ["step-a"]);
        assert_eq!(m.steps[1].config.models[0].model, Path::new("inter/step-a"));
        assert_eq!(m.steps[1].config.models[1].model, Path::new("m/x"));
        // All named: the one no other reads is the final merge.
        let named = text.replacen(
            "merge_method: linear",
            "name: last\nmerge_method: linear",
            1,
        );
        let m = MultiMerge::new(docs(&named), Path::new("inter"), Path::new("out")).unwrap();
        assert_eq!(m.steps[1].name.as_deref(), Some("last"));
        assert_eq!(m.steps[1].out, Path::new("out"));
    }

    #[test]
    fn cycles_repeats_and_two_finals_are_errors() {
        let cyc = "name: a\nmerge_method: linear\nmodels:\n  - model: b\n---\nname: b\nmerge_method: linear\nmodels:\n  - model: a\n---\nmerge_method: linear\nmodels:\n  - model: a\n";
        let e = MultiMerge::new(docs(cyc), Path::new("i"), Path::new("o")).unwrap_err();
        assert!(e.to_string().contains("circle"), "{e}");
        let twice = "name: a\nmerge_method: linear\nmodels:\n  - model: x\n---\nname: a\nmerge_method: linear\nmodels:\n  - model: y\n";
        let e = MultiMerge::new(docs(twice), Path::new("i"), Path::new("o")).unwrap_err();
        assert!(e.to_string().contains("names two documents"), "{e}");
        let finals = "merge_method: linear\nmodels:\n  - model: x\n---\nmerge_method: linear\nmodels:\n  - model: y\n";
        let e = MultiMerge::new(docs(finals), Path::new("i"), Path::new("o")).unwrap_err();
        assert!(
            e.to_string().contains("two documents without a `name`"),
            "{e}"
        );
        let bad = "name: ../up\nmerge_method: linear\nmodels:\n  - model: x\n";
        let e = MultiMerge::new(docs(bad), Path::new("i"), Path::new("o")).unwrap_err();
        assert!(e.to_string().contains("not a name"), "{e}");
    }
}
