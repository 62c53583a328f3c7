//! Optional chat templates (off by default; docs/how-led-works.md, "Locate"): the prompt is
//! rendered as one user turn with the model's Jinja chat template, with the generation prompt
//! appended; the answer is the assistant turn that follows, closed by its end-of-turn token.

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
        let dir = led_merging_io::model_dir(dir);
        let dir = dir.as_path();
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
        self.render_messages(&[("user", prompt)], true)
    }

    /// One turn of `prompt` answered by `answer`: the prompt's text ([`ChatTemplate::render`])
    /// and the answer turn, what the template writes after it when the conversation goes on
    /// with `answer` as the assistant's reply, up to and including the first `eos_token` after
    /// the answer (ChatML's `<|im_end|>`, Llama 3's `<|eot_id|>`): the end-of-turn a chat model
    /// must generate to stop. Without an eos token in that text, all of it. An error when the
    /// template does not extend the prompt's rendering (the answer turn could not be told apart).
    pub fn render_turn(&self, prompt: &str, answer: &str) -> Result<(String, String)> {
        let head = self.render(prompt)?;
        let full = self.render_messages(&[("user", prompt), ("assistant", answer)], false)?;
        let Some(rest) = full.strip_prefix(head.as_str()) else {
            return Err(Error::Data(
                "chat_template".into(),
                "rendering a reply does not start with the prompt's rendering (with the generation prompt), so the answer turn cannot be located".into(),
            ));
        };
        // Search for the end of turn after the answer (an answer may itself mention the token).
        let from = if rest.starts_with(answer) {
            answer.len()
        } else {
            0
        };
        let eos = self.eos_token.as_str();
        let turn = match rest[from..].find(eos).filter(|_| !eos.is_empty()) {
            Some(at) => rest[..from + at + eos.len()].to_owned(),
            None => rest.to_owned(),
        };
        Ok((head, turn))
    }

    /// Render `messages` as (role, content) with Hugging Face's Jinja settings (`trim_blocks`,
    /// `lstrip_blocks`).
    fn render_messages(
        &self,
        messages: &[(&str, &str)],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
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
        let messages: Vec<_> = messages
            .iter()
            .map(|(role, content)| context! { role => role, content => content })
            .collect();
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
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
        // The answer turn ends with the end-of-turn token; what follows it is not part of it.
        assert_eq!(t.render_turn("What is 2+2?", "4").unwrap().1, "4<|eot_id|>");
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
    fn chatml_answer_turn_is_closed_by_im_end() {
        // SmolLM2's template (as its chat_template.jinja has it): a default system turn,
        // ChatML turns, a newline after each <|im_end|>.
        let t = ChatTemplate {
            source: "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}".into(),
            bos_token: "<|im_start|>".into(),
            eos_token: "<|im_end|>".into(),
        };
        let (prompt, answer) = t.render_turn("Hi", "Hello!").unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nYou are SmolLM<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(prompt, t.render("Hi").unwrap());
        assert_eq!(answer, "Hello!<|im_end|>");
        // An answer that mentions the token is not cut there.
        assert_eq!(
            t.render_turn("Hi", "a <|im_end|> b").unwrap().1,
            "a <|im_end|> b<|im_end|>"
        );
        // A template whose reply rendering does not extend the prompt's is an error.
        let odd = ChatTemplate {
            source: "{% if add_generation_prompt %}A{% else %}B{% endif %}".into(),
            ..t
        };
        assert!(odd.render_turn("Hi", "x").is_err());
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
