//! The tests' metric reader is strict (issue 13, defect 9): a series of a
//! family that does not exist panics instead of reading 0, so an assertion
//! that a counter stayed 0 cannot pass on a renamed or removed metric.

mod common;

use common::metrics::metric_in;
use common::{metric, metric_type};
use gossiphttp::{Options, Transport};

fn registry() -> gossiphttp::MetricsRegistry {
    let (transport, registry) = Transport::new(Options::default()).expect("valid options");
    drop(transport);
    registry
}

#[tokio::test]
async fn an_existing_series_reads_its_value() {
    let r = registry();
    assert_eq!(metric(&r, "cluster_transport_tx_packets_total"), 0.0);
    assert_eq!(metric(&r, "cluster_transport_streams"), 0.0);
    assert_eq!(
        metric_type(&r, "cluster_transport_tx_packets").as_deref(),
        Some("counter")
    );
}

#[tokio::test]
#[should_panic(expected = "no metric family holds")]
async fn a_misspelled_family_panics() {
    metric(&registry(), "cluster_transport_tx_packet_total");
}

#[tokio::test]
#[should_panic(expected = "no metric family holds")]
async fn a_counter_without_its_total_suffix_panics() {
    // The family is `cluster_transport_tx_packets`; its sample is `_total`.
    metric(&registry(), "cluster_transport_tx_packets");
}

#[tokio::test]
#[should_panic(expected = "no metric family holds")]
async fn a_misspelled_family_with_labels_panics() {
    metric(
        &registry(),
        "cluster_transport_request_refused_total{reason=\"auth\"}",
    );
}

#[tokio::test]
async fn an_unused_label_set_of_an_existing_family_reads_zero() {
    let r = registry();
    let text = r.encode_text();
    // prometheus-client declares the family but encodes no label set yet.
    assert!(
        text.contains("# TYPE cluster_transport_requests_refused counter"),
        "{text}"
    );
    assert!(
        !text.contains("cluster_transport_requests_refused_total{"),
        "{text}"
    );
    assert_eq!(
        metric(
            &r,
            "cluster_transport_requests_refused_total{reason=\"auth\"}"
        ),
        0.0
    );
}

#[tokio::test]
#[should_panic(expected = "has no series without labels")]
async fn a_labelled_family_read_without_labels_panics() {
    metric(&registry(), "cluster_transport_requests_refused_total");
}

const TEXT: &str = "\
# HELP refused Refusals.
# TYPE refused counter
refused_total{reason=\"auth\"} 2
# TYPE streams gauge
streams 3
# EOF
";

#[test]
fn label_sets_read_their_own_value_and_unused_ones_zero() {
    assert_eq!(metric_in(TEXT, "refused_total{reason=\"auth\"}"), 2.0);
    assert_eq!(metric_in(TEXT, "refused_total{reason=\"origin\"}"), 0.0);
    assert_eq!(metric_in(TEXT, "streams"), 3.0);
}

#[test]
#[should_panic(expected = "no series with these label names")]
fn a_misspelled_label_name_panics() {
    metric_in(TEXT, "refused_total{reson=\"auth\"}");
}

#[test]
#[should_panic(expected = "no series with these label names")]
fn labels_on_a_metric_without_labels_panic() {
    metric_in(TEXT, "streams{reason=\"auth\"}");
}
