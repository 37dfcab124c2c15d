//! Small validated values: skills and levels, languages, priority, location, capacity, money.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::text::string_newtype;
use crate::schema::{self, schema};

string_newtype!(
    /// A skill name: `[a-z0-9_]{1,32}`.
    Skill,
    |v| {
        let ok = !v.is_empty()
            && v.len() <= 32
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(format!("{v:?} is not a skill name: 1 to 32 characters of a-z 0-9 _"))
        }
    },
    schema::pattern("A skill's name.", "^[a-z0-9_]{1,32}$", 32)
);

/// The ISO 639-1 two-letter language codes.
const ISO_639_1: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co \
cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr \
ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg \
li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi \
pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl \
tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

string_newtype!(
    /// A language: a lowercase ISO 639-1 code such as `sv`, `en`, `de`.
    Language,
    |v| {
        if v.len() == 2 && ISO_639_1.split(' ').any(|code| code == v) {
            Ok(())
        } else {
            Err(format!("{v:?} is not a lowercase ISO 639-1 language code"))
        }
    },
    schema::codes("A language: a lowercase ISO 639-1 code.", ISO_639_1)
);

/// The ISO 4217 currency codes in use.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB \
BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD \
EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD \
JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR \
MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR \
SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX \
USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU \
XTS XUA XXX YER ZAR ZMW ZWG ZWL";

string_newtype!(
    /// A currency: an ISO 4217 code such as `EUR`.
    Currency,
    |v| {
        if v.len() == 3 && ISO_4217.split(' ').any(|code| code == v) {
            Ok(())
        } else {
            Err(format!("{v:?} is not an ISO 4217 currency code"))
        }
    },
    schema::codes("An ISO 4217 currency code.", ISO_4217)
);

