//! The paper's overlap analysis (Fig. 4): Jaccard indices between the top-r sets of two score
//! checkpoints, per layer and tensor kind.

use led_io::Checkpoint;
use led_mask::{JaccardTable, overlap_counts, top_set};

use crate::error::{Error, Result};

/// Jaccard indices of the top-`ratio` sets of `a` and `b`, over the tensors both hold (with
/// equal shapes; a shape mismatch is an error naming the tensor).
pub fn overlap_table(a: &Checkpoint, b: &Checkpoint, ratio: f64) -> Result<JaccardTable> {
    let mut table = JaccardTable::new();
    let mut problems = Vec::new();
    for t in a.tensors() {
        let Some(u) = b.get(&t.name) else { continue };
        if u.shape != t.shape {
            problems.push(format!(
                "tensor {:?} is {:?} in {} but {:?} in {}",
                t.name,
                t.shape,
                a.path().display(),
                u.shape,
                b.path().display()
            ));
            continue;
        }
        let (_, ma) = top_set(&t.name, &a.read_f32(&t.name)?, ratio)?;
        let (_, mb) = top_set(&t.name, &b.read_f32(&t.name)?, ratio)?;
        let (inter, union) = overlap_counts(&ma, &mb);
        table.add(&t.name, inter, union);
    }
    if !problems.is_empty() {
        return Err(Error::Incompatible { problems });
    }
    Ok(table)
}

/// A heat map of `table` (rows: layers, columns: tensor kinds) as a standalone SVG document.
pub fn heatmap_svg(table: &JaccardTable, title: &str) -> String {
    let kinds: Vec<_> = table.by_kind().into_keys().collect();
    let layers: Vec<_> = table.by_layer().into_keys().collect();
    let (cell, left, top) = (34.0, 70.0, 60.0);
    let width = left + cell * kinds.len() as f64 + 90.0;
    let height = top + cell * layers.len() as f64 + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"13\">{}</text>\n",
        escape(title)
    );
    for (c, k) in kinds.iter().enumerate() {
        let x = left + cell * c as f64 + cell / 2.0;
        s += &format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{k}</text>\n",
            top - 8.0
        );
    }
    let cells: std::collections::BTreeMap<_, _> = table
        .cells()
        .map(|(l, k, o)| ((l, k), o.jaccard()))
        .collect();
    for (r, l) in layers.iter().enumerate() {
        let y = top + cell * r as f64;
        let label = l
            .map(|l| format!("layer {l}"))
            .unwrap_or_else(|| "model".into());
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\n",
            left - 6.0,
            y + cell / 2.0 + 4.0
        );
        for (c, k) in kinds.iter().enumerate() {
            let x = left + cell * c as f64;
            match cells.get(&(*l, *k)) {
                Some(j) => {
                    // White (0) to deep red (1).
                    let shade = (255.0 * (1.0 - j.clamp(0.0, 1.0))).round() as u8;
                    s += &format!(
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb(255,{shade},{shade})\" stroke=\"#ccc\"><title>{label} {k}: {j:.3}</title></rect>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{j:.2}</text>\n",
                        x + cell / 2.0,
                        y + cell / 2.0 + 3.0
                    );
                }
                None => {
                    s += &format!(
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"#eee\" stroke=\"#ccc\"/>\n"
                    )
                }
            }
        }
    }
    s += "</svg>\n";
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_has_a_cell_per_layer_and_kind() {
        let mut t = JaccardTable::new();
        t.add("model.layers.0.self_attn.q_proj.weight", 1, 2);
        t.add("model.layers.1.mlp.up_proj.weight", 0, 4);
        t.add("model.embed_tokens.weight", 4, 4);
        let svg = heatmap_svg(&t, "safety <> math");
        assert!(svg.starts_with("<svg") && svg.contains("safety &lt;&gt; math"));
        // 3 rows (model, layer 0, layer 1) × 3 kinds, 3 filled.
        assert_eq!(svg.matches("<rect x=").count(), 9);
        assert!(
            svg.contains("layer 0 q: 0.500")
                && svg.contains("model embed: 1.000")
                && svg.contains("rgb(255,255,255)")
        );
    }
}
