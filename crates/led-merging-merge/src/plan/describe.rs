//! The plan as text (`led merge --dry-run`).

use std::fmt::Write as _;

use bytesize::ByteSize;

use super::{Action, MergePlan};
use crate::options::RunOptions;

/// How much [`MergePlan::describe`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Inputs, a summary of the tensors, warnings and checks.
    #[default]
    Summary,
    /// The summary, and one line per tensor.
    PerTensor,
}

impl MergePlan {
    /// The plan as text (`--dry-run`): inputs, a summary of what happens to the tensors,
    /// warnings and the checks done; with [`Detail::PerTensor`], one line per tensor (dtype,
    /// shape, how).
    pub fn describe(&self, detail: Detail, options: &RunOptions) -> String {
        let per_tensor = detail == Detail::PerTensor;
        let mut s = String::new();
        let _ = writeln!(s, "method: {}", self.method.name());
        for r in &self.resolutions {
            let _ = writeln!(s, "{}: {} resolved: {}", r.key, r.reference, r.resolved);
        }
        if let Some(b) = &self.base {
            let _ = writeln!(s, "base:   {}", b.path.display());
        }
        if let Some(stack) = &self.stack {
            let _ = writeln!(
                s,
                "layers: {} from {} slice(s): {}",
                stack.layers(),
                stack.slices.len(),
                stack
                    .slices
                    .iter()
                    .map(|x| format!("{}..{}", x.start, x.start + x.len))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for m in &self.models {
            let _ = writeln!(s, "model:  {} ({})", m.path.display(), m.label);
        }
        if let Some(v) = &self.vocab {
            let _ = writeln!(s, "{}", v.describe());
        }
        let width = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(4);
        let (mut merged, mut in_parts, mut copied) = (0, 0, 0);
        // The largest part a thread holds outside the budget's parts (a tensor merged whole).
        let mut largest_whole = 0;
        for t in &self.tensors {
            let what = match t.action {
                Action::Merge => {
                    merged += 1;
                    let layout = self.layout(t, options);
                    let row = crate::parts::rows_of(&t.shape).1;
                    if !layout.parallel {
                        let longest = layout.parts.iter().map(|r| r.len() * row).max();
                        largest_whole = largest_whole.max(longest.unwrap_or(0));
                    }
                    // Blocks of an element-by-element method are an execution detail.
                    let how = match layout.parts.len() {
                        n if n > 1 && !layout.parallel => {
                            in_parts += 1;
                            format!(", in {n} parts")
                        }
                        _ => String::new(),
                    };
                    format!("{} of {} model(s){how}", self.method.name(), t.inputs.len())
                }
                Action::Copy => {
                    copied += 1;
                    "copy (not a float tensor)".into()
                }
            };
            if per_tensor {
                let _ = writeln!(
                    s,
                    "  {:width$}  {:5}  {:16}  {what}",
                    t.name,
                    t.dtype.as_safetensors(),
                    format!("{:?}", t.shape)
                );
            }
        }
        let _ = writeln!(
            s,
            "tensors: {merged} merged by {} ({in_parts} of them in parts), {copied} copied{}",
            self.method.name(),
            if per_tensor {
                ""
            } else {
                " (one line per tensor with -v)"
            }
        );
        let _ = writeln!(
            s,
            "{}",
            options.describe_memory(self.models.len() + 1, largest_whole)
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if self.method.needs_scores() {
            let files = 2 * self.models.iter().filter(|m| m.scores.is_some()).count();
            let _ = writeln!(
                s,
                "scores: {} of {files} score file(s) checked against the weights of the model they are paired with; {}",
                self.scores_checked,
                if self.config.parameters.contains_key("missing_scores") {
                    "tensors without scores follow `missing_scores`"
                } else {
                    "every merged tensor has scores"
                }
            );
        }
        let _ = writeln!(
            s,
            "output: {} tensors, {}",
            self.tensors.len(),
            ByteSize(self.output_bytes()).display().si()
        );
        s
    }
}
