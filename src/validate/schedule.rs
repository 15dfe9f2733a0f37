//! `spec.backups.schedule`: a five-field cron schedule that fires, parsed
//! once here for the CronJob builder and the backup health check.

use k8s_openapi::jiff::Timestamp;
use thiserror::Error;

use crate::api::MessengerInstanceSpec;

/// Why `spec.backups.schedule` cannot be used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error(
        "spec.backups.schedule '{schedule}' is not a cron schedule: {reason}; use five fields (minute hour day-of-month month day-of-week), for example \"30 1 * * *\""
    )]
    Schedule { schedule: String, reason: String },
    #[error(
        "spec.backups.schedule '{schedule}' never fires; choose a schedule that runs at least once a year"
    )]
    NeverFires { schedule: String },
}

/// A backup schedule that parses and fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSchedule {
    /// The schedule as written, trimmed (what the CronJob carries).
    pub text: String,
    pub cron: croner::Cron,
}

impl BackupSchedule {
    /// Checks a cron schedule and returns it parsed.
    pub fn parse(schedule: &str) -> Result<Self, ScheduleError> {
        let text = schedule.trim();
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(text)
            .map_err(|error| ScheduleError::Schedule {
                schedule: text.to_owned(),
                reason: error.to_string(),
            })?;
        let parsed = Self {
            text: text.to_owned(),
            cron,
        };
        parsed
            .fires_after(Timestamp::UNIX_EPOCH)
            .ok_or_else(|| parsed.never_fires())?;
        Ok(parsed)
    }

    /// The first fire time strictly after `after`.
    pub fn fires_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|next| next.timestamp())
    }

    /// The error of a schedule that does not fire (again).
    pub fn never_fires(&self) -> ScheduleError {
        ScheduleError::NeverFires {
            schedule: self.text.clone(),
        }
    }
}

/// The instance's backup schedule, parsed; `None` when it takes no backups.
pub fn backup_schedule(
    spec: &MessengerInstanceSpec,
) -> Option<Result<BackupSchedule, ScheduleError>> {
    spec.backups
        .as_ref()
        .map(|backups| BackupSchedule::parse(&backups.schedule))
}
