// The conformance suite's fixture: every test runs once per store backend,
// against a real backend (a real SQLite file; later a real redis-server),
// with a manual clock so that time-dependent behaviour is exact.
#ifndef RETRACED_TESTS_STORE_STORE_FIXTURE_H_
#define RETRACED_TESTS_STORE_STORE_FIXTURE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "retraced/decide.h"
#include "retraced/store.h"

namespace retraced::testing {

// A backend under test: opens handles to one fresh store. Each call of `open`
// returns another handle (another connection) to the same store.
struct Backend {
  std::string name;
  // Prepares a fresh, empty store; returns a token that `open` takes.
  std::function<std::string()> create;
  std::function<Result<std::unique_ptr<Store>>(const std::string& where, const StoreOptions&)> open;
  std::function<void(const std::string& where)> destroy;
};

std::vector<Backend> Backends();
inline void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Another handle to the same store (its own connection), sharing the clock.
  std::unique_ptr<Store> OpenAnother(StoreOptions options = {});
  // Reopens the main handle with other options.
  void Reopen(StoreOptions options);

  // Shorthands that fail the test on error.
  std::string Add(NewJob job);
  NewJob Job(std::string queue = "emails", std::string type = "send");
  std::vector<ClaimedJob> ClaimN(const std::string& queue, int max, std::string worker = "w1",
                                 Millis lease = Millis(30'000));
  ClaimedJob ClaimOne(const std::string& queue = "emails", std::string worker = "w1",
                      Millis lease = Millis(30'000));
  void CompleteOk(const ClaimedJob& c);
  FailResult FailWith(const ClaimedJob& c, ErrorClass cls, std::string code,
                      std::string message = "it failed", Outcome outcome = Outcome::kFailed);
  retraced::Job Get(const std::string& id);
  QueueStats StatsOf(const std::string& queue);
  // The ids of every page of a listing, in order (f.limit jobs a page).
  std::vector<std::string> ListAll(JobFilter f);

  ManualClock clock_{*ParseTime("2026-11-28T12:00:00.000Z")};
  std::string where_;
  std::unique_ptr<Store> store_;
};

// The reasons of a job's events, in order.
std::vector<std::string> EventReasons(const retraced::Job& job);

}  // namespace retraced::testing

#endif  // RETRACED_TESTS_STORE_STORE_FIXTURE_H_
