//! The edge's configuration, read from `wrangler.toml` `[vars]` (and secrets), validated
//! with errors that name the bad setting.

use std::collections::BTreeMap;

use herenow_core::engine::{EngineConfig, Setting};
use herenow_core::history::HistoryConfig;
use herenow_core::history::alerts::{AlertRule, DEFAULT_COOLDOWN_MS};
use herenow_core::limits::LimitConfig;
use herenow_core::protocol::validate_site;
use serde::Deserialize;

/// One configured site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Origins allowed to call the API for this site, exactly as browsers send them.
    pub origins: Vec<String>,
    /// The HS256 secret member tokens are signed with (from the secret
    /// `MEMBER_SECRET_<SITE>`); `None`: the site has no members, only guests.
    #[serde(skip)]
    pub member_secret: Option<String>,
    /// Whether `GET /v1/online` names this site's members to anyone (`"members_public":
    /// true`). Off by default: names are personal data, counts are not.
    #[serde(default)]
    pub members_public: bool,
    /// The key a request must send (`Authorization: Bearer …`) to read the member list of a
    /// site that is not `members_public` (from the secret `READ_KEY_<SITE>`, at least 32
    /// bytes); `None`: nobody can.
    #[serde(skip)]
    pub read_key: Option<String>,
    /// Whether the site's numbers are for everyone (`"public"`): `true` also serves the
    /// embeddable widget (`/v1/widget`); `false` refuses the widget, `/v1/history` and
    /// `/v1/badge.svg` (403 `not_public`); unset serves history and badge (public, as counts
    /// always were) but not the widget, which a site opts in to.
    #[serde(default)]
    pub public: Option<bool>,
    /// Spike alerts: a webhook call when more than `above` people are online.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
}

impl SiteConfig {
    /// Whether `/v1/history` and `/v1/badge.svg` answer (unless `"public": false`).
    #[must_use]
    pub fn history_public(&self) -> bool {
        self.public != Some(false)
    }

    /// Whether `/v1/widget` answers (only with `"public": true`).
    #[must_use]
    pub fn widget_public(&self) -> bool {
        self.public == Some(true)
    }

    /// The alerts as the history module runs them (without their webhooks).
    #[must_use]
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.alerts
            .iter()
            .map(|a| AlertRule {
                above: a.above,
                cooldown_ms: a.cooldown_s.map_or(DEFAULT_COOLDOWN_MS, |s| s * 1000),
            })
            .collect()
    }
}

/// One spike alert of a site: `{"above": N, "webhook": "https://…", "cooldown_s": 1800}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Fires when more than this many people are online.
    pub above: u64,
    /// Where the alert is POSTed (the site owner's secret: never echoed).
    pub webhook: Webhook,
    /// Silence after firing, in seconds, until the count is below `above` again (default
    /// 1800).
    #[serde(default)]
    pub cooldown_s: Option<u64>,
}

/// A webhook URL. It is the site owner's secret (whoever knows it can post fake alerts to
/// it), so it is never printed: not in errors, answers or `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Webhook(String);

impl Webhook {
    /// The URL, for the one call that posts to it.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Webhook(<secret>)")
    }
}

/// Whether `url` may be a webhook: `https://host…`, or `http://` to `127.0.0.1`, `[::1]` or
/// `localhost`. That exception is local development by construction: a loopback address
/// reaches only a receiver on the machine the worker runs on (wrangler dev, Miniflare); a
/// deployed Worker cannot reach one. No user info (`user:pass@`), no whitespace.
#[must_use]
pub fn is_webhook_url(url: &str) -> bool {
    if url.len() > 2048 || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    match scheme {
        "https" => !host.is_empty(),
        "http" => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    }
}

/// The name of the secret holding `site`'s member-token key: `MEMBER_SECRET_` and the site
/// name upper-cased with `-` as `_` (`demo` → `MEMBER_SECRET_DEMO`).
#[must_use]
pub fn member_secret_name(site: &str) -> String {
    format!(
        "MEMBER_SECRET_{}",
        site.to_ascii_uppercase().replace('-', "_")
    )
}

