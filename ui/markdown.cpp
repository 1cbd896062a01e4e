// Sections: character classes / inline spans / blocks
#include "ui/markdown.h"

#include <algorithm>
#include <optional>

namespace qvk::ui {
namespace {

// --- character classes ------------------------------------------------------------------------

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Non-ASCII bytes count as punctuation for the flanking rules (see the header).
bool IsPunctuation(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x80 ||
         (byte > 0x20 && byte < 0x7F && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z'));
}

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return IsSpace(c); });
}

// The width of leading whitespace in columns (tabs to the next multiple of 4) and its length.
struct Indentation {
  int columns = 0;
  size_t bytes = 0;
};

Indentation LeadingIndentation(std::string_view line) {
  Indentation indentation;
  for (; indentation.bytes < line.size(); ++indentation.bytes) {
    const char c = line[indentation.bytes];
    if (c == ' ') {
      indentation.columns += 1;
    } else if (c == '\t') {
      indentation.columns += 4 - indentation.columns % 4;
    } else {
      break;
    }
  }
  return indentation;
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

size_t RunLength(std::string_view s, size_t at) {
  size_t end = at;
  while (end < s.size() && s[end] == s[at]) ++end;
  return end - at;
}

// --- inline spans -----------------------------------------------------------------------------

constexpr uint8_t kBold = 1;
constexpr uint8_t kItalic = 2;

struct Piece {
  std::string_view text;
  uint8_t emphasis = 0;
  bool code = false;
};

struct Delimiter {
  size_t piece;
  char marker;
  int count;
  int original_count;
  bool can_open;
  bool can_close;
};

// CommonMark's left/right-flanking rules; '_' may not open or close inside a word.
Delimiter MakeDelimiter(std::string_view line, size_t at, size_t length, size_t piece) {
  const char marker = line[at];
  const char before = at == 0 ? ' ' : line[at - 1];
  const char after = at + length >= line.size() ? ' ' : line[at + length];
  const bool left_flanking = !IsSpace(after) && (!IsPunctuation(after) || IsSpace(before) || IsPunctuation(before));
  const bool right_flanking = !IsSpace(before) && (!IsPunctuation(before) || IsSpace(after) || IsPunctuation(after));
  Delimiter d{piece, marker, static_cast<int>(length), static_cast<int>(length), left_flanking, right_flanking};
  if (marker == '_') {
    d.can_open = left_flanking && (!right_flanking || IsPunctuation(before));
    d.can_close = right_flanking && (!left_flanking || IsPunctuation(after));
  }
  return d;
}

// Splits a line into text, code and delimiter-run pieces; backslash escapes become one-character
// pieces without their backslash.
void Tokenize(std::string_view line, std::vector<Piece>& pieces, std::vector<Delimiter>& delimiters) {
  size_t text_start = 0;
  auto flush_text = [&](size_t end) {
    if (end > text_start) pieces.push_back({line.substr(text_start, end - text_start)});
  };
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == '\\' && i + 1 < line.size() && IsPunctuation(line[i + 1]) &&
        static_cast<unsigned char>(line[i + 1]) < 0x80) {
      flush_text(i);
      pieces.push_back({line.substr(i + 1, 1)});
      i += 2;
      text_start = i;
    } else if (c == '`') {
      const size_t length = RunLength(line, i);
      size_t close = i + length;
      while (close < line.size() && !(line[close] == '`' && RunLength(line, close) == length)) {
        close += line[close] == '`' ? RunLength(line, close) : 1;
      }
      if (close >= line.size()) {
        i += length;  // no closing run: the backticks stay literal
        continue;
      }
      flush_text(i);
      std::string_view code = line.substr(i + length, close - i - length);
      if (code.size() >= 2 && code.front() == ' ' && code.back() == ' ' && !IsBlank(code)) {
        code = code.substr(1, code.size() - 2);
      }
      pieces.push_back({code, 0, true});
      i = close + length;
      text_start = i;
    } else if (c == '*' || c == '_') {
      const size_t length = RunLength(line, i);
      flush_text(i);
      delimiters.push_back(MakeDelimiter(line, i, length, pieces.size()));
      pieces.push_back({line.substr(i, length)});
      i += length;
      text_start = i;
    } else {
      ++i;
    }
  }
  flush_text(line.size());
}

