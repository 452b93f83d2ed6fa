//! The example's command line: flags parsed strictly (an unknown flag or a bad value is an
//! error the example answers with exit code 2).

use core::fmt;

use super::scenario::{Channel, DEFAULT_MOVE_PROB, Routing, Scenario};

/// The isolates per location the full run sweeps (for medium; large runs fewer).
pub const SWEEP: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// One scenario only.
    pub only: Option<String>,
    /// One isolate count only.
    pub isolates: Option<usize>,
    /// One routing only.
    pub routing: Option<Routing>,
    /// Sticky routing's chance per request to move.
    pub move_prob: f64,
    /// One channel only (default: both, `kv` and `cache`).
    pub channel: Option<Channel>,
    /// With the cache channel, the chance that a read of it misses.
    pub channel_miss: f64,
    /// Minutes measured (overrides each scenario's).
    pub measure_min: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// Heartbeat interval, in seconds.
    pub heartbeat_s: Option<f64>,
    /// Presence window, in seconds.
    pub window_s: Option<f64>,
    /// KV lag bound, in seconds.
    pub lag_s: Option<u64>,
    /// Publishing delay (and listing interval) when no other isolate is active, in seconds.
    pub solo_delay_s: Option<f64>,
    /// How long a record vouches for its tabs without a rewrite, in seconds.
    pub lease_s: Option<f64>,
    /// Locations (overrides the scenario's).
    pub locations: Option<usize>,
    /// Visits in progress on average (overrides the scenario's).
    pub visitors: Option<u64>,
    /// No isolate evictions (as in a short run against real workers).
    pub no_evictions: bool,
    /// Seconds between count samples (overrides the scenario's).
    pub sample_s: Option<f64>,
    /// Seconds simulated before measuring (overrides the scenario's).
    pub warmup_s: Option<f64>,
    /// Engine settings for experiments.
    pub remote_delay_ms: Option<u64>,
    /// Engine settings for experiments.
    pub join_delay_ms: Option<u64>,
    /// One JSON object per line instead of tables.
    pub json: bool,
    /// Print the error by source as well.
    pub diagnose: bool,
    /// Compute the free plan's figure for every row, not only for one isolate.
    pub free_plan: bool,
    /// Runs at once.
    pub jobs: usize,
    /// Print the usage and exit.
    pub help: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            only: None,
            isolates: None,
            routing: None,
            move_prob: DEFAULT_MOVE_PROB,
            channel: None,
            channel_miss: 0.0,
            measure_min: None,
            seed: 1,
            heartbeat_s: None,
            window_s: None,
            lag_s: None,
            solo_delay_s: None,
            lease_s: None,
            locations: None,
            visitors: None,
            no_evictions: false,
            sample_s: None,
            warmup_s: None,
            remote_delay_ms: None,
            join_delay_ms: None,
            json: false,
            diagnose: false,
            free_plan: false,
            jobs: 2,
            help: false,
        }
    }
}

/// A bad command line, said plainly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// The usage text.
pub const USAGE: &str = "usage: simulate [--only small|medium|large] [--isolates N] \
[--routing random|sticky] [--move-prob P] [--channel kv|cache] [--channel-miss P] [--measure-min N | --measure-s N] [--seed N] \
[--locations N] [--visitors N] [--no-evictions] [--sample-s N] [--warmup-s N] [--heartbeat-s N] \
[--window-s N] [--solo-delay-s N] [--lease-s N] [--lag-s N] [--remote-delay-ms N] [--join-delay-ms N] [--json] [--diagnose] \
[--free-plan] [--jobs N]";

/// A duration flag's value: seconds above 0.
fn seconds(p: &mut lexopt::Parser, flag: &str) -> Result<f64, CliError> {
    value(p, flag, |x: &f64| *x > 0.0, "seconds above 0")
}

fn value<T: std::str::FromStr>(
    p: &mut lexopt::Parser,
    flag: &str,
    ok: impl Fn(&T) -> bool,
    what: &str,
) -> Result<T, CliError> {
    let raw = p
        .value()
        .map_err(|_| CliError(format!("{flag} needs a value ({what})")))?;
    let s = raw
        .into_string()
        .map_err(|_| CliError(format!("{flag}: the value is not UTF-8")))?;
    s.parse::<T>()
        .ok()
        .filter(|v| ok(v))
        .ok_or_else(|| CliError(format!("{flag}: bad value {s:?} (expected {what})")))
}

