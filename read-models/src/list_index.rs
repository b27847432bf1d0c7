//! Ordered lists paged by keyset without scans: one directory document per list and bucket
//! documents holding sorted runs of entries.
//!
//! A list is named by a key string (`customers|status=active`, `inbox|<user>|all`, …). Each
//! entry has a sort key (a string; lists are ordered by it **descending**, and the models
//! build keys such as `<created_at>|<id>` so that this is newest first) and a payload (the
//! view item itself, so a page needs no further reads).
//!
//! Documents (collection kinds `list_dirs` and `list_buckets` of the owning model):
//! - directory `_id = <list>`: `{list, total, next_no, buckets: [{no, lo, count}]}` with
//!   buckets sorted by `lo` descending. Bucket `i` holds the keys in `[lo_i, lo_{i-1})` (the
//!   first bucket has no upper bound, the last has `lo = ""`). Tier 1.
//! - bucket `_id = <list>#<no>`: `{list, no, entries: [{key, item}]}`, entries sorted by key
//!   descending, at most [`BUCKET_MAX`] of them. Tier 0.
//!
//! A small list has no buckets: its entries are inline in the directory
//! (`{list, total, next_no, buckets: [], entries: [{key, item}]}`), so a change to it writes
//! one document instead of two. Most lists are small (a customer's jobs, a crew member's
//! jobs of one status), and they took most of the projector's writes. An insert that would
//! take the inline entries past [`INLINE_MAX`] moves them into the list's first bucket; a
//! list goes inline again only once its last bucket is emptied.
//!
//! A bucket that would exceed [`BUCKET_MAX`] is split into two new buckets (new numbers
//! from `next_no`), and a bucket that falls below [`BUCKET_MIN`] after a removal is merged
//! with a neighbour into a new bucket when the two fit in half a bucket. The replaced
//! buckets are left as they are and never touched again (no longer in the directory): a
//! bucket's content is only ever read by the event that retires it, which keeps re-applied
//! events exact (see `cache`). Emptied buckets are dropped from the directory the same way.
//!
//! One split is cheaper: when the new entry sorts before every entry of the full bucket
//! (lists keyed newest first grow at the front: customers by creation, inboxes by last
//! message), it starts a bucket of its own in front and the full bucket stays, live and
//! unchanged. Full buckets then stay full and nothing is retired, where halving would leave
//! a half-empty bucket and a retired copy behind every 32 insertions. Deciding this reads
//! the live bucket, which after a crash may hold later events than the directory; the
//! answer is the same either way: after a front split every later entry of that bucket
//! sorts below the new key, and after a halving split the bucket is retired and frozen.
//!
//! Reading a page after a cursor = the directory + the bucket holding the cursor + the
//! following ones until the page is full (1–3 bucket reads: pages hold at most 200 items,
//! buckets up to 500). The directory holds ~100 bytes per bucket, so a list of 10 million
//! entries has a directory of a few MB.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::query::{DocSource, QueryError};

/// Most entries per bucket (tiny in tests, so that splits and merges happen).
pub(crate) const BUCKET_MAX: usize = if cfg!(test) { 8 } else { 64 };
/// A bucket below this after a removal is merged with a neighbour if they fit in half.
pub(crate) const BUCKET_MIN: usize = BUCKET_MAX / 4;
/// Most entries a list keeps inline in its directory.
pub(crate) const INLINE_MAX: usize = BUCKET_MAX / 4;

