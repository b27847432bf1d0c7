//! Customer emails are unique: each is reserved in `email_reservations` (`_id` = the
//! normalized email) before the event that uses it is appended. The unique `_id` is the only
//! guard that is atomic on FerretDB and MongoDB alike, so two concurrent registrations with
//! one email cannot both win.
//!
//! A crash between reserving and appending leaves a reservation without a customer; after
//! [`STALE_AFTER`] such a reservation is taken over by the next registration.

use std::time::Duration;

use bson::{doc, DateTime};
use mongodb::{Collection, Database};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::errors;

/// A reservation whose customer never appeared is abandoned after this long.
const STALE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
struct ReservationDoc {
    /// The lowercased email; a value, never a key, so dots are fine.
    #[serde(rename = "_id")]
    email: String,
    customer_id: String,
    reserved_at: DateTime,
}

#[derive(Clone)]
pub(crate) struct Reservations {
    collection: Collection<ReservationDoc>,
}

/// How a reservation came about; only a new one is released when the command fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    New,
    AlreadyOurs,
}

impl Reservations {
    pub(crate) fn new(database: &Database) -> Self {
        Reservations {
            collection: database.collection("email_reservations"),
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
            let reservation = ReservationDoc {
                email: email.to_owned(),
                customer_id: ours.clone(),
                reserved_at: DateTime::now(),
            };
            match self.collection.insert_one(&reservation).await {
                Ok(_) => return Ok(Reserved::New),
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(errors::mongo(&error, "reserving an email")),
            }
            let Some(holder) = self
                .collection
                .find_one(doc! {"_id": email})
                .await
                .map_err(|e| errors::mongo(&e, "reading an email reservation"))?
            else {
                // Released in the meantime: try the insert again.
                continue;
            };
            if holder.customer_id == ours {
                return Ok(Reserved::AlreadyOurs);
            }
            let age = DateTime::now()
                .checked_duration_since(holder.reserved_at)
                .unwrap_or_default();
            let holder_id = Uuid::parse_str(&holder.customer_id).ok();
            let abandoned = match holder_id {
                Some(id) => age > STALE_AFTER && !holder_uses_email(id).await?,
                None => true,
            };
            if !abandoned {
                return Err(taken(email));
            }
            // Deleting by holder too: a concurrent taker's fresh reservation is not ours to
            // delete.
            self.collection
                .delete_one(doc! {"_id": email, "customer_id": &holder.customer_id})
                .await
                .map_err(|e| errors::mongo(&e, "taking over an email reservation"))?;
        }
        Err(taken(email))
    }

    /// Releases `email` if `customer_id` holds it (after a failed command, or the old email
    /// after a change). A failure only leaves a reservation that becomes stale.
    pub(crate) async fn release(&self, email: &str, customer_id: Uuid) {
        // A point read then a point delete (a filter on more than `_id` scans on FerretDB).
        // Nobody else replaces a reservation of ours until it is stale, so the gap is safe.
        let result = match self.collection.find_one(doc! {"_id": email}).await {
            Ok(Some(holder)) if holder.customer_id == customer_id.to_string() => self
                .collection
                .delete_one(doc! {"_id": email})
                .await
                .map(drop),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
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

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}
