//! `graspd check --data-dir <dir>`: an integrity pass over a data directory, for
//! operators to run with graspd stopped, before and after an upgrade.
//!
//! It changes nothing (opening the journal and the store does what graspd's start does:
//! an empty journal transaction, and a newer build may migrate the store's format): the
//! journal must decode record by record (the reader
//! graspd starts with), every repository on disk must be named by an announcement
//! (stored, or waiting in the journal), the newest stored state of each repository's
//! maintainers (the owner and the keys its stored announcement lists) must be what its
//! branches and tags point at, with the objects present, and nothing else may lie in
//! the directory: quarantines of unfinished pushes, temporary packs of unfinished
//! fetches, git lock files, stray files. The maintainers are worked out from the stored
//! announcements under `--maintainer-model`, by a simpler rule than the engine's (role
//! tags are not read): `listed`, every key reachable through `maintainers` listings;
//! `reciprocal`, a listed key once its own announcement lists a maintainer already
//! counted. Where the two rules disagree, a repository is reported that the engine
//! aligned correctly: a line worth a look, not proof of damage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use grasp_core::{JournalRecord, MaintainerModel, is_branch_or_tag, npub};
use nostr::prelude::{Event, Filter, Kind, PublicKey};

use crate::driver::Journal;
use crate::repo::RepoPath;
use crate::store::Store;

/// The data directory's entries graspd writes; anything else is stray.
const KNOWN_ENTRIES: [&str; 3] = ["events", "repos", "journal.redb"];

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    /// What was checked, one line each.
    pub checked: Vec<String>,
    /// What is wrong, one line each; empty when all is well.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.checked {
            writeln!(f, "  {line}")?;
        }
        if self.problems.is_empty() {
            return writeln!(f, "no problems found");
        }
        writeln!(f, "{} problem(s):", self.problems.len())?;
        for line in &self.problems {
            writeln!(f, "  - {line}")?;
        }
        Ok(())
    }
}

/// Checks the data directory `data`, whose graspd runs the maintainer model `model`;
/// `Err` only when it cannot be read at all.
pub async fn run(data: &Path, model: MaintainerModel) -> Result<Report, String> {
    if !data.is_dir() {
        return Err(format!("{} is not a directory", data.display()));
    }
    let mut report = Report::default();
    let waiting = check_journal(data, &mut report);
    let stored = check_store(data, &mut report).await;
    let repos = list_repos(data, &mut report);
    report
        .checked
        .push(format!("repos: {} on disk", repos.len()));
    if waiting.is_none() {
        report.checked.push(
            "repos without announcements: not checked (the journal, which names the \
             waiting ones, is unreadable)"
                .into(),
        );
    }
    for (path, dir) in &repos {
        check_repo(
            path,
            dir,
            stored.as_ref(),
            waiting.as_ref(),
            model,
            &mut report,
        );
    }
    stray_entries(data, &mut report);
    Ok(report)
}

/// Announcements `(owner, d)` waiting in the journal; `None` when it cannot be read.
type Waiting = BTreeSet<(PublicKey, String)>;

fn check_journal(data: &Path, report: &mut Report) -> Option<Waiting> {
    let path = data.join("journal.redb");
    if !path.exists() {
        report
            .checked
            .push("journal: none (nothing has waited yet)".into());
        return Some(Waiting::new());
    }
    let journal = match Journal::open(&path) {
        Ok(journal) => journal,
        Err(e) => {
            report.problems.push(format!(
                "journal: cannot open {} ({e}); if graspd is running, stop it first",
                path.display()
            ));
            return None;
        }
    };
    let mut waiting = Waiting::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let visited = journal.for_each(|record| {
        let kind = match &record {
            JournalRecord::Waiting { event, .. } => {
                if event.kind == Kind::GitRepoAnnouncement {
                    if let Some(d) = event.tags.identifier() {
                        waiting.insert((event.pubkey, d.to_owned()));
                    }
                }
                "waiting events"
            }
            JournalRecord::Placeholder { .. } => "placeholders",
            JournalRecord::Expired { .. } => "expiry memories",
            JournalRecord::DomainWindow { .. } => "domain windows",
            JournalRecord::PeerCheckpoint { .. } => "peer checkpoints",
            JournalRecord::PeerNaughty { .. } => "naughty peers",
        };
        *kinds.entry(kind).or_default() += 1;
    });
    match visited {
        Ok(n) => {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            report.checked.push(format!(
                "journal: {n} records readable ({})",
                if parts.is_empty() {
                    "empty".to_owned()
                } else {
                    parts.join(", ")
                }
            ));
            Some(waiting)
        }
        Err(e) => {
            report
                .problems
                .push(format!("{e} (graspd will refuse to start on it)"));
            None
        }
    }
}

/// The stored announcements and states.
struct Stored {
    announcements: BTreeMap<(PublicKey, String), Event>,
    states: Vec<Event>,
}