/// What a list entry carries.
pub(crate) trait ListItem:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
}
impl<T: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static> ListItem for T {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: DeserializeOwned"))]
pub(crate) struct Directory<P> {
    pub(crate) list: String,
    pub(crate) total: i64,
    pub(crate) next_no: i64,
    pub(crate) buckets: Vec<BucketRef>,
    /// The entries of a list without buckets, sorted like a bucket's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) entries: Vec<ListEntry<P>>,
}

impl<P> Default for Directory<P> {
    fn default() -> Self {
        Directory {
            list: String::new(),
            total: 0,
            next_no: 0,
            buckets: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl<P: ListItem> ReadDoc for Directory<P> {
    const TIER: u8 = 1;
}

// These change the directory from its own counts only (see the comment above `insert`).
impl<P> Directory<P> {
    fn is_inline(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Moves the inline entries into a new first bucket; returns its number and entries.
    fn unfold(&mut self) -> (i64, Vec<ListEntry<P>>) {
        let entries = std::mem::take(&mut self.entries);
        let no = self.take_no();
        self.buckets.push(BucketRef {
            no,
            lo: String::new(),
            count: entries.len() as i64,
        });
        (no, entries)
    }

    /// Index of the bucket for `key`; an empty list gets its first bucket, covering every
    /// key.
    fn bucket_for(&mut self, key: &str) -> usize {
        if let Some(index) = locate(self, key) {
            return index;
        }
        let no = self.take_no();
        self.buckets.push(BucketRef {
            no,
            lo: String::new(),
            count: 0,
        });
        self.buckets.len() - 1
    }

    fn take_no(&mut self) -> i64 {
        let no = self.next_no;
        self.next_no += 1;
        no
    }

    /// Puts a new bucket holding only `key` in front of the full bucket `index`; returns
    /// its number.
    fn split_front(&mut self, index: usize, key: String) -> i64 {
        let no = self.take_no();
        self.buckets.insert(
            index,
            BucketRef {
                no,
                lo: key,
                count: 1,
            },
        );
        no
    }

    /// Replaces bucket `index` by two new buckets holding the halves of `entries`; returns
    /// their numbers with their entries.
    fn split_halves(
        &mut self,
        index: usize,
        mut entries: Vec<ListEntry<P>>,
    ) -> [(i64, Vec<ListEntry<P>>); 2] {
        let lower = entries.split_off(entries.len() / 2);
        let upper_lo = entries.last().map(|e| e.key.clone()).unwrap_or_default();
        let (upper_no, lower_no) = (self.take_no(), self.take_no());
        let refs = [
            BucketRef {
                no: upper_no,
                lo: upper_lo,
                count: entries.len() as i64,
            },
            BucketRef {
                no: lower_no,
                lo: self.buckets[index].lo.clone(),
                count: lower.len() as i64,
            },
        ];
        self.buckets.splice(index..=index, refs);
        [(upper_no, entries), (lower_no, lower)]
    }

    /// Drops emptied bucket `index`; its range joins the neighbours'. Only the last
    /// bucket's range must be handed on explicitly (to the one before it).
    fn drop_bucket(&mut self, index: usize) {
        self.buckets.remove(index);
        if index == self.buckets.len() {
            if let Some(last) = self.buckets.last_mut() {
                last.lo = String::new();
            }
        }
    }

    /// Replaces buckets `upper..=lower` by one new bucket of `count` entries; returns its
    /// number.
    fn merge(&mut self, upper: usize, lower: usize, count: usize) -> i64 {
        let no = self.take_no();
        let merged = BucketRef {
            no,
            lo: self.buckets[lower].lo.clone(),
            count: count as i64,
        };
        self.buckets.splice(upper..=lower, [merged]);
        no
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BucketRef {
    pub(crate) no: i64,
    pub(crate) lo: String,
    pub(crate) count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: DeserializeOwned"))]
pub(crate) struct Bucket<P> {
    pub(crate) list: String,
    pub(crate) no: i64,
    pub(crate) entries: Vec<ListEntry<P>>,
}

impl<P> Default for Bucket<P> {
    fn default() -> Self {
        Bucket {
            list: String::new(),
            no: 0,
            entries: Vec::new(),
        }
    }
}

impl<P: ListItem> ReadDoc for Bucket<P> {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListEntry<P> {
    pub(crate) key: String,
    pub(crate) item: P,
}

/// Where one model keeps its lists.
#[derive(Debug, Clone)]
pub(crate) struct ListStore {
    pub(crate) dirs: String,
    pub(crate) buckets: String,
}

/// One list membership of an item: which list, under which sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Membership {
    pub(crate) list: String,
    pub(crate) key: String,
}

pub(crate) fn bucket_id(list: &str, no: i64) -> String {
    format!("{list}#{no}")
}

/// Index of the bucket whose range holds `key` (buckets sorted by `lo` descending).
fn locate<P>(dir: &Directory<P>, key: &str) -> Option<usize> {
    dir.buckets.iter().position(|b| b.lo.as_str() <= key)
}

/// Where `key` is or would go in `entries` (sorted by key descending).
fn search<P>(entries: &[ListEntry<P>], key: &str) -> Result<usize, usize> {
    entries.binary_search_by(|e| key.cmp(e.key.as_str()))
}

/// Inserts into `entries`, replacing an entry with the same key.
fn insert_sorted<P>(entries: &mut Vec<ListEntry<P>>, key: String, item: P) {
    match search(entries, &key) {
        Ok(i) => entries[i].item = item,
        Err(i) => entries.insert(i, ListEntry { key, item }),
    }
}

/// Gives the entry with `key` its new item; false when there is none.
fn replace_sorted<P>(entries: &mut [ListEntry<P>], key: &str, item: P) -> bool {
    let found = search(entries, key);
    if let Ok(i) = found {
        entries[i].item = item;
    }
    found.is_ok()
}

/// Removes the entry with `key`; false when there is none.
fn remove_sorted<P>(entries: &mut Vec<ListEntry<P>>, key: &str) -> bool {
    let found = search(entries, key);
    if let Ok(i) = found {
        entries.remove(i);
    }
    found.is_ok()
}

impl ListStore {
    /// Brings an item's memberships from `old` to `new` (each with its payload): removes it
    /// from lists it left or where its key changed, inserts it where it arrived, and
    /// replaces the payload where it stayed.
    pub(crate) async fn sync<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        old: &[Membership],
        new: &[(Membership, P)],
    ) -> Result<(), LoadError> {
        for gone in old.iter().filter(|m| !new.iter().any(|(n, _)| n == *m)) {
            self.remove::<P>(cache, loader, position, &gone.list, &gone.key)
                .await?;
        }
        for (membership, item) in new {
            if old.contains(membership) {
                self.replace(cache, loader, position, membership, item.clone())
                    .await?;
            } else {
                self.insert(cache, loader, position, membership, item.clone())
                    .await?;
            }
        }
        Ok(())
    }

    async fn directory<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        list: &str,
    ) -> Result<Directory<P>, LoadError> {
        let dir = cache
            .get_cloned::<Directory<P>>(loader, &self.dirs, list)
            .await?;
        Ok(dir.unwrap_or_else(|| Directory {
            list: list.to_owned(),
            ..Directory::default()
        }))
    }

    async fn bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        list: &str,
        no: i64,
    ) -> Result<Vec<ListEntry<P>>, LoadError> {
        let id = bucket_id(list, no);
        let bucket = cache
            .get_cloned::<Bucket<P>>(loader, &self.buckets, &id)
            .await?;
        Ok(bucket.map(|b| b.entries).unwrap_or_default())
    }

    async fn write_bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        list: &str,
        no: i64,
        entries: Vec<ListEntry<P>>,
    ) -> Result<(), LoadError> {
        let id = bucket_id(list, no);
        cache
            .update::<Bucket<P>>(loader, &self.buckets, &id, position, |b| {
                b.list = list.to_owned();
                b.no = no;
                b.entries = entries;
            })
            .await?;
        Ok(())
    }

    async fn write_directory<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        dir: Directory<P>,
    ) -> Result<(), LoadError> {
        let id = dir.list.clone();
        cache
            .update::<Directory<P>>(loader, &self.dirs, &id, position, |d| *d = dir)
            .await?;
        Ok(())
    }

    /// Changes a bucket in place (guarded like every document change).
    async fn edit_bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        list: &str,
        no: i64,
        change: impl FnOnce(&mut Vec<ListEntry<P>>),
    ) -> Result<(), LoadError> {
        let id = bucket_id(list, no);
        cache
            .update::<Bucket<P>>(loader, &self.buckets, &id, position, |b| {
                b.list = list.to_owned();
                b.no = no;
                change(&mut b.entries);
            })
            .await?;
        Ok(())
    }

    // Directory changes below are computed from the directory's own counts only, never
    // from bucket contents: after a crash a bucket may already hold this event while its
    // directory does not. Bucket contents are read only to split or merge: a retired bucket
    // never changes again, so what is read is exact, and the one decision taken from a live
    // bucket (a front split) comes out the same whatever later events it holds.

    async fn insert<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        membership: &Membership,
        item: P,
    ) -> Result<(), LoadError> {
        let list = membership.list.as_str();
        let key = membership.key.clone();
        let mut dir = self.directory::<P>(cache, loader, list).await?;
        if dir.is_inline() {
            insert_sorted(&mut dir.entries, key, item);
            dir.total = dir.entries.len() as i64;
            if dir.entries.len() > INLINE_MAX {
                let (no, entries) = dir.unfold();
                self.write_bucket(cache, loader, position, list, no, entries)
                    .await?;
            }
            return self.write_directory(cache, loader, position, dir).await;
        }
        let index = dir.bucket_for(&key);
        dir.total += 1;
        let no = dir.buckets[index].no;
        let count = dir.buckets[index].count + 1;
        if count as usize <= BUCKET_MAX {
            dir.buckets[index].count = count;
            self.edit_bucket::<P>(cache, loader, position, list, no, |entries| {
                insert_sorted(entries, key, item);
            })
            .await?;
            return self.write_directory(cache, loader, position, dir).await;
        }
        let mut entries = self.bucket::<P>(cache, loader, list, no).await?;
        // A front split (see the module documentation). An empty bucket the directory counts
        // as full can only be one that later events of a front split emptied.
        if entries.first().is_none_or(|first| key > first.key) {
            let front_no = dir.split_front(index, key.clone());
            let front = vec![ListEntry { key, item }];
            self.write_bucket(cache, loader, position, list, front_no, front)
                .await?;
        } else {
            // Split into two new buckets; the full one is retired untouched.
            insert_sorted(&mut entries, key, item);
            for (no, half) in dir.split_halves(index, entries) {
                self.write_bucket(cache, loader, position, list, no, half)
                    .await?;
            }
        }
        self.write_directory(cache, loader, position, dir).await
    }

