//! Customer aggregate: registration, contact details and sales status.
//!
//! Email uniqueness across customers is enforced outside (the command API reserves emails);
//! here the email is just carried.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::enums::{CustomerStatus, ReferralSource};
use crate::error::DomainError;
use crate::ids::CustomerId;
use crate::values::{Address, Email, PersonName, Phone};

/// Marker type implementing [`Aggregate`] for customers.
#[derive(Debug, Clone, Copy)]
pub struct Customer;

/// Snapshot version of [`CustomerState`]; bump when its shape changes.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// `None` until registered.
    pub customer: Option<CustomerRecord>,
}

/// What the customer rules need: current contact details (to detect changes) and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub customer_id: CustomerId,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub email: Email,
    pub phone: Phone,
    pub address: Address,
    pub status: CustomerStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    Register {
        customer_id: CustomerId,
        first_name: PersonName,
        last_name: PersonName,
        email: Email,
        phone: Phone,
        referral_source: ReferralSource,
        address: Address,
        registered_at: DateTime<Utc>,
    },
    /// `None` fields are left as they are; fields equal to the current value are no change.
    UpdateContact {
        first_name: Option<PersonName>,
        last_name: Option<PersonName>,
        email: Option<Email>,
        phone: Option<Phone>,
        address: Option<Address>,
        updated_at: DateTime<Utc>,
    },
    ChangeStatus {
        status: CustomerStatus,
        changed_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum CustomerEvent {
    /// A new customer, always with status `lead`.
    CustomerRegistered {
        customer_id: CustomerId,
        first_name: PersonName,
        last_name: PersonName,
        email: Email,
        phone: Phone,
        referral_source: ReferralSource,
        address: Address,
        status: CustomerStatus,
        registered_at: DateTime<Utc>,
    },
    /// The `first_name`..`address` fields are set only where they changed (null otherwise);
    /// the `current_*` fields always hold the resulting values, for projections.
    CustomerContactUpdated {
        first_name: Option<PersonName>,
        last_name: Option<PersonName>,
        email: Option<Email>,
        phone: Option<Phone>,
        address: Option<Address>,
        current_first_name: PersonName,
        current_last_name: PersonName,
        current_email: Email,
        current_phone: Phone,
        updated_at: DateTime<Utc>,
    },
    CustomerStatusChanged {
        from: CustomerStatus,
        to: CustomerStatus,
        changed_at: DateTime<Utc>,
    },
}

impl DomainEvent for CustomerEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "CustomerRegistered",
        "CustomerContactUpdated",
        "CustomerStatusChanged",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::CustomerRegistered { .. } => "CustomerRegistered",
            Self::CustomerContactUpdated { .. } => "CustomerContactUpdated",
            Self::CustomerStatusChanged { .. } => "CustomerStatusChanged",
        }
    }
}

/// `Some(new)` only when `new` is given and differs from `current`.
fn changed<T: PartialEq>(current: &T, new: Option<T>) -> Option<T> {
    new.filter(|value| value != current)
}

pub fn decide(
    state: &CustomerState,
    command: CustomerCommand,
) -> Result<Vec<CustomerEvent>, DomainError> {
    const AGGREGATE: &str = "customer";
    match (&state.customer, command) {
        (
            None,
            CustomerCommand::Register {
                customer_id,
                first_name,
                last_name,
                email,
                phone,
                referral_source,
                address,
                registered_at,
            },
        ) => Ok(vec![CustomerEvent::CustomerRegistered {
            customer_id,
            first_name,
            last_name,
            email,
            phone,
            referral_source,
            address,
            status: CustomerStatus::Lead,
            registered_at,
        }]),
        (Some(_), CustomerCommand::Register { .. }) => Err(DomainError::AlreadyExists {
            aggregate: AGGREGATE,
        }),
        (None, _) => Err(DomainError::NotFound {
            aggregate: AGGREGATE,
        }),
        (
            Some(current),
            CustomerCommand::UpdateContact {
                first_name,
                last_name,
                email,
                phone,
                address,
                updated_at,
            },
        ) => update_contact(
            current, first_name, last_name, email, phone, address, updated_at,
        ),
        (Some(current), CustomerCommand::ChangeStatus { status, changed_at }) => {
            change_status(current, status, changed_at)
        }
    }
}

