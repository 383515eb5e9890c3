//! `shmring metrics` and `shmring serve-metrics`: every ring in the
//! Prometheus/OpenMetrics text format, printed once or served over HTTP for
//! a Prometheus server to scrape.
//!
//! The exposition is `prometheus-client`'s: it writes HELP, TYPE and UNIT
//! once per family, the `_total` suffix of counters, escaped label values
//! and the closing `# EOF`. Each family has one unit: bytes for every
//! ring (typed rings' values times their element size), and, for typed
//! rings only, a `_messages_total` family in values.
//!
//! Two formats, chosen by the scraper's `Accept` header (and by `--format`
//! on the command line): OpenMetrics 1.0, and the Prometheus text format
//! 0.0.4 that `promtool check metrics`, older scrapers and plain HTTP
//! clients read. The second is derived from the first: no `# UNIT` or
//! `# EOF` lines, and a counter's HELP and TYPE name its sample
//! (`shmring_blocked_total`), not its family (`shmring_blocked`), else a
//! 0.0.4 reader finds samples without help text.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::view::{self, CountersView, Listed, RingView, ServiceView, SubscriberView};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The text formats an exposition comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    Openmetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
}

impl Format {
    /// The `Content-Type` of an exposition in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Openmetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format a scraper's `Accept` header prefers: OpenMetrics when it
    /// names it with a weight at least that of `text/plain` (Prometheus
    /// itself sends `application/openmetrics-text;version=1.0.0,...,
    /// text/plain;version=0.0.4;q=0.5,*/*;q=0.1`), else the 0.0.4 text,
    /// which is also the answer to a client that sends no `Accept`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::Openmetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Arguments of `shmring metrics`.
#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Only these rings (default: every ring in /dev/shm).
    pub names: Vec<String>,
    /// The text format to print.
    #[arg(long, value_enum, default_value_t = Format::Openmetrics)]
    pub format: Format,
}

/// Arguments of `shmring serve-metrics`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
}

/// The rings of one scrape.
#[derive(Debug)]
struct Rings {
    rings: Vec<RingView>,
    /// The request-reply services among them.
    services: Vec<ServiceView>,
    unreadable: u64,
}

