//! The schedules a scheduler fires: those declared in workflow files
//! (`schedules:`) and those added to the store (`dagger schedule add`), each
//! with its effective paused state — the store's pause or resume overrides a
//! definition's `paused:`. Pure: the store rows are read by the caller.

use crate::error::ScheduleError;
use crate::schedule::{Schedule, ScheduleDef};
use dagger_core::store::ScheduleRecord;
use serde::Serialize;

/// Where a schedule, or its paused state, comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSource {
    /// A workflow file (`schedules:` and its `paused:`).
    File,
    /// The store (`dagger schedule add`, `pause`, `resume`).
    Store,
}

/// A schedule with its effective state.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    /// The checked schedule.
    pub schedule: Schedule,
    /// Where it is defined.
    pub source: ScheduleSource,
    /// Whether it fires nothing now.
    pub paused: bool,
    /// Where [`Self::paused`] comes from: the store when it holds a pause
    /// or resume of the schedule, the definition otherwise.
    pub paused_source: ScheduleSource,
}

/// A stored schedule's definition checked as a `schedules:` entry is (one
/// parser for both): the JSON must be a [`ScheduleDef`] named `record.name`
/// that [`Schedule::new`] accepts. `None` for a row holding only a pause.
pub fn stored_schedule(record: &ScheduleRecord) -> Option<Result<Schedule, ScheduleError>> {
    let (workflow, spec) = (record.workflow.as_deref()?, record.spec.clone()?);
    let bad = |message: String| ScheduleError {
        schedule: record.name.clone(),
        field: "spec",
        message,
    };
    Some(
        serde_json::from_value::<ScheduleDef>(spec)
            .map_err(|e| bad(format!("stored definition unreadable: {e}")))
            .and_then(|def| {
                if def.name == record.name {
                    Schedule::new(workflow, def)
                } else {
                    Err(bad(format!("stored under another name (`{}`)", def.name)))
                }
            }),
    )
}

/// The schedules of `declared` (from workflow files) and of the stored rows
/// `stored` whose workflow `loaded` accepts, with the store's paused
/// overrides applied. A stored schedule that cannot be read, or whose name
/// a declared one has, is left out and returned among the problems.
pub fn effective_schedules(
    declared: &[Schedule],
    stored: &[ScheduleRecord],
    loaded: impl Fn(&str) -> bool,
) -> (Vec<ScheduleEntry>, Vec<ScheduleError>) {
    let override_of = |name: &str| stored.iter().find(|r| r.name == name)?.paused;
    let entry = |schedule: Schedule, source| {
        let stored_pause = override_of(schedule.name());
        ScheduleEntry {
            paused: stored_pause.unwrap_or(schedule.def.paused),
            paused_source: if stored_pause.is_some() {
                ScheduleSource::Store
            } else {
                source
            },
            schedule,
            source,
        }
    };
    let mut entries: Vec<ScheduleEntry> = declared
        .iter()
        .map(|s| entry(s.clone(), ScheduleSource::File))
        .collect();
    let mut problems = Vec::new();
    for record in stored {
        if !record.workflow.as_deref().is_some_and(&loaded) {
            continue;
        }
        match stored_schedule(record) {
            None => {}
            Some(Err(e)) => problems.push(e),
            Some(Ok(schedule)) => {
                if let Some(file) = declared.iter().find(|d| d.name() == schedule.name()) {
                    problems.push(ScheduleError {
                        schedule: schedule.name().to_string(),
                        field: "name",
                        message: format!(
                            "added to the store for workflow `{}` and declared in workflow `{}`; \
                             the declared one fires (delete the stored one)",
                            schedule.workflow, file.workflow
                        ),
                    });
                } else {
                    entries.push(entry(schedule, ScheduleSource::Store));
                }
            }
        }
    }
    (entries, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(name: &str, paused: bool) -> Schedule {
        let def: ScheduleDef =
            serde_json::from_value(json!({"name": name, "every": "1m", "paused": paused})).unwrap();
        Schedule::new("wf", def).unwrap()
    }

    fn row(name: &str, spec: Option<serde_json::Value>, paused: Option<bool>) -> ScheduleRecord {
        ScheduleRecord {
            name: name.into(),
            workflow: spec.as_ref().map(|_| "wf".to_string()),
            spec,
            paused,
            updated_at: 0,
        }
    }

    #[test]
    fn the_store_overrides_paused_and_adds_schedules() {
        let files = [declared("a", true), declared("b", false)];
        let rows = [
            row("a", None, Some(false)),
            row(
                "c",
                Some(json!({"name": "c", "cron": "0 * * * *"})),
                Some(true),
            ),
            row("d", Some(json!({"name": "d", "every": "1m"})), None),
        ];
        let (entries, problems) = effective_schedules(&files, &rows, |w| w == "wf");
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.schedule.name(), e.source, e.paused, e.paused_source))
            .collect();
        use ScheduleSource::{File, Store};
        assert_eq!(
            got,
            [
                ("a", File, false, Store),
                ("b", File, false, File),
                ("c", Store, true, Store),
                ("d", Store, false, Store),
            ]
        );
        // Another workflow's stored schedules are not this scheduler's.
        let (entries, _) = effective_schedules(&files, &rows, |w| w == "other");
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn clashing_or_bad_stored_schedules_are_left_out() {
        let files = [declared("a", false)];
        let rows = [
            row("a", Some(json!({"name": "a", "every": "5m"})), None),
            row("b", Some(json!({"name": "b", "every": "10 parsecs"})), None),
            row(
                "c",
                Some(json!({"name": "c", "every": "1m", "color": "red"})),
                None,
            ),
        ];
        let (entries, problems) = effective_schedules(&files, &rows, |_| true);
        assert_eq!(entries.len(), 1);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("declared in workflow `wf`"), "{text:?}");
        assert!(text[1].contains("not a duration"), "{text:?}");
        assert!(text[2].contains("unknown field"), "{text:?}");
    }
}
