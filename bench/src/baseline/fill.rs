//! Folds generated commands into the baseline's current-state collections.

use std::collections::HashMap;

use anyhow::Context;
use bson::{doc, Bson, DateTime as BsonDateTime, Document};
use chrono::{DateTime, Utc};
use domain::calendar::BusinessTimeZone;
use domain::crew_member::CrewMemberCommand;
use domain::customer::CustomerCommand;
use domain::ids::{CustomerId, JobId, ThreadId};
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
pub fn fold(ops: &[Op], time_zone: &BusinessTimeZone) -> Collections {
    let mut folder = Folder {
        time_zone,
        crew_names: HashMap::new(),
        customer_index: HashMap::new(),
        job_index: HashMap::new(),
        thread_index: HashMap::new(),
        thread_messages: HashMap::new(),
        markers: Vec::new(),
        out: Collections::default(),
    };
    for op in ops {
        match &op.command {
            Command::User(..) => {}
            Command::Crew(id, CrewMemberCommand::Register { name, .. }) => {
                folder
                    .crew_names
                    .insert(id.to_string(), name.as_str().to_owned());
            }
            Command::Crew(..) => {}
            Command::Customer(id, command) => folder.customer(*id, command),
            Command::Job(id, command) => folder.job(*id, command),
            Command::Thread(id, command) => folder.thread(*id, command),
        }
    }
    folder.finish()
}

/// The documents folded so far and the lookups the next commands need.
struct Folder<'a> {
    time_zone: &'a BusinessTimeZone,
    crew_names: HashMap<String, String>,
    customer_index: HashMap<String, usize>,
    job_index: HashMap<String, usize>,
    thread_index: HashMap<String, usize>,
    /// Per thread: message doc indices by seq - 1.
    thread_messages: HashMap<String, Vec<usize>>,
    /// Read markers: (thread, user, up to seq).
    markers: Vec<(String, String, u64)>,
    out: Collections,
}

impl Folder<'_> {
    fn customer(&mut self, id: CustomerId, command: &CustomerCommand) {
        let out = &mut self.out;
        match command {
            CustomerCommand::Register {
                first_name,
                last_name,
                email,
                phone,
                referral_source,
                registered_at,
                ..
            } => {
                self.customer_index
                    .insert(id.to_string(), out.customers.len());
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
                if let Some(&i) = self.customer_index.get(&id.to_string()) {
                    out.customers[i].insert("status", status.as_str());
                }
            }
            CustomerCommand::UpdateContact { .. } => {}
        }
    }

    fn job(&mut self, id: JobId, command: &JobCommand) {
        let key = id.to_string();
        if let JobCommand::Create {
            customer_id,
            service_type,
            estimated_price,
            created_at,
            ..
        } = command
        {
            let customer_name = self.customer_name(*customer_id);
            self.job_index.insert(key, self.out.jobs.len());
            self.out.jobs.push(doc! {
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
            return;
        }
        if let Some(&i) = self.job_index.get(&key) {
            change_job(
                &mut self.out.jobs[i],
                command,
                &self.crew_names,
                self.time_zone,
            );
        }
    }

    /// `"First Last"` of a folded customer, empty when unknown.
    fn customer_name(&self, customer_id: CustomerId) -> String {
        self.customer_index
            .get(&customer_id.to_string())
            .map(|&i| {
                let c: &Document = &self.out.customers[i];
                format!(
                    "{} {}",
                    c.get_str("firstName").unwrap_or(""),
                    c.get_str("lastName").unwrap_or("")
                )
            })
            .unwrap_or_default()
    }

    fn thread(&mut self, id: ThreadId, command: &ThreadCommand) {
        let key = id.to_string();
        let out = &mut self.out;
        match command {
            ThreadCommand::Start {
                kind,
                participants,
                title,
                started_at,
                ..
            } => {
                self.thread_index.insert(key, out.threads.len());
                let kind = match kind {
                    ThreadKind::Direct => "direct",
                    ThreadKind::Group => "group",
                    ThreadKind::Job { .. } => "job",
                };
                let mut sorted: Vec<String> = participants.iter().map(|p| p.to_string()).collect();
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
                if let Some(&i) = self.thread_index.get(&key) {
                    out.threads[i].insert("lastMessageAt", date(*posted_at));
                }
                self.thread_messages
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
                self.markers.push((key, user.to_string(), *up_to_seq));
            }
        }
    }

    /// Adds each read marker's reader to the messages it covers.
    fn finish(mut self) -> Collections {
        for (thread, user, up_to) in self.markers {
            for &m in self
                .thread_messages
                .get(&thread)
                .into_iter()
                .flatten()
                .take(up_to as usize)
            {
                if let Ok(read_by) = self.out.messages[m].get_array_mut("readBy") {
                    let user = Bson::String(user.clone());
                    if !read_by.contains(&user) {
                        read_by.push(user);
                    }
                }
            }
        }
        self.out
    }
}

/// A later command to an existing job.
fn change_job(
    job: &mut Document,
    command: &JobCommand,
    crew_names: &HashMap<String, String>,
    time_zone: &BusinessTimeZone,
) {
    match command {
        JobCommand::Schedule {
            date: day, window, ..
        }
        | JobCommand::Reschedule {
            date: day, window, ..
        } => {
            job.insert("status", "scheduled");
            job.insert("scheduledDate", day.to_string());
            job.insert(
                "window",
                doc! {"start": window.start().to_string(), "end": window.end().to_string()},
            );
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
