#include "retraced/classify.h"

#include <gtest/gtest.h>

namespace retraced {
namespace {

RetryPolicy P(std::string_view text) { return *ParsePolicy(text); }

TEST(Classify, UnclassifiedFailuresUseTheQueueDefault) {
  ClassifierConfig queue;
  Classified c = Classify({std::nullopt, "BOOM", "it broke", "trace"}, queue, P("none"));
  EXPECT_EQ(c.error.error_class, ErrorClass::kTemporary);
  EXPECT_EQ(c.source, "unclassified, queue default");
  EXPECT_EQ(c.error.code, "BOOM");
  EXPECT_EQ(c.error.message, "it broke");
  EXPECT_EQ(c.error.detail, "trace");

  queue.unclassified = ErrorClass::kPermanent;
  EXPECT_EQ(Classify({std::nullopt, "BOOM", "", ""}, queue, P("none")).error.error_class,
            ErrorClass::kPermanent);
}

TEST(Classify, HandlerClassStandsUnlessTheQueueTableOrPolicySaysOtherwise) {
  ClassifierConfig queue;
  queue.codes["HTTP_404"] = ErrorClass::kPermanent;
  queue.codes["HTTP_503"] = ErrorClass::kTemporary;
  RetryPolicy plain = P("fixed(1s)");

  Classified own = Classify({ErrorClass::kPermanent, "INVALID_EMAIL", "", ""}, queue, plain);
  EXPECT_EQ(own.error.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(own.source, "");

  Classified table = Classify({ErrorClass::kTemporary, "HTTP_404", "", ""}, queue, plain);
  EXPECT_EQ(table.error.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(table.source, "queue table, handler said temporary");

  RetryPolicy overriding = P("fixed(1s, retry_on=[HTTP_404], dead_on=[HTTP_503])");
  EXPECT_EQ(Classify({std::nullopt, "HTTP_404", "", ""}, queue, overriding).error.error_class,
            ErrorClass::kTemporary);
  Classified dead = Classify({std::nullopt, "HTTP_503", "", ""}, queue, overriding);
  EXPECT_EQ(dead.error.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(dead.source, "dead_on in policy");
}

TEST(Classify, MatchesTheCodeAsStored) {
  std::string long_code(200, 'C');
  RetryPolicy p = P("fixed(1s, dead_on=[" + long_code.substr(0, Error::kMaxCodeBytes) + "])");
  Classified c = Classify({ErrorClass::kTemporary, long_code, "", ""}, ClassifierConfig{}, p);
  EXPECT_EQ(c.error.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(c.error.code_cut_bytes, 200 - Error::kMaxCodeBytes);
}

TEST(Classify, CapsTheErrorText) {
  Classified c = Classify({std::nullopt, "X", std::string(5000, 'm'), std::string(9000, 'd')},
                          ClassifierConfig{}, P("none"));
  EXPECT_EQ(c.error.message.size(), Error::kMaxMessageBytes);
  EXPECT_EQ(c.error.detail_cut_bytes, 9000 - Error::kMaxDetailBytes);
}

TEST(ExecExit, ZeroIsSuccess) {
  EXPECT_FALSE(FromExecExit({false, 0, "{\"class\":\"permanent\"}\n", ""}).has_value())
      << "exit status 0 is success whatever stdout says";
}

TEST(ExecExit, TempfailIsTemporaryAndOtherSysexitsArePermanent) {
  std::optional<HandlerFailure> temp = FromExecExit({false, 75, "", "smtp busy\n"});
  ASSERT_TRUE(temp);
  EXPECT_EQ(temp->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(temp->code, "EX_TEMPFAIL");
  EXPECT_EQ(temp->message, "exited with status 75 (EX_TEMPFAIL)");
  EXPECT_EQ(temp->detail, "smtp busy\n");

  for (int status = 64; status <= 78; ++status) {
    if (status == 75) continue;
    std::optional<HandlerFailure> f = FromExecExit({false, status, "", ""});
    ASSERT_TRUE(f);
    EXPECT_EQ(f->error_class, ErrorClass::kPermanent) << status;
    EXPECT_EQ(f->code, SysexitsName(status));
  }
  EXPECT_EQ(SysexitsName(64), "EX_USAGE");
  EXPECT_EQ(SysexitsName(65), "EX_DATAERR");
  EXPECT_EQ(SysexitsName(78), "EX_CONFIG");
  EXPECT_EQ(SysexitsName(63), "");
}

TEST(ExecExit, OtherStatusesAndSignalsAreUnclassified) {
  std::optional<HandlerFailure> one = FromExecExit({false, 1, "", ""});
  EXPECT_FALSE(one->error_class);
  EXPECT_EQ(one->code, "EXIT_1");
  EXPECT_EQ(one->message, "exited with status 1");
  std::optional<HandlerFailure> killed = FromExecExit({true, 9, "", ""});
  EXPECT_FALSE(killed->error_class);
  EXPECT_EQ(killed->code, "SIGKILL");
  EXPECT_EQ(killed->message, "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(FromExecExit({true, 40, "", ""})->code, "SIGNAL_40");
}

TEST(ExecExit, JsonOnTheLastStdoutLineOverridesClassCodeAndMessage) {
  std::optional<HandlerFailure> f = FromExecExit(
      {false, 1,
       "sending...\n{\"class\":\"permanent\",\"code\":\"INVALID_EMAIL\",\"message\":\"no such "
       "mailbox\"}\n",
       "traceback"});
  ASSERT_TRUE(f);
  EXPECT_EQ(f->error_class, ErrorClass::kPermanent);
  EXPECT_EQ(f->code, "INVALID_EMAIL");
  EXPECT_EQ(f->message, "no such mailbox");
  EXPECT_EQ(f->detail, "traceback");

  // Only the fields given are overridden; an unknown class is ignored.
  std::optional<HandlerFailure> partial =
      FromExecExit({false, 75, "{\"class\":\"sometimes\",\"message\":\"later\"}", ""});
  EXPECT_EQ(partial->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(partial->code, "EX_TEMPFAIL");
  EXPECT_EQ(partial->message, "later");

  // JSON that is not on the last line, or is broken, changes nothing.
  std::optional<HandlerFailure> earlier =
      FromExecExit({false, 1, "{\"class\":\"permanent\"}\ndone\n", ""});
  EXPECT_FALSE(earlier->error_class);
  std::optional<HandlerFailure> broken = FromExecExit({false, 1, "{\"class\":", ""});
  EXPECT_FALSE(broken->error_class);
  EXPECT_EQ(broken->code, "EXIT_1");
}

TEST(ToFailure, CarriesClassCodeAndSource) {
  Classified c = Classify({std::nullopt, "X", "", ""}, ClassifierConfig{}, P("none"));
  Failure f = ToFailure(Outcome::kTimedOut, c);
  EXPECT_EQ(f.outcome, Outcome::kTimedOut);
  EXPECT_EQ(f.error_class, ErrorClass::kTemporary);
  EXPECT_EQ(f.code, "X");
  EXPECT_EQ(f.class_source, "unclassified, queue default");
}

}  // namespace
}  // namespace retraced
