//! The history's KV budget, measured: many isolates, each its own [`Recorder`], over
//! simulated days against a KV model with lag, with evictions, a daily curve and spikes.
//! [`run`] counts the writes (the budget: [`TARGET_WRITES_PER_DAY`] per site) and compares
//! the webhook calls made with the crossings an exact observer would alert on. For the
//! simulation (`herenow-sim`) and core's tests; never part of what ships.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::alerts::{self, AlertRule, AlertState};
use super::{History, HistoryConfig, Recorder};
use crate::store::{ListPage, ManualClock, Store, StoreError, block_on_ready};

pub use super::writer::TARGET_WRITES_PER_DAY;

/// One simulated site.
#[derive(Debug, Clone)]
pub struct BudgetRun {
    /// Isolates serving the site at any time (spread over `locations`).
    pub isolates: usize,
    /// Locations (KV shows a write at once at its own, after a lag elsewhere).
    pub locations: usize,
    /// People online at the daily peak (0: a site nobody visits).
    pub peak_people: u64,
    /// Mean isolate lifetime before eviction, in seconds.
    pub evict_mean_s: u64,
    /// KV's lag elsewhere: uniform in `[0, lag_max_ms]` per write and location.
    pub lag_max_ms: u64,
    /// The site's alerts.
    pub alerts: Vec<AlertRule>,
    /// Simulated days.
    pub days: u64,
    /// The history's tunables.
    pub config: HistoryConfig,
    /// Seeds the routing, lags and evictions.
    pub seed: u64,
}

impl Default for BudgetRun {
    fn default() -> Self {
        Self {
            isolates: 20,
            locations: 5,
            peak_people: 2_000,
            evict_mean_s: 2 * 3600,
            lag_max_ms: 60_000,
            alerts: vec![
                AlertRule {
                    above: 1_500,
                    cooldown_ms: alerts::DEFAULT_COOLDOWN_MS,
                },
                AlertRule {
                    above: 2_100,
                    cooldown_ms: alerts::DEFAULT_COOLDOWN_MS,
                },
            ],
            days: 1,
            config: HistoryConfig::default(),
            seed: 1,
        }
    }
}

/// What a run cost and did.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReport {
    /// KV writes a day (history, records and alert states: one key per site).
    pub writes_per_day: f64,
    /// The most writes in any one simulated day.
    pub max_writes_in_a_day: u64,
    /// KV reads a day.
    pub reads_per_day: f64,
    /// Webhook calls made.
    pub alert_calls: u64,
    /// Calls an exact observer sampling every step would have made.
    pub expected_calls: u64,
    /// Isolates started (evictions replace them).
    pub isolates_started: u64,
}

impl BudgetReport {
    /// One line for a report: the budget beside its target.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "history KV writes/site/day: {:.1} (max {} in a day; target ≤ {TARGET_WRITES_PER_DAY}: {}), reads/day {:.0}, alert calls {} for {} crossings",
            self.writes_per_day,
            self.max_writes_in_a_day,
            if self.max_writes_in_a_day <= TARGET_WRITES_PER_DAY {
                "pass"
            } else {
                "FAIL"
            },
            self.reads_per_day,
            self.alert_calls,
            self.expected_calls
        )
    }
}

/// A small deterministic PRNG (splitmix64), so a seed gives one run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

struct Version {
    bytes: Vec<u8>,
    visible_at: Vec<u64>,
}

/// KV with lag: a write shows at once at its location, after a random lag elsewhere.
struct LagKv {
    clock: ManualClock,
    versions: RefCell<BTreeMap<String, Vec<Version>>>,
    rng: RefCell<Rng>,
    locations: usize,
    lag_max_ms: u64,
    writes: Cell<u64>,
    reads: Cell<u64>,
}

/// One location's view of [`LagKv`].
struct View<'a> {
    kv: &'a LagKv,
    location: usize,
}

impl Store for View<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.reads.set(self.kv.reads.get() + 1);
        let now = self.kv.clock.now_ms();
        Ok(self.kv.versions.borrow().get(key).and_then(|vs| {
            vs.iter()
                .rev()
                .find(|v| v.visible_at[self.location] <= now)
                .map(|v| v.bytes.clone())
        }))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        _metadata: Option<String>,
        _ttl_s: u64,
    ) -> Result<(), StoreError> {
        self.kv.writes.set(self.kv.writes.get() + 1);
        let now = self.kv.clock.now_ms();
        let mut rng = self.kv.rng.borrow_mut();
        let visible_at = (0..self.kv.locations)
            .map(|l| {
                if l == self.location {
                    now
                } else {
                    now + rng.below(self.kv.lag_max_ms + 1)
                }
            })
            .collect();
        let mut all = self.kv.versions.borrow_mut();
        let vs = all.entry(key.to_owned()).or_default();
        vs.push(Version {
            bytes: value,
            visible_at,
        });
        // Versions older than one visible everywhere are never read again.
        let lag = self.kv.lag_max_ms;
        if let Some(i) = vs
            .iter()
            .rposition(|v| v.visible_at.iter().all(|&t| t + lag < now))
        {
            vs.drain(..i);
        }
        Ok(())
    }

    async fn list(&self, _prefix: &str, _cursor: Option<&str>) -> Result<ListPage, StoreError> {
        Ok(ListPage::default())
    }
}

