use super::*;
use crate::job::JobEvent;
use serde_json::json;

fn codec() -> Codec {
    Codec::for_business(BusinessTimeZone::parse("America/Chicago").unwrap())
}

fn scheduled_v1() -> Value {
    json!({
        "date": "2026-03-02",
        "window": {"start": "08:00:00", "end": "12:00:00"},
        "scheduled_at": "2026-02-20T10:00:00Z",
    })
}

#[test]
fn every_type_counts_its_steps_from_one_without_gaps() {
    for upcaster in UPCASTERS {
        let earlier = UPCASTERS
            .iter()
            .filter(|u| u.event_type == upcaster.event_type && u.from < upcaster.from)
            .count() as u32;
        assert_eq!(
            upcaster.from,
            earlier + 1,
            "{} has a gap or a repeated step before v{}",
            upcaster.event_type,
            upcaster.from
        );
    }
    assert_eq!(current_version("JobScheduled"), 2);
    assert_eq!(current_version("CustomerRegistered"), 1);
}

#[test]
fn a_version_one_window_is_read_in_the_business_time_zone() {
    let event: JobEvent = codec().decode("JobScheduled", 1, scheduled_v1()).unwrap();
    let JobEvent::JobScheduled { window, .. } = event else {
        panic!("decoded {event:?}");
    };
    assert_eq!(window.time_zone().name(), "America/Chicago");
}

#[test]
fn a_current_event_decodes_to_what_was_encoded() {
    let event: JobEvent = codec().decode("JobScheduled", 1, scheduled_v1()).unwrap();
    let stored = encode(&event);
    assert_eq!(stored.schema_version, 2);
    let again: JobEvent = codec()
        .decode(stored.event_type, stored.schema_version, stored.payload)
        .unwrap();
    assert_eq!(again, event);
}

#[test]
fn a_version_two_payload_without_its_zone_is_refused() {
    let error = codec()
        .decode::<JobEvent>("JobScheduled", 2, scheduled_v1())
        .unwrap_err();
    assert!(matches!(error, DecodeError::Payload(_)), "{error}");
}

#[test]
fn events_from_a_newer_build_are_refused() {
    let error = codec()
        .decode::<JobEvent>("JobCreated", 3, json!({}))
        .unwrap_err();
    assert_eq!(
        error,
        DecodeError::FromTheFuture {
            event_type: "JobCreated".into(),
            found: 3,
            current: 1
        }
    );
}

#[test]
fn a_failing_step_names_the_event_and_version() {
    let error = codec()
        .decode::<JobEvent>("JobScheduled", 1, json!({"window": 7}))
        .unwrap_err();
    assert!(
        matches!(&error, DecodeError::Upcast { event_type, from: 1, .. } if event_type == "JobScheduled"),
        "{error}"
    );
}

mod properties {
    use super::*;
    use crate::customer::CustomerEvent;
    use crate::thread::ThreadEvent;
    use chrono::NaiveTime;
    use proptest::prelude::*;

    /// JSON of any shape, a few levels deep, with keys that sometimes are real field names.
    fn any_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("window".to_owned()),
            Just("from_window".to_owned()),
            Just("time_zone".to_owned()),
            Just("start".to_owned()),
            Just("date".to_owned()),
            "[a-z_]{0,10}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,24}".prop_map(Value::from),
            Just(json!("08:00:00")),
            Just(json!("America/Chicago")),
        ];
        leaf.prop_recursive(3, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_event_type() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(JobEvent::EVENT_TYPES.to_vec()).prop_map(str::to_owned),
            proptest::sample::select(CustomerEvent::EVENT_TYPES.to_vec()).prop_map(str::to_owned),
            "[A-Za-z]{0,16}",
        ]
    }

    proptest! {
        /// Whatever is stored, reading it answers: an event that reads back the same after
        /// being written again, or an error that names the event type.
        #[test]
        fn any_stored_event_decodes_or_names_its_type(
            event_type in any_event_type(),
            schema_version in 0u32..5,
            payload in any_json(),
        ) {
            let codec = codec();
            match codec.decode::<JobEvent>(&event_type, schema_version, payload) {
                Ok(event) => {
                    let stored = encode(&event);
                    prop_assert_eq!(stored.schema_version, current_version(&event_type));
                    let again: JobEvent = codec
                        .decode(stored.event_type, stored.schema_version, stored.payload)
                        .expect("an encoded event decodes");
                    prop_assert_eq!(again, event);
                }
                Err(error) => prop_assert!(error.to_string().contains(&event_type) || event_type.is_empty()),
            }
            // Other enums refuse job events by name instead of misreading them.
            if JobEvent::EVENT_TYPES.contains(&event_type.as_str()) {
                let other = codec.decode::<ThreadEvent>(&event_type, 1, json!({}));
                prop_assert!(other.is_err());
            }
        }

        /// Every valid version 1 window becomes the same window in the business's zone.
        #[test]
        fn every_version_one_window_keeps_its_times(start in 0u32..1439, length in 1u32..600) {
            let end = (start + length).min(1439);
            prop_assume!(end > start);
            let time = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap();
            let payload = json!({
                "date": "2026-03-02",
                "window": {"start": time(start), "end": time(end)},
                "scheduled_at": "2026-02-20T10:00:00Z",
            });
            let event: JobEvent = codec().decode("JobScheduled", 1, payload).unwrap();
            let JobEvent::JobScheduled { window, .. } = event else {
                panic!("decoded {event:?}");
            };
            prop_assert_eq!((window.start(), window.end()), (time(start), time(end)));
            prop_assert_eq!(window.time_zone().name(), "America/Chicago");
        }
    }
}
