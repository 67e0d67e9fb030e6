//! Checks across methods: what no single method can be blamed for alone.

use quote::ToTokens;
use syn::{PathArguments, Type};

use crate::ast::{Contract, peel};
use crate::ctxt::Ctxt;

/// Runs every check across methods; a method or hook that fails one leaves the
/// model (it stays in the trait), so that its error comes alone.
pub(crate) fn check(cx: &Ctxt, contract: &mut Contract) {
    check_collisions(cx, contract);
    let client = contract.client.clone();
    let agrees = |ty: &Option<Type>| ty.as_ref().is_none_or(|ty| context_agrees(cx, &client, ty));
    contract.methods.retain(|m| agrees(&m.context));
    for hook in [&mut contract.on_connected, &mut contract.on_disconnected]
        .into_iter()
        .flatten()
    {
        hook.forward = agrees(&hook.context);
    }
}

/// Reports wire names that collide; clients match method names without ASCII case.
fn check_collisions(cx: &Ctxt, contract: &Contract) {
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

/// Whether a context parameter's client contract agrees with the hub's
/// `client = …`, as far as syntax tells; reports it when not (the type checker
/// would, less clearly).
fn context_agrees(cx: &Ctxt, client: &Option<syn::Path>, ty: &Type) -> bool {
    let Type::Reference(r) = peel(ty) else {
        return true;
    };
    let Type::Path(p) = peel(&r.elem) else {
        return true;
    };
    let Some(last) = p.path.segments.last() else {
        return true;
    };
    // `Context` and `Context<()>` are untyped.
    let typed = match &last.arguments {
        PathArguments::AngleBracketed(args) => !args.args.iter().all(|a| {
            matches!(a, syn::GenericArgument::Type(t) if matches!(peel(t), Type::Tuple(t) if t.elems.is_empty()))
        }),
        _ => false,
    };
    match (client, typed) {
        (Some(client), false) => {
            let client = client.to_token_stream().to_string().replace(' ', "");
            cx.error_spanned_by(
                ty,
                format!(
                    "this hub's clients are `{client}`: take the context as \
                     `&Context<dyn {client}>`"
                ),
            );
            false
        }
        (None, true) => {
            cx.error_spanned_by(
                ty,
                "this hub names no client contract: take the context as `&Context`, or name \
                 the `#[signal::client]` trait with `#[signal::hub(client = …)]`",
            );
            false
        }
        _ => true,
    }
}
