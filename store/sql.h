#pragma once
// Every SQL statement of the conversation store, in one place.
//
// Sections: schema migrations / connection and transactions / conversations / messages /
// search / settings / benchmark runs / maintenance
//
// Conventions: roots have a NULL parent (the API's 0), deleted conversations have a deleted_ms,
// states are 'complete', 'streaming' or 'interrupted'. Statements take ?N parameters only;
// nothing here is ever assembled from user text.
#include <array>

namespace qvk::store::sql {

// --- schema migrations ------------------------------------------------------------------------
// kMigrations[i] brings a database from user_version i to i + 1 and stamps the new version; the
// store runs each step in its own transaction. Never edit a released step: add one.

inline constexpr char kSchemaV1[] = R"sql(
CREATE TABLE conversations (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  current_leaf INTEGER NOT NULL DEFAULT 0,
  settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('complete', 'streaming', 'interrupted')),
  created_ms INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, parent_id);
CREATE INDEX messages_by_parent ON messages(parent_id);
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

// Reply figures, pinning, soft delete, and the full-text index (external content: the text lives
// once, in the tables; triggers keep the index in step; 'rebuild' indexes the rows v1 holds).
inline constexpr char kSchemaV2[] = R"sql(
ALTER TABLE messages ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN tokens_per_s REAL NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN time_to_first_token_s REAL NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN notice TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN deleted_ms INTEGER;
CREATE INDEX conversations_listing ON conversations(deleted_ms, pinned, updated_ms);
CREATE INDEX messages_by_state ON messages(state) WHERE state = 'streaming';

CREATE VIRTUAL TABLE conversations_fts USING fts5(
  title, content = 'conversations', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
  INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
  INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
  INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
  INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
END;
INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE messages_fts USING fts5(
  content, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
PRAGMA user_version = 2;
)sql";

// Benchmark runs (store/bench_runs.h). Devices and models are shared by the runs measured on
// them: the UNIQUE lists are what makes two the same. A device's peaks are NULL until measured.
// Lists (p, n, d, weight types, samples) are JSON arrays.
inline constexpr char kSchemaV3[] = R"sql(
CREATE TABLE bench_devices (
  id INTEGER PRIMARY KEY,
  vendor TEXT NOT NULL,
  name TEXT NOT NULL,
  driver TEXT NOT NULL,
  vulkan TEXT NOT NULL,
  memory_bytes INTEGER NOT NULL,
  subgroup_size INTEGER NOT NULL,
  coopmat INTEGER NOT NULL,
  peak_ms INTEGER,
  copy_gbps REAL,
  f32_tflops REAL,
  f16_tflops REAL,
  coopmat_tflops REAL,
  UNIQUE (vendor, name, driver, vulkan, memory_bytes, subgroup_size, coopmat)
);
CREATE TABLE bench_models (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  layers INTEGER NOT NULL,
  hidden INTEGER NOT NULL,
  params INTEGER NOT NULL,
  weight_types TEXT NOT NULL,
  file_bytes INTEGER NOT NULL,
  UNIQUE (name, type, layers, hidden, params, weight_types, file_bytes)
);
CREATE TABLE bench_runs (
  id INTEGER PRIMARY KEY,
  device_id INTEGER NOT NULL REFERENCES bench_devices(id),
  model_id INTEGER NOT NULL REFERENCES bench_models(id),
  source TEXT NOT NULL CHECK (source IN ('qwenvk', 'llama-bench')),
  created_ms INTEGER NOT NULL,
  version TEXT NOT NULL,
  git_commit TEXT NOT NULL,
  variant TEXT NOT NULL,
  repetitions INTEGER NOT NULL,
  prompts TEXT NOT NULL,
  generations TEXT NOT NULL,
  depths TEXT NOT NULL,
  context INTEGER NOT NULL
);
CREATE INDEX bench_runs_by_time ON bench_runs(created_ms);
CREATE TABLE bench_rows (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('pp', 'tg')),
  tokens INTEGER NOT NULL,
  depth INTEGER NOT NULL,
  mean_tps REAL NOT NULL,
  stddev_tps REAL NOT NULL,
  samples_s TEXT NOT NULL,
  UNIQUE (run_id, position)
);
CREATE TABLE bench_kernels (
  row_id INTEGER NOT NULL REFERENCES bench_rows(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  label TEXT NOT NULL,
  dispatches INTEGER NOT NULL,
  share REAL NOT NULL,
  us_per_step REAL NOT NULL,
  bytes INTEGER NOT NULL,
  flops INTEGER NOT NULL,
  PRIMARY KEY (row_id, position)
) WITHOUT ROWID;
PRAGMA user_version = 3;
)sql";

