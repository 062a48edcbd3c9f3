//! Enums written as fixed strings, with one variant that keeps any other string as it came (a name
//! from a newer tuna, a reason given from outside): one list of variants and their strings gives
//! the enum, `as_str`, every named variant (`NAMED`), parsing from a string, serde and `Display`,
//! so a new variant cannot be written one way and read back as the catch-all.

/// `wire_strings! { /// doc  pub enum Name { /// doc  Variant => "text", … ; /// doc  Other } }`
#[macro_export]
macro_rules! wire_strings {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)*
            ;
            $(#[$ometa:meta])* $other:ident
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            $(#[$ometa])* $other(String),
        }

        impl $name {
            /// Every variant with a fixed string.
            pub const NAMED: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::$other(text) => text,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::NAMED.iter().find(|v| v.as_str() == text).cloned().unwrap_or_else(|| $name::$other(text.into()))
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name::from(text.as_str())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.as_str().to_string()
            }
        }
    };
}
