//! Repository coordinates and where their bare repositories live on disk.
//!
//! Every path under the data directory is built from a [`RepoPath`], which can only be
//! made from a decodable npub and a validated identifier, so that no request (and no
//! event) can name a file outside `<data>/repos/<npub>/<identifier>.git`.

use std::fmt;
use std::path::{Path, PathBuf};

use nostr::prelude::{FromBech32, PublicKey, ToBech32};

use crate::housekeeping::Housekeeping;

/// Longest repository identifier accepted (bytes). NIP-34 sets none; this keeps the
/// directory name well under every filesystem's limit.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Why a path segment does not name a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The owner segment is not a valid `npub1…`.
    #[error("not an npub: {0}")]
    BadNpub(String),
    /// The identifier is empty, too long, or contains a forbidden character.
    #[error("invalid repository identifier: {0}")]
    BadIdentifier(&'static str),
    /// The identifier's URL path segment is badly percent-encoded or decodes to an
    /// identifier the rules refuse.
    #[error("invalid repository identifier in the URL: {0}")]
    BadSegment(#[from] grasp_core::SegmentError),
}

/// Checks a repository identifier (a NIP-34 `d` tag) for use as a directory name:
/// non-empty, at most [`MAX_IDENTIFIER_LEN`] bytes, no `/` or `\`, no `..`, no control
/// characters, and not starting with `.` or `-` (hidden files, git option injection).
pub fn validate_identifier(identifier: &str) -> Result<(), PathError> {
    // One rule for the whole server: the engine refuses announcements by the same test.
    if grasp_core::is_safe_identifier(identifier) {
        Ok(())
    } else {
        Err(PathError::BadIdentifier(
            "must be 1 to 128 bytes, without `/`, `\\`, `..` or control characters, not starting with `.` or `-`",
        ))
    }
}

/// A validated repository coordinate: owner public key and identifier, in the hosted
/// space (`/<npub>/<id>.git`) or GRASP-06's contributor space (`/prs/<npub>/<id>.git`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath {
    owner: PublicKey,
    npub: String,
    identifier: String,
    ns: grasp_core::Namespace,
}

impl RepoPath {
    /// Parses the two URL segments `/<npub>/<identifier>`.
    pub fn parse(npub: &str, identifier: &str) -> Result<Self, PathError> {
        let owner =
            PublicKey::from_bech32(npub).map_err(|_| PathError::BadNpub(npub.to_owned()))?;
        Self::new(owner, identifier)
    }

    /// Parses the raw (still percent-encoded) URL segments `/<npub>/<segment>`, the
    /// segment without `.git`. Every route naming a repository in its URL goes through
    /// here, so that it decodes identifiers as the announcement check does
    /// ([`grasp_core::decode_identifier`]: `my%20repo` is `my repo`, `+` is a plus).
    pub fn from_url(npub: &str, segment: &str) -> Result<Self, PathError> {
        let identifier = grasp_core::decode_identifier(segment)?;
        Self::parse(npub, &identifier)
    }

    /// `<npub>/<identifier>.git` as it appears in a URL (the identifier percent-encoded
    /// as [`RepoPath::from_url`] decodes it), `prs/` first for a contributor repository.
    pub fn url_path(&self) -> String {
        format!(
            "{}{}/{}.git",
            if self.is_prs() { "prs/" } else { "" },
            self.npub,
            grasp_core::encode_identifier(&self.identifier)
        )
    }

    /// The repository of `owner` named `identifier` (as the engine knows it).
    pub fn new(owner: PublicKey, identifier: &str) -> Result<Self, PathError> {
        validate_identifier(identifier)?;
        // Re-encoded rather than kept as typed, so that one repository has one
        // directory whatever spelling the URL used.
        let npub = owner
            .to_bech32()
            .map_err(|_| PathError::BadNpub(owner.to_hex()))?;
        Ok(Self {
            owner,
            npub,
            identifier: identifier.to_owned(),
            ns: grasp_core::Namespace::Hosted,
        })
    }

    /// The same coordinate in the contributor space, `/prs/<npub>/<identifier>.git`: the
    /// same parsing and identifier rules, one function for both endpoints.
    #[must_use]
    pub fn into_prs(mut self) -> Self {
        self.ns = grasp_core::Namespace::Prs;
        self
    }

    /// Hosted or contributor (`/prs/`).
    pub fn namespace(&self) -> grasp_core::Namespace {
        self.ns
    }

    /// Whether this is a contributor repository (`/prs/…`).
    pub fn is_prs(&self) -> bool {
        self.ns == grasp_core::Namespace::Prs
    }

    /// The owner's public key.
    pub fn owner(&self) -> &PublicKey {
        &self.owner
    }

    /// The owner's canonical `npub1…`.
    pub fn npub(&self) -> &str {
        &self.npub
    }

