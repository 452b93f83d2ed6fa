//! History, records and spike alerts: online people over time, the day's peak, the most
//! ever online, and webhooks when the count crosses a threshold.
//!
//! # Design (the numbers are in `docs/design.md`, "History, records and alerts")
//!
//! Every isolate keeps a small ring of its own samples per site ([`History::observe`], one
//! per count it computes: the site-wide count, so any isolate's samples are the site's):
//! the most people seen in each minute of the last two hours. One isolate per site, the
//! *writer*, persists them: the key `h:{site}` holds minute steps for two hours,
//! five-minute steps for a week, the day's peak, the record and the alerts' states, and
//! names its writer ([`writer`]). The writer rewrites it every
//! [`HistoryConfig::write_ms`]; others read it every [`HistoryConfig::read_ms`] and take
//! over only when it is stale. An answer merges the stored steps with the answering
//! isolate's ring, so the part not yet written shows too. Steps are maxima, and merging
//! takes the maximum, so every copy folds into every other without double counting.
//!
//! Every isolate runs the alerts ([`alerts`]) on its samples; only the writer calls. A
//! firing is written to the key before its call goes out (so that a successor carries it on
//! instead of calling again), and the call goes out only after a fresh read of the key
//! still names this isolate and, for a writer that just claimed the key,
//! [`HistoryConfig::confirm_ms`] after its claim (twice KV's lag: every rival that read the
//! same stale key has written by then, and every location sees the same last claim): one
//! webhook call per crossing however many isolates see it.
//!
//! # Driver contract ([`Recorder`])
//! - After each count computed for a request: [`Recorder::observe`] (synchronous, no I/O);
//!   it returns the record to put in the answer once this isolate has read the key.
//! - After the response (on Workers inside `waitUntil`): [`Recorder::sync`] for the sites
//!   [`Recorder::sites_due`] names. It reads and writes the key as due and returns the
//!   webhook calls to make. Nothing of it delays or fails a heartbeat.
//! - `GET /v1/history`: [`Recorder::history`].

pub mod alerts;
pub mod series;
pub mod stored;
pub mod writer;

#[cfg(any(test, feature = "testing"))]
/// The write budget, measured over simulated days (tests and the simulation only).
pub mod budget;

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use crate::store::Store;
use crate::{Code, Error};
use alerts::{AlertDue, AlertRule, AlertState};
use stored::{
    FIVE_MINUTES_MS, Fives, HISTORY_TTL_S, HOUR_MS, MINUTE_MS, Mark, Minutes, Stored, history_key,
};
use writer::Role;
pub use writer::{HistoryConfig, KV_LAG_MS, TARGET_WRITES_PER_DAY};

/// After a failed write of the key, the next try waits this long (a write that fails is
/// billed too).
pub const WRITE_RETRY_MS: u64 = 60_000;

/// The ranges `GET /v1/history` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last hour, in minute steps.
    Hour,
    /// The last 24 hours, in five-minute steps.
    Day,
    /// The last 7 days, in hour steps.
    Week,
}

impl Range {
    /// Parses `1h`, `24h` or `7d`.
    ///
    /// # Errors
    /// `invalid_range` for anything else.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "1h" => Ok(Self::Hour),
            "24h" => Ok(Self::Day),
            "7d" => Ok(Self::Week),
            _ => Err(Error::new(
                Code::InvalidRange,
                "range must be 1h, 24h or 7d",
            )),
        }
    }

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// The step, in ms.
    #[must_use]
    pub const fn step_ms(self) -> u64 {
        match self {
            Self::Hour => MINUTE_MS,
            Self::Day => FIVE_MINUTES_MS,
            Self::Week => HOUR_MS,
        }
    }

    /// How many steps the range holds.
    #[must_use]
    pub const fn steps(self) -> u64 {
        match self {
            Self::Hour => 60,
            Self::Day => 288,
            Self::Week => 168,
        }
    }
}