/// The name of the secret holding `site`'s read key: `READ_KEY_` and the site name
/// upper-cased with `-` as `_` (`demo` → `READ_KEY_DEMO`).
#[must_use]
pub fn read_key_name(site: &str) -> String {
    format!("READ_KEY_{}", site.to_ascii_uppercase().replace('-', "_"))
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Sites by name.
    pub sites: BTreeMap<String, SiteConfig>,
    /// Engine tunables.
    pub engine: EngineConfig,
    /// Abuse limits.
    pub limits: LimitConfig,
    /// The location name this isolate reports (`LOCATION`; default: the data center from
    /// `request.cf.colo`). Isolates of one location read each other's full records; other
    /// locations read only their summary.
    pub location: Option<String>,
    /// How long the edge waits for a request's body once its headers are in (`BODY_TIMEOUT_S`,
    /// default [`DEFAULT_BODY_TIMEOUT_MS`]); a body still incomplete then is answered 408
    /// `slow_body`.
    pub body_timeout_ms: u64,
    /// Whether `/healthz` also reports the isolate's memory and the sizes of its state
    /// (`DEBUG_STATS` = `1` or `true`; default off). Counts only, never ids.
    pub debug_stats: bool,
    /// The history's write interval and reads (`HISTORY_WRITE_S`, default 1200).
    pub history: HistoryConfig,
    /// Where this location's isolates exchange their records (`CHANNEL`, default
    /// [`ChannelMode::Auto`]).
    pub channel: ChannelMode,
}

/// Where the isolates of one location exchange their records (`CHANNEL`): through the
/// Cache API where it works, or always through KV (`herenow_core::engine::local`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChannelMode {
    /// `auto`: the Cache API when this isolate's probe finds it working (a custom domain;
    /// it does nothing on `*.workers.dev` or in previews), KV otherwise.
    #[default]
    Auto,
    /// `kv`: always KV, without probing the Cache API (for a worker served from several
    /// hostnames, or to compare).
    Kv,
}

/// The default of [`Config::body_timeout_ms`]: 10 s, plenty for a heartbeat of at most
/// 4 KiB on a slow mobile link.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;

/// A bad setting: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name, as in `wrangler.toml`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "bad setting {}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn bad(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

fn parse_ms(
    setting: &'static str,
    raw: Option<&str>,
    default_ms: u64,
    scale: u64,
) -> Result<u64, ConfigError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default_ms),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .map(|x| (x * scale as f64).round() as u64)
            .ok_or_else(|| bad(setting, format!("must be a positive number, got {v:?}"))),
    }
}

