//! One catch-up job: the history of one filter, fetched in pages of `limit` events by
//! `until` (GRASP-02 §4, "Paging").

use nostr::prelude::{Filter, Timestamp};

use crate::peer::JobId;

/// Pages of one job, at most.
pub(crate) const MAX_PAGES: u32 = 200;
/// Events of one job, at most.
pub(crate) const MAX_EVENTS: u32 = 100_000;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobEnd {
    /// A page brought nothing new: the history is in.
    Finished,
    /// A bound (pages, events, time per page) was reached: the daily run retries.
    Capped,
    /// The peer refused it (`CLOSED`), or the connection ended.
    Failed,
}

impl JobEnd {
    /// The metric label (`graspd_relay_sync_catchups_total{outcome}`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            JobEnd::Finished => "finished",
            JobEnd::Capped => "capped",
            JobEnd::Failed => "failed",
        }
    }
}

/// What to do after a page.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Next {
    /// Ask for the next page with this filter.
    Page(Filter),
    /// The job is over.
    End(JobEnd),
}

/// A catch-up job's bounds and progress.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) id: JobId,
    /// The filter without bounds.
    filter: Filter,
    /// The lower bound (`None`: full history).
    since: Option<Timestamp>,
    /// The current upper bound (inclusive).
    until: Timestamp,
    /// The first upper bound: what a finished job covers up to.
    pub(crate) upper: Timestamp,
    limit: usize,
    pages: u32,
    events: u32,
    /// A full page of one second made the job step one second lower already.
    stepped: bool,
}

impl Job {
    /// A job over `filter` from `since` (or all history) up to `until`.
    pub(crate) fn new(
        id: JobId,
        filter: Filter,
        since: Option<Timestamp>,
        until: Timestamp,
        limit: usize,
    ) -> Job {
        Job {
            id,
            filter,
            since,
            until,
            upper: until,
            limit,
            pages: 0,
            events: 0,
            stepped: false,
        }
    }

    /// The filter of the next page.
    pub(crate) fn page(&self) -> Filter {
        let mut f = self.filter.clone().until(self.until).limit(self.limit);
        if let Some(s) = self.since {
            f = f.since(s);
        }
        f
    }

    /// A page ended with `received` events, `new` of them unseen on earlier pages, the
    /// oldest at `oldest`.
    pub(crate) fn page_done(&mut self, received: u32, new: u32, oldest: Option<Timestamp>) -> Next {
        self.pages += 1;
        self.events = self.events.saturating_add(received);
        let Some(oldest) = oldest.filter(|_| new > 0) else {
            return Next::End(JobEnd::Finished);
        };
        if self.since.is_some_and(|s| oldest <= s) && (received as usize) < self.limit {
            return Next::End(JobEnd::Finished);
        }
        if self.pages >= MAX_PAGES || self.events >= MAX_EVENTS {
            return Next::End(JobEnd::Capped);
        }
        let full_of_one_second = oldest == self.until && received as usize >= self.limit;
        if full_of_one_second {
            if self.stepped || oldest.as_secs() == 0 {
                return Next::End(JobEnd::Capped);
            }
            self.stepped = true;
            self.until = Timestamp::from_secs(oldest.as_secs() - 1);
        } else {
            self.until = oldest;
        }
        Next::Page(self.page())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::Kind;

    fn job(limit: usize) -> Job {
        Job::new(
            JobId(1),
            Filter::new().kind(Kind::GitIssue),
            None,
            Timestamp::from_secs(10_000),
            limit,
        )
    }

    #[test]
    fn pages_by_until_inclusive_until_nothing_new() {
        let mut j = job(500);
        assert_eq!(j.page().until, Some(Timestamp::from_secs(10_000)));
        assert_eq!(j.page().limit, Some(500));
        // 1 234 events, one a second from 8 766 to 9 999.
        let Next::Page(p) = j.page_done(500, 500, Some(Timestamp::from_secs(9_500))) else {
            panic!()
        };
        assert_eq!(p.until, Some(Timestamp::from_secs(9_500)), "inclusive");
        let Next::Page(_) = j.page_done(500, 499, Some(Timestamp::from_secs(9_001))) else {
            panic!()
        };
        let Next::Page(_) = j.page_done(236, 235, Some(Timestamp::from_secs(8_766))) else {
            panic!()
        };
        assert_eq!(
            j.page_done(1, 0, Some(Timestamp::from_secs(8_766))),
            Next::End(JobEnd::Finished)
        );
        assert_eq!(job(5).page_done(0, 0, None), Next::End(JobEnd::Finished));
    }

    #[test]
    fn a_full_page_of_one_second_steps_lower_once() {
        let mut j = job(3);
        let t = Timestamp::from_secs(10_000);
        let Next::Page(p) = j.page_done(3, 3, Some(t)) else {
            panic!()
        };
        assert_eq!(p.until, Some(Timestamp::from_secs(9_999)));
        let mut j = job(3);
        j.until = t;
        j.stepped = true;
        assert_eq!(j.page_done(3, 3, Some(t)), Next::End(JobEnd::Capped));
    }

    #[test]
    fn a_liar_inventing_events_is_capped_at_200_pages() {
        let mut j = job(500);
        let mut pages = 1;
        let mut at = 10_000;
        loop {
            at -= 1;
            match j.page_done(500, 500, Some(Timestamp::from_secs(at))) {
                Next::Page(_) => pages += 1,
                Next::End(end) => {
                    assert_eq!(end, JobEnd::Capped);
                    break;
                }
            }
        }
        assert_eq!(pages, MAX_PAGES);
    }
}
