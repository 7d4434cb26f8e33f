// `tempfs fsck STORE`: checks the embedded engine's metadata of a store that
// no daemon serves and, when it is damaged, recovers what can be read.
//
// Recovery replays every readable record of the snapshot and the journal
// (also those after a damaged region), repairs the tree (EmbeddedMeta::
// RepairTree), names the data files that no inode owns in /lost+found, writes
// a fresh snapshot and journal, keeps the damaged files in
// STORE/meta/damaged-TIMESTAMP/, and prints what it did and what it could not
// save. An intact store is left as it is.
#pragma once

#include <cstdio>
#include <string>

namespace tempfs {

// Returns the exit code: 0 when the store is intact or was recovered, 1 when
// fsck could not finish (the store is then as it was, or as a rerun expects).
// The report goes to `out`, errors to stderr as one line.
int RunFsck(const std::string& store, FILE* out = stdout);

}  // namespace tempfs
