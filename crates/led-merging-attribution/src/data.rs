//! Calibration data: JSONL or CSV records with a prompt and an answer, tokenised with the
//! model's `tokenizer.json` (docs/how-led-works.md, "Locate": prompt and answer separately, the
//! answer's leading BOS dropped, no padding, optional truncation of the answer; with a chat
//! template, the rendered user turn and the assistant turn closed by its end-of-turn token).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokenizers::Tokenizer;

use crate::{Error, Result};

/// Field-name pairs tried, in order, when none is given.
pub const FIELD_PAIRS: &[(&str, &str)] = &[
    ("prompt", "answer"),
    ("question", "answer"),
    ("prompt", "response"),
    ("prompt", "canonical_solution"),
];

/// How to read and select samples.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Prompt field (default: the first of [`FIELD_PAIRS`] present in the first record).
    pub prompt_field: Option<String>,
    /// Answer field.
    pub answer_field: Option<String>,
    /// Number of samples (default [`led_merging_io::meta::DEFAULT_SAMPLES`]).
    pub samples: usize,
    /// `None`: the first `samples` records; `Some(seed)`: a seeded random subset.
    pub subset_seed: Option<u64>,
    /// Truncate answers to this many tokens.
    pub max_answer_tokens: Option<usize>,
    /// Skip (and count) bad records instead of failing.
    pub skip_bad: bool,
    /// Render prompts with this chat template (off by default: raw text, as the authors did).
    pub chat_template: Option<crate::chat::ChatTemplate>,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            prompt_field: None,
            answer_field: None,
            samples: led_merging_io::meta::DEFAULT_SAMPLES,
            subset_seed: None,
            max_answer_tokens: None,
            skip_bad: false,
            chat_template: None,
        }
    }
}

/// One tokenised sample: `ids = prompt ++ answer`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Token ids.
    pub ids: Vec<i64>,
    /// How many of them are the prompt.
    pub prompt_len: usize,
}

/// What loading did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataReport {
    /// Records read.
    pub records: usize,
    /// Records skipped as bad (only with `skip_bad`).
    pub skipped: usize,
    /// Samples whose answer was truncated.
    pub truncated: usize,
    /// The fields used.
    pub fields: (String, String),
}

fn data_err(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::Data(path.to_path_buf(), format!("line {line}: {msg}"))
}

/// One record's fields, or why its line is bad.
type Record = Result<serde_json::Map<String, serde_json::Value>>;

/// Records as (line number, fields).
fn read_records(path: &Path) -> Result<Vec<(usize, Record)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Data(path.to_path_buf(), e.to_string()))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        return Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let rec = serde_json::from_str::<serde_json::Value>(l)
                    .map_err(|e| data_err(path, i + 1, format!("not JSON: {e}")))
                    .and_then(|v| match v {
                        serde_json::Value::Object(m) => Ok(m),
                        _ => Err(data_err(path, i + 1, "not a JSON object")),
                    });
                (i + 1, rec)
            })
            .collect());
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| data_err(path, 1, e))?.clone();
    Ok(reader
        .records()
        .map(|r| {
            let line = r
                .as_ref()
                .ok()
                .and_then(|r| r.position())
                .map(|p| p.line() as usize)
                .unwrap_or(0);
            let rec = r.map_err(|e| data_err(path, line, e)).map(|r| {
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
                    .collect()
            });
            (line, rec)
        })
        .collect())
}

