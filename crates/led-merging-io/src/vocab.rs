//! A tokenizer's vocabulary as transformers sees it (`tokenizer.json`: the model's own
//! vocabulary and the added tokens), and a copied tokenizer edited to a merged vocabulary
//! (docs/merging.md, "Tokenizers").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::files::{CONFIG_FILE, json, object, write_json};

/// `tokenizer.json`.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// The vocabulary of a model directory's `tokenizer.json`.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Token → id, added tokens included (transformers' `get_vocab()`).
    pub ids: HashMap<String, u32>,
    /// The added tokens' entries by id, as `tokenizer.json` holds them (`content`, `special`,
    /// `normalized`, ...).
    pub added: BTreeMap<u32, Value>,
}

impl Vocabulary {
    /// The vocabulary of `dir`'s `tokenizer.json`; `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(TOKENIZER_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let tok = json(&path)?;
        let bad = |reason: String| Error::Json {
            path: path.clone(),
            reason,
        };
        let mut ids = HashMap::new();
        match tok.get("model").and_then(|m| m.get("vocab")) {
            Some(Value::Object(m)) => {
                for (token, id) in m {
                    let id = id
                        .as_u64()
                        .ok_or_else(|| bad(format!("token {token:?} has no integer id")))?;
                    ids.insert(token.clone(), id as u32);
                }
            }
            // Unigram: a list of [piece, score]; ids are positions.
            Some(Value::Array(pieces)) => {
                for (id, piece) in pieces.iter().enumerate() {
                    let token = piece.get(0).and_then(Value::as_str).ok_or_else(|| {
                        bad(format!("vocabulary entry {id} is not [piece, score]"))
                    })?;
                    ids.insert(token.to_owned(), id as u32);
                }
            }
            _ => return Err(bad("has no model vocabulary (`model.vocab`)".into())),
        }
        let mut added = BTreeMap::new();
        for entry in tok
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(content)) = (
                entry.get("id").and_then(Value::as_u64),
                entry.get("content").and_then(Value::as_str),
            ) else {
                return Err(bad(format!("added token {entry} has no id or content")));
            };
            ids.insert(content.to_owned(), id as u32);
            added.insert(id as u32, entry.clone());
        }
        Ok(Some(Vocabulary { ids, added }))
    }

    /// Tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// (token, id) by increasing id.
    pub fn by_id(&self) -> Vec<(&str, u32)> {
        let mut all: Vec<(&str, u32)> = self.ids.iter().map(|(t, &i)| (t.as_str(), i)).collect();
        all.sort_by_key(|&(t, i)| (i, t));
        all
    }

    /// Whether token `id` is an added token.
    pub fn is_added(&self, id: u32) -> bool {
        self.added.contains_key(&id)
    }
}

/// The entry of token `content` added at `id` as transformers' `add_tokens("...")` adds a
/// plain string: normalized, not special.
pub fn plain_added_token(content: &str, id: u32) -> Value {
    serde_json::json!({
        "id": id, "content": content, "single_word": false, "lstrip": false,
        "rstrip": false, "normalized": true, "special": false,
    })
}

/// `config.json`'s `vocab_size` in `dir`, if it has one.
pub fn config_vocab_size(dir: &Path) -> Option<u64> {
    json(&dir.join(CONFIG_FILE))
        .ok()?
        .get("vocab_size")?
        .as_u64()
}

