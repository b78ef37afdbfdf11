//! `#[derive(FromRow)]` for `dqlite-client` (use it through `dqlite-client`'s `derive`
//! feature: `dqlite_client::FromRow`).
//!
//! ```
//! use std::sync::Arc;
//! use dqlite_client::{FromRow, Row, Value};
//!
//! #[derive(Debug, PartialEq, FromRow)]
//! struct User {
//!     id: i64,
//!     #[dqlite(rename = "user_name")]
//!     name: String,
//!     #[dqlite(default)] // a column the query may not return
//!     karma: Option<i64>,
//! }
//!
//! // What `db.query_as::<User>("SELECT id, user_name FROM users", ())` does with each row.
//! let columns: Arc<[String]> = Arc::from(["id".to_string(), "user_name".to_string()]);
//! let row = Row::new(columns, vec![Value::Integer(7), Value::Text("ada".into())]);
//! let user = User::from_row(&row)?;
//! assert_eq!(user, User { id: 7, name: "ada".into(), karma: None });
//! # Ok::<(), dqlite_client::Error>(())
//! ```
//!
//! Each field is read with `Row::get::<FieldType>("column")`, the column named like the
//! field (or its `rename`); a `default` field whose column the row lacks gets
//! `Default::default()`. Only structs with named fields can derive it.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// A struct from a `dqlite_client::Row`, each field from the column of its name. Field
/// attributes: `#[dqlite(rename = "column")]`, `#[dqlite(default)]`.
#[proc_macro_derive(FromRow, attributes(dqlite))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What a field's `#[dqlite(...)]` attributes say.
struct FieldOptions {
    column: String,
    default: bool,
}

fn field_options(field: &syn::Field) -> syn::Result<FieldOptions> {
    let ident = field
        .ident
        .as_ref()
        .ok_or_else(|| syn::Error::new(Span::call_site(), "FromRow needs named fields"))?;
    let name = ident.to_string();
    let mut options = FieldOptions {
        column: name.strip_prefix("r#").unwrap_or(&name).to_owned(),
        default: false,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("dqlite")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let column: LitStr = meta.value()?.parse()?;
                options.column = column.value();
                Ok(())
            } else if meta.path.is_ident("default") {
                options.default = true;
                Ok(())
            } else {
                Err(meta.error("expected `rename = \"column\"` or `default`"))
            }
        })?;
    }
    Ok(options)
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "FromRow can be derived for structs only",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "FromRow needs a struct with named fields",
        ));
    };
    let mut inits = Vec::new();
    for field in &fields.named {
        let options = field_options(field)?;
        let ident = &field.ident;
        let ty = &field.ty;
        let column = &options.column;
        inits.push(if options.default {
            quote! {
                #ident: if row.columns().iter().any(|c| c == #column) {
                    row.get::<#ty>(#column)?
                } else {
                    ::core::default::Default::default()
                }
            }
        } else {
            quote! { #ident: row.get::<#ty>(#column)? }
        });
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::dqlite_client::FromRow for #name #ty_generics #where_clause {
            fn from_row(row: &::dqlite_client::Row) -> ::dqlite_client::Result<Self> {
                ::core::result::Result::Ok(#name { #(#inits),* })
            }
        }
    })
}
