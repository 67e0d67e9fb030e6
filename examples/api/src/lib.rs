//! The contracts of signal's example hubs, in their own crate as a project would
//! keep them: the servers implement these traits, and a build script
//! (`examples/codegen`) renders TypeScript and JavaScript proxies from their
//! descriptors.

pub mod chat;
pub mod collab;
pub mod conformance;
pub mod dashboard;
pub mod job_progress;
pub mod move_shape;
