//! The sidebar's lists, without the window: names in natural order (vm2 before vm10, as file
//! managers sort), the filter typed into its field, and the counts its headings show, so that
//! the running ones are found at a glance among a hundred.

use std::cmp::Ordering;

/// Compares names as people read them: runs of digits by their value, the rest without regard
/// to case; names equal that way are ordered by their bytes, so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let (m, rest_x) = digits(x);
                let (n, rest_y) = digits(y);
                // Leading zeros do not change a number's value; the longer run (fewer zeros
                // stripped) then decides only when all else is equal, via the byte order.
                let (m_trimmed, n_trimmed) = (trim_zeros(m), trim_zeros(n));
                let by_value = m_trimmed
                    .len()
                    .cmp(&n_trimmed.len())
                    .then_with(|| m_trimmed.cmp(n_trimmed));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (x, y) = (rest_x, rest_y);
            }
            (Some(p), Some(q)) => {
                let by_letter = p.to_ascii_lowercase().cmp(&q.to_ascii_lowercase());
                if by_letter != Ordering::Equal {
                    return by_letter;
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

fn digits(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b'0').unwrap_or(s.len());
    &s[start..]
}

/// What the sidebar shows: names containing the filter's text (any case), and only the running
/// ones when asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub text: String,
    pub running_only: bool,
}

impl Filter {
    pub fn is_active(&self) -> bool {
        self.running_only || !self.text.trim().is_empty()
    }
}

/// A heading's count, short enough to sit beside it: "3 of 100 running", or "2 of 100 shown"
/// when filtered.
pub fn count(shown: usize, running: usize, total: usize, filtered: bool) -> String {
    if filtered {
        format!("{shown} of {total} shown")
    } else {
        format!("{running} of {total} running")
    }
}

/// `items` in natural order of the name `name_of` gives, keeping those `filter` shows; each
/// item's running state from `running`.
pub fn listed<'a, T>(
    items: &'a [T],
    name_of: impl Fn(&T) -> &str,
    running: impl Fn(&T) -> bool,
    filter: &Filter,
) -> Vec<&'a T> {
    let needle = filter.text.trim().to_lowercase();
    let mut shown: Vec<&T> = items
        .iter()
        .filter(|item| {
            (!filter.running_only || running(item))
                && name_of(item).to_lowercase().contains(&needle)
        })
        .collect();
    shown.sort_by(|a, b| natural_cmp(name_of(a), name_of(b)));
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_people_read_them() {
        let mut names = vec![
            "vm10", "vm1", "vm100", "vm11", "vm2", "Vm3", "db", "vm02", "alpha",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "alpha", "db", "vm1", "vm02", "vm2", "Vm3", "vm10", "vm11", "vm100"
            ]
        );
        assert_eq!(natural_cmp("web-9-b", "web-10-a"), Ordering::Less);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        // A number longer than any integer type still compares by value.
        assert_eq!(
            natural_cmp("x99999999999999999999999", "x100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn a_hundred_vms_list_in_order() {
        let mut names: Vec<String> = (1..=100).map(|n| format!("vm{n}")).collect();
        names.reverse();
        let filter = Filter::default();
        let shown = listed(&names, |n| n, |_| false, &filter);
        assert_eq!(shown.first().map(|s| s.as_str()), Some("vm1"));
        assert_eq!(shown[9], "vm10");
        assert_eq!(shown.last().map(|s| s.as_str()), Some("vm100"));
    }

    #[test]
    fn the_filter_keeps_matching_names_and_running_ones() {
        let items = [
            ("web1", true),
            ("web2", false),
            ("db", true),
            ("WEB10", false),
        ]
        .map(|(name, running)| (name.to_owned(), running));
        fn name(i: &(String, bool)) -> &str {
            &i.0
        }
        let running = |i: &(String, bool)| i.1;
        let mut filter = Filter {
            text: " web ".into(),
            running_only: false,
        };
        let names = |f: &Filter| -> Vec<&str> {
            listed(&items, name, running, f)
                .iter()
                .map(|i| i.0.as_str())
                .collect()
        };
        assert_eq!(names(&filter), ["web1", "web2", "WEB10"]);
        filter.running_only = true;
        assert_eq!(names(&filter), ["web1"]);
        filter.text.clear();
        assert_eq!(names(&filter), ["db", "web1"]);
        assert!(filter.is_active());
        assert!(!Filter::default().is_active());
        assert_eq!(count(1, 2, 4, true), "1 of 4 shown");
        assert_eq!(count(4, 2, 4, false), "2 of 4 running");
    }
}
