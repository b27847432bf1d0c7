//! Ordered lists paged by keyset without scans: one directory document per list, bucket
//! documents holding sorted runs of entries, and for long lists segment documents between
//! the two.
//!
//! A list is named by a key string (`customers|status=active`, `inbox|<user>|all`, …). Each
//! entry has a sort key (a string; lists are ordered by it **descending**, and the models
//! build keys such as `<created_at>|<id>` so that this is newest first) and a payload (the
//! view item itself, so a page needs no further reads).
//!
//! Documents (collection kinds `list_dirs`, `list_segments` and `list_buckets` of the owning
//! model):
//! - directory `_id = <list>` (tier 2): `{list, total, next_no}` and one of
//!   - `entries: [{key, item}]`: a small list, inline (sorted like a bucket's);
//!   - `buckets: [{no, lo, count}]`: a list of up to [`SEGMENT_MAX`] entries, its buckets
//!     sorted by `lo` descending. Bucket `i` holds the keys in `[lo_i, lo_{i-1})` (the first
//!     has no upper bound, the last has `lo = ""`), `count` entries;
//!   - `segments: [{no, lo, count}]`: a longer list, its segments in the same order and
//!     sense, `count` the entries of each.
//! - segment `_id = <list>#<no>` (tier 1): `{list, no, next_no, buckets: [{no, lo, count}]}`,
//!   the buckets of the segment's range (its last bucket has the segment's `lo`).
//! - bucket `_id = <list>#<no>` (tier 0): `{list, no, entries: [{key, item}]}`, entries sorted
//!   by key descending, at most [`BUCKET_MAX`] of them.
//!
//! The directory numbers its segments and the buckets it names itself (`<n>`, from its
//! `next_no`); a segment numbers the buckets it makes (`<segment>.<n>`).
//!
//! Why segments: FerretDB rewrites a whole document and charges by its values, and every
//! insertion and removal rewrites the document that holds the counts. With one directory
//! holding every bucket's count, the directory of the `jobs` list held 415 bucket references
//! at the M data set and ten times as many at L, rewritten with each new job: a tenth of a
//! second a write at L. A list that outgrows one segment's worth of entries moves its
//! buckets into two segments; from then on a change rewrites the directory (a reference per
//! segment of up to [`SEGMENT_MAX`] entries), one segment (a few dozen bucket references)
//! and one bucket, each of a few hundred values. Shorter lists keep their buckets in the
//! directory, which a change rewrites anyway: two writes rather than three.
//!
//! Most lists are small (a customer's jobs, a crew member's jobs of one status), and they
//! took most of the projector's writes: inline, a change to one writes one document. An
//! insert that would take the inline entries past [`INLINE_MAX`] moves them into the list's
//! first bucket; a list goes inline again only once its last bucket is emptied.
//!
//! A bucket that would exceed [`BUCKET_MAX`] is split into two new buckets (new numbers),
//! and a bucket that falls below [`BUCKET_MIN`] after a removal is merged with a neighbour
//! named by the same document into a new bucket when the two fit in half a bucket.
//! Segments do the same with entries: past [`SEGMENT_MAX`] a segment (or the directory's
//! own buckets) is replaced by two holding half its buckets each, below [`SEGMENT_MIN`] a
//! segment is merged with a neighbour when both fit in half a segment, and an emptied one is
//! dropped. The replaced buckets and segments are left as they are and never touched again
//! (no longer referenced): their content is only ever read by the event that retires them,
//! which keeps re-applied events exact (see `cache`).
//!
//! One split is cheaper: when the new entry sorts before every entry of the full bucket
//! (lists keyed newest first grow at the front: customers by creation, inboxes by last
//! message), it starts a bucket of its own in front and the full bucket stays, live and
//! unchanged. Full buckets then stay full and nothing is retired, where halving would leave
//! a half-empty bucket and a retired copy behind every 16 insertions. Deciding this reads
//! the live bucket, which after a crash may hold later events than the document naming it;
//! the answer is the same either way: after a front split every later entry of that bucket
//! sorts below the new key, and after a halving split the bucket is retired and frozen.
//!
//! Reading a page after a cursor = the directory (+ the segment holding the cursor) + the
//! bucket holding the cursor and the following ones until the page is full (1–3 bucket
//! reads for most pages: pages hold at most 200 items, buckets up to 32), with the next
//! segment read when the page runs past the first one's last bucket.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::query::{DocSource, QueryError};

