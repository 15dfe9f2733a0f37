//! Maintenance windows: whether one is open now, and if not, when the next
//! opens — in the window's own IANA time zone, across daylight-saving changes.
//! The windows come parsed from `validate::windows`.

use jiff::civil::Weekday as CivilWeekday;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::validate::windows::ParsedWindow;

/// Where `now` stands relative to a set of windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// Inside a window that closes at `closes`.
    Open { closes: Timestamp },
    /// Outside every window; the next one opens at `opens`, described for
    /// people as in "Tue 02:00 Europe/Berlin".
    Closed { opens: Timestamp, described: String },
}

/// The longest a search for the next window looks ahead: a quarterly window
/// opens at least once a year.
const HORIZON_DAYS: i64 = 400;

fn short_day(day: CivilWeekday) -> &'static str {
    match day {
        CivilWeekday::Monday => "Mon",
        CivilWeekday::Tuesday => "Tue",
        CivilWeekday::Wednesday => "Wed",
        CivilWeekday::Thursday => "Thu",
        CivilWeekday::Friday => "Fri",
        CivilWeekday::Saturday => "Sat",
        CivilWeekday::Sunday => "Sun",
    }
}

/// Evaluates `windows` at `now`. No windows means always open.
pub fn window_state(parsed: &[ParsedWindow], now: Timestamp) -> WindowState {
    if parsed.is_empty() {
        return WindowState::Open {
            closes: Timestamp::MAX,
        };
    }
    let mut next: Option<(Timestamp, String)> = None;
    for window in parsed {
        let today = now.to_zoned(window.zone.clone()).date();
        // A window that opened yesterday may still be open (e.g. 23:00 + 3h).
        for offset in -1..=HORIZON_DAYS {
            let Ok(date) = today.checked_add(offset.days()) else {
                break;
            };
            if !window.opens_on(date) {
                continue;
            }
            let Some((opens, closes)) = window.span_on(date) else {
                continue;
            };
            if opens <= now && now < closes {
                return WindowState::Open { closes };
            }
            if opens > now {
                if next.as_ref().is_none_or(|(best, _)| opens < *best) {
                    let local = opens.to_zoned(window.zone.clone());
                    let described = format!(
                        "{} {:02}:{:02} {}",
                        short_day(local.weekday()),
                        local.hour(),
                        local.minute(),
                        window.zone_name
                    );
                    next = Some((opens, described));
                }
                break;
            }
        }
    }
    match next {
        Some((opens, described)) => WindowState::Closed { opens, described },
        // Unreachable for valid windows within the horizon; say so plainly.
        None => WindowState::Closed {
            opens: Timestamp::MAX,
            described: "no window opens within a year".into(),
        },
    }
}

