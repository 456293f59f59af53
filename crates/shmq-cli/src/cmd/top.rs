//! `shmq top`: every shmq segment live, one row each, refreshed every `--interval`; and
//! `--once` (text or `--json`) for scripts. The figures come from `shmq::Snapshot`, read
//! without taking any lock and without changing any segment.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Table};
use serde_json::{Value, json};
use shmq::snapshot::{Detail, Rates, RingSnapshot, SegmentSnapshot, Snapshot};
use shmq::substrate::sync::LockState;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Time between refreshes (rates are measured over it), e.g. 1s, 500ms.
    #[arg(long, value_parser = super::parse_duration, default_value = "1s")]
    interval: Duration,
    /// Print one snapshot and exit (two readings --interval apart, for the rates).
    #[arg(long)]
    once: bool,
    /// With --once: one JSON object per segment, one per line.
    #[arg(long, requires = "once")]
    json: bool,
    /// Only segments whose name matches this pattern (`*` any run of characters, `?` one
    /// character; without either, a substring).
    #[arg(long)]
    filter: Option<String>,
    /// The column to sort by at start (name, kind, state, depth, puts, gets, bytes,
    /// unfinished, waiting, procs, side, size, holder); descending for numbers.
    #[arg(long, default_value = "name", value_parser = parse_column)]
    sort: Column,
}

/// The columns, in screen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Name,
    Kind,
    State,
    Depth,
    Puts,
    Gets,
    Bytes,
    Unfinished,
    Waiting,
    Procs,
    Side,
    Size,
    Holder,
}

const COLUMNS: [Column; 13] = [
    Column::Name,
    Column::Kind,
    Column::State,
    Column::Depth,
    Column::Puts,
    Column::Gets,
    Column::Bytes,
    Column::Unfinished,
    Column::Waiting,
    Column::Procs,
    Column::Side,
    Column::Size,
    Column::Holder,
];

impl Column {
    fn key(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Kind => "kind",
            Column::State => "state",
            Column::Depth => "depth",
            Column::Puts => "puts",
            Column::Gets => "gets",
            Column::Bytes => "bytes",
            Column::Unfinished => "unfinished",
            Column::Waiting => "waiting",
            Column::Procs => "procs",
            Column::Side => "side",
            Column::Size => "size",
            Column::Holder => "holder",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Column::Name => "NAME",
            Column::Kind => "KIND",
            Column::State => "STATE",
            Column::Depth => "DEPTH/CAPACITY",
            Column::Puts => "PUT/s",
            Column::Gets => "GET/s",
            Column::Bytes => "BYTES/s",
            Column::Unfinished => "UNFIN",
            Column::Waiting => "WAIT",
            Column::Procs => "PROCS",
            Column::Side => "SIDE",
            Column::Size => "SIZE",
            Column::Holder => "HOLDER",
        }
    }

    /// Text columns sort ascending, figures descending (the busiest first).
    fn descending(self) -> bool {
        !matches!(
            self,
            Column::Name | Column::Kind | Column::State | Column::Holder
        )
    }
}

fn parse_column(s: &str) -> Result<Column, String> {
    COLUMNS
        .iter()
        .copied()
        .find(|c| c.key() == s)
        .ok_or_else(|| {
            let keys: Vec<&str> = COLUMNS.iter().map(|c| c.key()).collect();
            format!("unknown column {s:?} (one of {})", keys.join(", "))
        })
}

/// Whether `name` matches `pattern`: a glob with `*` and `?` if it has either, else a
/// substring.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    fn glob(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| glob(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && glob(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && glob(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

/// One segment's figures, as every output shows them.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) seg: SegmentSnapshot,
    /// Per ring (queue: one; pipe: A→B if duplex, then B→A): label, depth, capacity.
    pub(crate) depth: Vec<(&'static str, u64, u64)>,
    /// Summed over the rings; `None` without an earlier reading.
    pub(crate) rates: Option<Rates>,
    /// Per ring, as `depth`.
    pub(crate) ring_rates: Option<Vec<Rates>>,
    pub(crate) unfinished: Option<u64>,
    pub(crate) producers_waiting: bool,
    pub(crate) consumers_waiting: bool,
    pub(crate) joiners: u32,
    /// Distinct pids the segment records that still run, and that have exited (or were
    /// killed).
    pub(crate) live: usize,
    pub(crate) dead: usize,
    pub(crate) holder: Option<(u32, bool)>,
}

