//! Twenty copies of one event arriving together: exactly one is accepted, the other nineteen are
//! duplicates carrying its id, and the sink receives it once. Run for a vendor deduped on its
//! event id and for one deduped on the body hash, a few rounds each.

use std::sync::Barrier;

use switchyard_e2e::*;

const WS: &str = "acme";
const COPIES: usize = 20;
const ROUNDS: usize = 3;

/// Sends `COPIES` copies of one delivery from as many threads, released together.
fn race(server: &Server, vendor: &VendorScheme, body: &str) -> Vec<Reply> {
    let key = secret(WS, vendor.name, 1);
    let barrier = Barrier::new(COPIES);
    std::thread::scope(|scope| {
        let senders: Vec<_> = (0..COPIES)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    server.deliver(WS, vendor, &key, body, &[])
                })
            })
            .collect();
        senders
            .into_iter()
            .map(|s| s.join().expect("a sender panicked"))
            .collect()
    })
}

fn one_accepted_the_rest_duplicates(vendor: VendorScheme, body_for: impl Fn(usize) -> String) {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let replies = race(&server, &vendor, &body_for(round));
        let accepted: Vec<String> = replies
            .iter()
            .filter(|r| r.status == 200 && r.json()["status"] == "accepted")
            .map(Reply::expect_accepted)
            .collect();
        assert_eq!(
            accepted.len(),
            1,
            "round {round}: expected exactly one accepted: {replies:#?}"
        );
        let id = &accepted[0];
        for reply in replies.iter().filter(|r| r.json()["status"] != "accepted") {
            assert_eq!(&reply.expect_ok("duplicate"), id, "round {round}");
        }
        winners.push(id.clone());
    }

    let later = server
        .deliver(
            WS,
            &WATSI,
            &secret(WS, "watsi", 1),
            r#"{"id":"evt_after_the_race","type":"message.status","data":{}}"#,
            &[],
        )
        .expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&later);
    for id in &winners {
        assert_eq!(count_id(&events, id), 1, "{id}: {events:#?}");
    }
    assert_eq!(events.len(), ROUNDS + 1, "{events:#?}");
}

#[test]
fn twenty_concurrent_copies_of_an_event_with_an_id_are_accepted_once() {
    one_accepted_the_rest_duplicates(WATSI, |round| {
        json!({"id": format!("evt_race_{round}"), "type": "message.received", "data": {"text": "race"}})
            .to_string()
    });
}

#[test]
fn twenty_concurrent_copies_of_an_event_without_an_id_are_accepted_once() {
    // WhatsAble events carry no id: the body hash decides.
    one_accepted_the_rest_duplicates(WHATSABLE, |round| {
        json!({"event": "message_status", "data": {"message_id": format!("wamid.race{round}"), "status": "read"}})
            .to_string()
    });
}
