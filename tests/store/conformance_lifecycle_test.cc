// Conformance: enqueue, claim, complete, fail, heartbeat, and fencing.
#include <set>
#include <thread>

#include "store/store_fixture.h"

namespace retraced::testing {
namespace {

TEST_P(StoreTest, EnqueueStoresAReadyJobWithItsFieldsAndAnEvent) {
  NewJob n = Job();
  n.priority = 3;
  n.timeout = Millis(30'000);
  n.unique_key = "welcome:42";
  std::string id = Add(n);
  EXPECT_EQ(id.size(), 26u) << "generated ids are ULIDs";
  retraced::Job j = Get(id);
  EXPECT_EQ(j.queue, "emails");
  EXPECT_EQ(j.type, "send");
  EXPECT_EQ(j.state, JobState::kReady);
  EXPECT_EQ(j.payload, R"({"to":"a@example.com"})");
  EXPECT_EQ(FormatPolicy(j.policy), "fixed(2s, retries=2)");
  EXPECT_EQ(j.priority, 3);
  EXPECT_EQ(j.timeout, Millis(30'000));
  EXPECT_EQ(j.unique_key, "welcome:42");
  EXPECT_EQ(j.created_at, clock_.Now());
  EXPECT_EQ(j.run_at, clock_.Now());
  EXPECT_EQ(j.attempt_count, 0);
  ASSERT_EQ(j.events.size(), 1u);
  EXPECT_EQ(j.events[0].reason, "enqueued");
  EXPECT_FALSE(j.events[0].from);
  EXPECT_EQ(j.events[0].to, JobState::kReady);
  EXPECT_EQ(j.events[0].actor, "test");
  EXPECT_EQ(j.events[0].at, clock_.Now());
  EXPECT_EQ(j.events[0].note, "");
}

TEST_P(StoreTest, EnqueueWithoutPolicyGetsTheDefaultAndTheDeadlineComesFromThePolicy) {
  NewJob n = Job();
  n.policy.reset();
  EXPECT_EQ(Get(Add(n)).policy, DefaultPolicy());
  n.policy = *ParsePolicy("fixed(1s, deadline=1h)");
  EXPECT_EQ(Get(Add(n)).deadline_at, clock_.Now() + Millis(3'600'000));
  n.deadline_at = clock_.Now() + Millis(5000);
  EXPECT_EQ(Get(Add(n)).deadline_at, clock_.Now() + Millis(5000)) << "the producer's wins";
}

TEST_P(StoreTest, AFutureRunAtMakesTheJobScheduled) {
  NewJob n = Job();
  n.run_at = clock_.Now() + Millis(5000);
  retraced::Job j = Get(Add(n));
  EXPECT_EQ(j.state, JobState::kScheduled);
  EXPECT_EQ(j.run_at, clock_.Now() + Millis(5000));
  EXPECT_EQ(j.events[0].note, "due at 2026-11-28T12:00:05.000Z");
}

TEST_P(StoreTest, ProducerIdsAreKeptAndADuplicateReturnsTheExistingJob) {
  NewJob n = Job();
  n.id = "order-42";
  EXPECT_EQ(Add(n), "order-42");
  n.payload = "{}";
  Result<std::vector<EnqueueResult>> again = store_->Enqueue({&n, 1}, "test");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].id, "order-42");
  EXPECT_FALSE((*again)[0].created);
  EXPECT_EQ((*again)[0].note, "a job with id order-42 exists");
  EXPECT_EQ(Get("order-42").payload, R"({"to":"a@example.com"})") << "the first one stands";
}

TEST_P(StoreTest, AnIdIsUniqueAcrossQueuesEvenWithinOneBatch) {
  NewJob a = Job("emails");
  a.id = "order-7";
  NewJob b = Job("webhooks");
  b.id = "order-7";
  Result<std::vector<EnqueueResult>> r = store_->Enqueue(std::vector<NewJob>{a, b}, "test");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE((*r)[0].created);
  EXPECT_FALSE((*r)[1].created);
  EXPECT_EQ((*r)[1].note, "a job with id order-7 exists");
  EXPECT_EQ(Get("order-7").queue, "emails");
  EXPECT_EQ(StatsOf("webhooks").counters["enqueued"], 0);
  r = store_->Enqueue({&b, 1}, "test");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)[0].created) << "nor in a later call";
}

TEST_P(StoreTest, ALiveUniqueKeyReturnsItsHolderUntilTheJobFinishes) {
  NewJob n = Job();
  n.unique_key = "sync:acct-7";
  std::string first = Add(n);
  Result<std::vector<EnqueueResult>> dup = store_->Enqueue({&n, 1}, "test");
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE((*dup)[0].created);
  EXPECT_EQ((*dup)[0].id, first);
  EXPECT_EQ((*dup)[0].note, "unique key 'sync:acct-7' is held by live job " + first);
  // Another queue may use the same key.
  NewJob other = n;
  other.queue = "syncs";
  Add(other);
  // Once the holder completes, the key is free.
  CompleteOk(ClaimOne());
  std::string second = Add(n);
  EXPECT_NE(second, first);
}

TEST_P(StoreTest, AJobInABigBatchIsStoredAsAloneAndItsHeldUniqueKeyRefusesOnlyIt) {
  // A big batch of generated ids takes another path in the Redis store (its
  // producer writes the specs, and refused jobs leave their places in the
  // batch's entries of 100 empty): the same jobs, alone or in the batch,
  // read the same, and they list and purge in order.
  NewJob held = Job();
  held.unique_key = "k-3";
  const std::string holder = Add(held);
  std::vector<NewJob> batch(230, Job());
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].payload = R"({"n":)" + std::to_string(i) + "}";
    if (i % 10 == 3) batch[i].unique_key = "k-" + std::to_string(i % 20);  // k-3 or k-13
    if (i % 9 == 4) batch[i].run_at = clock_.Now() + Millis(5000);
    if (i % 7 == 2) batch[i].priority = 2;
    if (i % 8 == 1) batch[i].timeout = Millis(1500);
  }
  batch[50].type = "other";
  batch[151].policy = *ParsePolicy("exponential(1s, max=1m, retries=5)");
  Result<std::vector<EnqueueResult>> r = store_->Enqueue(batch, "test");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), batch.size());
  std::vector<std::string> kept = {holder};  // oldest first
  for (size_t i = 0; i < batch.size(); ++i) {
    SCOPED_TRACE(i);
    const EnqueueResult& e = (*r)[i];
    if (i % 20 == 3) {
      EXPECT_FALSE(e.created);
      EXPECT_EQ(e.id, holder);
      EXPECT_EQ(e.note, "unique key 'k-3' is held by live job " + holder);
      continue;
    }
    if (i % 20 == 13 && i != 13) {
      EXPECT_FALSE(e.created);
      EXPECT_EQ(e.id, (*r)[13].id) << "held by a job of the same batch";
      continue;
    }
    ASSERT_TRUE(e.created) << e.note;
    NewJob alone = batch[i];
    alone.unique_key.reset();
    const retraced::Job a = Get(Add(alone)), j = Get(e.id);
    EXPECT_EQ(j.type, a.type);
    EXPECT_EQ(j.payload, a.payload);
    EXPECT_EQ(j.policy, a.policy);
    EXPECT_EQ(j.timeout, a.timeout);
    EXPECT_EQ(j.priority, a.priority);
    EXPECT_EQ(j.state, a.state);
    EXPECT_EQ(j.run_at, a.run_at);
    EXPECT_EQ(j.created_at, a.created_at);
    EXPECT_EQ(j.unique_key, batch[i].unique_key);
    ASSERT_EQ(j.events.size(), 1u);
    ASSERT_EQ(a.events.size(), 1u);
    EXPECT_EQ(j.events[0].to, a.events[0].to);
    EXPECT_EQ(j.events[0].actor, "test");
    EXPECT_EQ(j.events[0].note, a.events[0].note);
    EXPECT_TRUE(store_->Cancel(a.id, "ops", "a copy").ok());
    if (i % 5 == 0) {
      EXPECT_TRUE(store_->Cancel(e.id, "ops", "purged below").ok());
    } else {
      kept.push_back(e.id);
    }
  }
  PurgeRequest purge;
  purge.state = JobState::kCancelled;
  purge.by = "ops";
  Result<PurgeResult> purged = store_->Purge(purge);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(purged->purged, 208 + 46) << "the copies and every fifth job of the batch";
  QueueStats stats = StatsOf("emails");
  EXPECT_EQ(stats.states[JobState::kReady] + stats.states[JobState::kScheduled],
            static_cast<int64_t>(kept.size()));
  // Listed newest first, the batch in its order, with none of the refused or
  // purged jobs.
  JobFilter f;
  f.queue = "emails";
  f.limit = 70;
  std::vector<std::string> seen = ListAll(f);
  std::reverse(seen.begin(), seen.end());
  EXPECT_EQ(seen, kept);
}

