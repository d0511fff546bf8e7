//! Procedural macros for `tulip`: `#[tulip::main]` and `#[tulip::test]`.
//!
//! Both attributes turn an `async fn` into a plain `fn` whose body hands the
//! original body, wrapped in an `async move` block, to `::tulip::run`. That
//! function creates an event loop, runs the future to completion, cancels any
//! tasks that are still pending and closes the loop, much like Python's
//! `asyncio.run`.
//!
//! Use them through the `tulip` crate (with its default `macros` feature),
//! not from this crate directly: the generated code refers to `::tulip::run`.
//!
//! When an attribute is misused the expansion carries a `compile_error!`
//! pointing at the mistake, next to an item that is as close as possible to
//! what was written, so that IDEs keep working on the function's body.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::{AttrStyle, Attribute, Block, Item, Signature, Visibility, braced, token};

/// Runs an `async fn main` on a fresh tulip event loop.
///
/// ```ignore
/// #[tulip::main]
/// async fn main() {
///     println!("hello from the event loop");
/// }
/// ```
///
/// expands to
///
/// ```ignore
/// fn main() {
///     ::tulip::run(async move {
///         println!("hello from the event loop");
///     })
/// }
/// ```
///
/// `::tulip::run` creates an event loop, runs the future to completion,
/// cancels the tasks that are still pending and closes the loop.
///
/// The declared return type is kept on the generated `fn`, and it is the
/// output of the `async move` block, so `main` may return a `Result` and use
/// `?`. A `return` inside the body leaves the `async` block, that is, it
/// returns from `main`:
///
/// ```ignore
/// #[tulip::main]
/// async fn main() -> Result<(), std::io::Error> {
///     let text = std::fs::read_to_string("Cargo.toml")?;
///     if text.is_empty() {
///         return Ok(());
///     }
///     println!("{text}");
///     Ok(())
/// }
/// ```
///
/// Attributes (doc comments included) and visibility are kept. Inner
/// attributes of the body (`#![allow(...)]`) become attributes of the
/// generated function.
///
/// The function must be `async`, take no arguments and have no generic
/// parameters; the attribute takes no arguments. Anything else is a compile
/// error pointing at the mistake:
///
/// ```ignore
/// #[tulip::main]
/// fn main() {} // error: the `async` keyword is missing from the function declaration
/// ```
///
/// The generated code calls `::tulip::run`, so the `tulip` crate must be a
/// dependency of the crate using the attribute under the name `tulip`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, &args.into(), &item.into()).into()
}

/// Runs an `async fn` test on a fresh tulip event loop.
///
/// ```ignore
/// #[tulip::test]
/// async fn adds() {
///     assert_eq!(2 + 2, 4);
/// }
/// ```
///
/// expands to
///
/// ```ignore
/// #[::core::prelude::v1::test]
/// fn adds() {
///     ::tulip::run(async move {
///         assert_eq!(2 + 2, 4);
///     })
/// }
/// ```
///
/// Each test gets its own event loop: `::tulip::run` creates it, runs the
/// body to completion, cancels the tasks that are still pending and closes
/// the loop.
///
/// The declared return type is kept, so a test may return a `Result` and use
/// `?`. Other attributes such as `#[should_panic]` and `#[ignore]` are kept:
///
/// ```ignore
/// #[tulip::test]
/// async fn reads_manifest() -> Result<(), std::io::Error> {
///     let text = std::fs::read_to_string("Cargo.toml")?;
///     assert!(text.contains("[package]"));
///     Ok(())
/// }
///
/// #[tulip::test]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
/// ```
///
/// The function must be `async`, take no arguments and have no generic
/// parameters; the attribute takes no arguments, and the function must not
/// also carry `#[test]`. Anything else is a compile error pointing at the
/// mistake.
///
/// The generated code calls `::tulip::run`, so the `tulip` crate must be a
/// dependency (or dev-dependency) of the crate using the attribute under the
/// name `tulip`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, &args.into(), &item.into()).into()
}

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    const fn name(self) -> &'static str {
        match self {
            Self::Main => "#[tulip::main]",
            Self::Test => "#[tulip::test]",
        }
    }
}

