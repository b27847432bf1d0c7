//! Direct and group threads, messages with skewed activity, and read markers.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use domain::ids::{MessageId, ThreadId, UserId};
use domain::thread::{direct_thread_id, ThreadCommand, ThreadKind};
use domain::values::ThreadTitle;

use super::rng::Rng;
use super::{
    people, Command, GenError, Generator, Staff, ThreadInfo, FOCUS_DIRECT_THREADS,
    FOCUS_GROUP_THREADS, STAFF_USERS,
};

/// A thread to generate, before its messages.
struct ThreadPlan {
    id: ThreadId,
    kind: ThreadKind,
    participants: Vec<UserId>,
    title: Option<ThreadTitle>,
}

impl ThreadPlan {
    fn direct(id: ThreadId, a: UserId, b: UserId) -> Self {
        ThreadPlan {
            id,
            kind: ThreadKind::Direct,
            participants: vec![a, b],
            title: None,
        }
    }

    fn group(id: ThreadId, participants: Vec<UserId>, title: ThreadTitle) -> Self {
        ThreadPlan {
            id,
            kind: ThreadKind::Group,
            participants,
            title: Some(title),
        }
    }
}

/// `first` and others drawn from `users` until there are `n`.
fn group_members(rng: &mut Rng, users: &[Staff], first: UserId, n: usize) -> Vec<UserId> {
    let mut members = BTreeSet::from([first]);
    while members.len() < n {
        members.insert(users[rng.below(users.len() as u64) as usize].id);
    }
    members.into_iter().collect()
}

impl Generator {
    pub(super) fn threads(&mut self) -> Result<(), GenError> {
        let mut rng = self.root.fork(3);
        let focus = self.users[1].id;
        let mut direct_pairs = BTreeSet::new();
        let mut plans = self.focus_threads(&mut rng, focus, &mut direct_pairs)?;
        self.other_threads(&mut rng, &mut direct_pairs, &mut plans)?;
        // Skewed activity: a few threads carry most messages.
        let weights: Vec<f64> = (0..plans.len())
            .map(|_| 1.0 / (0.05 + rng.unit()).powf(1.3))
            .collect();
        let total: f64 = weights.iter().sum();
        let budget = self.config.size.params().messages as f64;
        for (plan, weight) in plans.into_iter().zip(weights) {
            let messages = ((weight / total) * budget).round() as usize;
            self.thread(&mut rng, plan, messages, focus)?;
        }
        Ok(())
    }

    /// The focus user's direct threads, then their group threads.
    fn focus_threads(
        &self,
        rng: &mut Rng,
        focus: UserId,
        direct_pairs: &mut BTreeSet<ThreadId>,
    ) -> Result<Vec<ThreadPlan>, GenError> {
        let mut plans = Vec::new();
        for other in self.users.iter().skip(2).take(FOCUS_DIRECT_THREADS) {
            direct_pairs.insert(direct_thread_id(focus, other.id));
            plans.push(ThreadPlan::direct(
                direct_thread_id(focus, other.id),
                focus,
                other.id,
            ));
        }
        for index in 0..FOCUS_GROUP_THREADS {
            let size = rng.between(4, 12) as usize;
            let members = group_members(rng, &self.users, focus, size);
            let title = ThreadTitle::parse(&format!("Crew channel {}", index + 1))
                .map_err(GenError::field)?;
            plans.push(ThreadPlan::group(
                ThreadId::from_uuid(rng.uuid()),
                members,
                title,
            ));
        }
        Ok(plans)
    }

