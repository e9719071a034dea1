#include <gtest/gtest.h>

#include "core/error.h"
#include "core/ranks.h"

namespace tq {

// The shares tile the items in rank order, whatever n and N: gathered in rank
// order, the results are in item order.
TEST(Ranks, SharesTileTheItemsInRankOrder) {
  for (int N : {1, 2, 3, 4, 7, 64})
    for (int64_t n : {0, 1, 2, 5, 13, 64, 1000}) {
      int64_t next = 0, smallest = n, largest = 0;
      for (int r = 0; r < N; r++) {
        ranks::Share s = ranks::share_of(n, r, N);
        EXPECT_EQ(s.begin, next) << "n " << n << ", N " << N << ", rank " << r;
        EXPECT_LE(s.begin, s.end);
        smallest = std::min(smallest, s.end - s.begin);
        largest = std::max(largest, s.end - s.begin);
        next = s.end;
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1);
    }
}

// Without mpirun: one rank, and a gather hands back what it was given.
TEST(Ranks, OneProcessIsRankZeroOfOne) {
  EXPECT_EQ(ranks::rank(), 0);
  EXPECT_EQ(ranks::size(), 1);
  EXPECT_TRUE(ranks::root());
  EXPECT_EQ(ranks::gather_all({1.5, -2.0}), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(ranks::sum_all(7), 7);
  const std::vector<std::vector<double>> items = {{1, 2}, {}, {3}};
  EXPECT_EQ(ranks::gather_items(3, items), items);
  EXPECT_THROW(ranks::gather_items(4, items), Error);  // a share of 4 items, 3 results
  ranks::Share s = ranks::my_share(5);
  EXPECT_EQ(s.begin, 0);
  EXPECT_EQ(s.end, 5);
}

}  // namespace tq