/// Most entries per bucket (tiny in tests, so that splits and merges happen). A bucket of 32
/// job summaries holds about 550 values: its rewrite, a third of what a change to a large
/// list costs, weighs about as much as the directory's and the segment's together.
pub(crate) const BUCKET_MAX: usize = if cfg!(test) { 8 } else { 32 };
/// A bucket below this after a removal is merged with a neighbour if they fit in half.
pub(crate) const BUCKET_MIN: usize = BUCKET_MAX / 4;
/// Most entries a list keeps inline in its directory.
pub(crate) const INLINE_MAX: usize = if cfg!(test) { BUCKET_MAX / 4 } else { 16 };
/// Most entries per segment (a bucket and a half in tests, so that segments split and
/// merge). Halving splits leave 512 to 1,024 entries a segment; in buckets a quarter to
/// wholly full that is 16 to 128 bucket references (64 to 512 values), and a list of a
/// million entries has a directory of 1,000 to 2,000 segment references.
pub(crate) const SEGMENT_MAX: usize = if cfg!(test) { BUCKET_MAX + 4 } else { 1024 };
/// A segment below this after a removal is merged with a neighbour if they fit in half.
pub(crate) const SEGMENT_MIN: usize = SEGMENT_MAX / 4;

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
    /// The segments of a list of more than [`SEGMENT_MAX`] entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) segments: Vec<ChildRef>,
    /// The buckets of a list that never outgrew one segment, named here directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) buckets: Vec<ChildRef>,
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
            segments: Vec::new(),
            buckets: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl<P: ListItem> ReadDoc for Directory<P> {
    const TIER: u8 = 2;
}

impl<P> Directory<P> {
    fn is_inline(&self) -> bool {
        self.segments.is_empty() && self.buckets.is_empty()
    }

    fn take_no(&mut self) -> String {
        let no = self.next_no.to_string();
        self.next_no += 1;
        no
    }

    /// A new segment, numbered by the directory.
    fn new_segment(&mut self, buckets: Vec<ChildRef>) -> Segment {
        let no = self.take_no();
        Segment {
            list: self.list.clone(),
            no,
            next_no: 0,
            buckets,
        }
    }

    /// Moves the inline entries into a new first bucket; returns its number and entries.
    fn unfold(&mut self) -> (String, Vec<ListEntry<P>>) {
        let entries = std::mem::take(&mut self.entries);
        let no = self.take_no();
        self.buckets.push(ChildRef {
            no: no.clone(),
            lo: String::new(),
            count: entries.len() as i64,
        });
        (no, entries)
    }
}

/// A segment or a bucket as the document above it names it: its number, the lowest key of
/// its range, and how many entries it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChildRef {
    /// `<n>` for a segment or a bucket the directory names, numbered by the directory;
    /// `<segment>.<n>` for a bucket a segment names, numbered by the segment that made it: a
    /// bucket is made by a decision of the document naming it, so its number must not
    /// depend on another (see the comment above `insert`).
    pub(crate) no: String,
    pub(crate) lo: String,
    pub(crate) count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Segment {
    pub(crate) list: String,
    pub(crate) no: String,
    /// Number of the next bucket this segment makes.
    pub(crate) next_no: i64,
    pub(crate) buckets: Vec<ChildRef>,
}

impl ReadDoc for Segment {
    const TIER: u8 = 1;
}

