//! A plain in-memory fold computing the same views as the query functions: whole
//! collections of customers, jobs, threads and names, no documents, no buckets, no paging.
//! Views are computed from the current state when asked for.
//!
//! It is the oracle the tests compare the document pipeline with: paging through a query
//! function must yield exactly the corresponding full list here. Only the search scoring
//! rules (`models::search::customer_score`) are shared, being the definition of a match.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::enums::{CustomerStatus, JobStatus, ReferralSource, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId, MessageId, ThreadId, UserId};
use domain::job::JobEvent;
use domain::thread::{ThreadEvent, ThreadKind};
use domain::user::UserEvent;
use events::EventEnvelope;

use crate::apply::{decode, Decoded};
use crate::models::search::{customer_score, customer_tokens, query_tokens, rank_name};
use crate::query::{
    CrewRef, CustomerFilter, CustomerSummary, JobFilter, JobSummary, MessageItem, Participant,
    ThreadKindView, ThreadListItem, ThreadMeta, UnreadCountView, WindowView,
};
use crate::ApplyError;

mod schedule;

#[derive(Debug, Clone)]
struct Customer {
    first: String,
    last: String,
    email: String,
    phone: String,
    source: ReferralSource,
    status: CustomerStatus,
    registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Job {
    customer: CustomerId,
    service_type: ServiceType,
    status: JobStatus,
    date: Option<NaiveDate>,
    window: Option<WindowView>,
    crew: BTreeSet<CrewMemberId>,
    estimated: i64,
    revenue: Option<i64>,
    created_at: DateTime<Utc>,
    scheduled_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A later event of an existing job.
    fn apply(&mut self, event: JobEvent) {
        match event {
            JobEvent::JobCreated { .. } => {}
            JobEvent::JobScheduled {
                date,
                window,
                scheduled_at,
            } => {
                self.status = JobStatus::Scheduled;
                self.date = Some(date);
                self.window = Some(WindowView::from(&window));
                self.scheduled_at = Some(scheduled_at);
            }
            JobEvent::JobRescheduled { date, window, .. } => {
                self.date = Some(date);
                self.window = Some(WindowView::from(&window));
            }
            JobEvent::CrewAssigned { crew_member_id, .. } => {
                self.crew.insert(crew_member_id);
            }
            JobEvent::CrewUnassigned { crew_member_id, .. } => {
                self.crew.remove(&crew_member_id);
            }
            JobEvent::JobStarted { .. } => self.status = JobStatus::InProgress,
            JobEvent::JobCompleted {
                actual_revenue,
                completed_at,
            } => {
                self.status = JobStatus::Completed;
                self.revenue = Some(actual_revenue.amount_minor());
                self.completed_at = Some(completed_at);
            }
            JobEvent::JobCancelled { cancelled_at, .. } => {
                self.status = JobStatus::Cancelled;
                self.cancelled_at = Some(cancelled_at);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Message {
    seq: u64,
    id: MessageId,
    author: UserId,
    body: String,
    posted_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Thread {
    kind: ThreadKind,
    title: Option<String>,
    participants: BTreeSet<UserId>,
    started_by: UserId,
    started_at: DateTime<Utc>,
    messages: Vec<Message>,
    read_up_to: BTreeMap<UserId, u64>,
}

/// Everything the views need, as plain collections.
#[derive(Debug, Clone)]
pub struct ReferenceModel {
    time_zone: BusinessTimeZone,
    customers: BTreeMap<CustomerId, Customer>,
    jobs: BTreeMap<JobId, Job>,
    threads: BTreeMap<ThreadId, Thread>,
    users: BTreeMap<UserId, String>,
    crew: BTreeMap<CrewMemberId, String>,
}

impl ReferenceModel {
    pub fn new(time_zone: BusinessTimeZone) -> Self {
        ReferenceModel {
            time_zone,
            customers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            threads: BTreeMap::new(),
            users: BTreeMap::new(),
            crew: BTreeMap::new(),
        }
    }

    /// Folds one event in; unknown types are ignored, undecodable payloads refused.
    pub fn apply(&mut self, event: &EventEnvelope) -> Result<(), ApplyError> {
        match decode(&Codec::for_business(self.time_zone), event)? {
            Some(Decoded::Customer(id, e)) => self.customer_event(id, e),
            Some(Decoded::Job(id, e)) => self.job_event(id, e),
            Some(Decoded::Thread(id, e)) => self.thread_event(id, e),
            Some(Decoded::User(id, UserEvent::UserRegistered { display_name, .. })) => {
                self.users.insert(id, display_name.as_str().to_owned());
            }
            Some(Decoded::Crew(id, CrewMemberEvent::CrewMemberRegistered { name, .. })) => {
                self.crew.insert(id, name.as_str().to_owned());
            }
            Some(Decoded::User(..) | Decoded::Crew(..)) | None => {}
        }
        Ok(())
    }

    fn customer_event(&mut self, id: CustomerId, event: CustomerEvent) {
        match event {
            CustomerEvent::CustomerRegistered {
                first_name,
                last_name,
                email,
                phone,
                referral_source,
                status,
                registered_at,
                ..
            } => {
                let customer = Customer {
                    first: first_name.into(),
                    last: last_name.into(),
                    email: email.into(),
                    phone: phone.into(),
                    source: referral_source,
                    status,
                    registered_at,
                };
                self.customers.insert(id, customer);
            }
            CustomerEvent::CustomerContactUpdated {
                current_first_name,
                current_last_name,
                current_email,
                current_phone,
                ..
            } => {
                if let Some(c) = self.customers.get_mut(&id) {
                    c.first = current_first_name.into();
                    c.last = current_last_name.into();
                    c.email = current_email.into();
                    c.phone = current_phone.into();
                }
            }
            CustomerEvent::CustomerStatusChanged { to, .. } => {
                if let Some(c) = self.customers.get_mut(&id) {
                    c.status = to;
                }
            }
        }
    }

    fn job_event(&mut self, id: JobId, event: JobEvent) {
        if let JobEvent::JobCreated {
            customer_id,
            service_type,
            estimated_price,
            created_at,
            ..
        } = event
        {
            let job = Job {
                customer: customer_id,
                service_type,
                status: JobStatus::Created,
                date: None,
                window: None,
                crew: BTreeSet::new(),
                estimated: estimated_price.amount_minor(),
                revenue: None,
                created_at,
                scheduled_at: None,
                completed_at: None,
                cancelled_at: None,
            };
            self.jobs.insert(id, job);
            return;
        }
        if let Some(job) = self.jobs.get_mut(&id) {
            job.apply(event);
        }
    }

    fn thread_event(&mut self, id: ThreadId, event: ThreadEvent) {
        match event {
            ThreadEvent::ThreadStarted {
                kind,
                participants,
                title,
                started_by,
                started_at,
                ..
            } => {
                let thread = Thread {
                    kind,
                    title: title.map(String::from),
                    participants: participants.into_iter().collect(),
                    started_by,
                    started_at,
                    messages: Vec::new(),
                    read_up_to: BTreeMap::new(),
                };
                self.threads.insert(id, thread);
            }
            ThreadEvent::MessagePosted {
                message_id,
                seq,
                author,
                body,
                posted_at,
            } => {
                if let Some(t) = self.threads.get_mut(&id) {
                    t.messages.push(Message {
                        seq,
                        id: message_id,
                        author,
                        body: body.into(),
                        posted_at,
                    });
                }
            }
            ThreadEvent::ThreadRead {
                user, up_to_seq, ..
            } => {
                if let Some(t) = self.threads.get_mut(&id) {
                    let marker = t.read_up_to.entry(user).or_insert(0);
                    *marker = (*marker).max(up_to_seq);
                }
            }
        }
    }

    fn local(&self, instant: DateTime<Utc>) -> NaiveDate {
        self.time_zone.local_date(instant)
    }

    fn customer_name(&self, id: CustomerId) -> String {
        self.customers
            .get(&id)
            .map(|c| format!("{} {}", c.first, c.last))
            .unwrap_or_default()
    }

    fn crew_refs(&self, crew: &BTreeSet<CrewMemberId>) -> Vec<CrewRef> {
        crew.iter()
            .map(|id| CrewRef {
                crew_member_id: *id,
                name: self.crew.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn unread(&self, thread: &Thread, user: UserId) -> u64 {
        let read = thread.read_up_to.get(&user).copied().unwrap_or(0);
        thread
            .messages
            .iter()
            .filter(|m| m.seq > read && m.author != user)
            .count() as u64
    }

    pub fn unread_count(&self, user: UserId) -> UnreadCountView {
        let mine: Vec<u64> = self
            .threads
            .values()
            .filter(|t| t.participants.contains(&user))
            .map(|t| self.unread(t, user))
            .collect();
        UnreadCountView {
            user_id: user,
            unread: mine.iter().sum(),
            unread_threads: mine.iter().filter(|n| **n > 0).count() as u64,
            threads: mine.len() as u64,
        }
    }

    fn kind(kind: &ThreadKind) -> (ThreadKindView, Option<JobId>) {
        match kind {
            ThreadKind::Direct => (ThreadKindView::Direct, None),
            ThreadKind::Group => (ThreadKindView::Group, None),
            ThreadKind::Job { job_id } => (ThreadKindView::Job, Some(*job_id)),
        }
    }

    fn participant(&self, user: UserId) -> Participant {
        Participant {
            user_id: user,
            name: self.users.get(&user).cloned().unwrap_or_default(),
        }
    }

    /// The user's threads, latest activity first (`unread_only`: with unread messages).
    pub fn user_threads(&self, user: UserId, unread_only: bool) -> Vec<ThreadListItem> {
        let mut items: Vec<ThreadListItem> = self
            .threads
            .iter()
            .filter(|(_, t)| t.participants.contains(&user))
            .map(|(id, t)| {
                let (kind, job_id) = Self::kind(&t.kind);
                let last = t.messages.iter().max_by_key(|m| m.seq);
                let participants = match kind {
                    ThreadKindView::Direct => t
                        .participants
                        .iter()
                        .filter(|p| **p != user)
                        .map(|p| self.participant(*p))
                        .collect(),
                    _ => Vec::new(),
                };
                ThreadListItem {
                    thread_id: *id,
                    kind,
                    job_id,
                    title: t.title.clone(),
                    participants,
                    unread: self.unread(t, user),
                    last_seq: last.map_or(0, |m| m.seq),
                    last_message_at: last.map(|m| m.posted_at),
                    preview: last.map(|m| m.body.chars().take(100).collect()),
                    last_author_id: last.map(|m| m.author),
                    activity_at: last.map_or(t.started_at, |m| m.posted_at),
                }
            })
            .filter(|item| !unread_only || item.unread > 0)
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse((item.activity_at, item.thread_id)));
        items
    }

    pub fn thread_meta(&self, thread: ThreadId) -> Option<ThreadMeta> {
        let t = self.threads.get(&thread)?;
        let (kind, job_id) = Self::kind(&t.kind);
        Some(ThreadMeta {
            thread_id: thread,
            kind,
            job_id,
            title: t.title.clone(),
            participants: t
                .participants
                .iter()
                .map(|p| self.participant(*p))
                .collect(),
            last_seq: t.messages.iter().map(|m| m.seq).max().unwrap_or(0),
            started_by: t.started_by,
            started_at: t.started_at,
        })
    }

    /// Newest first.
    pub fn thread_messages(&self, thread: ThreadId) -> Vec<MessageItem> {
        let Some(t) = self.threads.get(&thread) else {
            return Vec::new();
        };
        let mut items: Vec<MessageItem> = t
            .messages
            .iter()
            .map(|m| MessageItem {
                seq: m.seq,
                message_id: m.id,
                author_id: m.author,
                author_name: self.participant(m.author).name,
                body: m.body.clone(),
                posted_at: m.posted_at,
            })
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.seq));
        items
    }

    /// Newest first, or by search relevance when `filter.search` is set.
    pub fn customers(&self, filter: &CustomerFilter) -> Vec<CustomerSummary> {
        let matching = self.customers.iter().filter(|(_, c)| {
            filter.status.is_none_or(|s| s == c.status)
                && filter.source.is_none_or(|s| s == c.source)
        });
        match filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(search) => {
                let query = query_tokens(search);
                let mut hits: Vec<(u32, String, CustomerId)> = matching
                    .filter_map(|(id, c)| {
                        let digits: String = c.phone.chars().filter(char::is_ascii_digit).collect();
                        let tokens = customer_tokens(&c.first, &c.last, &c.email, &digits);
                        let score = customer_score(&query, &tokens)?;
                        Some((score, rank_name(&c.first, &c.last), *id))
                    })
                    .collect();
                hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (&a.1, a.2).cmp(&(&b.1, b.2))));
                hits.into_iter()
                    .filter_map(|(_, _, id)| self.customer(id))
                    .collect()
            }
            None => {
                let mut all: Vec<CustomerSummary> =
                    matching.filter_map(|(id, _)| self.customer(*id)).collect();
                all.sort_by(|a, b| {
                    (b.created_at, b.customer_id).cmp(&(a.created_at, a.customer_id))
                });
                all
            }
        }
    }

    pub fn customer(&self, id: CustomerId) -> Option<CustomerSummary> {
        let c = self.customers.get(&id)?;
        let jobs: Vec<&Job> = self.jobs.values().filter(|j| j.customer == id).collect();
        Some(CustomerSummary {
            customer_id: id,
            first_name: c.first.clone(),
            last_name: c.last.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            referral_source: c.source,
            status: c.status,
            created_at: c.registered_at,
            job_count: jobs.len() as u64,
            lifetime_revenue_minor: jobs.iter().filter_map(|j| j.revenue).sum(),
        })
    }

    /// By list date, creation time and id, newest first.
    pub fn jobs(&self, filter: &JobFilter) -> Vec<JobSummary> {
        let mut all: Vec<JobSummary> = self
            .jobs
            .keys()
            .filter_map(|id| self.job(*id))
            .filter(|j| {
                filter.status.is_none_or(|s| s == j.status)
                    && filter.customer.is_none_or(|c| c == j.customer_id)
                    && filter
                        .crew
                        .is_none_or(|m| j.crew.iter().any(|c| c.crew_member_id == m))
                    && filter.from.is_none_or(|from| j.list_date >= from)
                    && filter.to.is_none_or(|to| j.list_date <= to)
            })
            .collect();
        all.sort_by(|a, b| {
            (b.list_date, b.created_at, b.job_id).cmp(&(a.list_date, a.created_at, a.job_id))
        });
        all
    }

    pub fn job(&self, id: JobId) -> Option<JobSummary> {
        let j = self.jobs.get(&id)?;
        Some(JobSummary {
            job_id: id,
            customer_id: j.customer,
            customer_name: self.customer_name(j.customer),
            service_type: j.service_type,
            status: j.status,
            scheduled_date: j.date,
            window: j.window,
            crew: self.crew_refs(&j.crew),
            estimated_price_minor: j.estimated,
            revenue_minor: j.revenue,
            created_at: j.created_at,
            list_date: j.date.unwrap_or_else(|| self.local(j.created_at)),
        })
    }
}
