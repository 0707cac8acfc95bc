//! Plain-text tables for the commands that print rows (`hearth status`, `hearth get`): columns
//! padded to their widest cell, two spaces apart, no trailing spaces. What goes in the cells is
//! the commands' business.

/// Lays out `rows` (the first is the header) as aligned columns, one line each.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["NAME".to_string(), "STATE".to_string()],
            vec!["a-long-name".to_string(), "-".to_string()],
        ];
        assert_eq!(render(&rows), "NAME         STATE\na-long-name  -\n");
    }
}