// CommonMark's "process emphasis", simplified: each closer matches the nearest compatible opener,
// two markers for bold when both runs have two, else one for italic.
void MatchEmphasis(std::vector<Piece>& pieces, std::vector<Delimiter>& delimiters) {
  // Per marker, closer length mod 3 and can_open: the lowest opener index worth searching, which
  // keeps a line of many unmatched markers linear.
  size_t openers_bottom[2][3][2] = {};
  for (size_t closer_index = 0; closer_index < delimiters.size(); ++closer_index) {
    Delimiter& closer = delimiters[closer_index];
    if (!closer.can_close) continue;
    size_t& bottom = openers_bottom[closer.marker == '_'][closer.original_count % 3][closer.can_open];
    while (closer.count > 0) {
      std::optional<size_t> opener_index;
      for (size_t j = closer_index; j > bottom; --j) {
        const Delimiter& opener = delimiters[j - 1];
        if (opener.marker != closer.marker || opener.count == 0 || !opener.can_open) continue;
        const bool rule_of_three = (opener.can_close || closer.can_open) &&
                                   (opener.original_count + closer.original_count) % 3 == 0 &&
                                   !(opener.original_count % 3 == 0 && closer.original_count % 3 == 0);
        if (rule_of_three) continue;
        opener_index = j - 1;
        break;
      }
      if (!opener_index) {
        bottom = closer_index;
        break;
      }
      Delimiter& opener = delimiters[*opener_index];
      const int used = opener.count >= 2 && closer.count >= 2 ? 2 : 1;
      for (size_t p = opener.piece + 1; p < closer.piece; ++p) pieces[p].emphasis |= used == 2 ? kBold : kItalic;
      opener.count -= used;
      closer.count -= used;
      pieces[opener.piece].text.remove_suffix(static_cast<size_t>(used));
      pieces[closer.piece].text.remove_prefix(static_cast<size_t>(used));
      for (size_t between = *opener_index + 1; between < closer_index; ++between) delimiters[between].count = 0;
    }
  }
}

SpanStyle StyleOf(const Piece& piece) {
  if (piece.code) return SpanStyle::Code;
  switch (piece.emphasis) {
    case kBold:
      return SpanStyle::Bold;
    case kItalic:
      return SpanStyle::Italic;
    case kBold | kItalic:
      return SpanStyle::BoldItalic;
    default:
      return SpanStyle::Plain;
  }
}

void AppendInline(std::string_view line, std::vector<MdSpan>& spans) {
  std::vector<Piece> pieces;
  std::vector<Delimiter> delimiters;
  Tokenize(line, pieces, delimiters);
  MatchEmphasis(pieces, delimiters);
  const size_t first = spans.size();
  for (const Piece& piece : pieces) {
    if (piece.text.empty()) continue;
    const SpanStyle style = StyleOf(piece);
    if (spans.size() > first) {
      MdSpan& last = spans.back();
      if (last.style == style && last.text.data() + last.text.size() == piece.text.data()) {
        last.text = std::string_view(last.text.data(), last.text.size() + piece.text.size());
        continue;
      }
    }
    spans.push_back({style, piece.text});
  }
}

// --- blocks -----------------------------------------------------------------------------------

struct Fence {
  char marker;
  size_t length;
  std::string_view info;
};

std::optional<Fence> OpeningFence(std::string_view content) {
  if (content.empty() || (content[0] != '`' && content[0] != '~')) return std::nullopt;
  const size_t length = RunLength(content, 0);
  if (length < 3) return std::nullopt;
  const std::string_view info = TrimSpaces(content.substr(length));
  if (content[0] == '`' && info.find('`') != std::string_view::npos) return std::nullopt;
  return Fence{content[0], length, info};
}

bool ClosesFence(std::string_view content, const Fence& fence) {
  if (content.empty() || content[0] != fence.marker) return false;
  const size_t length = RunLength(content, 0);
  return length >= fence.length && IsBlank(content.substr(length));
}

bool IsRule(std::string_view content) {
  if (content.empty() || (content[0] != '-' && content[0] != '*' && content[0] != '_')) return false;
  int markers = 0;
  for (char c : content) {
    if (c == content[0]) {
      ++markers;
    } else if (c != ' ' && c != '\t') {
      return false;
    }
  }
  return markers >= 3;
}

// The heading level and text of "## Title ##", or 0.
int HeadingLevel(std::string_view content, std::string_view& title) {
  const size_t level = content.empty() || content[0] != '#' ? 0 : RunLength(content, 0);
  if (level == 0 || level > 6 || (level < content.size() && content[level] != ' ' && content[level] != '\t')) {
    return 0;
  }
  title = TrimSpaces(content.substr(level));
  const size_t hashes = title.find_last_not_of('#');
  if (hashes == std::string_view::npos) {
    title = {};
  } else if (hashes + 1 < title.size() && (title[hashes] == ' ' || title[hashes] == '\t')) {
    title = TrimSpaces(title.substr(0, hashes + 1));
  }
  return static_cast<int>(level);
}

struct ListMarker {
  bool numbered = false;
  int number = 0;
  std::string_view text;
};

std::optional<ListMarker> ParseListMarker(std::string_view content) {
  size_t after = 0;
  ListMarker marker;
  if (!content.empty() && (content[0] == '-' || content[0] == '*' || content[0] == '+')) {
    after = 1;
  } else {
    size_t digits = 0;
    while (digits < content.size() && digits < 9 && content[digits] >= '0' && content[digits] <= '9') {
      marker.number = marker.number * 10 + (content[digits] - '0');
      ++digits;
    }
    if (digits == 0 || digits >= content.size() || (content[digits] != '.' && content[digits] != ')')) {
      return std::nullopt;
    }
    marker.numbered = true;
    after = digits + 1;
  }
  if (after < content.size() && content[after] != ' ' && content[after] != '\t') return std::nullopt;
  marker.text = TrimSpaces(content.substr(after));
  return marker;
}

