#include "Database.h"

#include <algorithm>
#include <cstring>

#include "NoSpace.h"
#include "StoreError.h"

namespace snapimport::store {
namespace {

// SQLite says SQLITE_FULL when a write meets ENOSPC; where it cannot tell (creating the WAL index,
// an fsync) it says SQLITE_IOERR_* and keeps the errno, which sqlite3_system_errno gives back.
bool outOfSpace(sqlite3* db, int rc) {
  int primary = rc & 0xff;
  if (primary == SQLITE_FULL) return true;
  return db && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) &&
         isNoSpace(sqlite3_system_errno(db));
}

// `what` names the database file. A full disk gives ResourceExhausted, and the message says "No
// space left on device" as well as SQLite's "database or disk is full".
[[noreturn]] void sqliteFail(sqlite3* db, int rc, const std::string& what, std::string detail) {
  std::string message = what;
  message.append(": ").append(detail);
  if (outOfSpace(db, rc)) {
    int err = db ? sqlite3_system_errno(db) : 0;
    message.append(" (").append(std::strerror(isNoSpace(err) ? err : ENOSPC)).append(")");
    failNoSpace(kAreaDatabase, message);
  }
  fail(ErrorClass::Internal, message);
}

[[noreturn]] void sqliteFail(sqlite3* db, int rc, const std::string& what) {
  sqliteFail(db, rc, what, db ? sqlite3_errmsg(db) : "out of memory");
}

// Names the SQL in an error: its first statement, cut short (a schema is long).
std::string describeSql(std::string_view sql) {
  size_t start = sql.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "\"\"";
  sql.remove_prefix(start);
  size_t end = std::min(sql.find_first_of(";\n"), sql.size());
  bool more = end < sql.size() && sql.find_first_not_of(" \t\r\n;", end) != std::string_view::npos;
  if (end > 48) {
    end = 48;
    more = true;
  }
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for `"literal" + string`.
  std::string quoted(1, '"');
  quoted.append(sql.substr(0, end));
  quoted.append(more ? "; ...\"" : "\"");
  return quoted;
}

}  // namespace

Database::Database(const std::filesystem::path& file) : file_(file) {
  int rc =
      sqlite3_open_v2(file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = db_ ? sqlite3_errmsg(db_) : "out of memory";
    bool noSpace = outOfSpace(db_, rc);
    sqlite3_close(db_);
    db_ = nullptr;
    sqliteFail(nullptr, noSpace ? SQLITE_FULL : rc, "open metadata database " + file.string(),
               detail);
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL keeps readers off the writer's back; synchronous=FULL makes each COMMIT durable, which
  // the crash-safety story (rename, then record) depends on.
  exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
}

Database::~Database() { sqlite3_close(db_); }

void Database::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    sqliteFail(db_, rc, "sqlite " + describeSql(sql) + " on " + file_.string() + " failed", msg);
  }
}

Statement Database::prepare(std::string_view sql) { return Statement(*this, sql); }
int64_t Database::lastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

Statement::Statement(Database& db, std::string_view sql) : db_(&db) {
  int rc =
      sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqliteFail(db.handle(), rc,
               "prepare statement '" + std::string(sql) + "' on " + db.file().string());
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

Statement& Statement::bind(int index, std::string_view text) {
  if (sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    sqliteFail(db_->handle(), SQLITE_MISUSE, "bind text parameter " + std::to_string(index));
  }
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) {
    sqliteFail(db_->handle(), SQLITE_MISUSE, "bind integer parameter " + std::to_string(index));
  }
  return *this;
}

Statement& Statement::bindNull(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) {
    sqliteFail(db_->handle(), SQLITE_MISUSE, "bind null parameter " + std::to_string(index));
  }
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqliteFail(db_->handle(), rc,
             std::string("execute '") + sqlite3_sql(stmt_) + "' on " + db_->file().string());
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  int n = sqlite3_column_bytes(stmt_, column);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

bool Statement::isNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
      // Nothing more can be done from a destructor; SQLite rolls back on the next open anyway.
    }
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace snapimport::store