    async fn replace<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        membership: &Membership,
        item: P,
    ) -> Result<(), LoadError> {
        let key = membership.key.as_str();
        let mut dir = self.directory::<P>(cache, loader, &membership.list).await?;
        if dir.is_inline() {
            if !replace_sorted(&mut dir.entries, key, item) {
                return Ok(());
            }
            return self.write_directory(cache, loader, position, dir).await;
        }
        let Some(index) = locate(&dir, key) else {
            return Ok(());
        };
        let no = dir.buckets[index].no;
        self.edit_bucket::<P>(cache, loader, position, &membership.list, no, |entries| {
            replace_sorted(entries, key, item);
        })
        .await
    }

    async fn remove<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        list: &str,
        key: &str,
    ) -> Result<(), LoadError> {
        let mut dir = self.directory::<P>(cache, loader, list).await?;
        if dir.is_inline() {
            if !remove_sorted(&mut dir.entries, key) {
                return Ok(());
            }
            dir.total = dir.entries.len() as i64;
            return self.write_directory(cache, loader, position, dir).await;
        }
        let Some(index) = locate(&dir, key) else {
            return Ok(());
        };
        let no = dir.buckets[index].no;
        let count = (dir.buckets[index].count - 1).max(0);
        dir.total = (dir.total - 1).max(0);
        let without = |entries: &mut Vec<ListEntry<P>>| {
            remove_sorted(entries, key);
        };
        if count == 0 {
            self.edit_bucket::<P>(cache, loader, position, list, no, without)
                .await?;
            dir.drop_bucket(index);
            return self.write_directory(cache, loader, position, dir).await;
        }
        dir.buckets[index].count = count;
        if let Some(neighbour) = merge_partner(&dir, index) {
            let (upper, lower) = (index.min(neighbour), index.max(neighbour));
            let mut merged: Vec<ListEntry<P>> = Vec::new();
            for i in [upper, lower] {
                let mut entries = self
                    .bucket::<P>(cache, loader, list, dir.buckets[i].no)
                    .await?;
                if i == index {
                    without(&mut entries);
                }
                merged.extend(entries);
            }
            let merged_no = dir.merge(upper, lower, merged.len());
            self.write_bucket(cache, loader, position, list, merged_no, merged)
                .await?;
        } else {
            self.edit_bucket::<P>(cache, loader, position, list, no, without)
                .await?;
        }
        self.write_directory(cache, loader, position, dir).await
    }
}

