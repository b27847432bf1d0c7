//! Customer emails are unique: each is reserved in `email_reservations` (`_id` = the
//! normalized email) before the event that uses it is appended. The unique `_id` is the only
//! guard that is atomic on FerretDB and MongoDB alike, so two concurrent registrations with
//! one email cannot both win.
//!
//! A crash between reserving and appending leaves a reservation without a customer; after
//! [`STALE_AFTER`] such a reservation is taken over by the next registration.

use std::time::Duration;

use events::store::Claims;
use events::EventStore;
use platform::problem::Problem;
use uuid::Uuid;

use crate::errors;

/// A reservation whose customer never appeared is abandoned after this long.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The collection of the reservations: `_id` = the lowercased email (a value, never a key, so
/// dots are fine), `owner` = the customer id, `claimed_at`.
const COLLECTION: &str = "email_reservations";

#[derive(Clone)]
pub(crate) struct Reservations {
    claims: Claims,
}

/// How a reservation came about; only a new one is released when the command fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    New,
    AlreadyOurs,
}

impl Reservations {
    pub(crate) fn new(store: &EventStore) -> Self {
        Reservations {
            claims: store.claims(COLLECTION),
        }
    }

    /// Reserves `email` for `customer_id`; a 409 `email_taken` when another customer holds it.
    /// `holder_uses_email` tells whether the customer holding a found reservation is
    /// registered and still has this email.
    pub(crate) async fn reserve<F, Fut>(
        &self,
        email: &str,
        customer_id: Uuid,
        holder_uses_email: F,
    ) -> Result<Reserved, Problem>
    where
        F: Fn(Uuid) -> Fut,
        Fut: std::future::Future<Output = Result<bool, Problem>>,
    {
        let ours = customer_id.to_string();
        // Two rounds: the second after taking over a stale reservation.
        for _ in 0..2 {
            let claimed = self.claims.try_claim(email, &ours).await;
            if claimed.map_err(|e| errors::store_while(&e, "reserving an email"))? {
                return Ok(Reserved::New);
            }
            let Some(holder) = self
                .claims
                .holder(email)
                .await
                .map_err(|e| errors::store_while(&e, "reading an email reservation"))?
            else {
                // Released in the meantime: try the insert again.
                continue;
            };
            if holder.owner == ours {
                return Ok(Reserved::AlreadyOurs);
            }
            let age = (chrono::Utc::now() - holder.claimed_at)
                .to_std()
                .unwrap_or_default();
            let abandoned = match Uuid::parse_str(&holder.owner).ok() {
                Some(id) => age > STALE_AFTER && !holder_uses_email(id).await?,
                None => true,
            };
            if !abandoned {
                return Err(taken(email));
            }
            // Released by holder: a concurrent taker's fresh reservation is not ours to delete.
            self.claims
                .release(email, &holder.owner)
                .await
                .map_err(|e| errors::store_while(&e, "taking over an email reservation"))?;
        }
        Err(taken(email))
    }

    /// Releases `email` if `customer_id` holds it (after a failed command, or the old email
    /// after a change). A failure only leaves a reservation that becomes stale.
    pub(crate) async fn release(&self, email: &str, customer_id: Uuid) {
        let released = self.claims.release(email, &customer_id.to_string()).await;
        if let Err(error) = released {
            tracing::warn!(%error, "email reservation not released; it will go stale");
        }
    }
}

fn taken(email: &str) -> Problem {
    errors::refused(
        "email_taken",
        format!("another customer already uses {email}"),
    )
}
