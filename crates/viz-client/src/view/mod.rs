//! The live view of a call: who is there, who talks and how loud, how loud you hear
//! each of them, your own level, mute and deafen, the connection, and the keys. It is
//! drawn in place at the bottom of the terminal ([`screen`]); the call's event lines
//! ("bob joined") scroll above it. Without a terminal, the plain status lines are
//! printed instead.
//!
//! This module only turns the call's state into a [`Panel`] and a panel into text; it
//! does not read the clock or the keys.

pub mod screen;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use crate::controls::Controls;
use crate::people::People;
use crate::roster::Roster;

/// Most people listed at once; the rest are counted on one line.
pub const MAX_ROWS: usize = 8;
/// Lines the panel takes besides the people: borders, you, the connection, the keys.
const FRAME_LINES: u16 = 5;
/// How often the view is redrawn.
pub const REDRAW: std::time::Duration = std::time::Duration::from_millis(100);
/// How often the live view's connection line is refreshed: a status line every 5 s
/// is right for a log, but a panel that says "connecting…" 4 s into a call is wrong.
const CONNECTION_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// How often to work out the connection's figures: each second for the live view,
/// every `plain` for status lines.
pub fn status_interval(plain: std::time::Duration) -> std::time::Duration {
    if screen::is_on() { CONNECTION_REFRESH } else { plain }
}

/// Above this, what you hear in a call of two counts as talking.
pub const TALKING_DBFS: f32 = -50.0;
/// Cells of a level meter.
const METER: usize = 12;

/// One other person's line.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRow {
    pub name: String,
    pub talking: bool,
    /// dBFS + 100 (0 when silent).
    pub level: u8,
    /// How loud you hear them, percent.
    pub volume: u16,
    pub muted: bool,
    pub deafened: bool,
    pub selected: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// "Room 'friends'" or "Call with bob".
    pub title: String,
    pub people: Vec<PersonRow>,
    pub you: String,
    pub your_level_dbfs: f32,
    pub controls: Controls,
    pub sends: bool,
    /// The status line: transport, loss, jitter, RTT, playout delay, rates.
    pub connection: String,
    pub keys: String,
}

/// The keys, as the panel's last line shows them (`end` is what q does).
pub fn keys_line(end: &str) -> String {
    format!("m mute · d deafen · ↑↓ select · +/- volume · 0 silence · q {end}")
}

/// The people lines of a room's roster, with your volumes and selection.
pub fn rows(roster: &Roster, people: &People) -> Vec<PersonRow> {
    let selected = people.selected_id(roster);
    People::others(roster)
        .into_iter()
        .map(|e| PersonRow {
            name: e.name.clone(),
            talking: roster.is_talking(e.id),
            level: roster.level(e.id),
            volume: people.volume(e),
            muted: e.self_muted || e.admin_muted,
            deafened: e.deafened,
            selected: selected == Some(e.id),
        })
        .collect()
}

/// The other person of a call of two, as a roster line (no room gives one): its key
/// is the session's peer key, so its volume is remembered like anyone's.
pub fn other_in_two(name: &str, key: &viz_proto::PublicKey) -> viz_proto::RosterEntry {
    viz_proto::RosterEntry::new(0, name, key.fingerprint().compact())
}

/// [`rows`] in a call of two: what you hear is the other person, so their level is
/// what is played.
pub fn rows_in_two(roster: &Roster, people: &People, status: &crate::engine::EngineStatus) -> Vec<PersonRow> {
    let mut rows = rows(roster, people);
    for row in &mut rows {
        row.level = (status.output_level_dbfs + 100.0).clamp(0.0, 100.0) as u8;
        row.talking = status.output_level_dbfs > TALKING_DBFS;
    }
    rows
}

/// A status line cut to `width` at a field boundary (" | "), so a narrow terminal shows
/// whole fields.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut out = String::new();
    for field in line.split(" | ") {
        let next = if out.is_empty() { field.to_owned() } else { format!("{out} | {field}") };
        if next.chars().count() > width {
            break;
        }
        out = next;
    }
    out
}

/// `level` (dBFS + 100) as a bar: -60 dBFS and below is empty, 0 dBFS full.
fn meter(level: u8) -> String {
    let cells = ((f32::from(level) - 40.0) / 60.0 * METER as f32).round().clamp(0.0, METER as f32) as usize;
    format!("{}{}", "█".repeat(cells), "·".repeat(METER - cells))
}

impl Panel {
    /// Lines the panel takes: one per person (at least one, at most [`MAX_ROWS`]) and
    /// its frame.
    pub fn height(&self) -> u16 {
        self.people.len().clamp(1, MAX_ROWS) as u16 + FRAME_LINES
    }

