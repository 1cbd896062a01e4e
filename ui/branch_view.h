#pragma once
// The branch on screen as the chat panel draws it: read from the store once per store revision
// (a branch can hold 100,000 messages; reading it, or each message's siblings, every frame froze
// the window), on a background thread with its own read-only connection so that the window
// never waits for the read, with each message's drawn height remembered so that only the
// messages in view are laid out.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/store.h"
#include "ui/markdown_view.h"

namespace qvk::ui {

struct BranchView {
  // A message's height on screen, valid for the text size and width it was found at.
  struct Height {
    size_t text_bytes = 0;
    float width = 0;
    float height = 0;
    bool measured = false;  // false: an estimate, until the message is drawn
  };

  BranchView();
  ~BranchView();
  BranchView(const BranchView&) = delete;
  BranchView& operator=(const BranchView&) = delete;

  store::Id conversation = 0;
  std::optional<uint64_t> revision;  // of the store when read; none: not read yet
  std::optional<store::Conversation> info;
  std::vector<store::Message> thread;  // root .. current leaf
  std::vector<Height> heights;         // one per message of `thread`
  // Each message's siblings (itself included), oldest first, by parent (0: the roots): the
  // "< 2/3 >" arrows.
  std::unordered_map<store::Id, std::vector<store::Id>> children;
  // The Markdown layouts of the messages drawn in the last frame (others are dropped): their text,
  // or a reply's answer, and a reply's thinking when it is open.
  std::unordered_map<store::Id, MarkdownLayout> layouts;
  std::unordered_map<store::Id, MarkdownLayout> thinking_layouts;
  // The conversation whose reply the view followed to the bottom as it was written (0: none): it
  // keeps the bottom in view until the finished reply, with its figures and buttons, is read.
  store::Id following = 0;

  // Reads the conversation on the calling thread when it or the store changed since the last
  // read (the script, which acts on what it reads). Throws store errors.
  void Refresh(store::Store& store, store::Id selected);
  // For the UI thread: asks the background reader for the conversation as the store is now and
  // takes what it last read; until then the last read stays. True when the view is current.
  // Throws (once) the error a read ended in.
  bool RefreshInBackground(store::Store& store, store::Id selected);
  // Where `message` stands among its siblings: {1-based position, how many}.
  std::pair<size_t, size_t> SiblingPosition(const store::Message& message) const;

 private:
  struct Read;
  class Reader;
  static std::unique_ptr<Read> ReadFrom(store::Store& store, store::Id selected, uint64_t revision);
  void Adopt(Read&& read);  // keeps the heights of messages still there

  std::unique_ptr<Reader> reader_;  // made at the first background read
};

}  // namespace qvk::ui
