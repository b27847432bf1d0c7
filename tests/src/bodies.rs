//! Valid JSON bodies of the command API's commands, shared by the tests that drive it.

use serde_json::{json, Value};
use uuid::Uuid;

/// `POST /v1/customers`: a customer found through Google, living in Springfield.
pub fn customer(first_name: &str, last_name: &str, email: &str, phone: &str) -> Value {
    json!({
        "first_name": first_name, "last_name": last_name, "email": email, "phone": phone,
        "referral_source": "google",
        "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "62701"}
    })
}

/// `POST /v1/jobs`: a local move for `customer` estimated at 1,250.00 USD.
pub fn job(customer: Uuid) -> Value {
    json!({
        "customer_id": customer, "service_type": "local_move",
        "origin": {"line1": "1 Main St", "city": "Springfield"},
        "destination": {"line1": "2 Oak Ave", "city": "Springfield"},
        "estimated_price": {"amount_minor": 125000, "currency": "USD"},
        "notes": "piano"
    })
}