/// Load, select and tokenise samples from `path` with `tokenizer`.
pub fn load_samples(
    path: &Path,
    tokenizer: &Tokenizer,
    options: &DataOptions,
) -> Result<(Vec<Sample>, DataReport)> {
    let records = read_records(path)?;
    let first_ok = records.iter().find_map(|(_, r)| r.as_ref().ok());
    let (pf, af) = match (&options.prompt_field, &options.answer_field) {
        (Some(p), Some(a)) => (p.clone(), a.clone()),
        (p, a) => {
            let rec =
                first_ok.ok_or_else(|| Error::Data(path.to_path_buf(), "no records".into()))?;
            FIELD_PAIRS
                .iter()
                .find(|(dp, da)| rec.contains_key(p.as_deref().unwrap_or(dp)) && rec.contains_key(a.as_deref().unwrap_or(da)))
                .map(|(dp, da)| (p.clone().unwrap_or((*dp).into()), a.clone().unwrap_or((*da).into())))
                .ok_or_else(|| {
                    let keys: Vec<&str> = rec.keys().map(String::as_str).collect();
                    let named: Vec<&str> = [p.as_deref(), a.as_deref()].into_iter().flatten().collect();
                    Error::Data(
                        path.to_path_buf(),
                        format!(
                            "no prompt/answer fields found{} (the first record has {keys:?}; tried {FIELD_PAIRS:?}); name them with --prompt-field/--answer-field",
                            if named.is_empty() { String::new() } else { format!(" with {named:?}") }
                        ),
                    )
                })?
        }
    };
    let mut report = DataReport {
        records: records.len(),
        fields: (pf.clone(), af.clone()),
        ..Default::default()
    };
    let mut pairs = Vec::new();
    for (line, rec) in records {
        let pair = rec.and_then(|m| {
            let get = |f: &str| match m.get(f) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(data_err(
                    path,
                    line,
                    format!("field {f:?} is not a string: {other}"),
                )),
                None => Err(data_err(path, line, format!("field {f:?} is missing"))),
            };
            let (p, a) = (get(&pf)?, get(&af)?);
            if a.trim().is_empty() {
                return Err(data_err(path, line, format!("field {af:?} is empty")));
            }
            Ok((p, a))
        });
        match pair {
            Ok(p) => pairs.push(p),
            Err(_) if options.skip_bad => report.skipped += 1,
            Err(e) => return Err(e),
        }
    }
    if let Some(seed) = options.subset_seed {
        pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    pairs.truncate(options.samples);
    if pairs.is_empty() {
        return Err(Error::Data(path.to_path_buf(), "no usable records".into()));
    }
    let tok = |text: &str, special: bool| -> Result<Vec<i64>> {
        tokenizer
            .encode(text, special)
            .map(|e| e.get_ids().iter().map(|&i| i64::from(i)).collect())
            .map_err(|e| Error::Data(path.to_path_buf(), format!("tokenizer: {e}")))
    };
    // The BOS the tokenizer adds, if any: what an empty text becomes with special tokens.
    let bos = tok("", true)?.first().copied();
    let mut samples = Vec::with_capacity(pairs.len());
    for (prompt, answer) in pairs {
        let (prompt_ids, mut answer_ids) = match &options.chat_template {
            // A rendered chat template carries its own special tokens; the answer is the
            // assistant turn, closed by its end-of-turn token.
            Some(t) => {
                let (p, a) = t.render_turn(&prompt, &answer)?;
                (tok(&p, false)?, tok(&a, false)?)
            }
            // Raw text: the answer as it is, without the BOS a tokenizer adds.
            None => {
                let p = tok(&prompt, true)?;
                let mut a = tok(&answer, true)?;
                if a.first().is_some_and(|&t| Some(t) == bos) && !p.is_empty() {
                    a.remove(0);
                }
                (p, a)
            }
        };
        if let Some(max) = options.max_answer_tokens
            && answer_ids.len() > max
        {
            answer_ids.truncate(max);
            report.truncated += 1;
        }
        if prompt_ids.is_empty() || answer_ids.is_empty() {
            continue;
        }
        let prompt_len = prompt_ids.len();
        let mut ids = prompt_ids;
        ids.extend(answer_ids);
        samples.push(Sample { ids, prompt_len });
    }
    Ok((samples, report))
}

/// Load `dir/tokenizer.json`.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path: PathBuf = led_merging_io::model_dir(dir).join("tokenizer.json");
    Tokenizer::from_file(&path)
        .map_err(|e| Error::Data(path, format!("cannot load tokenizer: {e}")))
}