/// The rings' labels: a queue's one ring has none; a pipe's are its directions.
fn ring_labels(seg: &SegmentSnapshot) -> Vec<&'static str> {
    match &seg.detail {
        Detail::Queue(_) => vec![""],
        Detail::Pipe {
            a_to_b: Some(_), ..
        } => vec!["A→B", "B→A"],
        Detail::Pipe { a_to_b: None, .. } => vec!["B→A"],
        _ => Vec::new(),
    }
}

impl Row {
    pub(crate) fn new(seg: &SegmentSnapshot, now: &Snapshot, before: Option<&Snapshot>) -> Row {
        let rings = seg.rings();
        let labels = ring_labels(seg);
        let depth = rings
            .iter()
            .zip(&labels)
            .map(|(r, l)| (*l, r.len, r.capacity))
            .collect();
        let ring_rates = before.and_then(|b| now.rates_since(b, &seg.name));
        // Summed over the rings; a dict or a lock (no ring) has no rates.
        let rates = ring_rates.as_ref().filter(|rs| !rs.is_empty()).map(|rs| {
            let start = Rates {
                bytes: Some(0.0),
                ..Rates::default()
            };
            rs.iter().fold(start, |a, r| Rates {
                puts: a.puts + r.puts,
                gets: a.gets + r.gets,
                bytes: a.bytes.zip(r.bytes).map(|(x, y)| x + y),
            })
        });
        let unfinished = match &seg.detail {
            Detail::Queue(r) => Some(r.unfinished),
            _ => None,
        };
        let mut pids: Vec<(u32, bool)> = seg.processes.iter().map(|p| (p.pid, p.alive)).collect();
        pids.sort_unstable();
        pids.dedup();
        let live_pids: Vec<u32> = pids.iter().filter(|p| p.1).map(|p| p.0).collect();
        let dead = pids
            .iter()
            .filter(|p| !p.1 && !live_pids.contains(&p.0))
            .map(|p| p.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let holder = seg.lock().and_then(|l| match l {
            LockState::Held {
                owner_tid,
                owner_alive,
                ..
            } => Some((*owner_tid, *owner_alive)),
            _ => None,
        });
        Row {
            depth,
            rates,
            ring_rates,
            unfinished,
            producers_waiting: rings.iter().any(|r| r.producers_waiting),
            consumers_waiting: rings.iter().any(|r| r.consumers_waiting),
            joiners: rings.iter().map(|r| r.joiners).sum(),
            live: live_pids.len(),
            dead,
            holder,
            seg: seg.clone(),
        }
    }

    fn fill(&self) -> f64 {
        self.depth
            .iter()
            .map(|&(_, l, c)| l as f64 / c.max(1) as f64)
            .fold(0.0, f64::max)
    }

    fn kind(&self) -> &'static str {
        self.seg.kind.map_or("?", |k| k.name())
    }

    /// The figure a column sorts by (text columns compare `text`).
    fn number(&self, c: Column) -> f64 {
        let r = self.rates.unwrap_or_default();
        match c {
            Column::Depth => {
                self.fill() * 1e12 + self.depth.iter().map(|d| d.1).sum::<u64>() as f64
            }
            Column::Puts => r.puts,
            Column::Gets => r.gets,
            Column::Bytes => r.bytes.unwrap_or(0.0),
            Column::Unfinished => self.unfinished.unwrap_or(0) as f64,
            Column::Waiting => {
                f64::from(u8::from(self.producers_waiting) + u8::from(self.consumers_waiting))
                    + f64::from(self.joiners)
            }
            Column::Procs => self.live as f64 + self.dead as f64 / 1000.0,
            Column::Side => self.seg.side_bytes as f64,
            Column::Size => self.seg.size as f64,
            _ => 0.0,
        }
    }

