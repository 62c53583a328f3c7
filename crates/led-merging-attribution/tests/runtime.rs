//! The libtorch link works: tensors load from checkpoints, and CUDA support is not silently
//! dropped by the linker.

use led_merging_attribution::{DeviceChoice, Runtime, load_tensor, to_f32_vec};
use led_merging_io::{Checkpoint, CheckpointWriter, Dtype, TensorSpec, WriterOptions};
use tch::{Device, Kind};

#[test]
fn checkpoint_tensors_load_into_libtorch() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m");
    let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let w = CheckpointWriter::create_dir(
        &target,
        vec![TensorSpec::new("w", Dtype::BF16, [2, 3, 4])],
        WriterOptions::default(),
    )
    .unwrap();
    w.write_f32("w", &values).unwrap();
    w.finish().unwrap();
    let ckpt = Checkpoint::open(&target).unwrap();
    let t = load_tensor(&ckpt, "w", Device::Cpu, Kind::Float).unwrap();
    assert_eq!(t.size(), [2, 3, 4]);
    assert_eq!(t.kind(), Kind::Float);
    // Multiples of 0.5 in [-3, 8.5] are exact in bf16.
    assert_eq!(to_f32_vec(&t).unwrap(), values);
    assert!(
        (t.sum(Kind::Double).double_value(&[]) - values.iter().map(|&v| v as f64).sum::<f64>())
            .abs()
            < 1e-9
    );
    let bf = load_tensor(&ckpt, "w", Device::Cpu, Kind::BFloat16).unwrap();
    assert_eq!(bf.kind(), Kind::BFloat16);
    let err = load_tensor(&ckpt, "missing", Device::Cpu, Kind::Float).unwrap_err();
    assert!(err.to_string().contains("\"missing\""), "{err}");
}

#[test]
fn device_choice_parses_and_resolves() {
    assert_eq!(DeviceChoice::parse("auto"), Some(DeviceChoice::Auto));
    assert_eq!(DeviceChoice::parse("cuda:1"), Some(DeviceChoice::Cuda(1)));
    assert_eq!(DeviceChoice::parse("gpu"), None);
    assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
    let rt = Runtime::detect();
    let auto = DeviceChoice::Auto.resolve().unwrap();
    assert_eq!(auto.is_cuda(), rt.cuda);
    let beyond = DeviceChoice::Cuda(rt.cuda_devices).resolve().unwrap_err();
    assert!(beyond.to_string().contains("CUDA device"), "{beyond}");
}

#[test]
fn libtorch_cuda_is_loaded_when_the_build_has_it() {
    let lib = led_merging_attribution::libtorch_lib_dir().expect("built against a libtorch");
    let has_cuda_build = std::path::Path::new(lib).join("libtorch_cuda.so").exists();
    // Touch libtorch so that it is loaded, then look at what the process mapped.
    let _ = Runtime::detect();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("libtorch_cpu.so"), "libtorch_cpu not loaded");
    assert_eq!(
        maps.contains("libtorch_cuda.so"),
        has_cuda_build,
        "libtorch_cuda linked iff the libtorch build has CUDA"
    );
}