type Labels = Vec<(&'static str, String)>;

fn ring_labels(r: &RingView) -> Labels {
    vec![("ring", r.name.clone()), ("kind", r.kind.clone())]
}

/// A subscriber's label: its identity if named, else `#entry`.
fn subscriber_label(s: &SubscriberView) -> String {
    s.identity
        .map_or_else(|| format!("#{}", s.entry), |id| id.to_string())
}

fn side_labels(r: &RingView, side: &'static str) -> Labels {
    let mut l = ring_labels(r);
    l.push(("side", side.to_owned()));
    l
}

/// One family: a descriptor, then one sample per row.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    rows: impl IntoIterator<Item = (Labels, M)>,
    kind: prometheus_client::metrics::MetricType,
) -> Result<(), std::fmt::Error> {
    let mut desc = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, metric) in rows {
        metric.encode(desc.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for Rings {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType::{Counter, Gauge};
        let rings = &self.rings;
        let per_ring = |f: fn(&RingView) -> u64| -> Vec<(Labels, u64)> {
            rings.iter().map(|r| (ring_labels(r), f(r))).collect()
        };
        let typed = |f: fn(&RingView) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            rings
                .iter()
                .filter(|r| r.unit == "values")
                .map(|r| (ring_labels(r), counter(f(r))))
                .collect()
        };
        let sides = |f: fn(&CountersView) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            rings
                .iter()
                .flat_map(|r| {
                    [
                        (side_labels(r, "producer"), counter(f(&r.producers))),
                        (side_labels(r, "consumer"), counter(f(&r.consumers))),
                    ]
                })
                .collect()
        };
        let counters = |rows: Vec<(Labels, u64)>| rows.into_iter().map(|(l, v)| (l, counter(v)));
        let gauges = |rows: Vec<(Labels, u64)>| rows.into_iter().map(|(l, v)| (l, gauge(v)));
        let e = &mut enc;
        family(
            e,
            "shmring_written",
            "Bytes claimed by producers (typed rings: values times the element size; byte rings: framing included).",
            Some(Unit::Bytes),
            counters(per_ring(|r| r.written_bytes)),
            Counter,
        )?;
        family(
            e,
            "shmring_read",
            "Bytes released by consumers (as for written).",
            Some(Unit::Bytes),
            counters(per_ring(|r| r.read_bytes)),
            Counter,
        )?;
        family(
            e,
            "shmring_written_messages",
            "Values claimed by producers (typed rings only).",
            None,
            typed(|r| r.written),
            Counter,
        )?;
        family(
            e,
            "shmring_read_messages",
            "Values released by consumers (typed rings only).",
            None,
            typed(|r| r.read),
            Counter,
        )?;
        family(
            e,
            "shmring_blocked",
            "Producers: calls that found the ring full (back-pressure). Consumers: blocking calls that found it empty and waited.",
            None,
            sides(|c| c.blocked),
            Counter,
        )?;
        family(
            e,
            "shmring_sleeps",
            "Times a handle of this side slept on the futex.",
            None,
            sides(|c| c.sleeps),
            Counter,
        )?;
        family(
            e,
            "shmring_wakes",
            "Futex wakes issued to this side.",
            None,
            sides(|c| c.wakes),
            Counter,
        )?;
        family(
            e,
            "shmring_timeouts",
            "Blocking calls of this side that timed out or stalled.",
            None,
            sides(|c| c.timeouts),
            Counter,
        )?;
        family(
            e,
            "shmring_takeovers",
            "Roles and claim records taken over from dead handles of this side.",
            None,
            sides(|c| c.takeovers),
            Counter,
        )?;
        family(
            e,
            "shmring_repaired",
            "Positions (byte rings: spans) that dead holders left unfinished and a repair skipped or handed on.",
            None,
            counters(per_ring(|r| r.repaired)),
            Counter,
        )?;
        let per_subscriber = |f: fn(&SubscriberView) -> u64| -> Vec<(Labels, u64)> {
            rings
                .iter()
                .flat_map(|r| {
                    r.subscribers.iter().map(move |sub| {
                        let mut l = ring_labels(r);
                        l.push(("subscriber", subscriber_label(sub)));
                        (l, f(sub))
                    })
                })
                .collect()
        };
        family(
            e,
            "shmring_subscriber_lag",
            "Broadcast rings: values published that the subscriber has not read.",
            None,
            gauges(per_subscriber(|s| s.lag)),
            Gauge,
        )?;
        family(
            e,
            "shmring_subscriber_position",
            "Broadcast rings: the next position the subscriber reads.",
            None,
            gauges(per_subscriber(|s| s.position)),
            Gauge,
        )?;
        family(
            e,
            "shmring_subscriber_missed",
            "Broadcast rings: values the subscriber missed (overwritten before it read them).",
            None,
            counters(per_subscriber(|s| s.missed)),
            Counter,
        )?;
        family(
            e,
            "shmring_subscriber_demotions",
            "Broadcast rings: times the producer made the lossless subscriber lossy.",
            None,
            counters(per_subscriber(|s| s.demotions)),
            Counter,
        )?;
        family(
            e,
            "shmring_capacity",
            "Capacity in bytes (typed rings: values times the element size).",
            Some(Unit::Bytes),
            gauges(per_ring(|r| r.capacity_bytes)),
            Gauge,
        )?;
        family(
            e,
            "shmring_fill",
            "Bytes written and not yet read.",
            Some(Unit::Bytes),
            gauges(per_ring(|r| r.fill_bytes)),
            Gauge,
        )?;
        family(
            e,
            "shmring_segment",
            "Size of the shared-memory segment.",
            Some(Unit::Bytes),
            gauges(per_ring(|r| r.segment_bytes)),
            Gauge,
        )?;
        let sleeping = rings.iter().flat_map(|r| {
            [
                (
                    side_labels(r, "producer"),
                    gauge(r.sleeping_producers.into()),
                ),
                (
                    side_labels(r, "consumer"),
                    gauge(r.sleeping_consumers.into()),
                ),
            ]
        });
        family(
            e,
            "shmring_sleeping",
            "Handles asleep on the futex now (one killed asleep stays counted).",
            None,
            sleeping,
            Gauge,
        )?;
        family(
            e,
            "shmring_attached_processes",
            "Live processes recorded as having the segment mapped.",
            None,
            gauges(per_ring(|r| {
                r.attached.iter().filter(|a| a.alive).count() as u64
            })),
            Gauge,
        )?;
        family(
            e,
            "shmring_stale",
            "1 if no process maps the segment or holds anything in it.",
            None,
            gauges(per_ring(|r| r.stale.into())),
            Gauge,
        )?;
        // The bridges (shmring-bridge), from their state files; only rings
        // that have one get a sample.
        let outs = |f: fn(&crate::view::BridgeOutView) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            rings
                .iter()
                .filter_map(|r| {
                    r.bridge_out
                        .as_ref()
                        .map(|b| (ring_labels(r), counter(f(b))))
                })
                .collect()
        };
        let ins = |f: fn(&crate::view::BridgeInView) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            rings
                .iter()
                .filter_map(|r| r.bridge_in.map(|b| (ring_labels(r), counter(f(&b)))))
                .collect()
        };
        family(
            e,
            "shmring_bridge_sent_messages",
            "Messages the outbound bridge handed to Zenoh (one sent again after a bridge restart counts twice).",
            None,
            outs(|b| b.sent_messages),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_sent",
            "Payload bytes the outbound bridge handed to Zenoh.",
            Some(Unit::Bytes),
            outs(|b| b.sent_bytes),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_delivered_messages",
            "Messages the inbound bridge wrote into the ring.",
            None,
            ins(|b| b.delivered),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_lost_messages",
            "Sequence numbers the inbound bridge never received (gaps, a lost tail, a restart's gap).",
            None,
            ins(|b| b.lost),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_duplicate_messages",
            "Messages the inbound bridge received again and did not deliver again.",
            None,
            ins(|b| b.duplicates),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_reordered_messages",
            "Messages the inbound bridge received after later ones (delivered).",
            None,
            ins(|b| b.reordered),
            Counter,
        )?;
        family(
            e,
            "shmring_bridge_dropped_full_messages",
            "Messages the inbound bridge dropped because the ring stayed full.",
            None,
            ins(|b| b.dropped_full),
            Counter,
        )?;
        // Request-reply services: the counters by lane (a lane's ring made
        // again counts from zero, which a sum over lanes would hide as a
        // counter going down), the gauges by service.
        let per_lane = |f: fn(&crate::view::LaneView) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            self.services
                .iter()
                .flat_map(|s| {
                    s.lanes.iter().map(move |l| {
                        let labels =
                            vec![("service", s.name.clone()), ("lane", l.lane.to_string())];
                        (labels, counter(f(l)))
                    })
                })
                .collect()
        };
        let per_service = |f: fn(&ServiceView) -> u64| -> Vec<(Labels, u64)> {
            self.services
                .iter()
                .map(|s| (vec![("service", s.name.clone())], f(s)))
                .collect()
        };
        family(
            e,
            "shmring_service_requests",
            "Request-reply services: requests the lane's servers received (each counting on from the last).",
            None,
            per_lane(|l| l.requests),
            Counter,
        )?;
        family(
            e,
            "shmring_service_replies",
            "Request-reply services: replies the lane's servers wrote.",
            None,
            per_lane(|l| l.replies),
            Counter,
        )?;
        family(
            e,
            "shmring_service_unanswered",
            "Request-reply services: requests a server let go without a last reply (answered NoReply).",
            None,
            per_lane(|l| l.unanswered),
            Counter,
        )?;
        let dropped = self.services.iter().flat_map(|s| {
            s.lanes.iter().flat_map(move |l| {
                [
                    ("dead_client", l.dropped_to_dead_clients),
                    ("ring_full", l.dropped_full),
                ]
                .map(|(reason, n)| {
                    let labels = vec![
                        ("service", s.name.clone()),
                        ("lane", l.lane.to_string()),
                        ("reason", reason.to_owned()),
                    ];
                    (labels, counter(n))
                })
            })
        });
        family(
            e,
            "shmring_service_dropped_replies",
            "Request-reply services: replies the lane's servers dropped, their client dead or its ring full.",
            None,
            dropped,
            Counter,
        )?;
        family(
            e,
            "shmring_service_outstanding",
            "Request-reply services: requests their live clients wait for.",
            None,
            gauges(per_service(|s| s.outstanding)),
            Gauge,
        )?;
        family(
            e,
            "shmring_service_servers",
            "Request-reply services: lanes whose server lives.",
            None,
            gauges(per_service(|s| s.servers as u64)),
            Gauge,
        )?;
        let clients = self.services.iter().flat_map(|s| {
            [
                ("alive", s.clients - s.dead_clients),
                ("dead", s.dead_clients),
            ]
            .map(|(state, n)| {
                let labels = vec![("service", s.name.clone()), ("state", state.to_owned())];
                (labels, gauge(n as u64))
            })
        });
        family(
            e,
            "shmring_service_clients",
            "Request-reply services: clients whose reply ring is there, by whether their process lives.",
            None,
            clients,
            Gauge,
        )?;
        family(
            e,
            "shmring_unreadable_segments",
            "Segments in /dev/shm that look like shmring's but cannot be read (another version, another user, corrupt).",
            None,
            [(Vec::new(), gauge(self.unreadable))],
            Gauge,
        )?;
        Ok(())
    }
}

