use serde_json::json;

use super::*;

fn filter(yaml: &str) -> Filter {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    compile(&value).unwrap_or_else(|p| panic!("{yaml}: {p:?}"))
}

fn problems(yaml: &str) -> Vec<(String, String)> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let problems = compile(&value).expect_err(yaml);
    problems
        .into_iter()
        .map(|p| {
            let at: Vec<String> = (p.at.iter())
                .map(|s| match s {
                    ProblemStep::Key(k) => k.clone(),
                    ProblemStep::Index(i) => format!("[{i}]"),
                })
                .collect();
            (at.join("/"), p.message)
        })
        .collect()
}

fn event() -> Value {
    json!({
        "id": "01J0000000000000000000000",
        "vendor": "watsi",
        "type": "message.status",
        "vendor_event_id": "evt_1",
        "occurred_at": "2024-05-01T10:30:00Z",
        "data": {"status": "failed", "from": "+5511999", "media": null, "price": 12.5,
                 "tags": ["vip", "br"]},
        "raw": {"entry": [{"id": "e-1", "count": 3}]}
    })
}

#[test]
fn a_scalar_equals() {
    let e = event();
    assert!(filter("{ data.status: failed }").matches(&e));
    assert!(!filter("{ data.status: delivered }").matches(&e));
    assert!(filter("{ data.price: 12.5 }").matches(&e));
    assert!(filter("{ type: message.status }").matches(&e));
    assert!(filter("{ data.media: null }").matches(&e));
    assert!(!filter("{ data.absent: null }").matches(&e));
    // A number never equals text, nor text a number.
    assert!(!filter("{ data.price: \"12.5\" }").matches(&e));
}

#[test]
fn in_and_not_in() {
    let e = event();
    assert!(filter("{ data.status: { in: [failed, undelivered] } }").matches(&e));
    assert!(!filter("{ data.status: { in: [sent, read] } }").matches(&e));
    assert!(filter("{ data.status: { not_in: [sent, read] } }").matches(&e));
    assert!(!filter("{ data.status: { not_in: [failed] } }").matches(&e));
    // Absent is not one of them.
    assert!(filter("{ data.nothing: { not_in: [failed] } }").matches(&e));
    assert!(!filter("{ data.nothing: { in: [failed] } }").matches(&e));
}

#[test]
fn exists_means_present_and_not_null() {
    let e = event();
    assert!(filter("{ data.status: { exists: true } }").matches(&e));
    assert!(!filter("{ data.media: { exists: true } }").matches(&e));
    assert!(filter("{ data.media: { exists: false } }").matches(&e));
    assert!(filter("{ data.nothing: { exists: false } }").matches(&e));
    assert!(!filter("{ vendor_event_id: { exists: false } }").matches(&e));
}

#[test]
fn text_operators() {
    let e = event();
    assert!(filter("{ data.from: { prefix: \"+55\" } }").matches(&e));
    assert!(!filter("{ data.from: { prefix: \"+44\" } }").matches(&e));
    assert!(filter("{ data.from: { suffix: \"999\" } }").matches(&e));
    assert!(!filter("{ data.from: { suffix: \"000\" } }").matches(&e));
    assert!(filter("{ data.from: { contains: \"511\" } }").matches(&e));
    assert!(!filter("{ data.from: { contains: \"777\" } }").matches(&e));
    // contains on a list: one of its items.
    assert!(filter("{ data.tags: { contains: vip } }").matches(&e));
    assert!(!filter("{ data.tags: { contains: gold } }").matches(&e));
    // Text operators never match a number.
    assert!(!filter("{ data.price: { prefix: \"12\" } }").matches(&e));
}