/// A duration for people: `4d20h`, `3h`, `5m`, `45s`.
pub fn human(duration: SignedDuration) -> String {
    let seconds = duration.as_secs().max(0);
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        // Whole hours once past the first: a waiting stage's message (and so
        // its status) changes at most hourly.
        (0, h, _) => format!("{h}h"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Duration, Weekday, Window};
    use crate::validate::windows::{WindowError, parse_windows};

    /// Evaluates raw windows as the pipeline does: `validate` parses them
    /// (and refuses a bad one) first.
    fn window_state(windows: &[Window], now: Timestamp) -> Result<WindowState, WindowError> {
        Ok(super::window_state(&parse_windows(windows)?, now))
    }

    fn window(days: &[Weekday], start: &str, duration: &str, zone: &str) -> Window {
        Window {
            days: days.to_vec(),
            months: vec![],
            start: start.into(),
            duration: Duration(duration.into()),
            time_zone: zone.into(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn open_inside_and_closed_outside() {
        let tuesday_night = [window(&[Weekday::Tue], "02:00", "3h", "Europe/Berlin")];
        // 2026-11-24 is a Tuesday; Berlin is UTC+1 in November.
        assert_eq!(
            window_state(&tuesday_night, at("2026-11-24T01:30:00Z")).unwrap(),
            WindowState::Open {
                closes: at("2026-11-24T04:00:00Z")
            }
        );
        assert_eq!(
            window_state(&tuesday_night, at("2026-11-24T04:00:00Z")).unwrap(),
            WindowState::Closed {
                opens: at("2026-12-01T01:00:00Z"),
                described: "Tue 02:00 Europe/Berlin".into()
            }
        );
        assert_eq!(
            window_state(&tuesday_night, at("2026-11-23T12:00:00Z")).unwrap(),
            WindowState::Closed {
                opens: at("2026-11-24T01:00:00Z"),
                described: "Tue 02:00 Europe/Berlin".into()
            }
        );
    }

    #[test]
    fn the_same_local_time_moves_with_daylight_saving() {
        let nightly = [window(&[], "02:30", "1h", "Europe/Berlin")];
        // Summer: UTC+2.
        assert_eq!(
            window_state(&nightly, at("2026-07-01T00:45:00Z")).unwrap(),
            WindowState::Open {
                closes: at("2026-07-01T01:30:00Z")
            }
        );
        // Winter: UTC+1, so 00:45 UTC is before the window.
        assert!(matches!(
            window_state(&nightly, at("2026-01-15T00:45:00Z")).unwrap(),
            WindowState::Closed { opens, .. } if opens == at("2026-01-15T01:30:00Z")
        ));
        // 2026-03-29: 02:30 does not exist in Berlin; the window opens at
        // 03:30 local (01:30 UTC), when clocks have jumped.
        assert!(matches!(
            window_state(&nightly, at("2026-03-29T00:00:00Z")).unwrap(),
            WindowState::Closed { opens, .. } if opens == at("2026-03-29T01:30:00Z")
        ));
        // 2026-10-25: 02:30 happens twice; the window takes the first.
        assert!(matches!(
            window_state(&nightly, at("2026-10-24T23:00:00Z")).unwrap(),
            WindowState::Closed { opens, .. } if opens == at("2026-10-25T00:30:00Z")
        ));
    }

    #[test]
    fn a_window_past_midnight_stays_open_into_the_next_day() {
        let late = [window(&[Weekday::Sat], "23:00", "3h", "UTC")];
        // 2026-11-29 is a Sunday.
        assert_eq!(
            window_state(&late, at("2026-11-29T01:00:00Z")).unwrap(),
            WindowState::Open {
                closes: at("2026-11-29T02:00:00Z")
            }
        );
    }

    #[test]
    fn quarterly_windows_and_other_zones() {
        let mut quarterly = window(&[Weekday::Tue], "02:00", "3h", "America/New_York");
        quarterly.months = vec![1, 4, 7, 10];
        let state = window_state(&[quarterly], at("2026-11-27T00:00:00Z")).unwrap();
        // The first Tuesday of January 2027 is the 5th; New York is UTC-5.
        assert_eq!(
            state,
            WindowState::Closed {
                opens: at("2027-01-05T07:00:00Z"),
                described: "Tue 02:00 America/New_York".into()
            }
        );
    }

    #[test]
    fn no_windows_is_always_open_and_bad_zones_are_named() {
        assert!(matches!(
            window_state(&[], at("2026-01-01T00:00:00Z")).unwrap(),
            WindowState::Open { .. }
        ));
        let bad = [window(&[], "02:00", "1h", "Europe/Atlantis")];
        assert_eq!(
            window_state(&bad, at("2026-01-01T00:00:00Z"))
                .unwrap_err()
                .to_string(),
            "promotion.windows[0].timeZone: \"Europe/Atlantis\" is not an IANA time zone such as Europe/Berlin"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(
            human(SignedDuration::from_secs(4 * 86_400 + 20 * 3_600 + 59)),
            "4d20h"
        );
        assert_eq!(human(SignedDuration::from_secs(3 * 3_600 + 5 * 60)), "3h");
        assert_eq!(human(SignedDuration::from_secs(5 * 60)), "5m");
        assert_eq!(human(SignedDuration::from_secs(45)), "45s");
        assert_eq!(human(SignedDuration::from_secs(7 * 86_400)), "7d");
    }
}
