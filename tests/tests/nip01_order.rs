//! NIP-01 order end to end (issue 13): two states by one author in the same second — the
//! lower event id is the current one for the relay (REQ by id and by `#d`) and for push
//! authorization, whichever arrived first, as ngit relies on.

use grasp_tests::events::{self, STATE};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Alphabet, Filter, Keys, Kind, SingleLetterTag};

#[tokio::test]
async fn same_second_states_lowest_id_wins_in_store_and_push() {
    let world = World::start().await;
    for (i, lower_first) in [true, false].into_iter().enumerate() {
        let owner = Keys::generate();
        let d = format!("tie{i}");
        world.announce(&owner, &d, &[]).await;
        let work = Work::init().await;
        let c1 = work.commit("one").await;
        let c2 = work.commit("two").await;
        let at = events::now();
        let s1 = events::main_state(&owner, &d, &c1, at);
        let s2 = events::main_state(&owner, &d, &c2, at);
        let ((low, low_commit), (high, high_commit)) = if s1.id < s2.id {
            ((s1, c1), (s2, c2))
        } else {
            ((s2, c2), (s1, c1))
        };
        let (first, second) = if lower_first {
            (&low, &high)
        } else {
            (&high, &low)
        };
        world.publish_purgatory(first, "the first state").await;
        let ok = world.publish(second).await;
        assert!(ok.accepted, "{ok:?}");
        let url = world.repo_url(&owner.public_key(), &d);
        work.push(&url, &[&format!("{high_commit}:refs/heads/main")])
            .await
            .expect_refused("a push aligned with the higher id's refs");
        work.push(&url, &[&format!("{low_commit}:refs/heads/main")])
            .await
            .expect_ok("a push aligned with the lower id's refs");
        world
            .wait_served(&[low.id], "the lower id, released by the push")
            .await;
        let by_d = Filter::new()
            .kind(Kind::from(STATE))
            .author(owner.public_key())
            .custom_tag(SingleLetterTag::lowercase(Alphabet::D), d.clone());
        let served = world.relay.query_ids(by_d).await;
        assert_eq!(served, vec![low.id], "REQ by #d serves the lower id only");
        assert!(
            !world.is_served(high.id).await,
            "REQ by id: the higher id is not served"
        );
    }
}
