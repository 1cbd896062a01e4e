// libFuzzer target: the same bytes imported, into a store that holds nothing between inputs, as a
// conversation file and as a benchmark file (QwenVK's format or llama-bench's), both files a user
// may be sent by anyone.
// An import either refuses with a qvk::Error, or what it added exports to a file that imports
// again to the same conversation, or to as many runs. A crash, a sanitizer report, another
// exception, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.h"
#include "store/bench_exchange.h"
#include "store/exchange.h"
#include "store/store.h"

namespace {

using nlohmann::json;
namespace store = qvk::store;

// A conversation's export with its store ids replaced by each message's place in the file, so
// that two imports of it compare equal.
json WithoutIds(const std::string& exported) {
  json doc = json::parse(exported);
  std::map<int64_t, int64_t> place;
  for (json& message : doc["messages"]) {
    const int64_t index = static_cast<int64_t>(place.size());
    place[message["id"].get<int64_t>()] = index;
    message["id"] = index;
    if (!message["parent"].is_null()) message["parent"] = place.at(message["parent"].get<int64_t>());
  }
  if (!doc["current_leaf"].is_null()) doc["current_leaf"] = place.at(doc["current_leaf"].get<int64_t>());
  return doc;
}

void Conversation(store::Store& db, std::string_view text) {
  store::Id imported = 0;
  qvk::fuzz::AllowError([&] { imported = store::ImportJson(db, text); });
  if (imported == 0) return;
  const std::string exported = store::ExportJson(db, imported);
  (void)store::ExportMarkdown(db, imported);
  const store::Id again = store::ImportJson(db, exported);
  if (WithoutIds(store::ExportJson(db, again)) != WithoutIds(exported)) __builtin_trap();
}

// The runs it added.
std::vector<store::Id> Bench(store::Store& db, std::string_view text) {
  size_t runs = 0;
  bool parsed = false;
  qvk::fuzz::AllowError([&] {
    runs = store::ParseBenchFile(text).runs.size();
    parsed = true;
  });
  if (!parsed) return {};
  // What parses imports; what imports exports to a file of the same runs.
  const store::BenchImport imported = store::ImportBenchJson(db, text);
  if (imported.runs.size() + imported.already_held != runs) __builtin_trap();
  if (!imported.runs.empty()) {
    const std::string exported = store::ExportBenchJson(db, imported.runs);
    if (store::ParseBenchFile(exported).runs.size() != imported.runs.size()) __builtin_trap();
  }
  return imported.runs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One store for the process (opening one takes milliseconds, a hundred times an input), left
  // as it was found after each input: what an import added is removed for good, so that no input
  // sees another's.
  static store::Store db(qvk::fuzz::Folder() / "conversations.db");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<store::Id> runs = Bench(db, text);
  Conversation(db, text);
  for (const store::Id run : runs) db.DeleteBenchRun(run);
  for (const store::Conversation& conversation : db.ListConversations()) db.DeleteConversation(conversation.id);
  db.PurgeDeleted();
  return 0;
}