#[test]
fn comparisons_of_numbers_and_times() {
    let e = event();
    assert!(filter("{ data.price: { gt: 12 } }").matches(&e));
    assert!(!filter("{ data.price: { gt: 12.5 } }").matches(&e));
    assert!(filter("{ data.price: { gte: 12.5 } }").matches(&e));
    assert!(filter("{ data.price: { lt: 13 } }").matches(&e));
    assert!(!filter("{ data.price: { lt: 12.5 } }").matches(&e));
    assert!(filter("{ data.price: { lte: 12.5 } }").matches(&e));
    assert!(filter("{ data.price: { gte: 10, lt: 20 } }").matches(&e));
    assert!(!filter("{ data.price: { gte: 13, lt: 20 } }").matches(&e));
    assert!(filter("{ occurred_at: { gte: \"2024-05-01T10:00:00Z\" } }").matches(&e));
    // Offsets are compared as instants: 12:00+02:00 is 10:00Z.
    assert!(filter("{ occurred_at: { gt: \"2024-05-01T12:00:00+02:00\" } }").matches(&e));
    assert!(!filter("{ occurred_at: { lt: \"2024-05-01T10:30:00Z\" } }").matches(&e));
    // A number is never compared with a time, nor text with a number.
    assert!(!filter("{ data.status: { gt: 1 } }").matches(&e));
    assert!(!filter("{ data.price: { gt: \"2024-05-01T10:00:00Z\" } }").matches(&e));
}

#[test]
fn paths_reach_into_raw_and_index_lists() {
    let e = event();
    assert!(filter("{ raw.entry.0.id: e-1 }").matches(&e));
    assert!(filter("{ raw.entry.0.count: { gte: 3 } }").matches(&e));
    assert!(!filter("{ raw.entry.1.id: { exists: true } }").matches(&e));
}

#[test]
fn all_any_not_compose() {
    let e = event();
    let yaml = "{ any: [ { data.status: sent }, { data.from: { prefix: \"+55\" } } ] }";
    assert!(filter(yaml).matches(&e));
    let yaml = "{ any: [ { data.status: sent }, { data.status: read } ] }";
    assert!(!filter(yaml).matches(&e));
    assert!(filter("{ not: { data.status: sent } }").matches(&e));
    assert!(!filter("{ not: { data.status: failed } }").matches(&e));
    let yaml = "{ all: [ { type: message.status }, { not: { data.price: { gt: 100 } } } ] }";
    assert!(filter(yaml).matches(&e));
    // Every key of the mapping must hold.
    assert!(!filter("{ data.status: failed, vendor: whatsable }").matches(&e));
}

#[test]
fn explain_names_the_first_condition_that_fails() {
    let e = event();
    let f = filter("{ type: message.status, data.status: { in: [sent, read] } }");
    assert_eq!(
        f.explain(&e).unwrap(),
        "data.status is \"failed\", not one of [\"sent\", \"read\"]"
    );
    assert_eq!(
        filter("{ data.nothing: { prefix: a } }")
            .explain(&e)
            .unwrap(),
        "data.nothing absent, does not start with \"a\""
    );
    let any = filter("{ any: [ { data.status: sent }, { vendor: docssmith } ] }");
    let why = any.explain(&e).unwrap();
    assert!(
        why.starts_with("none of `any` holds: data.status is"),
        "{why}"
    );
    assert!(filter("{ data.status: failed }").explain(&e).is_none());
}

#[test]
fn every_problem_is_reported_at_its_key() {
    let found = problems(
        "{ data.status: { like: fail }, colour: red, data..x: 1, type.x: a, \
           data.from: { prefix: +55 }, occurred_at: { gt: yesterday }, data.tags: [a, b], \
           data.n: { in: [] }, any: [], not: 3 }",
    );
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "data.status/like",
            "colour",
            "data..x",
            "type.x",
            "data.from/prefix",
            "occurred_at/gt",
            "data.tags",
            "data.n/in",
            "any",
            "not",
        ],
        "{found:?}"
    );
    let message = |key: &str| &found.iter().find(|(k, _)| k == key).unwrap().1;
    assert!(message("data.status/like").starts_with("unknown operator `like`"));
    assert!(message("colour").starts_with("unknown field `colour`"));
    assert!(message("data.from/prefix").contains("is a number: quote it"));
    assert!(message("occurred_at/gt").contains("RFC 3339"));
    assert!(message("data.tags").contains("in: [...]"));
}

#[test]
fn a_where_must_be_a_non_empty_mapping() {
    assert_eq!(problems("{}").len(), 1);
    assert_eq!(problems("[a]").len(), 1);
    assert_eq!(problems("{ data.x: {} }")[0].0, "data.x");
    assert_eq!(problems("{ all: [ { x: 1 } ] }")[0].0, "all/[0]/x");
}
