//! `#[derive(EventData)]`: implements `domain::envelope::EventData` (re-exported there, so
//! `use domain::envelope::EventData` brings the trait and the derive).
//!
//! ```text
//! #[derive(EventData)] // eventType "AlertRaised", version 1
//! pub struct AlertRaised { /* ... */ }
//!
//! #[derive(EventData)]
//! #[event_data(event_type = "ReadingRecorded", version = 2)]
//! pub struct Reading { /* ... */ }
//! ```
//!
//! `event_type` defaults to the type's name and `version` to 1. The event type is a wire
//! contract: the contract test (`shared/domain/tests/contracts.rs`) fails when it changes
//! without its published schema.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::parse::Parse;
use syn::{DeriveInput, LitInt, LitStr, parse_macro_input};

#[proc_macro_derive(EventData, attributes(event_data))]
pub fn derive_event_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, trait_path())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The path of the trait. The domain crate names itself `domain` too
/// (`extern crate self as domain;`), so the same path works inside it and everywhere else.
fn trait_path() -> TokenStream2 {
    quote!(::domain::envelope::EventData)
}

/// What `#[event_data(...)]` says, with the defaults applied.
#[derive(Debug, PartialEq)]
struct Contract {
    event_type: String,
    version: u32,
}

fn parse_contract(input: &DeriveInput) -> syn::Result<Contract> {
    let mut event_type: Option<LitStr> = None;
    let mut version: Option<LitInt> = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("event_data"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("event_type") {
                set_once(&mut event_type, &meta, "event_type")
            } else if meta.path.is_ident("version") {
                set_once(&mut version, &meta, "version")
            } else {
                Err(meta.error(
                    "unknown event_data key: expected `event_type = \"...\"` or `version = N`",
                ))
            }
        })?;
    }
    let event_type = match event_type {
        Some(lit) if lit.value().is_empty() => {
            return Err(syn::Error::new(lit.span(), "event_type must not be empty"));
        }
        Some(lit) => lit.value(),
        None => input.ident.to_string(),
    };
    let version = match version {
        Some(lit) => match lit.base10_parse::<u32>()? {
            0 => return Err(syn::Error::new(lit.span(), "version starts at 1")),
            v => v,
        },
        None => 1,
    };
    Ok(Contract {
        event_type,
        version,
    })
}

/// Reads `key = value` into `slot`, which must still be empty.
fn set_once<T: Parse>(slot: &mut Option<T>, meta: &ParseNestedMeta, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate event_data key `{key}`")));
    }
    *slot = Some(meta.value()?.parse()?);
    Ok(())
}

fn expand(input: &DeriveInput, trait_path: TokenStream2) -> syn::Result<TokenStream2> {
    let Contract {
        event_type,
        version,
    } = parse_contract(input)?;
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #trait_path for #name #type_generics #where_clause {
            const EVENT_TYPE: &'static str = #event_type;
            const VERSION: u32 = #version;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(item: &str) -> Result<Contract, String> {
        let input: DeriveInput = syn::parse_str(item).expect("a type definition");
        parse_contract(&input).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_the_type_name_and_version_1() {
        assert_eq!(
            contract("struct AlertRaised { a: u8 }"),
            Ok(Contract {
                event_type: "AlertRaised".into(),
                version: 1
            })
        );
    }

    #[test]
    fn reads_event_type_and_version_from_one_or_several_attributes() {
        let expected = Ok(Contract {
            event_type: "ReadingRecorded".into(),
            version: 3,
        });
        let one = "#[event_data(event_type = \"ReadingRecorded\", version = 3)] struct Reading;";
        assert_eq!(contract(one), expected);
        let two = "#[event_data(version = 3)] #[event_data(event_type = \"ReadingRecorded\")] \
                   enum Reading {}";
        assert_eq!(contract(two), expected);
    }

    #[test]
    fn rejects_bad_attributes_with_a_message_that_says_why() {
        let cases = [
            (
                "#[event_data(name = \"X\")] struct A;",
                "unknown event_data key",
            ),
            (
                "#[event_data(version = 1, version = 2)] struct A;",
                "duplicate event_data key `version`",
            ),
            (
                "#[event_data(event_type = X)] struct A;",
                "expected string literal",
            ),
            (
                "#[event_data(event_type = \"\")] struct A;",
                "event_type must not be empty",
            ),
            (
                "#[event_data(version = \"1\")] struct A;",
                "expected integer literal",
            ),
            (
                "#[event_data(version = 0)] struct A;",
                "version starts at 1",
            ),
            (
                "#[event_data(version = 5000000000)] struct A;",
                "number too large",
            ),
            ("#[event_data(version)] struct A;", "expected `=`"),
        ];
        for (item, message) in cases {
            let err = contract(item).expect_err(item);
            assert!(err.contains(message), "{item}: {err}");
        }
    }

    #[test]
    fn implements_the_trait_for_generic_types_too() {
        let input: DeriveInput =
            syn::parse_str("struct Wrapped<T: Clone> where T: Default { t: T }")
                .expect("a type definition");
        let code = expand(&input, quote!(::domain::envelope::EventData))
            .expect("expands")
            .to_string();
        assert!(code.contains("impl < T : Clone > :: domain :: envelope :: EventData for Wrapped < T > where T : Default"), "{code}");
        assert!(
            code.contains("const EVENT_TYPE : & 'static str = \"Wrapped\""),
            "{code}"
        );
        assert!(code.contains("const VERSION : u32 = 1u32"), "{code}");
    }
}