// The engine a conversation's replies come from: an empty URL is this computer; otherwise an
// OpenAI-compatible server's base URL and the model it serves (the API key is an app setting).
inline constexpr char kSchemaV4[] = R"sql(
ALTER TABLE conversations ADD COLUMN engine_url TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN engine_model TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 4;
)sql";

// A conversation's thinking switch (the template variable enable_thinking, Qwen3's): NULL leaves
// it to the template's default, 0 and 1 turn it off and on.
inline constexpr char kSchemaV5[] = R"sql(
ALTER TABLE conversations ADD COLUMN enable_thinking INTEGER CHECK (enable_thinking IN (0, 1));
PRAGMA user_version = 5;
)sql";

// How many of a kernel's dispatches waited at a barrier (bench --kernels); NULL in rows kept before.
inline constexpr char kSchemaV6[] = R"sql(
ALTER TABLE bench_kernels ADD COLUMN waits INTEGER CHECK (waits >= 0);
PRAGMA user_version = 6;
)sql";

// A run of a model split across devices: each device and its layers (JSON list of text, '[]' on
// one device and in runs kept before), and each profiled row's GPU time on each of them (JSON
// list of microseconds, '[]' where not profiled or on one device).
inline constexpr char kSchemaV7[] = R"sql(
ALTER TABLE bench_runs ADD COLUMN stages TEXT NOT NULL DEFAULT '[]';
ALTER TABLE bench_rows ADD COLUMN device_us TEXT NOT NULL DEFAULT '[]';
PRAGMA user_version = 7;
)sql";

inline constexpr std::array<const char*, 7> kMigrations = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4,
                                                           kSchemaV5, kSchemaV6, kSchemaV7};

// --- connection and transactions ----------------------------------------------------------------
inline constexpr char kGetUserVersion[] = "PRAGMA user_version";
inline constexpr char kJournalModeWal[] = "PRAGMA journal_mode = WAL";
inline constexpr char kForeignKeysOn[] = "PRAGMA foreign_keys = ON";
// WAL makes NORMAL durable against process crashes (SIGKILL); only a power cut can lose the
// last commits, never corrupt the file.
inline constexpr char kSynchronousNormal[] = "PRAGMA synchronous = NORMAL";
inline constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
inline constexpr char kCommit[] = "COMMIT";
inline constexpr char kRollback[] = "ROLLBACK";
inline constexpr char kSavepoint[] = "SAVEPOINT nested";
inline constexpr char kReleaseSavepoint[] = "RELEASE nested";
inline constexpr char kRollbackSavepoint[] = "ROLLBACK TO nested; RELEASE nested";

// --- conversations --------------------------------------------------------------------------
// Column order shared by every conversation query (see ReadConversation in store.cpp).
#define QVK_CONVERSATION_COLUMNS \
  "id, title, pinned, created_ms, updated_ms, current_leaf, settings, engine_url, engine_model, enable_thinking"

inline constexpr char kInsertConversation[] =
    "INSERT INTO conversations (title, created_ms, updated_ms, settings) VALUES (?1, ?2, ?2, ?3)";
inline constexpr char kListConversations[] = "SELECT " QVK_CONVERSATION_COLUMNS
                                             " FROM conversations WHERE deleted_ms IS NULL"
                                             " ORDER BY pinned DESC, updated_ms DESC, id DESC";
inline constexpr char kGetConversation[] =
    "SELECT " QVK_CONVERSATION_COLUMNS " FROM conversations WHERE id = ?1 AND deleted_ms IS NULL";
inline constexpr char kConversationExists[] = "SELECT 1 FROM conversations WHERE id = ?1";
inline constexpr char kRenameConversation[] = "UPDATE conversations SET title = ?2 WHERE id = ?1";
inline constexpr char kSetPinned[] = "UPDATE conversations SET pinned = ?2 WHERE id = ?1";
inline constexpr char kSetConversationSettings[] = "UPDATE conversations SET settings = ?2 WHERE id = ?1";
inline constexpr char kSetConversationEngine[] =
    "UPDATE conversations SET engine_url = ?2, engine_model = ?3 WHERE id = ?1";