TEST_P(StoreTest, ABadJobRejectsTheWholeBatchAndStoresNothing) {
  std::vector<NewJob> batch = {Job(), Job(), Job()};
  batch[0].id = "good-1";
  batch[2].queue = "bad queue";
  Result<std::vector<EnqueueResult>> r = store_->Enqueue(batch, "test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "job 2: queue 'bad queue' contains a character outside [A-Za-z0-9_-.:@]");
  EXPECT_EQ(store_->GetJob("good-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Enqueue(batch, "").status().message(), "enqueue actor is empty");
}

TEST_P(StoreTest, ClaimStartsAnAttemptUnderALease) {
  std::string id = Add(Job());
  clock_.Advance(Millis(40));
  ClaimedJob c = ClaimOne("emails", "host-a/1");
  EXPECT_EQ(c.job.id, id);
  EXPECT_EQ(c.job.state, JobState::kActive);
  EXPECT_EQ(c.job.payload, R"({"to":"a@example.com"})");
  EXPECT_EQ(c.attempt.n, 1);
  EXPECT_EQ(c.attempt.trigger, Trigger::kInitial);
  EXPECT_EQ(c.attempt.worker, "host-a/1");
  EXPECT_EQ(c.attempt.started_at, clock_.Now());
  EXPECT_EQ(c.attempt.lateness, Millis(40));
  EXPECT_EQ(c.lease.job_id, id);
  EXPECT_EQ(c.lease_expires_at, clock_.Now() + Millis(30'000));

  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kActive);
  EXPECT_EQ(j.attempt_count, 1);
  ASSERT_EQ(j.attempts.size(), 1u);
  EXPECT_EQ(j.attempts[0].trigger, Trigger::kInitial);
  EXPECT_FALSE(j.attempts[0].ended_at);
  EXPECT_FALSE(j.attempts[0].outcome);
  EXPECT_EQ(j.attempts[0].lateness, Millis(40));
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "claimed"}));
  EXPECT_EQ(j.events[1].actor, "host-a/1");
  EXPECT_TRUE(ClaimN("emails", 10).empty()) << "an active job is not claimed again";
}

TEST_P(StoreTest, ClaimTakesHigherPriorityFirstThenOldestAndOnlyItsQueue) {
  NewJob low = Job(), high = Job(), other = Job("reports");
  high.priority = 10;
  std::string a = Add(low);
  clock_.Advance(Millis(1));
  std::string b = Add(low);
  std::string h = Add(high);
  Add(other);
  std::vector<ClaimedJob> got = ClaimN("emails", 10);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].job.id, h);
  EXPECT_EQ(got[1].job.id, a);
  EXPECT_EQ(got[2].job.id, b);
  EXPECT_EQ(ClaimN("reports", 10).size(), 1u);
  for (int i = 0; i < 5; ++i) Add(Job("bulk"));
  EXPECT_EQ(ClaimN("bulk", 2).size(), 2u) << "max is honoured";
}

