//! The rules for nicknames, room names and message texts.
//!
//! What a screen shows must not be forgeable. `X: text` must always mean
//! that X said it, so a nickname holds no `:` and no white space, and no
//! invisible character (zero-width space or joiner, soft hyphen,
//! bidirectional controls) with which it could pass for another. Uniqueness
//! ignores case (Unicode case folding) and look-alike characters (the
//! Unicode confusable skeleton of UTS #39): `Joshua`, `joshua` and `Jоshua`
//! with a Cyrillic `о` are one nickname. Texts carry no control character
//! but tab and no bidirectional override, which could rewrite other users'
//! terminals or reverse what they read.

use unicode_security::GeneralSecurityProfile;

use super::{NICK_CHARS_MAX, ROOM_CHARS_MAX};

/// Punctuation a nickname may hold besides letters and digits (those of
/// IRC nicknames, without anything that reads as a separator).
const NICK_PUNCTUATION: &str = "-_.'`^|[]{}";

/// Punctuation a room name may hold besides letters and digits.
const ROOM_PUNCTUATION: &str = "-_.#+&";

/// Why a nickname, room name or message text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but white space.
    #[error("{what} is empty")]
    Empty {
        /// "nickname", "room name" or "message".
        what: &'static str,
    },
    /// Too long.
    #[error("{what} is too long ({length} {unit}; the limit is {limit})")]
    TooLong {
        /// "nickname", "room name" or "message".
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
        /// "characters" or "bytes".
        unit: &'static str,
    },
    /// Contains a character it may not hold.
    #[error("{what} contains {problem}")]
    Forbidden {
        /// "nickname", "room name" or "message".
        what: &'static str,
        /// What it contains, for example "the character ':' (U+003A)".
        problem: String,
    },
}

/// A character named for a person: visible ones quoted, the others by code
/// point only.
fn describe(character: char) -> String {
    let code = format!("U+{:04X}", u32::from(character));
    if character.is_whitespace() {
        format!("white space ({code})")
    } else if character.is_control() || !character.identifier_allowed() && is_invisible(character) {
        format!("an invisible or control character ({code})")
    } else {
        format!("the character '{character}' ({code})")
    }
}

/// Characters that draw nothing (or change how the rest is drawn).
fn is_invisible(character: char) -> bool {
    matches!(u32::from(character),
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

fn validate_name(
    what: &'static str,
    name: &str,
    chars_max: usize,
    punctuation: &str,
) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty { what });
    }
    let length = name.chars().count();
    if length > chars_max {
        return Err(NameError::TooLong {
            what,
            length,
            limit: chars_max,
            unit: "characters",
        });
    }
    // UTS #39 allows `:` in identifiers; here it would let `X: text` lie.
    let forbidden = name
        .chars()
        .find(|c| *c == ':' || !(c.identifier_allowed() || punctuation.contains(*c)));
    match forbidden {
        Some(character) => Err(NameError::Forbidden {
            what,
            problem: describe(character),
        }),
        None => Ok(()),
    }
}

/// A nickname: 1 to [`NICK_CHARS_MAX`] characters, each a letter or digit
/// that Unicode allows in identifiers (UTS #39), or one of `-_.'`^|[]{}`.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    validate_name("nickname", nick, NICK_CHARS_MAX, NICK_PUNCTUATION)
}

/// A room name: 1 to [`ROOM_CHARS_MAX`] characters, letters and digits as
/// for nicknames, or one of `-_.#+&`.
pub fn validate_room(room: &str) -> Result<(), NameError> {
    validate_name("room name", room, ROOM_CHARS_MAX, ROOM_PUNCTUATION)
}

/// Characters a text may not hold: controls (but tab), line and paragraph
/// separators, and the bidirectional embeddings, overrides and isolates.
fn forbidden_in_text(character: char) -> bool {
    (character.is_control() && character != '\t')
        || matches!(u32::from(character), 0x2028 | 0x2029 | 0x202A..=0x202E | 0x2066..=0x2069)
}

