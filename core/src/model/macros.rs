//! Declarative helpers for the two shapes App Mesh uses everywhere.
//!
//! * `str_enum!` — a closed set of exact strings (`"http"`, `"LOADBALANCER"`, …). Parsing an
//!   unknown value fails with `must be one of a, b, c, got "x"`.
//! * `union!` — a BOTO `"union": true` shape: an object with exactly one member key. serde's
//!   externally tagged enums already have the right JSON shape, but their errors for zero or two
//!   keys are unhelpful ("expected value"), so deserialization is hand-written here and says
//!   `exactly one of http, http2, grpc, tcp must be set, found http, tcp`.

/// Defines a string enum with `as_str`, `ALL`, `Display`, `FromStr` and serde impls that use the
/// exact App Mesh strings.
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted value, in the order App Mesh documents them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The exact string App Mesh uses for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The accepted strings joined with `", "`, for error messages.
            pub fn allowed() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::InvalidValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::model::InvalidValue(format!(
                        "must be one of {}, got \"{}\"",
                        Self::allowed(),
                        other
                    ))),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Defines a one-key union: an enum of newtype variants, each named by its exact JSON key.
/// Serializes as `{"<key>": <value>}`; deserializing rejects zero keys, two keys and unknown
/// keys with messages that list the allowed keys.
macro_rules! union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) = $key:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $key)] $variant($ty), )+
        }

        impl $name {
            /// The member keys of this union; exactly one of them is set.
            pub const KEYS: &'static [&'static str] = &[$($key),+];

            /// The member key that is set.
            pub fn key(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => $key,)+
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct UnionVisitor;

                impl<'de> serde::de::Visitor<'de> for UnionVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "an object with exactly one of {}", $name::KEYS.join(", "))
                    }

                    fn visit_map<A>(self, mut map: A) -> Result<$name, A::Error>
                    where
                        A: serde::de::MapAccess<'de>,
                    {
                        let mut found: Vec<String> = Vec::new();
                        let mut value: Option<$name> = None;
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $($key => {
                                    if value.is_none() {
                                        value = Some($name::$variant(map.next_value()?));
                                    } else {
                                        map.next_value::<serde::de::IgnoredAny>()?;
                                    }
                                })+
                                _ => {
                                    // Fail inside the value so that the error path names the key.
                                    let message =
                                        $crate::model::macros::unknown_key(&key, $name::KEYS);
                                    map.next_value_seed($crate::model::macros::Fail(message))?;
                                    continue;
                                }
                            }
                            found.push(key);
                        }
                        match value {
                            Some(v) if found.len() == 1 => Ok(v),
                            _ => Err(serde::de::Error::custom(
                                $crate::model::macros::not_one(&found, $name::KEYS),
                            )),
                        }
                    }
                }

                d.deserialize_map(UnionVisitor)
            }
        }
    };
}

pub(crate) use str_enum;
pub(crate) use union;

/// Message for a key that is not a member of a union.
pub(crate) fn unknown_key(key: &str, keys: &[&str]) -> String {
    format!(
        "unknown field \"{key}\", expected one of {}",
        keys.join(", ")
    )
}

/// Message for a union with zero or several keys.
pub(crate) fn not_one(found: &[String], keys: &[&str]) -> String {
    let found = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    };
    format!(
        "exactly one of {} must be set, found {found}",
        keys.join(", ")
    )
}

/// A `DeserializeSeed` that always fails with the given message, used to attach an error to a
/// map value so that the reported path ends in the offending key.
pub(crate) struct Fail(pub(crate) String);

impl<'de> serde::de::DeserializeSeed<'de> for Fail {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, _d: D) -> Result<(), D::Error> {
        Err(serde::de::Error::custom(self.0))
    }
}
