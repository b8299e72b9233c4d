//! What a benchmark run prints and writes: the table of figures, the ratios
//! that the project's targets are stated in (ours against the best peer, our
//! durable server against itself in memory and over TLS), and the JSON.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::load::Figures;

/// The name our durable server (the default) runs under: every ratio
/// against the peers, and every fraction, is of this one.
pub const OURS: &str = "chat (ours)";

/// Ours keeping nothing on disk (`--in-memory`).
pub const OURS_IN_MEMORY: &str = "chat (ours, in memory)";

/// Ours, durable, over TLS.
pub const OURS_TLS: &str = "chat (ours, TLS)";

/// For each scenario, each server's median figures, in the order they ran.
#[derive(Default)]
pub struct Results(pub BTreeMap<u8, Vec<(String, Figures)>>);

impl Results {
    fn of(&self, number: u8, name: &str) -> Option<&Figures> {
        self.0
            .get(&number)?
            .iter()
            .find(|(server, _)| server == name)
            .map(|(_, figures)| figures)
    }

    /// Every peer's figures for scenario `number` (servers not ours).
    fn peers(&self, number: u8) -> Vec<&Figures> {
        self.0
            .get(&number)
            .map(|rows| {
                rows.iter()
                    .filter(|(name, _)| !name.starts_with("chat (ours"))
                    .map(|(_, figures)| figures)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ours (durable) divided by the best peer, where higher is better.
    fn against_best_higher(&self, number: u8, get: fn(&Figures) -> f64) -> Option<f64> {
        let best = self
            .peers(number)
            .into_iter()
            .map(get)
            .fold(f64::NAN, f64::max);
        finite(get(self.of(number, OURS)?) / best)
    }

    /// Ours (durable) divided by the best peer, where lower is better.
    fn against_best_lower(&self, number: u8, get: fn(&Figures) -> f64) -> Option<f64> {
        let best = self
            .peers(number)
            .into_iter()
            .map(get)
            .fold(f64::NAN, f64::min);
        finite(get(self.of(number, OURS)?) / best)
    }

    /// Deliveries per second of `name` as a fraction of `base`'s, both in
    /// scenario `number`.
    fn throughput_fraction(&self, number: u8, name: &str, base: &str) -> Option<f64> {
        let figures = self.of(number, name)?;
        finite(figures.deliveries_per_second / self.of(number, base)?.deliveries_per_second)
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Prints one line per scenario and server.
pub fn print_table(results: &Results) {
    println!(
        "{:<3} {:<24} {:>12} {:>9} {:>9} {:>9} {:>6} {:>5} {:>5} {:>9} {:>8} {:>10}",
        "#",
        "server",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "dup",
        "ooo",
        "cpu µs/d",
        "rss MiB",
        "idle B/conn"
    );
    for (number, rows) in &results.0 {
        for (name, figures) in rows {
            println!(
                "{:<3} {:<24} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>5} {:>5} {:>9.3} {:>8.1} {:>10}",
                number,
                name,
                figures.deliveries_per_second,
                figures.latency_p50_us as f64 / 1000.0,
                figures.latency_p99_us as f64 / 1000.0,
                figures.latency_max_us as f64 / 1000.0,
                figures.lost,
                figures.duplicated,
                figures.out_of_order,
                figures.server_cpu_us_per_delivery,
                figures.server_rss_mib,
                figures
                    .idle_bytes_per_connection
                    .map_or("-".to_owned(), |bytes| format!("{bytes:.0}")),
            );
        }
    }
}

/// The ratios and fractions the targets are stated in (`None`, as JSON
/// `null`, where a scenario or a server did not run).
pub fn ratios(results: &Results) -> BTreeMap<&'static str, Value> {
    let mut ratios = BTreeMap::new();
    let deliveries = |figures: &Figures| figures.deliveries_per_second;
    ratios.insert(
        "ratio_deliveries_scenario1",
        json!(results.against_best_higher(1, deliveries)),
    );
    ratios.insert(
        "ratio_deliveries_scenario2",
        json!(results.against_best_higher(2, deliveries)),
    );
    ratios.insert(
        "ratio_p99_scenario3",
        json!(results.against_best_lower(3, |figures| figures.latency_p99_us as f64)),
    );
    ratios.insert(
        "ratio_idle_memory",
        json!(results.against_best_lower(4, |figures| {
            figures.idle_bytes_per_connection.unwrap_or(f64::NAN)
        })),
    );
    ratios.insert(
        "overload_rss_mib",
        json!(results.of(5, OURS).map(|figures| figures.server_rss_mib)),
    );
    let fraction = |number: u8, name: &str| match (results.of(number, name), results.of(1, OURS)) {
        (Some(figures), Some(alone)) => {
            finite(figures.deliveries_per_second / alone.deliveries_per_second)
        }
        _ => None,
    };
    ratios.insert("scenario5_throughput_fraction", json!(fraction(5, OURS)));
    for (key, number) in [
        ("durable_fraction_scenario1", 1),
        ("durable_fraction_scenario2", 2),
    ] {
        let value = results.throughput_fraction(number, OURS, OURS_IN_MEMORY);
        ratios.insert(key, json!(value));
    }
    ratios.insert(
        "tls_fraction_scenario1",
        json!(results.throughput_fraction(1, OURS_TLS, OURS)),
    );
    ratios
}

/// Prints the ratios, one a line.
pub fn print_ratios(ratios: &BTreeMap<&'static str, Value>) {
    for (key, value) in ratios {
        let shown = match value {
            Value::Null => "-".to_owned(),
            Value::Number(number) if number.is_f64() => number
                .as_f64()
                .map_or_else(|| number.to_string(), |value| format!("{value:.2}")),
            Value::Number(number) => number.to_string(),
            other => other.to_string(),
        };
        println!("{key:32} {shown}");
    }
}

/// Writes every server's figures and `ratios` (with anything else measured)
/// as one JSON document.
pub fn write_json(
    path: &Path,
    results: &Results,
    ratios: BTreeMap<&'static str, Value>,
) -> Result<()> {
    let mut servers: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (number, rows) in &results.0 {
        for (name, figures) in rows {
            servers
                .entry(name.clone())
                .or_default()
                .insert(format!("scenario{number}"), figures_json(figures));
        }
    }
    let mut document: serde_json::Map<String, Value> = ratios
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    document.insert("servers".to_owned(), json!(servers));
    write_document(path, &Value::Object(document))
}

/// Writes `document` as pretty JSON to `path`, making its folder.
pub fn write_document(path: &Path, document: &Value) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(document)?)?;
    Ok(())
}

fn figures_json(figures: &Figures) -> Value {
    json!({
        "deliveries": figures.deliveries,
        "expected": figures.expected,
        "deliveries_per_second": figures.deliveries_per_second,
        "latency_p50_us": figures.latency_p50_us,
        "latency_p99_us": figures.latency_p99_us,
        "latency_max_us": figures.latency_max_us,
        "lost": figures.lost,
        "duplicated": figures.duplicated,
        "out_of_order": figures.out_of_order,
        "server_cpu_us_per_delivery": figures.server_cpu_us_per_delivery,
        "server_rss_mib": figures.server_rss_mib,
        "idle_bytes_per_connection": figures.idle_bytes_per_connection,
    })
}
