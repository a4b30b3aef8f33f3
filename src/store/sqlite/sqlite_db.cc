#include "store/sqlite/sqlite_db.h"

#include <time.h>

namespace retraced::sqlite {

Status StatusFrom(int rc, std::string_view what, sqlite3* db) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(std::move(msg));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
      return Status::InvalidArgument(std::move(msg));
    case SQLITE_CONSTRAINT:
      return Status::Conflict(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::Bind(int i, std::string_view text) {
  sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindBlob(int i, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Stmt& Stmt::BindOpt(int i, const std::optional<std::string>& v) {
  return v ? Bind(i, std::string_view(*v)) : BindNull(i);
}

Stmt& Stmt::BindOpt(int i, const std::optional<int64_t>& v) {
  return v ? Bind(i, *v) : BindNull(i);
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status s = StatusFrom(rc, "sqlite", db_);
  sqlite3_reset(stmt_);
  return s;
}

Status Stmt::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
  }
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::optional<std::string> Stmt::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}

std::optional<int64_t> Stmt::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}

std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  if (p == nullptr) return {};
  return std::string(static_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

namespace {

// Waits for a lock with short, randomized sleeps rather than SQLite's default
// back-off (up to 100 ms per try), so that several processes sharing a file
// take turns instead of one re-taking the lock while the others sleep.
int BusyHandler(void* timeout_ms, int tries) {
  const int64_t limit_us = static_cast<int64_t>(*static_cast<int*>(timeout_ms)) * 1000;
  const int64_t sleep_us = tries < 50 ? 100 + (tries * 37) % 400 : 2000;
  // Elapsed time is approximated by the sleeps so far.
  const int64_t slept_us = tries < 50 ? tries * 300 : 50 * 300 + (tries - 50) * 2000;
  if (slept_us >= limit_us) return 0;  // give up: SQLITE_BUSY
  sqlite3_sleep(0);                    // yields when the platform allows
  struct timespec ts {
    0, static_cast<long>(sleep_us * 1000)
  };
  nanosleep(&ts, nullptr);
  return 1;
}

}  // namespace

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, int busy_timeout_ms) {
  // Before SQLite initializes: no memory statistics, whose global mutex every
  // allocation would otherwise take. (Refused, harmlessly, if already initialized.)
  static const int no_memstatus = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)no_memstatus;
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = StatusFrom(rc, "cannot open sqlite:" + path, raw);
    sqlite3_close(raw);
    return s;
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  db->busy_timeout_ms_ = busy_timeout_ms;
  sqlite3_busy_handler(raw, BusyHandler, &db->busy_timeout_ms_);
  sqlite3_extended_result_codes(raw, 1);
  // journal_mode=WAL needs the file writable: this is where a read-only or
  // inaccessible file shows up.
  Status s = db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  if (!s.ok()) {
    return Status(s.code() == StatusCode::kInternal ? StatusCode::kInvalidArgument : s.code(),
                  "cannot open sqlite:" + path + ": " + s.message());
  }
  return db;
}

Db::~Db() {
  cache_.clear();
  sqlite3_close(db_);
}

Status Db::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Status s = StatusFrom(rc, "sqlite", nullptr);
    return Status(s.code(), "sqlite: " + msg);
  }
  return Status::Ok();
}

Result<Stmt*> Db::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return StatusFrom(rc, "prepare", db_);
  auto stmt = std::make_unique<Stmt>(db_, raw);
  Stmt* p = stmt.get();
  cache_.emplace(sql, std::move(stmt));
  return p;
}

int64_t Db::Changes() const { return sqlite3_changes64(db_); }

Txn::~Txn() {
  if (open_) (void)db_.Exec("ROLLBACK");
}

Status Txn::Begin() {
  RETRACED_RETURN_IF_ERROR(db_.Exec(read_only_ ? "BEGIN" : "BEGIN IMMEDIATE"));
  open_ = true;
  return Status::Ok();
}

Status Txn::Commit() {
  RETRACED_RETURN_IF_ERROR(db_.Exec("COMMIT"));
  open_ = false;
  return Status::Ok();
}

}  // namespace retraced::sqlite
