//! Which entry of a tab wins, and the merge of many sources (a state-based CRDT).

use super::*;

/// Whether entry `a` wins over entry `b` of the same tab (latest heartbeat, then the
/// whole entry, so that the winner never depends on order).
pub(super) fn wins_over(a: &TabRecord, b: &TabRecord) -> bool {
    (a.last_ms, a.first_ms, &a.page, a.state, &a.member)
        > (b.last_ms, b.first_ms, &b.page, b.state, &b.member)
}

/// Merges sources of tabs and tombstones: per tab the entry with the latest heartbeat
/// wins (ties broken by the whole entry, so the winner never depends on order), and a
/// tombstone at or after that heartbeat removes it. The result is sorted by (visitor,
/// tab), so the merge is commutative, associative and idempotent over sources.
#[must_use]
pub fn merge(sources: &[(&[TabRecord], &[Tombstone])]) -> Vec<TabRecord> {
    let mut best: HashMap<(&str, &str), &TabRecord> = HashMap::new();
    let mut gone: HashMap<(&str, &str), u64> = HashMap::new();
    for (tabs, tombs) in sources {
        for t in *tabs {
            let k = (t.visitor.as_str(), t.tab.as_str());
            if best.get(&k).is_none_or(|b| wins_over(t, b)) {
                best.insert(k, t);
            }
        }
        for g in *tombs {
            let e = gone
                .entry((g.visitor.as_str(), g.tab.as_str()))
                .or_insert(0);
            *e = (*e).max(g.at_ms);
        }
    }
    let mut out: Vec<TabRecord> = best
        .into_iter()
        .filter(|(k, t)| !liveness::removed(gone.get(k).copied(), t.last_ms))
        .map(|(_, t)| t.clone())
        .collect();
    out.sort_by(|a, b| (&a.visitor, &a.tab).cmp(&(&b.visitor, &b.tab)));
    out
}