    /// The text of a column (the depth without its bar).
    fn text(&self, c: Column) -> String {
        let rate = |v: Option<f64>| v.map_or("-".to_owned(), human_rate);
        match c {
            Column::Name => self.seg.name.clone(),
            Column::Kind => self.kind().to_owned(),
            Column::State => {
                let claims: u64 = self.seg.rings().iter().map(|r| r.dead_claims).sum();
                if claims > 0 {
                    format!("{}, {claims} dead claim(s)", self.seg.state.word())
                } else {
                    self.seg.state.word()
                }
            }
            Column::Depth => self
                .depth
                .iter()
                .map(|(l, d, c)| {
                    if l.is_empty() {
                        format!("{d}/{c}")
                    } else {
                        format!("{l} {d}/{c}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            Column::Puts => rate(self.rates.map(|r| r.puts)),
            Column::Gets => rate(self.rates.map(|r| r.gets)),
            Column::Bytes => match self.rates {
                Some(Rates { bytes: Some(b), .. }) => human_bytes(b),
                _ => "-".into(),
            },
            Column::Unfinished => self.unfinished.map_or("-".into(), |u| u.to_string()),
            Column::Waiting => self.waiting_text(),
            Column::Procs => format!("{}/{}", self.live, self.live + self.dead),
            Column::Side => {
                if self.seg.side_segments == 0 {
                    "-".into()
                } else {
                    human_bytes(self.seg.side_bytes as f64)
                }
            }
            Column::Size => human_bytes(self.seg.size as f64),
            Column::Holder => match self.holder {
                None => "-".into(),
                Some((tid, true)) => format!("tid {tid}"),
                Some((tid, false)) => format!("tid {tid} died"),
            },
        }
    }

    /// `P` someone waits to put, `C` someone waits to get, `J2` two joiners; `-` nobody.
    fn waiting_text(&self) -> String {
        let mut w = Vec::new();
        if self.producers_waiting {
            w.push("P".to_owned());
        }
        if self.consumers_waiting {
            w.push("C".to_owned());
        }
        if self.joiners > 0 {
            w.push(format!("J{}", self.joiners));
        }
        if w.is_empty() {
            "-".into()
        } else {
            w.join(" ")
        }
    }

    /// The JSON object of `--once --json` (and the Python function's dict has the same keys).
    pub(crate) fn json(&self) -> Value {
        let ring_json = |r: &RingSnapshot, label: &str, rates: Option<&Rates>| {
            json!({
                "direction": if label.is_empty() { Value::Null } else { json!(label) },
                "len": r.len, "capacity": r.capacity, "message_size": r.message_size,
                "puts_total": r.puts, "gets_total": r.gets, "voided_total": r.voided,
                "unfinished": r.unfinished, "closed": r.closed,
                "senders_gone": r.senders_gone, "receivers_gone": r.receivers_gone,
                "producers_waiting": r.producers_waiting, "consumers_waiting": r.consumers_waiting,
                "joiners": r.joiners, "dead_claims": r.dead_claims,
                "lock": r.lock.to_string(),
                "puts_per_sec": rates.map(|x| x.puts), "gets_per_sec": rates.map(|x| x.gets),
                "bytes_per_sec": rates.and_then(|x| x.bytes),
            })
        };
        let labels = ring_labels(&self.seg);
        let rings: Vec<Value> = self
            .seg
            .rings()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ring_json(
                    r,
                    labels.get(i).copied().unwrap_or(""),
                    self.ring_rates.as_ref().and_then(|v| v.get(i)),
                )
            })
            .collect();
        let processes: Vec<Value> = self
            .seg
            .processes
            .iter()
            .map(|p| json!({"pid": p.pid, "alive": p.alive, "role": p.role.to_string()}))
            .collect();
        let (lock, holder) = match self.seg.lock() {
            Some(l) => (
                json!(l.to_string()),
                match self.holder {
                    Some((tid, alive)) => json!({"tid": tid, "alive": alive}),
                    None => Value::Null,
                },
            ),
            None => (Value::Null, Value::Null),
        };
        let mut v = json!({
            "name": self.seg.name,
            "kind": self.seg.kind.map(|k| k.name()),
            "state": self.seg.state.word(),
            "reason": self.seg.state.reason(),
            "size": self.seg.size,
            "side_segments": self.seg.side_segments,
            "side_bytes": self.seg.side_bytes,
            "depth": self.depth.iter().map(|d| d.1).sum::<u64>(),
            "capacity": self.depth.iter().map(|d| d.2).sum::<u64>(),
            "puts_per_sec": self.rates.map(|r| r.puts),
            "gets_per_sec": self.rates.map(|r| r.gets),
            "bytes_per_sec": self.rates.and_then(|r| r.bytes),
            "unfinished": self.unfinished,
            "producers_waiting": self.producers_waiting,
            "consumers_waiting": self.consumers_waiting,
            "joiners": self.joiners,
            "live_processes": self.live,
            "exited_processes": self.dead,
            "processes": processes,
            "rings": rings,
            "lock": lock,
            "holder": holder,
        });
        match &self.seg.detail {
            Detail::Dict { len, capacity, .. } => {
                v["keys"] = json!(len);
                v["capacity"] = json!(capacity);
            }
            Detail::Pipe { gone, .. } => {
                v["gone"] = json!({"A": gone[0], "B": gone[1]});
            }
            _ => {}
        }
        v
    }
}

/// "12", "1.5k", "2.0M" per second.
fn human_rate(v: f64) -> String {
    if v < 10.0 && v.fract() != 0.0 {
        format!("{v:.1}")
    } else if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{:.1}M", v / 1e6)
    }
}

/// "512B", "4.0K", "1.5M", "2.0G" (powers of 1024).
fn human_bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = v;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Sorts rows by `col` (descending for figures), then by name.
fn sort_rows(rows: &mut [Row], col: Column, reverse: bool) {
    rows.sort_by(|a, b| {
        let o = if col.descending() {
            b.number(col)
                .partial_cmp(&a.number(col))
                .unwrap_or(Ordering::Equal)
        } else {
            match col {
                Column::Name => a.seg.name.cmp(&b.seg.name),
                Column::Kind => a.kind().cmp(b.kind()),
                _ => a.text(col).cmp(&b.text(col)),
            }
        };
        let o = if reverse { o.reverse() } else { o };
        o.then_with(|| a.seg.name.cmp(&b.seg.name))
    });
}

fn rows_of(now: &Snapshot, before: Option<&Snapshot>) -> Vec<Row> {
    now.segments
        .iter()
        .map(|s| Row::new(s, now, before))
        .collect()
}

pub(crate) fn run(a: &Args) -> Result<()> {
    let pattern = a.filter.clone().unwrap_or_default();
    let take = |prev: Option<&Snapshot>| {
        Snapshot::take_matching(prev, |n| matches(&pattern, n)).context("reading /dev/shm")
    };
    if a.once {
        let first = take(None)?;
        std::thread::sleep(a.interval);
        let now = take(Some(&first))?;
        let mut rows = rows_of(&now, Some(&first));
        sort_rows(&mut rows, a.sort, false);
        if a.json {
            for r in &rows {
                outln!("{}", r.json());
            }
        } else {
            print_text(&rows);
        }
        return Ok(());
    }
    interactive(a)
}

/// `--once` as text: the screen's columns, a bar-less depth.
fn print_text(rows: &[Row]) {
    let table: Vec<Vec<String>> =
        std::iter::once(COLUMNS.iter().map(|c| c.title().to_owned()).collect())
            .chain(
                rows.iter()
                    .map(|r| COLUMNS.iter().map(|&c| r.text(c)).collect()),
            )
            .collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", line.join("  ").trim_end());
    }
}