class BlockParser {
 public:
  void Line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const Indentation indentation = LeadingIndentation(line);
    const std::string_view content = line.substr(indentation.bytes);
    std::string_view title;
    const int heading_level = !fence_ && indentation.columns < 4 ? HeadingLevel(content, title) : 0;
    if (fence_) {
      CodeLine(line, content);
    } else if (IsBlank(line)) {
      paragraph_open_ = false;
    } else if (const std::optional<Fence> fence = OpeningFence(content)) {
      MdBlock& block = Start(MdBlockKind::CodeBlock, DepthInside(indentation.columns));
      block.language = fence->info.substr(0, std::min(fence->info.find_first_of(" \t"), fence->info.size()));
      fence_ = fence;
      fence_columns_ = indentation.columns;
      first_code_line_ = true;
    } else if (heading_level > 0) {
      list_columns_.clear();
      MdBlock& block = Start(MdBlockKind::Heading, 0);
      block.level = heading_level;
      AppendInline(title, block.spans);
    } else if (IsRule(content)) {
      list_columns_.clear();
      Start(MdBlockKind::Rule, 0);
    } else if (const std::optional<ListMarker> marker = ParseListMarker(content)) {
      MdBlock& block =
          Start(marker->numbered ? MdBlockKind::NumberedItem : MdBlockKind::BulletItem, NestItem(indentation.columns));
      block.number = marker->number;
      AppendInline(marker->text, block.spans);
      paragraph_open_ = true;
    } else if (paragraph_open_) {
      MdBlock& block = blocks_.back();
      block.spans.push_back({SpanStyle::LineBreak, {}});
      AppendInline(TrimSpaces(content), block.spans);
    } else {
      MdBlock& block = Start(MdBlockKind::Paragraph, DepthInside(indentation.columns));
      AppendInline(TrimSpaces(content), block.spans);
      paragraph_open_ = true;
    }
  }

  std::vector<MdBlock> Finish() { return std::move(blocks_); }

 private:
  MdBlock& Start(MdBlockKind kind, int indent) {
    paragraph_open_ = false;
    MdBlock& block = blocks_.emplace_back();
    block.kind = kind;
    block.indent = indent;
    return block;
  }

  void CodeLine(std::string_view line, std::string_view content) {
    MdBlock& block = blocks_.back();
    if (ClosesFence(content, *fence_)) {
      block.closed = true;
      fence_.reset();
      return;
    }
    // Drop up to the fence's own indentation, so code inside a list item keeps its shape.
    size_t strip = 0;
    for (int columns = 0; strip < line.size() && columns < fence_columns_; ++strip) {
      if (line[strip] == ' ') {
        columns += 1;
      } else if (line[strip] == '\t') {
        columns += 4 - columns % 4;
      } else {
        break;
      }
    }
    if (!first_code_line_) block.code += '\n';
    block.code.append(line.substr(strip));
    first_code_line_ = false;
  }

  // A list item's depth: items at or right of an item's marker column nest inside it.
  int NestItem(int columns) {
    while (!list_columns_.empty() && list_columns_.back() >= columns) list_columns_.pop_back();
    list_columns_.push_back(columns);
    return static_cast<int>(list_columns_.size()) - 1;
  }

  // An indented paragraph or code block belongs to the items whose markers are left of it; an
  // unindented one ends the list.
  int DepthInside(int columns) {
    if (columns == 0) list_columns_.clear();
    while (!list_columns_.empty() && list_columns_.back() >= columns) list_columns_.pop_back();
    return static_cast<int>(list_columns_.size());
  }

  std::vector<MdBlock> blocks_;
  std::vector<int> list_columns_;  // marker columns of the open list items, outermost first
  bool paragraph_open_ = false;    // the last block takes continuation lines
  std::optional<Fence> fence_;     // inside a code block
  int fence_columns_ = 0;
  bool first_code_line_ = true;
};

}  // namespace

std::vector<MdSpan> ParseInline(std::string_view line) {
  std::vector<MdSpan> spans;
  AppendInline(line, spans);
  return spans;
}

std::vector<MdSpan> MarkedSpans(std::string_view text, char start, char end) {
  const char stops[] = {start, end, '\n'};
  std::vector<MdSpan> spans;
  bool marked = false;
  size_t at = 0;
  while (at < text.size()) {
    const size_t stop = std::min(text.find_first_of(std::string_view(stops, 3), at), text.size());
    if (stop > at) spans.push_back({marked ? SpanStyle::Bold : SpanStyle::Plain, text.substr(at, stop - at)});
    if (stop == text.size()) break;
    if (text[stop] == '\n')
      spans.push_back({SpanStyle::LineBreak, {}});
    else
      marked = text[stop] == start;
    at = stop + 1;
  }
  return spans;
}

std::vector<MdBlock> ParseMarkdown(std::string_view text) {
  BlockParser parser;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    parser.Line(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return parser.Finish();
}

}  // namespace qvk::ui
