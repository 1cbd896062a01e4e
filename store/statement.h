#pragma once
// Store::Statement, for the store's own .cpp files (store.cpp, bench_runs.cpp): one prepared
// statement, bound, stepped and read; finalized on scope exit.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include "store/store.h"

namespace qvk::store {

class Store::Statement {
 public:
  Statement(const Store& store, const char* sql, std::string_view doing) : store_(store), doing_(doing) {
    store.statements_run_.fetch_add(1, std::memory_order_relaxed);
    const int code = sqlite3_prepare_v2(store.db_, sql, -1, &statement_, nullptr);
    if (code != SQLITE_OK) store.Fail(code, doing_);
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, int64_t value) {
    Check(sqlite3_bind_int64(statement_, index, value));
    return *this;
  }
  Statement& Bind(int index, double value) {
    Check(sqlite3_bind_double(statement_, index, value));
    return *this;
  }
  Statement& Bind(int index, std::string_view text) {
    // A null data pointer would bind SQL NULL; an empty view still means "".
    Check(sqlite3_bind_text64(statement_, index, text.empty() ? "" : text.data(), text.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
    return *this;
  }
  // Figures that may be unknown (a peak not measured): NULL.
  Statement& Bind(int index, const std::optional<double>& value) {
    Check(value ? sqlite3_bind_double(statement_, index, *value) : sqlite3_bind_null(statement_, index));
    return *this;
  }
  // Counts that may be unknown (a kernel's waits in a run kept before they were recorded): NULL.
  Statement& Bind(int index, const std::optional<uint32_t>& value) {
    Check(value ? sqlite3_bind_int64(statement_, index, *value) : sqlite3_bind_null(statement_, index));
    return *this;
  }
  // A switch left unset (a conversation's enable_thinking): NULL. Named apart from Bind, which a
  // string literal would also convert to.
  Statement& BindSwitch(int index, std::optional<bool> value) {
    Check(value ? sqlite3_bind_int64(statement_, index, *value ? 1 : 0) : sqlite3_bind_null(statement_, index));
    return *this;
  }
  // Ids: 0 ("none") is stored as NULL so parent references stay valid foreign keys.
  Statement& BindId(int index, Id id) {
    Check(id == 0 ? sqlite3_bind_null(statement_, index) : sqlite3_bind_int64(statement_, index, id));
    return *this;
  }

  // True while there is a row to read.
  bool Step() {
    const int code = sqlite3_step(statement_);
    if (code == SQLITE_ROW) return true;
    if (code == SQLITE_DONE) return false;
    store_.Fail(code, doing_);
  }
  // Runs a statement that returns no rows; the number of rows it changed.
  int Run() {
    Step();
    return sqlite3_changes(store_.db_);
  }

  // The current row of a conversation or message query (columns in sql.h's order).
  Conversation ReadConversation() const;
  Message ReadMessage() const;

  int64_t Int(int column) const { return sqlite3_column_int64(statement_, column); }
  double Real(int column) const { return sqlite3_column_double(statement_, column); }
  std::optional<double> OptionalReal(int column) const {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return Real(column);
  }
  std::optional<uint32_t> OptionalCount(int column) const {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return static_cast<uint32_t>(Int(column));
  }
  std::optional<bool> OptionalBool(int column) const {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return Int(column) != 0;
  }
  std::string Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    return text == nullptr ? std::string() : std::string(text, sqlite3_column_bytes(statement_, column));
  }

 private:
  void Check(int code) const {
    if (code != SQLITE_OK) store_.Fail(code, doing_);
  }

  const Store& store_;
  std::string_view doing_;
  sqlite3_stmt* statement_ = nullptr;
};

}  // namespace qvk::store
