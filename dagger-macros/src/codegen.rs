//! Code generation shared by the macros: the schema statics and the trait
//! methods that describe an action or agent.

use crate::attr::Common;
use proc_macro2::TokenStream;
use quote::quote;

/// Items, methods and a pre-check generated for the optional schemas.
pub(crate) struct SchemaCode {
    /// `static` cells holding the compiled schemas, placed next to the impl.
    pub(crate) statics: TokenStream,
    /// `fn name`, `fn description`, `fn input_schema`, `fn output_schema`.
    pub(crate) methods: TokenStream,
    /// Statements run first in `execute`: fail (without panicking) when a
    /// schema that compiled at expansion time does not compile at run time.
    pub(crate) precheck: TokenStream,
}

/// Generates the describing methods of a trait impl. `name_expr` is the
/// expression the `name()` method returns.
pub(crate) fn describe(common: &Common, name_expr: &TokenStream) -> SchemaCode {
    let krate = &common.krate;
    let description = &common.description;
    let mut statics = TokenStream::new();
    let mut methods = quote! {
        fn name(&self) -> &str {
            #name_expr
        }
        fn description(&self) -> &str {
            #description
        }
    };
    let mut precheck = TokenStream::new();
    for (which, source) in [
        ("input", &common.input_schema),
        ("output", &common.output_schema),
    ] {
        let Some(source) = source else { continue };
        let cell = quote::format_ident!("__DAGGER_{}_SCHEMA", which.to_uppercase());
        let method = quote::format_ident!("{}_schema", which);
        statics.extend(quote! {
            static #cell: ::std::sync::LazyLock<
                ::core::result::Result<#krate::__private::JsonSchema, ::std::string::String>,
            > = ::std::sync::LazyLock::new(|| {
                #krate::__private::JsonSchema::compile_str(#source, ::core::option::Option::Some(#name_expr))
                    .map_err(|e| ::std::string::ToString::to_string(&e))
            });
        });
        methods.extend(quote! {
            fn #method(&self) -> ::core::option::Option<&#krate::__private::JsonSchema> {
                ::core::result::Result::ok(::core::result::Result::as_ref(&*#cell))
            }
        });
        precheck.extend(quote! {
            if let ::core::result::Result::Err(e) = &*#cell {
                return ::core::result::Result::Err(::core::convert::Into::into(::std::clone::Clone::clone(e)));
            }
        });
    }
    SchemaCode {
        statics,
        methods,
        precheck,
    }
}