/// The interactive view's state.
struct App {
    interval: Duration,
    sort: Column,
    reverse: bool,
    filter: String,
    /// The filter being typed after `/` (`None`: not typing).
    editing: Option<String>,
    help: bool,
    detail: bool,
    /// The first row on screen.
    offset: usize,
    /// The selected segment's name (kept across refreshes and re-sorts).
    selected: Option<String>,
    rows: Vec<Row>,
    total: usize,
    error: Option<String>,
}

impl App {
    fn visible(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| matches(&self.filter, &r.seg.name))
            .collect()
    }

    fn refresh(&mut self, now: &Snapshot, before: Option<&Snapshot>) {
        self.total = now.segments.len();
        self.rows = rows_of(now, before);
        sort_rows(&mut self.rows, self.sort, self.reverse);
    }

    fn select_by(&mut self, delta: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            self.selected = None;
            return;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|n| visible.iter().position(|r| &r.seg.name == n));
        let next = match at {
            None => 0,
            Some(i) => (i as isize + delta).clamp(0, visible.len() as isize - 1) as usize,
        };
        self.selected = Some(visible[next].seg.name.clone());
    }

    /// Handles a key; `false` to quit.
    fn key(&mut self, k: KeyEvent) -> bool {
        if k.kind != KeyEventKind::Press {
            return true;
        }
        if let Some(text) = &mut self.editing {
            match k.code {
                KeyCode::Enter => {
                    self.filter = std::mem::take(text);
                    self.editing = None;
                }
                KeyCode::Esc => self.editing = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            return true;
        }
        if self.help {
            self.help = false;
            return !matches!(k.code, KeyCode::Char('q'));
        }
        match k.code {
            KeyCode::Char('q') => return false,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return false,
            KeyCode::Char('?') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('/') => self.editing = Some(String::new()),
            KeyCode::Esc => {
                if self.detail {
                    self.detail = false;
                } else {
                    self.filter.clear();
                }
            }
            KeyCode::Char('<') | KeyCode::Left => {
                let i = COLUMNS.iter().position(|&c| c == self.sort).unwrap_or(0);
                self.sort = COLUMNS[(i + COLUMNS.len() - 1) % COLUMNS.len()];
            }
            KeyCode::Char('>') | KeyCode::Right => {
                let i = COLUMNS.iter().position(|&c| c == self.sort).unwrap_or(0);
                self.sort = COLUMNS[(i + 1) % COLUMNS.len()];
            }
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char(c @ ('1'..='9' | '0' | '-' | '=' | '\\')) => {
                let i = "1234567890-=\\".find(c).unwrap_or(0);
                if let Some(&col) = COLUMNS.get(i) {
                    if self.sort == col {
                        self.reverse = !self.reverse;
                    } else {
                        self.sort = col;
                        self.reverse = false;
                    }
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.select_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.select_by(-1),
            KeyCode::PageDown => self.select_by(20),
            KeyCode::PageUp => self.select_by(-20),
            KeyCode::Home => self.select_by(isize::MIN / 2),
            KeyCode::End => self.select_by(isize::MAX / 2),
            KeyCode::Enter => {
                if self.selected.is_none() {
                    self.select_by(0);
                }
                self.detail = !self.detail;
            }
            _ => return true,
        }
        sort_rows(&mut self.rows, self.sort, self.reverse);
        true
    }
}

fn interactive(a: &Args) -> Result<()> {
    let mut app = App {
        interval: a.interval.max(Duration::from_millis(50)),
        sort: a.sort,
        reverse: false,
        filter: a.filter.clone().unwrap_or_default(),
        editing: None,
        help: false,
        detail: false,
        offset: 0,
        selected: None,
        rows: Vec::new(),
        total: 0,
        error: None,
    };
    let mut terminal = ratatui::try_init().context("starting the terminal")?;
    let result = (|| -> Result<()> {
        let mut before: Option<Snapshot> = None;
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                match Snapshot::take(before.as_ref()) {
                    Ok(now) => {
                        app.refresh(&now, before.as_ref());
                        app.error = None;
                        before = Some(now);
                    }
                    Err(e) => app.error = Some(format!("reading /dev/shm: {e}")),
                }
                next = Instant::now() + app.interval;
            }
            terminal.draw(|f| draw(f, &mut app))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                // Every pending key before the next draw.
                loop {
                    if let Event::Key(k) = event::read()?
                        && !app.key(k)
                    {
                        return Ok(());
                    }
                    if !event::poll(Duration::ZERO)? {
                        break;
                    }
                }
            }
        }
    })();
    ratatui::try_restore().context("restoring the terminal")?;
    result
}

