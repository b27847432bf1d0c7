//! The command path (`decide_and_append`) on the in-memory event log: retries after a lost
//! race, `If-Match`, idempotent replays, and two processes writing one stream.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use domain::calendar::BusinessTimeZone;
use domain::customer::{Customer, CustomerCommand, CustomerEvent, CustomerState};
use domain::enums::{CustomerStatus, ReferralSource, Role};
use domain::ids::UserId;
use domain::values::{Address, AddressInput, Email, PersonName, Phone};
use events::{IdempotencyKey, MemoryEventLog};
use platform::auth::Caller;

use super::*;

/// One process of the command API: its own remembered states and stream turns over a log
/// that other processes may share.
struct Process {
    log: MemoryEventLog,
    codec: Codec,
    states: RecentStates,
    locks: StreamLocks,
}

impl Process {
    fn new(log: MemoryEventLog) -> Self {
        let zone = BusinessTimeZone::parse("America/Chicago").expect("a time zone");
        Process {
            log,
            codec: Codec::for_business(zone),
            states: RecentStates::new(1 << 20),
            locks: StreamLocks::default(),
        }
    }

    fn writer(&self) -> Writer<'_, MemoryEventLog> {
        Writer {
            log: &self.log,
            codec: &self.codec,
            states: &self.states,
            locks: &self.locks,
        }
    }

    /// Runs `command` on customer `id`; `deciding` sees every state it is decided on, between
    /// the load and the append.
    async fn run(
        &self,
        context: &CommandContext,
        id: Uuid,
        command: CustomerCommand,
        mut deciding: impl FnMut(&CustomerState),
    ) -> Result<Written<Customer>, Problem> {
        decide_and_append::<Customer, _, _>(&self.writer(), context, id, |state| {
            deciding(state);
            Ok(Decision::Run(command.clone()))
        })
        .await
    }

    async fn events(&self, id: Uuid) -> Vec<EventEnvelope> {
        let stream = stream_of::<Customer>(id);
        self.log.read_stream(&stream, 1).await.expect("read stream")
    }
}

/// The output of a future of the memory log, which never waits: it is polled once, so that
/// a synchronous decision can let a rival write.
fn at_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory log never waits"),
    }
}

/// Another process appends a status change to customer `id`: called while a command of this
/// process decides, it wins the race to the next version.
fn rival_appends(log: &MemoryEventLog, id: Uuid) {
    let stream = stream_of::<Customer>(id);
    let changed = CustomerEvent::CustomerStatusChanged {
        from: CustomerStatus::Lead,
        to: CustomerStatus::Active,
        changed_at: Utc::now(),
    };
    let head = at_once(log.head(&stream)).expect("head");
    let empty = CustomerState::default();
    let request = append_request::<Customer>(&stream, head, &[changed], &empty, &context());
    let rival = AppendRequest {
        snapshot: None,
        ..request
    };
    at_once(log.append(rival)).expect("the rival lands");
}

fn status(state: &CustomerState) -> Option<CustomerStatus> {
    state.customer.as_ref().map(|c| c.status)
}

fn context() -> CommandContext {
    CommandContext {
        caller: Caller {
            user_id: UserId::from_uuid(Uuid::from_u128(7)),
            name: "Dana".into(),
            role: Role::Admin,
        },
        correlation_id: "tested".into(),
        if_match: None,
        idempotency: None,
    }
}

fn keyed(key: &str, fingerprint: &str) -> CommandContext {
    CommandContext {
        idempotency: Some(IdempotencyKey {
            key: key.into(),
            fingerprint: fingerprint.into(),
        }),
        ..context()
    }
}

fn register(id: Uuid) -> CustomerCommand {
    let address = AddressInput {
        line1: "1 Main St".into(),
        city: "Springfield".into(),
        ..AddressInput::default()
    };
    CustomerCommand::Register {
        customer_id: id.into(),
        first_name: PersonName::parse("Ana").expect("a name"),
        last_name: PersonName::parse("Silva").expect("a name"),
        email: Email::parse("ana@example.com").expect("an email"),
        phone: Phone::parse("555-123-4567").expect("a phone"),
        referral_source: ReferralSource::Google,
        address: Address::parse(address).expect("an address"),
        registered_at: Utc::now(),
    }
}

