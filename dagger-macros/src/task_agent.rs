//! `#[task_agent]`: turns an async function, or an inherent `impl` block with
//! an `async fn execute(&self, ...)`, into a `TaskAgent`.

use crate::attr::{Args, COMMON_KEYS, Common};
use crate::codegen;
use crate::errors::{Errors, item_with_error, unparsed_item};
use crate::shape::{self, Expect};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ImplItemFn, Item, ItemFn, ItemImpl, PatType, ReturnType, Signature};

const MACRO: &str = "task_agent";
const RETURNS: &str = "Result<Value, E>";
const FN_FORMS: &str = "`(input: Value, task_id: &str, job_id: &str, task_manager: &TaskManager)` or `(input: Value, ctx: &TaskContext)`";
const METHOD_FORMS: &str = "`(&self, input: Value, task_id: &str, job_id: &str)`, the same followed by `task_manager: &TaskManager`, or `(&self, input: Value, ctx: &TaskContext)`";

/// Which arguments the user's function takes after `input`.
#[derive(Clone, Copy)]
enum Params {
    /// `task_id: &str, job_id: &str`.
    Ids,
    /// `task_id: &str, job_id: &str, task_manager: &TaskManager`.
    IdsAndManager,
    /// `ctx: &TaskContext`.
    Context,
}

/// Expands `#[task_agent(...)]` on `item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse(MACRO, attr, &COMMON_KEYS, &mut errors);
    let common = Common::from_args(MACRO, &args, None, &mut errors);
    let parsed: syn::Result<Item> = syn::parse2(item.clone());
    let generated = match parsed {
        Ok(Item::Fn(func)) => {
            let params = check_fn(&func, &mut errors);
            let ty = codegen::type_name(&func, MACRO, &mut errors);
            common
                .zip(ty)
                .map(|(c, ty)| generate_fn(&func, &ty, &c, params))
        }
        Ok(Item::Impl(imp)) => {
            let method = check_impl(&imp, &mut errors);
            common
                .zip(method)
                .map(|(c, (m, params))| generate_impl(&imp, m, &c, params))
        }
        Ok(other) => {
            errors.spanned(
                other,
                format!("`#[{MACRO}]` goes on an `async fn` or on an inherent `impl` block with an `async fn execute`"),
            );
            None
        }
        Err(err) => {
            unparsed_item(
                &mut errors,
                &item,
                &err,
                &format!("`#[{MACRO}]` goes on an `async fn` or an inherent `impl` block"),
            );
            None
        }
    };
    match (errors.finish(), generated) {
        (Ok(()), Some(tokens)) => tokens,
        (Err(err), _) => item_with_error(item, &err),
        (Ok(()), None) => item,
    }
}

fn check_fn(func: &ItemFn, errors: &mut Errors) -> Params {
    shape::check_common(&func.sig, MACRO, RETURNS, errors);
    let params = shape::typed_params(&func.sig, MACRO, false, errors);
    classify(&func.sig, &params, false, errors)
}

/// Finds `execute` in the impl block and checks it.
fn check_impl<'a>(imp: &'a ItemImpl, errors: &mut Errors) -> Option<(&'a ImplItemFn, Params)> {
    if let Some((_, path, _)) = &imp.trait_ {
        errors.spanned(
            path,
            format!("`#[{MACRO}]` goes on an inherent `impl` block, not a trait impl"),
        );
        return None;
    }
    let method = imp.items.iter().find_map(|item| match item {
        ImplItem::Fn(f) if f.sig.ident == "execute" => Some(f),
        _ => None,
    });
    let Some(method) = method else {
        errors.spanned(
            &imp.self_ty,
            format!(
                "`#[{MACRO}]` on an `impl` block needs an `async fn execute` taking {METHOD_FORMS}"
            ),
        );
        return None;
    };
    shape::check_common(&method.sig, MACRO, RETURNS, errors);
    match method.sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(r) => errors.spanned(r, "`execute` must take `&self`"),
        None => errors.spanned(&method.sig.ident, "`execute` must take `&self`"),
    }
    let params = shape::typed_params(&method.sig, MACRO, true, errors);
    Some((method, classify(&method.sig, &params, true, errors)))
}

