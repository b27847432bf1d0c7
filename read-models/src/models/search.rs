//! Customer search: tokens, typo-tolerant scoring, and the postings that find candidates
//! without scanning.
//!
//! Documents (collection `rm_lists_g<n>_search`, tier 0): `_id = <prefix>` for every prefix
//! of length 2..=10 of every customer token: `{prefix, truncated, entries: [{customer_id,
//! name, tokens, status, source}]}` sorted by customer id. Written whenever a customer's
//! tokens, name, status or source change (`CustomerRegistered`, `CustomerContactUpdated`,
//! `CustomerStatusChanged`); `entries` is A posting holds
//! at most [`POSTING_MAX`] customers; past that it is marked `truncated` and a query token
//! whose candidates come only from it may miss customers (in practice only two- or
//! three-letter query tokens shared by thousands).
//!
//! Matching (the same rules for the index and for a full scan, see [`customer_score`]):
//! a query token `t` matches a customer token `c` with score 3 if `c` starts with `t`;
//! 2 if `c` starts with a one-character deletion or adjacent transposition of `t`; 1 if
//! they share their first two characters and are within edit distance 2. Every query
//! token must match; a customer's score is the sum. Results rank by score desc, then the
//! lowercased "first last" name, then id.

use std::collections::BTreeSet;

use domain::enums::{CustomerStatus, ReferralSource};
use domain::ids::CustomerId;
use serde::{Deserialize, Serialize};

use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};

/// Shortest and longest indexed prefix, in characters.
pub(crate) const MIN_PREFIX: usize = 2;
pub(crate) const MAX_PREFIX: usize = 10;
/// Most customers one posting lists.
pub(crate) const POSTING_MAX: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PostingDoc {
    pub(crate) prefix: String,
    pub(crate) truncated: bool,
    pub(crate) entries: Vec<Posting>,
}

impl ReadDoc for PostingDoc {
    const TIER: u8 = 0;
}

/// What a search needs to score and filter a customer without reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Posting {
    pub(crate) customer_id: CustomerId,
    /// Ranking name: lowercased "first last".
    pub(crate) name: String,
    pub(crate) tokens: Vec<String>,
    pub(crate) status: CustomerStatus,
    pub(crate) source: ReferralSource,
}

/// The ranking name of a customer.
pub(crate) fn rank_name(first: &str, last: &str) -> String {
    format!("{first} {last}").to_lowercase()
}

