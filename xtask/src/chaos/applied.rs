//! What each node applied, compared across nodes: the `replicas` verdict.
//!
//! The nodes run with the FSM's and the database workers' debug lines on (see
//! `nodes::NODE_LOG`): for every applied entry, `applying an entry log_id=T<term>-N<node>-<index>`,
//! and for every Frames entry, `applied a commit` or `skipping a superseded commit` with its
//! `db`, `index` and `base`. Replicas of one log must apply, at each index, the same entry and
//! decide alike whether its commit lands (a node may log an index more than once, replaying
//! its log after a restart: every time must agree too). A node that never logged an index
//! (it was down, or a snapshot covered it) is not compared there. The final DUMP comparison
//! sees a divergence only if it lasts to the end; this sees it where it starts.

use std::collections::{BTreeMap, BTreeSet};

/// Per log index: the log ids each node applied there.
type Ids = BTreeMap<u64, BTreeMap<usize, BTreeSet<String>>>;
/// Per (database, index): each node's decisions, as `applied|skipped base=B`.
type Decisions = BTreeMap<(String, u64), BTreeMap<usize, BTreeSet<String>>>;

/// The value of `key=` in `line`, up to the next space.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

fn read(node: usize, text: &str, ids: &mut Ids, decisions: &mut Decisions) {
    for line in text.lines() {
        if line.contains("applying an entry") {
            let Some(id) = field(line, "log_id") else {
                continue;
            };
            let Some(index) = id.rsplit('-').next().and_then(|i| i.parse().ok()) else {
                continue;
            };
            ids.entry(index)
                .or_default()
                .entry(node)
                .or_default()
                .insert(id.to_string());
            continue;
        }
        let what = if line.contains("applied a commit") {
            "applied"
        } else if line.contains("skipping a superseded commit") {
            "skipped"
        } else {
            continue;
        };
        let (Some(db), Some(index)) = (
            field(line, "db"),
            field(line, "index").and_then(|i| i.parse().ok()),
        ) else {
            continue;
        };
        let base = field(line, "base").unwrap_or("none");
        decisions
            .entry((db.to_string(), index))
            .or_default()
            .entry(node)
            .or_default()
            .insert(format!("{what} base={base}"));
    }
}

fn show(per: &BTreeMap<usize, BTreeSet<String>>) -> String {
    per.iter()
        .map(|(n, v)| {
            format!(
                "n{n}: {}",
                v.iter().cloned().collect::<Vec<_>>().join(" / ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compares the logs of the nodes (`(slot, log text)`): `Ok(summary)` when every index that
/// two or more nodes applied got the same entry and the same decision everywhere, else the
/// first divergent indices.
pub fn compare(logs: &[(usize, String)]) -> Result<String, Vec<String>> {
    let mut ids = Ids::new();
    let mut decisions = Decisions::new();
    for (node, text) in logs {
        read(*node, text, &mut ids, &mut decisions);
    }
    let mut problems = Vec::new();
    let mut shared = 0;
    for (index, per) in &ids {
        if per.len() > 1 {
            shared += 1;
        }
        let distinct: BTreeSet<&String> = per.values().flatten().collect();
        if distinct.len() > 1 {
            problems.push(format!(
                "index {index}: different entries applied: {}",
                show(per)
            ));
        }
    }
    for ((db, index), per) in &decisions {
        let distinct: BTreeSet<&String> = per.values().flatten().collect();
        if distinct.len() > 1 {
            problems.push(format!(
                "{db} index {index}: decided differently: {}",
                show(per)
            ));
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(5);
        problems.push(format!("({n} divergent in all)"));
        return Err(problems);
    }
    if ids.is_empty() {
        return Ok("no applied entries logged (node logs without the FSM's debug lines)".into());
    }
    Ok(format!(
        "{} entries logged, {shared} applied by two or more nodes, all alike ({} commits decided alike)",
        ids.len(),
        decisions.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> String {
        format!(
            "2026-12-03T13:37:38.9Z DEBUG dqlite_node::replication::fsm: applying an entry log_id={id}\n"
        )
    }

    fn commit(what: &str, index: u64, base: u64) -> String {
        format!(
            "2026-12-03T13:37:38.9Z DEBUG dqlite_node::database::worker: {what} db=set index={index} base={base} last={base}\n"
        )
    }

    #[test]
    fn alike_replicas_pass_even_with_replays_and_gaps() {
        let a = entry("T1-N1-5")
            + &commit("applied a commit", 5, 4)
            + &entry("T1-N1-6")
            + &commit("skipping a superseded commit", 6, 4);
        // n1 replays 5 after a restart and never saw 6 (a snapshot covered it).
        let b = entry("T1-N1-5")
            + &commit("applied a commit", 5, 4)
            + &entry("T1-N1-5")
            + &commit("applied a commit", 5, 4);
        let r = compare(&[(0, a), (1, b)]);
        assert!(
            r.as_ref().is_ok_and(|s| s.contains("1 applied by two")),
            "{r:?}"
        );
    }

    #[test]
    fn different_entries_at_one_index_are_flagged() {
        let a = entry("T17-N2-37908") + &commit("applied a commit", 37908, 37907);
        let b = entry("T18-N1-37908");
        let r = compare(&[(0, a), (1, b)]).unwrap_err();
        assert!(r[0].contains("index 37908: different entries"), "{r:?}");
    }

    #[test]
    fn one_entry_decided_differently_is_flagged() {
        // The stop-19 run: n0 applied 37909 where n1 and n2 skipped it.
        let skip = entry("T17-N2-37909") + &commit("skipping a superseded commit", 37909, 37907);
        let apply = entry("T17-N2-37909") + &commit("applied a commit", 37909, 37907);
        let r = compare(&[(0, apply), (1, skip.clone()), (2, skip)]).unwrap_err();
        assert!(
            r[0].contains("set index 37909: decided differently"),
            "{r:?}"
        );
        assert!(r[0].contains("n0: applied base=37907"), "{r:?}");
    }
}
