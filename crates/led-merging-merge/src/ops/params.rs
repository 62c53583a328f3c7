//! What a method accepts: each parameter's name, validity check and default, one definition
//! each; and a model's (or the global) parameters resolved for one tensor.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Parameters, Scalar};
use crate::error::{Error, Result};

/// A parameter a method accepts, with its validity check (as mergekit's `ConfigParameterDef`).
#[derive(Clone, Copy)]
pub struct ParamSpec {
    /// Name as written in the config.
    pub name: &'static str,
    /// Returns why a value is invalid.
    pub check: fn(&Scalar) -> Result<(), String>,
    /// The value when the config does not give one.
    pub default: Option<Fallback>,
    /// Whether the config must give it (per model, or at the top level for every model).
    pub required: bool,
}

impl ParamSpec {
    /// A parameter without default.
    pub const fn new(name: &'static str, check: fn(&Scalar) -> Result<(), String>) -> Self {
        ParamSpec {
            name,
            check,
            default: None,
            required: false,
        }
    }

    /// This parameter with default `value` (so no longer required).
    pub const fn or(self, value: f64) -> Self {
        ParamSpec {
            default: Some(Fallback::Number(value)),
            required: false,
            ..self
        }
    }

    /// This boolean parameter with default `value`.
    pub const fn or_flag(self, value: bool) -> Self {
        ParamSpec {
            default: Some(Fallback::Flag(value)),
            required: false,
            ..self
        }
    }

    /// This parameter, required.
    pub const fn required(self) -> Self {
        ParamSpec {
            required: true,
            ..self
        }
    }
}

/// A parameter's default: the one place it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    /// A number.
    Number(f64),
    /// A boolean.
    Flag(bool),
}

impl std::fmt::Debug for ParamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn number(v: &Scalar) -> Result<f64, String> {
    match v {
        Scalar::Number(n) if n.is_finite() => Ok(*n),
        other => Err(format!("expected a finite number, got {other}")),
    }
}

/// Any finite number.
pub fn any_number(v: &Scalar) -> Result<(), String> {
    number(v).map(|_| ())
}

/// A whole number ≥ 0 (an iteration count).
pub fn count(v: &Scalar) -> Result<(), String> {
    let n = number(v)?;
    if n >= 0.0 && n.fract() == 0.0 {
        Ok(())
    } else {
        Err(format!("{n} is not a whole number ≥ 0"))
    }
}

/// A number in [0, 1].
pub fn unit(v: &Scalar) -> Result<(), String> {
    let n = number(v)?;
    if (0.0..=1.0).contains(&n) {
        Ok(())
    } else {
        Err(format!("{n} is outside [0, 1]"))
    }
}

/// A ratio in (0, 1].
pub fn ratio(v: &Scalar) -> Result<(), String> {
    let n = number(v)?;
    if n > 0.0 && n <= 1.0 {
        Ok(())
    } else {
        Err(format!("{n} is outside (0, 1]"))
    }
}

/// `true` or `false`.
pub fn boolean(v: &Scalar) -> Result<(), String> {
    match v {
        Scalar::Bool(_) => Ok(()),
        other => Err(format!("expected true or false, got {other}")),
    }
}

/// An election pattern: `"11"`, `"01"`, `"10"` or `"00"`.
pub fn pattern(v: &Scalar) -> Result<(), String> {
    let text = match v {
        Scalar::Text(s) => s.clone(),
        // YAML reads an unquoted 11 or 10 as a number.
        Scalar::Number(n) if [0.0, 1.0, 10.0, 11.0].contains(n) => format!("{:02}", *n as u32),
        other => {
            return Err(format!(
                "expected an election pattern \"11\", \"01\", \"10\" or \"00\", got {other}"
            ));
        }
    };
    text.parse::<led_merging_mask::Pattern>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `true`, `false` or `"inverse_density"`.
pub fn rescale(v: &Scalar) -> Result<(), String> {
    match v {
        Scalar::Bool(_) => Ok(()),
        Scalar::Text(s) if s == "inverse_density" => Ok(()),
        other => Err(format!(
            "expected true, false or \"inverse_density\", got {other}"
        )),
    }
}

/// Parameters of one model (or the global ones) resolved for one tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub BTreeMap<String, Scalar>);

impl Params {
    /// A number, if set.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.0.get(name) {
            Some(Scalar::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&Scalar> {
        self.0.get(name)
    }

    /// Parameter `spec`'s number: as given, else its default. `spec` has a number default
    /// ([`ParamSpec::or`]); read a required one with [`Params::number`].
    ///
    /// # Panics
    /// When `spec` has no number default and the parameter is not given: a method reading a
    /// parameter it declared without default this way.
    pub fn value(&self, spec: &ParamSpec) -> f64 {
        match (self.number(spec.name), spec.default) {
            (Some(n), _) | (None, Some(Fallback::Number(n))) => n,
            _ => panic!("parameter {} has no number default", spec.name),
        }
    }

    /// Parameter `spec`'s boolean: as given, else its default ([`ParamSpec::or_flag`]).
    ///
    /// # Panics
    /// When `spec` has no boolean default and the parameter is not given.
    pub fn flag(&self, spec: &ParamSpec) -> bool {
        match (self.0.get(spec.name), spec.default) {
            (Some(Scalar::Bool(b)), _) => *b,
            (_, Some(Fallback::Flag(b))) => b,
            _ => panic!("parameter {} has no boolean default", spec.name),
        }
    }
}

/// A model's weight, required (LED's has a default).
pub const WEIGHT: ParamSpec = ParamSpec::new("weight", any_number).required();
/// The fraction of a task vector kept; everything when not given.
pub const DENSITY: ParamSpec = ParamSpec::new("density", unit).or(1.0);
/// Breadcrumbs' fraction of largest magnitudes dropped (mergekit's default).
pub const GAMMA: ParamSpec = ParamSpec::new("gamma", unit).or(0.01);
/// DELLA's spread of keep probabilities around the density (mergekit's default).
pub const EPSILON: ParamSpec = ParamSpec::new("epsilon", unit).or(0.15);
/// The scale of the summed task vectors.
pub const LAMBDA: ParamSpec = ParamSpec::new("lambda", any_number).or(1.0);
/// Divide by the sum of weights (each method has its own default: `.or_flag(..)`).
pub const NORMALIZE: ParamSpec = ParamSpec::new("normalize", boolean);
/// DARE/DELLA's rescale of kept entries.
pub const RESCALE: ParamSpec = ParamSpec::new("rescale", rescale);
/// mergekit's memory option; meaningless in f32 compute, accepted for compatibility.
pub const INT8_MASK: ParamSpec = ParamSpec::new("int8_mask", boolean);

/// Check every scalar of `params` against what a method accepts; `at` is the key path prefix.
pub(crate) fn check_parameters(
    path: &Path,
    at: &str,
    params: &Parameters,
    known: &[ParamSpec],
    method: &str,
) -> Result<()> {
    for (name, setting) in params {
        let key = format!("{at}.{name}");
        let Some(spec) = known.iter().find(|p| p.name == name) else {
            let names: Vec<&str> = known.iter().map(|p| p.name).collect();
            return Err(Error::Config {
                path: path.into(),
                key,
                reason: format!(
                    "unknown parameter for {method} (known: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        };
        for value in setting.scalars() {
            (spec.check)(value).map_err(|reason| Error::Config {
                path: path.into(),
                key: key.clone(),
                reason,
            })?;
        }
    }
    Ok(())
}
