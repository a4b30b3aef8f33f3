#include <gtest/gtest.h>

#include <set>

#include "retraced/job.h"

namespace retraced {
namespace {

constexpr JobState kAll[] = {JobState::kScheduled, JobState::kReady,     JobState::kActive,
                             JobState::kRetryWait, JobState::kCompleted, JobState::kDead,
                             JobState::kCancelled};

TEST(StateMachine, AllowsExactlyTheDocumentedMoves) {
  using S = JobState;
  const std::set<std::pair<S, S>> legal = {
      {S::kScheduled, S::kReady},  {S::kScheduled, S::kCancelled},
      {S::kReady, S::kActive},     {S::kReady, S::kCancelled},
      {S::kActive, S::kCompleted}, {S::kActive, S::kRetryWait},
      {S::kActive, S::kReady},     {S::kActive, S::kDead},
      {S::kActive, S::kCancelled}, {S::kRetryWait, S::kReady},
      {S::kRetryWait, S::kDead},   {S::kRetryWait, S::kCancelled},
      {S::kDead, S::kReady},       {S::kDead, S::kScheduled},
      {S::kCancelled, S::kReady},  {S::kCancelled, S::kScheduled},
  };
  for (S from : kAll) {
    for (S to : kAll) {
      Status s = CheckTransition(from, to);
      EXPECT_EQ(s.ok(), legal.count({from, to}) == 1) << Name(from) << " -> " << Name(to);
    }
  }
}

TEST(StateMachine, RefusalNamesBothStates) {
  Status s = CheckTransition(JobState::kCompleted, JobState::kReady);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "a job cannot move from completed to ready");
  EXPECT_FALSE(CheckTransition(JobState::kScheduled, JobState::kActive).ok());
  EXPECT_FALSE(CheckTransition(JobState::kDead, JobState::kActive).ok());
  EXPECT_FALSE(CheckTransition(JobState::kRetryWait, JobState::kActive).ok());
}

TEST(Vocabulary, NamesRoundTripAndUnknownNamesAreRefused) {
  for (JobState s : kAll) EXPECT_EQ(*ParseJobState(Name(s)), s);
  EXPECT_EQ(Name(JobState::kRetryWait), "retry_wait");
  for (Trigger t : {Trigger::kInitial, Trigger::kAuto, Trigger::kManual, Trigger::kRecovery}) {
    EXPECT_EQ(*ParseTrigger(Name(t)), t);
  }
  for (Outcome o :
       {Outcome::kSucceeded, Outcome::kFailed, Outcome::kLeaseExpired, Outcome::kTimedOut}) {
    EXPECT_EQ(*ParseOutcome(Name(o)), o);
  }
  for (DeadReason r :
       {DeadReason::kPermanentError, DeadReason::kAttemptsExhausted, DeadReason::kDeadlineExceeded,
        DeadReason::kPoison, DeadReason::kCancelled}) {
    EXPECT_EQ(*ParseDeadReason(Name(r)), r);
  }
  Result<JobState> bad = ParseJobState("waiting");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "unknown job state 'waiting'; expected scheduled, ready, active, retry_wait, "
            "completed, dead or cancelled");
  EXPECT_FALSE(ParseErrorClass("Temporary").ok());
}

TEST(Terminal, CompletedDeadAndCancelledOnly) {
  for (JobState s : kAll) {
    bool expected = s == JobState::kCompleted || s == JobState::kDead || s == JobState::kCancelled;
    EXPECT_EQ(IsTerminal(s), expected) << Name(s);
  }
}

TEST(MakeError, CapsFieldsAndRecordsWhatWasCut) {
  std::string long_message(3000, 'm');
  std::string long_detail = std::string(5000, 'a') + "THE END";
  Error e = MakeError(ErrorClass::kTemporary, "TIMEOUT", long_message, long_detail);
  EXPECT_EQ(e.message.size(), Error::kMaxMessageBytes);
  EXPECT_EQ(e.message_cut_bytes, 3000 - Error::kMaxMessageBytes);
  EXPECT_EQ(e.detail.size(), Error::kMaxDetailBytes);
  EXPECT_EQ(e.detail_cut_bytes, long_detail.size() - Error::kMaxDetailBytes);
  EXPECT_TRUE(e.detail.ends_with("THE END")) << "the tail of stderr is what matters";

  Error small = MakeError(ErrorClass::kPermanent, "BAD", "short", "tiny");
  EXPECT_EQ(small.message, "short");
  EXPECT_EQ(small.message_cut_bytes, 0u);
  EXPECT_EQ(small.detail_cut_bytes, 0u);
}

TEST(MakeError, RecordsACutCode) {
  Error e = MakeError(ErrorClass::kTemporary, std::string(200, 'C'), "", "");
  EXPECT_EQ(e.code.size(), Error::kMaxCodeBytes);
  EXPECT_EQ(e.code_cut_bytes, 200 - Error::kMaxCodeBytes);
}

TEST(MakeError, ReplacesInvalidUtf8SoRecordsStayValid) {
  Error e = MakeError(ErrorClass::kTemporary, "X", "bad \xff byte",
                      "overlong \xC0\xAF, surrogate \xED\xA0\x80, ok \xE2\x82\xAC");
  EXPECT_EQ(e.message, "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(e.detail,
            "overlong \xEF\xBF\xBD\xEF\xBF\xBD, surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD, ok "
            "\xE2\x82\xAC");
}

TEST(MakeError, NeverSplitsAUtf8Character) {
  // 'é' is two bytes; 1023 ASCII bytes then 'é' puts the cap in its middle.
  std::string message = std::string(1023, 'x') + "\xC3\xA9" + "tail";
  Error e = MakeError(ErrorClass::kTemporary, "X", message, "");
  EXPECT_EQ(e.message.size(), 1023u);
  EXPECT_EQ(e.message_cut_bytes, message.size() - 1023);
  std::string detail = "head\xC3\xA9" + std::string(4095, 'y');
  Error d = MakeError(ErrorClass::kTemporary, "X", "", detail);
  EXPECT_EQ(d.detail, std::string(4095, 'y'));
}

TEST(ReplayMode, ParsesFreshAndMore) {
  Replay r;
  ASSERT_TRUE(ParseReplayMode("more=3", r).ok());
  EXPECT_EQ(r.mode, Replay::Mode::kMore);
  EXPECT_EQ(r.more, 3);
  EXPECT_EQ(ReplayModeText(r), "more=3");
  ASSERT_TRUE(ParseReplayMode("fresh", r).ok());
  EXPECT_EQ(r.mode, Replay::Mode::kFresh);
  EXPECT_EQ(ReplayModeText(r), "fresh");
  for (const char* bad : {"", "more=", "more=0", "more=-1", "more=x", "more=10001", "again"}) {
    EXPECT_FALSE(ParseReplayMode(bad, r).ok()) << bad;
  }
}

}  // namespace
}  // namespace retraced
