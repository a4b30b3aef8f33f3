// Conformance: listing, dead-letter groups, replay, purge, retention, stats.
#include <map>
#include <set>

#include "store/store_fixture.h"

namespace retraced::testing {
namespace {

// A filter with one field set.
template <typename F>
JobFilter Filter(F set) {
  JobFilter f;
  set(f);
  return f;
}

class AdminTest : public StoreTest {
 protected:
  std::string MakeDead(const std::string& queue, const std::string& code,
                       const std::string& message, std::string type = "send") {
    std::string id = Add(Job(queue, std::move(type)));
    ClaimedJob c = ClaimOne(queue);
    EXPECT_EQ(c.job.id, id);
    FailWith(c, ErrorClass::kPermanent, code, message);
    return id;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, AdminTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param.name;
                         });

TEST_P(AdminTest, GetJobOfAnUnknownIdIsNotFound) {
  Result<retraced::Job> r = store_->GetJob("missing");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no job missing");
}

TEST_P(AdminTest, ListFiltersByEveryField) {
  std::string dead = MakeDead("emails", "INVALID_EMAIL", "no such mailbox 42");
  std::string a = Add(Job("emails", "send"));
  clock_.Advance(Millis(10));
  std::string b = Add(Job("emails", "digest"));
  std::string other = Add(Job("reports", "build"));
  auto ids = [&](JobFilter f) {
    Result<JobPage> p = store_->ListJobs(f);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    std::vector<std::string> out;
    for (const JobSummary& s : p->jobs) out.push_back(s.job.id);
    return out;
  };
  JobFilter f;
  EXPECT_EQ(ids(f), (std::vector<std::string>{other, b, a, dead})) << "newest first";
  f.queue = "emails";
  EXPECT_EQ(ids(f), (std::vector<std::string>{b, a, dead}));
  f.state = JobState::kDead;
  EXPECT_EQ(ids(f), std::vector<std::string>{dead});
  f = {};
  f.type = "digest";
  EXPECT_EQ(ids(f), std::vector<std::string>{b});
  f = {};
  f.code = "INVALID_EMAIL";
  EXPECT_EQ(ids(f), std::vector<std::string>{dead});
  f = {};
  f.error_class = ErrorClass::kPermanent;
  EXPECT_EQ(ids(f), std::vector<std::string>{dead});
  f = {};
  f.created_before = clock_.Now() - Millis(5);
  EXPECT_EQ(ids(f), (std::vector<std::string>{a, dead}));
  f = {};
  f.created_after = clock_.Now();
  EXPECT_EQ(ids(f), (std::vector<std::string>{other, b}));

  Result<JobPage> page = store_->ListJobs(Filter([](JobFilter& f) { f.state = JobState::kDead; }));
  ASSERT_EQ(page->jobs.size(), 1u);
  const JobSummary& s = page->jobs[0];
  ASSERT_TRUE(s.last_error);
  EXPECT_EQ(s.last_error->code, "INVALID_EMAIL");
  EXPECT_EQ(s.last_error->message, "no such mailbox 42");
  EXPECT_TRUE(s.job.attempts.empty()) << "listings carry no history";
  EXPECT_EQ(s.job.dead->reason, DeadReason::kPermanentError);
}

TEST_P(AdminTest, PagesCoverEveryJobOnceInOrder) {
  std::vector<NewJob> batch(23, Job());
  Result<std::vector<EnqueueResult>> added = store_->Enqueue(batch, "test");
  ASSERT_TRUE(added.ok());
  std::vector<std::string> seen;
  JobFilter f;
  f.limit = 5;
  int pages = 0;
  do {
    Result<JobPage> p = store_->ListJobs(f);
    ASSERT_TRUE(p.ok());
    for (const JobSummary& s : p->jobs) seen.push_back(s.job.id);
    f.cursor = p->next_cursor;
    ++pages;
  } while (!f.cursor.empty());
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(seen.size(), 23u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], (*added)[22 - i].id);
  EXPECT_EQ(store_->ListJobs(Filter([](JobFilter& f) { f.limit = 0; })).status().message(),
            "limit must be from 1 to 1000, got 0");
  EXPECT_EQ(store_->ListJobs(Filter([](JobFilter& f) { f.cursor = "x1"; })).status().message(),
            "invalid cursor 'x1'");
}

TEST_P(AdminTest, PagesAcrossQueuesAndSparseFiltersStayInOrder) {
  // More jobs than a backend reads at once (Redis: chunks of 100 per queue),
  // in two queues enqueued alternately, some of a rare type.
  std::vector<std::string> newest_first, rare_newest_first;
  for (int i = 0; i < 260; ++i) {
    NewJob j = Job(i % 2 ? "emails" : "reports", i % 37 == 0 ? "rare" : "send");
    std::string id = Add(j);
    newest_first.insert(newest_first.begin(), id);
    if (i % 37 == 0) rare_newest_first.insert(rare_newest_first.begin(), id);
    clock_.Advance(Millis(1));
  }
  JobFilter f;
  f.limit = 30;
  EXPECT_EQ(ListAll(f), newest_first);
  f.type = "rare";
  f.limit = 2;
  EXPECT_EQ(ListAll(f), rare_newest_first);
}

TEST_P(AdminTest, PagesKeepJobsOfTwoProducersInOneMillisecond) {
  // Two producers (their own connections) enqueue to two queues at the same
  // instant; Redis may give both jobs one insertion number.
  std::unique_ptr<Store> other = OpenAnother();
  std::set<std::string> added;
  for (int i = 0; i < 3; ++i) {
    added.insert(Add(Job("emails")));
    NewJob j = Job("reports");
    added.insert((*other->Enqueue({&j, 1}, "test"))[0].id);
  }
  JobFilter f;
  f.limit = 1;
  std::set<std::string> seen;
  int pages = 0;
  do {
    Result<JobPage> p = store_->ListJobs(f);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    for (const JobSummary& s : p->jobs) {
      EXPECT_TRUE(seen.insert(s.job.id).second) << s.job.id << " listed twice";
    }
    f.cursor = p->next_cursor;
  } while (!f.cursor.empty() && ++pages < 20);
  EXPECT_EQ(seen, added);
}

TEST_P(AdminTest, ABigBatchPagesInOrderAfterJobsInItsMiddleAreRemoved) {
  // More jobs in one call than a Redis entry of `all` holds (100), then
  // every seventh cancelled and purged: the rest still page newest first.
  Add(Job());
  std::vector<NewJob> batch(2300, Job());
  Result<std::vector<EnqueueResult>> added = store_->Enqueue(batch, "test");
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  clock_.Advance(Millis(1));
  std::string after = Add(Job());
  std::vector<std::string> expected = {after};
  for (size_t i = added->size(); i-- > 0;) {
    if (i % 7 == 3) {
      ASSERT_TRUE(store_->Cancel((*added)[i].id, "ops", "not needed").ok());
    } else {
      expected.push_back((*added)[i].id);
    }
  }
  PurgeRequest purge;
  purge.state = JobState::kCancelled;
  purge.by = "ops";
  ASSERT_EQ(store_->Purge(purge)->purged, 329);
  JobFilter f;
  f.queue = "emails";
  f.limit = 170;
  std::vector<std::string> seen = ListAll(f);
  ASSERT_EQ(seen.size(), expected.size() + 1) << "the first job too";
  seen.pop_back();
  EXPECT_EQ(seen, expected);
}

TEST_P(AdminTest, TheSampleOfADeadGroupIsItsNewestJobWithinABatchToo) {
  std::vector<NewJob> batch(5, Job("hooks"));
  Result<std::vector<EnqueueResult>> added = store_->Enqueue(batch, "test");
  ASSERT_TRUE(added.ok());
  std::map<std::string, ClaimedJob> claimed;
  for (ClaimedJob& c : ClaimN("hooks", 5)) claimed.emplace(c.job.id, std::move(c));
  ASSERT_EQ(claimed.size(), 5u);
  // The fourth job enqueued dies neither first nor last: the sample goes by
  // the order of enqueueing, not of dying.
  for (size_t i : {1, 3, 0}) {
    clock_.Advance(Millis(5));
    FailWith(claimed.at((*added)[i].id), ErrorClass::kPermanent, "HTTP_410",
             "gone " + std::to_string(i));
  }
  Result<std::vector<DeadGroup>> g = store_->GroupDead(JobFilter{});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->size(), 1u);
  EXPECT_EQ((*g)[0].count, 3);
  EXPECT_EQ((*g)[0].sample_job_id, (*added)[3].id);
  EXPECT_EQ((*g)[0].sample_message, "gone 3");
}

