//! The gate's answer for people (a table), for programs (JSON) and for CI systems that render
//! test reports (JUnit XML: one test case per image; a failing image is a failure naming each
//! violated property, an undecided one an error).

use super::{Decided, Verdict};

pub fn text(ds: &[Decided]) -> String {
    let mut s = format!("{:<10} {:<60} {:<16} {}\n", "VERDICT", "IMAGE", "PROPERTY", "REASON");
    for d in ds {
        let verdict = match d.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Undecided => "UNDECIDED",
        };
        let shown = match &d.decided {
            Some(x) if *x != d.image => {
                format!("{} → {}", d.image, x.rsplit('@').next().unwrap_or_default().chars().take(19).collect::<String>())
            }
            _ => d.image.clone(),
        };
        match (&d.error, d.violations.is_empty()) {
            (Some(e), _) => s.push_str(&format!("{verdict:<10} {shown:<60} {:<16} {e}\n", "-")),
            (None, true) => {
                let why = if d.by_vsa.is_empty() {
                    format!("every check passed ({})", if d.policies.is_empty() { "no policy".to_string() } else { d.policies.join(", ") })
                } else {
                    d.by_vsa.iter().map(|(p, w)| format!("[{p}] {w}")).collect::<Vec<_>>().join("; ")
                };
                s.push_str(&format!("{verdict:<10} {shown:<60} {:<16} {why}\n", "-"));
            }
            (None, false) => {
                for (i, v) in d.violations.iter().enumerate() {
                    let first = if i == 0 { (verdict, shown.as_str()) } else { ("", "") };
                    s.push_str(&format!(
                        "{:<10} {:<60} {:<16} [{}] ({}) {}\n",
                        first.0,
                        first.1,
                        v.property.as_str(),
                        v.policy,
                        v.mode.as_str(),
                        v.message
                    ));
                }
            }
        }
    }
    s
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub fn junit(ds: &[Decided]) -> String {
    let failures = ds.iter().filter(|d| d.verdict == Verdict::Fail).count();
    let errors = ds.iter().filter(|d| d.verdict == Verdict::Undecided).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!("<testsuites name=\"trustmirror gate\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n", ds.len()));
    s.push_str(&format!("  <testsuite name=\"trustmirror gate\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n", ds.len()));
    for d in ds {
        let name = xml(&d.image);
        s.push_str(&format!("    <testcase classname=\"{}\" name=\"{name}\">\n", xml(&d.policies.join(","))));
        match d.verdict {
            Verdict::Pass => {}
            Verdict::Fail => {
                let props: Vec<&str> =
                    d.violations.iter().filter(|v| v.mode == crate::core::policy::Mode::Enforce).map(|v| v.property.as_str()).collect();
                let body: Vec<String> = d
                    .violations
                    .iter()
                    .map(|v| format!("[{}] {} ({}): {}", v.policy, v.property.as_str(), v.mode.as_str(), v.message))
                    .collect();
                s.push_str(&format!(
                    "      <failure message=\"{}\" type=\"policy\">{}</failure>\n",
                    xml(&props.join(", ")),
                    xml(&body.join("\n"))
                ));
            }
            Verdict::Undecided => {
                s.push_str(&format!(
                    "      <error message=\"{}\" type=\"undecided\"/>\n",
                    xml(d.error.as_deref().unwrap_or("no decision"))
                ));
            }
        }
        s.push_str("    </testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