TEST_P(StoreTest, ScheduledJobsBecomeReadyWhenDueAndRecordLateness) {
  NewJob n = Job();
  n.run_at = clock_.Now() + Millis(5000);
  std::string id = Add(n);
  EXPECT_TRUE(ClaimN("emails", 1).empty());
  EXPECT_EQ(store_->NextDueAt("emails").value(), clock_.Now() + Millis(5000));
  clock_.Advance(Millis(4999));
  EXPECT_TRUE(ClaimN("emails", 1).empty()) << "not due a millisecond early";
  clock_.Advance(Millis(8));
  ClaimedJob c = ClaimOne();
  EXPECT_EQ(c.job.id, id);
  EXPECT_EQ(c.attempt.lateness, Millis(7));
  retraced::Job j = Get(id);
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "due", "claimed"}));
  EXPECT_EQ(j.events[1].from, JobState::kScheduled);
  EXPECT_EQ(j.events[1].to, JobState::kReady);
  EXPECT_EQ(j.events[1].actor, "system");
  EXPECT_FALSE(store_->NextDueAt("emails").value());
}

TEST_P(StoreTest, CompleteFinishesTheAttemptAndTheJob) {
  std::string id = Add(Job());
  ClaimedJob c = ClaimOne();
  clock_.Advance(Millis(120));
  CompleteOk(c);
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  ASSERT_EQ(j.attempts.size(), 1u);
  EXPECT_EQ(j.attempts[0].outcome, Outcome::kSucceeded);
  EXPECT_EQ(j.attempts[0].ended_at, clock_.Now());
  ASSERT_TRUE(j.attempts[0].decision);
  EXPECT_EQ(j.attempts[0].decision->action, Action::kNone);
  EXPECT_FALSE(j.attempts[0].error);
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "claimed", "succeeded"}));
  EXPECT_EQ(j.events[2].from, JobState::kActive);
  EXPECT_EQ(j.events[2].to, JobState::kCompleted);
}