TEST_P(AdminTest, AnIdNamedTwiceIsReplayedOnce) {
  std::string id = MakeDead("emails", "X", "x");
  ReplayRequest req;
  req.by = "ops";
  req.filter.ids = {id, id};
  Result<ReplayResult> r = store_->ReplayJobs(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->replayed, std::vector<std::string>{id});
  QueueStats s = StatsOf("emails");
  EXPECT_EQ(s.counters["replayed"], 1);
  EXPECT_EQ(s.states, (std::map<JobState, int64_t>{{JobState::kReady, 1}}));
  int replays = 0;
  for (const Event& e : Get(id).events) replays += e.reason == "replayed";
  EXPECT_EQ(replays, 1);
}

TEST_P(AdminTest, DeadJobsAreGroupedByErrorSignature) {
  MakeDead("emails", "SMTP_REJECTED", "550 mailbox 12 unavailable");
  MakeDead("emails", "SMTP_REJECTED", "550 mailbox 977 unavailable");
  std::string newest = MakeDead("emails", "SMTP_REJECTED", "550 mailbox 3 unavailable");
  MakeDead("emails", "INVALID_EMAIL", "no at sign");
  MakeDead("hooks", "HTTP_410", "gone");
  Result<std::vector<DeadGroup>> g =
      store_->GroupDead(Filter([](JobFilter& f) { f.queue = "emails"; }));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->size(), 2u);
  const DeadGroup& big = (*g)[0];
  EXPECT_EQ(big.queue, "emails");
  EXPECT_EQ(big.code, "SMTP_REJECTED");
  EXPECT_EQ(big.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(big.signature, "# mailbox # unavailable");
  EXPECT_EQ(big.count, 3);
  EXPECT_EQ(big.sample_job_id, newest);
  EXPECT_EQ(big.sample_message, "550 mailbox 3 unavailable");
  EXPECT_EQ(big.reasons.at(DeadReason::kPermanentError), 3);
  EXPECT_EQ((*g)[1].code, "INVALID_EMAIL");
  EXPECT_EQ(store_->GroupDead(JobFilter{})->size(), 3u);
}