impl Segment {
    fn take_no(&mut self) -> String {
        let no = format!("{}.{}", self.no, self.next_no);
        self.next_no += 1;
        no
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: DeserializeOwned"))]
pub(crate) struct Bucket<P> {
    pub(crate) list: String,
    pub(crate) no: String,
    pub(crate) entries: Vec<ListEntry<P>>,
}

impl<P> Default for Bucket<P> {
    fn default() -> Self {
        Bucket {
            list: String::new(),
            no: String::new(),
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
    pub(crate) segments: String,
    pub(crate) buckets: String,
}

impl ListStore {
    /// The model's three collections, named by `collection(kind)`.
    pub(crate) fn named(collection: impl Fn(&str) -> String) -> Self {
        ListStore {
            dirs: collection("list_dirs"),
            segments: collection("list_segments"),
            buckets: collection("list_buckets"),
        }
    }
}

/// One list membership of an item: which list, under which sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Membership {
    pub(crate) list: String,
    pub(crate) key: String,
}

/// The `_id` of a segment or bucket of `list`.
pub(crate) fn child_id(list: &str, no: &str) -> String {
    format!("{list}#{no}")
}

/// Index of the child whose range holds `key` (children sorted by `lo` descending). The
/// last child's range reaches down to `""`, so only an empty list of children has none.
fn locate(children: &[ChildRef], key: &str) -> Option<usize> {
    children
        .iter()
        .position(|c| c.lo.as_str() <= key)
        .or_else(|| children.len().checked_sub(1))
}

/// Drops child `index`; its range joins its neighbours'. Only the last child's range must
/// be handed on explicitly (to the one before it); returns the handed-on `lo` then.
fn drop_child(children: &mut Vec<ChildRef>, index: usize) -> Option<String> {
    let removed = children.remove(index);
    if index == children.len() {
        if let Some(last) = children.last_mut() {
            last.lo = removed.lo;
            return Some(last.lo.clone());
        }
    }
    None
}

/// Replaces children `upper..=lower` by one new child numbered `no` holding `count` entries.
fn merge_children(
    children: &mut Vec<ChildRef>,
    upper: usize,
    lower: usize,
    no: String,
    count: i64,
) {
    let merged = ChildRef {
        no,
        lo: children[lower].lo.clone(),
        count,
    };
    children.splice(upper..=lower, [merged]);
}

/// The neighbour to merge child `index` with, when it has fallen below `min` and both fit
/// in `max / 2` (the lower neighbour preferred).
fn merge_partner(children: &[ChildRef], index: usize, min: usize, max: usize) -> Option<usize> {
    let count = children.get(index)?.count as usize;
    if count >= min {
        return None;
    }
    let fits = |i: usize| {
        children
            .get(i)
            .is_some_and(|c| c.count as usize + count <= max / 2)
    };
    if fits(index + 1) {
        Some(index + 1)
    } else if index > 0 && fits(index - 1) {
        Some(index - 1)
    } else {
        None
    }
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

/// One list's directory and the bucket references an operation works in, a segment's or
/// the directory's own, both as this event leaves them so far.
struct Path<P> {
    dir: Directory<P>,
    /// Index of the segment in `dir.segments`; `None` for the directory's own buckets.
    at: Option<usize>,
    /// The segment (for the directory's own buckets, a stand-in holding them).
    segment: Segment,
}

impl<P> Path<P> {
    /// The entries under the bucket references of this path, as the directory counts them.
    fn count(&self) -> i64 {
        match self.at {
            Some(at) => self.dir.segments[at].count,
            None => self.dir.total,
        }
    }

    /// Counts one entry more or less under this path.
    fn add(&mut self, delta: i64) {
        self.dir.total = (self.dir.total + delta).max(0);
        if let Some(at) = self.at {
            let segment = &mut self.dir.segments[at];
            segment.count = (segment.count + delta).max(0);
        }
    }

    /// The lowest key of this path's range.
    fn lo(&self) -> String {
        self.at
            .map(|at| self.dir.segments[at].lo.clone())
            .unwrap_or_default()
    }

    /// A number for a new bucket, from the document that will name it.
    fn take_bucket_no(&mut self) -> String {
        match self.at {
            Some(_) => self.segment.take_no(),
            None => self.dir.take_no(),
        }
    }
}

// Structure is decided from counts one level up, never from the contents of the level being
// changed: the directory's counts decide which segment a key goes to and when a segment
// splits, merges or is dropped; the counts of the document naming buckets (a segment, or the
// directory) decide the same of its buckets, and that document numbers the buckets it makes. After a crash a segment or bucket may already hold
// this event (or later ones) while the document above it does not, and the tiers make sure
// that nothing above is changed from what such a document holds (see `cache`). Contents are
// read only to split or merge, from documents this very event retires (frozen, so what is
// read is exact), and for the front split (see the module documentation).
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

    async fn segment(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        list: &str,
        no: &str,
    ) -> Result<Segment, LoadError> {
        let id = child_id(list, no);
        let segment = cache
            .get_cloned::<Segment>(loader, &self.segments, &id)
            .await?;
        Ok(segment.unwrap_or_else(|| Segment {
            list: list.to_owned(),
            no: no.to_owned(),
            ..Segment::default()
        }))
    }

    /// Where `key`'s bucket is named in a list that is not inline: the directory's own
    /// buckets, or the segment holding `key`'s range.
    async fn path<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        mut dir: Directory<P>,
        key: &str,
    ) -> Result<Path<P>, LoadError> {
        let Some(at) = locate(&dir.segments, key) else {
            let segment = Segment {
                list: dir.list.clone(),
                buckets: std::mem::take(&mut dir.buckets),
                ..Segment::default()
            };
            return Ok(Path {
                dir,
                at: None,
                segment,
            });
        };
        let segment = self
            .segment(cache, loader, &dir.list, &dir.segments[at].no)
            .await?;
        Ok(Path {
            dir,
            at: Some(at),
            segment,
        })
    }

    async fn bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        list: &str,
        no: &str,
    ) -> Result<Vec<ListEntry<P>>, LoadError> {
        let id = child_id(list, no);
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
        no: &str,
        entries: Vec<ListEntry<P>>,
    ) -> Result<(), LoadError> {
        self.edit_bucket::<P>(cache, loader, position, list, no, |e| *e = entries)
            .await
    }

    /// Changes a bucket in place (guarded like every document change).
    async fn edit_bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        list: &str,
        no: &str,
        change: impl FnOnce(&mut Vec<ListEntry<P>>),
    ) -> Result<(), LoadError> {
        let id = child_id(list, no);
        cache
            .update::<Bucket<P>>(loader, &self.buckets, &id, position, |b| {
                b.list = list.to_owned();
                b.no = no.to_owned();
                change(&mut b.entries);
            })
            .await?;
        Ok(())
    }

