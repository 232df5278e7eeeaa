//! The terminal the live view is drawn on: [`Panel::height`] lines at the bottom,
//! redrawn in place; console lines go above it and scroll up like a log. One per
//! process, so that every console line (from the call, the room or the engine's
//! report) passes through it while it is on.
//!
//! The panel is rendered with ratatui's widgets into a buffer and written with
//! relative cursor moves only. (ratatui's own inline terminal asks the terminal where
//! the cursor is on every line printed above it, and the key reader, which owns
//! stdin, swallows the answer: each line would then wait two seconds.) The cursor
//! always rests at the panel's first line, column 0.

use std::io::{IsTerminal, Stdout, Write};
use std::sync::Mutex;

use crossterm::{cursor, queue, style, terminal};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use super::Panel;

struct Screen {
    out: Stdout,
    /// The panel's lines as last drawn.
    shown: Vec<String>,
    /// How many of them are on the terminal now (0 right after printing above).
    drawn: usize,
}

static SCREEN: Mutex<Option<Screen>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Screen>> {
    SCREEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the live view if stdout is a terminal; false (and plain lines) otherwise.
pub fn start() -> bool {
    if !std::io::stdout().is_terminal() {
        return false;
    }
    let mut out = std::io::stdout();
    let _ = queue!(out, cursor::Hide);
    *lock() = Some(Screen { out, shown: Vec::new(), drawn: 0 });
    true
}

pub fn is_on() -> bool {
    lock().is_some()
}

/// Prints `text` above the view; false when the view is off (print it yourself).
pub fn print_above(text: &str) -> bool {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else { return false };
    let _ = queue!(s.out, cursor::MoveToColumn(0), terminal::Clear(terminal::ClearType::FromCursorDown));
    for line in text.lines() {
        let _ = queue!(s.out, style::Print(line), style::Print("\r\n"));
    }
    s.drawn = 0;
    let shown = std::mem::take(&mut s.shown);
    s.paint(shown);
    true
}

/// Redraws the view (nothing is written when it did not change).
pub fn draw(panel: &Panel) {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else { return };
    let rows = render(panel);
    if s.drawn > 0 && rows == s.shown {
        return;
    }
    s.paint(rows);
}

/// Ends the view: the panel stays as last drawn, and the cursor goes below it for
/// whatever is printed next.
pub fn stop() {
    if let Some(mut s) = lock().take() {
        if s.drawn > 1 {
            let _ = queue!(s.out, cursor::MoveDown(s.drawn as u16 - 1));
        }
        let _ = queue!(s.out, cursor::MoveToColumn(0), style::Print("\r\n"), cursor::Show);
        let _ = s.out.flush();
    }
}

impl Screen {
    /// Writes the panel from the cursor (its first line) down and returns there.
    fn paint(&mut self, rows: Vec<String>) {
        let _ = queue!(self.out, cursor::MoveToColumn(0));
        if rows.len() < self.drawn {
            // Somebody left: the panel is shorter, so its old bottom lines go.
            let _ = queue!(self.out, terminal::Clear(terminal::ClearType::FromCursorDown));
        }
        for (i, row) in rows.iter().enumerate() {
            let _ = queue!(self.out, style::Print(row), terminal::Clear(terminal::ClearType::UntilNewLine));
            if i + 1 < rows.len() {
                // A new line scrolls the terminal when the panel reaches its bottom.
                let _ = queue!(self.out, style::Print("\r\n"));
            }
        }
        if rows.len() > 1 {
            let _ = queue!(self.out, cursor::MoveUp(rows.len() as u16 - 1));
        }
        let _ = queue!(self.out, cursor::MoveToColumn(0));
        let _ = self.out.flush();
        self.drawn = rows.len();
        self.shown = rows;
    }
}

/// The panel as text lines that fit the terminal: one column short of its width (so
/// no line wraps) and no taller than it.
fn render(panel: &Panel) -> Vec<String> {
    let (width, height) = terminal::size().unwrap_or((80, 24));
    let area = Rect::new(0, 0, width.saturating_sub(1).max(20), panel.height().min(height.saturating_sub(1)).max(3));
    let mut buf = Buffer::empty(area);
    panel.render(area, &mut buf);
    (0..area.height)
        .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect::<String>().trim_end().to_owned())
        .collect()
}
