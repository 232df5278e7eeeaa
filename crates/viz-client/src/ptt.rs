//! Push to talk on a key that works while another window (the game) has focus
//! (`--ptt KEY`): the microphone is open while the key is held and for a short tail
//! after, so the last word is not cut.
//!
//! The key's state is *read*, every 10 ms, not grabbed: on X11 with `XQueryKeymap`
//! (libX11 opened at run time, so viz needs no X libraries unless --ptt is used), on
//! Windows with `GetAsyncKeyState`. The game still gets the key, as with Discord's or
//! Mumble's push to talk. (Hotkey crates register the key instead, which takes it from
//! the game, and need a window event loop on Windows; reading costs about 0.01 % of a
//! core.) Wayland does not let one program see another's keys: there, the key works
//! only while an X11 (XWayland) window has focus; use `--vad` instead, or bind a
//! compositor shortcut to a key XWayland sees. macOS is not supported yet.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::join::UserCommand;

/// How long the microphone stays open after the key is let go.
pub const TAIL: Duration = Duration::from_millis(250);
/// How often the key is read.
const POLL: Duration = Duration::from_millis(10);

/// A key push to talk can use, by the name `--ptt` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PttKey {
    pub name: &'static str,
    /// Its X11 keysym name.
    x11: &'static str,
    /// Its Windows virtual-key code.
    #[cfg_attr(not(windows), allow(dead_code))]
    vk: u16,
}

const fn key(name: &'static str, x11: &'static str, vk: u16) -> PttKey {
    PttKey { name, x11, vk }
}

/// Keys that make sense for push to talk (names as `--ptt` takes them, any case).
/// Letters and digits are `A`..`Z` and `0`..`9`.
const KEYS: &[PttKey] = &[
    key("F1", "F1", 0x70),
    key("F2", "F2", 0x71),
    key("F3", "F3", 0x72),
    key("F4", "F4", 0x73),
    key("F5", "F5", 0x74),
    key("F6", "F6", 0x75),
    key("F7", "F7", 0x76),
    key("F8", "F8", 0x77),
    key("F9", "F9", 0x78),
    key("F10", "F10", 0x79),
    key("F11", "F11", 0x7A),
    key("F12", "F12", 0x7B),
    key("F13", "F13", 0x7C),
    key("F14", "F14", 0x7D),
    key("F15", "F15", 0x7E),
    key("F16", "F16", 0x7F),
    key("Space", "space", 0x20),
    key("CapsLock", "Caps_Lock", 0x14),
    key("ScrollLock", "Scroll_Lock", 0x91),
    key("Pause", "Pause", 0x13),
    key("Insert", "Insert", 0x2D),
    key("Home", "Home", 0x24),
    key("End", "End", 0x23),
    key("PageUp", "Prior", 0x21),
    key("PageDown", "Next", 0x22),
    key("LeftCtrl", "Control_L", 0xA2),
    key("RightCtrl", "Control_R", 0xA3),
    key("LeftShift", "Shift_L", 0xA0),
    key("RightShift", "Shift_R", 0xA1),
    key("LeftAlt", "Alt_L", 0xA4),
    key("RightAlt", "Alt_R", 0xA5),
    key("Backquote", "grave", 0xC0),
];

const LETTERS: [&str; 26] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W",
    "X", "Y", "Z",
];
const LOWER: [&str; 26] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w",
    "x", "y", "z",
];
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

impl std::str::FromStr for PttKey {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if let Some(k) = KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(name)) {
            return Ok(*k);
        }
        if let Some(i) = LETTERS.iter().position(|l| l.eq_ignore_ascii_case(name)) {
            return Ok(key(LETTERS[i], LOWER[i], b'A' as u16 + i as u16));
        }
        if let Some(i) = DIGITS.iter().position(|d| *d == name) {
            return Ok(key(DIGITS[i], DIGITS[i], b'0' as u16 + i as u16));
        }
        let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        Err(format!("no key called '{name}' for push to talk; use A-Z, 0-9 or one of {}", names.join(", ")))
    }
}