TEST_P(AdminTest, ReplayPutsADeadJobBackWithItsHistoryAndRecordsWhoDidIt) {
  std::string id = MakeDead("emails", "SMTP_AUTH", "bad credentials");
  clock_.Advance(Millis(60'000));
  ReplayRequest req;
  req.filter.ids = {id};
  req.by = "alice";
  req.note = "rotated the SMTP password";
  Result<ReplayResult> r = store_->ReplayJobs(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->replayed, std::vector<std::string>{id});

  retraced::Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kReady);
  EXPECT_FALSE(j.dead);
  ASSERT_TRUE(j.replay);
  EXPECT_EQ(j.replay->by, "alice");
  EXPECT_EQ(j.replay->note, "rotated the SMTP password");
  EXPECT_EQ(j.replay->at, clock_.Now());
  EXPECT_EQ(j.replay->mode, Replay::Mode::kFresh);
  EXPECT_EQ(j.attempts.size(), 1u) << "history is kept";
  const Event& e = j.events.back();
  EXPECT_EQ(e.reason, "replayed");
  EXPECT_EQ(e.from, JobState::kDead);
  EXPECT_EQ(e.to, JobState::kReady);
  EXPECT_EQ(e.actor, "alice");
  EXPECT_EQ(e.note, "mode fresh: rotated the SMTP password");

  ClaimedJob c = ClaimOne();
  EXPECT_EQ(c.job.id, id);
  EXPECT_EQ(c.attempt.trigger, Trigger::kManual);
  EXPECT_EQ(c.attempt.n, 2);
  // A fresh budget: the policy's two retries are available again.
  FailResult f = FailWith(c, ErrorClass::kTemporary, "SMTP_AUTH");
  EXPECT_EQ(f.decision.action, Action::kRetry);
  EXPECT_EQ(f.decision.reason,
            "temporary error SMTP_AUTH; fixed, retry 1 of 2: 2s; next run 12:01:02.000Z");
  EXPECT_EQ(StatsOf("emails").counters["replayed"], 1);
  EXPECT_EQ(StatsOf("emails").counters["attempts_manual"], 1);
}

TEST_P(AdminTest, ReplayWithMoreGivesExactlyThatManyRuns) {
  std::string id = MakeDead("emails", "X", "x");
  ReplayRequest req;
  req.filter.ids = {id};
  req.by = "ops";
  req.mode = Replay::Mode::kMore;
  req.more = 1;
  ASSERT_TRUE(store_->ReplayJobs(req).ok());
  EXPECT_EQ(Get(id).replay->mode, Replay::Mode::kMore);
  FailResult f = FailWith(ClaimOne(), ErrorClass::kTemporary, "X");
  EXPECT_EQ(f.decision.dead_reason, DeadReason::kAttemptsExhausted);
  EXPECT_EQ(f.decision.reason, "temporary error X; the replay allowed 1 run and all were used");
}

TEST_P(AdminTest, ReplayByFilterTakesTheMatchingDeadJobsOnly) {
  std::string a = MakeDead("emails", "SMTP_AUTH", "bad creds");
  std::string b = MakeDead("emails", "SMTP_AUTH", "bad creds");
  std::string other_code = MakeDead("emails", "INVALID_EMAIL", "x");
  std::string other_queue = MakeDead("hooks", "SMTP_AUTH", "x");
  ReplayRequest req;
  req.filter.queue = "emails";
  req.filter.code = "SMTP_AUTH";
  req.by = "ops";
  req.dry_run = true;
  Result<ReplayResult> dry = store_->ReplayJobs(req);
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ(std::set<std::string>(dry->replayed.begin(), dry->replayed.end()),
            (std::set<std::string>{a, b}));
  EXPECT_EQ(Get(a).state, JobState::kDead) << "a dry run changes nothing";
  EXPECT_EQ(Get(a).events.size(), 3u);
  req.dry_run = false;
  ASSERT_EQ(store_->ReplayJobs(req)->replayed.size(), 2u);
  EXPECT_EQ(Get(a).state, JobState::kReady);
  EXPECT_EQ(Get(b).state, JobState::kReady);
  EXPECT_EQ(Get(other_code).state, JobState::kDead);
  EXPECT_EQ(Get(other_queue).state, JobState::kDead);
}

TEST_P(AdminTest, ReplayRefusesLiveJobsUnknownIdsAndAMissingOperatorChangingNothing) {
  std::string dead = MakeDead("emails", "X", "x");
  std::string live = Add(Job());
  ReplayRequest req;
  req.filter.ids = {dead, live};
  req.by = "ops";
  Result<ReplayResult> r = store_->ReplayJobs(req);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "job " + live + " is ready; only dead or cancelled jobs can be replayed");
  EXPECT_EQ(Get(dead).state, JobState::kDead) << "all or nothing";
  req.filter.ids = {"ghost"};
  EXPECT_EQ(store_->ReplayJobs(req).status().code(), StatusCode::kNotFound);
  req.filter.ids = {dead};
  req.by = "";
  EXPECT_EQ(store_->ReplayJobs(req).status().message(), "the operator's name (--by) is required");
}

