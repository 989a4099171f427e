#pragma once
// A small RAII wrapper over one SQLite connection in WAL mode. Every mutating step of the
// store runs inside a Transaction so a crash leaves either the old or the new state.
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace snapimport::store {

class Statement;

class Database {
 public:
  explicit Database(const std::filesystem::path& file);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  void exec(std::string_view sql);
  Statement prepare(std::string_view sql);
  int64_t lastInsertRowId() const;
  int changes() const;
  const std::filesystem::path& file() const { return file_; }
  sqlite3* handle() { return db_; }

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

// A prepared statement; bind() takes 1-based indices as SQLite does.
class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, int64_t value);
  Statement& bindNull(int index);
  // Advances to the next row; false once the statement is done.
  bool step();
  // Runs a statement that returns no rows.
  void run();
  void reset();

  int64_t int64(int column) const;
  std::string text(int column) const;
  bool isNull(int column) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace snapimport::store