/// Starts reading `key`: `PushToTalk(true)` is sent when it goes down and
/// `PushToTalk(false)` [`TAIL`] after it comes up. Fails at once (before any call)
/// when the key cannot be read here.
pub fn spawn(key: PttKey, commands: mpsc::Sender<UserCommand>) -> Result<(), String> {
    let mut reader = platform::Reader::open(key)?;
    std::thread::Builder::new()
        .name("viz-ptt".into())
        .spawn(move || {
            let mut open = false;
            let mut released_at: Option<Instant> = None;
            let mut next = Instant::now();
            loop {
                next += POLL;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                let now = Instant::now();
                let send = match (reader.is_down(), open) {
                    (true, false) => Some(true),
                    (true, true) => {
                        released_at = None;
                        None
                    }
                    (false, true) if now.duration_since(*released_at.get_or_insert(now)) >= TAIL => Some(false),
                    (false, _) => None,
                };
                if let Some(down) = send {
                    open = down;
                    released_at = None;
                    if commands.blocking_send(UserCommand::PushToTalk(down)).is_err() {
                        return; // the call is over
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the push-to-talk thread: {e}"))?;
    Ok(())
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use std::ffi::CString;

    use x11_dl::xlib::{Display, Xlib};

    use super::PttKey;

    pub struct Reader {
        xlib: Xlib,
        display: *mut Display,
        keycode: u8,
    }

    // SAFETY: the display connection is used by this reader's thread only (it moves
    // there once, after opening) and closed when it is dropped.
    unsafe impl Send for Reader {}

    impl Reader {
        pub fn open(key: PttKey) -> Result<Self, String> {
            let xlib = Xlib::open().map_err(|e| {
                format!("push to talk needs libX11 (an X11 or XWayland desktop): {e}; use --vad instead")
            })?;
            if std::env::var_os("DISPLAY").is_none() {
                return Err("push to talk reads the key from the X server, and DISPLAY is not set (no X11 \
                            desktop here; on Wayland, only XWayland windows' keys can be read); use --vad instead"
                    .into());
            }
            // SAFETY: a null name opens the display DISPLAY names.
            let display = unsafe { (xlib.XOpenDisplay)(std::ptr::null()) };
            if display.is_null() {
                return Err("push to talk cannot open the X display (DISPLAY is set but refused us)".into());
            }
            let name = CString::new(key.x11).map_err(|e| e.to_string())?;
            // SAFETY: a valid display and a NUL-terminated keysym name.
            let keycode = unsafe {
                let sym = (xlib.XStringToKeysym)(name.as_ptr());
                (xlib.XKeysymToKeycode)(display, sym)
            };
            if keycode == 0 {
                // SAFETY: opened above, closed once.
                unsafe { (xlib.XCloseDisplay)(display) };
                return Err(format!("this keyboard has no {} key for push to talk", key.name));
            }
            Ok(Self { xlib, display, keycode })
        }

        pub fn is_down(&mut self) -> bool {
            let mut keys = [0 as std::os::raw::c_char; 32];
            // SAFETY: a valid display and a 32-byte key vector, as XQueryKeymap wants.
            unsafe { (self.xlib.XQueryKeymap)(self.display, keys.as_mut_ptr()) };
            let byte = keys[usize::from(self.keycode / 8)] as u8;
            byte & (1 << (self.keycode % 8)) != 0
        }
    }

    impl Drop for Reader {
        fn drop(&mut self) {
            // SAFETY: opened in `open`, closed once.
            unsafe { (self.xlib.XCloseDisplay)(self.display) };
        }
    }
}

#[cfg(windows)]
mod platform {
    use windows_sys::Win32::UI::Input::KeyboardAndMouse::GetAsyncKeyState;

    use super::PttKey;

    pub struct Reader {
        vk: i32,
    }

    impl Reader {
        pub fn open(key: PttKey) -> Result<Self, String> {
            Ok(Self { vk: i32::from(key.vk) })
        }

        pub fn is_down(&mut self) -> bool {
            // SAFETY: reads the key's state; any virtual-key code is allowed.
            (unsafe { GetAsyncKeyState(self.vk) } as u16) & 0x8000 != 0
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::PttKey;

    pub struct Reader;

    impl Reader {
        pub fn open(_key: PttKey) -> Result<Self, String> {
            Err("push to talk with a global key is not supported on macOS yet; use --vad".into())
        }

        pub fn is_down(&mut self) -> bool {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_read_in_any_case_and_mistakes_list_the_names() {
        let f9: PttKey = "f9".parse().unwrap();
        assert_eq!((f9.name, f9.x11, f9.vk), ("F9", "F9", 0x78));
        let v: PttKey = "v".parse().unwrap();
        assert_eq!((v.name, v.x11, v.vk), ("V", "v", 0x56));
        let caps: PttKey = "capslock".parse().unwrap();
        assert_eq!(caps.x11, "Caps_Lock");
        assert_eq!("7".parse::<PttKey>().unwrap().vk, 0x37);
        let err = "Hyper".parse::<PttKey>().unwrap_err();
        assert!(err.contains("'Hyper'") && err.contains("ScrollLock"), "{err}");
    }
}
