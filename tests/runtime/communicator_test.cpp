// Gloo-backed communicator: in-process groups of 2, 3 and 4 ranks (one thread
// each) over loopback TCP.
#include <gtest/gtest.h>

#include <thread>

#include "runtime/common/parallel_for.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/tcp_store.h"

namespace ds {
namespace {

// Runs fn(rank, comm) on one thread per rank; returns each rank's status.
template <typename F>
std::vector<Status> run_ranks(std::vector<std::unique_ptr<Communicator>>& group, F fn) {
  std::vector<Status> st(group.size());
  parallel_for_each(group.size(), [&](size_t r) { st[r] = fn(static_cast<int>(r), *group[r]); });
  return st;
}

class CommunicatorGroup : public ::testing::TestWithParam<int> {};

TEST_P(CommunicatorGroup, CollectivesAgree) {
  const int n = GetParam();
  auto g = create_local_group(n, CommOptions{});
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto& group = g.value();
  ASSERT_EQ(group.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(group[r]->rank(), r);
    EXPECT_EQ(group[r]->size(), n);
  }
  std::vector<std::vector<float>> reduced(n), gathered(n), rows(n);
  std::vector<std::string> bcast(n);
  auto st = run_ranks(group, [&](int r, Communicator& c) -> Status {
    // all_reduce_sum: element i of rank r is r * 10 + i.
    reduced[r].resize(5);
    for (int i = 0; i < 5; ++i) reduced[r][i] = static_cast<float>(r * 10 + i);
    DS_RETURN_IF_ERROR(c.all_reduce_sum(reduced[r].data(), 5));
    // all_gather: 3 floats per rank.
    std::vector<float> in{static_cast<float>(r), static_cast<float>(r) + 0.5f, static_cast<float>(-r)};
    gathered[r].resize(3 * n);
    DS_RETURN_IF_ERROR(c.all_gather(in.data(), 3, gathered[r].data()));
    // all_gather_rows: 2 rows of 2 -> 2 rows of 2n.
    std::vector<float> part{static_cast<float>(100 * r), static_cast<float>(100 * r + 1), static_cast<float>(100 * r + 2),
                            static_cast<float>(100 * r + 3)};
    std::vector<float> scratch;
    rows[r].resize(4 * n);
    DS_RETURN_IF_ERROR(all_gather_rows(c, part.data(), 2, 2, rows[r].data(), scratch));
    // broadcast from the last rank, a payload longer than the receivers' strings.
    bcast[r] = r == n - 1 ? std::string(1000, 'x') + "end" : "short";
    DS_RETURN_IF_ERROR(c.broadcast(bcast[r], n - 1));
    return c.barrier();
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].message();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(reduced[r][i], static_cast<float>(10 * n * (n - 1) / 2 + n * i));
    for (int k = 0; k < n; ++k) {
      EXPECT_EQ(gathered[r][3 * k], static_cast<float>(k));
      EXPECT_EQ(gathered[r][3 * k + 1], static_cast<float>(k) + 0.5f);
      EXPECT_EQ(gathered[r][3 * k + 2], static_cast<float>(-k));
      for (int row = 0; row < 2; ++row)
        for (int j = 0; j < 2; ++j)
          EXPECT_EQ(rows[r][row * 2 * n + k * 2 + j], static_cast<float>(100 * k + row * 2 + j));
    }
    EXPECT_EQ(bcast[r], std::string(1000, 'x') + "end");
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, CommunicatorGroup, ::testing::Values(2, 3, 4));

TEST(Communicator, SingleRankIsIdentity) {
  auto g = create_local_group(1, CommOptions{});
  ASSERT_TRUE(g.ok()) << g.status().message();
  Communicator& c = *g.value()[0];
  std::vector<float> x{1, 2};
  ASSERT_TRUE(c.all_reduce_sum(x.data(), 2).ok());
  EXPECT_EQ(x, (std::vector<float>{1, 2}));
  std::string s = "abc";
  ASSERT_TRUE(c.broadcast(s, 0).ok());
  EXPECT_EQ(s, "abc");
  EXPECT_FALSE(c.broadcast(s, 1).ok());
}

TEST(Communicator, MissingPeerTimesOutWithClearError) {
  CommOptions o;
  o.timeout = std::chrono::milliseconds(300);
  auto g = create_local_group(2, o);
  ASSERT_TRUE(g.ok()) << g.status().message();
  // Rank 1 never joins the collective: rank 0 must give up with an error that
  // names its rank, the collective and the timeout, and stay failed afterwards.
  std::vector<float> x(4, 1.0f);
  Status s = g.value()[0]->all_reduce_sum(x.data(), x.size());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 0/2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("all_reduce_sum"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("timeout 300 ms"), std::string::npos) << s.message();
  Status again = g.value()[0]->barrier();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("earlier collective failed"), std::string::npos) << again.message();
}

// A free TCP port on the loopback interface (bound then released).
int free_port() {
  auto s = StoreServer::start("127.0.0.1", 0);
  return s.ok() ? (*s)->port() : 0;
}

TEST(Communicator, ConnectGroupThroughTheTcpStore) {
  const int n = 3;
  const int port = free_port();
  ASSERT_GT(port, 0);
  std::vector<Result<std::unique_ptr<Communicator>>> res;
  for (int r = 0; r < n; ++r) res.emplace_back(Status::Error("not run"));
  std::vector<std::thread> ts;
  // Rank 2 starts first: clients retry until rank 0 serves the store.
  for (int r = n - 1; r >= 0; --r)
    ts.emplace_back([&, r] {
      DistInitOptions o;
      o.rank = r;
      o.size = n;
      o.init_addr = "127.0.0.1:" + std::to_string(port);
      res[static_cast<size_t>(r)] = connect_group(o);
    });
  for (auto& t : ts) t.join();
  std::vector<std::unique_ptr<Communicator>> group;
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(res[r].ok()) << "rank " << r << ": " << res[r].status().message();
    group.push_back(std::move(res[r]).value());
  }
  std::vector<std::vector<float>> x(n, std::vector<float>(3, 1.0f));
  auto st = run_ranks(group, [&](int r, Communicator& c) -> Status {
    DS_RETURN_IF_ERROR(c.all_reduce_sum(x[r].data(), 3));
    // Same plan bytes everywhere: accepted.
    return check_same_plan(c, "plan bytes");
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].message();
    EXPECT_EQ(x[r], std::vector<float>(3, static_cast<float>(n)));
  }
  // Rank 1 holds another plan: every rank refuses.
  st = run_ranks(group, [&](int r, Communicator& c) { return check_same_plan(c, r == 1 ? "other" : "plan bytes"); });
  for (int r = 0; r < n; ++r) {
    ASSERT_FALSE(st[r].ok());
    EXPECT_NE(st[r].message().find("rank 1 loaded a different plan"), std::string::npos) << st[r].message();
  }
}

TEST(Communicator, MissingRankZeroFailsToConnect) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  DistInitOptions o;
  o.rank = 1;
  o.size = 2;
  o.init_addr = "127.0.0.1:" + std::to_string(port);
  o.comm.timeout = std::chrono::milliseconds(300);
  auto c = connect_group(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("rank 1/2"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("is rank 0 running?"), std::string::npos) << c.status().message();
  o.init_addr = "127.0.0.1";
  EXPECT_NE(connect_group(o).status().message().find("HOST:PORT"), std::string::npos);
}

TEST(Communicator, RejectsBadGroupOptions) {
  EXPECT_FALSE(create_local_group(0, CommOptions{}).ok());
  CommOptions o;
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(create_local_group(2, o).ok());
}

}  // namespace
}  // namespace ds
