//! When a binding's next rotation is due: the interval, a deterministic
//! per-binding jitter (so that bindings created together do not rotate in
//! the same second), and an optional window of allowed days and hours.

use crate::policy::{Policy, Window};

const DAY: i64 = 86_400;

/// The binding's fixed offset within `[0, jitter]`, derived from its name.
pub fn jitter_offset(name: &str, jitter: i64) -> i64 {
    if jitter <= 0 {
        return 0;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_be_bytes(b) % (jitter as u64 + 1)) as i64
}

fn weekday_index(unix: i64) -> usize {
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    ((unix.div_euclid(DAY) + 3).rem_euclid(7)) as usize
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day_allowed(w: &Window, unix: i64) -> bool {
    w.days.is_empty()
        || w.days
            .iter()
            .any(|d| d.eq_ignore_ascii_case(DAYS[weekday_index(unix)]))
}

/// Whether `unix` falls inside the window.
pub fn in_window(w: &Window, unix: i64) -> bool {
    let hour = (unix.rem_euclid(DAY) / 3_600) as u8;
    day_allowed(w, unix) && hour >= w.start_hour && hour < w.end_hour
}

/// The first instant at or after `t` inside the window, shifted by `offset`
/// into the window (bounded by its length).
pub fn align(w: &Window, t: i64, offset: i64) -> i64 {
    if in_window(w, t) {
        return t;
    }
    let length = i64::from(w.end_hour - w.start_hour) * 3_600;
    let day_start = t - t.rem_euclid(DAY);
    for d in 0..8 {
        let start = day_start + d * DAY + i64::from(w.start_hour) * 3_600;
        if start >= t && day_allowed(w, start) {
            return start + offset.rem_euclid(length.max(1));
        }
    }
    t
}

/// The next due time after a rotation finished at `base`.
pub fn next_due(name: &str, policy: &Policy, base: i64) -> i64 {
    let offset = jitter_offset(name, policy.jitter);
    let due = base + policy.interval + offset;
    match &policy.window {
        Some(w) => align(w, due, offset),
        None => due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyInput;

    #[test]
    fn jitter_spreads_a_thousand_bindings_over_the_window() {
        let jitter = 3_600;
        let offsets: Vec<i64> = (0..1_000)
            .map(|i| jitter_offset(&format!("binding-{i}"), jitter))
            .collect();
        assert!(offsets.iter().all(|o| (0..=jitter).contains(o)));
        let mut buckets = [0usize; 12];
        for o in &offsets {
            buckets[((*o * 12) / (jitter + 1)) as usize] += 1;
        }
        // 1,000 bindings over twelve 5-minute buckets: each gets a share
        // near 83; none is empty or holds a crowd.
        assert!(
            buckets.iter().all(|b| (40..=130).contains(b)),
            "{buckets:?}"
        );
        let distinct: std::collections::HashSet<_> = offsets.iter().collect();
        assert!(
            distinct.len() > 700,
            "offsets rarely coincide: {}",
            distinct.len()
        );
        assert_eq!(
            jitter_offset("binding-1", jitter),
            offsets[1],
            "deterministic"
        );
    }

    #[test]
    fn windows_move_due_times_inside() {
        // 2026-11-27 was a Friday.
        let friday_noon = 1_795_780_800 - (1_795_780_800 % DAY) + 12 * 3_600;
        assert_eq!(DAYS[weekday_index(friday_noon)], "Fri");
        let w = Window {
            days: vec!["Sat".into(), "Sun".into()],
            start_hour: 2,
            end_hour: 4,
        };
        let t = align(&w, friday_noon, 0);
        assert_eq!(DAYS[weekday_index(t)], "Sat");
        assert_eq!((t % DAY) / 3_600, 2);
        assert!(in_window(&w, t));
        let with_offset = align(&w, friday_noon, 5_000);
        assert!(in_window(&w, with_offset));
        assert_eq!(align(&w, t + 60, 9_999), t + 60, "already inside");
    }

    #[test]
    fn next_due_adds_interval_and_offset() {
        let p =
            Policy::resolve(&PolicyInput::default(), None, None).unwrap_or_else(|e| panic!("{e}"));
        let due = next_due("acg", &p, 1_000_000);
        assert_eq!(due, 1_000_000 + 70 * DAY + jitter_offset("acg", 3_600));
    }
}