impl Config {
    /// Builds the config from settings looked up by name (`get("SITES")` etc.).
    ///
    /// Settings: `SITES` (JSON: `{"name":{"origins":["https://…"]}}`), `WINDOW_S`
    /// (presence window, default 225), `HEARTBEAT_S` (default 90 with the default window,
    /// else a quarter of the window), `FLUSH_S` (least time between record writes, default 1), `LEASE_S` (how
    /// long a record vouches for its tabs, default 300), `REFRESH_MS` (how long a merged
    /// view is reused, default 500), `REMOTE_DELAY_S` (publishing delay when only other
    /// locations are active, default 5/24 of the heartbeat: 18.75 at 90), `SOLO_DELAY_S` (publishing delay when no other
    /// isolate is active, default 180), `LOCATION` (this isolate's location name, default
    /// the data center), `BODY_TIMEOUT_S` (how long a request body may take to arrive,
    /// default 10), `RATE_IP_PER_MIN` (API requests per IP per minute,
    /// default 600), `RATE_VISITOR_PER_MIN` (heartbeats per visitor per minute, default
    /// 120), `NEW_VISITORS_PER_IP_PER_MIN` (distinct visitors one IP may bring per minute,
    /// default 60), `DEBUG_STATS` (`1`: `/healthz` reports memory and state sizes),
    /// `HISTORY_WRITE_S` (how often the history writer rewrites a site's history, default
    /// 1200: 72 scheduled writes a site a day, at most 100 with alerts and takeovers),
    /// `CHANNEL` (`auto`: the Cache API between a location's isolates where a probe finds it
    /// working, default; `kv`: always KV), and per
    /// site the secrets `MEMBER_SECRET_<SITE>` and `READ_KEY_<SITE>` (each at least 32 bytes).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad setting.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw_sites = get("SITES").ok_or_else(|| bad("SITES", "is missing"))?;
        let mut sites: BTreeMap<String, SiteConfig> = serde_json::from_str(&raw_sites).map_err(|e| {
            bad(
                "SITES",
                format!("must be JSON like {{\"demo\":{{\"origins\":[\"https://example.com\"]}}}}: {e}"),
            )
        })?;
        if sites.is_empty() {
            return Err(bad("SITES", "names no site"));
        }
        for (name, site) in &mut sites {
            validate_site(name)
                .map_err(|e| bad("SITES", format!("site {name:?}: {}", e.message())))?;
            for o in &site.origins {
                let ok = (o.starts_with("https://") || o.starts_with("http://"))
                    && !o.ends_with('/')
                    && o.split("://")
                        .nth(1)
                        .is_some_and(|h| !h.is_empty() && !h.contains('/'));
                if !ok {
                    return Err(bad(
                        "SITES",
                        format!(
                            "site {name:?}: origin {o:?} must be scheme://host[:port] with no path"
                        ),
                    ));
                }
            }
            if let Some(secret) = get(&member_secret_name(name)).filter(|s| !s.is_empty()) {
                if secret.len() < 32 {
                    return Err(bad(
                        "MEMBER_SECRET_<SITE>",
                        format!("{} must be at least 32 bytes", member_secret_name(name)),
                    ));
                }
                site.member_secret = Some(secret);
            }
            if let Some(key) = get(&read_key_name(name)).filter(|s| !s.is_empty()) {
                if key.len() < 32 {
                    return Err(bad(
                        "READ_KEY_<SITE>",
                        format!("{} must be at least 32 bytes", read_key_name(name)),
                    ));
                }
                site.read_key = Some(key);
            }
            for (i, a) in site.alerts.iter().enumerate() {
                // The URL is a secret: the message names the alert, never the URL.
                if !is_webhook_url(a.webhook.url()) {
                    return Err(bad(
                        "SITES",
                        format!(
                            "site {name:?}: alerts[{i}].webhook must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost, for local development)"
                        ),
                    ));
                }
                if a.cooldown_s == Some(0) {
                    return Err(bad(
                        "SITES",
                        format!("site {name:?}: alerts[{i}].cooldown_s must be at least 1"),
                    ));
                }
            }
        }
        let dl = LimitConfig::default();
        let count = |setting: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(setting).as_deref().map(str::trim) {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(
                        setting,
                        format!("must be a positive whole number, got {v:?}"),
                    )
                }),
            }
        };
        let limits = LimitConfig {
            ip_per_min: count("RATE_IP_PER_MIN", dl.ip_per_min)?,
            visitor_per_min: count("RATE_VISITOR_PER_MIN", dl.visitor_per_min)?,
            new_visitors_per_ip_per_min: count(
                "NEW_VISITORS_PER_IP_PER_MIN",
                dl.new_visitors_per_ip_per_min,
            )?,
            ..dl
        };
        let d = EngineConfig::default();
        let window_ms = parse_ms("WINDOW_S", get("WINDOW_S").as_deref(), d.window_ms, 1000)?;
        let scaled = EngineConfig::with_window(window_ms);
        let base = if window_ms == d.window_ms { d } else { scaled };
        let heartbeat_ms = parse_ms(
            "HEARTBEAT_S",
            get("HEARTBEAT_S").as_deref(),
            base.heartbeat_ms,
            1000,
        )?;
        // The remote delay follows the heartbeat unless it is set.
        let base = base.with_heartbeat(heartbeat_ms);
        let engine = EngineConfig {
            window_ms,
            heartbeat_ms,
            flush_min_ms: parse_ms(
                "FLUSH_S",
                get("FLUSH_S").as_deref(),
                base.flush_min_ms,
                1000,
            )?,
            lease_ms: parse_ms("LEASE_S", get("LEASE_S").as_deref(), base.lease_ms, 1000)?,
            refresh_ms: parse_ms(
                "REFRESH_MS",
                get("REFRESH_MS").as_deref(),
                base.refresh_ms,
                1,
            )?,
            remote_delay_ms: parse_ms(
                "REMOTE_DELAY_S",
                get("REMOTE_DELAY_S").as_deref(),
                base.remote_delay_ms,
                1000,
            )?,
            solo_delay_ms: parse_ms(
                "SOLO_DELAY_S",
                get("SOLO_DELAY_S").as_deref(),
                base.solo_delay_ms,
                1000,
            )?,
            ..base
        };
        let location = match get("LOCATION").map(|l| l.trim().to_owned()) {
            None => None,
            Some(l) if l.is_empty() => None,
            Some(l)
                if l.len() <= 32
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Some(l)
            }
            Some(l) => {
                return Err(bad(
                    "LOCATION",
                    format!("must be 1-32 characters of A-Z a-z 0-9 _ -, got {l:?}"),
                ));
            }
        };
        engine.validate().map_err(|e| {
            let setting = match e.setting {
                Setting::Window => "WINDOW_S",
                Setting::Heartbeat => "HEARTBEAT_S",
                Setting::FlushMin => "FLUSH_S",
                Setting::Lease => "LEASE_S",
                // Not read from the environment: the default always passes.
                Setting::MaxTabsPerRecord => "max_tabs_per_record",
            };
            bad(setting, e.message)
        })?;
        let body_timeout_ms = parse_ms(
            "BODY_TIMEOUT_S",
            get("BODY_TIMEOUT_S").as_deref(),
            DEFAULT_BODY_TIMEOUT_MS,
            1000,
        )?;
        let debug_stats = match get("DEBUG_STATS").as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(v) => {
                return Err(bad(
                    "DEBUG_STATS",
                    format!("must be 1, true, 0 or false, got {v:?}"),
                ));
            }
        };
        let history = HistoryConfig::with_write_ms(parse_ms(
            "HISTORY_WRITE_S",
            get("HISTORY_WRITE_S").as_deref(),
            HistoryConfig::default().write_ms,
            1000,
        )?);
        let channel = match get("CHANNEL").as_deref().map(str::trim) {
            None | Some("" | "auto") => ChannelMode::Auto,
            Some("kv") => ChannelMode::Kv,
            Some(v) => {
                return Err(bad("CHANNEL", format!("must be auto or kv, got {v:?}")));
            }
        };
        Ok(Self {
            sites,
            engine,
            limits,
            location,
            body_timeout_ms,
            debug_stats,
            history,
            channel,
        })
    }

    /// The site named `name`, if configured.
    #[must_use]
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.get(name)
    }

    /// Whether any site allows `origin` (for preflights, which carry no site).
    #[must_use]
    pub fn any_site_allows(&self, origin: &str) -> bool {
        self.sites
            .values()
            .any(|s| s.origins.iter().any(|o| o == origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const SITES: &str = r#"{"demo":{"origins":["http://127.0.0.1:8787"]}}"#;

    #[test]
    fn defaults() {
        let c = cfg(&[("SITES", SITES)]).expect("valid");
        assert_eq!(c.engine, EngineConfig::default());
        assert_eq!(c.body_timeout_ms, DEFAULT_BODY_TIMEOUT_MS);
        assert_eq!(c.channel, ChannelMode::Auto);
        let c = cfg(&[("SITES", SITES), ("BODY_TIMEOUT_S", "0.5")]).expect("valid");
        assert_eq!(c.body_timeout_ms, 500);
        assert!(c.any_site_allows("http://127.0.0.1:8787"));
        assert!(!c.any_site_allows("http://evil.example"));
        let demo = c.site("demo").expect("demo");
        assert!(!demo.members_public && demo.read_key.is_none());
        let key = "k".repeat(32);
        let public = r#"{"demo":{"origins":[],"members_public":true}}"#;
        let c = cfg(&[("SITES", public), ("READ_KEY_DEMO", &key)]).expect("valid");
        let demo = c.site("demo").expect("demo");
        assert!(demo.members_public);
        assert_eq!(demo.read_key.as_deref(), Some(key.as_str()));
    }

    #[test]
    fn public_defaults_and_alerts() {
        let c = cfg(&[("SITES", SITES)]).expect("valid");
        let demo = c.site("demo").expect("demo");
        assert!(demo.history_public() && !demo.widget_public());
        assert_eq!(c.history, HistoryConfig::default());
        let sites = r#"{"demo":{"origins":[],"public":false,"alerts":[{"above":10,"webhook":"https://hooks.example/x?k=1"},{"above":50,"webhook":"http://127.0.0.1:8841/","cooldown_s":2}]}}"#;
        let c = cfg(&[("SITES", sites), ("HISTORY_WRITE_S", "2")]).expect("valid");
        let demo = c.site("demo").expect("demo");
        assert!(!demo.history_public() && !demo.widget_public());
        let rules = demo.alert_rules();
        assert_eq!(
            (rules[0].above, rules[0].cooldown_ms),
            (10, DEFAULT_COOLDOWN_MS)
        );
        assert_eq!((rules[1].above, rules[1].cooldown_ms), (50, 2_000));
        assert_eq!(c.history.write_ms, 2_000);
        assert!(
            !format!("{c:?}").contains("hooks.example"),
            "the webhook is a secret"
        );
    }

    #[test]
    fn webhooks_are_https_or_loopback_http_and_errors_never_echo_them() {
        for ok in [
            "https://hooks.example.com/x",
            "https://h.example:8443",
            "http://127.0.0.1:8841/hook",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(is_webhook_url(ok), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/x",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example/",
            "ftp://x.example/",
            "https://",
            "https://user:pw@x.example/",
            "https://x.example/a b",
            "hooks.example.com",
        ] {
            assert!(!is_webhook_url(bad), "{bad}");
        }
        let secret = "http://hooks.example.com/secret-token-123";
        let sites =
            format!(r#"{{"demo":{{"origins":[],"alerts":[{{"above":1,"webhook":"{secret}"}}]}}}}"#);
        let e = cfg(&[("SITES", &sites)]).expect_err("http to a public host");
        assert_eq!(e.setting, "SITES");
        assert!(!e.to_string().contains("secret-token"), "{e}");
        assert!(e.to_string().contains("alerts[0].webhook"), "{e}");
    }

    #[test]
    fn the_defaults_and_the_readmes_free_plan_settings_are_valid() {
        // wrangler.toml sets WINDOW_S 225 and leaves HEARTBEAT_S to its default, 90 s.
        let c = cfg(&[("SITES", SITES), ("WINDOW_S", "225")]).expect("valid");
        assert_eq!(
            (
                c.engine.window_ms,
                c.engine.heartbeat_ms,
                c.engine.remote_delay_ms
            ),
            (225_000, 90_000, 18_750)
        );
        assert_eq!(c.engine, cfg(&[("SITES", SITES)]).expect("valid").engine);
        // README › What the plans hold: the settings that hold 50 people on Workers Free.
        let c = cfg(&[
            ("SITES", SITES),
            ("SOLO_DELAY_S", "600"),
            ("LEASE_S", "1800"),
        ])
        .expect("valid");
        assert_eq!(
            (
                c.engine.heartbeat_ms,
                c.engine.window_ms,
                c.engine.solo_delay_ms,
                c.engine.lease_ms
            ),
            (90_000, 225_000, 600_000, 1_800_000)
        );
    }

    #[test]
    fn the_remote_delay_follows_the_heartbeat_unless_set() {
        let engine = |vars: &[(&str, &str)]| {
            let mut all = vec![("SITES", SITES)];
            all.extend_from_slice(vars);
            cfg(&all).expect("valid").engine
        };
        let e = engine(&[("HEARTBEAT_S", "30"), ("WINDOW_S", "75")]);
        assert_eq!((e.heartbeat_ms, e.remote_delay_ms), (30_000, 6_250));
        let e = engine(&[("HEARTBEAT_S", "120"), ("WINDOW_S", "300")]);
        assert_eq!((e.heartbeat_ms, e.remote_delay_ms), (120_000, 25_000));
        // A window alone: a quarter of it, and its remote delay.
        let e = engine(&[("WINDOW_S", "60")]);
        assert_eq!((e.heartbeat_ms, e.remote_delay_ms), (15_000, 3_125));
        let e = engine(&[
            ("HEARTBEAT_S", "30"),
            ("WINDOW_S", "75"),
            ("REMOTE_DELAY_S", "12.5"),
        ]);
        assert_eq!((e.heartbeat_ms, e.remote_delay_ms), (30_000, 12_500));
    }

    #[test]
    fn channel_is_auto_or_kv() {
        for (raw, mode) in [
            ("", ChannelMode::Auto),
            ("auto", ChannelMode::Auto),
            (" kv ", ChannelMode::Kv),
        ] {
            let c = cfg(&[("SITES", SITES), ("CHANNEL", raw)]).expect("valid");
            assert_eq!(c.channel, mode, "{raw:?}");
        }
        let e = cfg(&[("SITES", SITES), ("CHANNEL", "cache")]).expect_err("bad");
        assert_eq!(
            e.to_string(),
            r#"bad setting CHANNEL: must be auto or kv, got "cache""#
        );
    }

    #[test]
    fn short_window_scales_the_rest() {
        let c = cfg(&[("SITES", SITES), ("WINDOW_S", "2")]).expect("valid");
        assert_eq!(c.engine.window_ms, 2000);
        assert!(c.engine.heartbeat_ms < 2000);
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SITES"),
            (&[("SITES", "nope")], "SITES"),
            (&[("SITES", "{}")], "SITES"),
            (&[("SITES", r#"{"de mo":{"origins":[]}}"#)], "SITES"),
            (
                &[("SITES", r#"{"demo":{"origins":["http://x/"]}}"#)],
                "SITES",
            ),
            (&[("SITES", r#"{"demo":{"origin":[]}}"#)], "SITES"),
            (&[("SITES", SITES), ("WINDOW_S", "abc")], "WINDOW_S"),
            (&[("SITES", SITES), ("WINDOW_S", "0.5")], "WINDOW_S"),
            (&[("SITES", SITES), ("HEARTBEAT_S", "225")], "HEARTBEAT_S"),
            (&[("SITES", SITES), ("FLUSH_S", "0.1")], "FLUSH_S"),
            (&[("SITES", SITES), ("LEASE_S", "5")], "LEASE_S"),
            // Regression: no room left for the handoff margin is the heartbeat's fault,
            // not the lease's (was reported as LEASE_S).
            (
                &[("SITES", SITES), ("WINDOW_S", "60"), ("HEARTBEAT_S", "56")],
                "HEARTBEAT_S",
            ),
            (&[("SITES", SITES), ("DEBUG_STATS", "yes")], "DEBUG_STATS"),
            (
                &[("SITES", SITES), ("BODY_TIMEOUT_S", "0")],
                "BODY_TIMEOUT_S",
            ),
            (
                &[("SITES", SITES), ("BODY_TIMEOUT_S", "soon")],
                "BODY_TIMEOUT_S",
            ),
            (
                &[("SITES", SITES), ("RATE_IP_PER_MIN", "0")],
                "RATE_IP_PER_MIN",
            ),
            (
                &[("SITES", SITES), ("NEW_VISITORS_PER_IP_PER_MIN", "x")],
                "NEW_VISITORS_PER_IP_PER_MIN",
            ),
            (
                &[("SITES", SITES), ("MEMBER_SECRET_DEMO", "short")],
                "MEMBER_SECRET_<SITE>",
            ),
            (
                &[("SITES", SITES), ("READ_KEY_DEMO", "short")],
                "READ_KEY_<SITE>",
            ),
            (
                &[("SITES", r#"{"demo":{"origins":[],"members_public":"yes"}}"#)],
                "SITES",
            ),
            (
                &[("SITES", r#"{"demo":{"origins":[],"public":"yes"}}"#)],
                "SITES",
            ),
            (
                &[("SITES", SITES), ("HISTORY_WRITE_S", "-1")],
                "HISTORY_WRITE_S",
            ),
            (&[("SITES", SITES), ("CHANNEL", "cache")], "CHANNEL"),
            (&[("SITES", SITES), ("CHANNEL", "KV")], "CHANNEL"),
        ];
        for (pairs, setting) in cases {
            let e = cfg(pairs).expect_err("must fail");
            assert_eq!(e.setting, *setting, "{pairs:?}: {e}");
        }
    }
}
