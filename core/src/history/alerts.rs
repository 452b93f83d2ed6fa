//! Spike alerts: when one fires, when it is armed again, and how its webhook call is
//! retried. Every isolate runs these rules, but only the site's history writer calls (see
//! [`super::writer`]), so that one crossing makes one call however many isolates saw it.

use serde::{Deserialize, Serialize};

/// The cooldown when a site's alert does not set `cooldown_s`: 30 minutes.
pub const DEFAULT_COOLDOWN_MS: u64 = 30 * 60_000;

/// Waits between the attempts of one webhook call, in ms: 4 attempts, then it is given up.
/// With [`ATTEMPT_TIMEOUT_MS`] per attempt the whole call ends within 23 s, inside the 30 s
/// Workers keeps an event alive after its response (`waitUntil`).
pub const RETRY_DELAYS_MS: [u64; 3] = [1_000, 2_000, 4_000];

/// How long one attempt may take before it counts as failed.
pub const ATTEMPT_TIMEOUT_MS: u64 = 4_000;

/// One alert of a site: "tell me when more than `above` people are online".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRule {
    /// The threshold: the alert fires when the count goes above it.
    pub above: u64,
    /// After firing, the alert stays silent until the count has fallen below `above` at
    /// least this long after it fired.
    pub cooldown_ms: u64,
}

/// Where an alert stands: armed (`fired_at: None`) or silent since it fired. Stored in the
/// site's history key, so that a new writer carries it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The rule's threshold (states are matched to rules by it).
    pub above: u64,
    /// When it fired last, Unix ms, while it is silent.
    pub fired_at: Option<u64>,
    /// People online at the firing, while its call is still to be made: a writer that has
    /// just claimed the key writes this and waits for its claim's confirmation, so that a
    /// successor makes the call if it is evicted meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u64>,
}

/// A webhook call the edge must make: `index` is the alert's place in the site's
/// `alerts` list (the edge holds the URL, a secret core never sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDue {
    /// The site.
    pub site: String,
    /// The alert's index in the site's configured list.
    pub index: usize,
    /// People online when it fired.
    pub online: u64,
    /// The threshold crossed.
    pub threshold: u64,
    /// When it fired, Unix ms.
    pub at: u64,
}

impl AlertDue {
    /// The webhook's JSON body: `{"site","online","threshold","at"}`.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::json!({
            "site": self.site,
            "online": self.online,
            "threshold": self.threshold,
            "at": self.at,
        })
        .to_string()
    }
}

/// Runs `rule` over a sample of `online` people at `now`: `true` if it fires. Armed, it
/// fires when the count is above the threshold; silent, it is armed again by a sample
/// below the threshold taken once the cooldown has passed (that sample itself never fires).
pub fn step(rule: &AlertRule, state: &mut AlertState, now: u64, online: u64) -> bool {
    match state.fired_at {
        None if online > rule.above => {
            state.fired_at = Some(now);
            state.due = None;
            true
        }
        None => false,
        Some(at) => {
            if online < rule.above && now >= at.saturating_add(rule.cooldown_ms) {
                state.fired_at = None;
                state.due = None;
            }
            false
        }
    }
}

/// The states for `rules`, carried over from `stored` by threshold (a rule new to the
/// config starts armed; states of rules no longer configured are dropped).
#[must_use]
pub fn states_for(rules: &[AlertRule], stored: &[AlertState]) -> Vec<AlertState> {
    rules
        .iter()
        .map(|r| {
            stored
                .iter()
                .find(|s| s.above == r.above)
                .copied()
                .unwrap_or(AlertState {
                    above: r.above,
                    fired_at: None,
                    due: None,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_per_crossing_then_silence_until_below_and_cooled_down() {
        let rule = AlertRule {
            above: 10,
            cooldown_ms: 1_000,
        };
        let mut s = AlertState {
            above: 10,
            fired_at: None,
            due: None,
        };
        assert!(!step(&rule, &mut s, 0, 10), "at the threshold is not above");
        assert!(step(&rule, &mut s, 1, 11));
        assert!(!step(&rule, &mut s, 2, 50), "still above: silent");
        assert!(!step(&rule, &mut s, 3, 5), "below, but cooling down");
        assert!(
            !step(&rule, &mut s, 500, 12),
            "above again within the cooldown"
        );
        assert!(
            !step(&rule, &mut s, 1_500, 12),
            "cooled down but never below since"
        );
        assert!(
            !step(&rule, &mut s, 1_600, 10),
            "at the threshold is not below"
        );
        assert!(
            !step(&rule, &mut s, 1_700, 9),
            "below and cooled down: armed"
        );
        assert_eq!(s.fired_at, None);
        assert!(step(&rule, &mut s, 1_800, 11), "the next crossing fires");
    }

    #[test]
    fn states_follow_their_thresholds_across_config_changes() {
        let rules = [
            AlertRule {
                above: 5,
                cooldown_ms: 1,
            },
            AlertRule {
                above: 50,
                cooldown_ms: 1,
            },
        ];
        let stored = [
            AlertState {
                above: 50,
                fired_at: Some(7),
                due: None,
            },
            AlertState {
                above: 9,
                fired_at: Some(8),
                due: None,
            },
        ];
        let s = states_for(&rules, &stored);
        assert_eq!(s[0].fired_at, None);
        assert_eq!(s[1].fired_at, Some(7));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_body_has_the_four_fields() {
        let d = AlertDue {
            site: "demo".into(),
            index: 0,
            online: 12,
            threshold: 10,
            at: 99,
        };
        let v: serde_json::Value = serde_json::from_str(&d.body()).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"site":"demo","online":12,"threshold":10,"at":99})
        );
        assert!(
            RETRY_DELAYS_MS.iter().sum::<u64>()
                + (RETRY_DELAYS_MS.len() as u64 + 1) * ATTEMPT_TIMEOUT_MS
                < 30_000
        );
    }
}
