// Conformance: expired leases, recovery, poison, cancel.
#include <set>
#include <thread>

#include "store/store_fixture.h"

namespace retraced::testing {
namespace {

TEST_P(StoreTest, AnExpiredLeaseEndsTheAttemptAndTheNextRunIsARecovery) {
  std::string id = Add(Job());
  ClaimedJob c = ClaimOne("emails", "host-a/1", Millis(1000));
  clock_.Advance(Millis(1000));
  EXPECT_TRUE(store_->RecoverExpired(10)->empty()) << "expiry is strictly after the deadline";
  clock_.Advance(Millis(1));
  Result<std::vector<RecoveredJob>> r = store_->RecoverExpired(10);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].job_id, id);
  EXPECT_EQ((*r)[0].worker, "host-a/1");
  EXPECT_EQ((*r)[0].decision.action, Action::kRetry);
  EXPECT_EQ((*r)[0].state, JobState::kRetryWait);

  retraced::Job j = Get(id);
  const Attempt& a = j.attempts.at(0);
  EXPECT_EQ(a.outcome, Outcome::kLeaseExpired);
  ASSERT_TRUE(a.error);
  EXPECT_EQ(a.error->code, "LEASE_EXPIRED");
  EXPECT_EQ(a.error->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(a.error->message, "the lease of worker host-a/1 expired at 2026-11-28T12:00:01.000Z");
  EXPECT_EQ(j.events.back().reason, "lease_expired");
  EXPECT_EQ(j.events.back().actor, "system");

  // The late worker's ack is refused.
  Completion late{c.lease, "host-a/1"};
  EXPECT_EQ((*store_->Complete({&late, 1}))[0].code(), StatusCode::kConflict);
  clock_.Advance(Millis(2000));
  ClaimedJob again = ClaimOne("emails", "host-b/2");
  EXPECT_EQ(again.attempt.trigger, Trigger::kRecovery);
  EXPECT_EQ(again.attempt.n, 2);
  CompleteOk(again);
  EXPECT_EQ(StatsOf("emails").counters["attempts_recovery"], 1);
}

TEST_P(StoreTest, RecoveryTakesExpiredLeasesOfEveryQueueUpToItsLimit) {
  std::set<std::string> expired;
  for (const std::string queue : {"emails", "sms", "webhooks"}) {
    for (int i = 0; i < 3; ++i) expired.insert(Add(Job(queue)));
    ASSERT_EQ(ClaimN(queue, 3, "w1", Millis(1000)).size(), 3u);
  }
  clock_.Advance(Millis(1001));
  std::string live = Add(Job("sms"));
  ClaimOne("sms", "w2", Millis(60'000));
  std::set<std::string> recovered;
  // The limit falls inside a queue's expired jobs, then past the last.
  for (size_t expected : {4u, 4u, 1u, 0u}) {
    Result<std::vector<RecoveredJob>> r = store_->RecoverExpired(4);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->size(), expected);
    for (const RecoveredJob& one : *r) {
      EXPECT_TRUE(recovered.insert(one.job_id).second) << one.job_id << " recovered twice";
    }
  }
  EXPECT_EQ(recovered, expired);
  EXPECT_EQ(Get(live).state, JobState::kActive);
}

TEST_P(StoreTest, AFailureReportedAfterAnotherWorkerTookTheJobOverIsRefused) {
  // Worker A's handle claimed the job and lost its lease; worker B's handle
  // recovered and claimed it again. A's late failure must change nothing,
  // and B's failure is decided from the job as it is, whichever handle reports it.
  std::string id = Add(Job());
  ClaimedJob a = ClaimOne("emails", "host-a/1", Millis(1000));
  clock_.Advance(Millis(1001));
  std::unique_ptr<Store> other = OpenAnother();
  ASSERT_EQ(other->RecoverExpired(10)->size(), 1u);
  clock_.Advance(Millis(60'000));
  Result<std::vector<ClaimedJob>> b =
      other->Claim(ClaimRequest{"emails", "host-b/2", 1, Millis(30'000)});
  ASSERT_TRUE(b.ok() && b->size() == 1u);
  ASSERT_EQ((*b)[0].lease.token, 2);

  FailRequest late;
  late.lease = a.lease;
  late.worker = "host-a/1";
  late.error = Classify({ErrorClass::kTemporary, "X", "late", ""}, {}, a.job.policy);
  Result<FailResult> refused = store_->Fail(late);
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_EQ(refused.status().message(), "job " + id +
                                            ": failure with lease token 1 refused: the job is "
                                            "active under token 2");
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kActive);
  EXPECT_EQ(j.attempt_count, 2);
  EXPECT_EQ(j.events.back().reason, "stale_lease_refused");

  // B's failure, reported through the handle that did not claim the job.
  FailRequest current = late;
  current.lease = (*b)[0].lease;
  current.worker = "host-b/2";
  current.error = Classify({ErrorClass::kTemporary, "Y", "down", ""}, {}, a.job.policy);
  Result<FailResult> failed = store_->Fail(current);
  ASSERT_TRUE(failed.ok()) << failed.status().ToString();
  EXPECT_EQ(failed->decision.action, Action::kRetry);
  j = Get(id);
  EXPECT_EQ(j.state, failed->state);
  ASSERT_EQ(j.attempts.size(), 2u);
  ASSERT_TRUE(j.attempts[1].error);
  EXPECT_EQ(j.attempts[1].error->code, "Y");
  EXPECT_EQ(j.attempts[1].worker, "host-b/2");
  EXPECT_EQ(j.events.back().actor, "host-b/2");
}

TEST_P(StoreTest, ARunningAttemptReadsInFullAndRefusalsDuringItFollowItsClaim) {
  // What an operator reads while a recovered job runs again: the running
  // attempt in full, and the late reports of the lost worker after its claim.
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(3)");
  std::string id = Add(n);
  ClaimedJob first = ClaimOne("emails", "host-a/1", Millis(100));
  clock_.Advance(Millis(101));
  ASSERT_EQ(store_->RecoverExpired(10)->size(), 1u);
  clock_.Advance(Millis(7));
  ClaimedJob second = ClaimOne("emails", "host-b/2");
  ASSERT_EQ(second.attempt.n, 2);

  retraced::Job running = Get(id);
  EXPECT_EQ(running.state, JobState::kActive);
  ASSERT_EQ(running.attempts.size(), 2u) << "the running attempt is part of the history";
  const Attempt& now = running.attempts[1];
  EXPECT_EQ(now.n, 2);
  EXPECT_EQ(now.trigger, Trigger::kRecovery);
  EXPECT_EQ(now.worker, "host-b/2");
  EXPECT_EQ(now.started_at, second.attempt.started_at);
  EXPECT_EQ(now.lateness, second.attempt.lateness);
  EXPECT_FALSE(now.ended_at);
  EXPECT_EQ(EventReasons(running),
            (std::vector<std::string>{"enqueued", "claimed", "lease_expired", "claimed"}));
  EXPECT_EQ(running.events.back().actor, "host-b/2");
  EXPECT_EQ(running.events.back().note, "attempt 2 (recovery)");

  // The first worker's late reports are refused while attempt 2 runs.
  Completion late{first.lease, "host-a/1"};
  EXPECT_EQ((*store_->Complete({&late, 1}))[0].code(), StatusCode::kConflict);
  FailRequest failed;
  failed.lease = first.lease;
  failed.worker = "host-a/1";
  failed.error = Classify({ErrorClass::kTemporary, "X", "", ""}, {}, first.job.policy);
  EXPECT_EQ(store_->Fail(failed).status().code(), StatusCode::kConflict);
  clock_.Advance(Millis(5));
  CompleteOk(second);

  retraced::Job j = Get(id);
  EXPECT_EQ(EventReasons(j),
            (std::vector<std::string>{"enqueued", "claimed", "lease_expired", "claimed",
                                      "stale_lease_refused", "stale_lease_refused", "succeeded"}))
      << "attempt 2's claim is recorded once, before the refusals made while it ran";
  ASSERT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.attempts[1].worker, "host-b/2");
  EXPECT_EQ(j.attempts[1].started_at, second.attempt.started_at);
  EXPECT_EQ(j.attempts[1].trigger, Trigger::kRecovery);
  EXPECT_EQ(j.attempts[1].outcome, Outcome::kSucceeded);
  EXPECT_EQ(j.attempts[1].ended_at, clock_.Now());
  EXPECT_EQ(j.events[3].at, second.attempt.started_at);
}

TEST_P(StoreTest, AJobWhoseWorkersDieThreeTimesInARowIsPoison) {
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(10)");
  std::string id = Add(n);
  for (int i = 1; i <= 3; ++i) {
    ClaimOne("emails", "crasher-" + std::to_string(i), Millis(100));
    clock_.Advance(Millis(101));
    Result<std::vector<RecoveredJob>> r = store_->RecoverExpired(10);
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].decision.action, i < 3 ? Action::kRetry : Action::kDead);
  }
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  EXPECT_EQ(j.dead->reason, DeadReason::kPoison);
  ASSERT_EQ(j.dead->evidence.size(), 4u);
  EXPECT_EQ(j.dead->evidence[0],
            "attempt 1 (initial) on crasher-1 at 2026-11-28T12:00:00.000Z: lease_expired, "
            "temporary error LEASE_EXPIRED: the lease of worker crasher-1 expired at "
            "2026-11-28T12:00:00.100Z");
  EXPECT_NE(j.dead->evidence[2].find("crasher-3"), std::string::npos);
  EXPECT_EQ(j.dead->evidence[3],
            "lease expired 3 times in a row: each time, the worker running it died or stopped "
            "heartbeating (poison after 3)");
}

TEST_P(StoreTest, AnOrdinaryFailureBreaksTheLeaseExpiryStreak) {
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(10)");
  std::string id = Add(n);
  auto lose = [&] {
    ClaimOne("emails", "w", Millis(100));
    clock_.Advance(Millis(101));
    return (*store_->RecoverExpired(10)).at(0).decision.action;
  };
  EXPECT_EQ(lose(), Action::kRetry);
  EXPECT_EQ(lose(), Action::kRetry);
  FailWith(ClaimOne(), ErrorClass::kTemporary, "X");
  EXPECT_EQ(lose(), Action::kRetry);
  EXPECT_EQ(lose(), Action::kRetry);
  EXPECT_EQ(lose(), Action::kDead);
  EXPECT_EQ(Get(id).dead->reason, DeadReason::kPoison);
}

TEST_P(StoreTest, PoisonThresholdIsAStoreSetting) {
  StoreOptions o;
  o.poison_after = 1;
  Reopen(o);
  std::string id = Add(Job());
  ClaimOne("emails", "w", Millis(100));
  clock_.Advance(Millis(101));
  EXPECT_EQ((*store_->RecoverExpired(10)).at(0).decision.dead_reason, DeadReason::kPoison);
}

TEST_P(StoreTest, ManyRecoverersRecoverEachExpiredAttemptOnce) {
  std::vector<NewJob> batch(40, Job("lost"));
  ASSERT_TRUE(store_->Enqueue(batch, "test").ok());
  ASSERT_EQ(ClaimN("lost", 40, "dead-worker", Millis(100)).size(), 40u);
  clock_.Advance(Millis(500));
  std::atomic<int> recovered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, &recovered] {
      std::unique_ptr<Store> mine = OpenAnother();
      for (int i = 0; i < 20; ++i) {
        Result<std::vector<RecoveredJob>> r = mine->RecoverExpired(3);
        if (!r.ok()) {
          ADD_FAILURE() << r.status().ToString();
          return;
        }
        recovered += static_cast<int>(r->size());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(recovered.load(), 40);
  QueueStats s = StatsOf("lost");
  EXPECT_EQ(s.counters["lease_expired"], 40);
  EXPECT_EQ(s.states[JobState::kRetryWait], 40);
}

TEST_P(StoreTest, LeaseExpiryClassificationIsConfigurable) {
  StoreOptions o;
  o.lease_expiry_classes.codes["LEASE_EXPIRED"] = ErrorClass::kPermanent;
  Reopen(o);
  std::string id = Add(Job());
  ClaimOne("emails", "w", Millis(100));
  clock_.Advance(Millis(101));
  EXPECT_EQ((*store_->RecoverExpired(10)).at(0).decision.dead_reason, DeadReason::kPermanentError);
}

TEST_P(StoreTest, ReleaseGivesALeaseUpAtOnceWithoutCountingTowardPoison) {
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(10)");
  std::string id = Add(n);
  for (int i = 0; i < 4; ++i) {
    ClaimedJob c = ClaimOne("emails", "stopping-worker");
    Result<std::vector<Status>> r = store_->Release({&c.lease, 1}, "stopping-worker");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
  }
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kReady) << "four releases in a row are not poison";
  const Attempt& a = j.attempts.back();
  EXPECT_EQ(a.outcome, Outcome::kLeaseExpired);
  EXPECT_EQ(a.error->code, "WORKER_STOPPED");
  EXPECT_EQ(a.error->message,
            "worker stopping-worker stopped before the attempt finished and released it");
  EXPECT_EQ(j.events.back().reason, "released");
  EXPECT_EQ(j.events.back().actor, "stopping-worker");
  ClaimedJob next = ClaimOne();
  EXPECT_EQ(next.attempt.trigger, Trigger::kRecovery);
  // A stale release is refused like a stale ack.
  Result<std::vector<Status>> released = store_->Release({&next.lease, 1}, "w");
  ASSERT_TRUE(released.ok());
  EXPECT_TRUE((*released)[0].ok());
  Result<std::vector<Status>> again = store_->Release({&next.lease, 1}, "w");
  EXPECT_EQ((*again)[0].code(), StatusCode::kConflict);
  // Recomputable: the history gives the same decisions.
  j = Get(id);
  for (const Attempt& at : j.attempts) {
    Failure f{*at.outcome, at.error->error_class, at.error->code, ""};
    EXPECT_EQ(Decide(j.policy, ContextFor(j, at, *at.ended_at), f), *at.decision) << at.n;
  }
}

TEST_P(StoreTest, AReleaseNeitherCountsTowardPoisonNorBreaksTheStreak) {
  // Regression: a release reset the streak, so stopping hung workers
  // gracefully hid a poison job.
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(10)");
  std::string id = Add(n);
  auto lose = [&] {
    ClaimOne("emails", "w", Millis(100));
    clock_.Advance(Millis(101));
    return (*store_->RecoverExpired(10)).at(0).decision;
  };
  EXPECT_EQ(lose().action, Action::kRetry);
  EXPECT_EQ(lose().action, Action::kRetry);
  ClaimedJob c = ClaimOne("emails", "stopping");
  ASSERT_TRUE((*store_->Release({&c.lease, 1}, "stopping"))[0].ok());
  Decision third = lose();
  EXPECT_EQ(third.dead_reason, DeadReason::kPoison);
  retraced::Job j = Get(id);
  for (const Attempt& a : j.attempts) {
    Failure f{*a.outcome, a.error->error_class, a.error->code, ""};
    EXPECT_EQ(Decide(j.policy, ContextFor(j, a, *a.ended_at), f), *a.decision) << a.n;
  }
}

TEST_P(StoreTest, CancelStopsALiveJobAndRecordsWhoAndWhy) {
  std::string waiting = Add(Job());
  ASSERT_TRUE(store_->Cancel(waiting, "alice", "customer unsubscribed").ok());
  retraced::Job j = Get(waiting);
  EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_EQ(j.dead->reason, DeadReason::kCancelled);
  EXPECT_EQ(j.dead->evidence,
            std::vector<std::string>{"cancelled by alice: customer unsubscribed"});
  EXPECT_EQ(j.events.back().reason, "cancelled");
  EXPECT_EQ(j.events.back().actor, "alice");
  EXPECT_EQ(j.events.back().note, "customer unsubscribed");
  EXPECT_TRUE(ClaimN("emails", 5).empty());

  std::string running = Add(Job());
  ClaimedJob c = ClaimOne();
  ASSERT_TRUE(store_->Cancel(running, "bob", "").ok());
  Completion late{c.lease, "w1"};
  EXPECT_EQ((*store_->Complete({&late, 1}))[0].code(), StatusCode::kConflict)
      << "the worker's ack is refused after a cancel";
  retraced::Job r = Get(running);
  EXPECT_EQ(r.state, JobState::kCancelled);
  ASSERT_TRUE(r.attempts[0].ended_at);
  EXPECT_EQ(r.attempts[0].decision->dead_reason, DeadReason::kCancelled);

  EXPECT_EQ(store_->Cancel(running, "bob", "").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Cancel("nope", "bob", "").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Cancel(Add(Job()), "", "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatsOf("emails").counters["cancelled"], 2);
}

}  // namespace
}  // namespace retraced::testing