/// A contact update that always changes something: phone number `n`.
fn new_phone(n: u32) -> CustomerCommand {
    CustomerCommand::UpdateContact {
        first_name: None,
        last_name: None,
        email: None,
        phone: Some(Phone::parse(&format!("555-200-{n:04}")).expect("a phone")),
        address: None,
        updated_at: Utc::now(),
    }
}

#[track_caller]
fn assert_problem(problem: &Problem, status: u16, code: &str, current_version: u64) {
    assert_eq!(problem.status.as_u16(), status, "{problem:?}");
    assert_eq!(
        problem.type_uri,
        format!("https://simplepro.dev/problems/{code}")
    );
    assert_eq!(problem.extra["current_version"], current_version);
}

/// A customer registered by `process`, who remembers the state it left.
async fn registered(process: &Process) -> Uuid {
    let id = Uuid::now_v7();
    let written = process.run(&context(), id, register(id), |_| {}).await;
    assert_eq!(written.expect("registered").accepted.version, 1);
    id
}

#[tokio::test]
async fn a_command_that_lost_the_race_is_decided_again_on_the_new_head_and_lands() {
    let process = Process::new(MemoryEventLog::new());
    let id = registered(&process).await;
    let mut seen = Vec::new();
    let written = process
        .run(&context(), id, new_phone(1), |state| {
            if seen.is_empty() {
                rival_appends(&process.log, id);
            }
            seen.push(status(state));
        })
        .await
        .expect("the retry lands");
    // First from the state this process remembered (stale once the rival wrote), then from
    // the head the rival left.
    let (lead, active) = (Some(CustomerStatus::Lead), Some(CustomerStatus::Active));
    assert_eq!(seen, vec![lead, active]);
    let accepted = written.accepted;
    assert_eq!((accepted.version, accepted.event_ids.len()), (3, 1));
    assert_eq!(
        accepted.position,
        Some(3),
        "the memory log gives positions at once"
    );
    let stored = process.events(id).await;
    let types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
    let expected = [
        "CustomerRegistered",
        "CustomerStatusChanged",
        "CustomerContactUpdated",
    ];
    assert_eq!(types, expected);
    assert_eq!(stored[2].event_id, accepted.event_ids[0]);

    let current = load_as::<Customer, _>(&process.writer(), id).await;
    let (state, head) = current.expect("load");
    assert_eq!(head.version(), 3);
    let customer = state.customer.expect("registered");
    assert_eq!(
        customer.status,
        CustomerStatus::Active,
        "the rival's change kept"
    );
    assert_eq!(customer.phone.as_str(), "555-200-0001");
}

#[tokio::test]
async fn a_command_whose_rivals_keep_winning_gives_up_naming_the_current_version() {
    let process = Process::new(MemoryEventLog::new());
    let id = registered(&process).await;
    let mut decisions = 0;
    let refused = process
        .run(&context(), id, new_phone(1), |_| {
            decisions += 1;
            rival_appends(&process.log, id);
        })
        .await;
    let Err(problem) = refused else {
        panic!("every append lost its race");
    };
    // The decision from the remembered state is not counted as an attempt.
    assert_eq!(decisions, 1 + ATTEMPTS);
    let current = 1 + decisions as u64;
    assert_problem(&problem, 409, "concurrent-update", current);
    let stored = process.events(id).await;
    assert_eq!(
        stored.len() as u64,
        current,
        "nothing of the command landed"
    );
    assert!(stored[1..]
        .iter()
        .all(|e| e.event_type == "CustomerStatusChanged"));
}