/// The rings `names` (every ring when empty), in `format`.
pub fn render(names: &[String], format: Format) -> Res<String> {
    let mut rings = Vec::new();
    let mut unreadable = 0;
    if names.is_empty() {
        for listed in view::list()? {
            match listed {
                Listed::Ring(r) => rings.push(*r),
                Listed::Unreadable(_) => unreadable += 1,
            }
        }
    } else {
        for name in names {
            rings.push(RingView::from(&shmring::inspect(name)?));
        }
    }
    let services = if names.is_empty() {
        view::services(&rings)
    } else {
        rings
            .iter()
            .filter(|r| r.kind == "bytes")
            .filter_map(|r| view::service(&r.name))
            .collect()
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Rings {
        rings,
        services,
        unreadable,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(match format {
        Format::Openmetrics => out,
        Format::Prometheus => to_text_004(&out),
    })
}

/// An OpenMetrics exposition in the Prometheus text format 0.0.4: the
/// same samples; no `# UNIT` or `# EOF`; a counter's HELP and TYPE under
/// its sample's name. Label values and HELP texts escape alike in both
/// (ours hold no quote in a HELP text, the one place they differ).
fn to_text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match described {
            Some((p, rest)) => {
                let (family, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(family) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{p}{family}{total} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `shmring metrics`.
pub fn metrics(args: &MetricsArgs) -> Res<()> {
    print!("{}", render(&args.names, args.format)?);
    std::io::stdout().flush()?;
    Ok(())
}

/// `shmring serve-metrics`: answer `GET /metrics` until interrupted.
pub fn serve(args: &ServeArgs) -> Res<()> {
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the server has no IP address")?;
    println!("serving metrics on http://{addr}/metrics");
    std::io::stdout().flush()?;
    // Until SIGINT/SIGTERM, whose handler exits (see `signals.rs`).
    loop {
        let Some(request) = server.recv_timeout(Duration::from_millis(100))? else {
            continue;
        };
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let accept = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Accept"))
                    .map(|h| h.value.as_str());
                let format = Format::negotiate(accept);
                match render(&[], format) {
                    Ok(body) => tiny_http::Response::from_string(body)
                        .with_header(
                            tiny_http::Header::from_bytes("Content-Type", format.content_type())
                                .expect("a valid header"),
                        )
                        .with_status_code(200),
                    Err(e) => tiny_http::Response::from_string(format!("shmring: {e}\n"))
                        .with_status_code(500),
                }
            }
            (tiny_http::Method::Get, "/") => {
                tiny_http::Response::from_string("shmring metrics exporter: GET /metrics\n")
                    .with_status_code(200)
            }
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        // A client that hung up does not stop the exporter.
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::Format::{self, Openmetrics, Prometheus};

    #[test]
    fn accept_weights_choose_the_format() {
        for (accept, want) in [
            (None, Prometheus),
            (Some("*/*"), Prometheus),
            (Some("application/openmetrics-text"), Openmetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0"),
                Openmetrics,
            ),
            (Some("application/openmetrics-text;q=0"), Prometheus),
            (
                Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
                Prometheus,
            ),
            (
                Some("text/plain;version=0.0.4;q=0.5, application/openmetrics-text;q=0.9"),
                Openmetrics,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
