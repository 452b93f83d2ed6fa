//! The embeddable widget (`GET /v1/widget?site=…`): a small HTML page for an `<iframe>`
//! showing "N online now" and the 24-hour sparkline, for sites with `"public": true`.
//!
//! It sets no cookie and sends no heartbeat. Its script and style are inline, allowed by
//! their SHA-256 hashes in the page's own Content-Security-Policy (no `'unsafe-inline'`);
//! everything that varies (site, count, points, interval) is in the markup, never in the
//! script, so the hashes are those of two constant files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const SCRIPT: &str = include_str!("widget/widget.js");
const STYLE: &str = include_str!("widget/widget.css");

/// The sparkline's drawing box, as `widget.js` draws it too.
const W: f64 = 288.0;
const H: f64 = 40.0;

fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page's Content-Security-Policy: only its own hashed script and style, requests to
/// its own origin (the count and history), and any page may frame it.
#[must_use]
pub fn csp() -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors *",
        sha256_source(SCRIPT),
        sha256_source(STYLE)
    )
}

/// The sparkline's line and area as SVG `points`, scaled to the highest step.
#[must_use]
pub fn sparkline(points: &[[u64; 2]]) -> (String, String) {
    let Some(last) = points.len().checked_sub(1) else {
        return (String::new(), String::new());
    };
    let max = points.iter().map(|p| p[1]).max().unwrap_or(0).max(1) as f64;
    let dx = if last > 0 { W / last as f64 } else { 0.0 };
    let xy: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let y = H - 2.0 - (p[1] as f64 / max) * (H - 4.0);
            format!("{:.1},{:.1}", i as f64 * dx, y)
        })
        .collect();
    let line = xy.join(" ");
    let area = format!("0,{H} {line} {:.1},{H}", last as f64 * dx);
    (line, area)
}

/// The page for `site` (validated: `[A-Za-z0-9_-]`, so safe in markup) with `online`
/// people now, the 24-hour `points`, refreshing every `interval_ms`. Only digits and the
/// site name come into it: nothing of the request is reflected.
#[must_use]
pub fn page(site: &str, online: u64, points: &[[u64; 2]], interval_ms: u64) -> String {
    let (line, area) = sparkline(points);
    let data: Vec<String> = points
        .iter()
        .map(|p| format!("[{},{}]", p[0], p[1]))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>{site}: {online} online now</title><style>{STYLE}</style></head>
<body><main data-site="{site}" data-interval="{interval_ms}" data-points="[{data}]" data-state="live">
<p class="now"><span class="dot" aria-hidden="true"></span><strong id="online">{online}</strong> online now</p>
<svg viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="people online over the last 24 hours"><polygon id="area" class="area" points="{area}"/><polyline id="spark" class="spark" points="{line}"/></svg>
<p class="foot"><span>last 24 h</span><a href="https://github.com/" target="_blank" rel="noopener noreferrer">herenow</a></p>
</main><script>{SCRIPT}</script></body></html>
"#,
        data = data.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_its_hashed_script_and_style_and_nothing_of_the_request() {
        let html = page("demo", 7, &[[1, 0], [2, 7]], 15_000);
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(html.contains(r#"data-points="[[1,0],[2,7]]""#));
        assert!(html.contains(">7</strong>"));
        let csp = csp();
        assert!(csp.contains(&sha256_source(SCRIPT)) && csp.contains(&sha256_source(STYLE)));
        assert!(!csp.contains("unsafe-inline"));
        // One inline script and one style, nothing else inline (no style attributes).
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains("style=\""));
    }

    #[test]
    fn the_sparkline_spans_the_box_and_scales_to_the_highest_step() {
        let (line, area) = sparkline(&[[0, 0], [1, 5], [2, 10]]);
        assert_eq!(line, "0.0,38.0 144.0,20.0 288.0,2.0");
        assert_eq!(area, "0,40 0.0,38.0 144.0,20.0 288.0,2.0 288.0,40");
        assert_eq!(sparkline(&[]), (String::new(), String::new()));
    }
}
