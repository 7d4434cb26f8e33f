// Giving memory back after many inodes are gone.
//
// Hash tables keyed by inode never return their bucket arrays by themselves
// (erase keeps them), and glibc keeps freed small blocks in its arenas instead
// of returning the pages: after `rm -rf` of a large tree the daemon kept its
// peak size. ShrinkIfSparse rehashes a table that lost most of its entries;
// ReleaseFreeMemory hands free arena pages back to the kernel. Both cost time
// in proportion to what they free, so callers use them only when a table
// shrank by a large factor, which bounds the total cost by the work that
// filled it.
//
// Thread safety: ShrinkIfSparse needs the table's own lock; ReleaseFreeMemory
// may run anywhere (callers run it with no lock held: it can take milliseconds).
#pragma once

#include <cstddef>

namespace tempfs {

// Tables at or below this many buckets are left alone.
constexpr size_t kMinShrinkBuckets = 1024;

// Rehashes `table` to fit its entries when they fill under 1/8 of its
// buckets; returns whether it did.
template <class Table>
bool ShrinkIfSparse(Table& table) {
  if (table.bucket_count() <= kMinShrinkBuckets || table.size() * 8 >= table.bucket_count()) return false;
  table.rehash(0);  // the smallest bucket count that holds size()
  return true;
}

// Returns the free pages of every malloc arena to the kernel.
void ReleaseFreeMemory();

}  // namespace tempfs