    /// The repository identifier (`d` tag).
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// `<npub>/<identifier>.git`, relative to the repos directory.
    pub fn relative_dir(&self) -> PathBuf {
        Path::new(&self.npub).join(format!("{}.git", self.identifier))
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_prs() {
            f.write_str("prs/")?;
        }
        write!(f, "{}/{}.git", self.npub, self.identifier)
    }
}

/// The directory holding every bare repository (`<data>/repos`), GRASP-06's contributor
/// repositories beside it (`<data>/prs`), and their upkeep.
#[derive(Debug, Clone)]
pub struct Repos {
    root: PathBuf,
    prs: std::sync::Arc<crate::prs::PrsDisk>,
    housekeeping: Housekeeping,
}

/// The default `--prune-grace`.
const DEFAULT_PRUNE_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

impl Repos {
    /// Repositories under `root`, pruned with the default grace period.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_prune_grace(root, DEFAULT_PRUNE_GRACE)
    }

    /// Repositories under `root` whose prunes keep objects younger than `grace`.
    pub fn with_prune_grace(root: impl Into<PathBuf>, grace: std::time::Duration) -> Self {
        let root: PathBuf = root.into();
        let prs_root = root.parent().unwrap_or(&root).join("prs");
        Self {
            root,
            prs: std::sync::Arc::new(crate::prs::PrsDisk::new(prs_root)),
            housekeeping: Housekeeping::new(grace),
        }
    }

    /// The contributor repositories (`<data>/prs`) and the pushes in flight into them.
    pub fn prs(&self) -> &crate::prs::PrsDisk {
        &self.prs
    }

    /// The directory the repositories of `repo`'s namespace live under.
    pub fn root_of(&self, repo: &RepoPath) -> &Path {
        if repo.is_prs() {
            self.prs.root()
        } else {
            &self.root
        }
    }

    /// The background upkeep of these repositories (maintenance after pushes, prunes).
    pub fn housekeeping(&self) -> &Housekeeping {
        &self.housekeeping
    }

    /// The repos directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<npub>/<identifier>.git` (`<data>/prs/<npub>/<identifier>.git` for a
    /// contributor repository).
    pub fn dir(&self, repo: &RepoPath) -> PathBuf {
        self.root_of(repo).join(repo.relative_dir())
    }

    /// Whether the bare repository exists on disk (served or in purgatory).
    pub fn exists(&self, repo: &RepoPath) -> bool {
        self.dir(repo).join("HEAD").is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NPUB: &str = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6";

    #[test]
    fn identifiers_are_validated() {
        for good in [
            "repo",
            "my-repo",
            "a.b",
            "x_y",
            "ünïcode",
            "with space",
            "a..".trim_end_matches('.'),
        ] {
            assert_eq!(validate_identifier(good), Ok(()), "{good:?}");
        }
        let long = "x".repeat(MAX_IDENTIFIER_LEN + 1);
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a..b",
            ".hidden",
            "-option",
            "tab\there",
            "nul\0",
            "new\nline",
            long.as_str(),
        ] {
            assert!(
                validate_identifier(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn paths_stay_under_the_root() {
        let repos = Repos::new("/data/repos");
        let repo = RepoPath::parse(NPUB, "grasp").expect("valid");
        assert_eq!(
            repos.dir(&repo),
            Path::new("/data/repos").join(NPUB).join("grasp.git")
        );
        assert_eq!(repo.to_string(), format!("{NPUB}/grasp.git"));
        assert!(matches!(
            RepoPath::parse("..", "x"),
            Err(PathError::BadNpub(_))
        ));
        assert!(matches!(
            RepoPath::parse("npub1xyz", "x"),
            Err(PathError::BadNpub(_))
        ));
        assert!(RepoPath::parse(NPUB, "../../etc").is_err());
    }

    #[test]
    fn url_segments_are_percent_decoded_once() {
        for (segment, identifier) in [
            ("my%20repo", "my repo"),
            ("100%25", "100%"),
            ("a+b", "a+b"),
            ("%C3%BCber", "über"),
            ("100%2525", "100%25"),
        ] {
            let repo = RepoPath::from_url(NPUB, segment).expect(segment);
            assert_eq!(repo.identifier(), identifier);
            assert_eq!(
                RepoPath::from_url(
                    NPUB,
                    repo.url_path()
                        .trim_start_matches(&format!("{NPUB}/"))
                        .trim_end_matches(".git")
                ),
                Ok(repo.clone()),
                "url_path round-trips"
            );
        }
        for bad in ["100%", "a%2Fb", "%2E%2E", "%FF", "a%00"] {
            assert!(
                matches!(RepoPath::from_url(NPUB, bad), Err(PathError::BadSegment(_))),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            RepoPath::from_url("npub1xyz", "x"),
            Err(PathError::BadNpub(_))
        ));
    }

    #[test]
    fn npub_is_canonical() {
        let repo = RepoPath::parse(NPUB, "r").expect("valid");
        let again = RepoPath::new(*repo.owner(), "r").expect("valid");
        assert_eq!(repo, again);
        assert_eq!(again.npub(), NPUB);
    }
}
