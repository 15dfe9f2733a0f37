//! `stages[].promotion`: maintenance windows (an IANA time zone, a start
//! HH:MM, a duration) and the soak time, parsed once here for the rollout.

use jiff::civil::{Date, Time, Weekday as CivilWeekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::api::values::{MAX_DURATION, MAX_DURATION_MILLIS, parse_duration_millis};
use crate::api::{Promotion, Weekday, Window};

/// A window that cannot be evaluated; the message names the field.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum WindowError {
    #[error(
        "promotion.windows[{index}].timeZone: {zone:?} is not an IANA time zone such as Europe/Berlin"
    )]
    TimeZone { index: usize, zone: String },
    #[error("promotion.windows[{index}].start: {start:?} is not a time HH:MM")]
    Start { index: usize, start: String },
    #[error("promotion.windows[{index}].duration: {duration:?} is not a duration such as 3h")]
    Duration { index: usize, duration: String },
    #[error(
        "promotion.windows[{index}].duration: {duration} is too large (maximum {MAX_DURATION}); a window is at most a week long, for example 3h"
    )]
    DurationTooLarge { index: usize, duration: String },
    #[error(
        "promotion.windows[{index}].duration: a zero-length window never opens, so the stage could never upgrade; give it a length such as 3h"
    )]
    ZeroLength { index: usize },
    #[error(
        "promotion.windows[{index}].months: {month} is not a month; write 1 (January) to 12 (December)"
    )]
    Month { index: usize, month: u8 },
    #[error("promotion.soak: {soak} is too large (maximum {MAX_DURATION}); for example 168h")]
    SoakTooLarge { soak: String },
    #[error("promotion.soak: {soak:?} is not a duration such as 168h")]
    Soak { soak: String },
}

/// A stage's promotion, parsed.
#[derive(Clone, Debug)]
pub struct ValidatedPromotion {
    /// The stage it promotes from.
    pub from: String,
    /// How long `from` must run a release Ready first (zero when not set).
    pub soak: SignedDuration,
    /// When rollouts may start; none means any time.
    pub windows: Vec<ParsedWindow>,
}

/// Parses a stage's promotion.
pub fn promotion(promotion: &Promotion) -> Result<ValidatedPromotion, WindowError> {
    if let Some(soak) = &promotion.soak {
        match parse_duration_millis(soak.as_str()) {
            Some(ms) if ms > MAX_DURATION_MILLIS => {
                return Err(WindowError::SoakTooLarge {
                    soak: soak.to_string(),
                });
            }
            Some(_) => {}
            None if crate::api::values::is_duration_shaped(soak.as_str()) => {
                return Err(WindowError::SoakTooLarge {
                    soak: soak.to_string(),
                });
            }
            None => {
                return Err(WindowError::Soak {
                    soak: soak.to_string(),
                });
            }
        }
    }
    Ok(ValidatedPromotion {
        from: promotion.from.clone(),
        soak: soak(promotion),
        windows: parse_windows(&promotion.windows)?,
    })
}

/// The soak time of a promotion (zero when not set). A soak that cannot be
/// computed with (too large, or not a duration; `validate` refuses both) is
/// as long as can be, so that no gate opens early because of it.
pub fn soak(promotion: &Promotion) -> SignedDuration {
    match &promotion.soak {
        None => SignedDuration::ZERO,
        Some(soak) => parse_duration_millis(soak.as_str())
            .filter(|ms| *ms <= MAX_DURATION_MILLIS)
            .map_or(SignedDuration::MAX, millis_to_duration),
    }
}

/// Parses windows, naming the first that cannot be evaluated.
pub fn parse_windows(windows: &[Window]) -> Result<Vec<ParsedWindow>, WindowError> {
    windows
        .iter()
        .enumerate()
        .map(|(index, window)| parse(index, window))
        .collect()
}

/// A window, parsed.
#[derive(Clone, Debug)]
pub struct ParsedWindow {
    pub zone: TimeZone,
    pub zone_name: String,
    pub days: Vec<CivilWeekday>,
    pub months: Vec<i8>,
    pub start: Time,
    pub length: SignedDuration,
}