/// A bar of `width` cells filled to `len / cap`.
fn bar(len: u64, cap: u64, width: usize) -> String {
    let filled = if cap == 0 {
        0
    } else {
        ((len as f64 / cap as f64) * width as f64).ceil() as usize
    }
    .min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn depth_cell(r: &Row) -> String {
    match r.depth.as_slice() {
        [] => "-".into(),
        [("", d, c)] => format!("{} {d}/{c}", bar(*d, *c, 10)),
        dirs => dirs
            .iter()
            .map(|(l, d, c)| format!("{l} {} {d}/{c}", bar(*d, *c, 4)))
            .collect::<Vec<_>>()
            .join("  "),
    }
}

fn draw(f: &mut ratatui::Frame<'_>, app: &mut App) {
    let area = f.area();
    // (Fields borrowed one by one: `offset` changes below.)
    let all: Vec<&Row> = app
        .rows
        .iter()
        .filter(|r| matches(&app.filter, &r.seg.name))
        .collect();
    let detail_h = if app.detail { 14 } else { 0 };
    let [top, body, bottom, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(detail_h),
        Constraint::Length(1),
    ])
    .areas(area);

    let filter = if app.filter.is_empty() {
        String::new()
    } else {
        format!("  filter: {}", app.filter)
    };
    let title = format!(
        "shmq top — {} of {} segments, every {}s, sorted by {}{}{}",
        all.len(),
        app.total,
        app.interval.as_secs_f64(),
        app.sort.key(),
        if app.reverse { " (reversed)" } else { "" },
        filter
    );
    f.render_widget(
        Paragraph::new(title).style(Style::default().add_modifier(Modifier::BOLD)),
        top,
    );

    let header = TableRow::new(COLUMNS.iter().map(|&c| {
        let t = if c == app.sort {
            format!("{}{}", c.title(), if app.reverse { "▲" } else { "▼" })
        } else {
            c.title().to_owned()
        };
        Cell::from(t)
    }))
    .style(Style::default().add_modifier(Modifier::REVERSED));
    // Only the rows that fit are built (with 1,000 segments, most are off screen): the window
    // starts at `app.offset`, moved just enough to keep the selected row in it.
    let height = body.height.saturating_sub(1) as usize;
    let at = app
        .selected
        .as_ref()
        .and_then(|n| all.iter().position(|r| &r.seg.name == n));
    if let Some(i) = at {
        if i < app.offset {
            app.offset = i;
        } else if i >= app.offset + height {
            app.offset = i + 1 - height.max(1);
        }
    }
    app.offset = app.offset.min(all.len().saturating_sub(height));
    let window = &all[app.offset..(app.offset + height).min(all.len())];
    let cells: Vec<Vec<String>> = window
        .iter()
        .map(|r| {
            COLUMNS
                .iter()
                .map(|&c| {
                    if c == Column::Depth {
                        depth_cell(r)
                    } else {
                        r.text(c)
                    }
                })
                .collect()
        })
        .collect();
    let width = |i: usize, min: usize, max: usize| {
        cells
            .iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(min)
            .clamp(min, max) as u16
    };
    let widths = [
        Constraint::Length(width(0, 4, 40)),
        Constraint::Length(5),
        Constraint::Length(width(2, 6, 40)),
        Constraint::Length(width(3, 14, 60)),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Min(8),
    ];
    let rows = cells.into_iter().enumerate().map(|(i, c)| {
        let row = TableRow::new(c.into_iter().map(Cell::from));
        if Some(i + app.offset) == at {
            row.style(Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD))
        } else {
            row
        }
    });
    let table = Table::new(rows, widths).header(header).column_spacing(1);
    f.render_widget(table, body);

    if app.detail {
        let text = match at.map(|i| all[i]) {
            Some(r) => detail_lines(r),
            None => vec![Line::from("no segment selected (↑/↓ to select)")],
        };
        f.render_widget(
            Paragraph::new(text).block(Block::default().borders(Borders::TOP).title(" detail ")),
            bottom,
        );
    }

    let status_text = if let Some(t) = &app.editing {
        format!("filter (glob or substring, Enter to apply, Esc to cancel): {t}█")
    } else if let Some(e) = &app.error {
        e.clone()
    } else {
        "q quit  ? help  ↑↓ select  Enter detail  / filter  </> sort column  1-9 sort by column  r reverse".into()
    };
    f.render_widget(Paragraph::new(status_text), status);

    if app.help {
        help_popup(f, area);
    }
}

