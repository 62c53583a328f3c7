//! Human-readable byte sizes (`5GB`, `500MiB`, `1e9`), as in mergekit's and transformers'
//! `max_shard_size`.

use crate::error::{Error, Result};

/// Parse a size: a plain number of bytes, or a number with a decimal (`KB`, `MB`, `GB`, `TB`:
/// powers of 1000, as transformers uses) or binary (`KiB`, `MiB`, `GiB`, `TiB`) unit.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |reason: &str| Error::InvalidSize {
        text: text.into(),
        reason: reason.into(),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let size: bytesize::ByteSize = trimmed.parse().map_err(|e: String| bad(&e))?;
    if size.as_u64() == 0 {
        return Err(bad("must be larger than zero"));
    }
    Ok(size.as_u64())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn units() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("5 GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("five GB").is_err());
        assert!(parse_size("-3GB").is_err());
    }
}
