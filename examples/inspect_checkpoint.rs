//! List a checkpoint's tensors and read one as f32, through the facade.
//!
//! `cargo run --example inspect_checkpoint -- out/demo/base model.norm.weight`

use led_merging::io::Checkpoint;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: inspect_checkpoint MODEL_DIR_OR_FILE [TENSOR]")?;
    let ckpt = Checkpoint::open(&path)?;
    for t in ckpt.tensors() {
        println!("{:60} {:5} {:?}", t.name, t.dtype, t.shape);
    }
    if let Some(name) = args.next() {
        let values = ckpt.read_f32(&name)?;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64;
        println!("{name}: {} values, mean {mean:.6}", values.len());
    }
    Ok(())
}
