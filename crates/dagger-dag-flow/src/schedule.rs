//! Schedules of a workflow (`schedules:` in YAML): when runs start on their
//! own — a cron expression in a time zone or a fixed interval — with which
//! inputs, what a fire does while an earlier run of the schedule is still
//! going ([`Overlap`]), and how far back missed fires are caught up. This
//! module is the pure part (definition, checking, fire times); the
//! `Scheduler` of `dagger-coord` starts the runs.

use crate::error::ScheduleError;
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::time::Duration;

/// What a fire does while an earlier run of its schedule has not finished
/// (the names of Temporal's overlap policies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is dropped.
    #[default]
    Skip,
    /// The fire waits for the running one to finish; of the fires that wait,
    /// only the first is kept.
    BufferOne,
    /// Every fire waits, and they start in order, one at a time.
    BufferAll,
    /// The running one is cancelled and the fire starts.
    CancelOther,
    /// The fire starts anyway.
    AllowAll,
}

/// One schedule as written under `schedules:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// Unique among the schedules of every workflow a process loads; part of
    /// each fired run's id and idempotency key.
    pub name: String,
    /// A cron expression (5 fields, or 6 with seconds first), read in
    /// [`Self::timezone`]. Exactly one of `cron` and `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone of `cron` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A fixed interval (`30s`, `10m`, `2h`, `1d`); fires fall on multiples
    /// of it since the Unix epoch, so every process agrees on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// The run inputs of every fired run.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// What a fire does while an earlier run of the schedule is unfinished.
    #[serde(default)]
    pub overlap: Overlap,
    /// How late a fire may still start (a fire missed while no scheduler ran,
    /// e.g. after a crash); older fires are dropped. Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    /// A paused schedule fires nothing (trigger and backfill still work).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// When a schedule fires.
#[derive(Debug, Clone)]
enum When {
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    Every(i64),
}

/// A checked schedule: its definition, the workflow it starts and its fire
/// times.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The definition.
    pub def: ScheduleDef,
    /// The workflow whose runs it starts.
    pub workflow: String,
    when: When,
    catch_up_ms: i64,
}

/// The default catch-up window.
const DEFAULT_CATCH_UP_MS: i64 = 60_000;

impl Schedule {
    /// Checks `def` (of workflow `workflow`): the cron expression, time zone,
    /// interval and catch-up window; the error names the field that is wrong.
    pub fn new(workflow: &str, def: ScheduleDef) -> Result<Self, ScheduleError> {
        Self::check(workflow, def.clone()).map_err(|(field, message)| ScheduleError {
            schedule: def.name,
            field,
            message,
        })
    }