/// The answer to `GET /v1/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryAnswer {
    /// The site.
    pub site: String,
    /// `1h`, `24h` or `7d`.
    pub range: &'static str,
    /// The step, in seconds.
    pub step_s: u64,
    /// `[step start (Unix ms), most people online in the step]`, oldest first, the last
    /// step the current (partial) one. A step nobody was sampled in is 0: no request
    /// reached any isolate then, which with tabs heartbeating every few seconds means
    /// nobody was online (or the samples were lost with an evicted writer).
    pub points: Vec<[u64; 2]>,
    /// The most people online today (UTC), and when.
    pub peak: Option<Mark>,
    /// The most people ever online, and when.
    pub record: Option<Mark>,
}

/// One site's history as one isolate holds it.
#[derive(Debug, Default)]
struct SiteHistory {
    /// This isolate's own samples.
    ring: Minutes,
    /// This isolate's highest sample, ever and today.
    best: Option<Mark>,
    today: Option<Mark>,
    /// Its copy of the key, and when it was read (`None`: never, so the record is unknown).
    stored: Option<Stored>,
    read_at: Option<u64>,
    /// When this isolate last wrote the key, and when it claimed it (until confirmed).
    last_write: Option<u64>,
    claimed_at: Option<u64>,
    /// No write before this (after a failed one).
    write_after: u64,
    /// Samples with people in them since the last write.
    unwritten: bool,
    /// The alerts' states as this isolate runs them (the writer's are the truth).
    alerts: Vec<AlertState>,
    alerts_changed: bool,
    /// Alerts that fired here and wait for the fresh read that lets them go out.
    pending: Vec<AlertDue>,
    /// A sync of this site is under way (requests interleave on Workers).
    syncing: bool,
}

/// The sans-IO state of one isolate's histories: samples in, reads and writes out. Driven
/// by [`Recorder`] only.
#[derive(Debug)]
pub struct History {
    isolate: String,
    location: Option<String>,
    config: HistoryConfig,
    rules: HashMap<String, Vec<AlertRule>>,
    sites: HashMap<String, SiteHistory>,
}

impl History {
    /// The history of isolate `isolate` (its id, as in its record keys); `rules` the alerts
    /// of each site that has any.
    #[must_use]
    pub fn new(
        isolate: &str,
        config: HistoryConfig,
        rules: HashMap<String, Vec<AlertRule>>,
    ) -> Self {
        Self {
            isolate: isolate.to_owned(),
            location: None,
            config,
            rules,
            sites: HashMap::new(),
        }
    }

    /// The same history, at location `location` (as the presence engine names it): the
    /// writer's location takes over first when the writer goes ([`writer`]).
    #[must_use]
    pub fn with_location(mut self, location: &str) -> Self {
        self.location = Some(location.to_owned());
        self
    }

    fn rules(&self, site: &str) -> &[AlertRule] {
        self.rules.get(site).map_or(&[], Vec::as_slice)
    }

    fn role(&self, site: &SiteHistory, now: u64) -> Role {
        writer::role(
            &self.config,
            &self.isolate,
            self.location.as_deref(),
            site.stored.as_ref(),
            now,
        )
    }

    /// Takes a sample of `online` people on `site` at `now`; the record (with this sample)
    /// once the key has been read, else `None`. It also runs the site's alerts on it, from
    /// the states the key last showed: only the writer calls, but any isolate keeps a
    /// crossing it saw, for the case that the writer has gone (see `apply_read`).
    pub fn observe(&mut self, now: u64, site: &str, online: u64) -> Option<Mark> {
        let rules: Vec<AlertRule> = self.rules(site).to_vec();
        let s = self.sites.entry(site.to_owned()).or_default();
        s.ring.put(now, online);
        if online > 0 {
            let mark = Some(Mark { online, at: now });
            s.best = Mark::best(s.best, mark);
            s.today = Mark::best_of_day(s.today, mark);
            s.unwritten = true;
        }
        let known = s.read_at.is_some();
        if known {
            if s.alerts.len() != rules.len() {
                s.alerts = alerts::states_for(&rules, &s.alerts);
            }
            for (index, (rule, state)) in rules.iter().zip(s.alerts.iter_mut()).enumerate() {
                let before = *state;
                if alerts::step(rule, state, now, online) {
                    s.pending.push(AlertDue {
                        site: site.to_owned(),
                        index,
                        online,
                        threshold: rule.above,
                        at: now,
                    });
                }
                // A firing is written at once, before its call (a successor must not fire
                // again); being armed again waits for the next scheduled write.
                s.alerts_changed |= before.fired_at.is_none() && state.fired_at.is_some();
            }
        }
        known.then(|| Mark::best(s.stored.as_ref().and_then(|st| st.record), s.best))?
    }