fn split_alphanumeric(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

fn long_enough(token: &str) -> bool {
    token.chars().count() >= MIN_PREFIX
}

/// A customer's search tokens, sorted and distinct: first and last name words, the email's
/// local-part words, the full email, the phone digits.
pub(crate) fn customer_tokens(
    first: &str,
    last: &str,
    email: &str,
    phone_digits: &str,
) -> Vec<String> {
    let local = email.split('@').next().unwrap_or("");
    let tokens: BTreeSet<String> = split_alphanumeric(first)
        .chain(split_alphanumeric(last))
        .chain(split_alphanumeric(local))
        .chain([email.to_lowercase(), phone_digits.to_owned()])
        .filter(|t| long_enough(t))
        .collect();
    tokens.into_iter().collect()
}

/// The tokens of a search query: words split on whitespace; a word with `@` stays whole
/// (an email), a word of only digits and phone punctuation becomes its digits, other words
/// split on non-alphanumerics. Tokens shorter than 2 characters are dropped.
pub(crate) fn query_tokens(query: &str) -> Vec<String> {
    let mut tokens = BTreeSet::new();
    for word in query.split_whitespace() {
        let phone_like = word.chars().any(|c| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'));
        if word.contains('@') {
            tokens.insert(word.to_lowercase());
        } else if phone_like {
            tokens.insert(word.chars().filter(char::is_ascii_digit).collect());
        } else {
            tokens.extend(split_alphanumeric(word));
        }
    }
    tokens.into_iter().filter(|t| long_enough(t)).collect()
}

/// One-character deletions and adjacent transpositions of `token`, at least 2 characters.
fn variants(token: &str) -> Vec<String> {
    let chars: Vec<char> = token.chars().collect();
    let mut out = BTreeSet::new();
    for i in 0..chars.len() {
        let mut deleted = chars.clone();
        deleted.remove(i);
        out.insert(deleted.into_iter().collect::<String>());
        if i + 1 < chars.len() && chars[i] != chars[i + 1] {
            let mut swapped = chars.clone();
            swapped.swap(i, i + 1);
            out.insert(swapped.into_iter().collect::<String>());
        }
    }
    out.into_iter().filter(|v| long_enough(v)).collect()
}

fn first_two(text: &str) -> String {
    text.chars().take(MIN_PREFIX).collect()
}

/// How well query token `query` matches customer token `token` (3 best), if at all.
pub(crate) fn token_score(query: &str, token: &str) -> Option<u32> {
    if token.starts_with(query) {
        return Some(3);
    }
    if variants(query)
        .iter()
        .any(|v| token.starts_with(v.as_str()))
    {
        return Some(2);
    }
    if first_two(query) == first_two(token) && strsim::osa_distance(query, token) <= 2 {
        return Some(1);
    }
    None
}

/// The customer's score for `query` tokens: every query token must match one of `tokens`;
/// the score sums each query token's best match. `None` without query tokens.
pub(crate) fn customer_score(query: &[String], tokens: &[String]) -> Option<u32> {
    if query.is_empty() {
        return None;
    }
    query.iter().try_fold(0, |total, q| {
        tokens
            .iter()
            .filter_map(|t| token_score(q, t))
            .max()
            .map(|best| total + best)
    })
}

/// The first `n` characters of `text`.
fn prefix(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// Every posting `_id` a customer with `tokens` is listed under.
pub(crate) fn posting_keys(tokens: &[String]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for token in tokens {
        let len = token.chars().count().min(MAX_PREFIX);
        for n in MIN_PREFIX..=len {
            keys.insert(prefix(token, n));
        }
    }
    keys
}

/// The postings to read for one query token: its own prefix, its variants' prefixes and its
/// first two characters. Their union holds every customer the token matches.
pub(crate) fn lookup_keys(query_token: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    keys.insert(prefix(query_token, MAX_PREFIX));
    for variant in variants(query_token) {
        keys.insert(prefix(&variant, MAX_PREFIX));
    }
    keys.insert(first_two(query_token));
    keys
}

/// [`lookup_keys`] in two rounds: the token's first two characters and the keys that start
/// otherwise; then the keys that start like the token. Every customer listed under a key of
/// the second round has a token starting with that key, so is listed under the first two
/// characters too: the second round is read only when that posting is truncated.
pub(crate) fn lookup_rounds(query_token: &str) -> (Vec<String>, Vec<String>) {
    let first = first_two(query_token);
    let (mut now, later): (Vec<String>, Vec<String>) = lookup_keys(query_token)
        .into_iter()
        .filter(|key| *key != first)
        .partition(|key| first_two(key) != first);
    now.insert(0, first);
    (now, later)
}

/// Moves a customer's postings from `old` to `new` (either may be absent).
pub(crate) async fn update_postings(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    collection: &str,
    position: u64,
    old: Option<&Posting>,
    new: Option<&Posting>,
) -> Result<(), LoadError> {
    if old == new {
        return Ok(());
    }
    let old_keys = old.map(|p| posting_keys(&p.tokens)).unwrap_or_default();
    let new_keys = new.map(|p| posting_keys(&p.tokens)).unwrap_or_default();
    for key in old_keys.difference(&new_keys) {
        let Some(customer) = old.map(|p| p.customer_id) else {
            continue;
        };
        cache
            .update_existing::<PostingDoc>(loader, collection, key, position, |doc| {
                doc.entries.retain(|e| e.customer_id != customer);
            })
            .await?;
    }
    let Some(entry) = new else {
        return Ok(());
    };
    for key in &new_keys {
        let prefix = key.clone();
        let entry = entry.clone();
        cache
            .update::<PostingDoc>(loader, collection, key, position, |doc| {
                doc.prefix = prefix;
                match doc
                    .entries
                    .binary_search_by_key(&entry.customer_id, |e| e.customer_id)
                {
                    Ok(i) => doc.entries[i] = entry,
                    Err(_) if doc.entries.len() >= POSTING_MAX => doc.truncated = true,
                    Err(i) => doc.entries.insert(i, entry),
                }
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_missing_letter_still_finds_the_name() {
        let john = customer_tokens("John", "Smith", "john.smith@example.com", "5551234567");
        assert!(customer_score(&query_tokens("Jon Smith"), &john).is_some());
        assert!(customer_score(&query_tokens("Jhon"), &john).is_some());
        assert!(customer_score(&query_tokens("Jahn Smith"), &john).is_none());
        assert_eq!(customer_score(&query_tokens("smi"), &john), Some(3));
    }

    #[test]
    fn exact_prefixes_outrank_typos() {
        let query = query_tokens("jon");
        let jon = customer_score(&query, &tokens(&["jones"])).unwrap();
        let john = customer_score(&query, &tokens(&["john"])).unwrap();
        assert!(jon > john);
    }

    #[test]
    fn query_words_become_email_phone_or_name_tokens() {
        assert_eq!(
            query_tokens("Ana@Example.com"),
            tokens(&["ana@example.com"])
        );
        assert_eq!(query_tokens("(555) 123-4567"), tokens(&["1234567", "555"]));
        assert_eq!(query_tokens("555-123-4567"), tokens(&["5551234567"]));
        assert_eq!(
            query_tokens("Mary-Ann  O'Neil x"),
            tokens(&["ann", "mary", "neil"])
        );
    }

    #[test]
    fn a_full_posting_is_marked_truncated_instead_of_growing() {
        let store = crate::memory::MemoryStore::new();
        let mut cache = DocCache::new(10);
        crate::tests::block_on(async {
            for n in 0..=POSTING_MAX as u128 {
                let posting = Posting {
                    customer_id: CustomerId::from_uuid(uuid::Uuid::from_u128(n + 1)),
                    name: "ab".into(),
                    tokens: tokens(&["ab"]),
                    status: CustomerStatus::Lead,
                    source: ReferralSource::Other,
                };
                let position = n as u64 + 1;
                update_postings(&mut cache, &store, "search", position, None, Some(&posting))
                    .await
                    .unwrap();
            }
            let doc = cache
                .get::<PostingDoc>(&store, "search", "ab")
                .await
                .unwrap()
                .unwrap();
            assert!(doc.truncated);
            assert_eq!(doc.entries.len(), POSTING_MAX);
        });
    }

    #[test]
    fn the_second_round_holds_only_keys_the_first_two_characters_cover() {
        for query in [
            "smith",
            "sm",
            "jhon",
            "o'neil",
            "5551234567",
            "ab@example.com",
        ] {
            let (first, second) = lookup_rounds(query);
            assert_eq!(first[0], first_two(query));
            let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
            assert_eq!(all, lookup_keys(query), "{query}");
            assert_eq!(
                all.len(),
                first.len() + second.len(),
                "{query}: no key twice"
            );
            assert!(second.iter().all(|k| k.starts_with(&first[0])), "{query}");
            assert!(
                first[1..].iter().all(|k| !k.starts_with(&first[0])),
                "{query}"
            );
        }
        let (first, second) = lookup_rounds("smith");
        assert_eq!(first, ["sm", "mith", "msith", "simth", "sith"]);
        assert_eq!(second, ["smih", "smiht", "smit", "smith", "smth", "smtih"]);
    }

    #[test]
    fn postings_cover_every_match_of_a_query_token() {
        let customer = tokens(&["johnathan", "smith"]);
        let queries = [
            "john",
            "jon",
            "jhon",
            "johnathanx",
            "jo",
            "smtih",
            "smih",
            "xy",
            "joh",
        ];
        let mut matched = 0;
        for query in queries {
            let score = customer_score(&tokens(&[query]), &customer);
            let found = lookup_keys(query)
                .intersection(&posting_keys(&customer))
                .next()
                .is_some();
            assert!(score.is_none() || found, "{query} matches but is not found");
            matched += usize::from(score.is_some());
        }
        assert_eq!(matched, queries.len() - 1);
    }
}