fn parse(index: usize, window: &Window) -> Result<ParsedWindow, WindowError> {
    let zone = TimeZone::get(&window.time_zone).map_err(|_| WindowError::TimeZone {
        index,
        zone: window.time_zone.clone(),
    })?;
    let start_error = || WindowError::Start {
        index,
        start: window.start.clone(),
    };
    let (hours, minutes) = window.start.split_once(':').ok_or_else(start_error)?;
    let start = Time::new(
        hours.parse().map_err(|_| start_error())?,
        minutes.parse().map_err(|_| start_error())?,
        0,
        0,
    )
    .map_err(|_| start_error())?;
    let text = window.duration.as_str();
    let millis = match parse_duration_millis(text) {
        Some(ms) if ms > MAX_DURATION_MILLIS => None,
        Some(0) => return Err(WindowError::ZeroLength { index }),
        Some(ms) => Some(ms),
        None if crate::api::values::is_duration_shaped(text) => None,
        None => {
            return Err(WindowError::Duration {
                index,
                duration: text.to_owned(),
            });
        }
    }
    .ok_or_else(|| WindowError::DurationTooLarge {
        index,
        duration: text.to_owned(),
    })?;
    if let Some(month) = window.months.iter().find(|m| !(1..=12).contains(*m)) {
        return Err(WindowError::Month {
            index,
            month: *month,
        });
    }
    Ok(ParsedWindow {
        zone,
        zone_name: window.time_zone.clone(),
        days: window.days.iter().map(|day| civil_weekday(*day)).collect(),
        months: window.months.iter().map(|month| *month as i8).collect(),
        start,
        length: millis_to_duration(millis),
    })
}

/// Milliseconds as a duration, saturating: callers check `MAX_DURATION`
/// first, so no real value comes near the limit.
fn millis_to_duration(millis: u64) -> SignedDuration {
    SignedDuration::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

fn civil_weekday(day: Weekday) -> CivilWeekday {
    match day {
        Weekday::Mon => CivilWeekday::Monday,
        Weekday::Tue => CivilWeekday::Tuesday,
        Weekday::Wed => CivilWeekday::Wednesday,
        Weekday::Thu => CivilWeekday::Thursday,
        Weekday::Fri => CivilWeekday::Friday,
        Weekday::Sat => CivilWeekday::Saturday,
        Weekday::Sun => CivilWeekday::Sunday,
    }
}

impl ParsedWindow {
    pub fn opens_on(&self, date: Date) -> bool {
        (self.days.is_empty() || self.days.contains(&date.weekday()))
            && (self.months.is_empty() || self.months.contains(&date.month()))
    }

    /// The window opening on `date`, as instants. A start inside a
    /// daylight-saving gap moves forward, as clocks do.
    pub fn span_on(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let start = date
            .to_datetime(self.start)
            .to_zoned(self.zone.clone())
            .ok()?
            .timestamp();
        Some((start, start.checked_add(self.length).ok()?))
    }
}

/// How many days of the coming year a stage's windows open on; a stage
/// whose windows open on few days may wait months for a release.
pub fn opening_days_per_year(windows: &[ParsedWindow]) -> usize {
    let Ok(start) = Date::new(2025, 1, 1) else {
        return 0;
    };
    (0..365)
        .filter_map(|offset| start.checked_add(jiff::Span::new().days(offset)).ok())
        .filter(|date| windows.iter().any(|window| window.opens_on(*date)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(soak: &str, duration: &str) -> Promotion {
        Promotion {
            from: "beta".into(),
            soak: Some(soak.into()),
            windows: vec![Window {
                start: "02:00".into(),
                duration: duration.into(),
                time_zone: "UTC".into(),
                ..Window::default()
            }],
        }
    }

    #[test]
    fn durations_beyond_the_maximum_are_refused_and_never_shorten_a_gate() {
        let huge = promotion("99999999999999999999y", "3h");
        assert_eq!(
            super::promotion(&huge).unwrap_err(),
            WindowError::SoakTooLarge {
                soak: "99999999999999999999y".into()
            }
        );
        // Overflowing u64 milliseconds, or above the maximum: the longest
        // soak, never zero.
        assert_eq!(soak(&huge), SignedDuration::MAX);
        assert_eq!(soak(&promotion("101y", "3h")), SignedDuration::MAX);
        assert_eq!(
            soak(&promotion("7d", "3h")),
            SignedDuration::from_hours(168)
        );
        assert!(matches!(
            super::promotion(&promotion("7d", "9999999999999d")),
            Err(WindowError::DurationTooLarge { index: 0, .. })
        ));
        assert!(matches!(
            super::promotion(&promotion("7d", "0h")),
            Err(WindowError::ZeroLength { index: 0 })
        ));
        let mut months = promotion("7d", "3h");
        months.windows[0].months = vec![13];
        assert!(matches!(
            super::promotion(&months),
            Err(WindowError::Month {
                index: 0,
                month: 13
            })
        ));
    }

    #[test]
    fn the_longest_window_ends_without_overflow() {
        let window = super::promotion(&promotion("7d", "100y")).unwrap().windows[0].clone();
        let date = Date::new(2026, 12, 4).unwrap();
        let (start, end) = window.span_on(date).expect("a span");
        assert!(end > start);
    }
}
