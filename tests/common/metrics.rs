//! Reading a transport's metrics back, strictly: the one helper the tests
//! and the bench (`benches/transport/main.rs` includes this file) use.
//!
//! The rule: a series whose metric family is not in the exposition (no
//! `# TYPE` line it belongs to) is a misspelled, renamed or removed metric,
//! and panics with the exposition text, so that `assert_eq!(metric(..), 0.0)`
//! cannot pass on a name that does not exist. prometheus-client does not
//! encode a label set never used, so within an existing family such a series
//! reads 0; a series without labels is always encoded, so its absence
//! panics too.
#![allow(dead_code)]

use gossiphttp::MetricsRegistry;

/// The value of one series (`name` or `name{labels}`, labels written as
/// the exposition writes them) in `registry`'s text exposition.
pub fn metric(registry: &MetricsRegistry, series: &str) -> f64 {
    metric_in(&registry.encode_text(), series)
}

/// [`metric`] over an exposition text already encoded.
pub fn metric_in(text: &str, series: &str) -> f64 {
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, Some(labels)),
        None => (series, None),
    };
    let Some((family, kind)) = family_of(text, name) else {
        panic!("no metric family holds {series:?} (misspelled, renamed or removed?) in\n{text}");
    };
    let value = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '));
    match value {
        Some(v) => {
            // OpenMetrics allows a timestamp after the value.
            let v = v.split_whitespace().next().unwrap_or_default();
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("{series}: bad value {v:?} in\n{text}"))
        }
        None if labels.is_some() => {
            check_label_names(text, family, series);
            0.0
        }
        None => panic!(
            "{series:?}: the {kind} family {family:?} has no series without labels \
             (name a label set) in\n{text}"
        ),
    }
}

/// The metric type a `# TYPE <family> <type>` line gives `family`.
pub fn metric_type(registry: &MetricsRegistry, family: &str) -> Option<String> {
    type_lines(&registry.encode_text())
        .find(|(name, _)| *name == family)
        .map(|(_, kind)| kind.to_string())
}

/// The family (and its type) that a sample named `name` belongs to: the
/// family's own name, or it with the suffix its type gives its samples
/// (a counter's `_total`, a histogram's `_bucket`, ...).
fn family_of<'t>(text: &'t str, name: &str) -> Option<(&'t str, &'t str)> {
    type_lines(text).find(|(family, kind)| {
        name.strip_prefix(family)
            .is_some_and(|suffix| sample_suffixes(kind).contains(&suffix))
    })
}

/// Panics when `family` has series and none is labelled with the label
/// names `series` uses (a misspelled label, or labels on a metric that has
/// none); the values may differ, a label set never used reads 0.
fn check_label_names(text: &str, family: &str, series: &str) {
    let wanted = label_names(series);
    let mut seen = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' ').map(|(s, _)| s))
        .filter(|s| {
            family_of(text, s.split('{').next().unwrap_or_default()).map(|f| f.0) == Some(family)
        })
        .peekable();
    if seen.peek().is_some() && !seen.any(|s| label_names(s) == wanted) {
        panic!("{series:?}: the family {family:?} has no series with these label names in\n{text}");
    }
}

/// The label names of a series, in order: `a{x="1",y="2"}` gives `[x, y]`.
fn label_names(series: &str) -> Vec<&str> {
    let Some((_, mut rest)) = series.split_once('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    while let Some((name, value)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(','));
        // Skip the quoted value, escapes included.
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(value.len(), |(i, _)| i + 1);
        rest = &value[end..];
    }
    names
}

/// Every `(family, type)` the exposition declares.
fn type_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let (family, kind) = line.strip_prefix("# TYPE ")?.split_once(' ')?;
        Some((family, kind.trim()))
    })
}

/// The suffixes OpenMetrics gives the samples of a family of type `kind`.
fn sample_suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" | "gaugehistogram" => {
            &["_bucket", "_sum", "_count", "_created", "_gcount", "_gsum"]
        }
        "summary" => &["", "_sum", "_count", "_created"],
        "info" => &["_info"],
        _ => &[""],
    }
}
