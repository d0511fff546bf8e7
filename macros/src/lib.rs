//! Procedural macros for `tulip`: `#[tulip::main]` and `#[tulip::test]`.
//!
//! Both attributes turn an `async fn` into a plain `fn` whose body hands the
//! original body, wrapped in an `async move` block, to `::tulip::run`. That
//! function creates an event loop, runs the future to completion, cancels any
//! tasks that are still pending and closes the loop, much like Python's
//! `asyncio.run`.
//!
//! With arguments — `#[tulip::main(handle_sigint = false)]`,
//! `#[tulip::test(virtual_time, timeout = "5s")]` — the call is
//! `::tulip::run_with(…, ::tulip::task::RunOptions::new()…)` instead, and a
//! test's time limit wraps the block in `::tulip::__private::with_timeout`.
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
use syn::punctuated::Punctuated;
use syn::{
    AttrStyle, Attribute, Block, Expr, ExprLit, Item, Lit, Meta, Signature, Token, Visibility,
    braced, token,
};

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
/// # Ctrl-C: `handle_sigint = false`
/// Like `::tulip::run`, the program's first Ctrl-C cancels `main`'s future
/// (its `Drop`s run) and then ends the process as `SIGINT` would. To leave
/// `SIGINT` alone (a program that installs its own handler, or wants Ctrl-C to
/// kill it at once), turn that off:
///
/// ```ignore
/// #[tulip::main(handle_sigint = false)]
/// async fn main() {
///     // Ctrl-C now has its default effect: the process dies at once.
/// }
/// ```
///
/// which expands to `::tulip::run_with(async move { … },
/// ::tulip::task::RunOptions::new().handle_sigint(false))`.
///
/// The function must be `async`, take no arguments and have no generic
/// parameters; `handle_sigint = <bool>` is the only argument. Anything else is
/// a compile error pointing at the mistake:
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
/// # `virtual_time`
/// `#[tulip::test(virtual_time)]` runs the test on a loop on virtual time
/// (`tulip::EventLoop::with_virtual_time`): the clock jumps to the next timer
/// whenever the loop would wait for timers alone, so a test of a 30 s timeout
/// runs in microseconds, and the same way every time:
///
/// ```ignore
/// #[tulip::test(virtual_time)]
/// async fn gives_up_after_30_seconds() {
///     let lp = tulip::get_running_loop();
///     let t0 = lp.time();
///     let r = tulip::timeout(Duration::from_secs(30), std::future::pending::<()>()).await;
///     assert!(r.is_err());
///     assert_eq!(lp.time() - t0, Duration::from_secs(30));
/// }
/// ```
///
/// # `timeout = "5s"`
/// `#[tulip::test(timeout = "5s")]` fails the test, with a panic naming the
/// test and the limit, when it still runs after that much **wall-clock** time
/// (also with `virtual_time`: the limit is there to catch a test that hangs,
/// and a virtual hour takes microseconds). The limit is a number and a unit,
/// `ms`, `s` or `m`: `"500ms"`, `"5s"`, `"1.5s"`, `"2m"`. It is checked on the
/// loop, so it catches a test that waits for ever, not one that blocks its
/// thread. Both arguments combine: `#[tulip::test(virtual_time, timeout = "5s")]`.
///
/// The function must be `async`, take no arguments and have no generic
/// parameters; the attribute takes only the arguments above, and the function
/// must not also carry `#[test]`. Anything else is a compile error pointing at
/// the mistake.
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
    let options = parse_options(kind, args, &mut errors);
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
        run_body(test_attr.as_ref(), &options, input)
    };
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    quote! {
        #(#errors)*
        #item
    }
}