TEST_P(StoreTest, CompleteReportsEachItemOnItsOwn) {
  Add(Job());
  Add(Job());
  std::vector<ClaimedJob> c = ClaimN("emails", 2);
  ASSERT_EQ(c.size(), 2u);
  std::vector<Completion> items = {{c[0].lease, "w1"},
                                   {Lease{c[1].job.id, c[1].lease.token + 7}, "w1"},
                                   {Lease{"no-such-job", 1}, "w1"}};
  Result<std::vector<Status>> r = store_->Complete(items);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_EQ((*r)[1].code(), StatusCode::kConflict);
  EXPECT_EQ((*r)[2].code(), StatusCode::kNotFound);
  EXPECT_EQ(Get(c[0].job.id).state, JobState::kCompleted);
  EXPECT_EQ(Get(c[1].job.id).state, JobState::kActive);
}

TEST_P(StoreTest, OneCompleteCallTakesJobsOfSeveralQueuesAndWorkersInAnyOrder) {
  for (int i = 0; i < 3; ++i) Add(Job("emails"));
  Add(Job("sms"));
  ClaimedJob a1 = ClaimOne("emails", "w1");
  ClaimedJob a2 = ClaimOne("emails", "w2");
  ClaimedJob a3 = ClaimOne("emails", "w1");
  // Claimed through another handle: this one has not seen the job.
  std::unique_ptr<Store> other = OpenAnother();
  Result<std::vector<ClaimedJob>> b = other->Claim(ClaimRequest{"sms", "w1", 1, Millis(30'000)});
  ASSERT_TRUE(b.ok() && b->size() == 1u);
  const ClaimedJob& b1 = b->front();
  clock_.Advance(Millis(40));
  // The last item belongs with the first, past two other groups.
  std::vector<Completion> items = {{a1.lease, "w1"},
                                   {b1.lease, "w1"},
                                   {Lease{"no-such-job", 1}, "w2"},
                                   {a2.lease, "w2"},
                                   {a3.lease, "w1"}};
  Result<std::vector<Status>> r = store_->Complete(items);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  for (size_t i : {0, 1, 3, 4}) EXPECT_TRUE((*r)[i].ok()) << i << ": " << (*r)[i].ToString();
  EXPECT_EQ((*r)[2].code(), StatusCode::kNotFound);
  using Done = std::pair<const ClaimedJob*, std::string>;
  for (const auto& [c, worker] :
       {Done{&a1, "w1"}, Done{&b1, "w1"}, Done{&a2, "w2"}, Done{&a3, "w1"}}) {
    retraced::Job j = Get(c->job.id);
    EXPECT_EQ(j.state, JobState::kCompleted) << c->job.id;
    ASSERT_FALSE(j.events.empty());
    EXPECT_EQ(j.events.back().reason, "succeeded");
    EXPECT_EQ(j.events.back().actor, worker) << c->job.id;
    EXPECT_EQ(j.events.back().at, clock_.Now());
  }
  EXPECT_EQ(StatsOf("emails").counters["completed"], 3);
  EXPECT_EQ(StatsOf("sms").counters["completed"], 1);
}

TEST_P(StoreTest, AJobAckedTwiceInOneCallIsCompletedOnceAndTheSecondRefused) {
  Add(Job());
  Add(Job());
  std::vector<ClaimedJob> c = ClaimN("emails", 2);
  ASSERT_EQ(c.size(), 2u);
  clock_.Advance(Millis(50));
  std::vector<Completion> items = {{c[0].lease, "w1"}, {c[1].lease, "w1"}, {c[0].lease, "w1"}};
  Result<std::vector<Status>> r = store_->Complete(items);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_TRUE((*r)[1].ok());
  EXPECT_EQ((*r)[2].code(), StatusCode::kConflict) << "the second sees the first's success";
  for (const ClaimedJob& one : c) {
    retraced::Job j = Get(one.job.id);
    EXPECT_EQ(j.state, JobState::kCompleted);
    ASSERT_EQ(j.attempts.size(), 1u);
    EXPECT_EQ(j.attempts[0].ended_at, clock_.Now());
  }
  EXPECT_EQ(EventReasons(Get(c[0].job.id)),
            (std::vector<std::string>{"enqueued", "claimed", "succeeded", "stale_lease_refused"}));
  EXPECT_EQ(StatsOf("emails").counters["completed"], 2);
  EXPECT_EQ(StatsOf("emails").counters["stale_refused"], 1);
}

TEST_P(StoreTest, AStaleAckIsRefusedRecordedAndChangesNothing) {
  std::string id = Add(Job());
  ClaimedJob c = ClaimOne();
  CompleteOk(c);
  Completion again{c.lease, "w1"};
  Result<std::vector<Status>> r = store_->Complete({&again, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].code(), StatusCode::kConflict);
  EXPECT_EQ((*r)[0].message(),
            "job " + id + ": completion with lease token 1 refused: the job is completed");
  FailRequest late;
  late.lease = c.lease;
  late.worker = "w1";
  late.error = Classify({ErrorClass::kTemporary, "X", "", ""}, {}, c.job.policy);
  EXPECT_EQ(store_->Fail(late).status().code(), StatusCode::kConflict);
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.attempts.size(), 1u);
  EXPECT_EQ(EventReasons(j),
            (std::vector<std::string>{"enqueued", "claimed", "succeeded", "stale_lease_refused",
                                      "stale_lease_refused"}));
  EXPECT_FALSE(j.events[3].to) << "a refusal moves nothing";
  EXPECT_EQ(j.events[3].actor, "w1");
  EXPECT_EQ(StatsOf("emails").counters["stale_refused"], 2);
}

TEST_P(StoreTest, ATemporaryFailureSchedulesTheRetryThePolicyComputes) {
  std::string id = Add(Job());
  ClaimedJob c = ClaimOne();
  clock_.Advance(Millis(10));
  FailResult r = FailWith(c, ErrorClass::kTemporary, "SMTP_TIMEOUT", "smtp timed out after 30s");
  EXPECT_EQ(r.state, JobState::kRetryWait);
  EXPECT_EQ(r.decision.action, Action::kRetry);
  EXPECT_EQ(r.decision.delay, Millis(2000));
  EXPECT_EQ(r.decision.next_run_at, clock_.Now() + Millis(2000));
  EXPECT_EQ(r.decision.reason,
            "temporary error SMTP_TIMEOUT; fixed, retry 1 of 2: 2s; next run 12:00:02.010Z");

  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kRetryWait);
  EXPECT_EQ(j.run_at, clock_.Now() + Millis(2000));
  const Attempt& a = j.attempts.at(0);
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_EQ(a.ended_at, clock_.Now());
  ASSERT_TRUE(a.error);
  EXPECT_EQ(a.error->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(a.error->code, "SMTP_TIMEOUT");
  EXPECT_EQ(a.error->message, "smtp timed out after 30s");
  EXPECT_EQ(a.error->detail, "trace");
  EXPECT_EQ(a.decision, r.decision) << "the stored decision is the one returned";
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "claimed", "retry_scheduled"}));
  EXPECT_EQ(j.events[2].to, JobState::kRetryWait);
  EXPECT_EQ(j.events[2].note, r.decision.reason);

  // The retry runs when due, as an automatic retry, with its lateness.
  clock_.Advance(Millis(1999));
  EXPECT_TRUE(ClaimN("emails", 1).empty());
  clock_.Advance(Millis(4));
  ClaimedJob retry = ClaimOne();
  EXPECT_EQ(retry.attempt.n, 2);
  EXPECT_EQ(retry.attempt.trigger, Trigger::kAuto);
  EXPECT_EQ(retry.attempt.lateness, Millis(3));
  EXPECT_NE(retry.lease.token, c.lease.token);
  CompleteOk(retry);
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
}