/// Declares an integer newtype bounded to `min..=max`, parsed from any JSON integer.
macro_rules! bounded_int {
    ($(#[$meta:meta])* $name:ident, $repr:ty, $min:expr, $max:expr, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name($repr);

        impl $name {
            /// The smallest accepted value.
            pub const MIN: $repr = $min;
            /// The largest accepted value.
            pub const MAX: $repr = $max;

            /// The value as a plain integer.
            pub fn get(self) -> $repr {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                if (i64::from($min)..=i64::from($max)).contains(&value) {
                    // The range check above proves the cast is lossless.
                    Ok(Self(value as $repr))
                } else {
                    Err(format!("{value} is out of range {}..={}", $min, $max))
                }
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                i64::from(value.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        schema!(
            $name,
            schema::integer($what, i64::from($min), i64::from($max))
        );
    };
}

bounded_int!(
    /// A skill level, 1 (novice) to 5 (expert).
    Level,
    u8,
    1,
    5,
    "A skill level, 1 (novice) to 5 (expert)."
);
bounded_int!(
    /// A ticket's priority, 0 to 9; higher is served first.
    Priority,
    u8,
    0,
    9,
    "0 to 9; higher is served first."
);
bounded_int!(
    /// How many tickets an agent may hold at once, 1 to 10.
    MaxConcurrent,
    u8,
    1,
    10,
    "Tickets an agent may hold at once, 1 to 10."
);
bounded_int!(
    /// Pay per hour in the currency's minor unit (cents); never negative.
    RateCents,
    u32,
    0,
    100_000_000,
    "Pay per hour in the currency's minor unit (cents)."
);

impl Default for Priority {
    fn default() -> Self {
        Self(5)
    }
}

/// Skills with levels: an agent's abilities, or a ticket's minimum requirements; at most
/// [`Skills::MAX`] of them (API.md §3, §4), so matching never parses a long list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<Skill, Level>")]
pub struct Skills(BTreeMap<Skill, Level>);

impl TryFrom<BTreeMap<Skill, Level>> for Skills {
    type Error = String;
    fn try_from(map: BTreeMap<Skill, Level>) -> Result<Self, Self::Error> {
        if map.len() > Self::MAX {
            return Err(format!(
                "{} skills given, at most {} allowed",
                map.len(),
                Self::MAX
            ));
        }
        Ok(Self(map))
    }
}

impl Skills {
    /// The most skills a profile or a ticket may name.
    pub const MAX: usize = 25;

    /// No skills.
    pub fn new() -> Self {
        Self::default()
    }

    /// The skills and their levels, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Skill, &Level)> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

schema!(
    Skills,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .description(Some(
            "Skills by name, each with a level from 1 to 5 (at most 25)."
        ))
        .property_names(Some(schema::pattern(
            "A skill's name.",
            "^[a-z0-9_]{1,32}$",
            32
        )))
        .additional_properties(Some(<Level as utoipa::PartialSchema>::schema()))
        .max_properties(Some(Skills::MAX))
);

/// A WGS84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLocation")]
pub struct Location {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawLocation> for Location {
    type Error = String;
    fn try_from(raw: RawLocation) -> Result<Self, Self::Error> {
        Location::new(raw.lat, raw.lon)
    }
}

impl Location {
    /// A location, if `lat` is within −90..90 and `lon` within −180..180.
    pub fn new(lat: f64, lon: f64) -> Result<Self, String> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(format!("lat {lat} is out of range -90..90"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(format!("lon {lon} is out of range -180..180"));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees.
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lon(self) -> f64 {
        self.lon
    }
}

schema!(
    Location,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .description(Some("A WGS84 position."))
        .property("lat", schema::number("Latitude in degrees.", -90.0, 90.0))
        .property(
            "lon",
            schema::number("Longitude in degrees.", -180.0, 180.0)
        )
        .required("lat")
        .required("lon")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false)
        ))
);

/// An IANA time zone such as `Europe/Stockholm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// The chrono-tz zone.
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| format!("{value:?} is not an IANA time zone name"))
    }
}

schema!(
    TimeZone,
    schema::pattern(
        "An IANA time zone name such as Europe/Stockholm.",
        "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
        64
    )
);

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> String {
        value.0.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_and_levels_are_bounded() {
        assert!(Skill::try_from("refunds").is_ok());
        assert!(Skill::try_from("Refunds").is_err());
        assert!(Skill::try_from("x".repeat(33)).is_err());
        assert!(Level::try_from(0).is_err());
        assert!(Level::try_from(1).is_ok());
        assert!(Level::try_from(5).is_ok());
        assert!(Level::try_from(6).is_err());
        let skills: Skills = serde_json::from_str(r#"{"refunds": 4}"#).expect("valid skills");
        assert_eq!(skills.len(), 1);
        assert!(serde_json::from_str::<Skills>(r#"{"refunds": 9}"#).is_err());
        assert!(serde_json::from_str::<Skills>(r#"{"Refunds": 1}"#).is_err());
        let many = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"s{i}\": 1")).collect();
            format!("{{{}}}", entries.join(","))
        };
        assert_eq!(
            serde_json::from_str::<Skills>(&many(25))
                .map(|s| s.len())
                .ok(),
            Some(25)
        );
        let e = serde_json::from_str::<Skills>(&many(26)).expect_err("26 skills");
        assert!(e.to_string().contains("at most 25"), "{e}");
    }

    #[test]
    fn languages_and_currencies_are_real_codes() {
        assert!(Language::try_from("sv").is_ok());
        assert!(Language::try_from("SV").is_err());
        assert!(Language::try_from("xx").is_err());
        assert!(Language::try_from("swe").is_err());
        assert!(Currency::try_from("EUR").is_ok());
        assert!(Currency::try_from("eur").is_err());
        assert!(Currency::try_from("ABC").is_err());
    }

    #[test]
    fn priority_defaults_to_five_and_is_bounded() {
        assert_eq!(Priority::default().get(), 5);
        assert!(Priority::try_from(10).is_err());
        assert!(Priority::try_from(-1).is_err());
        assert!(MaxConcurrent::try_from(11).is_err());
        assert!(RateCents::try_from(-1).is_err());
    }

    #[test]
    fn locations_and_zones_are_checked() {
        assert!(Location::new(63.8, 20.2).is_ok());
        assert!(Location::new(91.0, 0.0).is_err());
        assert!(Location::new(0.0, -181.0).is_err());
        assert!(serde_json::from_str::<Location>(r#"{"lat": 1, "lon": 2}"#).is_ok());
        assert!(serde_json::from_str::<Location>(r#"{"lat": 100, "lon": 2}"#).is_err());
        assert!(TimeZone::try_from("Europe/Stockholm".to_owned()).is_ok());
        assert!(TimeZone::try_from("Mars/Olympus".to_owned()).is_err());
    }
}