/// A message text: not blank, at most `text_bytes_max` bytes of UTF-8, and
/// none of the characters that could rewrite or reorder other users'
/// screens (see the module docs).
pub fn validate_text(text: &str, text_bytes_max: usize) -> Result<(), NameError> {
    let what = "message";
    if text.trim().is_empty() {
        return Err(NameError::Empty { what });
    }
    if text.len() > text_bytes_max {
        return Err(NameError::TooLong {
            what,
            length: text.len(),
            limit: text_bytes_max,
            unit: "bytes",
        });
    }
    match text.chars().find(|c| forbidden_in_text(*c)) {
        Some(character) => Err(NameError::Forbidden {
            what,
            problem: describe(character),
        }),
        None => Ok(()),
    }
}

/// The keys under which a name is unique: two names clash when any key of
/// one equals the key of the same kind of the other. Case folding alone,
/// the confusable skeleton alone, and the skeleton of the folded name: no
/// single key catches both `Ian`/`ian` (case) and `Ian`/`lan` (capital I
/// looks like small L), since the skeleton maps `I` to `l` but not `i`.
pub fn name_key(name: &str) -> [String; 3] {
    let folded = caseless::default_case_fold_str(name);
    let skeleton: String = unicode_security::skeleton(name).collect();
    let folded_skeleton: String = unicode_security::skeleton(&folded).collect();
    [
        format!("case:{folded}"),
        format!("look:{skeleton}"),
        format!("both:{folded_skeleton}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clash(one: &str, other: &str) -> bool {
        let (one, other) = (name_key(one), name_key(other));
        one.iter().zip(&other).any(|(a, b)| a == b)
    }

    #[test]
    fn nicknames_follow_the_rules() {
        assert!(validate_nick("John").is_ok());
        assert!(validate_nick("Jöhn李").is_ok());
        assert!(validate_nick("[away]_bob-2").is_ok());
        assert_eq!(
            validate_nick("  "),
            Err(NameError::Empty { what: "nickname" })
        );
        assert!(validate_nick(&"x".repeat(NICK_CHARS_MAX)).is_ok());
        assert_eq!(
            validate_nick(&"x".repeat(40)).map_err(|e| e.to_string()),
            Err("nickname is too long (40 characters; the limit is 32)".to_string())
        );
        assert_eq!(
            validate_nick("Jo: hi").map_err(|e| e.to_string()),
            Err("nickname contains the character ':' (U+003A)".to_string())
        );
        assert_eq!(
            validate_nick("Jo hn").map_err(|e| e.to_string()),
            Err("nickname contains white space (U+0020)".to_string())
        );
        assert!(validate_nick("a\u{1b}b").is_err());
    }

    #[test]
    fn invisible_characters_are_refused_in_names() {
        for invisible in [
            '\u{200B}', '\u{200D}', '\u{2060}', '\u{00AD}', '\u{2066}', '\u{FEFF}',
        ] {
            let nick = format!("Jo{invisible}hn");
            let error = validate_nick(&nick).expect_err("invisible character");
            assert!(
                error.to_string().contains("invisible"),
                "{invisible:?}: {error}"
            );
        }
    }

    #[test]
    fn uniqueness_ignores_case_and_look_alikes() {
        assert!(clash("Joshua", "joshua"));
        assert!(clash("Joshua", "JOSHUA"));
        assert!(clash("Joshua", "J\u{043E}shua"), "Cyrillic o");
        assert!(clash("Ian", "lan"), "capital I looks like small L");
        assert!(clash("Ian", "ian"));
        assert!(clash("Straße", "STRASSE"), "full case folding");
        assert!(!clash("Joshua", "John"));
        assert!(!clash("ann", "anne"));
    }

    #[test]
    fn texts_may_not_rewrite_or_reorder_screens() {
        assert!(validate_text("tab\tis fine, ünïcödé too", 100).is_ok());
        assert!(validate_text("bell\u{7}", 100).is_err());
        assert!(
            validate_text("abc\u{202E}fed", 100).is_err(),
            "right-to-left override"
        );
        assert!(
            validate_text("one\u{2028}two", 100).is_err(),
            "line separator"
        );
        assert!(matches!(
            validate_text("ééé", 5),
            Err(NameError::TooLong { length: 6, .. })
        ));
        assert!(validate_text("   ", 100).is_err());
    }

    #[test]
    fn room_names_follow_their_rules() {
        assert!(validate_room("lobby").is_ok());
        assert!(validate_room("#rust-dev").is_ok());
        assert!(validate_room("two words").is_err());
        assert!(validate_room("").is_err());
    }
}
