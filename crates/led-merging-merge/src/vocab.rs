//! mergekit's tokenizer handling: the output vocabulary (`tokenizer_source`, the `tokenizer`
//! block) and every input's embedding and head rows aligned to it, token by token
//! (docs/merging.md, "Tokenizers").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use indexmap::IndexMap;
use led_merging_io::{Vocabulary, plain_added_token};
use serde_json::Value;

use crate::config::{MergeConfig, TokenEmbedding, TokenKind, TokenSource};
use crate::error::{Error, Result};
use crate::inputs::{Input, same_path};

/// Where a token's rows come from for a model that lacks it (or for every model, forced).
#[derive(Debug, Clone, PartialEq)]
enum RowSource {
    /// Zeros.
    Zero,
    /// The same token's rows in input `key`.
    Model(usize),
    /// Row `row` of input `key`, as its checkpoint holds it.
    Row(usize, u32),
    /// The mean of the rows of the models that have it.
    Average,
}

/// A token's rows as the config's `tokenizer.tokens` gives them.
#[derive(Debug, Clone)]
struct TokenRule {
    source: RowSource,
    force: bool,
}

/// The output vocabulary, and where each input's rows for it are. Inputs are named by key:
/// their position in the plan's inputs, the base first when the plan has one.
#[derive(Debug)]
pub struct VocabPlan {
    /// The source, as configured (`base`, `union` or a directory).
    pub source: String,
    /// Tokens in the output vocabulary.
    pub tokens: usize,
    /// Embedding and head rows of the output (`tokens`, padded to `pad_to_multiple_of`).
    pub rows: usize,
    /// The directory whose tokenizer files the output gets.
    pub tokenizer_dir: PathBuf,
    /// Tokens of that tokenizer at ids from this one up are dropped (beyond its model's
    /// `vocab_size`, as mergekit strips them).
    pub keep_below: Option<u32>,
    /// Tokens added to that tokenizer (`tokenizer.json`'s `added_tokens` entries, with ids).
    pub added: Vec<Value>,
    /// Per input key: for each output token, its row in that input (`None`: it lacks it).
    perms: Vec<Vec<Option<u32>>>,
    /// The tokenizer's base input: its rows win for tokens some models lack.
    base_key: usize,
    /// The config's per-token sources, by output id.
    rules: BTreeMap<u32, TokenRule>,
    /// Output tokens by id (for messages).
    names: Vec<String>,
}

/// A problem with the config's key `key`.
type Problem = (String, String);

fn problem(key: impl Into<String>, reason: impl Into<String>) -> Problem {
    (key.into(), reason.into())
}

/// An input's vocabulary, its embedding rows and how many of them are tokens.
struct Known {
    vocab: Option<Rc<Vocabulary>>,
    rows: usize,
    size: u32,
    /// The first input with the same directory (itself when none before it).
    first: usize,
}

/// The tokenizer settings of a config: `tokenizer_source`, or the `tokenizer` block.
struct Settings<'a> {
    /// `base`, `union` or a directory.
    source: String,
    /// The config key that gave `source` (for errors).
    key: &'static str,
    /// The block's per-token sources.
    tokens: Option<&'a IndexMap<String, TokenEmbedding>>,
    pad: Option<usize>,
}

impl<'a> Settings<'a> {
    /// `None` without `tokenizer_source` or `tokenizer`.
    fn of(config: &'a MergeConfig) -> std::result::Result<Option<Self>, Problem> {
        let settings = match (&config.tokenizer_source, &config.tokenizer) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(problem(
                    "tokenizer",
                    "give `tokenizer_source` or the `tokenizer` block, not both (as mergekit)",
                ));
            }
            (Some(s), None) => Settings {
                source: s.clone(),
                key: "tokenizer_source",
                tokens: None,
                pad: None,
            },
            (None, Some(t)) => Settings {
                source: t.source.clone(),
                key: "tokenizer.source",
                tokens: Some(&t.tokens),
                pad: t.pad_to_multiple_of,
            },
        };
        if settings.pad == Some(0) {
            return Err(problem(
                "tokenizer.pad_to_multiple_of",
                "must be a positive number",
            ));
        }
        Ok(Some(settings))
    }

    /// A directory source, read.
    fn directory(&self) -> std::result::Result<Option<(PathBuf, Vocabulary)>, Problem> {
        if matches!(self.source.as_str(), "base" | "union") {
            return Ok(None);
        }
        let dir = PathBuf::from(&self.source);
        let vocab = Vocabulary::read(&dir)
            .map_err(|e| problem(self.key, e.to_string()))?
            .ok_or_else(|| {
                problem(
                    self.key,
                    format!(
                        "{}: not a model directory with a tokenizer.json; expected `base`, `union` or a model directory",
                        dir.display()
                    ),
                )
            })?;
        Ok(Some((dir, vocab)))
    }
}