#[tokio::test]
async fn with_if_match_a_lost_race_is_a_precondition_failure_naming_the_current_version() {
    let process = Process::new(MemoryEventLog::new());
    let id = registered(&process).await;
    let if_match = CommandContext {
        if_match: Some(1),
        ..context()
    };
    let mut rivals = 1;
    let refused = process
        .run(&if_match, id, new_phone(1), |_| {
            if rivals > 0 {
                rivals -= 1;
                rival_appends(&process.log, id);
            }
        })
        .await;
    let Err(problem) = refused else {
        panic!("version 1 is no longer current");
    };
    assert_problem(&problem, 412, "stale-version", 2);
    assert_eq!(process.events(id).await.len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_appends_nothing() {
    let process = Process::new(MemoryEventLog::new());
    let id = registered(&process).await;
    let first = process
        .run(&keyed("u:k1", "a"), id, new_phone(1), |_| {})
        .await
        .expect("the first request");
    assert!(!first.accepted.replayed);
    process
        .run(&context(), id, new_phone(2), |_| {})
        .await
        .expect("a later command");

    let mut decisions = 0;
    let again = process
        .run(&keyed("u:k1", "a"), id, new_phone(3), |_| decisions += 1)
        .await
        .expect("the replay");
    assert_eq!(decisions, 0, "a replay decides nothing");
    let (first, again) = (first.accepted, again.accepted);
    assert!(again.replayed);
    assert_eq!(again.version, 2, "the version the first answer named");
    assert_eq!(again.event_ids, first.event_ids);
    assert_eq!(again.events, first.events);
    assert_eq!(again.position, first.position);
    assert_eq!(process.events(id).await.len(), 3, "nothing appended");

    let reused = process
        .run(&keyed("u:k1", "b"), id, new_phone(4), |_| {})
        .await;
    let Err(problem) = reused else {
        panic!("the key belongs to another request");
    };
    assert_eq!(problem.status.as_u16(), 422);
    assert!(problem.type_uri.ends_with("/idempotency-key-reused"));
    assert_eq!(process.events(id).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_two_processes_to_one_aggregate_land_once_each_or_are_refused() {
    let log = MemoryEventLog::new();
    let processes = [
        Arc::new(Process::new(log.clone())),
        Arc::new(Process::new(log.clone())),
    ];
    let id = registered(&processes[0]).await;
    let tasks: Vec<_> = (0..32u32)
        .map(|n| {
            let process = processes[n as usize % 2].clone();
            tokio::spawn(async move {
                let result = process.run(&context(), id, new_phone(n), |_| {}).await;
                result.map(|written| written.accepted)
            })
        })
        .collect();
    let mut landed = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for task in tasks {
        match task.await.expect("command task") {
            Ok(accepted) => {
                assert!(landed.insert(accepted.version), "one version twice");
                ids.extend(accepted.event_ids);
            }
            Err(problem) => {
                assert_eq!(problem.status.as_u16(), 409, "{problem:?}");
                assert!(problem.type_uri.ends_with("/concurrent-update"));
            }
        }
    }
    let stored = processes[1].events(id).await;
    let versions: Vec<u64> = stored.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=1 + landed.len() as u64).collect::<Vec<_>>());
    let stored_ids: BTreeSet<Uuid> = stored[1..].iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids, ids, "every accepted event stored, nothing else");
}

#[test]
fn a_snapshot_is_taken_by_the_append_that_reaches_a_multiple_of_the_interval() {
    assert!(!takes_snapshot(0, 1));
    assert!(!takes_snapshot(2, 1));
    assert!(takes_snapshot(3, 1), "version 4");
    assert!(!takes_snapshot(4, 3), "versions 5 to 7");
    assert!(takes_snapshot(6, 3), "versions 7 to 9 pass 8");
    assert!(takes_snapshot(0, 9), "one append past two multiples");
}

#[tokio::test]
async fn a_load_reads_the_latest_snapshot_and_the_commits_after_it() {
    let process = Process::new(MemoryEventLog::new());
    let id = registered(&process).await;
    for n in 1..=5 {
        let written = process.run(&context(), id, new_phone(n), |_| {}).await;
        written.expect("a new phone");
    }
    let stream = stream_of::<Customer>(id);
    let loaded = process.log.load(&stream).await.expect("load");
    let (version, schema, _) = loaded.snapshot.expect("a snapshot at version 4");
    assert_eq!((version, schema), (4, Customer::SNAPSHOT_VERSION));
    let after: Vec<u64> = loaded.events.iter().map(|e| e.version).collect();
    assert_eq!(after, vec![5, 6], "the commits after the snapshot");
    let (state, head) = load_as::<Customer, _>(&process.writer(), id)
        .await
        .expect("load");
    assert_eq!(head.version(), 6);
    let phone = state.customer.expect("registered").phone;
    assert_eq!(
        phone.as_str(),
        "555-200-0005",
        "the snapshot and the later events folded"
    );
}