    /// Changes a segment in place (guarded like every document change).
    async fn edit_segment(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        list: &str,
        no: &str,
        change: impl FnOnce(&mut Segment),
    ) -> Result<(), LoadError> {
        let id = child_id(list, no);
        cache
            .update::<Segment>(loader, &self.segments, &id, position, |s| {
                s.list = list.to_owned();
                s.no = no.to_owned();
                change(s);
            })
            .await?;
        Ok(())
    }

    async fn write_segment(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        segment: Segment,
    ) -> Result<(), LoadError> {
        let (list, no) = (segment.list.clone(), segment.no.clone());
        self.edit_segment(cache, loader, position, &list, &no, |s| *s = segment)
            .await
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
                self.write_bucket(cache, loader, position, list, &no, entries)
                    .await?;
            }
            return self.write_directory(cache, loader, position, dir).await;
        }
        let mut path = self.path(cache, loader, dir, &key).await?;
        path.add(1);
        let index = match locate(&path.segment.buckets, &key) {
            Some(index) => index,
            // Never so in a segment the directory names; kept whole rather than panicking.
            None => {
                let no = path.take_bucket_no();
                let lo = path.lo();
                path.segment.buckets.push(ChildRef { no, lo, count: 0 });
                0
            }
        };
        let no = path.segment.buckets[index].no.clone();
        let count = path.segment.buckets[index].count + 1;
        if count as usize <= BUCKET_MAX {
            path.segment.buckets[index].count = count;
            self.edit_bucket::<P>(cache, loader, position, list, &no, |entries| {
                insert_sorted(entries, key, item);
            })
            .await?;
        } else {
            self.split_bucket(cache, loader, position, &mut path, index, key, item)
                .await?;
        }
        self.finish_segment(cache, loader, position, &mut path)
            .await?;
        self.write_directory(cache, loader, position, path.dir)
            .await
    }

    /// Makes room for `key` in the full bucket `index` of `path`: a front split or two new
    /// halves.
    #[allow(clippy::too_many_arguments)]
    async fn split_bucket<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        path: &mut Path<P>,
        index: usize,
        key: String,
        item: P,
    ) -> Result<(), LoadError> {
        let list = path.dir.list.clone();
        let full = path.segment.buckets[index].clone();
        let mut entries = self.bucket::<P>(cache, loader, &list, &full.no).await?;
        // A front split (see the module documentation). An empty bucket its segment counts
        // as full can only be one that later events of a front split emptied.
        if entries.first().is_none_or(|first| key > first.key) {
            let no = path.take_bucket_no();
            path.segment.buckets.insert(
                index,
                ChildRef {
                    no: no.clone(),
                    lo: key.clone(),
                    count: 1,
                },
            );
            let front = vec![ListEntry { key, item }];
            return self
                .write_bucket(cache, loader, position, &list, &no, front)
                .await;
        }
        // Two new buckets; the full one is retired untouched.
        insert_sorted(&mut entries, key, item);
        let lower = entries.split_off(entries.len() / 2);
        let upper_lo = entries.last().map(|e| e.key.clone()).unwrap_or_default();
        let (upper_no, lower_no) = (path.take_bucket_no(), path.take_bucket_no());
        let refs = [
            ChildRef {
                no: upper_no.clone(),
                lo: upper_lo,
                count: entries.len() as i64,
            },
            ChildRef {
                no: lower_no.clone(),
                lo: full.lo,
                count: lower.len() as i64,
            },
        ];
        path.segment.buckets.splice(index..=index, refs);
        self.write_bucket(cache, loader, position, &list, &upper_no, entries)
            .await?;
        self.write_bucket(cache, loader, position, &list, &lower_no, lower)
            .await
    }

    /// Keeps the bucket references of `path` as this event left them, or, when the
    /// directory's count says they hold too many entries, moves them into two new segments
    /// holding half the entries each (retiring their segment).
    async fn finish_segment<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        path: &mut Path<P>,
    ) -> Result<(), LoadError> {
        let mut segment = std::mem::take(&mut path.segment);
        let count = path.count();
        if count as usize <= SEGMENT_MAX || segment.buckets.len() < 2 {
            return match path.at {
                Some(_) => self.write_segment(cache, loader, position, segment).await,
                None => {
                    path.dir.buckets = segment.buckets;
                    Ok(())
                }
            };
        }
        let half = count / 2;
        let mut upper_count = 0;
        let mut cut = 0;
        for bucket in &segment.buckets[..segment.buckets.len() - 1] {
            if cut > 0 && upper_count + bucket.count > half {
                break;
            }
            upper_count += bucket.count;
            cut += 1;
        }
        let lower_buckets = segment.buckets.split_off(cut);
        let upper_lo = segment
            .buckets
            .last()
            .map(|b| b.lo.clone())
            .unwrap_or_default();
        let lo = path.lo();
        let upper = path.dir.new_segment(segment.buckets);
        let lower = path.dir.new_segment(lower_buckets);
        let refs = [
            ChildRef {
                no: upper.no.clone(),
                lo: upper_lo,
                count: upper_count,
            },
            ChildRef {
                no: lower.no.clone(),
                lo,
                count: count - upper_count,
            },
        ];
        match path.at {
            Some(at) => {
                path.dir.segments.splice(at..=at, refs);
            }
            None => path.dir.segments = refs.to_vec(),
        }
        self.write_segment(cache, loader, position, upper).await?;
        self.write_segment(cache, loader, position, lower).await
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
        let path = self.path(cache, loader, dir, key).await?;
        let Some(index) = locate(&path.segment.buckets, key) else {
            return Ok(());
        };
        let no = &path.segment.buckets[index].no;
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
        let mut path = self.path(cache, loader, dir, key).await?;
        let Some(index) = locate(&path.segment.buckets, key) else {
            return Ok(());
        };
        path.add(-1);
        let no = path.segment.buckets[index].no.clone();
        let count = (path.segment.buckets[index].count - 1).max(0);
        let without = |entries: &mut Vec<ListEntry<P>>| {
            remove_sorted(entries, key);
        };
        if count == 0 {
            self.edit_bucket::<P>(cache, loader, position, list, &no, without)
                .await?;
            drop_child(&mut path.segment.buckets, index);
        } else if let Some(neighbour) = {
            path.segment.buckets[index].count = count;
            merge_partner(&path.segment.buckets, index, BUCKET_MIN, BUCKET_MAX)
        } {
            // Both retired for one new bucket.
            let (upper, lower) = (index.min(neighbour), index.max(neighbour));
            let mut merged: Vec<ListEntry<P>> = Vec::new();
            for i in [upper, lower] {
                let no = path.segment.buckets[i].no.clone();
                let mut entries = self.bucket::<P>(cache, loader, list, &no).await?;
                if i == index {
                    without(&mut entries);
                }
                merged.extend(entries);
            }
            let merged_no = path.take_bucket_no();
            let count = merged.len() as i64;
            merge_children(
                &mut path.segment.buckets,
                upper,
                lower,
                merged_no.clone(),
                count,
            );
            self.write_bucket(cache, loader, position, list, &merged_no, merged)
                .await?;
        } else {
            self.edit_bucket::<P>(cache, loader, position, list, &no, without)
                .await?;
        }
        self.shrink_segment(cache, loader, position, &mut path)
            .await?;
        self.write_directory(cache, loader, position, path.dir)
            .await
    }

    /// After a removal: drops the segment of `path` once the directory counts it empty,
    /// merges it with a neighbour once small, or writes it as this event left it (the
    /// directory's own buckets go back into it).
    async fn shrink_segment<P: ListItem>(
        &self,
        cache: &mut DocCache,
        loader: &impl DocLoader,
        position: u64,
        path: &mut Path<P>,
    ) -> Result<(), LoadError> {
        let list = path.dir.list.clone();
        let segment = std::mem::take(&mut path.segment);
        let Some(at) = path.at else {
            path.dir.buckets = segment.buckets;
            return Ok(());
        };
        if path.dir.segments[at].count == 0 {
            // Retired with its last bucket gone. A last segment hands its range on to the
            // one before it, and so to that one's last bucket.
            if let Some(lo) = drop_child(&mut path.dir.segments, at) {
                let before = path.dir.segments[at - 1].no.clone();
                self.edit_segment(cache, loader, position, &list, &before, |s| {
                    if let Some(last) = s.buckets.last_mut() {
                        last.lo = lo;
                    }
                })
                .await?;
            }
            return Ok(());
        }
        let Some(neighbour) = merge_partner(&path.dir.segments, at, SEGMENT_MIN, SEGMENT_MAX)
        else {
            return self.write_segment(cache, loader, position, segment).await;
        };
        // Both retired for one new segment holding the buckets of both.
        let (upper, lower) = (at.min(neighbour), at.max(neighbour));
        let other = self
            .segment(cache, loader, &list, &path.dir.segments[neighbour].no)
            .await?;
        let buckets = if at == upper {
            [segment.buckets, other.buckets].concat()
        } else {
            [other.buckets, segment.buckets].concat()
        };
        let count = path.dir.segments[upper].count + path.dir.segments[lower].count;
        let merged = path.dir.new_segment(buckets);
        merge_children(
            &mut path.dir.segments,
            upper,
            lower,
            merged.no.clone(),
            count,
        );
        self.write_segment(cache, loader, position, merged).await
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

/// Reads one page of `list` from the documents of `store`.
pub(crate) async fn read_page<P: ListItem>(
    src: &impl DocSource,
    store: &ListStore,
    list: &str,
    spec: PageSpec<'_, P>,
) -> Result<ListPage<P>, QueryError> {
    let Some(dir) = crate::query::read::<Directory<P>>(src, &store.dirs, list).await? else {
        return Ok(ListPage {
            items: Vec::new(),
            next: None,
            total: Some(0),
        });
    };
    let total = Some(u64::try_from(dir.total).unwrap_or(0));
    let before = spec.before.clone();
    let mut scan = PageScan {
        spec: &spec,
        items: Vec::new(),
        scanned: 0,
        last_scanned: None,
    };
    let page = |scan: PageScan<'_, '_, P>, next| ListPage {
        items: scan.items,
        next,
        total,
    };
    for entry in dir.entries {
        if let Scanned::PageEnds { next } = scan.offer(entry) {
            return Ok(page(scan, next));
        }
    }
    let own_buckets = &dir.buckets[first_before(&dir.buckets, before.as_deref())..];
    if let Some(next) = scan_buckets(src, store, list, own_buckets, &mut scan).await? {
        return Ok(page(scan, next));
    }
    let first_segment = first_before(&dir.segments, before.as_deref());
    for (n, segment_ref) in dir.segments[first_segment..].iter().enumerate() {
        let id = child_id(list, &segment_ref.no);
        let Some(segment) = crate::query::read::<Segment>(src, &store.segments, &id).await? else {
            continue;
        };
        // Only the first segment read can hold keys at or above `before`.
        let first_bucket = if n == 0 {
            first_before(&segment.buckets, before.as_deref())
        } else {
            0
        };
        let buckets = &segment.buckets[first_bucket..];
        if let Some(next) = scan_buckets(src, store, list, buckets, &mut scan).await? {
            return Ok(page(scan, next));
        }
    }
    Ok(page(scan, None))
}

/// Offers the entries of the buckets `refs` to `scan`, in order; `Some(next)` once the page
/// is complete.
async fn scan_buckets<P: ListItem>(
    src: &impl DocSource,
    store: &ListStore,
    list: &str,
    refs: &[ChildRef],
    scan: &mut PageScan<'_, '_, P>,
) -> Result<Option<Option<String>>, QueryError> {
    for bucket_ref in refs {
        let id = child_id(list, &bucket_ref.no);
        let Some(bucket) = crate::query::read::<Bucket<P>>(src, &store.buckets, &id).await? else {
            continue;
        };
        for entry in bucket.entries {
            if let Scanned::PageEnds { next } = scan.offer(entry) {
                return Ok(Some(next));
            }
        }
    }
    Ok(None)
}

/// The child holding the largest key below `before`: the one whose range holds `before`,
/// unless `before` is its lowest possible key (then the next one).
fn first_before(children: &[ChildRef], before: Option<&str>) -> usize {
    match before {
        Some(before) => children
            .iter()
            .position(|c| c.lo.as_str() < before)
            .unwrap_or(children.len()),
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
