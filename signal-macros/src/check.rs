//! Checks across methods: what no single method can be blamed for alone.

use crate::ast::Contract;
use crate::ctxt::Ctxt;

/// Reports wire names that collide; clients match method names without ASCII case.
pub(crate) fn check(cx: &Ctxt, contract: &Contract) {
    for (i, method) in contract.methods.iter().enumerate() {
        let earlier = contract.methods[..i]
            .iter()
            .find(|m| m.wire.eq_ignore_ascii_case(&method.wire));
        if let Some(earlier) = earlier {
            cx.error_at(
                method.wire_span,
                format!(
                    "the wire name `{}` of `{}` collides with `{}` of `{}`: clients match method \
                     names without case; rename one with `#[signal::method(name = \"…\")]`",
                    method.wire, method.ident, earlier.wire, earlier.ident
                ),
            );
        }
    }
}
