//! Scenarios and workloads.

use herenow_core::engine::EngineConfig;

/// The default chance per request that a sticky tab moves to another isolate.
pub const DEFAULT_MOVE_PROB: f64 = 0.02;

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

/// How requests of a tab find an isolate of its location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Routing {
    /// Every request goes to a uniformly random isolate: the worst case for the engine,
    /// as every isolate then sees every tab.
    Random,
    /// A tab's requests stay on one isolate (a browser reusing its HTTP/2 connection) and
    /// move to another random one with [`Scenario::move_prob`] per request (a new
    /// connection). An evicted isolate's tabs stay with the fresh one that replaces it.
    Sticky,
}

impl Routing {
    /// The name used on the command line and in the JSON output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Sticky => "sticky",
        }
    }
}

/// How the isolates of one location exchange their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Through KV alone: a `*.workers.dev` deployment, where the Cache API does nothing.
    Kv,
    /// Through the per-location channel (the Cache API on a custom domain), with KV
    /// written and listed by each location's publisher only.
    Cache,
}

impl Channel {
    /// The name used on the command line and in the JSON output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Cache => "cache",
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
    /// How requests find an isolate of their location.
    pub routing: Routing,
    /// Under [`Routing::Sticky`], the chance per request that a tab moves to another
    /// isolate (default 0.02: about one new connection every 12 minutes of heartbeats).
    pub move_prob: f64,
    /// How the isolates of a location exchange records.
    pub channel: Channel,
    /// With [`Channel::Cache`], the chance that a read of it misses (an evicted entry).
    pub channel_miss: f64,
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
            routing: Routing::Random,
            move_prob: DEFAULT_MOVE_PROB,
            channel: Channel::Kv,
            channel_miss: 0.0,
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
            routing: Routing::Random,
            move_prob: DEFAULT_MOVE_PROB,
            channel: Channel::Kv,
            channel_miss: 0.0,
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
            routing: Routing::Random,
            move_prob: DEFAULT_MOVE_PROB,
            channel: Channel::Kv,
            channel_miss: 0.0,
            isolate_lifetime_ms: 2 * 3_600_000,
            max_lag_ms: 60_000,
            // Isolates start alone and list the others at the solo delay (180 s); with KV's
            // lag (60 s) and a heartbeat (60 s), 5 minutes is when every isolate has seen
            // every location once (150 s, enough at the old 15 s heartbeat, left counts
            // 65 % low).
            warmup_ms: 300_000,
            measure_ms: 150_000,
            sample_every_ms: 1_000,
            leave_samples: 300,
            workload: Workload::default(),
            engine: EngineConfig::default(),
        }
    }

    /// The scenario named `name` (small, medium or large), if there is one.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "medium" => Some(Self::medium()),
            "large" => Some(Self::large()),
            _ => None,
        }
    }

    /// The same scenario with `isolates` isolates per location.
    #[must_use]
    pub fn with_isolates(mut self, isolates: usize) -> Self {
        self.isolates_per_location = isolates.max(1);
        self
    }

    /// The same scenario with its locations' isolates exchanging records through
    /// `channel` (reads of a cache channel missing with chance `miss`).
    #[must_use]
    pub fn with_channel(mut self, channel: Channel, miss: f64) -> Self {
        self.channel = channel;
        self.channel_miss = miss;
        self
    }

    /// The same scenario with `routing` (and `move_prob` for sticky routing).
    #[must_use]
    pub fn with_routing(mut self, routing: Routing, move_prob: f64) -> Self {
        self.routing = routing;
        self.move_prob = move_prob;
        self
    }

    /// The same scenario with the engine's heartbeat interval, which the client's beat
    /// follows (the server tells it), set to `heartbeat_ms`, and the remote delay that goes
    /// with it, as the edge sets them ([`EngineConfig::with_heartbeat`]).
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat_ms: u64) -> Self {
        self.engine = self.engine.with_heartbeat(heartbeat_ms);
        self
    }

    /// The same scenario with the presence window set to `window_ms` (the lease is kept at
    /// least a window, as the engine requires).
    #[must_use]
    pub fn with_window(mut self, window_ms: u64) -> Self {
        self.engine.window_ms = window_ms;
        self.engine.lease_ms = self.engine.lease_ms.max(window_ms);
        self
    }

    /// A label for tables: the name, and isolates and routing when not the defaults.
    #[must_use]
    pub fn label(&self) -> String {
        let mut s = self.name.clone();
        if self.isolates_per_location > 1 {
            s = format!(
                "{s} I={} {}",
                self.isolates_per_location,
                self.routing.name()
            );
        }
        if self.channel == Channel::Cache {
            s = format!("{s} cache");
        }
        s
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