/// The neighbour to merge bucket `index` with, when it has fallen below [`BUCKET_MIN`] and
/// both fit in half a bucket (the lower neighbour preferred).
fn merge_partner<P>(dir: &Directory<P>, index: usize) -> Option<usize> {
    let count = dir.buckets.get(index)?.count as usize;
    if count >= BUCKET_MIN {
        return None;
    }
    let fits = |i: usize| {
        dir.buckets
            .get(i)
            .is_some_and(|b| b.count as usize + count <= BUCKET_MAX / 2)
    };
    if fits(index + 1) {
        Some(index + 1)
    } else if index > 0 && fits(index - 1) {
        Some(index - 1)
    } else {
        None
    }
}

/// A page read from a list.
#[derive(Debug, Clone)]
pub(crate) struct ListPage<P> {
    pub(crate) items: Vec<ListEntry<P>>,
    /// Key of the last item (or last scanned entry) when more may follow.
    pub(crate) next: Option<String>,
    /// Entries in the whole list (whatever the bounds and filter).
    pub(crate) total: Option<u64>,
}

/// How to read a page: entries with keys strictly below `before` (all if `None`) and at or
/// above `floor`, kept by `keep`, scanning at most `budget` entries.
pub(crate) struct PageSpec<'a, P> {
    pub(crate) before: Option<String>,
    pub(crate) floor: Option<String>,
    pub(crate) limit: usize,
    pub(crate) keep: &'a (dyn Fn(&P) -> bool + Sync),
    pub(crate) budget: usize,
}