    /// Threads among the other staff: direct ones between distinct pairs, and groups.
    fn other_threads(
        &self,
        rng: &mut Rng,
        direct_pairs: &mut BTreeSet<ThreadId>,
        plans: &mut Vec<ThreadPlan>,
    ) -> Result<(), GenError> {
        let mut others = 0;
        while others < self.config.size.params().other_threads {
            let a = self.users[rng.between(2, STAFF_USERS as i64 - 1) as usize].id;
            if rng.chance(0.6) {
                let b = self.users[rng.between(2, STAFF_USERS as i64 - 1) as usize].id;
                let id = direct_thread_id(a, b);
                if a == b || !direct_pairs.insert(id) {
                    continue;
                }
                plans.push(ThreadPlan::direct(id, a, b));
            } else {
                let size = rng.between(3, 10) as usize;
                let members = group_members(rng, &self.users, a, size);
                let title =
                    ThreadTitle::parse(&format!("Team {}", others + 1)).map_err(GenError::field)?;
                plans.push(ThreadPlan::group(
                    ThreadId::from_uuid(rng.uuid()),
                    members,
                    title,
                ));
            }
            others += 1;
        }
        Ok(())
    }

    fn thread(
        &mut self,
        rng: &mut Rng,
        plan: ThreadPlan,
        messages: usize,
        focus: UserId,
    ) -> Result<(), GenError> {
        let ThreadPlan {
            id: thread_id,
            kind,
            participants,
            title,
        } = plan;
        let starter = participants[0];
        let span = 365 * 24 * 60;
        let started_at = self.now - Duration::minutes(rng.between(span / 4, span));
        self.push(
            starter,
            Command::Thread(
                thread_id,
                ThreadCommand::Start {
                    thread_id,
                    kind,
                    participants: participants.clone(),
                    title,
                    started_by: starter,
                    started_at,
                },
            ),
        );
        let markers = self.messages(rng, thread_id, &participants, started_at, messages)?;
        // The focus user has caught up with about half of their threads, so the unread-only
        // list is a real filter.
        let last_seq = messages as u64;
        if let Some(slot) = participants.iter().position(|u| *u == focus) {
            if last_seq > markers[slot] && rng.chance(0.5) {
                self.mark_read(thread_id, focus, last_seq, self.now - Duration::minutes(1));
            }
        }
        self.threads.push(ThreadInfo {
            id: thread_id,
            participants,
        });
        Ok(())
    }

    /// Posts `messages` messages at random times since `started_at`, each read by some of
    /// the other participants soon after; returns each participant's read marker.
    fn messages(
        &mut self,
        rng: &mut Rng,
        thread_id: ThreadId,
        participants: &[UserId],
        started_at: DateTime<Utc>,
        messages: usize,
    ) -> Result<Vec<u64>, GenError> {
        let window = (self.now - started_at).num_seconds().max(1);
        let mut times: Vec<i64> = (0..messages).map(|_| rng.between(1, window - 1)).collect();
        times.sort_unstable();
        let mut markers = vec![0u64; participants.len()];
        let read_chance = if participants.len() == 2 {
            0.15
        } else {
            0.3 / participants.len() as f64
        };
        for (index, offset) in times.into_iter().enumerate() {
            let seq = index as u64 + 1;
            let author = *rng.pick(participants);
            let posted_at = started_at + Duration::seconds(offset);
            self.push(
                author,
                Command::Thread(
                    thread_id,
                    ThreadCommand::Post {
                        message_id: MessageId::from_uuid(rng.uuid()),
                        author,
                        body: people::message(rng)?,
                        posted_at,
                    },
                ),
            );
            for (slot, user) in participants.iter().enumerate() {
                if *user != author && rng.chance(read_chance) && markers[slot] < seq {
                    markers[slot] = seq;
                    self.mark_read(thread_id, *user, seq, posted_at + Duration::minutes(3));
                }
            }
        }
        Ok(markers)
    }

    fn mark_read(
        &mut self,
        thread_id: ThreadId,
        user: UserId,
        up_to_seq: u64,
        read_at: DateTime<Utc>,
    ) {
        self.push(
            user,
            Command::Thread(
                thread_id,
                ThreadCommand::MarkRead {
                    user,
                    up_to_seq,
                    read_at,
                },
            ),
        );
    }
}
