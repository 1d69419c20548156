//! The toolkit below every stage: nothing here knows about tags, stores or
//! scripts. [`text`] is how an outside value is shown to people, [`fs`] how
//! files are opened, created and replaced safely, [`process`] the
//! process-wide hardening done before any secret is read.
//!
//! Layer: the toolkit (docs/design.md, Layers). It may import only `error`.

pub(crate) mod fs;
pub(crate) mod process;
pub(crate) mod setting;
pub mod text;

/// A boxed future, for the object-safe traits of sources and stores.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
