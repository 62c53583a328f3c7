//! Merge operators: one file per method, each working on one tensor at a time (f32 slices in,
//! f32 out), so that a new method is one small file implementing [`MergeMethod`].

mod arcee_fusion;
mod breadcrumbs;
mod dare;
mod della;
mod generalized;
mod karcher;
mod led;
mod linear;
mod method;
mod model_stock;
mod multislerp;
mod nearswap;
mod nuslerp;
mod params;
mod passthrough;
mod ram;
mod sce;
mod slerp;
mod stream;
mod task_arithmetic;
mod ties;

pub use arcee_fusion::ArceeFusion;
pub use breadcrumbs::{BREADCRUMBS, BREADCRUMBS_TIES};
pub use dare::{DARE_LINEAR, DARE_TIES};
pub use della::{DELLA, DELLA_LINEAR};
pub use generalized::{Family, Sparsifier};
pub use karcher::Karcher;
pub use led::Led;
pub use linear::Linear;
pub use method::{
    Chunking, MergeMethod, ModelTensor, Reads, ScorePair, Streamed, TensorJob, TensorNote,
    TensorReport, TensorSetup, TensorStream, exactly_one_model,
};
pub use model_stock::ModelStock;
pub use multislerp::MultiSlerp;
pub use nearswap::NearSwap;
pub use nuslerp::NuSlerp;
pub(crate) use params::check_parameters;
pub use params::{
    DENSITY, EPSILON, Fallback, GAMMA, INT8_MASK, LAMBDA, NORMALIZE, ParamSpec, Params, RESCALE,
    WEIGHT, any_number, boolean, count, pattern, ratio, rescale, unit,
};
pub use passthrough::Passthrough;
pub use ram::{RAM, RAMPLUS_TL};
pub use sce::Sce;
pub use slerp::Slerp;
pub use stream::Sums;
pub use task_arithmetic::TASK_ARITHMETIC;
pub use ties::TIES;

/// Every built-in method, in the order the docs list them: the one list of them.
const REGISTRY: &[fn() -> Box<dyn MergeMethod>] = &[
    || Box::new(Led),
    || Box::new(Linear),
    || Box::new(TASK_ARITHMETIC),
    || Box::new(TIES),
    || Box::new(DARE_LINEAR),
    || Box::new(DARE_TIES),
    || Box::new(BREADCRUMBS),
    || Box::new(BREADCRUMBS_TIES),
    || Box::new(DELLA),
    || Box::new(DELLA_LINEAR),
    || Box::new(ModelStock),
    || Box::new(Slerp),
    || Box::new(NearSwap),
    || Box::new(Sce),
    || Box::new(NuSlerp),
    || Box::new(MultiSlerp),
    || Box::new(ArceeFusion),
    || Box::new(Karcher),
    || Box::new(Passthrough),
    || Box::new(RAM),
    || Box::new(RAMPLUS_TL),
];

/// The built-in method called `name`.
pub fn method(name: &str) -> Option<Box<dyn MergeMethod>> {
    REGISTRY.iter().map(|new| new()).find(|m| m.name() == name)
}

/// Names of every built-in method.
pub fn methods() -> Vec<&'static str> {
    REGISTRY.iter().map(|new| new().name()).collect()
}