/// Only the fields that really change are carried; an update that changes nothing emits
/// nothing.
fn update_contact(
    current: &CustomerRecord,
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    email: Option<Email>,
    phone: Option<Phone>,
    address: Option<Address>,
    updated_at: DateTime<Utc>,
) -> Result<Vec<CustomerEvent>, DomainError> {
    let first_name = changed(&current.first_name, first_name);
    let last_name = changed(&current.last_name, last_name);
    let email = changed(&current.email, email);
    let phone = changed(&current.phone, phone);
    let address = changed(&current.address, address);
    if first_name.is_none()
        && last_name.is_none()
        && email.is_none()
        && phone.is_none()
        && address.is_none()
    {
        return Ok(vec![]);
    }
    Ok(vec![CustomerEvent::CustomerContactUpdated {
        current_first_name: first_name.clone().unwrap_or(current.first_name.clone()),
        current_last_name: last_name.clone().unwrap_or(current.last_name.clone()),
        current_email: email.clone().unwrap_or(current.email.clone()),
        current_phone: phone.clone().unwrap_or(current.phone.clone()),
        first_name,
        last_name,
        email,
        phone,
        address,
        updated_at,
    }])
}

fn change_status(
    current: &CustomerRecord,
    status: CustomerStatus,
    changed_at: DateTime<Utc>,
) -> Result<Vec<CustomerEvent>, DomainError> {
    if status == current.status {
        Ok(vec![])
    } else if current.status.can_change_to(status) {
        Ok(vec![CustomerEvent::CustomerStatusChanged {
            from: current.status,
            to: status,
            changed_at,
        }])
    } else {
        Err(DomainError::CustomerStatusTransition {
            from: current.status,
            to: status,
        })
    }
}

pub fn evolve(mut state: CustomerState, event: &CustomerEvent) -> CustomerState {
    match event {
        CustomerEvent::CustomerRegistered {
            customer_id,
            first_name,
            last_name,
            email,
            phone,
            address,
            status,
            ..
        } => {
            state.customer = Some(CustomerRecord {
                customer_id: *customer_id,
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                email: email.clone(),
                phone: phone.clone(),
                address: address.clone(),
                status: *status,
            });
        }
        CustomerEvent::CustomerContactUpdated {
            address,
            current_first_name,
            current_last_name,
            current_email,
            current_phone,
            ..
        } => {
            if let Some(customer) = &mut state.customer {
                customer.first_name = current_first_name.clone();
                customer.last_name = current_last_name.clone();
                customer.email = current_email.clone();
                customer.phone = current_phone.clone();
                if let Some(address) = address {
                    customer.address = address.clone();
                }
            }
        }
        CustomerEvent::CustomerStatusChanged { to, .. } => {
            if let Some(customer) = &mut state.customer {
                customer.status = *to;
            }
        }
    }
    state
}

impl Aggregate for Customer {
    const TYPE: &'static str = "customer";
    const SNAPSHOT_VERSION: u32 = SNAPSHOT_VERSION;
    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;