    /// Whether `site` has I/O due at `now`: a read (never done, or older than
    /// [`HistoryConfig::read_ms`]), alerts waiting past a claim's confirmation, or a write
    /// this isolate owes.
    fn due(&self, now: u64, site: &str) -> bool {
        let Some(s) = self.sites.get(site) else {
            return false;
        };
        if s.syncing {
            return false;
        }
        s.read_at
            .is_none_or(|r| now >= r.saturating_add(self.config.read_ms))
            || (!s.pending.is_empty()
                && self.role(s, now) == Role::Writer
                && self.confirmed(s, now))
            || self.write_due(s, now)
    }

    fn write_due(&self, s: &SiteHistory, now: u64) -> bool {
        if now < s.write_after || s.read_at.is_none() {
            return false;
        }
        let since = |ms: u64| s.last_write.is_none_or(|w| now >= w.saturating_add(ms));
        let stored = s.stored.as_ref();
        match self.role(s, now) {
            Role::Writer => {
                let left_due = !s.pending.is_empty()
                    && self.confirmed(s, now)
                    && stored.is_some_and(|st| st.alerts.iter().any(|a| a.due.is_some()));
                (s.unwritten && since(self.config.write_ms) && self.config.within_pace(stored, now))
                    || ((s.alerts_changed || left_due) && self.config.within_cap(stored, now))
            }
            Role::Candidate => {
                (s.unwritten || !s.pending.is_empty())
                    && since(self.config.spacing_ms)
                    && self.config.within_pace(stored, now)
            }
            Role::Reader => false,
        }
    }

    /// Whether a claim of the key by this isolate is old enough for its alerts to go out.
    fn confirmed(&self, s: &SiteHistory, now: u64) -> bool {
        s.claimed_at
            .is_none_or(|c| now >= c.saturating_add(self.config.confirm_ms))
    }

    /// Sites with I/O due at `now`.
    #[must_use]
    pub fn sites_due(&self, now: u64) -> Vec<String> {
        let mut due: Vec<String> = self
            .sites
            .keys()
            .filter(|site| self.due(now, site))
            .cloned()
            .collect();
        due.sort();
        due
    }

    /// Applies a fresh read of the key. Another isolate named in it makes this one's alerts
    /// take the stored states. A crossing this isolate saw stays waiting only while the key
    /// shows that alert armed and has not been written since the crossing: had the writer
    /// seen it, it would have written the firing at once. So a crossing that came while the
    /// writer was gone (evicted, before the key is stale) is called late by whoever takes
    /// over, rather than lost.
    fn apply_read(&mut self, now: u64, site: &str, bytes: Option<&[u8]>) {
        let rules: Vec<AlertRule> = self.rules(site).to_vec();
        let isolate = self.isolate.clone();
        let s = self.sites.entry(site.to_owned()).or_default();
        s.stored = bytes.and_then(Stored::decode);
        s.read_at = Some(now);
        let mine = s.stored.as_ref().is_some_and(|st| st.writer == isolate);
        if !mine {
            s.claimed_at = None;
            let (stored_alerts, written_at) = s
                .stored
                .as_ref()
                .map_or((&[][..], 0), |st| (&st.alerts[..], st.written_at));
            let mut states = alerts::states_for(&rules, stored_alerts);
            s.pending.retain(|p| {
                written_at < p.at && states.get(p.index).is_some_and(|st| st.fired_at.is_none())
            });
            for p in &s.pending {
                if let Some(st) = states.get_mut(p.index) {
                    st.fired_at = Some(p.at);
                }
            }
            s.alerts = states;
            s.alerts_changed = !s.pending.is_empty();
        }
        // A call its writer left to make (evicted while confirming its claim): whoever takes
        // over makes it.
        let site_now = &self.sites[site];
        if self.role(site_now, now) == Role::Candidate
            && let Some(s) = self.sites.get_mut(site)
        {
            for (index, st) in s.alerts.iter().enumerate() {
                if let (Some(online), Some(at)) = (st.due, st.fired_at)
                    && !s.pending.iter().any(|p| p.index == index)
                {
                    s.pending.push(AlertDue {
                        site: site.to_owned(),
                        index,
                        online,
                        threshold: st.above,
                        at,
                    });
                }
            }
        }
    }

