//! `gw-bench plot`: an SVG bar chart of a `gw-bench esp` report, ours
//! beside ipsec-secgw per cipher, size and direction (Mpps, medians).

use std::fmt::Write as _;
use std::path::Path;

/// One bar pair: label, ours, secgw (None where the anchor has no such cipher).
type Row = (String, f64, Option<f64>);

/// Reads the DPDK-path table of an `esp` report (Markdown).
fn rows(md: &str) -> Vec<Row> {
    md.lines()
        .filter(|l| l.starts_with("| aes"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            // | cipher | size | dir | ours | secgw | mode | ratio | floor |
            if c.len() < 7 || !c[4].contains('[') {
                return None;
            }
            let first = |s: &str| s.split_whitespace().next()?.parse::<f64>().ok();
            Some((format!("{} {} {}", c[1], c[2], c[3]), first(c[4])?, first(c[5])))
        })
        .collect()
}

pub fn run(input: &Path, out: &Path) -> Result<(), String> {
    let md = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let rows = rows(&md);
    if rows.is_empty() {
        return Err(format!("{}: no DPDK-path table rows found", input.display()));
    }
    let max = rows.iter().map(|r| r.1.max(r.2.unwrap_or(0.0))).fold(0.0, f64::max).max(1.0);
    let (bar_h, gap, left, width) = (9.0, 8.0, 250.0, 760.0);
    let scale = (width - left - 60.0) / max;
    let height = 40.0 + rows.len() as f64 * (2.0 * bar_h + gap) + 30.0;
    let mut s = String::new();
    writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" font-family="sans-serif" font-size="11">"#).ok();
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#).ok();
    writeln!(s, r#"<text x="10" y="18" font-size="13">ESP on one core, Mpps (median): gw-dataplane (blue) vs DPDK ipsec-secgw (grey)</text>"#).ok();
    let mut y = 36.0;
    for (label, ours, secgw) in &rows {
        writeln!(s, r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{label}</text>"#, left - 6.0, y + bar_h + 3.0).ok();
        writeln!(s, r##"<rect x="{left}" y="{y:.1}" width="{:.1}" height="{bar_h}" fill="#2b6cb0"/>"##, ours * scale)
            .ok();
        writeln!(s, r#"<text x="{:.1}" y="{:.1}">{ours:.2}</text>"#, left + ours * scale + 4.0, y + bar_h - 1.0).ok();
        if let Some(g) = secgw {
            let y2 = y + bar_h;
            writeln!(s, r##"<rect x="{left}" y="{y2:.1}" width="{:.1}" height="{bar_h}" fill="#a0aec0"/>"##, g * scale)
                .ok();
            writeln!(s, r#"<text x="{:.1}" y="{:.1}">{g:.2}</text>"#, left + g * scale + 4.0, y2 + bar_h - 1.0).ok();
        }
        y += 2.0 * bar_h + gap;
    }
    writeln!(s, "</svg>").ok();
    std::fs::write(out, s).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_report_rows() {
        let md = "| cipher | size | dir | gw-dataplane |\n|---|\n\
| aes128gcm | 64 | out | 7.011 [6.89-7.42] / 370 | 5.679 [5.46-5.99] / 457 | cpu-crypto | 1.23x | x |\n\
| aes256gcm | 64 | in | 5.604 [5.35-5.92] / 463 | - | - | - | x |\n\
| aes128gcm | 64 | 177 | 365 | 393 | +4 | 341 | 476 |\n";
        let r = rows(md);
        assert_eq!(
            r,
            vec![("aes128gcm 64 out".to_string(), 7.011, Some(5.679)), ("aes256gcm 64 in".to_string(), 5.604, None)]
        );
    }
}
