//! Names, contact details, addresses and message texts that look like a moving company's.

use domain::values::{Address, AddressInput, Email, MessageBody, PersonName, Phone};

use super::rng::Rng;
use super::GenError;

pub(crate) const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Laura",
    "Edward",
    "Sharon",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Kathleen",
    "Jacob",
    "Amy",
    "Gary",
    "Angela",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
];

const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Pine Rd",
    "Cedar Ln",
    "Elm St",
    "Washington Blvd",
    "Lake Dr",
    "Hill St",
    "Park Ave",
    "Main St",
    "Church Rd",
    "River Rd",
    "Sunset Blvd",
    "Highland Ave",
];

const CITIES: &[(&str, &str)] = &[
    ("Boston", "MA"),
    ("Cambridge", "MA"),
    ("Newton", "MA"),
    ("Quincy", "MA"),
    ("Somerville", "MA"),
    ("Providence", "RI"),
    ("Worcester", "MA"),
    ("Hartford", "CT"),
    ("Nashua", "NH"),
    ("Portland", "ME"),
];

const MESSAGE_TEXTS: &[&str] = &[
    "Truck 3 is running about 20 minutes late, customer informed.",
    "Can someone cover the afternoon packing job on Elm St?",
    "Customer asked for extra wardrobe boxes, adding them to the estimate.",
    "Piano on the second floor, we need four people and the dolly.",
    "Job done, signed paperwork is in the truck.",
    "Parking permit confirmed for tomorrow morning.",
    "Who has the keys to the storage unit 14B?",
    "Please double check the inventory list before loading.",
    "Customer wants to move the date to next week, is Thursday free?",
    "Stairs only at the destination, no elevator. Plan accordingly.",
    "Fuel card for van 2 is not working, using the backup.",
    "Great work today team, customer left a five star review!",
    "Reminder: safety meeting Monday 7:30 at the depot.",
    "Need a second truck for the long distance move on Friday.",
    "The building requires a certificate of insurance, sending it now.",
    "Heads up: rain expected, bring the floor protection.",
];

pub(crate) fn person_name(raw: &str) -> Result<PersonName, GenError> {
    PersonName::parse(raw).map_err(GenError::field)
}

pub(crate) fn email(first: &str, last: &str, n: u64, domain: &str) -> Result<Email, GenError> {
    Email::parse(&format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        n,
        domain
    ))
    .map_err(GenError::field)
}

pub(crate) fn phone(rng: &mut Rng) -> Result<Phone, GenError> {
    Phone::parse(&format!(
        "+1 ({}) {:03}-{:04}",
        rng.between(201, 989),
        rng.between(200, 999),
        rng.between(0, 9999)
    ))
    .map_err(GenError::field)
}

pub(crate) fn address(rng: &mut Rng) -> Result<Address, GenError> {
    let (city, region) = *rng.pick(CITIES);
    Address::parse(AddressInput {
        line1: format!("{} {}", rng.between(1, 9999), rng.pick(STREETS)),
        line2: rng
            .chance(0.2)
            .then(|| format!("Apt {}", rng.between(1, 40))),
        city: city.to_owned(),
        region: Some(region.to_owned()),
        postal_code: format!("{:05}", rng.between(1000, 9999)),
    })
    .map_err(GenError::field)
}

pub(crate) fn message(rng: &mut Rng) -> Result<MessageBody, GenError> {
    let text: &str = rng.pick::<&str>(MESSAGE_TEXTS);
    MessageBody::parse(text).map_err(GenError::field)
}