/// The command name of a process (`/proc/PID/comm`), or `?`.
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// The process a thread belongs to (`Tgid` in `/proc/TID/status`).
fn process_of_thread(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn detail_lines(r: &Row) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(vec![
        Span::styled(
            r.seg.name.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "  {}  {}  {} mapped",
            r.kind(),
            r.seg.state.word(),
            human_bytes(r.seg.size as f64)
        )),
    ])];
    if let Some(reason) = r.seg.state.reason() {
        out.push(Line::from(format!("  why: {reason}")));
    }
    let labels = ring_labels(&r.seg);
    for (i, ring) in r.seg.rings().iter().enumerate() {
        let rates = r.ring_rates.as_ref().and_then(|v| v.get(i));
        let label = labels.get(i).copied().unwrap_or("");
        out.push(Line::from(format!(
            "  {}{}/{} waiting, {} put, {} taken, {} voided, {} unfinished; {}{}{}; lock {}{}",
            if label.is_empty() {
                String::new()
            } else {
                format!("{label}: ")
            },
            ring.len,
            ring.capacity,
            ring.puts,
            ring.gets,
            ring.voided,
            ring.unfinished,
            rates.map_or("no rates yet".into(), |x| format!(
                "{} put/s, {} get/s",
                human_rate(x.puts),
                human_rate(x.gets)
            )),
            if ring.producers_waiting {
                ", a producer sleeps"
            } else {
                ""
            },
            if ring.consumers_waiting {
                ", a consumer sleeps"
            } else {
                ""
            },
            ring.lock,
            if ring.dead_claims > 0 {
                format!(
                    "; {} claim(s) of dead producers, voided by the next consumer",
                    ring.dead_claims
                )
            } else {
                String::new()
            },
        )));
    }
    match &r.seg.detail {
        Detail::Dict {
            len,
            capacity,
            lock,
        } => {
            out.push(Line::from(format!("  {len}/{capacity} keys; lock {lock}")));
        }
        Detail::Lock(lock) => out.push(Line::from(format!("  lock {lock}"))),
        _ => {}
    }
    if let Some((tid, alive)) = r.holder {
        let owner = process_of_thread(tid).map_or(String::new(), |pid| {
            format!(" of process {pid} ({})", comm(pid))
        });
        out.push(Line::from(format!(
            "  lock holder: thread {tid}{owner}{}",
            if alive {
                ""
            } else {
                ", dead: the next locker repairs"
            }
        )));
    }
    if r.seg.side_segments > 0 {
        out.push(Line::from(format!(
            "  {} side segment(s), {}",
            r.seg.side_segments,
            human_bytes(r.seg.side_bytes as f64)
        )));
    }
    out.push(Line::from(Span::styled(
        format!("  {:>8}  {:<16} {:<6} ROLE", "PID", "COMMAND", "ALIVE"),
        Style::default().add_modifier(Modifier::UNDERLINED),
    )));
    for p in &r.seg.processes {
        out.push(Line::from(format!(
            "  {:>8}  {:<16} {:<6} {}",
            p.pid,
            if p.alive { comm(p.pid) } else { "-".into() },
            if p.alive { "yes" } else { "exited" },
            p.role
        )));
    }
    out
}

