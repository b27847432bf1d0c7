//! Folds generated commands into the baseline's current-state collections.

use std::collections::HashMap;

use anyhow::Context;
use bson::{doc, Bson, DateTime as BsonDateTime, Document};
use chrono::{DateTime, Utc};
use domain::crew_member::CrewMemberCommand;
use domain::customer::CustomerCommand;
use domain::job::JobCommand;
use domain::thread::{ThreadCommand, ThreadKind};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use crate::generator::{Command, Op};

fn date(time: DateTime<Utc>) -> Bson {
    Bson::DateTime(BsonDateTime::from_millis(time.timestamp_millis()))
}

/// The baseline's documents, in memory.
#[derive(Debug, Default)]
pub struct Collections {
    pub customers: Vec<Document>,
    pub jobs: Vec<Document>,
    pub threads: Vec<Document>,
    pub messages: Vec<Document>,
}

/// Builds the documents the old design would hold after `ops`.
pub fn fold(ops: &[Op], time_zone: &domain::calendar::BusinessTimeZone) -> Collections {
    let mut crew_names = HashMap::new();
    let mut customer_index = HashMap::new();
    let mut job_index = HashMap::new();
    let mut thread_index = HashMap::new();
    // Per thread: (message doc indices by seq - 1), and read markers per user.
    let mut thread_messages: HashMap<String, Vec<usize>> = HashMap::new();
    let mut markers: Vec<(String, String, u64)> = Vec::new();
    let mut out = Collections::default();
    for op in ops {
        match &op.command {
            Command::User(..) => {}
            Command::Crew(id, CrewMemberCommand::Register { name, .. }) => {
                crew_names.insert(id.to_string(), name.as_str().to_owned());
            }
            Command::Crew(..) => {}
            Command::Customer(id, command) => match command {
                CustomerCommand::Register {
                    first_name,
                    last_name,
                    email,
                    phone,
                    referral_source,
                    registered_at,
                    ..
                } => {
                    customer_index.insert(id.to_string(), out.customers.len());
                    out.customers.push(doc! {
                        "_id": id.to_string(),
                        "firstName": first_name.as_str(),
                        "lastName": last_name.as_str(),
                        "email": email.as_str(),
                        "phone": phone.as_str(),
                        "referralSource": referral_source.as_str(),
                        "status": "lead",
                        "createdAt": date(*registered_at),
                    });
                }
                CustomerCommand::ChangeStatus { status, .. } => {
                    if let Some(&i) = customer_index.get(&id.to_string()) {
                        out.customers[i].insert("status", status.as_str());
                    }
                }
                CustomerCommand::UpdateContact { .. } => {}
            },
            Command::Job(id, command) => {
                let key = id.to_string();
                if let JobCommand::Create {
                    customer_id,
                    service_type,
                    estimated_price,
                    created_at,
                    ..
                } = command
                {
                    let customer_name = customer_index
                        .get(&customer_id.to_string())
                        .map(|&i| {
                            let c: &Document = &out.customers[i];
                            format!(
                                "{} {}",
                                c.get_str("firstName").unwrap_or(""),
                                c.get_str("lastName").unwrap_or("")
                            )
                        })
                        .unwrap_or_default();
                    job_index.insert(key, out.jobs.len());
                    out.jobs.push(doc! {
                        "_id": id.to_string(),
                        "customerId": customer_id.to_string(),
                        "customerName": customer_name,
                        "serviceType": service_type.as_str(),
                        "status": "created",
                        "scheduledDate": Bson::Null,
                        "window": Bson::Null,
                        "assignedCrew": [],
                        "estimatedPrice": estimated_price.amount_minor(),
                        "actualRevenue": Bson::Null,
                        "createdAt": date(*created_at),
                        "completedAt": Bson::Null,
                        "completedMonth": Bson::Null,
                    });
                    continue;
                }
                let Some(&i) = job_index.get(&key) else {
                    continue;
                };
                let job = &mut out.jobs[i];
                match command {
                    JobCommand::Schedule {
                        date: day, window, ..
                    }
                    | JobCommand::Reschedule {
                        date: day, window, ..
                    } => {
                        job.insert("status", "scheduled");
                        job.insert("scheduledDate", day.to_string());
                        job.insert("window", doc! {"start": window.start().to_string(), "end": window.end().to_string()});
                    }
                    JobCommand::AssignCrew { crew_member_id, .. } => {
                        let name = crew_names
                            .get(&crew_member_id.to_string())
                            .cloned()
                            .unwrap_or_default();
                        if let Ok(crew) = job.get_array_mut("assignedCrew") {
                            crew.push(Bson::Document(
                                doc! {"crewMemberId": crew_member_id.to_string(), "name": name},
                            ));
                        }
                    }
                    JobCommand::UnassignCrew { crew_member_id, .. } => {
                        let gone = crew_member_id.to_string();
                        if let Ok(crew) = job.get_array_mut("assignedCrew") {
                            crew.retain(|c| {
                                c.as_document().and_then(|d| d.get_str("crewMemberId").ok())
                                    != Some(gone.as_str())
                            });
                        }
                    }
                    JobCommand::Start { .. } => {
                        job.insert("status", "in_progress");
                    }
                    JobCommand::Complete {
                        actual_revenue,
                        completed_at,
                    } => {
                        job.insert("status", "completed");
                        job.insert("actualRevenue", actual_revenue.amount_minor());
                        job.insert("completedAt", date(*completed_at));
                        let local = time_zone.local_date(*completed_at);
                        job.insert("completedMonth", local.format("%Y-%m").to_string());
                    }
                    JobCommand::Cancel { .. } => {
                        job.insert("status", "cancelled");
                    }
                    JobCommand::Create { .. } => {}
                }
            }
            Command::Thread(id, command) => {
                let key = id.to_string();
                match command {
                    ThreadCommand::Start {
                        kind,
                        participants,
                        title,
                        started_at,
                        ..
                    } => {
                        thread_index.insert(key, out.threads.len());
                        let kind = match kind {
                            ThreadKind::Direct => "direct",
                            ThreadKind::Group => "group",
                            ThreadKind::Job { .. } => "job",
                        };
                        let mut sorted: Vec<String> =
                            participants.iter().map(|p| p.to_string()).collect();
                        sorted.sort();
                        sorted.dedup();
                        out.threads.push(doc! {
                            "_id": id.to_string(),
                            "participants": sorted,
                            "threadType": kind,
                            "title": title.as_ref().map(|t| t.as_str().to_owned()),
                            "lastMessageAt": date(*started_at),
                        });
                    }
                    ThreadCommand::Post {
                        message_id,
                        author,
                        body,
                        posted_at,
                    } => {
                        if let Some(&i) = thread_index.get(&key) {
                            out.threads[i].insert("lastMessageAt", date(*posted_at));
                        }
                        thread_messages
                            .entry(key.clone())
                            .or_default()
                            .push(out.messages.len());
                        out.messages.push(doc! {
                            "_id": message_id.to_string(),
                            "threadId": key,
                            "senderId": author.to_string(),
                            "content": body.as_str(),
                            "createdAt": date(*posted_at),
                            "readBy": [author.to_string()],
                        });
                    }
                    ThreadCommand::MarkRead {
                        user, up_to_seq, ..
                    } => {
                        markers.push((key, user.to_string(), *up_to_seq));
                    }
                }
            }
        }
    }
    for (thread, user, up_to) in markers {
        for &m in thread_messages
            .get(&thread)
            .into_iter()
            .flatten()
            .take(up_to as usize)
        {
            if let Ok(read_by) = out.messages[m].get_array_mut("readBy") {
                let user = Bson::String(user.clone());
                if !read_by.contains(&user) {
                    read_by.push(user);
                }
            }
        }
    }
    out
}

