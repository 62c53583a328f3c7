//! Optional chat templates (off by default, spec §1): the prompt is rendered as one user turn
//! with the model's Jinja chat template, with the generation prompt appended.

use std::path::Path;

use minijinja::{Environment, Error as JinjaError, ErrorKind, context};

use crate::{Error, Result};

/// Instructions a template may execute to render one prompt (real templates need a few
/// thousand); past it rendering fails instead of running away.
pub const RENDER_FUEL: u64 = 1_000_000;

/// A model's chat template and the special tokens it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    /// Jinja source.
    pub source: String,
    /// `bos_token`.
    pub bos_token: String,
    /// `eos_token`.
    pub eos_token: String,
}

fn token(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// Read the template from `chat_template.jinja` or `tokenizer_config.json` in `dir`.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read(&config_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Data(config_path.clone(), e.to_string()))?,
            Err(_) => serde_json::Value::Null,
        };
        let file = dir.join("chat_template.jinja");
        let source = if file.exists() {
            std::fs::read_to_string(&file).map_err(|e| Error::Data(file.clone(), e.to_string()))?
        } else {
            match config.get("chat_template") {
                Some(serde_json::Value::String(s)) => s.clone(),
                // A list of named templates: take "default".
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(str::to_owned))
                    .ok_or_else(|| Error::Data(config_path.clone(), "chat_template list has no \"default\" entry".into()))?,
                _ => return Err(Error::Data(dir.to_path_buf(), "no chat template (chat_template.jinja or tokenizer_config.json's chat_template)".into())),
            }
        };
        Ok(ChatTemplate {
            source,
            bos_token: token(config.get("bos_token")),
            eos_token: token(config.get("eos_token")),
        })
    }

    /// The prompt as one user turn, followed by the generation prompt.
    pub fn render(&self, prompt: &str) -> Result<String> {
        let mut env = Environment::new();
        // The template comes with the model, so it is untrusted: bound its work and depth.
        env.set_fuel(Some(RENDER_FUEL));
        env.set_recursion_limit(64);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| Error::Data("chat_template".into(), e.to_string()))?;
        let template = env
            .get_template("chat")
            .map_err(|e| Error::Data("chat_template".into(), e.to_string()))?;
        template
            .render(context! {
                messages => vec![context! { role => "user", content => prompt }],
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| Error::Data("chat_template".into(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_llama3_style_template() {
        let t = ChatTemplate {
            source: "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}".into(),
            bos_token: "<|begin_of_text|>".into(),
            eos_token: "<|eot_id|>".into(),
        };
        assert_eq!(
            t.render(" What is 2+2? ").unwrap(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let strict = ChatTemplate {
            source: "{{ raise_exception('roles must alternate') }}".into(),
            ..t
        };
        assert!(
            strict
                .render("x")
                .unwrap_err()
                .to_string()
                .contains("roles must alternate")
        );
    }

    #[test]
    fn a_runaway_template_fails_instead_of_hanging() {
        for source in [
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ] {
            let t = ChatTemplate {
                source: source.into(),
                bos_token: String::new(),
                eos_token: String::new(),
            };
            let err = t.render("x").unwrap_err().to_string();
            assert!(err.starts_with("chat_template: "), "{err}");
        }
    }
}
