//! The console's HTML: escaping, and the one page layout every page is rendered into (a skip
//! link, a labelled navigation, one `main`; the style sheet is served from `/console.css` and the
//! one script from `/console.js`, so the content security policy can forbid anything inline).

use std::fmt::Write;

use crate::operators::Operator;

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as an alert paragraph, escaped.
pub fn alert(text: &str) -> String {
    format!("<p class=\"bad\" role=\"alert\">{}</p>", escape(text))
}

/// `text` as one component of a URL path or query (RFC 3986 unreserved kept, the rest %-encoded).
pub fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Epoch milliseconds as RFC 3339 UTC, or an empty string.
pub fn time(millis: Option<i64>) -> String {
    let Some(ms) = millis else { return String::new() };
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Orders,
    DeadLetters,
    Partners,
    SignIn,
}

/// A whole page: `body` is already escaped HTML.
pub fn page(title: &str, section: Section, operator: Option<&Operator>, body: &str) -> String {
    let link = |href: &str, label: &str, this: Section| {
        let current = if section == this { " aria-current=\"page\"" } else { "" };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    };
    let who = match operator {
        Some(op) => format!(
            "<form method=\"post\" action=\"/logout\" class=\"who\"><span>{}</span> \
             <button type=\"submit\">Sign out</button></form>",
            escape(&op.name)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Interchange console</title><link rel=\"stylesheet\" href=\"/console.css\"></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><nav aria-label=\"Console\"><ul><li class=\"brand\">Interchange</li>{}{}{}{}</ul></nav>{who}</header>\
         <main id=\"main\"><h1>{title}</h1>{body}</main></body></html>\n",
        link("/", "Overview", Section::Overview),
        link("/orders", "Orders", Section::Orders),
        link("/dead-letters", "Dead letters", Section::DeadLetters),
        link("/partners", "Partners", Section::Partners),
        title = escape(title),
    )
}

/// The style sheet: system fonts, contrast above WCAG AA (4.5:1) for every text colour on its
/// background, visible focus, tables that scroll on a phone.
pub const CSS: &str = "\
:root{color-scheme:light;--ink:#1a1a1a;--muted:#4a4a4a;--line:#c8c8c8;--accent:#0b4f9c;--bad:#9b1c1c;--ok:#1d5e20}\
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--ink);background:#fff}\
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px;z-index:2}\
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;padding:8px 16px;border-bottom:1px solid var(--line)}\
nav ul{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;margin:0;padding:0}.brand{font-weight:700}\
a{color:var(--accent)}a[aria-current=page]{font-weight:700}\
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\
main{padding:16px;max-width:1200px}h1{font-size:1.5rem;margin:0 0 12px}\
form.search{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end;margin-bottom:16px}\
label{display:flex;flex-direction:column;font-size:.9rem;color:var(--muted)}label.inline{flex-direction:row;gap:6px;align-items:center}\
input,select,button{font:inherit;padding:6px 8px;border:1px solid var(--muted);border-radius:4px;color:var(--ink);background:#fff}\
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}\
.who{display:flex;gap:8px;align-items:center}.who button{background:#fff;color:var(--accent)}\
.table{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}\
th{color:var(--muted);font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}dt{color:var(--muted)}dd{margin:0}\
section[data-stale] .updated::after{content:' (not updating: the console did not answer)';color:var(--bad)}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}.num{text-align:right;font-variant-numeric:tabular-nums}\
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:8px;border-radius:4px}.status{font-weight:700}.bad{color:var(--bad)}.ok{color:var(--ok)}.note{color:var(--muted)}\
";

/// The console's one script: refreshes a section marked `data-refresh` (the overview's live
/// figures) in place from the URL it names, every `data-every` ms. Without it the page is whole
/// and a reload refreshes it; a lost session reloads the page (to the sign-in form).
pub const SCRIPT: &str = r#"(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  if (!live || !window.fetch) { return; }
  var every = Number(live.getAttribute("data-every")) || 3000;
  function refresh() {
    fetch(live.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) { window.location.reload(); throw new Error("signed out"); }
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      })
      .then(function (html) { live.innerHTML = html; live.removeAttribute("data-stale"); })
      .catch(function () { live.setAttribute("data-stale", "true"); })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_text_not_markup() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(url_component("acme-shop:A 1/é"), "acme-shop%3AA%201%2F%C3%A9");
    }

    #[test]
    fn times_are_rfc_3339_utc() {
        assert_eq!(time(Some(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(time(None), "");
    }

    #[test]
    fn a_page_marks_its_section_and_escapes_its_title_and_operator() {
        let op = Operator { name: "<b>".into(), permissions: Default::default() };
        let html = page("A & B", Section::Orders, Some(&op), "<p>x</p>");
        assert!(html.contains("<title>A &amp; B · Interchange console</title>"));
        assert!(html.contains("<a href=\"/orders\" aria-current=\"page\">Orders</a>"));
        assert!(html.contains("<span>&lt;b&gt;</span>"));
        assert!(html.contains("<html lang=\"en\">"));
    }
}