inline constexpr char kSetConversationThinking[] = "UPDATE conversations SET enable_thinking = ?2 WHERE id = ?1";
inline constexpr char kSetCurrentLeaf[] = "UPDATE conversations SET current_leaf = ?2 WHERE id = ?1";
inline constexpr char kTouchConversation[] =
    "UPDATE conversations SET current_leaf = ?2, updated_ms = max(updated_ms, ?3) WHERE id = ?1";
inline constexpr char kSetConversationTimes[] =
    "UPDATE conversations SET created_ms = ?2, updated_ms = ?3 WHERE id = ?1";
inline constexpr char kDeleteConversation[] = "UPDATE conversations SET deleted_ms = ?2 WHERE id = ?1";
inline constexpr char kRestoreConversation[] = "UPDATE conversations SET deleted_ms = NULL WHERE id = ?1";
// Deleting a thread through parent_id's ON DELETE CASCADE nests one trigger level per message,
// and SQLite stops at 1000 levels; with their parents cleared first, a purged conversation's
// messages all go at the first level.
inline constexpr char kDetachDeletedMessages[] =
    "UPDATE messages SET parent_id = NULL"
    " WHERE conversation_id IN (SELECT id FROM conversations WHERE deleted_ms IS NOT NULL)";
inline constexpr char kPurgeDeleted[] = "DELETE FROM conversations WHERE deleted_ms IS NOT NULL";
#undef QVK_CONVERSATION_COLUMNS

// --- messages -------------------------------------------------------------------------------
// Column order shared by every message query (see ReadMessage in store.cpp).
#define QVK_MESSAGE_COLUMNS                                                                    \
  "m.id, m.conversation_id, m.parent_id, m.role, m.content, m.state, m.created_ms, m.tokens, " \
  "m.tokens_per_s, m.time_to_first_token_s, m.notice"

inline constexpr char kInsertMessage[] =
    "INSERT INTO messages (conversation_id, parent_id, role, content, state, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
inline constexpr char kUpdateMessage[] = "UPDATE messages SET content = ?2, state = ?3 WHERE id = ?1";
inline constexpr char kSetMessageStats[] =
    "UPDATE messages SET tokens = ?2, tokens_per_s = ?3, time_to_first_token_s = ?4, notice = ?5 WHERE id = ?1";
inline constexpr char kSetMessageCreated[] = "UPDATE messages SET created_ms = ?2 WHERE id = ?1";
inline constexpr char kGetMessage[] = "SELECT " QVK_MESSAGE_COLUMNS " FROM messages m WHERE m.id = ?1";
inline constexpr char kMessageConversation[] = "SELECT conversation_id FROM messages WHERE id = ?1";
// Every walk along parents stops at depth ?2, which no legal thread reaches (Store's
// kMaxThreadDepth): parents that loop (a damaged or hostile file) would otherwise make it endless.
// The walk up from ?1 to the root, ids only.
#define QVK_WALK_UP                                                                     \
  "WITH RECURSIVE chain(id, depth) AS ("                                                \
  "  SELECT id, 0 FROM messages WHERE id = ?1"                                          \
  "  UNION ALL"                                                                         \
  "  SELECT m.parent_id, chain.depth + 1 FROM messages m JOIN chain ON m.id = chain.id" \
  "  WHERE m.parent_id IS NOT NULL AND chain.depth < ?2)"
// The first message a walk met twice (its own ancestor), or NULL if none repeats. Reads ids
// only, so even a looping walk costs ?2 index lookups, never ?2 copies of message text.
#define QVK_LOOPING_IN(walk) \
  "(SELECT id FROM " walk " WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1 ORDER BY min(depth) LIMIT 1)"

// One row when the walk up from ?1 reaches depth ?2: the thread is damaged. Checked before
// kThread, which sorts whole rows.
inline constexpr char kThreadDamage[] = QVK_WALK_UP " SELECT " QVK_LOOPING_IN("chain") " FROM chain WHERE depth = ?2";
inline constexpr char kThread[] = QVK_WALK_UP
    " SELECT " QVK_MESSAGE_COLUMNS " FROM chain JOIN messages m ON m.id = chain.id ORDER BY chain.depth DESC";