/// Every input's vocabulary and rows, each directory read once.
fn read_inputs(inputs: &[&Input], key: &str) -> std::result::Result<Vec<Known>, Problem> {
    let mut known: Vec<Known> = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        let first = (0..k)
            .find(|&j| same_path(&inputs[j].path, &input.path))
            .unwrap_or(k);
        let rows = input
            .tensors()
            .into_iter()
            .find(|(n, _)| led_merging_io::is_vocab_tensor(n))
            .and_then(|(_, t)| t.shape.first().copied())
            .unwrap_or(0);
        if first < k {
            known.push(Known {
                vocab: known[first].vocab.clone(),
                rows,
                size: known[first].size,
                first,
            });
            continue;
        }
        let vocab = Vocabulary::read(&input.path).map_err(|e| problem(key, e.to_string()))?;
        let size = led_merging_io::config_vocab_size(&input.path)
            .map_or(rows as u64, |v| v.min(rows as u64));
        known.push(Known {
            vocab: vocab.map(Rc::new),
            rows,
            size: size as u32,
            first,
        });
    }
    Ok(known)
}

/// Warnings about inputs without a tokenizer, or with tokens beyond their rows.
fn warn_inputs(inputs: &[&Input], known: &[Known], base_key: usize, warnings: &mut Vec<String>) {
    for (k, kn) in known.iter().enumerate() {
        if kn.vocab.is_none() && k != base_key {
            warnings.push(format!(
                "{}: {}: no tokenizer.json; its vocabulary is taken to be the base's",
                inputs[k].label,
                inputs[k].path.display()
            ));
        }
        let beyond = kn
            .vocab
            .as_ref()
            .map_or(0, |v| v.ids.values().filter(|&&i| i >= kn.size).count());
        if beyond > 0 && (k == base_key || kn.first != known[base_key].first) {
            warnings.push(format!(
                "{}: {} token(s) of its tokenizer are beyond its {} embedding rows (vocab_size): left out",
                inputs[k].label, beyond, kn.size
            ));
        }
    }
}

/// The output vocabulary being built: token → id, and the `added_tokens` entries of the
/// tokens added to the source tokenizer.
struct Output {
    ids: IndexMap<String, u32>,
    added: Vec<Value>,
}

impl Output {
    /// Add `token` at the next id, unless it is there (`entry`: its added-token settings).
    fn add(&mut self, token: &str, entry: Option<&Value>) {
        if self.ids.contains_key(token) {
            return;
        }
        let id = self.ids.len() as u32;
        let entry = match entry {
            Some(e) => {
                let mut e = e.clone();
                e["id"] = Value::from(id);
                e
            }
            None => plain_added_token(token, id),
        };
        self.added.push(entry);
        self.ids.insert(token.to_owned(), id);
    }

    /// `union`: every model's tokens (within its rows), in input order and by id: plain
    /// tokens first, then added tokens with the settings of the first model adding them.
    fn add_union(&mut self, known: &[Known]) {
        let mut plain: Vec<&str> = Vec::new();
        let mut special: IndexMap<&str, &Value> = IndexMap::new();
        let mut seen = HashSet::new();
        for (k, kn) in known.iter().enumerate() {
            let Some(v) = kn.vocab.as_ref().filter(|_| kn.first == k) else {
                continue;
            };
            for (token, id) in v.by_id() {
                if id >= kn.size {
                    continue;
                }
                match v.added.get(&id) {
                    Some(entry) => {
                        special.entry(token).or_insert(entry);
                    }
                    None => {
                        if seen.insert(token) {
                            plain.push(token);
                        }
                    }
                }
            }
        }
        for token in plain.into_iter().filter(|t| !special.contains_key(t)) {
            self.add(token, None);
        }
        for (token, entry) in special {
            self.add(token, Some(entry));
        }
    }

