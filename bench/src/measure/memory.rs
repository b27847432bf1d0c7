//! Resident memory of the services (`VmRSS` of `/proc/<pid>/status`).

use serde::{Deserialize, Serialize};

use crate::services::Service;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rss {
    pub service: String,
    pub rss_mib: f64,
}

pub fn sample(services: &[&Service]) -> Vec<Rss> {
    services
        .iter()
        .filter_map(|s| {
            s.rss_kib().map(|kib| Rss {
                service: s.name.clone(),
                rss_mib: kib as f64 / 1024.0,
            })
        })
        .collect()
}
