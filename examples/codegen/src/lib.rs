//! Nothing to link: this crate exists for its build script, which writes the
//! example hubs' TypeScript and JavaScript proxies to `examples/generated/`.