/// Reads one page of `list` from the documents in `dirs`/`buckets`.
pub(crate) async fn read_page<P: ListItem>(
    src: &impl DocSource,
    dirs: &str,
    buckets: &str,
    list: &str,
    spec: PageSpec<'_, P>,
) -> Result<ListPage<P>, QueryError> {
    let Some(dir) = crate::query::read::<Directory<P>>(src, dirs, list).await? else {
        return Ok(ListPage {
            items: Vec::new(),
            next: None,
            total: Some(0),
        });
    };
    let total = Some(u64::try_from(dir.total).unwrap_or(0));
    let start = first_bucket_before(&dir, spec.before.as_deref());
    let mut scan = PageScan {
        spec: &spec,
        items: Vec::new(),
        scanned: 0,
        last_scanned: None,
    };
    for entry in dir.entries {
        if let Scanned::PageEnds { next } = scan.offer(entry) {
            return Ok(ListPage {
                items: scan.items,
                next,
                total,
            });
        }
    }
    for bucket_ref in &dir.buckets[start..] {
        let id = bucket_id(list, bucket_ref.no);
        let Some(bucket) = crate::query::read::<Bucket<P>>(src, buckets, &id).await? else {
            continue;
        };
        for entry in bucket.entries {
            if let Scanned::PageEnds { next } = scan.offer(entry) {
                return Ok(ListPage {
                    items: scan.items,
                    next,
                    total,
                });
            }
        }
    }
    Ok(ListPage {
        items: scan.items,
        next: None,
        total,
    })
}

/// The bucket holding the largest key below `before`: the one whose range holds `before`,
/// unless `before` is its lowest possible key (then the next one).
fn first_bucket_before<P>(dir: &Directory<P>, before: Option<&str>) -> usize {
    match before {
        Some(before) => dir
            .buckets
            .iter()
            .position(|b| b.lo.as_str() < before)
            .unwrap_or(dir.buckets.len()),
        None => 0,
    }
}

/// A page being gathered, entry by entry in key order.
struct PageScan<'a, 'k, P> {
    spec: &'a PageSpec<'k, P>,
    items: Vec<ListEntry<P>>,
    scanned: usize,
    last_scanned: Option<String>,
}

enum Scanned {
    More,
    /// The page is complete; `next` is the cursor to continue after it.
    PageEnds {
        next: Option<String>,
    },
}

impl<P> PageScan<'_, '_, P> {
    fn offer(&mut self, entry: ListEntry<P>) -> Scanned {
        let spec = self.spec;
        if spec
            .before
            .as_deref()
            .is_some_and(|before| entry.key.as_str() >= before)
        {
            return Scanned::More;
        }
        if spec
            .floor
            .as_deref()
            .is_some_and(|floor| entry.key.as_str() < floor)
        {
            return Scanned::PageEnds { next: None };
        }
        if self.items.len() == spec.limit {
            let next = self.items.last().map(|e| e.key.clone());
            return Scanned::PageEnds { next };
        }
        if self.scanned == spec.budget {
            let next = self.last_scanned.take();
            return Scanned::PageEnds { next };
        }
        self.scanned += 1;
        self.last_scanned = Some(entry.key.clone());
        if (spec.keep)(&entry.item) {
            self.items.push(entry);
        }
        Scanned::More
    }
}
