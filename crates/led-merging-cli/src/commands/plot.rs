//! Heat maps of a Jaccard table (`led analyze --out`): rows are layers, columns tensor kinds,
//! with a labelled colour scale, as SVG and as PNG.

use led_merging_mask::JaccardTable;

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
        let label = row_label(*l);
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\n",
            left - 6.0,
            y + cell / 2.0 + 4.0
        );
        for (c, k) in kinds.iter().enumerate() {
            let x = left + cell * c as f64;
            match cells.get(&(*l, *k)) {
                Some(j) => {
                    let shade = shade(*j);
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
    // Colour scale: Jaccard 1 (top) to 0 (bottom), right of the cells.
    let x = left + cell * kinds.len() as f64 + 24.0;
    let step = (cell * layers.len().max(2) as f64 / SCALE_STEPS as f64).min(12.0);
    s += &format!("<text x=\"{x}\" y=\"{}\">Jaccard</text>\n", top - 8.0);
    for i in 0..SCALE_STEPS {
        let j = 1.0 - i as f64 / (SCALE_STEPS - 1) as f64;
        let shade = shade(j);
        let y = top + step * i as f64;
        s += &format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"{step}\" fill=\"rgb(255,{shade},{shade})\" stroke=\"#ccc\"/>\n"
        );
        if i == 0 || i == SCALE_STEPS - 1 || i == SCALE_STEPS / 2 {
            s += &format!(
                "<text x=\"{}\" y=\"{}\">{j:.1}</text>\n",
                x + 18.0,
                y + step / 2.0 + 4.0
            );
        }
    }
    s += "</svg>\n";
    s
}

/// Steps of the heat maps' colour scale (0, 0.1, …, 1).
const SCALE_STEPS: usize = 11;

/// Cell colour from white (Jaccard 0) to deep red (1): the green and blue level.
fn shade(j: f64) -> u8 {
    (255.0 * (1.0 - j.clamp(0.0, 1.0))).round() as u8
}

fn row_label(layer: Option<usize>) -> String {
    layer
        .map(|l| format!("layer {l}"))
        .unwrap_or_else(|| "model".into())
}

/// An RGB image drawn with rectangles and an 8×8 bitmap font (no system fonts needed).
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                let i = (yy * self.width + xx) * 3;
                self.pixels[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// `text` with its top-left corner at (x, y); characters the font lacks are skipped.
    fn text(&mut self, x: usize, y: usize, text: &str) {
        use font8x8::UnicodeFonts;
        for (n, c) in text.chars().enumerate() {
            let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
                continue;
            };
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.rect(x + n * 8 + col, y + row, 1, 1, [0, 0, 0]);
                    }
                }
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("writing to memory");
        writer
            .write_image_data(&self.pixels)
            .expect("writing to memory");
        writer.finish().expect("writing to memory");
        out
    }
}

/// The same heat map as [`heatmap_svg`] as a PNG image (values printed in the cells).
pub fn heatmap_png(table: &JaccardTable, title: &str) -> Vec<u8> {
    let kinds: Vec<_> = table.by_kind().into_keys().collect();
    let layers: Vec<_> = table.by_layer().into_keys().collect();
    let (cell, left, top) = (64, 88, 48);
    // Room on the right for the colour scale (a strip of 16 px and its labels).
    let scale_x = left + cell * kinds.len() + 16;
    let width = (scale_x + 16 + 8 + 24 + 8).max(16 + 8 * title.chars().count());
    let step = 10;
    let height = (top + cell / 2 * layers.len()).max(top + step * SCALE_STEPS) + 16;
    let mut c = Canvas::new(width, height);
    for i in 0..SCALE_STEPS {
        let j = 1.0 - i as f64 / (SCALE_STEPS - 1) as f64;
        let s = shade(j);
        let y = top + step * i;
        c.rect(scale_x, y, 16, step, [255, s, s]);
        if i == 0 || i == SCALE_STEPS - 1 {
            c.text(scale_x + 16 + 8, y + step / 2 - 4, &format!("{j:.0}"));
        }
    }
    c.text(8, 8, title);
    for (i, k) in kinds.iter().enumerate() {
        let name = k.as_str();
        c.text(
            left + cell * i + (cell - 8 * name.len()) / 2,
            top - 14,
            name,
        );
    }
    let cells: std::collections::BTreeMap<_, _> = table
        .cells()
        .map(|(l, k, o)| ((l, k), o.jaccard()))
        .collect();
    let h = cell / 2;
    for (r, l) in layers.iter().enumerate() {
        let y = top + h * r;
        let label = row_label(*l);
        c.text(left - 8 - 8 * label.len(), y + h / 2 - 4, &label);
        for (i, k) in kinds.iter().enumerate() {
            let x = left + cell * i;
            c.rect(x, y, cell, h, [204, 204, 204]);
            match cells.get(&(*l, *k)) {
                Some(j) => {
                    let s = shade(*j);
                    c.rect(x + 1, y + 1, cell - 2, h - 2, [255, s, s]);
                    c.text(x + (cell - 32) / 2, y + h / 2 - 4, &format!("{j:.2}"));
                }
                None => c.rect(x + 1, y + 1, cell - 2, h - 2, [238, 238, 238]),
            }
        }
    }
    c.encode()
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
        // The colour scale: 11 steps from 1 (deep red) to 0 (white), labelled.
        assert!(svg.contains(">Jaccard<") && svg.contains(">1.0<") && svg.contains(">0.0<"));
        // 3 rows (model, layer 0, layer 1) × 3 kinds, 3 filled.
        assert_eq!(svg.matches("<rect x=").count(), 9 + SCALE_STEPS);
        assert!(
            svg.contains("layer 0 q: 0.500")
                && svg.contains("model embed: 1.000")
                && svg.contains("rgb(255,255,255)")
        );
        // The PNG: decodes, white background, one deep-red cell (Jaccard 1) for embed.
        let png = heatmap_png(&t, "safety <> math");
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; decoder.output_buffer_size().unwrap()];
        let info = decoder.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let px = |x: usize, y: usize| {
            let i = (y * info.width as usize + x) * 3;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        assert_eq!(px(0, 0), [255, 255, 255]);
        let red = (0..info.height as usize)
            .flat_map(|y| (0..info.width as usize).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y) == [255, 0, 0])
            .count();
        // One cell's inside (62 × 30) less the black digits printed on it, plus the colour
        // scale's top step (16 × 10, Jaccard 1).
        let red = red - 16 * 10;
        assert!(red > 1500 && red < 62 * 30, "{red}");
    }
}
