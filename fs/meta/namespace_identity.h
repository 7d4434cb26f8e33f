// Namespace identity: which shared namespace a store's data belongs to.
//
// A shared engine (Redis) can lose its namespace under running nodes (a
// restart without persistence, FLUSHALL) or be swapped for another one. A
// node that then trusted it would take every local data file for the data of
// a deleted file and remove it. So a namespace carries a random id, written
// once when it is made, and a store records the id of the namespace it
// joined (and its node number in it) in STORE/namespace.id. Whenever they
// differ, or the engine has no id at all, the node is "fenced": it keeps its
// data, removes nothing, and fails metadata operations with EIO until the
// operator restores the engine or joins a new namespace explicitly
// (`tempfs mount --join-new-namespace`).
//
// The record file is small text, written whole (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves the old or the new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace tempfs {

struct StoreIdentity {
  std::string ns;          // the namespace id; "" until the first join
  uint32_t node = 0;       // cluster mode: this store's node number in `ns`; 0: none yet
  std::string store_id;    // random, made once: tells this store's heartbeat from another's
};

// The record of the store at `store_dir`; nullopt if it has none (a store
// that never joined a shared namespace). EIO for a damaged record.
Result<std::optional<StoreIdentity>> ReadStoreIdentity(const std::string& store_dir);
// Replaces the record atomically (and durably).
Status WriteStoreIdentity(const std::string& store_dir, const StoreIdentity& id);
// 128 random bits as 32 hex digits.
std::string NewRandomId();

// Moves the data of a namespace the store leaves (STORE/data and
// STORE/pins) to STORE/lost+found/namespace-<left_ns>[.N]/, so that a new
// namespace never takes it for its own; returns where it went ("" if there
// was nothing). Call before the store is opened for the new namespace.
Result<std::string> SetAsideStoreData(const std::string& store_dir, const std::string& left_ns);

// Path of the record, for messages.
std::string StoreIdentityPath(const std::string& store_dir);

}  // namespace tempfs
