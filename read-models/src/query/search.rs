//! Customer search over the postings documents: typo tolerant, no scans.
//!
//! A search reads the postings of its most specific query token (its prefix, the prefixes
//! of its one-character deletions and transpositions, and its first two characters: about
//! `2 × length` keys, of which those starting like the token are read only when the posting
//! of its first two characters is truncated), scores every candidate against all query
//! tokens, and reads the summaries of the page's customers in one round. Pages are keyset
//! over (score desc, name, id).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use domain::ids::CustomerId;
use serde::{Deserialize, Serialize};

use super::lists::customers_by_id;
use super::{
    read_many, CursorKey, CustomerFilter, CustomerSummary, DocSource, Generations, Page,
    PageRequest, QueryError,
};
use crate::models::search::{customer_score, lookup_rounds, query_tokens, Posting, PostingDoc};
use crate::Model;

/// Where a search page ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SearchCursor {
    score: u32,
    name: String,
    id: CustomerId,
}

/// Best score first, then name, then id.
fn rank(a: &SearchCursor, b: &SearchCursor) -> Ordering {
    b.score
        .cmp(&a.score)
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.id.cmp(&b.id))
}

pub(crate) async fn search_customers(
    src: &impl DocSource,
    gens: &Generations,
    search: &str,
    filter: &CustomerFilter,
    page: PageRequest,
) -> Result<Page<CustomerSummary>, QueryError> {
    let after = page.after.as_ref().map(decode_cursor).transpose()?;
    let tokens = query_tokens(search);
    let Some(seed) = most_specific(&tokens) else {
        return Ok(Page {
            items: Vec::new(),
            next: None,
            total: Some(0),
        });
    };
    let candidates = candidates(src, gens, seed).await?;
    let mut ranked: Vec<SearchCursor> = candidates
        .into_values()
        .filter(|p| filter.status.is_none_or(|s| s == p.status))
        .filter(|p| filter.source.is_none_or(|s| s == p.source))
        .filter_map(|p| {
            customer_score(&tokens, &p.tokens).map(|score| SearchCursor {
                score,
                name: p.name,
                id: p.customer_id,
            })
        })
        .collect();
    ranked.sort_by(rank);
    let total = ranked.len() as u64;
    let start = match &after {
        Some(cursor) => ranked.partition_point(|r| rank(r, cursor) != Ordering::Greater),
        None => 0,
    };
    let limit = page.clamped_limit();
    let chosen: Vec<&SearchCursor> = ranked[start..].iter().take(limit).collect();
    let more = ranked.len() > start + chosen.len();
    let ids: Vec<CustomerId> = chosen.iter().map(|hit| hit.id).collect();
    let items = customers_by_id(src, gens, &ids).await?;
    let next = match chosen.last() {
        Some(last) if more => Some(encode_cursor(last)?),
        _ => None,
    };
    Ok(Page {
        items,
        next,
        total: Some(total),
    })
}

fn decode_cursor(cursor: &CursorKey) -> Result<SearchCursor, QueryError> {
    serde_json::from_value::<SearchCursor>(cursor.0.clone())
        .map_err(|_| QueryError::InvalidCursor("expected a search position".into()))
}

fn encode_cursor(last: &SearchCursor) -> Result<CursorKey, QueryError> {
    let value = serde_json::to_value(last)
        .map_err(|e| QueryError::InvalidCursor(format!("cannot encode a search position: {e}")))?;
    Ok(CursorKey(value))
}

/// The most specific query token: the longest, the first in order among equally long ones.
fn most_specific(tokens: &[String]) -> Option<&String> {
    tokens.iter().max_by(|a, b| {
        a.chars()
            .count()
            .cmp(&b.chars().count())
            .then_with(|| b.cmp(a))
    })
}

/// Every customer posted under the seed's lookup keys, once each.
async fn candidates(
    src: &impl DocSource,
    gens: &Generations,
    seed: &str,
) -> Result<BTreeMap<CustomerId, Posting>, QueryError> {
    let collection = gens.collection(Model::Lists, "search");
    let (first_round, second_round) = lookup_rounds(seed);
    let mut postings = read_many::<PostingDoc>(src, &collection, &first_round).await?;
    if postings
        .first()
        .and_then(Option::as_ref)
        .is_some_and(|first_two| first_two.truncated)
    {
        postings.extend(read_many::<PostingDoc>(src, &collection, &second_round).await?);
    }
    let mut candidates = BTreeMap::new();
    for doc in postings.into_iter().flatten() {
        for entry in doc.entries {
            candidates.entry(entry.customer_id).or_insert(entry);
        }
    }
    Ok(candidates)
}