TEST_P(StoreTest, AZeroDelayRetryIsReadyAtOnce) {
  NewJob n = Job();
  n.policy = *ParsePolicy("phases(immediate(1), fixed(1s, retries=1))");
  std::string id = Add(n);
  FailResult r = FailWith(ClaimOne(), ErrorClass::kTemporary, "X");
  EXPECT_EQ(r.state, JobState::kReady);
  EXPECT_EQ(Get(id).state, JobState::kReady);
  EXPECT_EQ(ClaimOne().attempt.trigger, Trigger::kAuto);
}

TEST_P(StoreTest, APermanentFailureGoesToTheDeadLetterQueueAtOnceWithEvidence) {
  std::string id = Add(Job());
  FailResult r = FailWith(ClaimOne("emails", "w7"), ErrorClass::kPermanent, "INVALID_EMAIL",
                          "no such mailbox");
  EXPECT_EQ(r.state, JobState::kDead);
  EXPECT_EQ(r.decision.dead_reason, DeadReason::kPermanentError);
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  ASSERT_TRUE(j.dead);
  EXPECT_EQ(j.dead->reason, DeadReason::kPermanentError);
  EXPECT_EQ(j.dead->at, clock_.Now());
  EXPECT_EQ(j.dead->evidence,
            (std::vector<std::string>{
                "attempt 1 (initial) on w7 at 2026-11-28T12:00:00.000Z: failed, permanent error "
                "INVALID_EMAIL: no such mailbox",
                "permanent error INVALID_EMAIL: not retried"}));
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "claimed", "dead"}));
  EXPECT_EQ(StatsOf("emails").counters["dead_permanent_error"], 1);
}