/// A function item whose body is kept as unparsed tokens.
///
/// Not parsing the statements is faster, and it keeps the expansion working
/// while the body is being edited and does not parse yet (which matters to
/// IDEs).
struct AsyncFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    inner_attrs: Vec<Attribute>,
    body: TokenStream2,
}

impl Parse for AsyncFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let _: token::Brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(Self {
            attrs,
            vis,
            sig,
            inner_attrs,
            body,
        })
    }
}

fn expand(kind: Kind, args: &TokenStream2, item: &TokenStream2) -> TokenStream2 {
    let input: AsyncFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(err) => return not_a_function(kind, item, err),
    };

    let mut errors = Vec::new();
    if !args.is_empty() {
        let msg = format!("{} does not take any arguments", kind.name());
        errors.push(syn::Error::new_spanned(args, msg));
    }
    let sig = &input.sig;
    if let Some(constness) = &sig.constness {
        let msg = format!("{} functions cannot be `const`", kind.name());
        errors.push(syn::Error::new_spanned(constness, msg));
    }
    if sig.asyncness.is_none() {
        let msg = "the `async` keyword is missing from the function declaration";
        errors.push(syn::Error::new_spanned(&sig.fn_token, msg));
    }
    // Both errors below mean that the body cannot be run as it is written.
    let mut bad_signature = false;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let msg = format!("{} functions cannot have generic parameters", kind.name());
        let err = if sig.generics.params.is_empty() {
            syn::Error::new_spanned(&sig.generics.where_clause, msg)
        } else {
            syn::Error::new_spanned(&sig.generics, msg)
        };
        errors.push(err);
        bad_signature = true;
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let (inputs, variadic) = (&sig.inputs, &sig.variadic);
        let msg = format!("{} functions cannot take arguments", kind.name());
        errors.push(syn::Error::new_spanned(quote!(#inputs #variadic), msg));
        bad_signature = true;
    }
    // `#[test]` is added by `#[tulip::test]`; when the function already has
    // one, it is reported and no second one is added.
    let mut test_attr = None;
    if kind == Kind::Test {
        match input.attrs.iter().find(|attr| is_test_attribute(attr)) {
            Some(attr) => {
                let msg = "second test attribute is supplied, consider removing it";
                errors.push(syn::Error::new_spanned(attr, msg));
            }
            None => test_attr = Some(quote!(#[::core::prelude::v1::test])),
        }
    }

    let item = if bad_signature {
        keep_for_ide(test_attr.as_ref(), input)
    } else {
        run_body(test_attr.as_ref(), input)
    };
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    quote! {
        #(#errors)*
        #item
    }
}

/// The expansion proper: `fn name() -> T { ::tulip::run(async move { body }) }`.
fn run_body(test_attr: Option<&TokenStream2>, input: AsyncFn) -> TokenStream2 {
    let AsyncFn {
        attrs,
        vis,
        mut sig,
        inner_attrs,
        body,
    } = input;
    // `const` has been reported; without it the expansion is still valid.
    sig.asyncness = None;
    sig.constness = None;
    let inner_attrs = inner_attrs.into_iter().map(|mut attr| {
        attr.style = AttrStyle::Outer;
        attr
    });
    // The call gets the span of the body's last statement, so that a type
    // mismatch between the body and the declared return type is reported
    // there, as it would be for a plain `fn`, rather than on the attribute.
    let (first, last) = last_statement_span(&body);
    // The `async` block itself keeps the call-site span: errors about it as
    // a whole (such as `?` in a body returning `()`) point at the attribute.
    let run = quote_spanned!(first=> ::tulip::run);
    let block = quote!(async move { #body });
    let call = quote_spanned!(last=> #run(#block));
    quote! {
        #test_attr
        #(#attrs)*
        #(#inner_attrs)*
        #vis #sig {
            #call
        }
    }
}

/// The spans of the first and last tokens of the body's last statement, or
/// the call site when the body is empty or does not parse.
fn last_statement_span(body: &TokenStream2) -> (Span, Span) {
    let last = Block::parse_within
        .parse2(body.clone())
        .ok()
        .and_then(|mut stmts| stmts.pop());
    let Some(last) = last else {
        return (Span::call_site(), Span::call_site());
    };
    let mut tokens = last.into_token_stream().into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |tt| tt.span());
    let last = tokens.last().map_or(first, |tt| tt.span());
    (first, last)
}

/// What to emit, next to the error, for a function that takes arguments or
/// has generic parameters: a plain `fn name() {}` standing in for it (so that
/// there is still a `main`, or a test, and no second error about it) with the
/// function as written nested inside, where its body is still type-checked.
fn keep_for_ide(test_attr: Option<&TokenStream2>, input: AsyncFn) -> TokenStream2 {
    let AsyncFn {
        attrs,
        vis,
        mut sig,
        inner_attrs,
        body,
    } = input;
    sig.asyncness = Some(token::Async::default());
    sig.constness = None;
    let ident = &sig.ident;
    quote! {
        #test_attr
        #(#attrs)*
        #vis fn #ident() {
            #[allow(unused)]
            #sig {
                #(#inner_attrs)*
                #body
            }
        }
    }
}

/// `#[test]`, or a path to it such as `#[core::prelude::v1::test]`.
fn is_test_attribute(attr: &Attribute) -> bool {
    let segments = &attr.path().segments;
    let is = |segment: Option<&syn::PathSegment>, names: &[&str]| {
        segment.is_some_and(|segment| names.iter().any(|name| segment.ident == name))
    };
    is(segments.last(), &["test"])
        && (segments.len() == 1 || is(segments.first(), &["core", "std"]))
}

/// The attribute was put on something that is not a function: report it and
/// keep the item as it is.
fn not_a_function(kind: Kind, item: &TokenStream2, parse_error: syn::Error) -> TokenStream2 {
    let msg = format!("{} can only be used on functions", kind.name());
    let err = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(_)) | Err(_) => parse_error,
        Ok(other) => syn::Error::new_spanned(item_head(&other), msg),
    };
    let err = err.into_compile_error();
    quote! {
        #err
        #item
    }
}