/// The expansion proper: `fn name() -> T { ::tulip::run(async move { body }) }`, or with
/// options `::tulip::run_with(…, RunOptions…)`.
fn run_body(test_attr: Option<&TokenStream2>, options: &Options, input: AsyncFn) -> TokenStream2 {
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
    let block = quote!(async move { #body });
    let call = if options.is_default() {
        let run = quote_spanned!(first=> ::tulip::run);
        quote_spanned!(last=> #run(#block))
    } else {
        let run = quote_spanned!(first=> ::tulip::run_with);
        let mut opts = quote!(::tulip::task::RunOptions::new());
        if let Some(on) = options.handle_sigint {
            opts.extend(quote!(.handle_sigint(#on)));
        }
        if options.virtual_time {
            opts.extend(quote!(.virtual_time(true)));
        }
        let fut = match &options.timeout {
            None => block,
            Some((nanos, written)) => {
                let name = sig.ident.to_string();
                quote! {
                    ::tulip::__private::with_timeout(
                        ::core::time::Duration::from_nanos(#nanos), #name, #written, #block)
                }
            }
        };
        quote_spanned!(last=> #run(#fut, #opts))
    };
    quote! {
        #test_attr
        #(#attrs)*
        #(#inner_attrs)*
        #vis #sig {
            #call
        }
    }
}

/// The attribute's arguments.
#[derive(Default)]
struct Options {
    /// `#[tulip::main(handle_sigint = …)]`.
    handle_sigint: Option<bool>,
    /// `#[tulip::test(virtual_time)]`.
    virtual_time: bool,
    /// `#[tulip::test(timeout = "…")]`: nanoseconds, and the limit as written.
    timeout: Option<(u64, String)>,
}

impl Options {
    fn is_default(&self) -> bool {
        self.handle_sigint.is_none() && !self.virtual_time && self.timeout.is_none()
    }
}

/// What each attribute accepts, for error messages.
const fn accepted(kind: Kind) -> &'static str {
    match kind {
        Kind::Main => "#[tulip::main] takes `handle_sigint = false`",
        Kind::Test => "#[tulip::test] takes `virtual_time` and `timeout = \"5s\"`",
    }
}

/// Parses `name`, `name = value`, … into [`Options`]; mistakes go to `errors`.
fn parse_options(kind: Kind, args: &TokenStream2, errors: &mut Vec<syn::Error>) -> Options {
    let mut options = Options::default();
    if args.is_empty() {
        return options;
    }
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args.clone()) {
        Ok(metas) => metas,
        Err(err) => {
            let msg = format!("{err}: {}", accepted(kind));
            errors.push(syn::Error::new(err.span(), msg));
            return options;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if seen.contains(&name) {
            let msg = format!("`{name}` is given twice");
            errors.push(syn::Error::new_spanned(meta.path(), msg));
            continue;
        }
        seen.push(name.clone());
        match (kind, name.as_str()) {
            (Kind::Main, "handle_sigint") => match bool_value(&meta, true) {
                Ok(on) => options.handle_sigint = Some(on),
                Err(err) => errors.push(err),
            },
            (Kind::Test, "virtual_time") => match bool_value(&meta, false) {
                Ok(on) => options.virtual_time = on,
                Err(err) => errors.push(err),
            },
            (Kind::Test, "timeout") => match timeout_value(&meta) {
                Ok(t) => options.timeout = Some(t),
                Err(err) => errors.push(err),
            },
            _ => {
                let hint = match name.as_str() {
                    "start_paused" => " (tokio's `start_paused` is `virtual_time` here)",
                    _ => "",
                };
                let msg = format!(
                    "unknown argument `{}`: {}{hint}",
                    meta.path().to_token_stream(),
                    accepted(kind)
                );
                errors.push(syn::Error::new_spanned(&meta, msg));
            }
        }
    }
    options
}

/// `name = true|false`, or a bare `name` (meaning `true`) unless `needs_value`.
fn bool_value(meta: &Meta, needs_value: bool) -> syn::Result<bool> {
    match meta {
        Meta::Path(_) if !needs_value => Ok(true),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Ok(b.value),
            other => Err(syn::Error::new_spanned(other, "expected `true` or `false`")),
        },
        _ => {
            let name = meta.path().to_token_stream();
            let msg = format!("expected `{name} = true` or `{name} = false`");
            Err(syn::Error::new_spanned(meta, msg))
        }
    }
}

/// `timeout = "5s"`: the limit in nanoseconds, and the string.
fn timeout_value(meta: &Meta) -> syn::Result<(u64, String)> {
    const HOW: &str =
        "expected a duration with its unit, such as `timeout = \"5s\"` (units: ms, s, m)";
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, HOW));
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    }) = &nv.value
    else {
        return Err(syn::Error::new_spanned(&nv.value, HOW));
    };
    let text = s.value();
    match parse_duration(&text) {
        Some(0) => Err(syn::Error::new_spanned(
            s,
            "the timeout must be more than zero",
        )),
        Some(nanos) => Ok((nanos, text)),
        None => Err(syn::Error::new_spanned(s, HOW)),
    }
}

/// `"500ms"`, `"5s"`, `"1.5s"`, `"2m"` in nanoseconds; `None` if malformed or too long.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || whole.len() > 12 || frac.len() > 9 || frac.contains('.') {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut nanos = whole * unit_nanos;
    if !frac.is_empty() {
        let digits: u128 = frac.parse().ok()?;
        nanos += digits * unit_nanos / 10u128.pow(u32::try_from(frac.len()).ok()?);
    }
    u64::try_from(nanos).ok()
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

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_duration(" 1.5s "), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("0.25ms"), Some(250_000));
        for bad in [
            "5",
            "s",
            "5 parsecs",
            "1.2.3s",
            ".5s",
            "-1s",
            "99999999999999s",
            "",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