TEST_P(StoreTest, FailManyAnswersEachFailureAsFailWouldInOneCall) {
  std::string retried = Add(Job());
  std::string dead = Add(Job());
  std::string stale = Add(Job());
  std::vector<ClaimedJob> c = ClaimN("emails", 3, "w1");
  ASSERT_EQ(c.size(), 3u);
  CompleteOk(c[2]);  // its lease is then stale
  auto request = [&](const ClaimedJob& job, ErrorClass cls, const std::string& code) {
    FailRequest r;
    r.lease = job.lease;
    r.worker = "w1";
    r.error = Classify({cls, code, code + " happened", ""}, {}, job.job.policy);
    return r;
  };
  clock_.Advance(Millis(10));
  std::vector<FailRequest> reqs = {request(c[0], ErrorClass::kTemporary, "SMTP_TIMEOUT"),
                                   request(c[1], ErrorClass::kPermanent, "INVALID_EMAIL"),
                                   request(c[2], ErrorClass::kTemporary, "LATE"),
                                   request(c[0], ErrorClass::kTemporary, "TWICE")};
  reqs.push_back(reqs[0]);
  reqs.back().lease.job_id = "no-such-job";
  Result<std::vector<Result<FailResult>>> r = store_->FailMany(reqs);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 5u);
  ASSERT_TRUE((*r)[0].ok()) << (*r)[0].status().message();
  EXPECT_EQ((*r)[0]->state, JobState::kRetryWait);
  EXPECT_EQ((*r)[0]->decision.next_run_at, clock_.Now() + Millis(2000));
  ASSERT_TRUE((*r)[1].ok()) << (*r)[1].status().message();
  EXPECT_EQ((*r)[1]->state, JobState::kDead);
  EXPECT_EQ((*r)[1]->decision.dead_reason, DeadReason::kPermanentError);
  EXPECT_EQ((*r)[2].status().code(), StatusCode::kConflict);
  EXPECT_EQ((*r)[3].status().code(), StatusCode::kConflict) << "the first report ended it";
  EXPECT_EQ((*r)[4].status().code(), StatusCode::kNotFound);

  retraced::Job j = Get(retried);
  EXPECT_EQ(j.attempts.at(0).decision, (*r)[0]->decision);
  EXPECT_EQ(j.attempts.at(0).error->code, "SMTP_TIMEOUT");
  EXPECT_EQ(EventReasons(j), (std::vector<std::string>{"enqueued", "claimed", "retry_scheduled",
                                                       "stale_lease_refused"}));
  retraced::Job d = Get(dead);
  EXPECT_EQ(d.state, JobState::kDead);
  ASSERT_TRUE(d.dead);
  EXPECT_EQ(d.dead->evidence.size(), 2u);
  EXPECT_EQ(Get(stale).state, JobState::kCompleted);
  QueueStats stats = StatsOf("emails");
  EXPECT_EQ(stats.counters["stale_refused"], 2);
  EXPECT_EQ(stats.counters["retries_scheduled"], 1);
  EXPECT_EQ(stats.counters["dead_permanent_error"], 1);

  FailRequest bad = reqs[0];
  bad.outcome = Outcome::kSucceeded;
  reqs.push_back(bad);
  Result<std::vector<Result<FailResult>>> refused = store_->FailMany(reqs);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            "failure 5: a failure's outcome is failed or timed_out, not succeeded");
  EXPECT_EQ(StatsOf("emails").counters["stale_refused"], 2) << "nothing of it was applied";
}

