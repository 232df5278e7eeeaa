//! The browser participant's control messages (JSON in WebSocket text frames). Its
//! media travels in binary frames in the native media payload format ([`crate::payload`]),
//! so one fuzzed parser serves both kinds of client.
//!
//! ```text
//! page → room  {"type":"hello","name":"Ann","identity":"<random secret>","sends":true,
//!               "receives":true,"echo":false,"password":null}
//!              {"type":"mute","muted":true}      {"type":"report","loss":0.01}
//!              {"type":"volume","id":102,"percent":40}   (how loud I hear 102, for me only)
//! room → page  {"type":"welcome","room":"viz","you":101,"frame_ms":20,"bitrate":32000,"echo":false}
//!              {"type":"roster","entries":[{"id":101,"name":"Ann","kind":"browser",...}]}
//!              {"type":"left","id":101,"reason":"left"}   {"type":"talking","ids":[101]}
//!              {"type":"levels","levels":[[101,62]]}   (dBFS + 100, while people talk)
//!              {"type":"bye","reason":"wrong password","reconnect":false}
//! ```

use serde::{Deserialize, Serialize};

/// Longest JSON text message a browser may send (a hello with name and password).
pub const MAX_BROWSER_TEXT: usize = 4096;

/// A browser's control message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BrowserIn {
    /// First message: who joins and how. `identity` is a random secret the page keeps
    /// in local storage, so settings an admin made survive reloads.
    Hello {
        #[serde(default)]
        name: String,
        identity: String,
        #[serde(default = "yes")]
        sends: bool,
        #[serde(default = "yes")]
        receives: bool,
        #[serde(default)]
        echo: bool,
        #[serde(default)]
        password: Option<String>,
    },
    /// The user's own mute, and whether they hear nothing either.
    Mute {
        muted: bool,
        #[serde(default)]
        deafened: bool,
    },
    /// What the page measures of the audio it receives, once a second.
    Report { loss: f32 },
    /// How loud this page hears participant `id`, for itself only (0..=200 %).
    Volume { id: u32, percent: u16 },
}

fn yes() -> bool {
    true
}

impl BrowserIn {
    /// Parses one text frame; never panics, refuses oversized input.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_BROWSER_TEXT {
            return Err(format!("control message longer than {MAX_BROWSER_TEXT} bytes"));
        }
        serde_json::from_str(text).map_err(|e| format!("bad control message: {e}"))
    }
}

/// A roster line as the browser sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrowserRosterEntry {
    pub id: u32,
    pub name: String,
    /// The identity's fingerprint (compact), under which the page remembers how loud
    /// it hears this person.
    pub key: String,
    pub kind: &'static str,
    pub you: bool,
    pub self_muted: bool,
    pub deafened: bool,
    pub admin_muted: bool,
    pub gain_percent: u16,
    pub sends: bool,
    pub receives: bool,
}

/// The room's control messages to a browser.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrowserOut {
    Welcome {
        room: String,
        you: u32,
        frame_ms: u32,
        bitrate: u32,
        echo: bool,
    },
    /// New or changed entries (the first one after Welcome is the whole roster).
    Roster {
        entries: Vec<BrowserRosterEntry>,
    },
    Left {
        id: u32,
        reason: String,
    },
    Talking {
        ids: Vec<u32>,
    },
    /// Everyone audible now, as [id, dBFS + 100].
    Levels {
        levels: Vec<(u32, u8)>,
    },
    /// The session is over; `reconnect` says whether trying again makes sense.
    Bye {
        reason: String,
        reconnect: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"{"type":"hello","name":"Ann","identity":"abc","sends":false,"password":"pw"}"#;

    #[test]
    fn hello_parses_with_defaults() {
        let m = BrowserIn::parse(HELLO).unwrap();
        assert_eq!(
            m,
            BrowserIn::Hello {
                name: "Ann".into(),
                identity: "abc".into(),
                sends: false,
                receives: true,
                echo: false,
                password: Some("pw".into()),
            }
        );
        assert_eq!(
            BrowserIn::parse(r#"{"type":"mute","muted":true}"#).unwrap(),
            BrowserIn::Mute { muted: true, deafened: false }
        );
        assert_eq!(
            BrowserIn::parse(r#"{"type":"volume","id":7,"percent":40}"#).unwrap(),
            BrowserIn::Volume { id: 7, percent: 40 }
        );
    }

    #[test]
    fn every_truncation_of_a_message_is_an_error_not_a_panic() {
        for n in 0..HELLO.len() {
            assert!(BrowserIn::parse(&HELLO[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn unknown_types_fields_and_oversized_messages_are_refused() {
        for bad in [
            r#"{"type":"launch"}"#,
            r#"{"type":"mute","muted":true,"extra":1}"#,
            r#"{"type":"mute","muted":"yes"}"#,
            r#"{"type":"hello"}"#,
            r#"[1,2,3]"#,
            "",
        ] {
            assert!(BrowserIn::parse(bad).is_err(), "{bad} parsed");
        }
        let long = format!(r#"{{"type":"hello","identity":"a","name":"{}"}}"#, "x".repeat(MAX_BROWSER_TEXT));
        assert!(BrowserIn::parse(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn room_messages_serialise_with_their_type_tag() {
        let m = BrowserOut::Bye { reason: "kicked".into(), reconnect: false };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"type":"bye","reason":"kicked","reconnect":false}"#);
        let m = BrowserOut::Levels { levels: vec![(101, 62)] };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"type":"levels","levels":[[101,62]]}"#);
    }
}
