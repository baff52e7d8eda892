//! `#[action]`: turns an async function into a `NodeAction`.

use crate::attr::{Args, COMMON_KEYS, Common};
use crate::codegen;
use crate::errors::{Errors, item_with_error, unparsed_item};
use crate::shape::{self, Expect};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, PatType, ReturnType};

const MACRO: &str = "action";
const FORMS: &str = "`ctx: &NodeCtx` (returning `Result<NodeOutput, E>`) or `input: T` with `T: Deserialize` (returning `Result<U, E>`, `U: Serialize`)";

/// How the function takes its input.
enum Form {
    /// `async fn(ctx: &NodeCtx) -> Result<NodeOutput, E>`.
    Context,
    /// `async fn(input: T) -> Result<U, E>`; `has_input` is false for `async fn() -> ...`.
    Typed { has_input: bool },
}

/// Expands `#[action(...)]` on `item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse(MACRO, attr, &COMMON_KEYS, &mut errors);
    let parsed = syn::parse2::<ItemFn>(item.clone());
    // Without `name = "..."`, the action is registered under the function's name.
    let default_name = match &parsed {
        Ok(func) => Some(syn::LitStr::new(
            &func.sig.ident.to_string(),
            func.sig.ident.span(),
        )),
        Err(_) => None,
    };
    let common = Common::from_args(MACRO, &args, default_name, &mut errors);
    let func: ItemFn = match parsed {
        Ok(func) => func,
        Err(err) => {
            unparsed_item(
                &mut errors,
                &item,
                &err,
                &format!("`#[{MACRO}]` goes on an `async fn`"),
            );
            return match errors.finish() {
                Ok(()) => item,
                Err(err) => item_with_error(item, &err),
            };
        }
    };
    let form = check_shape(&func, &mut errors);
    let ty = codegen::type_name(&func, MACRO, &mut errors);
    match (errors.finish(), common, ty) {
        (Ok(()), Some(common), Some(ty)) => generate(&func, &ty, &common, &form),
        (Err(err), ..) => item_with_error(item, &err),
        // `None` comes only with a recorded error.
        (Ok(()), ..) => item,
    }
}

fn check_shape(func: &ItemFn, errors: &mut Errors) -> Form {
    let sig = &func.sig;
    shape::check_common(sig, MACRO, "Result<_, E>", errors);
    let params = shape::typed_params(sig, MACRO, false, errors);
    match params.as_slice() {
        [] => Form::Typed { has_input: false },
        [param] => form_of(param, errors),
        [_, extra, ..] => {
            errors.spanned(
                extra,
                format!("`#[{MACRO}]` functions take at most one parameter: {FORMS}"),
            );
            Form::Context
        }
    }
}

fn form_of(param: &PatType, errors: &mut Errors) -> Form {
    if Expect::Ref("NodeCtx").matches(&param.ty) {
        Form::Context
    } else if let syn::Type::Reference(_) = &*param.ty {
        errors.spanned(
            &param.ty,
            format!("expected {FORMS}; a typed input is taken by value"),
        );
        Form::Context
    } else {
        Form::Typed { has_input: true }
    }
}

fn generate(func: &ItemFn, ty: &Ident, common: &Common, form: &Form) -> TokenStream {
    let krate = &common.krate;
    let p = quote!(#krate::__private);
    let fn_name = &func.sig.ident;
    let name = &common.name;
    let code = codegen::describe(common, &quote!(#name));
    let statics = &code.statics;
    let methods = &code.methods;
    let precheck = &code.precheck;
    let ret_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => fn_name.span(),
    };
    let body = match form {
        Form::Context => quote_spanned! {ret_span=>
            match #fn_name(ctx).await {
                ::core::result::Result::Ok(output) => ::core::result::Result::Ok(output),
                ::core::result::Result::Err(e) => ::core::result::Result::Err(::core::convert::Into::<#p::BoxError>::into(e)),
            }
        },
        Form::Typed { has_input } => {
            let (read_input, call) = if *has_input {
                (
                    quote! {
                        // Reads the shared input values in place: nothing is copied.
                        let inputs = #p::serde::de::value::MapDeserializer::<_, #p::serde_json::Error>::new(
                            ctx.inputs.iter(),
                        );
                        let input = match #p::serde_path_to_error::deserialize(inputs) {
                            ::core::result::Result::Ok(input) => input,
                            ::core::result::Result::Err(e) => {
                                let path = ::std::string::ToString::to_string(e.path());
                                let message = if path == "." {
                                    ::std::format!("node `{}` (action `{}`): inputs: {}", ctx.node_id, #name, e.inner())
                                } else {
                                    ::std::format!("node `{}` (action `{}`): input `{}`: {}", ctx.node_id, #name, path, e.inner())
                                };
                                // Retrying cannot fix inputs of the wrong shape.
                                return ::core::result::Result::Err(::core::convert::Into::into(#p::Permanent::new(message)));
                            }
                        };
                    },
                    quote_spanned!(ret_span=> #fn_name(input).await),
                )
            } else {
                (
                    quote!(let _ = ctx;),
                    quote_spanned!(ret_span=> #fn_name().await),
                )
            };
            let output = quote_spanned! {ret_span=>
                let output = match #call {
                    ::core::result::Result::Ok(output) => output,
                    ::core::result::Result::Err(e) => return ::core::result::Result::Err(::core::convert::Into::<#p::BoxError>::into(e)),
                };
            };
            quote! {
                #read_input
                #output
                match #p::serde_json::to_value(&output) {
                    ::core::result::Result::Ok(value) => ::core::result::Result::Ok(#p::NodeOutput::success(value)),
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(::core::convert::Into::into(::std::format!(
                        "node `{}` (action `{}`): output cannot be serialized: {}", ctx.node_id, #name, e
                    ))),
                }
            }
        }
    };
    let unit = codegen::unit_type(func, ty, common, (MACRO, "action"), &TokenStream::new());
    quote! {
        #func

        #unit

        const _: () = {
            #statics

            #[#p::async_trait]
            impl #p::NodeAction for #ty {
                #methods

                async fn execute(
                    &self,
                    ctx: &#p::NodeCtx,
                ) -> ::core::result::Result<#p::NodeOutput, #p::BoxError> {
                    #precheck
                    #body
                }
            }

            fn annotated() -> ::std::sync::Arc<dyn #p::NodeAction> {
                ::std::sync::Arc::new(#ty)
            }

            #p::inventory::submit! {
                #p::AnnotatedAction(annotated)
            }
        };
    }
}
