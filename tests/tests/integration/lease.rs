//! `events::lease` on the real database: one holder per epoch, successors after expiry or a
//! release, the same holder started again taking over at once, a holder stepping down when a
//! successor exists or its epoch document is gone.

use std::time::Duration;

use bson::{doc, Document};
use events::lease::Lease;
use tests::TestEnv;

const TTL: Duration = Duration::from_millis(600);

#[tokio::test]
async fn a_named_lease_has_one_holder_at_a_time() {
    let env = TestEnv::new().await;
    let epochs = env.read_models.collection::<Document>("rm_leases");
    let lease = |holder: &str| Lease::new(epochs.clone(), "lists", holder, TTL);
    let (mut a, mut b) = (lease("a"), lease("b"));

    assert!(a.hold().await.expect("take"), "a free lease is taken");
    assert!(a.valid_for() > TTL / 2);
    assert!(!b.hold().await.expect("try"), "a held lease is not");
    let seen = b.observe().await.expect("observe").expect("an epoch");
    assert_eq!(
        (seen.epoch, seen.holder.as_str(), seen.expired),
        (1, "a", false)
    );
    // Another name's lease in the same collection is another lease.
    let mut other = Lease::new(epochs.clone(), "inbox", "b", TTL);
    assert!(other.hold().await.expect("take"));

    // Released: the next candidate takes the next epoch; the former holder steps down.
    a.release().await;
    assert_eq!(a.valid_for(), Duration::ZERO);
    tokio::time::sleep(TTL / 5).await;
    assert!(
        b.hold().await.expect("take"),
        "a released lease is taken at once"
    );
    assert_eq!(b.held(), Some(2));

    // Expired: taken by the next candidate; the old holder finds the successor and steps down.
    let mut c = lease("c");
    tokio::time::sleep(TTL + TTL / 5).await;
    assert!(c.hold().await.expect("take"), "an expired lease is taken");
    assert_eq!(c.held(), Some(3));
    assert!(
        !b.hold().await.expect("renew"),
        "a holder with a successor steps down"
    );
    assert_eq!(b.held(), None);

    // The same holder started again (its old process gone) takes over at once.
    let mut c_again = lease("c");
    assert!(c_again.hold().await.expect("take"));
    assert_eq!(c_again.held(), Some(4));

    // Its epoch document gone (the database dropped): the holder steps down.
    tokio::time::sleep(TTL / 3).await;
    epochs
        .delete_many(doc! {"_id": {"$regex": "^lists/"}})
        .await
        .expect("delete");
    assert!(
        !c_again.hold().await.expect("renew"),
        "no document, no lease"
    );
    env.read_models
        .drop()
        .await
        .expect("drop the test database");
}
