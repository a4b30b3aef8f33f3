// A thin RAII layer over the SQLite C API for the SQLite store: a connection,
// prepared statements, and transactions. Errors become Status values; no
// SQLite type leaves src/store/sqlite.
//
// Not thread-safe: the store serializes access to one connection.
#ifndef RETRACED_STORE_SQLITE_SQLITE_DB_H_
#define RETRACED_STORE_SQLITE_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "retraced/status.h"

namespace retraced::sqlite {

// Status for an SQLite result code: BUSY/LOCKED -> Unavailable; CANTOPEN/PERM/
// READONLY/NOTADB -> InvalidArgument; CONSTRAINT -> Conflict; others ->
// Internal. The message names `what`.
Status StatusFrom(int rc, std::string_view what, sqlite3* db);

// A prepared statement. Bind parameters are 1-based; column indexes 0-based.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Resets and clears bindings, ready for a new run.
  Stmt& Reset();
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, std::string_view text);
  Stmt& BindBlob(int i, std::string_view bytes);
  Stmt& BindNull(int i);
  // NULL when unset.
  Stmt& BindOpt(int i, const std::optional<std::string>& v);
  Stmt& BindOpt(int i, const std::optional<int64_t>& v);

  // Steps once: true with a row, false when done; Status on error.
  Result<bool> Step();
  // Steps to the end, expecting no rows.
  Status Run();

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  std::string Text(int col) const;
  std::optional<std::string> OptText(int col) const;
  std::optional<int64_t> OptInt(int col) const;
  std::string Blob(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating when missing) the file at `path` with WAL, synchronous=NORMAL
  // and a busy timeout, so several processes can share it.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, int busy_timeout_ms = 10'000);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more statements with no parameters.
  Status Exec(std::string_view sql);

  // A cached prepared statement for `sql`, reset and ready to bind. The
  // reference stays valid for the life of the Db.
  Result<Stmt*> Prepare(const std::string& sql);

  int64_t Changes() const;
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  int busy_timeout_ms_ = 0;  // read by the busy handler
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

// BEGIN IMMEDIATE on construction (taking the write lock up front, so two
// writers never deadlock upgrading), ROLLBACK on destruction unless committed.
class Txn {
 public:
  // A write transaction (BEGIN IMMEDIATE), or with `read_only` a deferred one
  // that gives the reads inside it one consistent snapshot.
  explicit Txn(Db& db, bool read_only = false) : db_(db), read_only_(read_only) {}
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn();

  Status Begin();
  Status Commit();

 private:
  Db& db_;
  bool read_only_;
  bool open_ = false;
};

}  // namespace retraced::sqlite

#endif  // RETRACED_STORE_SQLITE_SQLITE_DB_H_