TEST_P(AdminTest, ReplayWithAFreshBudgetRestartsThePolicysDeadline) {
  NewJob n = Job();
  n.policy = *ParsePolicy("fixed(1s, retries=3, deadline=10s)");
  std::string id = Add(n);
  FailWith(ClaimOne(), ErrorClass::kPermanent, "X");
  clock_.Advance(Millis(3'600'000));
  ReplayRequest req;
  req.filter.ids = {id};
  req.by = "ops";
  ASSERT_TRUE(store_->ReplayJobs(req).ok());
  EXPECT_EQ(Get(id).deadline_at, clock_.Now() + Millis(10'000));
  EXPECT_EQ(FailWith(ClaimOne(), ErrorClass::kTemporary, "X").decision.action, Action::kRetry);
}

TEST_P(AdminTest, PurgeDeletesFinishedJobsWithTheirHistoryAndCountsThem) {
  std::string dead = MakeDead("emails", "X", "x");
  std::string live = Add(Job());
  PurgeRequest req;
  req.state = JobState::kDead;
  req.by = "ops";
  req.dry_run = true;
  EXPECT_EQ(store_->Purge(req)->purged, 1);
  EXPECT_TRUE(store_->GetJob(dead).ok());
  req.dry_run = false;
  EXPECT_EQ(store_->Purge(req)->purged, 1);
  EXPECT_EQ(store_->GetJob(dead).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetJob(live).ok());
  EXPECT_EQ(StatsOf("emails").counters["purged"], 1);

  PurgeRequest named;
  named.ids = {live};
  named.by = "ops";
  EXPECT_EQ(store_->Purge(named).status().message(),
            "job " + live + " is ready; live jobs are never purged");
  named.ids = {};
  named.state = JobState::kReady;
  EXPECT_EQ(store_->Purge(named).status().code(), StatusCode::kInvalidArgument);
  named.state.reset();
  named.by = "";
  EXPECT_EQ(store_->Purge(named).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(AdminTest, APurgeOfManyJobsTakesThemAll) {
  // Backends may remove in pieces (Redis: 500 per script call); none is left.
  constexpr int kJobs = 1201;
  std::vector<NewJob> jobs(kJobs, Job());
  ASSERT_TRUE(store_->Enqueue(jobs, "test").ok());
  for (int left = kJobs; left > 0;) {
    std::vector<ClaimedJob> batch = ClaimN("emails", 1000);
    ASSERT_FALSE(batch.empty());
    std::vector<Completion> done;
    for (const ClaimedJob& c : batch) done.push_back({c.lease, "w1"});
    ASSERT_TRUE(store_->Complete(done).ok());
    left -= static_cast<int>(batch.size());
  }
  PurgeRequest req;
  req.by = "ops";
  EXPECT_EQ(store_->Purge(req)->purged, kJobs);
  EXPECT_EQ(StatsOf("emails").counters["purged"], kJobs);
  JobFilter all;
  EXPECT_TRUE(store_->ListJobs(all)->jobs.empty());
}

TEST_P(AdminTest, OneCallCanEndMoreJobsThanAScriptTakesInOneCommand) {
  // Redis scripts write a batch's records and entries 1,000 values per
  // command (Lua's unpack has a limit near 8,000): one store call with
  // 9,000 acknowledgements, heartbeats or failures must take them all.
  constexpr int kJobs = 9000;
  NewJob n = Job();
  n.policy = *ParsePolicy("immediate(1)");
  std::vector<NewJob> jobs(kJobs, n);
  ASSERT_TRUE(store_->Enqueue(jobs, "test").ok());
  auto claim_all = [&] {
    std::vector<ClaimedJob> all;
    for (std::vector<ClaimedJob> b = ClaimN("emails", 1000); !b.empty(); b = ClaimN("emails", 1000))
      all.insert(all.end(), b.begin(), b.end());
    return all;
  };
  std::vector<ClaimedJob> first = claim_all();
  ASSERT_EQ(first.size(), size_t{kJobs});
  std::vector<Lease> leases;
  for (const ClaimedJob& c : first) leases.push_back(c.lease);
  Result<std::vector<Status>> beat = store_->Heartbeat(leases, Millis(60'000));
  ASSERT_TRUE(beat.ok()) << beat.status().message();
  for (const Status& st : *beat) ASSERT_TRUE(st.ok()) << st.message();
  std::vector<FailRequest> failures;
  for (const ClaimedJob& c : first) {
    FailRequest f;
    f.lease = c.lease;
    f.worker = "w1";
    f.error = Classify({ErrorClass::kTemporary, "X", "", ""}, {}, c.job.policy);
    failures.push_back(f);
  }
  Result<std::vector<Result<FailResult>>> failed = store_->FailMany(failures);
  ASSERT_TRUE(failed.ok()) << failed.status().message();
  for (const Result<FailResult>& r : *failed) ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<ClaimedJob> second = claim_all();
  ASSERT_EQ(second.size(), size_t{kJobs});
  std::vector<Completion> done;
  for (const ClaimedJob& c : second) done.push_back({c.lease, "w1"});
  Result<std::vector<Status>> completed = store_->Complete(done);
  ASSERT_TRUE(completed.ok()) << completed.status().message();
  for (const Status& st : *completed) ASSERT_TRUE(st.ok()) << st.message();
  QueueStats stats = StatsOf("emails");
  EXPECT_EQ(stats.counters["completed"], kJobs);
  EXPECT_EQ(stats.counters["retries_scheduled"], kJobs);
  EXPECT_EQ(stats.states[JobState::kCompleted], kJobs);
  retraced::Job one = Get(second.back().job.id);
  ASSERT_EQ(one.attempts.size(), 2u);
  EXPECT_EQ(one.attempts[1].outcome, Outcome::kSucceeded);
}

TEST_P(AdminTest, PurgeOlderThanKeepsRecentJobs) {
  std::string old = MakeDead("emails", "X", "x");
  clock_.Advance(Millis(3'600'000));
  std::string recent = MakeDead("emails", "X", "x");
  PurgeRequest req;
  req.older_than = Millis(1'800'000);
  req.by = "ops";
  EXPECT_EQ(store_->Purge(req)->purged, 1);
  EXPECT_FALSE(store_->GetJob(old).ok());
  EXPECT_TRUE(store_->GetJob(recent).ok());
}

TEST_P(AdminTest, RetentionTrimsCompletedJobsAndCountsEveryTrim) {
  StoreOptions o;
  o.retention.completed_max_count = 2;
  o.retention.dead_max_age = Millis(60'000);
  Reopen(o);
  std::vector<std::string> done;
  for (int i = 0; i < 5; ++i) {
    done.push_back(Add(Job()));
    CompleteOk(ClaimOne());
    clock_.Advance(Millis(1));
  }
  std::string dead = MakeDead("emails", "X", "x");
  std::string live = Add(Job());
  EXPECT_EQ(*store_->ApplyRetention(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(store_->GetJob(done[i]).ok()) << i;
  EXPECT_TRUE(store_->GetJob(done[3]).ok());
  EXPECT_TRUE(store_->GetJob(done[4]).ok());
  EXPECT_TRUE(store_->GetJob(dead).ok()) << "not old enough yet";
  clock_.Advance(Millis(60'000));
  EXPECT_EQ(*store_->ApplyRetention(), 1);
  EXPECT_FALSE(store_->GetJob(dead).ok());
  EXPECT_TRUE(store_->GetJob(live).ok());
  EXPECT_EQ(StatsOf("emails").counters["trimmed"], 4);
  EXPECT_EQ(*store_->ApplyRetention(), 0);
}

TEST_P(AdminTest, StatsCountStatesAttemptsRetriesAndDeaths) {
  Add(Job());
  Add(Job());
  NewJob later = Job();
  later.run_at = clock_.Now() + Millis(60'000);
  Add(later);
  ClaimedJob c = ClaimOne();
  FailWith(c, ErrorClass::kTemporary, "X");
  clock_.Advance(Millis(2000));
  std::vector<ClaimedJob> both = ClaimN("emails", 2);
  ASSERT_EQ(both.size(), 2u);
  CompleteOk(both[0]);
  FailWith(both[1], ErrorClass::kPermanent, "Y");
  QueueStats s = StatsOf("emails");
  EXPECT_EQ(s.queue, "emails");
  EXPECT_EQ(s.states[JobState::kScheduled], 1);
  EXPECT_EQ(s.states[JobState::kCompleted], 1);
  EXPECT_EQ(s.states[JobState::kDead], 1);
  EXPECT_EQ(s.counters["enqueued"], 3);
  EXPECT_EQ(s.counters["attempts"], 3);
  EXPECT_EQ(s.counters["attempts_initial"], 2);
  EXPECT_EQ(s.counters["attempts_auto"], 1);
  EXPECT_EQ(s.counters["retries_scheduled"], 1);
  EXPECT_EQ(s.counters["completed"], 1);
  EXPECT_EQ(s.counters["failed"], 2);
  EXPECT_EQ(s.counters["dead_permanent_error"], 1);
  Add(Job("other"));
  Result<std::vector<QueueStats>> all = store_->Stats(std::nullopt);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].queue, "emails");
  EXPECT_EQ((*all)[1].queue, "other");
}

TEST_P(AdminTest, StateCountsFollowEveryKindOfChange) {
  // Stats' counts per state must equal the jobs themselves after every way a
  // job is created, moved or removed.
  StoreOptions o;
  o.retention.completed_max_count = 1;
  Reopen(o);
  auto check = [&](const std::string& step) {
    std::map<JobState, int64_t> listed;
    for (const char* queue : {"emails", "reports"}) {
      JobFilter f;
      f.queue = queue;
      f.limit = 1000;
      Result<JobPage> page = store_->ListJobs(f);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      for (const JobSummary& j : page->jobs) ++listed[j.job.state];
    }
    std::map<JobState, int64_t> counted;
    Result<std::vector<QueueStats>> stats = store_->Stats(std::nullopt);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    for (const QueueStats& q : *stats) {
      for (const auto& [state, n] : q.states) {
        if (n != 0) counted[state] += n;
      }
    }
    EXPECT_EQ(counted, listed) << "after " << step;
    // And a listing by state finds them, across queues and in each.
    for (JobState state :
         {JobState::kScheduled, JobState::kReady, JobState::kActive, JobState::kRetryWait,
          JobState::kCompleted, JobState::kDead, JobState::kCancelled}) {
      int64_t found = 0;
      for (std::optional<std::string> queue :
           {std::optional<std::string>(), std::optional<std::string>("emails"),
            std::optional<std::string>("reports")}) {
        JobFilter f;
        f.state = state;
        f.queue = queue;
        f.limit = 1000;
        Result<JobPage> page = store_->ListJobs(f);
        ASSERT_TRUE(page.ok()) << page.status().ToString();
        for (const JobSummary& j : page->jobs) EXPECT_EQ(j.job.state, state);
        found += static_cast<int64_t>(page->jobs.size()) * (queue ? 1 : -1);
        if (!queue) {
          EXPECT_EQ(static_cast<int64_t>(page->jobs.size()), listed[state]) << step;
        }
      }
      EXPECT_EQ(found, 0) << "the queues' listings add up to the whole, after " << step;
    }
  };
  for (int i = 0; i < 3; ++i) Add(Job());
  Add(Job("reports"));
  NewJob later = Job();
  later.run_at = clock_.Now() + Millis(1000);
  Add(later);
  NewJob unique = Job();
  unique.unique_key = "k";
  Add(unique);
  ASSERT_FALSE(store_->Enqueue({&unique, 1}, "test")->at(0).created);
  check("enqueues and a refused one");
  CompleteOk(ClaimOne());
  check("a completion");
  FailWith(ClaimOne(), ErrorClass::kTemporary, "X");  // retry_wait (the default policy waits)
  check("a retry");
  FailWith(ClaimOne(), ErrorClass::kPermanent, "Y");  // dead
  check("a death");
  ClaimedJob lost = ClaimOne("reports", "w1", Millis(1000));
  clock_.Advance(Millis(5000));  // the scheduled job and the retry are due, the lease expired
  ASSERT_EQ(store_->RecoverExpired(10)->size(), 1u);
  check("a recovery");
  std::vector<ClaimedJob> due = ClaimN("emails", 10);
  ASSERT_EQ(due.size(), 3u);  // the unique one, the scheduled one, the retry
  CompleteOk(due[2]);
  check("promotions and claims");
  ASSERT_TRUE(store_->Release({&due[0].lease, 1}, "w1").ok());
  ASSERT_TRUE(store_->Cancel(due[1].job.id, "ops", "").ok());
  check("a release and a cancel");
  ReplayRequest replay;
  replay.by = "ops";
  replay.filter.ids = {due[1].job.id};
  ASSERT_TRUE(store_->ReplayJobs(replay).ok());
  replay.filter = {};
  replay.dry_run = true;
  ASSERT_TRUE(store_->ReplayJobs(replay).ok());
  check("a replay and a dry run");
  clock_.Advance(Millis(3'600'000));  // every retry is due
  for (const char* queue : {"emails", "reports"}) {
    for (const ClaimedJob& c : ClaimN(queue, 10)) CompleteOk(c);
  }
  check("completions");
  EXPECT_GT(*store_->ApplyRetention(), 0);
  check("retention");
  PurgeRequest purge;
  purge.by = "ops";
  EXPECT_GT(store_->Purge(purge)->purged, 0);
  check("a purge");
}

}  // namespace
}  // namespace retraced::testing