    /// The panel's lines, without the border, for a panel `width` columns wide.
    pub fn lines(&self, width: u16) -> Vec<Line<'static>> {
        let name_width = self.people.iter().map(|p| p.name.chars().count()).chain([3]).max().unwrap_or(3).min(24);
        let mut lines = Vec::new();
        if self.people.is_empty() {
            lines.push(Line::from("  nobody else yet"));
        }
        let shown = if self.people.len() > MAX_ROWS { MAX_ROWS - 1 } else { self.people.len() };
        // Keep the selected person on screen.
        let first =
            self.people.iter().position(|p| p.selected).map_or(0, |s| s.saturating_sub(shown.saturating_sub(1)));
        for p in self.people.iter().skip(first).take(shown) {
            let name: String = p.name.chars().take(name_width).collect();
            let state = match (p.talking, p.muted) {
                _ if p.deafened => "deafened",
                (_, true) => "muted  ",
                (true, false) => "talking",
                (false, false) => "       ",
            };
            let volume = if p.volume == 0 { "silenced".to_owned() } else { format!("{:>3} %", p.volume) };
            let text = format!(
                "{} {name:<name_width$}  {}  {state}  volume {volume}",
                if p.selected { '▶' } else { ' ' },
                meter(if p.talking { p.level } else { 0 })
            );
            let style = if p.selected { Style::new().add_modifier(Modifier::BOLD) } else { Style::new() };
            lines.push(Line::from(Span::styled(text, style)));
        }
        if self.people.len() > shown {
            lines.push(Line::from(format!("  … and {} more (↑↓ to scroll)", self.people.len() - shown)));
        }
        let c = &self.controls;
        let mic = match (c.deafened, c.muted, self.sends) {
            (true, _, _) => "DEAFENED: you hear nothing, microphone off",
            (false, true, _) => "MUTED",
            (false, false, false) => "listening only",
            (false, false, true) if c.push_to_talk && c.ptt_held => "talking (push-to-talk key held)",
            (false, false, true) if c.push_to_talk => "push to talk: hold the key to talk",
            (false, false, true) => "microphone on",
        };
        let level = if self.controls.mic_off() || !self.sends {
            0
        } else {
            (self.your_level_dbfs + 100.0).clamp(0.0, 100.0) as u8
        };
        lines.push(Line::from(format!("  You ({})  {}  {mic}", self.you, meter(level))));
        lines.push(Line::from(format!("  {}", fit(&self.connection, usize::from(width.saturating_sub(4))))));
        lines.push(Line::from(Span::styled(format!("  {}", self.keys), Style::new().add_modifier(Modifier::DIM))));
        lines
    }
}

impl Widget for &Panel {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Paragraph::new(self.lines(area.width))
            .block(Block::bordered().title(format!(" {} ", self.title)))
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, selected: bool) -> PersonRow {
        PersonRow { name: name.into(), talking: false, level: 0, volume: 100, muted: false, deafened: false, selected }
    }

    fn text(panel: &Panel) -> String {
        let area = Rect::new(0, 0, 90, panel.height());
        let mut buf = Buffer::empty(area);
        panel.render(area, &mut buf);
        (0..area.height)
            .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect::<String>().trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn panel(people: Vec<PersonRow>) -> Panel {
        Panel {
            title: "Room 'friends'".into(),
            people,
            you: "carol".into(),
            your_level_dbfs: -20.0,
            controls: Controls::default(),
            sends: true,
            connection: "server via UDP 127.0.0.1:8443 | loss in 0.0% out 0.0%".into(),
            keys: keys_line("leave"),
        }
    }

    #[test]
    fn the_panel_shows_people_levels_volumes_you_and_the_keys() {
        let mut bob = row("bob", true);
        bob.talking = true;
        bob.level = 80; // -20 dBFS
        let mut dan = row("dan", false);
        dan.volume = 0;
        let mut p = panel(vec![bob, dan]);
        let shown = text(&p);
        assert!(shown.contains("Room 'friends'"), "{shown}");
        assert!(shown.contains("▶ bob  ████████····  talking  volume 100 %"), "{shown}");
        assert!(shown.contains("  dan  ············           volume silenced"), "{shown}");
        assert!(shown.contains("You (carol)  ████████····  microphone on"), "{shown}");
        assert!(shown.contains("q leave"), "{shown}");
        assert_eq!(shown.lines().count(), 2 + 5, "one line per person and the frame");
        p.controls.deafened = true;
        assert!(text(&p).contains("You (carol)  ············  DEAFENED"), "{}", text(&p));
    }

    #[test]
    fn many_people_scroll_with_the_selection() {
        let people: Vec<PersonRow> = (0..20).map(|i| row(&format!("p{i:02}"), i == 15)).collect();
        let shown = text(&panel(people));
        assert!(shown.contains("▶ p15") && !shown.contains("p00"), "{shown}");
        assert!(shown.contains("… and 13 more"), "{shown}");
    }
}