async fn check_store(data: &Path, report: &mut Report) -> Option<Stored> {
    let dir = data.join("events");
    if !dir.is_dir() {
        report.checked.push("events: no store yet".into());
        return Some(Stored {
            announcements: BTreeMap::new(),
            states: Vec::new(),
        });
    }
    let read = async {
        let store = Store::open(&dir).await.map_err(|e| e.to_string())?;
        let announcements = store
            .query(Filter::new().kind(Kind::GitRepoAnnouncement))
            .await
            .map_err(|e| e.to_string())?;
        let states = store
            .query(Filter::new().kind(Kind::RepoState))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((announcements, states))
    };
    match read.await {
        Ok((announcements, states)) => {
            report.checked.push(format!(
                "events: {} announcements and {} states stored",
                announcements.len(),
                states.len()
            ));
            let announcements = announcements
                .into_iter()
                .filter_map(|e| Some(((e.pubkey, e.tags.identifier()?.to_owned()), e)))
                .collect();
            Some(Stored {
                announcements,
                states,
            })
        }
        Err(e) => {
            report.problems.push(format!(
                "events: cannot read the store in {}: {e}",
                dir.display()
            ));
            None
        }
    }
}

/// Every `repos/<npub>/<d>.git` directory; anything else under `repos/` is reported.
fn list_repos(data: &Path, report: &mut Report) -> Vec<(RepoPath, PathBuf)> {
    let root = data.join("repos");
    let mut repos = Vec::new();
    for owner in sorted_entries(&root) {
        let name = owner.file_name().unwrap_or_default().to_string_lossy();
        let is_npub = name.starts_with("npub1") && PublicKey::parse(&name).is_ok();
        if !owner.is_dir() || !is_npub {
            report.problems.push(format!(
                "stray: {} (not a repository owner's directory)",
                rel(data, &owner)
            ));
            continue;
        }
        for dir in sorted_entries(&owner) {
            let file = dir.file_name().unwrap_or_default().to_string_lossy();
            let parsed = file
                .strip_suffix(".git")
                .and_then(|d| RepoPath::parse(&name, d).ok());
            match parsed {
                Some(path) if dir.is_dir() => repos.push((path, dir)),
                _ => report.problems.push(format!(
                    "stray: {} (not <npub>/<identifier>.git)",
                    rel(data, &dir)
                )),
            }
        }
    }
    repos
}

fn check_repo(
    path: &RepoPath,
    dir: &Path,
    stored: Option<&Stored>,
    waiting: Option<&Waiting>,
    model: MaintainerModel,
    report: &mut Report,
) {
    let name = format!("repos/{path}");
    let repo = match git2::Repository::open_bare(dir) {
        Ok(repo) => repo,
        Err(e) => {
            report.problems.push(format!(
                "{name}: not a bare git repository ({})",
                e.message()
            ));
            return;
        }
    };
    leftovers(dir, &name, report);
    let key = (*path.owner(), path.identifier().to_owned());
    let Some(stored) = stored else {
        return;
    };
    let announcement = stored.announcements.get(&key);
    if announcement.is_none() && waiting.is_some_and(|w| !w.contains(&key)) {
        report.problems.push(format!(
            "{name}: no announcement names it (neither stored nor waiting); graspd does \
             not serve it"
        ));
    }
    if announcement.is_none() {
        return;
    }
    let maintainers = maintainers(
        &stored.announcements,
        path.owner(),
        path.identifier(),
        model,
    );
    let state = stored
        .states
        .iter()
        .filter(|s| maintainers.contains(&s.pubkey))
        .filter(|s| {
            s.tags
                .identifier()
                .is_some_and(|d| *d == *path.identifier())
        })
        .max_by_key(|s| (s.created_at, s.id));
    if let Some(state) = state {
        compare_refs(&repo, &name, state, report);
    }
}

/// Who counts as a maintainer of `owner`'s repository `d` (see the module doc).
fn maintainers(
    announcements: &BTreeMap<(PublicKey, String), Event>,
    owner: &PublicKey,
    d: &str,
    model: MaintainerModel,
) -> BTreeSet<PublicKey> {
    let listed_by = |key: &PublicKey| {
        announcements
            .get(&(*key, d.to_owned()))
            .map(listed_maintainers)
            .unwrap_or_default()
    };
    let mut counted = BTreeSet::from([*owner]);
    loop {
        let candidates: BTreeSet<PublicKey> = counted
            .iter()
            .flat_map(listed_by)
            .filter(|k| !counted.contains(k))
            .collect();
        let joining: Vec<PublicKey> = candidates
            .into_iter()
            .filter(|k| match model {
                MaintainerModel::Listed => true,
                _ => listed_by(k).iter().any(|back| counted.contains(back)),
            })
            .collect();
        if joining.is_empty() {
            return counted;
        }
        counted.extend(joining);
    }
}

fn listed_maintainers(announcement: &Event) -> Vec<PublicKey> {
    announcement
        .tags
        .iter()
        .map(|t| t.as_slice())
        .filter(|t| t.first().map(String::as_str) == Some("maintainers"))
        .flat_map(|t| t.iter().skip(1))
        .filter_map(|k| PublicKey::parse(k).ok())
        .collect()
}

