//! Scenarios and workloads.

use herenow_core::engine::EngineConfig;

/// What visitors do. Times in milliseconds; shares in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Mean visit length (exponential).
    pub mean_visit_ms: u64,
    /// Mean time on a page before navigating (exponential).
    pub mean_page_ms: u64,
    /// Share of navigations that load a new page (a leave, then a new tab id); the rest
    /// change page on the same tab (single-page apps).
    pub mpa_share: f64,
    /// Mean visible spell before the visitor looks away (exponential).
    pub mean_visible_ms: u64,
    /// Mean time away, tab hidden (exponential); past the window the tab drops out.
    pub mean_away_ms: u64,
    /// Share of visits that open a second tab in the background.
    pub extra_tab_share: f64,
    /// Mean time between switches between two tabs (exponential).
    pub mean_switch_ms: u64,
    /// Share of visits that end without a leave (crash, network loss).
    pub vanish_share: f64,
    /// Share of visitors that are signed-in members.
    pub member_share: f64,
    /// Distinct pages (popularity falls off steeply).
    pub pages: u32,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            mean_visit_ms: 10 * 60_000,
            mean_page_ms: 4 * 60_000,
            mpa_share: 0.5,
            mean_visible_ms: 8 * 60_000,
            mean_away_ms: 2 * 60_000,
            extra_tab_share: 0.3,
            mean_switch_ms: 3 * 60_000,
            vanish_share: 0.1,
            member_share: 0.1,
            pages: 200,
        }
    }
}

/// One simulated deployment and how long to watch it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name in the report.
    pub name: String,
    /// Visits in progress on average (arrival rate × mean visit); people online are a bit
    /// fewer, as visitors away for longer than the window drop out.
    pub visitors: u64,
    /// Locations.
    pub locations: usize,
    /// Isolates per location.
    pub isolates_per_location: usize,
    /// Mean isolate lifetime before eviction (exponential).
    pub isolate_lifetime_ms: u64,
    /// The largest KV visibility lag between locations.
    pub max_lag_ms: u64,
    /// Time simulated before measuring (the population starts at its mean, all arriving
    /// in the first heartbeat interval).
    pub warmup_ms: u64,
    /// Time measured.
    pub measure_ms: u64,
    /// How often the count is sampled at a random isolate, against the truth.
    pub sample_every_ms: u64,
    /// How many visit-ending leaves are followed to measure how fast they show.
    pub leave_samples: usize,
    /// What visitors do.
    pub workload: Workload,
    /// The engine's settings.
    pub engine: EngineConfig,
}

impl Scenario {
    /// About 10 people online all day at 1 location (12 visits in progress: some are away
    /// long enough to drop out), for a whole day.
    #[must_use]
    pub fn small() -> Self {
        Self {
            name: "small".into(),
            visitors: 12,
            locations: 1,
            isolates_per_location: 1,
            isolate_lifetime_ms: 2 * 3_600_000,
            max_lag_ms: 60_000,
            warmup_ms: 10 * 60_000,
            measure_ms: 24 * 3_600_000,
            sample_every_ms: 30_000,
            leave_samples: 400,
            workload: Workload::default(),
            engine: EngineConfig::default(),
        }
    }

    /// 1,000 visits in progress over 10 locations, one isolate each.
    #[must_use]
    pub fn medium() -> Self {
        Self {
            name: "medium".into(),
            visitors: 1_000,
            locations: 10,
            isolates_per_location: 1,
            isolate_lifetime_ms: 2 * 3_600_000,
            max_lag_ms: 60_000,
            warmup_ms: 10 * 60_000,
            measure_ms: 60 * 60_000,
            sample_every_ms: 2_000,
            leave_samples: 400,
            workload: Workload::default(),
            engine: EngineConfig::default(),
        }
    }

    /// 100,000 visits in progress over 100 locations, one isolate each (a shorter run).
    #[must_use]
    pub fn large() -> Self {
        Self {
            name: "large".into(),
            visitors: 100_000,
            locations: 100,
            isolates_per_location: 1,
            isolate_lifetime_ms: 2 * 3_600_000,
            max_lag_ms: 60_000,
            warmup_ms: 150_000,
            measure_ms: 150_000,
            sample_every_ms: 1_000,
            leave_samples: 300,
            workload: Workload::default(),
            engine: EngineConfig::default(),
        }
    }

    /// The same scenario with `isolates` isolates per location.
    #[must_use]
    pub fn with_isolates(mut self, isolates: usize) -> Self {
        self.isolates_per_location = isolates.max(1);
        self.name = format!("{} I={}", self.name, self.isolates_per_location);
        self
    }

    /// The same scenario with KV visibility lag up to `max_lag_ms` between locations.
    #[must_use]
    pub fn with_max_lag(mut self, max_lag_ms: u64) -> Self {
        self.max_lag_ms = max_lag_ms;
        self.name = format!("{} lag≤{}s", self.name, max_lag_ms / 1000);
        self
    }

    /// The same scenario measured for `measure_ms` only.
    #[must_use]
    pub fn with_measure(mut self, measure_ms: u64) -> Self {
        self.measure_ms = measure_ms;
        self
    }
}