/// The tokens naming an item, such as `struct Foo`, for an error's span.
fn item_head(item: &Item) -> TokenStream2 {
    fn head(keyword: impl ToTokens, name: impl ToTokens) -> TokenStream2 {
        quote!(#keyword #name)
    }
    match item {
        Item::Const(i) => head(&i.const_token, &i.ident),
        Item::Enum(i) => head(&i.enum_token, &i.ident),
        Item::ExternCrate(i) => {
            let (extern_token, crate_token) = (&i.extern_token, &i.crate_token);
            head(quote!(#extern_token #crate_token), &i.ident)
        }
        Item::ForeignMod(i) => head(&i.unsafety, &i.abi),
        Item::Impl(i) => head(&i.impl_token, &i.self_ty),
        Item::Macro(i) => head(&i.mac.path, &i.mac.bang_token),
        Item::Mod(i) => head(&i.mod_token, &i.ident),
        Item::Static(i) => head(&i.static_token, &i.ident),
        Item::Struct(i) => head(&i.struct_token, &i.ident),
        Item::Trait(i) => head(&i.trait_token, &i.ident),
        Item::TraitAlias(i) => head(&i.trait_token, &i.ident),
        Item::Type(i) => head(&i.type_token, &i.ident),
        Item::Union(i) => head(&i.union_token, &i.ident),
        Item::Use(i) => head(&i.use_token, &i.tree),
        _ => item.to_token_stream(),
    }
}