inline constexpr char kSiblings[] = "SELECT " QVK_MESSAGE_COLUMNS
                                    " FROM messages m WHERE m.conversation_id = ?1 AND m.parent_id IS ?2"
                                    " ORDER BY m.id";
// Children are newer than their parent, so the deepest step of the walk is the largest id.
// Columns: that leaf; the message at depth ?2 (not NULL: the walk was cut, the thread is
// damaged); the looping message.
inline constexpr char kNewestLeafUnder[] =
    "WITH RECURSIVE down(id, depth) AS ("
    "  SELECT id, 0 FROM messages WHERE id = ?1"
    "  UNION ALL"
    "  SELECT (SELECT max(c.id) FROM messages c WHERE c.parent_id = down.id), down.depth + 1 FROM down"
    "  WHERE down.id IS NOT NULL AND down.depth < ?2)"
    " SELECT max(id), (SELECT id FROM down WHERE depth = ?2), " QVK_LOOPING_IN("down") " FROM down";
inline constexpr char kMessageLinks[] = "SELECT id, parent_id FROM messages WHERE conversation_id = ?1 ORDER BY id";
inline constexpr char kAllMessages[] =
    "SELECT " QVK_MESSAGE_COLUMNS " FROM messages m WHERE m.conversation_id = ?1 ORDER BY m.id";
inline constexpr char kAnyStreaming[] = "SELECT EXISTS (SELECT 1 FROM messages WHERE state = 'streaming')";
inline constexpr char kMarkInterrupted[] = "UPDATE messages SET state = 'interrupted' WHERE state = 'streaming'";
#undef QVK_MESSAGE_COLUMNS
#undef QVK_WALK_UP
#undef QVK_LOOPING_IN

// --- search ---------------------------------------------------------------------------------
// ?1: an FTS5 query built by the store from quoted words; ?2: the limit. One row per
// conversation, its best hit. Title hits come first: bm25 ranks of the two indexes are not
// comparable, and a title names the whole conversation. No snippet() here: it costs the square
// of a text's matches, and it would run for every hit, shown or not.
inline constexpr char kSearch[] =
    "WITH hits AS ("
    "  SELECT c.id AS conversation, 0 AS message, c.title AS title, 0 AS kind, conversations_fts.rank AS score"
    "  FROM conversations_fts JOIN conversations c ON c.id = conversations_fts.rowid"
    "  WHERE conversations_fts MATCH ?1 AND c.deleted_ms IS NULL"
    "  UNION ALL"
    "  SELECT c.id, m.id, c.title, 1, messages_fts.rank"
    "  FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
    "  JOIN conversations c ON c.id = m.conversation_id"
    "  WHERE messages_fts MATCH ?1 AND c.deleted_ms IS NULL),"
    " ranked AS ("
    "  SELECT *, row_number() OVER (PARTITION BY conversation ORDER BY kind, score) AS nth FROM hits)"
    " SELECT conversation, message, title FROM ranked WHERE nth = 1 ORDER BY kind, score LIMIT ?2";
// One hit's whole text with every match of ?1 between ?3 and ?4 (linear in the text; the store
// cuts the snippet from it). ?2: the conversation (title) or message.
inline constexpr char kHighlightTitle[] =
    "SELECT highlight(conversations_fts, 0, ?3, ?4) FROM conversations_fts"
    " WHERE conversations_fts MATCH ?1 AND rowid = ?2";
inline constexpr char kHighlightMessage[] =
    "SELECT highlight(messages_fts, 0, ?3, ?4) FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid = ?2";

// --- settings -------------------------------------------------------------------------------
inline constexpr char kGetSetting[] = "SELECT value FROM settings WHERE key = ?1";
inline constexpr char kSetSetting[] =
    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
inline constexpr char kDeleteSetting[] = "DELETE FROM settings WHERE key = ?1";

// --- benchmark runs ---------------------------------------------------------------------------
// Column order shared by every device query (see ReadBenchDevice in bench_runs.cpp).
#define QVK_DEVICE_COLUMNS                                                                              \
  "d.id, d.vendor, d.name, d.driver, d.vulkan, d.memory_bytes, d.subgroup_size, d.coopmat, d.peak_ms, " \
  "d.copy_gbps, d.f32_tflops, d.f16_tflops, d.coopmat_tflops"
