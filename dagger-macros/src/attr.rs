//! Parsing of the `key = "value"` arguments shared by every Dagger attribute.
//!
//! Parsing never stops at the first mistake: unknown, duplicate and
//! non-string arguments are all recorded in [`Errors`], and the caller still
//! gets whatever arguments were valid.

use crate::errors::Errors;
use crate::schema;
use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

/// One `key = value` argument as written.
struct RawArg {
    key: Ident,
    value: Expr,
}

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `parse_any` accepts the keyword `crate`.
        let key = Ident::parse_any(input)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = \"...\"`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Self { key, value })
    }
}

/// The arguments of one attribute, each a string literal, keyed by name.
pub(crate) struct Args {
    values: Vec<(Ident, LitStr)>,
    /// Keys given with an invalid value (already reported; not "missing").
    invalid: Vec<String>,
    /// The arguments did not parse (already reported): nothing is "missing".
    unparsed: bool,
    /// The span of the whole attribute, for "missing argument" errors.
    attr_span: Span,
}

impl Args {
    /// Parses `tokens`, accepting only the keys in `known`. Unknown and
    /// duplicate keys and non-string values are recorded in `errors`.
    pub(crate) fn parse(
        macro_name: &str,
        tokens: TokenStream,
        known: &[&str],
        errors: &mut Errors,
    ) -> Self {
        let attr_span = Span::call_site();
        let parsed = match Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(parsed) => parsed,
            Err(err) => {
                errors.push(err);
                return Self {
                    values: Vec::new(),
                    invalid: Vec::new(),
                    unparsed: true,
                    attr_span,
                };
            }
        };
        let mut values: Vec<(Ident, LitStr)> = Vec::new();
        let mut invalid = Vec::new();
        for arg in parsed {
            let key = arg.key.unraw().to_string();
            if !known.contains(&key.as_str()) {
                errors.spanned(
                    &arg.key,
                    format!(
                        "unknown argument `{key}` for `#[{macro_name}]`; expected one of: {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            }
            if values.iter().any(|(k, _)| k.unraw() == key) || invalid.contains(&key) {
                errors.spanned(&arg.key, format!("`{key}` specified more than once"));
                continue;
            }
            match arg.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) => values.push((arg.key, lit)),
                other => {
                    errors.spanned(
                        other,
                        format!("`{key}` expects a string literal, like `{key} = \"...\"`"),
                    );
                    invalid.push(key);
                }
            }
        }
        Self {
            values,
            invalid,
            unparsed: false,
            attr_span,
        }
    }

    /// The argument `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&LitStr> {
        self.values
            .iter()
            .find(|(k, _)| k.unraw() == key)
            .map(|(_, v)| v)
    }

    /// The argument `key`; its absence is recorded as an error on the attribute.
    pub(crate) fn required(
        &self,
        macro_name: &str,
        key: &str,
        errors: &mut Errors,
    ) -> Option<&LitStr> {
        let found = self.get(key);
        if found.is_none() && !self.unparsed && !self.invalid.iter().any(|k| k == key) {
            errors.push(syn::Error::new(
                self.attr_span,
                format!("`#[{macro_name}]` requires `{key} = \"...\"`"),
            ));
        }
        found
    }
}

/// Arguments every Dagger attribute takes.
pub(crate) struct Common {
    /// The registered name.
    pub(crate) name: LitStr,
    /// The description (empty when not given).
    pub(crate) description: LitStr,
    /// The input schema's source text, checked at expansion time.
    pub(crate) input_schema: Option<LitStr>,
    /// The output schema's source text, checked at expansion time.
    pub(crate) output_schema: Option<LitStr>,
    /// The path generated code uses for the `dagger` facade.
    pub(crate) krate: Path,
}

/// The keys of [`Common`].
pub(crate) const COMMON_KEYS: [&str; 5] = [
    "name",
    "description",
    "input_schema",
    "output_schema",
    "crate",
];

impl Common {
    /// Extracts and checks the common arguments. Returns `None` when one of
    /// them is missing or invalid (the reason is in `errors`). Without a
    /// `name` argument the name is `default_name` when given (`#[action]`:
    /// the function's name), otherwise a missing `name` is an error.
    pub(crate) fn from_args(
        macro_name: &str,
        args: &Args,
        default_name: Option<LitStr>,
        errors: &mut Errors,
    ) -> Option<Self> {
        let name = match (args.get("name"), default_name) {
            (None, Some(default)) => Some(default),
            _ => args.required(macro_name, "name", errors).cloned(),
        };
        if let Some(name) = &name {
            let value = name.value();
            if value.trim().is_empty() {
                errors.spanned(name, "`name` must not be empty");
            } else if value.trim() != value {
                errors.spanned(name, "`name` must not start or end with whitespace");
            }
        }
        let description = args
            .get("description")
            .cloned()
            .unwrap_or_else(|| LitStr::new("", Span::call_site()));
        let input_schema = args.get("input_schema").cloned();
        let output_schema = args.get("output_schema").cloned();
        for (key, lit) in [
            ("input_schema", &input_schema),
            ("output_schema", &output_schema),
        ] {
            if let Some(lit) = lit
                && let Err(message) = schema::check(&lit.value())
            {
                errors.spanned(lit, format!("invalid `{key}`: {message}"));
            }
        }
        let krate = match args.get("crate") {
            None => Some(syn::parse_quote!(::dagger)),
            Some(lit) => match lit.parse::<Path>() {
                Ok(path) => Some(path),
                Err(_) => {
                    errors.spanned(lit, "`crate` must be a path, like `crate = \"::dagger\"`");
                    None
                }
            },
        };
        Some(Self {
            name: name?,
            description,
            input_schema,
            output_schema,
            krate: krate?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Args, COMMON_KEYS, Common};
    use crate::errors::Errors;
    use quote::quote;

    fn errors_of(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let args = Args::parse("action", tokens, &COMMON_KEYS, &mut errors);
        let _ = Common::from_args("action", &args, None, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_arguments_parse() {
        assert!(errors_of(quote!(name = "a", description = "d", crate = "::x::dagger")).is_empty());
        assert!(errors_of(quote!(name = "a",)).is_empty());
    }

    #[test]
    fn every_mistake_is_reported() {
        assert_eq!(
            errors_of(quote!(
                name = "a",
                name = "b",
                colour = "red",
                description = 3
            )),
            [
                "`name` specified more than once",
                "unknown argument `colour` for `#[action]`; expected one of: `name`, `description`, `input_schema`, `output_schema`, `crate`",
                "`description` expects a string literal, like `description = \"...\"`",
            ]
        );
        assert_eq!(
            errors_of(quote!(name = " padded ")),
            ["`name` must not start or end with whitespace"]
        );
        assert_eq!(errors_of(quote!(name = "")), ["`name` must not be empty"]);
        assert_eq!(
            errors_of(quote!()),
            ["`#[action]` requires `name = \"...\"`"]
        );
        assert_eq!(errors_of(quote!(name)), ["expected `name = \"...\"`"]);
    }

    #[test]
    fn a_default_name_stands_in_for_a_missing_one_only() {
        let name_of = |tokens: proc_macro2::TokenStream| {
            let mut errors = Errors::default();
            let args = Args::parse("action", tokens, &COMMON_KEYS, &mut errors);
            let default = syn::LitStr::new("my_fn", proc_macro2::Span::call_site());
            Common::from_args("action", &args, Some(default), &mut errors).map(|c| c.name.value())
        };
        assert_eq!(name_of(quote!()), Some("my_fn".to_string()));
        assert_eq!(name_of(quote!(name = "given")), Some("given".to_string()));
    }
}
