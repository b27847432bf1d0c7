//! All integration tests, in one binary, against the real servers started by `./dev test`.

mod event_store;
mod relay;
