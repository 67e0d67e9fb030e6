//! Renders the example hubs' proxies into `examples/generated/`, where the chat
//! page loads them and the TypeScript checks read them. Files are rewritten only
//! when their bytes change.

use signal_examples_api::chat::Chat;
use signal_examples_api::collab::Collab;
use signal_examples_api::conformance::Conformance;
use signal_examples_api::dashboard::Dashboard;
use signal_examples_api::job_progress::JobProgress;
use signal_examples_api::move_shape::MoveShape;
use signal_typescript::Generator;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../api/src");
    let written = Generator::new("../generated")
        .hub(<dyn Chat>::descriptor(), "chat")
        .hub(<dyn Conformance>::descriptor(), "conformance")
        .hub(<dyn Dashboard>::descriptor(), "dashboard")
        .hub(<dyn MoveShape>::descriptor(), "move_shape")
        .hub(<dyn JobProgress>::descriptor(), "job_progress")
        .hub(<dyn Collab>::descriptor(), "collab")
        .write()
        .unwrap_or_else(|error| panic!("generating the example proxies failed: {error}"));
    for file in written.iter().filter(|w| w.changed) {
        println!("cargo::warning=wrote {}", file.path.display());
    }
}
