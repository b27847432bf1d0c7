//! The upcasters: each turns one version of one event type's payload into the next.
//!
//! A step only adds what the old version left implicit or reshapes what it held; it never
//! invents a fact. Each is pure, so replaying history gives the same events every time.

use serde_json::Value;

use super::UpcastContext;

/// JobScheduled v1 → v2: the window names its time zone. Version 1 windows were given in the
/// business's local time without saying so.
pub(super) fn job_scheduled_window_gains_time_zone(
    mut payload: Value,
    context: &UpcastContext,
) -> Result<Value, String> {
    name_the_zone(&mut payload, "window", context)?;
    Ok(payload)
}

/// JobRescheduled v1 → v2: both the old and the new window name their time zone.
pub(super) fn job_rescheduled_windows_gain_time_zone(
    mut payload: Value,
    context: &UpcastContext,
) -> Result<Value, String> {
    name_the_zone(&mut payload, "from_window", context)?;
    name_the_zone(&mut payload, "window", context)?;
    Ok(payload)
}

fn name_the_zone(payload: &mut Value, field: &str, context: &UpcastContext) -> Result<(), String> {
    let window = payload
        .get_mut(field)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{field} is not an object"))?;
    window
        .entry("time_zone")
        .or_insert_with(|| Value::from(context.business_time_zone.name()));
    Ok(())
}
