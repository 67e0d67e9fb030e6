//! Compile-time behaviour of `#[signal::hub]`, `#[signal::client]`,
//! `#[signal::method]` and `#[signal::authorize]`: what builds, and the errors what does not build gets.
//! Refresh the snapshots with `TRYBUILD=overwrite cargo test -p ui-tests`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/fail/*/*.rs");
}