/// Every branch and tag of `state` must point where it says, at an object present.
fn compare_refs(repo: &git2::Repository, name: &str, state: &Event, report: &mut Report) {
    let odb = repo.odb().ok();
    let by = format!("state {} by {}", state.id.to_hex(), npub(&state.pubkey));
    for tag in state.tags.iter().map(|t| t.as_slice()) {
        let (Some(refname), Some(oid)) = (tag.first(), tag.get(1)) else {
            continue;
        };
        if !is_branch_or_tag(refname) || refname.ends_with("^{}") {
            continue;
        }
        let Ok(want) = git2::Oid::from_str(oid) else {
            continue;
        };
        if !odb.as_ref().is_some_and(|odb| odb.exists(want)) {
            report.problems.push(format!(
                "{name}: object {oid} of {refname} is missing ({by})"
            ));
            continue;
        }
        match repo.find_reference(refname).ok().and_then(|r| r.target()) {
            Some(have) if have == want => {}
            Some(have) => report
                .problems
                .push(format!("{name}: {refname} is {have}, but {by} says {oid}")),
            None => report
                .problems
                .push(format!("{name}: {refname} is missing ({by} says {oid})")),
        }
    }
}

/// What an interrupted git left in a repository.
fn leftovers(dir: &Path, name: &str, report: &mut Report) {
    for entry in sorted_entries(&dir.join("objects")) {
        let file = entry.file_name().unwrap_or_default().to_string_lossy();
        if file.starts_with(crate::children::QUARANTINE_PREFIX) {
            report.problems.push(format!(
                "{name}: leftover objects/{file} (quarantine of a push that never finished; \
                 graspd removes it at start)"
            ));
        }
    }
    for entry in sorted_entries(&dir.join("objects").join("pack")) {
        let file = entry.file_name().unwrap_or_default().to_string_lossy();
        if file.starts_with("tmp_") {
            report.problems.push(format!(
                "{name}: leftover objects/pack/{file} (temporary pack of an unfinished fetch)"
            ));
        }
    }
    let mut locks = Vec::new();
    find_locks(dir, dir, &mut locks, 0);
    for lock in locks {
        report.problems.push(format!(
            "{name}: leftover lock {lock} (a git killed mid-write; remove it once no git runs)"
        ));
    }
}

/// `*.lock` files in the repository (outside `objects/`), depth-bounded.
fn find_locks(root: &Path, dir: &Path, out: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    for entry in sorted_entries(dir) {
        if depth == 0 && entry.file_name().is_some_and(|n| n == "objects") {
            continue;
        }
        if entry.is_dir() {
            find_locks(root, &entry, out, depth + 1);
        } else if entry.extension().is_some_and(|e| e == "lock") {
            out.push(rel(root, &entry));
        }
    }
}

fn stray_entries(data: &Path, report: &mut Report) {
    for entry in sorted_entries(data) {
        let name = entry.file_name().unwrap_or_default().to_string_lossy();
        if !KNOWN_ENTRIES.contains(&name.as_ref()) {
            report.problems.push(format!(
                "stray: {name} in the data directory (graspd writes only {})",
                KNOWN_ENTRIES.join(", ")
            ));
        }
    }
}

/// The entries of `dir`, sorted (none when it cannot be read).
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    entries.sort();
    entries
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Tag};

    use super::*;
    use crate::test_keys::keys;

    fn announcement(by: &Keys, d: &str, listed: &[&Keys]) -> ((PublicKey, String), Event) {
        let mut parts = vec!["maintainers".to_owned()];
        parts.extend(listed.iter().map(|k| k.public_key().to_hex()));
        let event = EventBuilder::new(Kind::GitRepoAnnouncement, "")
            .tags([
                Tag::parse(["d", d]).expect("d"),
                Tag::parse(parts).expect("maintainers"),
            ])
            .finalize(by)
            .expect("sign");
        ((by.public_key(), d.to_owned()), event)
    }

    #[test]
    fn maintainers_follow_the_model() {
        let (a, b, c, x) = (keys(1), keys(2), keys(3), keys(4));
        // a lists b and x; b lists a back and lists c; c lists b back; x lists no one.
        let announcements: BTreeMap<_, _> = [
            announcement(&a, "r", &[&b, &x]),
            announcement(&b, "r", &[&a, &c]),
            announcement(&c, "r", &[&b]),
            announcement(&x, "r", &[]),
        ]
        .into_iter()
        .collect();
        let set = |model| maintainers(&announcements, &a.public_key(), "r", model);
        let pk = |k: &Keys| k.public_key();
        assert_eq!(
            set(MaintainerModel::Reciprocal),
            BTreeSet::from([pk(&a), pk(&b), pk(&c)]),
            "x never listed anyone back"
        );
        assert_eq!(
            set(MaintainerModel::Listed),
            BTreeSet::from([pk(&a), pk(&b), pk(&c), pk(&x)])
        );
    }
}
