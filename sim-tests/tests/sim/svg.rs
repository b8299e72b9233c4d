//! The picture of a run (`sim seed N --svg FILE`): well-formed, a lane per
//! host, a band per fault and adversary episode of the plan, and a marker
//! on the right lane for a violation.

use std::time::Duration;

use sim_tests::oracle::{self, Property, Violation};
use sim_tests::scenario::Scenario;
use sim_tests::{named, svg, world};

/// Checks that `text` is well-formed enough for any SVG viewer: one root,
/// every tag closed in order, quotes paired in every tag, `&` only in
/// entities. Returns how many elements there are.
fn check_well_formed(text: &str) -> Result<usize, String> {
    let mut open: Vec<&str> = Vec::new();
    let mut elements = 0;
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        check_entities(&rest[..start])?;
        let end = rest[start..]
            .find('>')
            .ok_or_else(|| format!("a tag never ends: {}", &rest[start..]))?
            + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unpaired quote in <{tag}>"));
        }
        check_entities(tag)?;
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(opened) if opened == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name = tag
            .split(|character: char| character.is_whitespace() || character == '/')
            .next()
            .unwrap_or("");
        if name.is_empty() {
            return Err(format!("a tag without a name: <{tag}>"));
        }
        if open.is_empty() && elements > 0 {
            return Err(format!("a second root: <{name}>"));
        }
        elements += 1;
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    check_entities(rest)?;
    match open.last() {
        None if elements > 0 => Ok(elements),
        None => Err("no element at all".to_owned()),
        Some(name) => Err(format!("<{name}> is never closed")),
    }
}

fn check_entities(text: &str) -> Result<(), String> {
    for (index, _) in text.match_indices('&') {
        let entity = &text[index..];
        let known = ["&amp;", "&lt;", "&gt;", "&quot;", "&#"];
        if !known.iter().any(|known| entity.starts_with(known)) {
            return Err(format!("a bare & in: {}", &text[..text.len().min(80)]));
        }
    }
    Ok(())
}

#[test]
fn the_checker_refuses_what_a_viewer_would() {
    assert_eq!(check_well_formed("<svg><g><rect/></g></svg>"), Ok(3));
    for broken in [
        "<svg><g></svg>",
        "<svg><rect></svg>",
        "<svg></svg><svg></svg>",
        "<svg><text>a & b</text></svg>",
        "<svg><rect x=\"1/></svg>",
        "<svg>",
        "",
    ] {
        assert!(check_well_formed(broken).is_err(), "accepted {broken:?}");
    }
}

/// How many bands the plan calls for, counted from the scenario itself.
fn planned_bands(scenario: &Scenario) -> usize {
    let freezes: usize = scenario
        .clients
        .iter()
        .map(|client| client.freezes.len())
        .sum();
    let episodes: usize = scenario
        .adversaries
        .iter()
        .map(|adversary| adversary.episodes.len())
        .sum();
    scenario.faults.len() + freezes + episodes
}

#[test]
fn a_named_run_draws_a_lane_per_host_and_a_band_per_fault() {
    for scenario in [
        named::server_restart(),
        named::slow_reader(),
        named::hostile_client(),
    ] {
        let observations = world::run(&scenario);
        let verdict = oracle::check(&observations);
        let picture = svg::picture(&observations, &verdict, None);
        let name = scenario.name.clone().unwrap_or_default();
        if let Err(problem) = check_well_formed(&picture) {
            panic!("{name}: the picture is not well-formed: {problem}");
        }
        let hosts = std::iter::once("server")
            .chain(scenario.clients.iter().map(|client| client.host.as_str()))
            .chain(
                scenario
                    .adversaries
                    .iter()
                    .map(|script| script.host.as_str()),
            );
        for host in hosts {
            let lane = format!("<g class=\"lane\" data-host=\"{host}\">");
            assert_eq!(picture.matches(&lane).count(), 1, "{name}: lane of {host}");
        }
        let bands = picture.matches("<rect class=\"band\"").count();
        assert!(planned_bands(&scenario) > 0, "{name} plans no fault");
        assert_eq!(bands, planned_bands(&scenario), "{name}: bands");
        assert!(!picture.contains("class=\"violation\""), "{name} passed");
    }
}

#[test]
fn a_violation_is_marked_with_its_property_on_its_lane() {
    let scenario = named::original_conversation();
    let observations = world::run(&scenario);
    let mut verdict = oracle::check(&observations);
    verdict.violations.push(Violation {
        property: Property::NoDuplicate,
        seed: scenario.seed,
        client: Some("john-pc (John)".to_owned()),
        seqs: vec![4],
        at: Some(Duration::from_secs(5)),
        detail: "shown twice <on purpose> & more".to_owned(),
    });
    let picture = svg::picture(&observations, &verdict, None);
    assert_eq!(check_well_formed(&picture).map(|_| ()), Ok(()));
    let marker = picture
        .split("<g class=\"violation\" data-property=\"no_duplicate\">")
        .nth(1)
        .expect("a marker for the violation");
    assert!(
        marker.contains("\u{2717} no_duplicate"),
        "its name is shown"
    );
    // John's lane is the third (server, joshua-pc, john-pc): its top is
    // below the first two lanes.
    let lane_top = |host: &str| -> f64 {
        let lane = picture
            .split(&format!("data-host=\"{host}\">"))
            .nth(1)
            .expect("the lane");
        let y = lane.split("y=\"").nth(1).expect("a y");
        y.split('"')
            .next()
            .expect("a number")
            .parse()
            .expect("a number")
    };
    let marker_top: f64 = marker
        .split("y1=\"")
        .nth(1)
        .and_then(|y| y.split('"').next())
        .and_then(|y| y.parse().ok())
        .expect("the marker's line");
    assert_eq!(marker_top, lane_top("john-pc"));
    assert_ne!(marker_top, lane_top("joshua-pc"));
    assert!(
        picture.contains("FAILED: no_duplicate"),
        "the title says so"
    );
}