    fn check(workflow: &str, def: ScheduleDef) -> Result<Self, (&'static str, String)> {
        if def.name.is_empty() {
            return Err(("name", "a schedule needs a non-empty `name`".into()));
        }
        let when = match (&def.cron, &def.every) {
            (Some(cron), None) => {
                let parsed = croner::Cron::from_str(cron)
                    .map_err(|e| ("cron", format!("invalid cron expression `{cron}`: {e}")))?;
                let tz = match &def.timezone {
                    None => chrono_tz::UTC,
                    Some(name) => name
                        .parse::<chrono_tz::Tz>()
                        .map_err(|_| ("timezone", format!("unknown time zone `{name}`")))?,
                };
                When::Cron(Box::new(parsed), tz)
            }
            (None, Some(every)) => {
                if def.timezone.is_some() {
                    return Err(("timezone", "`timezone` applies to `cron` only".into()));
                }
                let ms = parse_duration_ms(every).map_err(|e| ("every", e))?;
                if ms < 1000 {
                    return Err(("every", format!("`{every}` is below the 1s minimum")));
                }
                When::Every(ms)
            }
            (Some(_), Some(_)) => {
                return Err(("every", "give either `cron` or `every`, not both".into()));
            }
            (None, None) => return Err(("cron", "a schedule needs `cron` or `every`".into())),
        };
        let catch_up_ms = match &def.catch_up {
            None => DEFAULT_CATCH_UP_MS,
            Some(text) => parse_duration_ms(text).map_err(|e| ("catch_up", e))?,
        };
        Ok(Self {
            def,
            workflow: workflow.to_string(),
            when,
            catch_up_ms,
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The catch-up window in milliseconds.
    pub fn catch_up_ms(&self) -> i64 {
        self.catch_up_ms
    }

    /// The first fire strictly after `after_ms` (ms since the epoch); `None`
    /// when the expression never fires again.
    pub fn next_fire(&self, after_ms: i64) -> Option<i64> {
        match &self.when {
            When::Every(every) => Some((after_ms.div_euclid(*every) + 1) * every),
            When::Cron(cron, tz) => {
                let after = Utc.timestamp_millis_opt(after_ms).single()?;
                let next = cron
                    .find_next_occurrence(&after.with_timezone(tz), false)
                    .ok()?;
                Some(next.timestamp_millis())
            }
        }
    }

    /// The fires in `from_ms..=to_ms`, in order.
    pub fn fires_between(&self, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let mut fires = Vec::new();
        let mut at = self.next_fire(from_ms - 1);
        while let Some(t) = at.filter(|t| *t <= to_ms) {
            fires.push(t);
            at = self.next_fire(t);
        }
        fires
    }

    /// The id of the run of the fire at `fire_ms`: `<name>@<UTC time>`.
    pub fn run_id(&self, fire_ms: i64) -> String {
        let at = Utc.timestamp_millis_opt(fire_ms).single().map_or_else(
            || fire_ms.to_string(),
            |t| t.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        );
        format!("{}@{at}", self.def.name)
    }

    /// The idempotency key of the run of the fire at `fire_ms`: of all the
    /// processes that fire it, one starts the run.
    pub fn key(&self, fire_ms: i64) -> String {
        format!("schedule:{}", self.run_id(fire_ms))
    }
}

/// Milliseconds of a duration written `<number><unit>` (`ms`, `s`, `m`, `h`,
/// `d`), e.g. `90s`, `1.5h`.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => {
            return Err(format!(
                "`{text}` is not a duration (e.g. 30s, 10m, 2h, 1d)"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n * scale < 1e15 => Ok((n * scale) as i64),
        _ => Err(format!(
            "`{text}` is not a duration (e.g. 30s, 10m, 2h, 1d)"
        )),
    }
}

/// [`parse_duration_ms`] as a [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_ms(text).map(|ms| Duration::from_millis(ms.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(cron: Option<&str>, tz: Option<&str>, every: Option<&str>) -> ScheduleDef {
        ScheduleDef {
            name: "nightly".into(),
            cron: cron.map(Into::into),
            timezone: tz.map(Into::into),
            every: every.map(Into::into),
            inputs: Map::new(),
            overlap: Overlap::Skip,
            catch_up: None,
            paused: false,
        }
    }

    #[test]
    fn cron_fires_in_its_time_zone() {
        // 02:30 in Berlin is 01:30 UTC in winter.
        let s = Schedule::new("wf", def(Some("30 2 * * *"), Some("Europe/Berlin"), None)).unwrap();
        let dec7 = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        let next = s.next_fire(dec7.timestamp_millis()).unwrap();
        let want = Utc.with_ymd_and_hms(2026, 12, 7, 1, 30, 0).unwrap();
        assert_eq!(next, want.timestamp_millis());
        assert_eq!(s.run_id(next), "nightly@20261207T013000.000Z");
    }

    #[test]
    fn intervals_are_aligned_and_ranges_inclusive() {
        let s = Schedule::new("wf", def(None, None, Some("10s"))).unwrap();
        assert_eq!(s.next_fire(12_345), Some(20_000));
        assert_eq!(s.next_fire(20_000), Some(30_000));
        assert_eq!(
            s.fires_between(20_000, 50_000),
            vec![20_000, 30_000, 40_000, 50_000]
        );
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let err = |d| Schedule::new("wf", d).unwrap_err().to_string();
        assert!(err(def(Some("61 * * * *"), None, None)).contains("invalid cron expression"));
        assert!(err(def(Some("* * * * *"), Some("Mars/Base"), None)).contains("time zone"));
        assert!(err(def(None, None, Some("10 parsecs"))).contains("not a duration"));
        assert!(err(def(Some("* * * * *"), None, Some("1m"))).contains("not both"));
        assert!(err(def(None, None, None)).contains("`cron` or `every`"));
        assert!(err(def(None, None, Some("10ms"))).contains("minimum"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert!(parse_duration_ms("5").is_err());
    }
}