fn help_popup(f: &mut ratatui::Frame<'_>, area: Rect) {
    let lines = vec![
        "shmq top: every shmq segment, read without locks",
        "",
        "q, Ctrl-C     quit",
        "?             this help (any key closes it)",
        "↑ ↓ j k       select a row; PgUp PgDn Home End",
        "Enter         detail pane of the selected row (processes: pid, command, role)",
        "/             filter by name (glob with * and ?, else a substring; empty: all)",
        "< > ← →       sort by the previous / next column",
        "1-9 0 - = \\   sort by column 1-13 (again: reverse)",
        "r             reverse the sort",
        "",
        "DEPTH/CAPACITY  messages waiting / slots (a pipe: each direction)",
        "PUT/s GET/s     positions put and taken per second; BYTES/s: taken × mean size",
        "UNFIN           tasks put and not marked done (JoinableQueue)",
        "WAIT            P someone sleeps to put, C to get (a bit per ring, not a count);",
        "                J<n> joiners",
        "PROCS           live/all processes recorded (creator, producers, pipe holders)",
        "SIDE            bytes in side segments (large messages); SIZE mapped bytes",
        "HOLDER          thread holding the lock; 'died': the next locker repairs",
    ];
    let w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(40) as u16 + 4;
    let h = lines.len() as u16 + 2;
    let rect = Rect {
        x: area.x + area.width.saturating_sub(w) / 2,
        y: area.y + area.height.saturating_sub(h) / 2,
        width: w.min(area.width),
        height: h.min(area.height),
    };
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
            .block(Block::default().borders(Borders::ALL).title(" help ")),
        rect,
    );
}
