// A hard bound on every test of the binary it is linked into (GPU tests that
// wait on collectives must fail, never hang a batch): a gtest listener arms a
// deadline at each test's start (DS_TEST_TIMEOUT_S seconds, default 150: above the 120 s the multi-process tests allow their children); a
// thread that finds it passed prints the test's name and ends the process.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  Watchdog() {
    const char* env = std::getenv("DS_TEST_TIMEOUT_S");
    limit_s_ = env && std::atoi(env) > 0 ? std::atoi(env) : 150;
    std::thread([this] { run(); }).detach();
  }
  void OnTestStart(const ::testing::TestInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(limit_s_);
    armed_ = true;
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
  }

 private:
  void run() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      std::lock_guard<std::mutex> lock(mu_);
      if (armed_ && std::chrono::steady_clock::now() > deadline_) {
        std::fprintf(stderr, "\n[ WATCHDOG ] %s ran longer than %d s (DS_TEST_TIMEOUT_S): ending the process\n",
                     name_.c_str(), limit_s_);
        std::fflush(stdout);
        std::fflush(stderr);
        std::_Exit(3);
      }
    }
  }
  std::mutex mu_;
  std::string name_;
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false;
  int limit_s_ = 150;
};

const bool kRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog());
  return true;
}();

}  // namespace
