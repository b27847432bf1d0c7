//! Fault points, compiled only with the `fault-points` feature (the fault suite's and the
//! sharing test's builds, never a normal one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use read_models::cache::DirtyDoc;

/// With `SIMPLEPRO_FAULT_STALL_MS=N` and `SIMPLEPRO_FAULT_STALL_KIND=<kind>`, the first flush
/// that writes a document of a collection of that kind (`customers` for
/// `rm_lists_g1_customers`) waits N ms after its lease check and before writing, once per
/// process, saying so on standard error. A test stops the process (SIGSTOP) in that wait, as
/// a pause of the whole process would (a VM frozen, swapping), until another instance has
/// taken the models over: the window in which a former owner holds documents older than the
/// stored ones.
pub(crate) async fn stall_before_writing(dirty: &[DirtyDoc]) {
    static FIRED: AtomicBool = AtomicBool::new(false);
    let setting = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(stall), Some(kind)) = (
        setting("SIMPLEPRO_FAULT_STALL_MS").and_then(|ms| ms.parse::<u64>().ok()),
        setting("SIMPLEPRO_FAULT_STALL_KIND"),
    ) else {
        return;
    };
    let suffix = format!("_{kind}");
    if !dirty.iter().any(|d| d.collection.ends_with(&suffix)) || FIRED.swap(true, Ordering::Relaxed)
    {
        return;
    }
    eprintln!(
        "fault point: stalling {stall} ms before writing {} documents",
        dirty.len()
    );
    tokio::time::sleep(Duration::from_millis(stall)).await;
}