    /// The alerts that may go out now: this isolate is the writer by its fresh read (which
    /// has just written their firing, if the day's cap allowed), and past the confirmation
    /// delay of a claim.
    fn take_fired(&mut self, now: u64, site: &str) -> Vec<AlertDue> {
        let Some(s) = self.sites.get(site) else {
            return Vec::new();
        };
        if self.role(s, now) != Role::Writer || !self.confirmed(s, now) {
            return Vec::new();
        }
        self.sites
            .get_mut(site)
            .map(|s| {
                s.claimed_at = None;
                std::mem::take(&mut s.pending)
            })
            .unwrap_or_default()
    }

    /// The value to write if a write is due at `now` (after a fresh read).
    fn write_value(&self, now: u64, site: &str) -> Option<Stored> {
        let s = self.sites.get(site)?;
        if !self.write_due(s, now) {
            return None;
        }
        let mut next = s.stored.clone().unwrap_or_default();
        let mine = Stored {
            minutes: s.ring.clone(),
            fives: {
                let mut f = Fives::default();
                f.merge(&s.ring);
                f
            },
            record: s.best,
            peak: s.today,
            ..Stored::default()
        };
        next.merge_samples(&mine);
        next.writer.clone_from(&self.isolate);
        next.location.clone_from(&self.location);
        next.written_at = now;
        next.alerts.clone_from(&s.alerts);
        // Calls still to be made after this write (a claim's, until confirmed) are written as
        // due; the others are made right after it.
        let calls_wait = self.role(s, now) != Role::Writer || !self.confirmed(s, now);
        for a in &mut next.alerts {
            a.due = None;
        }
        if calls_wait {
            for p in &s.pending {
                if let Some(a) = next.alerts.get_mut(p.index) {
                    a.due = Some(p.online);
                }
            }
        }
        let today = now / stored::DAY_MS;
        next.day_writes = [today, next.writes_on(today) + 1];
        Some(next)
    }

    fn wrote(&mut self, now: u64, site: &str, value: Stored, ok: bool) {
        let Some(s) = self.sites.get_mut(site) else {
            return;
        };
        if !ok {
            s.write_after = now.saturating_add(WRITE_RETRY_MS);
            return;
        }
        if s.stored.as_ref().is_none_or(|st| st.writer != value.writer) {
            s.claimed_at = Some(now);
        }
        s.stored = Some(value);
        s.last_write = Some(now);
        s.unwritten = false;
        s.alerts_changed = false;
    }