TEST_P(StoreTest, RetriesStopWhenThePolicyIsExhausted) {
  std::string id = Add(Job());  // fixed(2s, retries=2): three runs
  for (int run = 1; run <= 3; ++run) {
    FailResult r = FailWith(ClaimOne(), ErrorClass::kTemporary, "HTTP_503");
    if (run < 3) {
      EXPECT_EQ(r.decision.action, Action::kRetry);
      clock_.Advance(Millis(2000));
    } else {
      EXPECT_EQ(r.decision.dead_reason, DeadReason::kAttemptsExhausted);
    }
  }
  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  EXPECT_EQ(j.dead->reason, DeadReason::kAttemptsExhausted);
  ASSERT_EQ(j.attempts.size(), 3u);
  EXPECT_EQ(j.attempts[0].trigger, Trigger::kInitial);
  EXPECT_EQ(j.attempts[1].trigger, Trigger::kAuto);
  EXPECT_EQ(j.attempts[2].trigger, Trigger::kAuto);
  EXPECT_EQ(j.dead->evidence.size(), 4u) << "one line per attempt, then the reason";
  EXPECT_EQ(
      j.dead->evidence.back(),
      "temporary error HTTP_503; all 2 retries used (the policy allows 2 after the first run)");
}

TEST_P(StoreTest, ARetryPastTheDeadlineIsNotPlanned) {
  NewJob n = Job();
  n.policy = *ParsePolicy("fixed(2s, retries=5, deadline=3s)");
  std::string id = Add(n);
  EXPECT_EQ(FailWith(ClaimOne(), ErrorClass::kTemporary, "X").decision.action, Action::kRetry);
  clock_.Advance(Millis(2000));
  FailResult r = FailWith(ClaimOne(), ErrorClass::kTemporary, "X");
  EXPECT_EQ(r.decision.dead_reason, DeadReason::kDeadlineExceeded);
  EXPECT_EQ(Get(id).dead->reason, DeadReason::kDeadlineExceeded);
}

