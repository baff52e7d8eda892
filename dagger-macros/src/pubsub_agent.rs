//! `#[pubsub_agent]`: turns an async message handler into a `PubSubAgent`.

use crate::attr::{Args, COMMON_KEYS, Common};
use crate::codegen;
use crate::errors::{Errors, item_with_error, unparsed_item};
use crate::shape::{self, Expect};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitStr, ReturnType};

const MACRO: &str = "pubsub_agent";
const FORM: &str = "`(ctx: &PubSubContext, message: &Message)`";

/// Expands `#[pubsub_agent(...)]` on `item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut keys = COMMON_KEYS.to_vec();
    keys.extend(["subscribe", "publish"]);
    let args = Args::parse(MACRO, attr, &keys, &mut errors);
    let common = Common::from_args(MACRO, &args, None, &mut errors);
    let subscribe = channels(args.get("subscribe"), "subscribe", &mut errors);
    let publish = channels(args.get("publish"), "publish", &mut errors);
    let func: ItemFn = match syn::parse2(item.clone()) {
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
    shape::check_common(&func.sig, MACRO, "Result<(), E>", &mut errors);
    let params = shape::typed_params(&func.sig, MACRO, false, &mut errors);
    shape::check_params(
        &func.sig,
        &params,
        &[
            (Expect::Ref("PubSubContext"), "the agent's context"),
            (Expect::Ref("Message"), "the received message"),
        ],
        FORM,
        &mut errors,
    );
    let ty = codegen::type_name(&func, MACRO, &mut errors);
    match (errors.finish(), common, ty) {
        (Ok(()), Some(common), Some(ty)) => generate(&func, &ty, &common, &subscribe, &publish),
        (Err(err), ..) => item_with_error(item, &err),
        // `None` comes only with a recorded error.
        (Ok(()), ..) => item,
    }
}

/// Splits a comma-separated list of channels or patterns (`orders.*`); the
/// executor checks pattern syntax when the agent is registered.
fn channels(lit: Option<&LitStr>, key: &str, errors: &mut Errors) -> Vec<String> {
    let Some(lit) = lit else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for entry in lit.value().split(',').map(str::trim) {
        if entry.is_empty() {
            errors.spanned(lit, format!("`{key}` has an empty channel name"));
        } else if entry.contains(char::is_whitespace) {
            errors.spanned(
                lit,
                format!("`{key}`: channel `{entry}` contains whitespace"),
            );
        } else if out.iter().any(|c| c == entry) {
            errors.spanned(lit, format!("`{key}` lists `{entry}` more than once"));
        } else {
            out.push(entry.to_string());
        }
    }
    out
}

fn generate(
    func: &ItemFn,
    ty: &Ident,
    common: &Common,
    subscribe: &[String],
    publish: &[String],
) -> TokenStream {
    let krate = &common.krate;
    let p = quote!(#krate::__private);
    let fn_name = &func.sig.ident;
    let name = &common.name;
    let code = codegen::describe(common, &quote!(#name));
    let (statics, methods, precheck) = (&code.statics, &code.methods, &code.precheck);
    let ret_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => fn_name.span(),
    };
    let call = quote_spanned!(ret_span=> #fn_name(ctx, message).await);
    let channels = quote! {
        /// The channels (and patterns) the agent subscribes to.
        pub const SUBSCRIBE: &'static [&'static str] = &[#(#subscribe),*];

        /// The channels (and patterns) the agent may publish to.
        pub const PUBLISH: &'static [&'static str] = &[#(#publish),*];
    };
    let unit = codegen::unit_type(func, ty, common, (MACRO, "pub/sub agent"), &channels);
    quote! {
        #func

        #unit

        const _: () = {
            #statics

            #[#p::async_trait]
            impl #p::PubSubAgent for #ty {
                #methods

                fn subscriptions(&self) -> ::std::vec::Vec<::std::string::String> {
                    Self::SUBSCRIBE.iter().map(|c| ::std::string::ToString::to_string(c)).collect()
                }

                fn publications(&self) -> ::std::vec::Vec<::std::string::String> {
                    Self::PUBLISH.iter().map(|c| ::std::string::ToString::to_string(c)).collect()
                }

                async fn handle_message(
                    &self,
                    ctx: &#p::PubSubContext,
                    message: &#p::Message,
                ) -> ::core::result::Result<(), #p::BoxError> {
                    #precheck
                    match #call {
                        ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
                        ::core::result::Result::Err(e) => ::core::result::Result::Err(::core::convert::Into::<#p::BoxError>::into(e)),
                    }
                }
            }

            fn annotated() -> ::std::sync::Arc<dyn #p::PubSubAgent> {
                ::std::sync::Arc::new(#ty)
            }

            #p::inventory::submit! {
                #p::AnnotatedPubSubAgent(annotated)
            }
        };
    }
}
