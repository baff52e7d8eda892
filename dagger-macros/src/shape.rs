//! Checks of the annotated function's shape: `async`, parameter types and
//! count, return type. Each mistake is recorded with a span on the culprit.

use crate::errors::Errors;
use quote::ToTokens;
use syn::{FnArg, PatType, ReturnType, Signature, Type};

/// What a parameter's type must look like.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    /// An owned value whose type's last path segment is this name (`Value`).
    Owned(&'static str),
    /// `&T` whose type's last path segment is this name (`&NodeCtx`, `&str`).
    Ref(&'static str),
}

impl Expect {
    /// How the expected type reads in an error message.
    pub(crate) fn describe(self) -> String {
        match self {
            Expect::Owned(name) => format!("`{name}`"),
            Expect::Ref(name) => format!("`&{name}`"),
        }
    }

    /// Whether `ty` has this shape.
    pub(crate) fn matches(self, ty: &Type) -> bool {
        match (self, ty) {
            (Expect::Ref(name), Type::Reference(r)) => {
                r.mutability.is_none() && last_segment_is(&r.elem, name)
            }
            (Expect::Owned(name), ty) => last_segment_is(ty, name),
            _ => false,
        }
    }
}

/// Whether `ty` is a path whose last segment is `name` (`serde_json::Value`
/// and `Value` both match `Value`).
pub(crate) fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name)
        }
        Type::Group(g) => last_segment_is(&g.elem, name),
        Type::Paren(p) => last_segment_is(&p.elem, name),
        _ => false,
    }
}

/// The typed (non-receiver) parameters of `sig`; a receiver is recorded as an
/// error when `receiver_allowed` is false.
pub(crate) fn typed_params<'a>(
    sig: &'a Signature,
    macro_name: &str,
    receiver_allowed: bool,
    errors: &mut Errors,
) -> Vec<&'a PatType> {
    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Typed(p) => params.push(p),
            FnArg::Receiver(r) if !receiver_allowed => errors.spanned(
                r,
                format!("`#[{macro_name}]` goes on a free function, which takes no `self`"),
            ),
            FnArg::Receiver(_) => {}
        }
    }
    params
}

/// Records the generic problems of a signature: not `async`, generic,
/// `const`/`unsafe`/`extern`, variadic, no return type.
pub(crate) fn check_common(sig: &Signature, macro_name: &str, returns: &str, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("`#[{macro_name}]` requires an `async fn`"),
        );
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, format!("`#[{macro_name}]` functions cannot be `const`"));
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, format!("`#[{macro_name}]` functions cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format!("`#[{macro_name}]` functions cannot be `extern`"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            format!("`#[{macro_name}]` functions cannot be generic"),
        );
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, format!("`#[{macro_name}]` functions cannot be variadic"));
    }
    if matches!(sig.output, ReturnType::Default) {
        errors.spanned(
            &sig.ident,
            format!("`#[{macro_name}]` functions must return `{returns}`"),
        );
    }
}

/// Checks `params` against `expected`, recording a wrong count or each
/// parameter of the wrong type. `form` describes the accepted signature.
pub(crate) fn check_params(
    sig: &Signature,
    params: &[&PatType],
    expected: &[(Expect, &str)],
    form: &str,
    errors: &mut Errors,
) {
    if params.len() != expected.len() {
        // Point at the first extra parameter, or at the list when some are missing.
        let culprit = match params.get(expected.len()) {
            Some(extra) => extra.to_token_stream(),
            None if params.is_empty() => sig.ident.to_token_stream(),
            None => sig.inputs.to_token_stream(),
        };
        errors.spanned(
            culprit,
            format!("wrong number of parameters: expected {form}"),
        );
        return;
    }
    for (param, (expect, role)) in params.iter().zip(expected) {
        if !expect.matches(&param.ty) {
            errors.spanned(
                &param.ty,
                format!("expected {} ({role})", expect.describe()),
            );
        }
    }
}