TEST_P(StoreTest, EveryStoredDecisionCanBeRecomputedFromTheHistory) {
  NewJob n = Job();
  n.policy = *ParsePolicy(
      "phases(immediate(1), exponential(100ms, max=1s, retries=4, jitter=decorrelated))");
  std::string id = Add(n);
  for (int run = 0; run < 6; ++run) {
    clock_.Advance(Millis(1000));
    FailWith(ClaimOne(), ErrorClass::kTemporary, "FLAKY");
  }
  retraced::Job j = Get(id);
  ASSERT_EQ(j.state, JobState::kDead);
  ASSERT_EQ(j.attempts.size(), 6u);
  for (const Attempt& a : j.attempts) {
    RetryContext ctx = ContextFor(j, a, *a.ended_at);
    Failure f{*a.outcome, a.error->error_class, a.error->code, ""};
    EXPECT_EQ(Decide(j.policy, ctx, f), *a.decision) << "attempt " << a.n;
  }
}

TEST_P(StoreTest, HeartbeatsKeepALeaseAliveAndReportALostOne) {
  std::string id = Add(Job());
  ClaimedJob c = ClaimOne("emails", "w1", Millis(1000));
  clock_.Advance(Millis(900));
  Result<std::vector<Status>> hb = store_->Heartbeat({&c.lease, 1}, Millis(1000));
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE((*hb)[0].ok());
  clock_.Advance(Millis(900));
  EXPECT_TRUE(store_->RecoverExpired(10)->empty()) << "the heartbeat moved the deadline";
  clock_.Advance(Millis(200));
  EXPECT_EQ(store_->RecoverExpired(10)->size(), 1u);
  hb = store_->Heartbeat({&c.lease, 1}, Millis(1000));
  EXPECT_EQ((*hb)[0].code(), StatusCode::kConflict) << "the lease is lost once recovered";
  EXPECT_EQ(store_->Heartbeat({&c.lease, 1}, Millis(0)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, ClaimRefusesBadRequests) {
  EXPECT_EQ(store_->Claim(ClaimRequest{"emails", "w", 0, Millis(1000)}).status().message(),
            "claim size must be from 1 to 1000, got 0");
  EXPECT_EQ(store_->Claim(ClaimRequest{"emails", "", 1, Millis(1000)}).status().message(),
            "worker id is empty");
  EXPECT_EQ(store_->Claim(ClaimRequest{"emails", "w", 1, Millis(0)}).status().message(),
            "lease must be positive");
  EXPECT_EQ(store_->Claim(ClaimRequest{"", "w", 1, Millis(1)}).status().message(),
            "queue is empty");
}

TEST_P(StoreTest, ConcurrentClaimersNeverGetTheSameJobWhileItsLeaseIsLive) {
  constexpr int kJobs = 300;
  std::vector<NewJob> batch(kJobs, Job("busy"));
  ASSERT_TRUE(store_->Enqueue(batch, "test").ok());
  constexpr int kThreads = 4;
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &got] {
      std::unique_ptr<Store> mine = OpenAnother();  // its own connection
      std::string worker = "w" + std::to_string(t);
      while (true) {
        Result<std::vector<ClaimedJob>> c =
            mine->Claim(ClaimRequest{"busy", worker, 7, Millis(60'000)});
        if (!c.ok()) {
          ADD_FAILURE() << c.status().ToString();
          return;
        }
        if (c->empty()) return;
        std::vector<Completion> done;
        for (const ClaimedJob& j : *c) {
          got[t].push_back(j.job.id);
          done.push_back({j.lease, worker});
        }
        Result<std::vector<Status>> r = mine->Complete(done);
        if (!r.ok()) ADD_FAILURE() << r.status().ToString();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::multiset<std::string> all;
  for (auto& ids : got) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), static_cast<size_t>(kJobs))
      << "a job was handed out twice";
  EXPECT_EQ(StatsOf("busy").states[JobState::kCompleted], kJobs);
}

}  // namespace
}  // namespace retraced::testing