/// Writes the folded collections into `database` with the indexes the old schemas declared
/// (MongoDB uses them; FerretDB accepts and ignores them for these queries).
pub async fn fill(database: &Database, collections: Collections) -> anyhow::Result<()> {
    let sets = [
        (
            "customers",
            collections.customers,
            vec![
                doc! {"createdAt": -1},
                doc! {"status": 1},
                doc! {"referralSource": 1},
            ],
        ),
        (
            "jobs",
            collections.jobs,
            vec![
                doc! {"scheduledDate": 1},
                doc! {"status": 1, "completedAt": -1},
                doc! {"createdAt": -1},
            ],
        ),
        (
            "message_threads",
            collections.threads,
            vec![doc! {"participants": 1, "lastMessageAt": -1}],
        ),
        (
            "messages",
            collections.messages,
            vec![doc! {"threadId": 1, "createdAt": -1}],
        ),
    ];
    for (name, docs, indexes) in sets {
        let collection = database.collection::<Document>(name);
        for keys in indexes {
            collection
                .create_index(
                    IndexModel::builder()
                        .keys(keys)
                        .options(IndexOptions::default())
                        .build(),
                )
                .await
                .with_context(|| format!("creating an index on {name}"))?;
        }
        for chunk in docs.chunks(2_000) {
            collection
                .insert_many(chunk.to_vec())
                .ordered(false)
                .await
                .with_context(|| format!("filling {name}"))?;
        }
    }
    Ok(())
}
