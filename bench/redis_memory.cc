// Redis memory per job: enqueues 10,000 jobs with a 90-byte JSON payload, runs
// them to the end with a real worker (one attempt each to completion; four
// attempts each to the dead letter queue), and divides the growth of the
// server's used_memory (INFO memory) by the number of jobs.
//
//   redis-server --port 6399 --save "" --appendonly no &
//   build/release/bench/redis_memory redis://127.0.0.1:6399/0
//
// The server's data is flushed first: give it a server of its own.
#include <iostream>

#include "retraced/worker.h"
#include "store/redis/redis_connection.h"

using namespace retraced;

namespace {

int64_t UsedMemory(redis::Connection& c) {
  Result<redis::Reply> r = c.Command({"INFO", "memory"});
  if (!r.ok()) return -1;
  size_t p = r->str.find("used_memory:");
  return std::stoll(r->str.substr(p + 12));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: redis_memory REDIS_URL\n";
    return 2;
  }
  Result<redis::RedisAddress> address = redis::ParseRedisUrl(argv[1]);
  if (!address.ok()) {
    std::cerr << address.status().message() << "\n";
    return 2;
  }
  Result<std::unique_ptr<redis::Connection>> conn = redis::Connection::Open(*address);
  Result<std::unique_ptr<Store>> store = OpenStore(argv[1]);
  if (!conn.ok() || !store.ok()) {
    std::cerr << (conn.ok() ? store.status() : conn.status()).message() << "\n";
    return 1;
  }
  constexpr int kJobs = 10'000;
  const std::string payload =
      R"({"to":"someone@example.com","template":"welcome","locale":"en-US","user_id":1234567,"x":1})";
  for (const std::string kind : {"completed", "dead"}) {
    if (!(*conn)->Command({"FLUSHALL"}).ok()) return 1;
    int64_t before = UsedMemory(**conn);
    for (int b = 0; b < kJobs / 1000; ++b) {
      std::vector<NewJob> batch(1000);
      for (NewJob& j : batch) {
        j.queue = kind;
        j.type = kind;
        j.payload = payload;
        j.policy = *ParsePolicy(kind == "dead" ? "immediate(3)" : "none");
      }
      if (!(*store)->Enqueue(batch, "bench").ok()) return 1;
    }
    WorkerOptions o;
    o.queues = {kind};
    o.drain = true;
    o.concurrency = 4;
    o.log = [](std::string_view) {};
    Worker w(**store, o);
    w.Handle("completed", [](const JobContext&) { return HandlerResult::Success(); });
    w.Handle("dead", [](const JobContext&) {
      return HandlerResult::Temporary("UPSTREAM_DOWN", "upstream is down");
    });
    if (!w.Start().ok()) return 1;
    w.Wait();
    int64_t after = UsedMemory(**conn);
    std::cout << kind << ": " << kJobs << " jobs, payload " << payload.size() << " bytes, "
              << (kind == "dead" ? 4 : 1) << (kind == "dead" ? " attempts" : " attempt")
              << " each: " << (after - before) / kJobs << " bytes per job\n";
  }
  return 0;
}
