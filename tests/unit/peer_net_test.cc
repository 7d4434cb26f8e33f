// Socket helpers of the peer server, on real socket pairs: a deadline that a
// dripping sender cannot extend, and a ConnectionSet whose unauthenticated
// connections never take the room of admitted ones.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "cluster/net.h"

namespace tempfs {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool WaitUntil(const std::function<bool()>& cond, milliseconds limit) {
  auto end = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

struct Pair {
  int a = -1, b = -1;  // a: the server's end (given away to a ConnectionSet), b: ours
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a = sv[0];
    b = sv[1];
  }
  ~Pair() {
    if (b >= 0) close(b);
  }
};

TEST(ReadFullByTest, DrippingSenderDoesNotExtendTheDeadline) {
  Pair p;
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    for (int i = 0; i < 40 && !stop; i++) {  // a byte every 50 ms, 2 s at most
      if (send(p.b, "x", 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(milliseconds(50));
    }
  });
  char buf[80];
  auto t0 = Clock::now();
  Status st = ReadFullBy(p.a, buf, sizeof buf, t0 + milliseconds(500));
  auto took = Clock::now() - t0;
  stop = true;
  drip.join();
  close(p.a);
  EXPECT_EQ(st.err(), ETIMEDOUT) << st.ToString();
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(1500)) << "the drip kept the read going";
}

TEST(ReadFullByTest, WholeMessageInTime) {
  Pair p;
  std::string msg(80, 'm');
  ASSERT_EQ(send(p.b, msg.data(), 30, 0), 30);
  std::thread rest([&] {
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_EQ(send(p.b, msg.data() + 30, 50, 0), 50);
  });
  char buf[80];
  EXPECT_TRUE(ReadFullBy(p.a, buf, sizeof buf, Clock::now() + milliseconds(2000)).ok());
  rest.join();
  close(p.a);
}

// What one served connection did.
struct Served {
  std::atomic<bool> ended{false};
  std::atomic<int> admitted{-1};  // -1: did not ask
};

// Serves until the other end (or the set) ends the connection; asks to be
// admitted first if `admit`.
std::function<void(int)> Serve(ConnectionSet& set, Served* s, bool admit) {
  return [&set, s, admit](int fd) {
    if (admit) s->admitted = set.Admit(fd) ? 1 : 0;
    char c;
    while (recv(fd, &c, 1, 0) > 0) {
    }
    s->ended = true;
  };
}

// Pairs and records outlive the set's threads: CloseAll() at scope exit.
struct Connections {
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<std::unique_ptr<Served>> served;
  ConnectionSet set;
  Connections(size_t max, size_t max_pending) : set(max, max_pending) {}
  ~Connections() { set.CloseAll(); }
  bool Spawn(bool admit) {
    pairs.push_back(std::make_unique<Pair>());
    served.push_back(std::make_unique<Served>());
    bool ok = set.Spawn(pairs.back()->a, Serve(set, served.back().get(), admit));
    if (!ok) close(pairs.back()->a);
    return ok;
  }
};

TEST(ConnectionSetTest, NewPendingConnectionPushesOutTheOldest) {
  Connections c(4, 2);
  for (int i = 0; i < 3; i++) ASSERT_TRUE(c.Spawn(false)) << "a pending connection was refused";
  EXPECT_TRUE(WaitUntil([&] { return c.served[0]->ended.load(); }, milliseconds(2000)))
      << "the oldest pending connection was not pushed out";
  EXPECT_FALSE(c.served[1]->ended);
  EXPECT_FALSE(c.served[2]->ended);
  EXPECT_EQ(c.set.evicted(), 1u);
  c.set.CloseAll();
  EXPECT_TRUE(c.served[1]->ended && c.served[2]->ended);
  EXPECT_FALSE(c.Spawn(false)) << "spawned after CloseAll";
}

TEST(ConnectionSetTest, AdmittedConnectionsHaveTheirOwnBudget) {
  Connections c(2, 2);
  for (int i = 0; i < 3; i++) {
    ASSERT_TRUE(c.Spawn(true));
    ASSERT_TRUE(WaitUntil([&] { return c.served[i]->admitted.load() >= 0; }, milliseconds(2000)));
  }
  EXPECT_EQ(c.served[0]->admitted, 1);
  EXPECT_EQ(c.served[1]->admitted, 1);
  EXPECT_EQ(c.served[2]->admitted, 0) << "admitted beyond the budget";
  // Strangers that never authenticate push out pending ones only (and are
  // not refused while the pushed-out ones end: at most 9 threads here).
  for (int i = 0; i < 6; i++) ASSERT_TRUE(c.Spawn(false)) << "stranger " << i << " refused";
  EXPECT_TRUE(WaitUntil([&] { return c.set.evicted() >= 5; }, milliseconds(2000))) << c.set.evicted();
  EXPECT_FALSE(c.served[0]->ended) << "an admitted connection was pushed out";
  EXPECT_FALSE(c.served[1]->ended) << "an admitted connection was pushed out";
}

TEST(ConnectionSetTest, WithoutPendingSlotsTheLimitRefuses) {
  Connections c(2, 0);
  EXPECT_TRUE(c.Spawn(false));
  EXPECT_TRUE(c.Spawn(false));
  EXPECT_FALSE(c.Spawn(false)) << "a third connection over a limit of 2";
  EXPECT_EQ(c.set.evicted(), 0u);
}

}  // namespace
}  // namespace tempfs
