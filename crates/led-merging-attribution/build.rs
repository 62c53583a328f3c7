//! Let binaries, tests and examples of this package find libtorch at run time without
//! LD_LIBRARY_PATH, and keep libtorch_cuda linked so CUDA is found when a GPU is present.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-env=LED_LIBTORCH_LIB={lib}");
        // RPATH (not RUNPATH): also used to resolve libtorch's own dependencies.
        println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            // Nothing references libtorch_cuda's symbols directly, so --as-needed would drop it.
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
