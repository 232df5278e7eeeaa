//! Push to talk on a key that works while another window (the game) has focus
//! (`--ptt KEY`): the microphone is open while the key is held and for a short tail
//! after, so the last word is not cut.
//!
//! The key is *watched*, not grabbed, so the game still gets it, as with Discord's or
//! Mumble's push to talk. (Hotkey crates register the key instead, which takes it from
//! the game, and need a window event loop on Windows.) On X11 the X server sends raw
//! key events (XInput 2, which reports every key whichever window has focus): the
//! thread sleeps until the key moves, which costs nothing measurable. Where XInput 2
//! is missing, the key's state is read every 10 ms with `XQueryKeymap` instead (0.75 %
//! of a core on this machine's Xvfb: a round trip to the server each time). libX11
//! and libXi are opened at run time, so viz needs no X libraries unless --ptt is used.
//! On Windows `GetAsyncKeyState` is read every 10 ms (no round trip). Wayland does not
//! let one program see another's keys: there, the key works only while an X11
//! (XWayland) window has focus; use `--vad` instead, or bind a compositor shortcut to
//! a key XWayland sees. macOS is not supported yet.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::join::UserCommand;

/// How long the microphone stays open after the key is let go.
pub const TAIL: Duration = Duration::from_millis(250);
/// How often the key is read where it cannot be watched.
const POLL: Duration = Duration::from_millis(10);
/// How long the thread sleeps at most while nothing happens, to notice that the call
/// is over.
const IDLE: Duration = Duration::from_secs(1);

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
            let mut timeout = Duration::ZERO;
            while !commands.is_closed() {
                let down = reader.wait(timeout);
                let now = Instant::now();
                let send = match (down, open) {
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
                // Wake for the end of the tail, or for the key.
                timeout = released_at.map_or(IDLE, |at| TAIL.saturating_sub(now.duration_since(at)));
            }
        })
        .map_err(|e| format!("cannot start the push-to-talk thread: {e}"))?;
    Ok(())
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use std::ffi::CString;
    use std::os::raw::{c_int, c_uchar};
    use std::time::{Duration, Instant};

    use x11_dl::xinput2::{self, XInput2};
    use x11_dl::xlib::{self, Display, Xlib};

    use super::{POLL, PttKey};

    pub struct Reader {
        xlib: Xlib,
        display: *mut Display,
        keycode: u8,
        /// Raw key events from XInput 2, with the extension's opcode; `None` where the
        /// server or the machine lacks it, and the key is read every [`POLL`] instead.
        events: Option<(XInput2, c_int)>,
        down: bool,
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
            let mut reader = Self { xlib, display, keycode, events: None, down: false };
            if keycode == 0 {
                return Err(format!("this keyboard has no {} key for push to talk", key.name));
            }
            reader.events = reader.raw_key_events();
            if reader.events.is_none() {
                tracing::info!("XInput 2 is not available: the push-to-talk key is read every 10 ms");
            }
            reader.down = reader.query();
            Ok(reader)
        }

        /// Asks the server for raw key events of every keyboard (XInput 2.1 sends them
        /// to the root window whichever window has focus, grabs included).
        fn raw_key_events(&self) -> Option<(XInput2, c_int)> {
            let xi = XInput2::open().ok()?;
            let (mut opcode, mut event, mut error) = (0, 0, 0);
            let (mut major, mut minor) = (2, 1);
            let mut mask = [0 as c_uchar; 4];
            for bit in [xinput2::XI_RawKeyPress, xinput2::XI_RawKeyRelease] {
                mask[(bit / 8) as usize] |= 1 << (bit % 8);
            }
            let mut select = xinput2::XIEventMask {
                deviceid: xinput2::XIAllDevices,
                mask_len: mask.len() as c_int,
                mask: mask.as_mut_ptr(),
            };
            // SAFETY: a valid display; the name is NUL-terminated; the mask outlives the call.
            unsafe {
                let name = c"XInputExtension";
                if (self.xlib.XQueryExtension)(self.display, name.as_ptr(), &mut opcode, &mut event, &mut error) == 0
                    || (xi.XIQueryVersion)(self.display, &mut major, &mut minor) != 0
                    || (major, minor) < (2, 1)
                {
                    return None;
                }
                let root = (self.xlib.XDefaultRootWindow)(self.display);
                if (xi.XISelectEvents)(self.display, root, &mut select, 1) != 0 {
                    return None;
                }
                (self.xlib.XFlush)(self.display);
            }
            Some((xi, opcode))
        }

        /// The key's state as the server has it now (a round trip).
        fn query(&mut self) -> bool {
            let mut keys = [0 as std::os::raw::c_char; 32];
            // SAFETY: a valid display and a 32-byte key vector, as XQueryKeymap wants.
            unsafe { (self.xlib.XQueryKeymap)(self.display, keys.as_mut_ptr()) };
            let byte = keys[usize::from(self.keycode / 8)] as u8;
            byte & (1 << (self.keycode % 8)) != 0
        }

        /// Waits up to `timeout` for the key to move (returning early when it does) and
        /// says whether it is down.
        pub fn wait(&mut self, timeout: Duration) -> bool {
            let Some((_, opcode)) = self.events else {
                std::thread::sleep(timeout.min(POLL));
                return self.query();
            };
            let deadline = Instant::now() + timeout;
            loop {
                if self.take_events(opcode) {
                    return self.down;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return self.down;
                }
                // SAFETY: a valid display.
                let fd = unsafe { (self.xlib.XConnectionNumber)(self.display) };
                let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                let ms = c_int::try_from(left.as_millis().max(1)).unwrap_or(c_int::MAX);
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut poll, 1, ms) };
            }
        }

        /// Handles the events that have arrived; true when one was about the key.
        fn take_events(&mut self, opcode: c_int) -> bool {
            let mut about_the_key = false;
            // SAFETY: a valid display; an event's data is read only after XGetEventData
            // said it holds a raw event of XInput's, and freed once.
            unsafe {
                while (self.xlib.XPending)(self.display) > 0 {
                    let mut event: xlib::XEvent = std::mem::zeroed();
                    (self.xlib.XNextEvent)(self.display, &mut event);
                    let mut cookie = event.generic_event_cookie;
                    if cookie.type_ != xlib::GenericEvent
                        || cookie.extension != opcode
                        || (self.xlib.XGetEventData)(self.display, &mut cookie) == 0
                    {
                        continue;
                    }
                    let raw = &*(cookie.data as *const xinput2::XIRawEvent);
                    if raw.detail == c_int::from(self.keycode) {
                        match cookie.evtype {
                            xinput2::XI_RawKeyPress => (self.down, about_the_key) = (true, true),
                            xinput2::XI_RawKeyRelease => (self.down, about_the_key) = (false, true),
                            _ => {}
                        }
                    }
                    (self.xlib.XFreeEventData)(self.display, &mut cookie);
                }
            }
            about_the_key
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

        /// Sleeps up to `timeout` (one poll at most) and says whether the key is down.
        pub fn wait(&mut self, timeout: std::time::Duration) -> bool {
            std::thread::sleep(timeout.min(super::POLL));
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

        pub fn wait(&mut self, _timeout: std::time::Duration) -> bool {
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