    fn decide(
        state: &CustomerState,
        command: CustomerCommand,
    ) -> Result<Vec<CustomerEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: CustomerState, event: &CustomerEvent) -> CustomerState {
        evolve(state, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_payload_round_trips, given};
    use crate::values::AddressInput;
    use chrono::TimeZone;
    use uuid::Uuid;
    use CustomerStatus::{Active, Inactive, Lead};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, hour, 0, 0).unwrap()
    }

    fn id() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn name(raw: &str) -> PersonName {
        PersonName::parse(raw).unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn phone(raw: &str) -> Phone {
        Phone::parse(raw).unwrap()
    }

    fn address(line1: &str) -> Address {
        Address::parse(AddressInput {
            line1: line1.into(),
            city: "Springfield".into(),
            postal_code: "62701".into(),
            ..AddressInput::default()
        })
        .unwrap()
    }

    fn register() -> CustomerCommand {
        CustomerCommand::Register {
            customer_id: id(),
            first_name: name("Ana"),
            last_name: name("Silva"),
            email: email("ana@example.com"),
            phone: phone("555-123-4567"),
            referral_source: ReferralSource::Google,
            address: address("1 Main St"),
            registered_at: at(9),
        }
    }

    fn registered() -> CustomerEvent {
        CustomerEvent::CustomerRegistered {
            customer_id: id(),
            first_name: name("Ana"),
            last_name: name("Silva"),
            email: email("ana@example.com"),
            phone: phone("555-123-4567"),
            referral_source: ReferralSource::Google,
            address: address("1 Main St"),
            status: Lead,
            registered_at: at(9),
        }
    }

    fn status_changed(from: CustomerStatus, to: CustomerStatus) -> CustomerEvent {
        CustomerEvent::CustomerStatusChanged {
            from,
            to,
            changed_at: at(10),
        }
    }

    fn change_status(status: CustomerStatus) -> CustomerCommand {
        CustomerCommand::ChangeStatus {
            status,
            changed_at: at(10),
        }
    }

    fn update(email_raw: Option<&str>, line1: Option<&str>) -> CustomerCommand {
        CustomerCommand::UpdateContact {
            first_name: None,
            last_name: Some(name("Silva")),
            email: email_raw.map(email),
            phone: None,
            address: line1.map(address),
            updated_at: at(11),
        }
    }

    #[test]
    fn registering_a_customer_makes_a_lead() {
        let state = given::<Customer>(vec![])
            .when(register())
            .then(vec![registered()]);
        assert_eq!(state.customer.map(|c| c.status), Some(Lead));
    }

    #[test]
    fn customer_cannot_be_registered_twice() {
        given::<Customer>(vec![registered()])
            .when(register())
            .then_err(DomainError::AlreadyExists {
                aggregate: "customer",
            });
    }

    #[test]
    fn unregistered_customer_cannot_be_updated() {
        given::<Customer>(vec![])
            .when(update(Some("new@example.com"), None))
            .then_err(DomainError::NotFound {
                aggregate: "customer",
            });
        given::<Customer>(vec![])
            .when(change_status(Active))
            .then_err(DomainError::NotFound {
                aggregate: "customer",
            });
    }

    #[test]
    fn contact_update_carries_changed_fields_and_resulting_contact() {
        let state = given::<Customer>(vec![registered()])
            .when(update(Some("ana.s@example.com"), Some("2 Oak Ave")))
            .then(vec![CustomerEvent::CustomerContactUpdated {
                first_name: None,
                last_name: None,
                email: Some(email("ana.s@example.com")),
                phone: None,
                address: Some(address("2 Oak Ave")),
                current_first_name: name("Ana"),
                current_last_name: name("Silva"),
                current_email: email("ana.s@example.com"),
                current_phone: phone("555-123-4567"),
                updated_at: at(11),
            }]);
        let customer = state.customer.unwrap();
        assert_eq!(customer.email, email("ana.s@example.com"));
        assert_eq!(customer.address, address("2 Oak Ave"));
    }

    #[test]
    fn contact_update_without_changes_emits_nothing() {
        given::<Customer>(vec![registered()])
            .when(update(Some("ANA@example.com"), Some("1 Main St")))
            .then(vec![]);
    }

    #[test]
    fn lead_can_become_active_or_inactive() {
        given::<Customer>(vec![registered()])
            .when(change_status(Active))
            .then(vec![status_changed(Lead, Active)]);
        given::<Customer>(vec![registered()])
            .when(change_status(Inactive))
            .then(vec![status_changed(Lead, Inactive)]);
    }

    #[test]
    fn active_and_inactive_customers_can_switch_back_and_forth() {
        given::<Customer>(vec![registered(), status_changed(Lead, Active)])
            .when(change_status(Inactive))
            .then(vec![status_changed(Active, Inactive)]);
        given::<Customer>(vec![registered(), status_changed(Lead, Inactive)])
            .when(change_status(Active))
            .then(vec![status_changed(Inactive, Active)]);
    }

    #[test]
    fn changing_to_the_same_status_emits_nothing() {
        given::<Customer>(vec![registered()])
            .when(change_status(Lead))
            .then(vec![]);
    }

    #[test]
    fn customer_cannot_return_to_lead() {
        given::<Customer>(vec![registered(), status_changed(Lead, Active)])
            .when(change_status(Lead))
            .then_err(DomainError::CustomerStatusTransition {
                from: Active,
                to: Lead,
            });
        given::<Customer>(vec![registered(), status_changed(Lead, Inactive)])
            .when(change_status(Lead))
            .then_err(DomainError::CustomerStatusTransition {
                from: Inactive,
                to: Lead,
            });
    }

    #[test]
    fn customer_events_round_trip_through_payloads() {
        let updated = CustomerEvent::CustomerContactUpdated {
            first_name: Some(name("Ann")),
            last_name: None,
            email: None,
            phone: Some(phone("+44 20 7946 0958")),
            address: None,
            current_first_name: name("Ann"),
            current_last_name: name("Silva"),
            current_email: email("ana@example.com"),
            current_phone: phone("+44 20 7946 0958"),
            updated_at: at(12),
        };
        assert_payload_round_trips(&[registered(), updated, status_changed(Lead, Active)]);
        let payload = registered().to_payload();
        assert_eq!(payload["referral_source"], "google");
        assert_eq!(payload["status"], "lead");
        assert_eq!(payload["email"], "ana@example.com");
    }

    #[test]
    fn customer_state_snapshot_round_trips() {
        let state = Customer::replay(&[registered()]);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<CustomerState>(&json).unwrap(), state);
    }
}
