//! Plain-text tables and key/value blocks for human output, aligned by display width.

/// Left-aligned columns separated by two spaces; a header row first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `key   value` lines with the values aligned.
pub fn pairs(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k}{}  {v}\n", " ".repeat(width - k.chars().count())))
        .collect()
}

/// A ratio as a percentage, e.g. `50%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let out = table(
            &["NAME", "CPUS"],
            &[
                vec!["a".into(), "2".into()],
                vec!["longer".into(), "12".into()],
            ],
        );
        assert_eq!(out, "NAME    CPUS\na       2\nlonger  12\n");
        assert_eq!(
            pairs(&[("ΣU_vm", "50%".into()), ("CPUs", "4".into())]),
            "ΣU_vm  50%\nCPUs   4\n"
        );
        assert_eq!(percent(0.5), "50%");
    }
}
