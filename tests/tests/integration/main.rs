//! All integration tests, in one binary, against the real servers started by `./dev test`.

mod architecture_map;
mod deployment;
mod durability;
mod end_to_end;
mod event_store;
mod lease;
mod projector_sharing;
mod relay;