/// Edit the tokenizer copied into `dir` to a merged vocabulary: tokens at ids `keep_below` and
/// up dropped (with the BPE merges that use or make them), then the tokens `added` (entries as
/// [`plain_added_token`] makes them, each with its id) added, in `tokenizer.json` and in
/// `tokenizer_config.json`'s `added_tokens_decoder`; and `config.json`'s `vocab_size` set to
/// `vocab_size`. Files `dir` lacks are left absent.
pub fn set_vocabulary(
    dir: &Path,
    keep_below: Option<u32>,
    added: &[Value],
    vocab_size: usize,
) -> Result<()> {
    let keep = |id: Option<u64>| match (keep_below, id) {
        (Some(k), Some(id)) => id < u64::from(k),
        _ => true,
    };
    let path = dir.join(TOKENIZER_FILE);
    if path.is_file() {
        let mut tok = json(&path)?;
        let obj = object(&path, &mut tok)?;
        let mut dropped = HashSet::new();
        if let Some(Value::Array(list)) = obj.get_mut("added_tokens") {
            list.retain(|e| {
                let kept = keep(e.get("id").and_then(Value::as_u64));
                if !kept && let Some(c) = e.get("content").and_then(Value::as_str) {
                    dropped.insert(c.to_owned());
                }
                kept
            });
            list.extend(added.iter().cloned());
        } else {
            obj.insert("added_tokens".into(), Value::Array(added.to_vec()));
        }
        if let Some(Value::Object(model)) = obj.get_mut("model") {
            if let Some(Value::Object(vocab)) = model.get_mut("vocab") {
                vocab.retain(|t, id| {
                    let kept = keep(id.as_u64());
                    if !kept {
                        dropped.insert(t.clone());
                    }
                    kept
                });
            }
            if let Some(Value::Array(merges)) = model.get_mut("merges") {
                // A merge of a dropped token, or into one, would not load.
                merges.retain(|m| {
                    let pair: Vec<&str> = match m {
                        Value::String(s) => s.split(' ').collect(),
                        Value::Array(pair) => pair.iter().filter_map(Value::as_str).collect(),
                        _ => return true,
                    };
                    !pair.iter().any(|t| dropped.contains(*t)) && !dropped.contains(&pair.concat())
                });
            }
        }
        write_json(&path, &tok)?;
    }
    let path = dir.join(TOKENIZER_CONFIG_FILE);
    if path.is_file() {
        let mut config = json(&path)?;
        let obj = object(&path, &mut config)?;
        if let Some(Value::Object(decoder)) = obj.get_mut("added_tokens_decoder") {
            decoder.retain(|id, _| keep(id.parse().ok()));
            for entry in added {
                let mut e = entry.clone();
                let id = e
                    .as_object_mut()
                    .and_then(|o| o.remove("id"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default();
                decoder.insert(id.to_string(), e);
            }
        }
        write_json(&path, &config)?;
    }
    let path = dir.join(CONFIG_FILE);
    if path.is_file() {
        let mut config = json(&path)?;
        object(&path, &mut config)?.insert("vocab_size".into(), Value::from(vocab_size));
        write_json(&path, &config)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(dir: &Path) {
        let tok = serde_json::json!({
            "version": "1.0",
            "added_tokens": [
                {"id": 3, "content": "<x>", "single_word": false, "lstrip": false,
                 "rstrip": false, "normalized": false, "special": true},
                {"id": 4, "content": "<unused>", "single_word": false, "lstrip": false,
                 "rstrip": false, "normalized": false, "special": true},
            ],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        });
        std::fs::write(dir.join(TOKENIZER_FILE), tok.to_string()).unwrap();
        let config = serde_json::json!({"added_tokens_decoder": {
            "3": {"content": "<x>", "special": true}, "4": {"content": "<unused>", "special": true},
        }});
        std::fs::write(dir.join(TOKENIZER_CONFIG_FILE), config.to_string()).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), r#"{"vocab_size": 4}"#).unwrap();
    }

    #[test]
    fn vocabulary_is_the_model_vocabulary_and_the_added_tokens() {
        let d = tempfile::tempdir().unwrap();
        assert!(Vocabulary::read(d.path()).unwrap().is_none());
        tokenizer(d.path());
        let v = Vocabulary::read(d.path()).unwrap().unwrap();
        assert_eq!(
            v.by_id(),
            [("a", 0), ("b", 1), ("ab", 2), ("<x>", 3), ("<unused>", 4)]
        );
        assert!(v.is_added(3) && !v.is_added(2));
        assert_eq!(config_vocab_size(d.path()), Some(4));
    }

    #[test]
    fn set_vocabulary_drops_and_adds_tokens_everywhere() {
        let d = tempfile::tempdir().unwrap();
        tokenizer(d.path());
        // Keep ids below 2 (drops `ab`, its merge, `<x>` and `<unused>`), add `<y>` at 2.
        set_vocabulary(d.path(), Some(2), &[plain_added_token("<y>", 2)], 8).unwrap();
        let v = Vocabulary::read(d.path()).unwrap().unwrap();
        assert_eq!(v.by_id(), [("a", 0), ("b", 1), ("<y>", 2)]);
        let tok = json(&d.path().join(TOKENIZER_FILE)).unwrap();
        assert_eq!(tok["model"]["merges"], serde_json::json!([]));
        let config = json(&d.path().join(TOKENIZER_CONFIG_FILE)).unwrap();
        let decoder = config["added_tokens_decoder"].as_object().unwrap();
        assert_eq!(decoder.keys().collect::<Vec<_>>(), ["2"]);
        assert_eq!(decoder["2"]["content"], "<y>");
        assert_eq!(decoder["2"]["normalized"], true);
        assert_eq!(config_vocab_size(d.path()), Some(8));
    }
}
