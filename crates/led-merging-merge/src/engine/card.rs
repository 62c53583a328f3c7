//! What the output says about how it was made: the safetensors metadata and the model card.

use std::collections::BTreeMap;

use led_merging_io::meta;

use crate::plan::MergePlan;

/// Provenance written into every shard: tool, method, config, inputs.
pub(super) fn metadata(plan: &MergePlan, yaml: &str) -> BTreeMap<String, String> {
    let inputs: Vec<String> = plan
        .base
        .iter()
        .chain(&plan.models)
        .map(|i| i.path.display().to_string())
        .collect();
    let mut metadata = BTreeMap::new();
    metadata.insert(meta::TOOL.to_string(), meta::tool_version());
    metadata.insert(meta::KIND.to_string(), meta::KIND_MERGE.to_string());
    metadata.insert(
        meta::MERGE_METHOD.to_string(),
        plan.method.name().to_string(),
    );
    metadata.insert(meta::MERGE_CONFIG.to_string(), yaml.to_owned());
    metadata.insert(
        meta::MERGE_INPUTS.to_string(),
        serde_json::to_string(&inputs).expect("strings"),
    );
    metadata
}

/// The output's README.md.
pub(super) fn model_card(plan: &MergePlan, yaml: &str) -> String {
    let mut s = String::from("---\ntags:\n- merge\n- led-merging\n---\n# Merged model\n\n");
    s += &format!(
        "Merged with [led-merging]({}) {} using `{}`.\n\n",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION"),
        plan.method.name()
    );
    if let Some(b) = &plan.base {
        s += &format!("Base model: `{}`\n\n", b.path.display());
    }
    s += "Models:\n";
    for m in &plan.models {
        s += &format!("- `{}`\n", m.path.display());
    }
    s += &format!("\n## Configuration\n\n```yaml\n{yaml}```\n");
    s
}
