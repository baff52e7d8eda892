//! Collects every error of one macro invocation so they are all reported in a
//! single compile (serde's `Ctxt` pattern).

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// Errors found so far; combined into one `syn::Error` at the end.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records an error spanned at `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.combined {
            Some(existing) => existing.combine(err),
            None => self.combined = Some(err),
        }
    }

    /// `Ok` when nothing was recorded.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.combined.map_or(Ok(()), Err)
    }
}

/// The original item followed by the errors: the item stays defined, so one
/// mistake in the attribute does not cascade into "cannot find" errors at
/// every use (tokio's `token_stream_with_error`).
pub(crate) fn item_with_error(item: TokenStream, err: &syn::Error) -> TokenStream {
    let mut out = item;
    out.extend(err.to_compile_error());
    out
}

/// What to report when the annotated item does not parse as `expected`: when
/// it is a function (a syntax error in its body, say), nothing, because the
/// compiler reports the syntax error itself when it parses the item we emit;
/// otherwise that the attribute is misplaced.
pub(crate) fn unparsed_item(
    errors: &mut Errors,
    item: &TokenStream,
    err: &syn::Error,
    expected: &str,
) {
    let is_fn = item
        .clone()
        .into_iter()
        .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "fn"));
    if !is_fn {
        errors.push(syn::Error::new(err.span(), format!("{expected}: {err}")));
    }
}