/// Decides which form `params` (after `self`) follow and checks their types.
fn classify(sig: &Signature, params: &[&PatType], method: bool, errors: &mut Errors) -> Params {
    let input = (Expect::Owned("Value"), "the task's input");
    let context = (Expect::Ref("TaskContext"), "the task's context");
    let task_id = (Expect::Ref("str"), "the task id");
    let job_id = (Expect::Ref("str"), "the job id");
    let manager = (Expect::Ref("TaskManager"), "the task manager");
    let forms = if method { METHOD_FORMS } else { FN_FORMS };
    let (params_kind, expected): (Params, &[_]) = match params.len() {
        2 => (Params::Context, &[input, context]),
        3 if method => (Params::Ids, &[input, task_id, job_id]),
        _ => (Params::IdsAndManager, &[input, task_id, job_id, manager]),
    };
    shape::check_params(sig, params, expected, forms, errors);
    params_kind
}

/// The call of the user's function, given `input` and `ctx: &TaskContext`.
fn call_args(params: Params) -> TokenStream {
    match params {
        Params::Context => quote!(input, ctx),
        Params::Ids => quote!(input, ctx.task_id().as_str(), ctx.job_id().as_str()),
        Params::IdsAndManager => {
            quote!(
                input,
                ctx.task_id().as_str(),
                ctx.job_id().as_str(),
                ctx.manager()
            )
        }
    }
}

/// The body of `TaskAgent::execute` around `call` (an awaited future). Type
/// errors in the conversions point at the user's return type (`span`).
fn execute_body(
    p: &TokenStream,
    precheck: &TokenStream,
    call: &TokenStream,
    span: proc_macro2::Span,
) -> TokenStream {
    let convert = quote_spanned! {span=>
        match #call {
            ::core::result::Result::Ok(output) => ::core::result::Result::Ok(::core::convert::Into::<#p::TaskOutcome>::into(output)),
            ::core::result::Result::Err(e) => ::core::result::Result::Err(::core::convert::Into::<#p::BoxError>::into(e)),
        }
    };
    quote! {
        #precheck
        #convert
    }
}

fn ret_span(sig: &Signature) -> proc_macro2::Span {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    }
}

fn generate_fn(func: &ItemFn, ty: &Ident, common: &Common, params: Params) -> TokenStream {
    let krate = &common.krate;
    let p = quote!(#krate::__private);
    let fn_name = &func.sig.ident;
    let name = &common.name;
    let code = codegen::describe(common, &quote!(#name));
    let (statics, methods) = (&code.statics, &code.methods);
    let args = call_args(params);
    let span = ret_span(&func.sig);
    let call = quote_spanned!(span=> #fn_name(#args).await);
    let body = execute_body(&p, &code.precheck, &call, span);
    let unit = codegen::unit_type(func, ty, common, (MACRO, "task agent"), &TokenStream::new());
    quote! {
        #func

        #unit

        const _: () = {
            #statics

            #[#p::async_trait]
            impl #p::TaskAgent for #ty {
                #methods

                async fn execute(
                    &self,
                    input: #p::serde_json::Value,
                    ctx: &#p::TaskContext,
                ) -> ::core::result::Result<#p::TaskOutcome, #p::BoxError> {
                    #body
                }
            }

            fn annotated() -> ::std::sync::Arc<dyn #p::TaskAgent> {
                ::std::sync::Arc::new(#ty)
            }

            #p::inventory::submit! {
                #p::AnnotatedTaskAgent(annotated)
            }
        };
    }
}

fn generate_impl(
    imp: &ItemImpl,
    method: &ImplItemFn,
    common: &Common,
    params: Params,
) -> TokenStream {
    let krate = &common.krate;
    let p = quote!(#krate::__private);
    let name = &common.name;
    let code = codegen::describe(common, &quote!(#name));
    let (statics, methods) = (&code.statics, &code.methods);
    let (impl_generics, _, where_clause) = imp.generics.split_for_impl();
    let self_ty = &imp.self_ty;
    let args = call_args(params);
    // Inherent methods take precedence over the trait's `execute` in a path call.
    let span = ret_span(&method.sig);
    let call = quote_spanned!(span=> <#self_ty>::execute(self, #args).await);
    let body = execute_body(&p, &code.precheck, &call, span);
    quote! {
        #imp

        const _: () = {
            #statics

            #[#p::async_trait]
            impl #impl_generics #p::TaskAgent for #self_ty #where_clause {
                #methods

                async fn execute(
                    &self,
                    input: #p::serde_json::Value,
                    ctx: &#p::TaskContext,
                ) -> ::core::result::Result<#p::TaskOutcome, #p::BoxError> {
                    #body
                }
            }
        };
    }
}