/// People online at `t` (ms into the run): a daily curve between 30 % and 100 % of the
/// peak, with a spike to 110 % for ten minutes twice a day.
fn people(peak: u64, t: u64) -> u64 {
    let day = super::stored::DAY_MS as f64;
    let phase = (t as f64 % day) / day * std::f64::consts::TAU;
    let base = 0.65 - 0.35 * phase.cos();
    let in_day = t % super::stored::DAY_MS;
    let spike = [9 * 3_600_000, 20 * 3_600_000]
        .iter()
        .any(|&s| in_day >= s && in_day < s + 600_000);
    let f = if spike { 1.1 } else { base };
    (peak as f64 * f).round() as u64
}

/// Runs `cfg` and reports what it cost.
#[must_use]
pub fn run(cfg: &BudgetRun) -> BudgetReport {
    const STEP_MS: u64 = 5_000;
    // A UTC midnight.
    let t0 = 1_800_000_000_000 - 1_800_000_000_000 % super::stored::DAY_MS;
    let clock = ManualClock::new(t0);
    let kv = LagKv {
        clock: clock.clone(),
        versions: RefCell::default(),
        rng: RefCell::new(Rng(cfg.seed ^ 0x5eed)),
        locations: cfg.locations.max(1),
        lag_max_ms: cfg.lag_max_ms,
        writes: Cell::new(0),
        reads: Cell::new(0),
    };
    let mut rng = Rng(cfg.seed);
    let mut started = 0u64;
    // Isolate n serves location n % locations; its replacement after an eviction too.
    let make = |started: &mut u64, n: usize| {
        *started += 1;
        let mut rules = HashMap::new();
        rules.insert("site".to_owned(), cfg.alerts.clone());
        let history = History::new(&format!("iso-{started}"), cfg.config, rules)
            .with_location(&format!("loc-{}", n % cfg.locations.max(1)));
        Recorder::new(history)
    };
    let mut isolates: Vec<Recorder> = (0..cfg.isolates).map(|n| make(&mut started, n)).collect();
    let mut oracle: Vec<AlertState> = alerts::states_for(&cfg.alerts, &[]);
    let (mut calls, mut expected) = (0u64, 0u64);
    let mut writes_by_day = vec![0u64; cfg.days as usize];
    let steps = cfg.days * super::stored::DAY_MS / STEP_MS;
    let evict_p = STEP_MS as f64 / (cfg.evict_mean_s.max(1) * 1000) as f64;
    for i in 0..steps {
        let now = t0 + i * STEP_MS;
        clock.set(now);
        let online = people(cfg.peak_people, now - t0);
        for (rule, state) in cfg.alerts.iter().zip(oracle.iter_mut()) {
            expected += u64::from(alerts::step(rule, state, now, online));
        }
        // Each tab heartbeats every 15 s, to a random isolate.
        let beats = online * STEP_MS / 15_000;
        let writes_before = kv.writes.get();
        for (n, iso) in isolates.iter_mut().enumerate() {
            if rng.chance(evict_p) {
                *iso = make(&mut started, n);
            }
            let share = beats as f64 / cfg.isolates.max(1) as f64;
            if !rng.chance(share.min(1.0)) {
                continue;
            }
            iso.observe(now, "site", online);
            let view = View {
                kv: &kv,
                location: n % kv.locations,
            };
            for site in iso.sites_due(now) {
                if let Ok(fired) = block_on_ready(iso.sync(&view, now, &site)) {
                    calls += fired.len() as u64;
                }
            }
        }
        let day = ((now - t0) / super::stored::DAY_MS) as usize;
        writes_by_day[day] += kv.writes.get() - writes_before;
    }
    let days = cfg.days.max(1) as f64;
    BudgetReport {
        writes_per_day: kv.writes.get() as f64 / days,
        max_writes_in_a_day: writes_by_day.iter().copied().max().unwrap_or(0),
        reads_per_day: kv.reads.get() as f64 / days,
        alert_calls: calls,
        expected_calls: expected,
        isolates_started: started,
    }
}
