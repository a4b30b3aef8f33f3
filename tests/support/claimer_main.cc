// Test helper: a minimal worker process for multi-process store tests. Claims
// jobs of a queue in batches and completes them until the queue has nothing
// ready, printing each claimed job id on its own line.
//   store_claimer STORE_URL QUEUE WORKER_ID BATCH [GO_FILE]
// With GO_FILE it prints READY once the store is open and waits until the
// file exists, so that several processes start claiming together.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "retraced/store.h"

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: store_claimer STORE_URL QUEUE WORKER_ID BATCH [GO_FILE]\n";
    return 2;
  }
  using namespace retraced;
  Result<std::unique_ptr<Store>> store = OpenStore(argv[1]);
  if (!store.ok()) {
    std::cerr << store.status().ToString() << "\n";
    return 1;
  }
  const std::string queue = argv[2], worker = argv[3];
  const int batch = std::stoi(argv[4]);
  if (argc == 6) {
    std::cout << "READY" << std::endl;
    while (!std::filesystem::exists(argv[5])) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  while (true) {
    Result<std::vector<ClaimedJob>> claimed =
        (*store)->Claim(ClaimRequest{queue, worker, batch, Millis(60'000)});
    if (!claimed.ok()) {
      std::cerr << "claim: " << claimed.status().ToString() << "\n";
      return 1;
    }
    if (claimed->empty()) return 0;
    std::vector<Completion> done;
    for (const ClaimedJob& c : *claimed) {
      std::cout << "CLAIMED " << c.job.id << "\n";
      done.push_back({c.lease, worker});
    }
    Result<std::vector<Status>> r = (*store)->Complete(done);
    if (!r.ok()) {
      std::cerr << "complete: " << r.status().ToString() << "\n";
      return 1;
    }
    for (const Status& s : *r) {
      if (!s.ok()) {
        std::cerr << "complete: " << s.ToString() << "\n";
        return 1;
      }
    }
  }
}