    /// Output tokens by id; an error when the ids have gaps.
    fn names(&self, key: &str, tokenizer_dir: &Path) -> std::result::Result<Vec<String>, Problem> {
        let count = self.ids.len();
        let mut names = vec![String::new(); count];
        for (token, &id) in &self.ids {
            match names.get_mut(id as usize) {
                Some(slot) if slot.is_empty() => *slot = token.clone(),
                _ => {
                    return Err(problem(
                        key,
                        format!(
                            "{}: the tokenizer's ids are not 0..{count} (token {token:?} has id {id}): led needs a vocabulary without gaps",
                            tokenizer_dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(names)
    }
}

/// What the config's per-token sources are checked against.
struct RuleInputs<'a> {
    inputs: &'a [&'a Input],
    known: &'a [Known],
    perms: &'a [Vec<Option<u32>>],
    out: &'a IndexMap<String, u32>,
}

impl RuleInputs<'_> {
    /// The key of the input at `model`.
    fn key_of(&self, at: &str, model: &Path) -> std::result::Result<usize, Problem> {
        self.inputs
            .iter()
            .position(|i| same_path(&i.path, model))
            .ok_or_else(|| {
                problem(
                    at,
                    format!("{} is not one of the merged models", model.display()),
                )
            })
    }

    /// Every `tokenizer.tokens` entry, by output id.
    fn rules(
        &self,
        tokens: Option<&IndexMap<String, TokenEmbedding>>,
    ) -> std::result::Result<BTreeMap<u32, TokenRule>, Problem> {
        let mut rules = BTreeMap::new();
        for (token, cfg) in tokens.into_iter().flatten() {
            let at = format!("tokenizer.tokens.{token}.source");
            let source = match &cfg.source {
                None => {
                    return Err(problem(
                        at,
                        "missing: give a model directory, `{kind: zero}` or `{kind: model_token, ...}`",
                    ));
                }
                Some(TokenSource::Model(m)) => {
                    let k = self.key_of(&at, m)?;
                    let id = self.out[token.as_str()] as usize;
                    if self.perms[k][id].is_none() {
                        return Err(problem(
                            at,
                            format!(
                                "token {token:?} is not in {}'s vocabulary: give `{{kind: model_token, model: ..., token: ...}}` or `{{kind: zero}}`",
                                m.display()
                            ),
                        ));
                    }
                    RowSource::Model(k)
                }
                Some(TokenSource::Kind(TokenKind::Zero)) => RowSource::Zero,
                Some(TokenSource::Kind(TokenKind::ModelToken {
                    model,
                    token_id,
                    token: text,
                })) => self.model_token(&at, model, *token_id, text.as_deref())?,
            };
            rules.insert(
                self.out[token.as_str()],
                TokenRule {
                    source,
                    force: cfg.force,
                },
            );
        }
        Ok(rules)
    }

    /// `{kind: model_token, model, token_id | token}`: that row of that model.
    fn model_token(
        &self,
        at: &str,
        model: &Path,
        token_id: Option<u32>,
        text: Option<&str>,
    ) -> std::result::Result<RowSource, Problem> {
        let k = self.key_of(at, model)?;
        let row = match (token_id, text) {
            (Some(id), None) => id,
            (None, Some(text)) => self.known[k]
                .vocab
                .as_ref()
                .and_then(|v| v.ids.get(text).copied())
                .ok_or_else(|| {
                    problem(
                        at,
                        format!("token {text:?} is not in {}'s tokenizer", model.display()),
                    )
                })?,
            _ => return Err(problem(at, "give one of `token_id` and `token`")),
        };
        let held = self.known[k].rows;
        if row as usize >= held {
            return Err(problem(
                at,
                format!(
                    "row {row} is beyond {}'s {held} embedding rows",
                    model.display()
                ),
            ));
        }
        Ok(RowSource::Row(k, row))
    }
}

impl VocabPlan {
    /// The vocabulary plan of `config` over `inputs` (the base first when the plan has one,
    /// then the models); `None` without `tokenizer_source` or `tokenizer` (every input's rows
    /// are then taken as they are). `base` is the config's `base_model`. Warnings go to
    /// `warnings`.
    pub(crate) fn new(
        config: &MergeConfig,
        base: Option<&Path>,
        inputs: &[&Input],
        warnings: &mut Vec<String>,
    ) -> std::result::Result<Option<Self>, Problem> {
        let Some(settings) = Settings::of(config)? else {
            return Ok(None);
        };
        let key = settings.key;
        // A directory source first: a wrong path is the first thing to say.
        let given = settings.directory()?;
        let known = read_inputs(inputs, key)?;
        let base_key = base
            .and_then(|b| inputs.iter().position(|i| same_path(&i.path, b)))
            .unwrap_or(0);
        let base_vocab = known[base_key].vocab.clone().ok_or_else(|| {
            problem(
                key,
                format!(
                    "{}: the base, {}, has no tokenizer.json: led reads vocabularies from tokenizer.json",
                    settings.source,
                    inputs[base_key].path.display()
                ),
            )
        })?;
        let base_size = known[base_key].size;
        warn_inputs(inputs, &known, base_key, warnings);
        let (ids, tokenizer_dir, keep_below) = match given {
            None => (
                base_vocab
                    .by_id()
                    .into_iter()
                    .filter(|&(_, i)| i < base_size)
                    .map(|(t, i)| (t.to_owned(), i))
                    .collect(),
                inputs[base_key].path.clone(),
                base_vocab
                    .ids
                    .values()
                    .any(|&i| i >= base_size)
                    .then_some(base_size),
            ),
            Some((dir, vocab)) => {
                let ids = vocab
                    .by_id()
                    .into_iter()
                    .map(|(t, i)| (t.to_owned(), i))
                    .collect();
                (ids, dir, None)
            }
        };
        let mut out = Output {
            ids,
            added: Vec::new(),
        };
        if settings.source == "union" {
            out.add_union(&known);
        }
        for token in settings.tokens.into_iter().flat_map(|t| t.keys()) {
            out.add(token, None);
        }
        let names = out.names(key, &tokenizer_dir)?;
        let count = names.len();
        let rows = match settings.pad {
            Some(m) => count.div_ceil(m) * m,
            None => count,
        };
        let perms: Vec<Vec<Option<u32>>> = known
            .iter()
            .map(|kn| {
                let vocab = kn.vocab.as_deref().unwrap_or(&base_vocab);
                names
                    .iter()
                    .map(|t| vocab.ids.get(t).copied().filter(|&i| i < kn.size))
                    .collect()
            })
            .collect();
        let rules = RuleInputs {
            inputs,
            known: &known,
            perms: &perms,
            out: &out.ids,
        }
        .rules(settings.tokens)?;
        Ok(Some(VocabPlan {
            source: settings.source,
            tokens: count,
            rows,
            tokenizer_dir,
            keep_below,
            added: out.added,
            perms,
            base_key,
            rules,
            names,
        }))
    }

    /// Whether the config forces token `id`'s source on every model.
    fn forced(&self, id: u32) -> bool {
        self.rules.get(&id).is_some_and(|r| r.force)
    }

    /// One line for the dry run.
    pub fn describe(&self) -> String {
        let pad = if self.rows > self.tokens {
            format!(", padded to {} rows", self.rows)
        } else {
            String::new()
        };
        format!(
            "tokenizer: {} from {} ({} tokens, {} added{pad})",
            self.source,
            self.tokenizer_dir.display(),
            self.tokens,
            self.added.len()
        )
    }

    /// Tensor `name` (a vocabulary tensor, `width` elements per row) aligned to the output
    /// vocabulary for `holders` (input key, input), as mergekit does: each model keeps its
    /// own rows for the tokens it has; a token it lacks (or one forced) gets the config's
    /// source, else the only model having it, else the base's row, else the mean of the rows
    /// of the models having it; padding rows are each model's mean token row.
    pub(crate) fn align(
        &self,
        name: &str,
        holders: &[(usize, &Input)],
        width: usize,
    ) -> Result<Aligned<'_>> {
        let row_of = |key: usize, row: u32| -> Result<Vec<f32>> {
            let (_, input) = holders.iter().find(|(k, _)| *k == key).ok_or_else(|| {
                Error::Unsupported(format!(
                    "tensor {name:?}: a token's rows come from a model that does not hold it"
                ))
            })?;
            let start = row as usize * width;
            Ok(input
                .ckpt
                .read_f32_range(input.source(name), start..start + width)?)
        };
        let mut defaults = HashMap::new();
        for id in 0..self.tokens as u32 {
            let rule = self.rules.get(&id);
            let present: Vec<usize> = holders
                .iter()
                .map(|&(k, _)| k)
                .filter(|&k| self.perms[k][id as usize].is_some())
                .collect();
            let force = self.forced(id);
            if !force && present.len() == holders.len() {
                continue;
            }
            let source = match rule {
                Some(r) => r.source.clone(),
                None if present.len() == 1 => RowSource::Model(present[0]),
                None if present.is_empty() => RowSource::Zero,
                None if present.contains(&self.base_key) => RowSource::Model(self.base_key),
                None => RowSource::Average,
            };
            let token = &self.names[id as usize];
            let values = match source {
                RowSource::Zero => vec![0.0; width],
                RowSource::Row(k, row) => row_of(k, row)?,
                RowSource::Model(k) => {
                    let row = self.perms[k][id as usize].ok_or_else(|| {
                        Error::Unsupported(format!(
                            "token {token:?} is not in the model its rows are to come from"
                        ))
                    })?;
                    row_of(k, row)?
                }
                RowSource::Average => {
                    let mut sum = vec![0.0f32; width];
                    for &k in &present {
                        let row = row_of(k, self.perms[k][id as usize].expect("present"))?;
                        sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                    }
                    sum.iter_mut().for_each(|s| *s /= present.len() as f32);
                    sum
                }
            };
            defaults.insert(id, values);
        }
        let mut aligned = Aligned {
            plan: self,
            name: name.to_owned(),
            width,
            defaults,
            pads: HashMap::new(),
        };
        if self.rows > self.tokens {
            // Each model's mean token row, in f64 then rounded once.
            for &(k, input) in holders {
                let mut sum = vec![0f64; width];
                let step = (1 << 22) / width.max(1) + 1;
                for start in (0..self.tokens).step_by(step) {
                    let rows = aligned.read(k, input, start..(start + step).min(self.tokens))?;
                    for row in rows.chunks(width) {
                        sum.iter_mut()
                            .zip(row)
                            .for_each(|(s, &x)| *s += f64::from(x));
                    }
                }
                let n = self.tokens as f64;
                aligned
                    .pads
                    .insert(k, sum.iter().map(|s| (s / n) as f32).collect());
            }
        }
        Ok(aligned)
    }
}

/// One vocabulary tensor aligned to the output vocabulary: the rows made for tokens a model
/// lacks, and each model's padding row.
pub(crate) struct Aligned<'a> {
    plan: &'a VocabPlan,
    name: String,
    width: usize,
    defaults: HashMap<u32, Vec<f32>>,
    pads: HashMap<usize, Vec<f32>>,
}

impl Aligned<'_> {
    /// Output rows `rows` of input `key` (`input`), as f32.
    pub(crate) fn read(&self, key: usize, input: &Input, rows: Range<usize>) -> Result<Vec<f32>> {
        let w = self.width;
        let tokens = self.plan.tokens;
        let perm = &self.plan.perms[key];
        let own = |r: usize| perm[r].filter(|_| !self.plan.forced(r as u32));
        let mut out = Vec::with_capacity(rows.len() * w);
        let mut r = rows.start;
        while r < rows.end {
            if r >= tokens {
                match self.pads.get(&key) {
                    Some(p) => out.extend_from_slice(p),
                    None => out.resize(out.len() + w, 0.0),
                }
                r += 1;
                continue;
            }
            match own(r) {
                // A run of consecutive rows is read at once.
                Some(src) => {
                    let mut end = r + 1;
                    while end < rows.end.min(tokens) && own(end) == Some(src + (end - r) as u32) {
                        end += 1;
                    }
                    let from = src as usize * w;
                    out.extend(
                        input
                            .ckpt
                            .read_f32_range(input.source(&self.name), from..from + (end - r) * w)?,
                    );
                    r = end;
                }
                None => {
                    match self.defaults.get(&(r as u32)) {
                        Some(v) => out.extend_from_slice(v),
                        None => out.resize(out.len() + w, 0.0),
                    }
                    r += 1;
                }
            }
        }
        Ok(out)
    }
}