#define QVK_MODEL_COLUMNS "m.id, m.name, m.type, m.layers, m.hidden, m.params, m.weight_types, m.file_bytes"
#define QVK_RUN_COLUMNS                                                                                         \
  "r.id, r.source, r.created_ms, r.version, r.git_commit, r.variant, r.repetitions, r.prompts, r.generations, " \
  "r.depths, r.context, r.stages, " QVK_DEVICE_COLUMNS ", " QVK_MODEL_COLUMNS

// Adds the device unless it is there; kFindBenchDevice then names it either way.
inline constexpr char kInsertBenchDevice[] =
    "INSERT INTO bench_devices (vendor, name, driver, vulkan, memory_bytes, subgroup_size, coopmat)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
inline constexpr char kFindBenchDevice[] =
    "SELECT id FROM bench_devices WHERE vendor = ?1 AND name = ?2 AND driver = ?3 AND vulkan = ?4"
    " AND memory_bytes = ?5 AND subgroup_size = ?6 AND coopmat = ?7";
// Newer peaks replace older ones; older ones (an imported file's) leave them.
inline constexpr char kSetBenchDevicePeaks[] =
    "UPDATE bench_devices SET peak_ms = ?2, copy_gbps = ?3, f32_tflops = ?4, f16_tflops = ?5, coopmat_tflops = ?6"
    " WHERE id = ?1 AND (peak_ms IS NULL OR peak_ms < ?2)";
inline constexpr char kListBenchDevices[] = "SELECT " QVK_DEVICE_COLUMNS " FROM bench_devices d ORDER BY d.id";
inline constexpr char kInsertBenchModel[] =
    "INSERT INTO bench_models (name, type, layers, hidden, params, weight_types, file_bytes)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
inline constexpr char kFindBenchModel[] =
    "SELECT id FROM bench_models WHERE name = ?1 AND type = ?2 AND layers = ?3 AND hidden = ?4 AND params = ?5"
    " AND weight_types = ?6 AND file_bytes = ?7";
inline constexpr char kInsertBenchRun[] =
    "INSERT INTO bench_runs (device_id, model_id, source, created_ms, version, git_commit, variant, repetitions,"
    " prompts, generations, depths, context, stages) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
inline constexpr char kInsertBenchRow[] =
    "INSERT INTO bench_rows (run_id, position, kind, tokens, depth, mean_tps, stddev_tps, samples_s, device_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
inline constexpr char kInsertBenchKernel[] =
    "INSERT INTO bench_kernels (row_id, position, label, dispatches, share, us_per_step, bytes, flops, waits)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
// The same measurement already stored (an import of a file seen before).
inline constexpr char kFindBenchRun[] =
    "SELECT id FROM bench_runs WHERE device_id = ?1 AND model_id = ?2 AND source = ?3 AND created_ms = ?4"
    " AND git_commit = ?5 AND variant = ?6";
inline constexpr char kListBenchRuns[] =
    "SELECT " QVK_RUN_COLUMNS
    " FROM bench_runs r JOIN bench_devices d ON d.id = r.device_id"
    " JOIN bench_models m ON m.id = r.model_id ORDER BY r.created_ms DESC, r.id DESC";
inline constexpr char kGetBenchRun[] = "SELECT " QVK_RUN_COLUMNS
                                       " FROM bench_runs r JOIN bench_devices d ON d.id = r.device_id"
                                       " JOIN bench_models m ON m.id = r.model_id WHERE r.id = ?1";
inline constexpr char kBenchRows[] =
    "SELECT id, kind, tokens, depth, mean_tps, stddev_tps, samples_s, device_us FROM bench_rows WHERE run_id = ?1"
    " ORDER BY position";
inline constexpr char kBenchKernels[] =
    "SELECT label, dispatches, share, us_per_step, bytes, flops, waits FROM bench_kernels WHERE row_id = ?1"
    " ORDER BY position";
inline constexpr char kDeleteBenchRun[] = "DELETE FROM bench_runs WHERE id = ?1";
#undef QVK_DEVICE_COLUMNS
#undef QVK_MODEL_COLUMNS
#undef QVK_RUN_COLUMNS

// --- maintenance ----------------------------------------------------------------------------
inline constexpr char kIntegrityCheck[] = "PRAGMA integrity_check";

}  // namespace qvk::store::sql