    /// The history of `site` over `range` as this isolate knows it at `now`.
    #[must_use]
    pub fn answer(&self, now: u64, site: &str, range: Range) -> HistoryAnswer {
        let s = self.sites.get(site);
        let stored = s.and_then(|s| s.stored.as_ref());
        let step = range.step_ms();
        let last = now - now % step;
        let first = last.saturating_sub((range.steps() - 1) * step);
        let points = (0..range.steps())
            .map(|i| first + i * step)
            .map(|t| {
                let to = t + step;
                let mut n = s.map_or(0, |s| s.ring.max_in(t, to));
                if let Some(st) = stored {
                    n = n.max(st.minutes.max_in(t, to));
                    if step >= FIVE_MINUTES_MS {
                        n = n.max(st.fives.max_in(t, to));
                    }
                }
                [t, n]
            })
            .collect();
        let today = now / stored::DAY_MS;
        let peak = Mark::best_of_day(stored.and_then(|st| st.peak), s.and_then(|s| s.today))
            .filter(|m| m.day() == today);
        let record = Mark::best(stored.and_then(|st| st.record), s.and_then(|s| s.best));
        HistoryAnswer {
            site: site.to_owned(),
            range: range.as_str(),
            step_s: step / 1000,
            points,
            peak,
            record,
        }
    }
}

/// The driver: runs [`History`] against a [`Store`] (see the module's contract). One per
/// isolate; its state is never borrowed across an `await`.
#[derive(Debug)]
pub struct Recorder {
    history: RefCell<History>,
}

impl Recorder {
    /// Wraps a history.
    #[must_use]
    pub fn new(history: History) -> Self {
        Self {
            history: RefCell::new(history),
        }
    }

    /// See [`History::observe`].
    pub fn observe(&self, now: u64, site: &str, online: u64) -> Option<Mark> {
        self.history.borrow_mut().observe(now, site, online)
    }

    /// Sites with reads, writes or alerts due at `now`: cheap, no I/O.
    #[must_use]
    pub fn sites_due(&self, now: u64) -> Vec<String> {
        self.history.borrow().sites_due(now)
    }

    /// Reads and writes `site`'s key as due at `now`, and returns the webhook calls to
    /// make. A read before every write (and before any alert goes out) keeps one writer.
    ///
    /// # Errors
    /// 503 when the read fails (a failed write is retried after [`WRITE_RETRY_MS`]).
    pub async fn sync<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
    ) -> Result<Vec<AlertDue>, Error> {
        if !self.history.borrow().due(now, site) {
            return Ok(Vec::new());
        }
        self.set_syncing(site, true);
        let result = self.sync_now(store, now, site).await;
        self.set_syncing(site, false);
        result
    }

    fn set_syncing(&self, site: &str, on: bool) {
        if let Some(s) = self.history.borrow_mut().sites.get_mut(site) {
            s.syncing = on;
        }
    }

    async fn sync_now<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
    ) -> Result<Vec<AlertDue>, Error> {
        let key = history_key(site);
        let bytes = store.get(&key).await?;
        self.history
            .borrow_mut()
            .apply_read(now, site, bytes.as_deref());
        let value = self.history.borrow().write_value(now, site);
        if let Some(value) = value {
            let ok = store
                .put(&key, value.encode(), None, HISTORY_TTL_S)
                .await
                .is_ok();
            self.history.borrow_mut().wrote(now, site, value, ok);
        }
        Ok(self.history.borrow_mut().take_fired(now, site))
    }

    /// `site`'s history over `range`, reading the key first when this isolate's copy is
    /// older than [`HistoryConfig::read_ms`] (or it has none).
    ///
    /// # Errors
    /// 503 when the read fails and there is no copy to answer from.
    pub async fn history<S: Store>(
        &self,
        store: &S,
        now: u64,
        site: &str,
        range: Range,
    ) -> Result<HistoryAnswer, Error> {
        let (stale, known) = {
            let h = self.history.borrow();
            let read_at = h.sites.get(site).and_then(|s| s.read_at);
            (
                read_at.is_none_or(|r| now >= r.saturating_add(h.config.read_ms)),
                read_at.is_some(),
            )
        };
        if stale {
            match store.get(&history_key(site)).await {
                Ok(bytes) => self
                    .history
                    .borrow_mut()
                    .apply_read(now, site, bytes.as_deref()),
                Err(e) if !known => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(self.history.borrow().answer(now, site, range))
    }
}

#[cfg(test)]
mod tests;
