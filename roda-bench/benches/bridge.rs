//! The `bridge` workload (roda-bridge against bare async-nats on a local
//! `nats-server -js`): `cargo test --benches` runs it once at a tiny size, checking the
//! copies it makes and that its results can be read back by `report`; `cargo bench -p
//! roda-bench --bench bridge` runs it at the report's size. Without `nats-server` it
//! says why and passes (the report says the same in `docs/benchmarks.md`).

#[path = "../src/bridge.rs"]
#[allow(dead_code)]
mod bridge;

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let (records, runs) = if measure {
        (10_000_000, 3)
    } else {
        (20_000, 1)
    };
    let Some(result) = bridge::run(records, runs) else {
        // `run` printed the reason (SKIP bridge: ...).
        return;
    };
    for (what, value) in [
        ("export", result.export_per_s),
        ("bare publish", result.bare_publish_per_s),
        ("import", result.import_per_s),
        ("bare fetch", result.bare_fetch_per_s),
        ("end to end", result.e2e_per_s),
    ] {
        assert!(
            value.is_finite() && value > 0.0,
            "{what}: {value} records/s"
        );
    }
    // What `report` reads from a fresh process: the lines `run` printed.
    let parsed = bridge::parse_results(&bridge::result_lines(&result, runs))
        .expect("the RESULT lines parse");
    for (printed, measured) in [
        (parsed.export_per_s, result.export_per_s),
        (parsed.bare_fetch_per_s, result.bare_fetch_per_s),
        (parsed.lag_p99_us, result.lag_p99_us),
    ] {
        assert!((printed - measured).abs() <= 0.5, "{printed} vs {measured}");
    }
    println!("bridge bench: ok");
}