/// Parses the arguments (without the program name).
///
/// # Errors
/// An unknown flag, a missing or bad value, or settings the engine rejects.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, CliError> {
    use lexopt::Arg::Long;
    let mut o = Options::default();
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| CliError(e.to_string()))? {
        match arg {
            Long("only") => {
                let s: String = value(&mut p, "--only", |_| true, "small, medium or large")?;
                if Scenario::named(&s).is_none() {
                    return Err(CliError(format!(
                        "--only: bad value {s:?} (expected small, medium or large)"
                    )));
                }
                o.only = Some(s);
            }
            Long("isolates") => {
                o.isolates = Some(value(
                    &mut p,
                    "--isolates",
                    |n: &usize| (1..=64).contains(n),
                    "1 to 64",
                )?);
            }
            Long("routing") => {
                let s: String = value(&mut p, "--routing", |_| true, "random or sticky")?;
                o.routing = Some(match s.as_str() {
                    "random" => Routing::Random,
                    "sticky" => Routing::Sticky,
                    _ => {
                        return Err(CliError(format!(
                            "--routing: bad value {s:?} (expected random or sticky)"
                        )));
                    }
                });
            }
            Long("channel") => {
                let s: String = value(&mut p, "--channel", |_| true, "kv or cache")?;
                o.channel = Some(match s.as_str() {
                    "kv" => Channel::Kv,
                    "cache" => Channel::Cache,
                    _ => {
                        return Err(CliError(format!(
                            "--channel: bad value {s:?} (expected kv or cache)"
                        )));
                    }
                });
            }
            Long("channel-miss") => {
                o.channel_miss = value(
                    &mut p,
                    "--channel-miss",
                    |x: &f64| (0.0..=1.0).contains(x),
                    "a probability from 0 to 1",
                )?;
            }
            Long("move-prob") => {
                o.move_prob = value(
                    &mut p,
                    "--move-prob",
                    |x: &f64| (0.0..=1.0).contains(x),
                    "a probability from 0 to 1",
                )?;
            }
            Long("measure-min") => {
                o.measure_min = Some(value(
                    &mut p,
                    "--measure-min",
                    |x: &f64| *x > 0.0 && *x <= 7.0 * 24.0 * 60.0,
                    "minutes, above 0, at most a week",
                )?);
            }
            Long("measure-s") => {
                let s: f64 = value(
                    &mut p,
                    "--measure-s",
                    |x: &f64| *x > 0.0 && *x <= 7.0 * 24.0 * 3_600.0,
                    "seconds, above 0, at most a week",
                )?;
                o.measure_min = Some(s / 60.0);
            }
            Long("locations") => {
                o.locations = Some(value(
                    &mut p,
                    "--locations",
                    |n: &usize| (1..=1_000).contains(n),
                    "1 to 1000",
                )?);
            }
            Long("visitors") => {
                o.visitors = Some(value(
                    &mut p,
                    "--visitors",
                    |n: &u64| (1..=1_000_000).contains(n),
                    "1 to 1000000",
                )?);
            }
            Long("no-evictions") => o.no_evictions = true,
            Long("sample-s") => {
                o.sample_s = Some(value(
                    &mut p,
                    "--sample-s",
                    |x: &f64| *x >= 0.1 && *x <= 3_600.0,
                    "seconds from 0.1 to 3600",
                )?);
            }
            Long("warmup-s") => {
                o.warmup_s = Some(value(
                    &mut p,
                    "--warmup-s",
                    |x: &f64| *x >= 0.0 && *x <= 24.0 * 3_600.0,
                    "seconds from 0 to a day",
                )?);
            }
            Long("seed") => o.seed = value(&mut p, "--seed", |_| true, "an integer")?,
            Long("heartbeat-s") => o.heartbeat_s = Some(seconds(&mut p, "--heartbeat-s")?),
            Long("window-s") => o.window_s = Some(seconds(&mut p, "--window-s")?),
            Long("solo-delay-s") => o.solo_delay_s = Some(seconds(&mut p, "--solo-delay-s")?),
            Long("lease-s") => o.lease_s = Some(seconds(&mut p, "--lease-s")?),
            Long("lag-s") => o.lag_s = Some(value(&mut p, "--lag-s", |_| true, "seconds")?),
            Long("remote-delay-ms") => {
                o.remote_delay_ms = Some(value(&mut p, "--remote-delay-ms", |_| true, "ms")?);
            }
            Long("join-delay-ms") => {
                o.join_delay_ms = Some(value(&mut p, "--join-delay-ms", |_| true, "ms")?);
            }
            Long("jobs") => {
                o.jobs = value(
                    &mut p,
                    "--jobs",
                    |n: &usize| (1..=16).contains(n),
                    "1 to 16",
                )?;
            }
            Long("json") => o.json = true,
            Long("diagnose") => o.diagnose = true,
            Long("free-plan") => o.free_plan = true,
            Long("help") | lexopt::Arg::Short('h') => o.help = true,
            other => return Err(CliError(other.unexpected().to_string())),
        }
    }
    // The settings must be ones the engine accepts.
    o.apply(Scenario::small())
        .engine
        .validate()
        .map_err(|e| CliError(format!("bad settings: {}", e.message)))?;
    Ok(o)
}

impl Options {
    /// `sc` with the settings of these options (not isolates, routing or measure time).
    #[must_use]
    pub fn apply(&self, mut sc: Scenario) -> Scenario {
        if let Some(n) = self.locations {
            sc.locations = n;
        }
        if let Some(n) = self.visitors {
            sc.visitors = n;
        }
        if self.no_evictions {
            // Far longer than any run: an isolate then lives as long as the simulation.
            sc.isolate_lifetime_ms = 1_000 * 24 * 3_600_000;
        }
        if let Some(s) = self.sample_s {
            sc.sample_every_ms = (s * 1000.0).round() as u64;
        }
        if let Some(s) = self.warmup_s {
            sc.warmup_ms = (s * 1000.0).round() as u64;
        }
        if let Some(w) = self.window_s {
            sc = sc.with_window((w * 1000.0).round() as u64);
        }
        if let Some(h) = self.heartbeat_s {
            sc = sc.with_heartbeat((h * 1000.0).round() as u64);
        }
        if let Some(s) = self.solo_delay_s {
            sc.engine.solo_delay_ms = (s * 1000.0).round() as u64;
        }
        if let Some(s) = self.lease_s {
            sc.engine.lease_ms = (s * 1000.0).round() as u64;
        }
        if let Some(l) = self.lag_s {
            sc = sc.with_max_lag(l * 1000);
        }
        if let Some(ms) = self.remote_delay_ms {
            sc.engine.remote_delay_ms = ms;
        }
        if let Some(ms) = self.join_delay_ms {
            sc.engine.join_delay_ms = ms;
        }
        sc.move_prob = self.move_prob;
        sc
    }
}
