//! Who may issue which command.
//!
//! | Command                                             | admin | dispatcher | sales | crew | analyst |
//! |-----------------------------------------------------|:-----:|:----------:|:-----:|:----:|:-------:|
//! | register customer, update contact, change status    |   ✓   |     ✓      |   ✓   |      |         |
//! | create job                                          |   ✓   |     ✓      |   ✓   |      |         |
//! | schedule, reschedule, assign/unassign crew, cancel  |   ✓   |     ✓      |       |      |         |
//! | start, complete job                                 |   ✓   |     ✓      |       |  ✓¹  |         |
//! | register user, change role, deactivate user         |   ✓   |            |       |      |         |
//! | register, deactivate crew member                    |   ✓   |     ✓      |       |      |         |
//! | start thread                                        |  ✓²   |     ✓²     |  ✓²   |  ✓²  |         |
//! | post message, mark read                             |  ✓³   |     ✓³     |  ✓³   |  ✓³  |         |
//!
//! ¹ only a crew user whose crew-member record (`user_id`) is assigned to the job.
//! ² the caller must be one of the thread's participants, all of them registered, active users.
//! ³ only participants of the thread.
//!
//! Analysts read; they may issue no command. A missing or invalid token is a 401; a role or
//! relation that does not allow the command is a 403.

use domain::enums::Role::{self, Admin, Crew, Dispatcher, Sales};
use platform::auth::Caller;
use platform::problem::Problem;
use uuid::Uuid;

const CUSTOMER_ROLES: &[Role] = &[Admin, Dispatcher, Sales];
const JOB_CREATE_ROLES: &[Role] = &[Admin, Dispatcher, Sales];
const JOB_PLANNING_ROLES: &[Role] = &[Admin, Dispatcher];
const JOB_RUNNING_ROLES: &[Role] = &[Admin, Dispatcher, Crew];
const USER_ROLES: &[Role] = &[Admin];
const CREW_MEMBER_ROLES: &[Role] = &[Admin, Dispatcher];
const THREAD_ROLES: &[Role] = &[Admin, Dispatcher, Sales, Crew];

pub(crate) fn manage_customers(caller: &Caller) -> Result<(), Problem> {
    caller.require(CUSTOMER_ROLES, "manage customers")
}

pub(crate) fn create_jobs(caller: &Caller) -> Result<(), Problem> {
    caller.require(JOB_CREATE_ROLES, "create jobs")
}

pub(crate) fn plan_jobs(caller: &Caller) -> Result<(), Problem> {
    caller.require(
        JOB_PLANNING_ROLES,
        "schedule, reschedule, staff or cancel jobs",
    )
}

/// Start and complete. Crew callers pass this check only provisionally: the handler then
/// checks that they are assigned to the job ([`crew_on_job`]).
pub(crate) fn run_jobs(caller: &Caller) -> Result<(), Problem> {
    caller.require(JOB_RUNNING_ROLES, "start or complete jobs")
}

/// Whether the caller must prove an assignment to start or complete a job.
pub(crate) fn needs_assignment(caller: &Caller) -> bool {
    caller.role == Crew
}

pub(crate) fn crew_on_job(assigned: bool) -> Result<(), Problem> {
    if assigned {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "crew may start or complete only jobs they are assigned to",
        ))
    }
}

pub(crate) fn manage_users(caller: &Caller) -> Result<(), Problem> {
    caller.require(USER_ROLES, "manage users")
}

/// An administrator's own account is changed by another administrator, never by its holder:
/// deactivating or demoting oneself could leave nobody able to manage users.
pub(crate) fn not_own_account(caller: &Caller, user: Uuid, action: &str) -> Result<(), Problem> {
    if caller.user_id.as_uuid() == user {
        Err(crate::errors::refused(
            "own_account",
            format!(
                "an administrator cannot {action} their own account; another administrator must"
            ),
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn manage_crew_members(caller: &Caller) -> Result<(), Problem> {
    caller.require(CREW_MEMBER_ROLES, "manage crew members")
}

pub(crate) fn use_threads(caller: &Caller) -> Result<(), Problem> {
    caller.require(THREAD_ROLES, "start threads or post messages")
}

pub(crate) fn participant(is_participant: bool, action: &str) -> Result<(), Problem> {
    if is_participant {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "only participants of the thread may {action}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::enums::Role::Analyst;
    use domain::ids::UserId;

    fn caller(role: Role) -> Caller {
        Caller {
            user_id: UserId::from(uuid::Uuid::now_v7()),
            name: "Test".into(),
            role,
        }
    }

    #[test]
    fn analysts_may_issue_no_command() {
        let analyst = caller(Analyst);
        for check in [
            manage_customers,
            create_jobs,
            plan_jobs,
            run_jobs,
            manage_users,
            manage_crew_members,
            use_threads,
        ] {
            assert_eq!(check(&analyst).unwrap_err().status.as_u16(), 403);
        }
    }

    #[test]
    fn the_matrix_allows_exactly_the_listed_roles() {
        let allowed = |check: fn(&Caller) -> Result<(), Problem>| -> Vec<Role> {
            Role::ALL
                .iter()
                .copied()
                .filter(|role| check(&caller(*role)).is_ok())
                .collect()
        };
        assert_eq!(allowed(manage_customers), vec![Admin, Dispatcher, Sales]);
        assert_eq!(allowed(create_jobs), vec![Admin, Dispatcher, Sales]);
        assert_eq!(allowed(plan_jobs), vec![Admin, Dispatcher]);
        assert_eq!(allowed(run_jobs), vec![Admin, Dispatcher, Crew]);
        assert_eq!(allowed(manage_users), vec![Admin]);
        assert_eq!(allowed(manage_crew_members), vec![Admin, Dispatcher]);
        assert_eq!(allowed(use_threads), vec![Admin, Dispatcher, Sales, Crew]);
    }
}
