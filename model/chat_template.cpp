// Sections: values / whitespace and Python strings / printing and JSON / lexing / parsing / rendering /
// ChatTemplate
//
// Semantics follow Jinja 3 as transformers configures it: trim_blocks and lstrip_blocks on,
// keep_trailing_newline off, newlines normalised to "\n", the default Undefined (prints as
// nothing, but raises when indexed or added to), Python's rules for truthiness, slices, string
// methods and comparisons, `and`/`or` returning an operand, `==` with True == 1, namespace()
// objects that a loop can leave results in, and transformers' own tojson (json.dumps with
// ensure_ascii=False, so non-ASCII and <, >, & stay as written).
#include "model/chat_template.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/input_limits.h"
#include "model/mapped_file.h"

namespace qvk {
namespace {

// --- values ---------------------------------------------------------------------------------

struct Value;
struct Namespace;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts iterate

struct Undefined {
  std::string why;  // the error to raise if it is used as more than an empty string
};
struct None {};

// Lists and dicts never change once made, so copies share them; a namespace is the one value a
// template changes in place ({% set ns.found = true %}), which is how a loop leaves a result.
struct Value {
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>>
      data;
};

struct Namespace {
  Dict attributes;
};

Value MakeList(List list) {
  return {std::make_shared<const List>(std::move(list))};
}
Value MakeDict(Dict dict) {
  return {std::make_shared<const Dict>(std::move(dict))};
}

template <typename T>
const T* As(const Value& value) {
  return std::get_if<T>(&value.data);
}

using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<const Dict>;
using NamespacePtr = std::shared_ptr<Namespace>;

std::string_view TypeName(const Value& value) {
  constexpr std::string_view kNames[] = {"undefined", "none",   "a boolean", "an integer", "a float",
                                         "a string",  "a list", "a dict",    "a namespace"};
  return kNames[value.data.index()];
}

// Python treats booleans as the integers 0 and 1 in arithmetic and comparison.
std::optional<int64_t> AsInteger(const Value& value) {
  if (const auto* b = As<bool>(value)) return *b ? 1 : 0;
  if (const auto* i = As<int64_t>(value)) return *i;
  return std::nullopt;
}

// Any Python number (booleans included), for arithmetic and comparison that mixes in a float.
std::optional<double> AsNumber(const Value& value) {
  if (const auto* d = As<double>(value)) return *d;
  if (const auto i = AsInteger(value)) return static_cast<double>(*i);
  return std::nullopt;
}

bool Truthy(const Value& value) {
  return std::visit(
      [](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, None>) {
          return false;
        } else if constexpr (std::is_same_v<T, bool>) {
          return v;
        } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
          return v != 0;
        } else if constexpr (std::is_same_v<T, std::string>) {
          return !v.empty();
        } else if constexpr (std::is_same_v<T, NamespacePtr>) {
          return true;
        } else {
          return !v->empty();
        }
      },
      value.data);
}

const Value* Find(const Dict& dict, std::string_view key) {
  for (const auto& [name, value] : dict) {
    if (name == key) return &value;
  }
  return nullptr;
}

// Adds to `work` the values and string bytes it compares.
bool Equal(const Value& a, const Value& b, uint64_t& work) {
  ++work;
  if (const auto x = AsInteger(a), y = AsInteger(b); x && y) return *x == *y;
  if (As<double>(a) || As<double>(b)) {
    const auto x = AsNumber(a), y = AsNumber(b);
    return x && y && *x == *y;
  }
  if (a.data.index() != b.data.index()) return false;
  if (const auto* s = As<std::string>(a)) {
    work += s->size();
    return *s == *As<std::string>(b);
  }
  if (const auto* list = As<ListPtr>(a)) {
    const List& other = **As<ListPtr>(b);
    if ((*list)->size() != other.size()) return false;
    for (size_t i = 0; i < other.size(); ++i) {
      if (!Equal((**list)[i], other[i], work)) return false;
    }
    return true;
  }
  if (const auto* dict = As<DictPtr>(a)) {
    const Dict& other = **As<DictPtr>(b);
    if ((*dict)->size() != other.size()) return false;
    for (const auto& [key, value] : **dict) {
      const Value* match = Find(other, key);
      work += other.size();
      if (match == nullptr || !Equal(value, *match, work)) return false;
    }
    return true;
  }
  if (const auto* space = As<NamespacePtr>(a)) return *space == *As<NamespacePtr>(b);  // by identity, as Python
  return true;                                                                         // both undefined or both none
}

// At least the bytes a copy of `value` allocates: a list holds its strings by value (its dicts are
// shared, but counted as if copied, which errs on the safe side).
uint64_t Footprint(const Value& value) {
  uint64_t bytes = sizeof(Value);
  if (const auto* text = As<std::string>(value)) bytes += text->size();
  if (const auto* list = As<ListPtr>(value)) {
    for (const Value& element : **list) bytes += Footprint(element);
  }
  if (const auto* dict = As<DictPtr>(value)) {
    for (const auto& [key, element] : **dict) bytes += key.size() + Footprint(element);
  }
  if (const auto* space = As<NamespacePtr>(value)) {
    for (const auto& [key, element] : (*space)->attributes) bytes += key.size() + Footprint(element);
  }
  return bytes;
}

// --- whitespace and Python strings -----------------------------------------------------------

// Python's str.isspace(), which Jinja's whitespace control, trim, strip() and split() rely on.
bool IsPythonSpace(int32_t codepoint) {
  const utf8proc_property_t* property = utf8proc_get_property(codepoint);
  return property->category == UTF8PROC_CATEGORY_ZS || property->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
         property->bidi_class == UTF8PROC_BIDI_CLASS_B || property->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

// Length of the character at `pos` if it is whitespace, else 0.
size_t SpaceAt(std::string_view text, size_t pos) {
  int32_t codepoint = 0;
  const auto length = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                                       static_cast<utf8proc_ssize_t>(text.size() - pos), &codepoint);
  return length > 0 && IsPythonSpace(codepoint) ? static_cast<size_t>(length) : 0;
}

size_t SkipSpaces(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    const size_t length = SpaceAt(text, pos);
    if (length == 0) break;
    pos += length;
  }
  return pos;
}

// Where the trailing whitespace of `text` begins.
size_t TrailingSpaceStart(std::string_view text) {
  size_t content_end = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t space = SpaceAt(text, pos);
    pos += space > 0 ? space : 1;
    if (space == 0) content_end = pos;
  }
  return content_end;
}

// Python counts characters (code points): every byte that is not a UTF-8 continuation byte starts
// one, and so does the first byte whatever it is, so text that is not UTF-8 still splits into
// characters the same way forwards and backwards.
bool StartsCharacter(std::string_view text, size_t pos) {
  return pos == 0 || (static_cast<unsigned char>(text[pos]) & 0xC0) != 0x80;
}

size_t NextCharacter(std::string_view text, size_t pos) {
  do {
    ++pos;
  } while (pos < text.size() && !StartsCharacter(text, pos));
  return pos;
}

size_t PreviousCharacter(std::string_view text, size_t pos) {
  do {
    --pos;
  } while (!StartsCharacter(text, pos));
  return pos;
}

int64_t CharacterCount(std::string_view text) {
  int64_t characters = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) characters += StartsCharacter(text, pos);
  return characters;
}

// Python's str.strip / lstrip / rstrip: whitespace, or with `chars` any of its characters.
std::string_view StripText(std::string_view text, const std::optional<std::string>& chars, bool left, bool right) {
  const auto strippable = [&](std::string_view character) {
    if (!chars) return SpaceAt(character, 0) == character.size();
    for (size_t pos = 0; pos < chars->size();) {
      const size_t next = NextCharacter(*chars, pos);
      if (std::string_view(*chars).substr(pos, next - pos) == character) return true;
      pos = next;
    }
    return false;
  };
  size_t begin = 0, end = text.size();
  while (left && begin < end) {
    const size_t next = NextCharacter(text, begin);
    if (!strippable(text.substr(begin, next - begin))) break;
    begin = next;
  }
  while (right && end > begin) {
    const size_t previous = std::max(begin, PreviousCharacter(text, end));
    if (!strippable(text.substr(previous, end - previous))) break;
    end = previous;
  }
  return text.substr(begin, end - begin);
}

// Python's str.split: at each `separator`, or without one at runs of whitespace (dropping empty
// pieces). Calls `piece` for each piece in order.
template <typename PieceFn>
void SplitText(std::string_view text, const std::optional<std::string>& separator, PieceFn piece) {
  if (separator) {
    size_t begin = 0;
    for (size_t at = text.find(*separator); at != std::string_view::npos; at = text.find(*separator, begin)) {
      piece(text.substr(begin, at - begin));
      begin = at + separator->size();
    }
    piece(text.substr(begin));
    return;
  }
  for (size_t pos = SkipSpaces(text, 0); pos < text.size(); pos = SkipSpaces(text, pos)) {
    const size_t begin = pos;
    while (pos < text.size() && SpaceAt(text, pos) == 0) pos = NextCharacter(text, pos);
    piece(text.substr(begin, pos - begin));
  }
}

// Python's slice [start:stop:step] of `length` items: count items from `start`, `step` apart.
struct SliceRange {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

SliceRange ResolveSlice(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) {
  SliceRange range{.step = step};
  int64_t end = 0;
  if (step > 0) {
    const auto clamp = [&](int64_t i) { return i < 0 ? std::max<int64_t>(i + length, 0) : std::min(i, length); };
    range.start = start ? clamp(*start) : 0;
    end = stop ? clamp(*stop) : length;
    range.count = range.start < end ? (end - range.start - 1) / step + 1 : 0;
  } else {
    const auto clamp = [&](int64_t i) { return i < 0 ? std::max<int64_t>(i + length, -1) : std::min(i, length - 1); };
    range.start = start ? clamp(*start) : length - 1;
    end = stop ? clamp(*stop) : -1;
    const uint64_t magnitude = uint64_t{0} - static_cast<uint64_t>(step);  // -step, INT64_MIN included
    range.count =
        range.start > end ? static_cast<int64_t>(static_cast<uint64_t>(range.start - end - 1) / magnitude) + 1 : 0;
  }
  return range;
}

bool InSlice(const SliceRange& range, int64_t index) {
  const int64_t offset = range.step > 0 ? index - range.start : range.start - index;
  if (offset < 0) return false;
  const uint64_t magnitude =
      range.step > 0 ? static_cast<uint64_t>(range.step) : uint64_t{0} - static_cast<uint64_t>(range.step);
  const uint64_t k = static_cast<uint64_t>(offset);
  return k % magnitude == 0 && k / magnitude < static_cast<uint64_t>(range.count);
}

// The characters of `text` a slice takes, walking the text once in the slice's direction.
std::string SliceText(std::string_view text, const SliceRange& range) {
  std::string out;
  if (range.count == 0) return out;
  if (range.step > 0) {
    int64_t index = 0;
    for (size_t pos = 0; pos < text.size(); ++index) {
      const size_t next = NextCharacter(text, pos);
      if (InSlice(range, index)) out += text.substr(pos, next - pos);
      pos = next;
    }
  } else {
    int64_t index = CharacterCount(text);
    for (size_t pos = text.size(); pos > 0;) {
      const size_t previous = PreviousCharacter(text, pos);
      if (InSlice(range, --index)) out += text.substr(previous, pos - previous);
      pos = previous;
    }
  }
  return out;
}

// --- printing and JSON ----------------------------------------------------------------------

// Python's repr() of a float, which printing and json.dumps both use: the shortest digits that
// read back the same, written out from 1e-4 to below 1e16, else with an exponent of two digits
// or more.
std::string PythonFloat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  const std::string_view scientific(buffer, static_cast<size_t>(result.ptr - buffer));  // "-1.25e+07"
  const size_t e = scientific.find('e');
  std::string digits;
  for (const char c : scientific.substr(0, e)) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const std::string_view exponent_text = scientific.substr(e + 1);
  int exponent = 0;
  std::from_chars(exponent_text.data() + 1, exponent_text.data() + exponent_text.size(), exponent);
  if (exponent_text[0] == '-') exponent = -exponent;

  std::string out = std::signbit(value) ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    return out + fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  const auto whole = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= whole) return out + digits + std::string(whole - digits.size(), '0') + ".0";
  return out + digits.substr(0, whole) + "." + digits.substr(whole);
}

// A string as json.dumps writes it with ensure_ascii=False.
void AppendJsonString(std::string_view text, std::string& out) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

using nlohmann::ordered_json;

// A JSON value (a message, a tool, a template variable) as the template sees it; object keys keep
// their order, as Python's json.loads keeps them.
Value FromJson(const ordered_json& json, int depth) {
  if (depth > input_limits::kMaxJsonDepth) {
    throw Error(fmt::format("chat template input nests deeper than {} levels", input_limits::kMaxJsonDepth));
  }
  switch (json.type()) {
    case ordered_json::value_t::null:
      return {None{}};
    case ordered_json::value_t::boolean:
      return {json.get<bool>()};
    case ordered_json::value_t::number_integer:
      return {json.get<int64_t>()};
    case ordered_json::value_t::number_unsigned:
      if (json.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw Error(fmt::format("chat template input: the integer {} is out of range", json.get<uint64_t>()));
      }
      return {static_cast<int64_t>(json.get<uint64_t>())};
    case ordered_json::value_t::number_float:
      return {json.get<double>()};
    case ordered_json::value_t::string:
      return {json.get<std::string>()};
    case ordered_json::value_t::array: {
      List list;
      for (const ordered_json& element : json) list.push_back(FromJson(element, depth + 1));
      return MakeList(std::move(list));
    }
    case ordered_json::value_t::object: {
      Dict dict;
      for (const auto& [key, element] : json.items()) dict.emplace_back(key, FromJson(element, depth + 1));
      return MakeDict(std::move(dict));
    }
    default:
      throw Error("chat template input holds binary data, which a template cannot read");
  }
}

// --- lexing ---------------------------------------------------------------------------------

enum class TokenKind { kName, kString, kInteger, kOperator };

struct Token {
  TokenKind kind;
  std::string text;  // name, operator, or the string's value
  int64_t integer = 0;
};

struct Segment {
  enum class Kind { kText, kOutput, kStatement } kind;
  std::string text;           // kText
  std::vector<Token> tokens;  // kOutput, kStatement
  size_t line;
};

bool IsOneOf(char c, std::string_view set) {
  return set.find(c) != std::string_view::npos;
}

[[noreturn]] void Fail(size_t line, std::string_view message) {
  throw Error(fmt::format("chat template line {}: {}", line, message));
}

// Splits the source into text and tags, applying Jinja's whitespace control as its lexer does:
// "{%-"/"-%}" strip all whitespace on that side, trim_blocks drops the newline after a block or
// comment tag, lstrip_blocks drops spaces and tabs between a line's start and a block tag, and
// "+" turns either of the last two off for one tag.
class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Jinja normalises every newline and drops one trailing newline (keep_trailing_newline off).
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        source_ += '\n';
      } else {
        source_ += source[i];
      }
    }
    if (source_.ends_with('\n')) source_.pop_back();
  }

  std::vector<Segment> Run() {
    std::vector<Segment> segments;
    bool line_start = true;
    while (pos_ < source_.size()) {
      const size_t tag = FindTagStart();
      std::string text = source_.substr(pos_, tag - pos_);
      if (tag == source_.size()) {
        segments.push_back({Segment::Kind::kText, std::move(text), {}, LineAt(pos_)});
        break;
      }
      const char kind = source_[tag + 1];
      const char sign = tag + 2 < source_.size() && IsOneOf(source_[tag + 2], "-+") ? source_[tag + 2] : 0;
      if (sign == '-') {
        text.erase(TrailingSpaceStart(text));
      } else if (kind != '{' && sign != '+') {
        const size_t newline = text.rfind('\n');
        const size_t line_begin = newline == std::string::npos ? 0 : newline + 1;
        if ((line_begin > 0 || line_start) && text.find_first_not_of(" \t", line_begin) == std::string::npos) {
          text.erase(line_begin);
        }
      }
      if (!text.empty()) segments.push_back({Segment::Kind::kText, std::move(text), {}, LineAt(pos_)});
      pos_ = tag + (sign != 0 ? 3 : 2);

      char end_sign = 0;
      if (kind == '#') {
        const size_t end = source_.find("#}", pos_);
        if (end == std::string::npos) Fail(LineAt(tag), "unclosed comment");
        if (end > pos_ && IsOneOf(source_[end - 1], "-+")) end_sign = source_[end - 1];
        pos_ = end + 2;
      } else {
        Segment segment{kind == '{' ? Segment::Kind::kOutput : Segment::Kind::kStatement, {}, {}, LineAt(tag)};
        end_sign = LexTag(kind == '{' ? "}}" : "%}", segment);
        segments.push_back(std::move(segment));
      }

      const size_t tag_end = pos_;
      if (end_sign == '-') {
        pos_ = SkipSpaces(source_, pos_);
      } else if (kind != '{' && end_sign != '+' && pos_ < source_.size() && source_[pos_] == '\n') {
        ++pos_;
      }
      line_start = pos_ > tag_end && source_[pos_ - 1] == '\n';
    }
    return segments;
  }

 private:
  size_t FindTagStart() const {
    for (size_t at = source_.find('{', pos_); at != std::string::npos; at = source_.find('{', at + 1)) {
      if (at + 1 < source_.size() && IsOneOf(source_[at + 1], "{%#")) return at;
    }
    return source_.size();
  }

  // Positions asked about only move forward, so the newlines are counted once, not from the
  // start each time (which made long templates quadratic to lex).
  size_t LineAt(size_t pos) {
    if (pos < counted_to_) counted_to_ = 0, lines_before_ = 0;
    lines_before_ += static_cast<size_t>(std::count(source_.begin() + static_cast<std::ptrdiff_t>(counted_to_),
                                                    source_.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
    counted_to_ = pos;
    return 1 + lines_before_;
  }

  // Reads the tag's tokens through its closing delimiter; returns the '-' or '+' before it, or 0.
  char LexTag(std::string_view close, Segment& segment) {
    while (true) {
      pos_ = SkipSpaces(source_, pos_);
      if (pos_ >= source_.size()) Fail(segment.line, fmt::format("tag is not closed with '{}'", close));
      const std::string_view rest = std::string_view(source_).substr(pos_);
      if (rest.starts_with(close)) {
        pos_ += 2;
        return 0;
      }
      if ((rest[0] == '-' || (rest[0] == '+' && close == "%}")) && rest.substr(1).starts_with(close)) {
        pos_ += 3;
        return rest[0];
      }
      segment.tokens.push_back(LexToken(segment.line));
    }
  }

  Token LexToken(size_t line) {
    const char c = source_[pos_];
    if (c == '\'' || c == '"') return LexString(line);
    if (c >= '0' && c <= '9') {
      int64_t value = 0;
      const auto [end, error] = std::from_chars(source_.data() + pos_, source_.data() + source_.size(), value);
      if (error != std::errc()) Fail(line, "integer literal out of range");
      pos_ = static_cast<size_t>(end - source_.data());
      if (pos_ < source_.size() &&
          (source_[pos_] == '.' || source_[pos_] == '_' || std::isalpha(static_cast<unsigned char>(source_[pos_])))) {
        Fail(line, "unsupported number literal (only decimal integers)");
      }
      return {TokenKind::kInteger, {}, value};
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t begin = pos_;
      while (pos_ < source_.size() && (std::isalnum(static_cast<unsigned char>(source_[pos_])) || source_[pos_] == '_'))
        ++pos_;
      return {TokenKind::kName, source_.substr(begin, pos_ - begin)};
    }
    for (const std::string_view op : {"==", "!=", "<=", ">="}) {
      if (std::string_view(source_).substr(pos_).starts_with(op)) {
        pos_ += 2;
        return {TokenKind::kOperator, std::string(op)};
      }
    }
    if (IsOneOf(c, "()[].|+-,=:<>")) return {TokenKind::kOperator, std::string(1, source_[pos_++])};
    if (static_cast<unsigned char>(c) >= 0x80) Fail(line, "unexpected non-ASCII character in a tag");
    Fail(line, fmt::format("unsupported Jinja operator '{}'", c));
  }

  // Python string-literal escapes as Jinja applies them; the ones that name characters by number
  // or name are outside the subset.
  Token LexString(size_t line) {
    const char quote = source_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= source_.size()) Fail(line, "unterminated string literal");
      const char c = source_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= source_.size()) Fail(line, "unterminated string literal");
      const char escaped = source_[pos_++];
      switch (escaped) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case '\\':
        case '\'':
        case '"':
          value += escaped;
          break;
        default:
          if (IsOneOf(escaped, "abfvxuUN01234567\n")) {
            Fail(line, fmt::format("unsupported string escape '\\{}'",
                                   escaped == '\n' ? "<newline>" : std::string(1, escaped)));
          }
          value += '\\';  // Python keeps unknown escapes as written
          value += escaped;
      }
    }
    return {TokenKind::kString, std::move(value)};
  }

  std::string source_;
  size_t pos_ = 0;
  size_t counted_to_ = 0;    // LineAt has counted the newlines before this position
  size_t lines_before_ = 0;  // which are this many
};

// --- parsing --------------------------------------------------------------------------------

struct Expr {
  enum class Kind {
    kLiteral,
    kVariable,
    kSubscript,
    kSlice,
    kCall,
    kMethod,
    kFilter,
    kTest,
    kNot,
    kNegate,
    kAnd,
    kOr,
    kAdd,
    kSubtract,
    kEqual,
    kNotEqual,
    kLess,
    kLessEqual,
    kGreater,
    kGreaterEqual,
    kIn,
    kNotIn
  };
  Kind kind;
  size_t line;
  Value literal;                      // kLiteral
  std::string name;                   // kVariable; kCall, kMethod, kFilter, kTest: which one
  std::unique_ptr<Expr> left, right;  // operands; kSubscript: object, key; kSlice, kMethod, kFilter, kTest and
                                      // unary kinds use left
  std::vector<std::unique_ptr<Expr>> arguments;  // kCall, kMethod, kFilter; kSlice: start, stop, step (or null)
  std::vector<std::string> keywords;             // each argument's keyword, empty for a positional one
  bool negated = false;                          // kTest: `is not`
  int height = 1;                                // of the tree below and including this node
};

[[noreturn]] void FailTooDeep(size_t line) {
  Fail(line, fmt::format("expression nests deeper than {} levels", input_limits::kMaxTemplateExpressionDepth));
}

// Evaluation and destruction recurse once per level of the tree, and a chain such as
// `a + a + ...` or `x | trim | trim ...` builds one level per link: the height is bounded here.
std::unique_ptr<Expr> MakeExpr(Expr::Kind kind, size_t line, std::unique_ptr<Expr> left = nullptr,
                               std::unique_ptr<Expr> right = nullptr) {
  const int height = 1 + std::max(left ? left->height : 0, right ? right->height : 0);
  if (height > input_limits::kMaxTemplateExpressionDepth) FailTooDeep(line);
  auto expr = std::make_unique<Expr>();
  expr->kind = kind;
  expr->line = line;
  expr->left = std::move(left);
  expr->right = std::move(right);
  expr->height = height;
  return expr;
}

void AddArgument(Expr& expr, std::unique_ptr<Expr> argument, std::string keyword = {}) {
  if (argument) {
    expr.height = std::max(expr.height, argument->height + 1);
    if (expr.height > input_limits::kMaxTemplateExpressionDepth) FailTooDeep(expr.line);
  }
  expr.arguments.push_back(std::move(argument));
  expr.keywords.push_back(std::move(keyword));
}

struct Node;
using Block = std::vector<Node>;

struct Branch {
  std::unique_ptr<Expr> condition;  // null for else
  Block body;
};

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet } kind;
  size_t line;
  std::string text;              // kText: the text; kFor, kSet: the variable
  std::string attribute;         // kSet of a namespace's attribute ({% set ns.attribute = ... %})
  std::unique_ptr<Expr> expr;    // kOutput, kSet: the value; kFor: what is iterated
  std::vector<Branch> branches;  // kIf
  Block body;                    // kFor
};

// The calls a template may make, with the positional arguments each takes and the keyword
// argument it takes, if any.
struct Callable {
  std::string_view name;
  size_t min_positional, max_positional;
  std::string_view keyword;  // "*": any name (namespace's attributes)
};
constexpr Callable kFunctions[] = {{"namespace", 0, 0, "*"}, {"raise_exception", 1, 1, ""}};
constexpr Callable kMethods[] = {{"startswith", 1, 1, ""}, {"endswith", 1, 1, ""}, {"split", 0, 1, ""},
                                 {"strip", 0, 1, ""},      {"lstrip", 0, 1, ""},   {"rstrip", 0, 1, ""}};
constexpr Callable kFilters[] = {{"trim", 0, 0, ""}, {"length", 0, 0, ""}, {"tojson", 0, 0, "indent"}};
constexpr std::string_view kTests[] = {"defined", "undefined", "none",  "string",  "number",   "integer", "float",
                                       "boolean", "true",      "false", "mapping", "iterable", "sequence"};

template <size_t N>
const Callable* FindCallable(const Callable (&table)[N], std::string_view name) {
  for (const Callable& callable : table) {
    if (callable.name == name) return &callable;
  }
  return nullptr;
}

// Recursive descent over one tag's tokens, with Jinja's precedence: or < and < not < comparison
// (==, !=, <, <=, >, >=, in, not in) < + and - < unary minus < postfix (. [] () | is).
class TagParser {
 public:
  // Every variable name an expression reads is added to `names`.
  TagParser(const Segment& segment, std::set<std::string>& names)
      : tokens_(segment.tokens), line_(segment.line), names_(names) {}

  bool AtEnd() const { return pos_ == tokens_.size(); }
  void ExpectEnd() const {
    if (!AtEnd()) Fail(line_, fmt::format("unexpected '{}'", tokens_[pos_].text));
  }
  bool AcceptName(std::string_view name) { return Accept(TokenKind::kName, name); }
  bool AcceptOperator(std::string_view op) { return Accept(TokenKind::kOperator, op); }
  bool PeekName(std::string_view name, size_t ahead = 0) const { return Peek(TokenKind::kName, name, ahead); }
  std::string ExpectName(std::string_view what) {
    if (AtEnd() || tokens_[pos_].kind != TokenKind::kName) Fail(line_, fmt::format("expected {}", what));
    return tokens_[pos_++].text;
  }
  void ExpectKeyword(std::string_view name, std::string_view context) {
    if (!AcceptName(name)) Fail(line_, fmt::format("expected '{}' in {}", name, context));
  }

  std::unique_ptr<Expr> ParseExpression() {
    const Nesting nesting(*this);
    auto left = ParseAnd();
    while (AcceptName("or")) left = MakeExpr(Expr::Kind::kOr, line_, std::move(left), ParseAnd());
    return left;
  }

 private:
  // Parentheses, brackets, arguments and `not` recurse in the parser without always deepening the
  // tree (`((((x))))` is one node), so the recursion is bounded on its own.
  class Nesting {
   public:
    explicit Nesting(TagParser& parser) : parser_(parser) {
      if (++parser_.nesting_ > input_limits::kMaxTemplateExpressionDepth) FailTooDeep(parser_.line_);
    }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    ~Nesting() { --parser_.nesting_; }

   private:
    TagParser& parser_;
  };

  bool Peek(TokenKind kind, std::string_view text, size_t ahead = 0) const {
    return pos_ + ahead < tokens_.size() && tokens_[pos_ + ahead].kind == kind && tokens_[pos_ + ahead].text == text;
  }
  bool Accept(TokenKind kind, std::string_view text) {
    if (!Peek(kind, text)) return false;
    ++pos_;
    return true;
  }

  std::unique_ptr<Expr> ParseAnd() {
    auto left = ParseNot();
    while (AcceptName("and")) left = MakeExpr(Expr::Kind::kAnd, line_, std::move(left), ParseNot());
    return left;
  }

  std::unique_ptr<Expr> ParseNot() {
    const Nesting nesting(*this);
    if (AcceptName("not")) return MakeExpr(Expr::Kind::kNot, line_, ParseNot());
    return ParseComparison();
  }

  std::unique_ptr<Expr> ParseComparison() {
    auto left = ParseAdd();
    constexpr std::pair<std::string_view, Expr::Kind> kOperators[] = {
        {"==", Expr::Kind::kEqual},     {"!=", Expr::Kind::kNotEqual}, {"<", Expr::Kind::kLess},
        {"<=", Expr::Kind::kLessEqual}, {">", Expr::Kind::kGreater},   {">=", Expr::Kind::kGreaterEqual}};
    for (const auto& [op, kind] : kOperators) {
      if (AcceptOperator(op)) return MakeExpr(kind, line_, std::move(left), ParseAdd());
    }
    if (AcceptName("in")) return MakeExpr(Expr::Kind::kIn, line_, std::move(left), ParseAdd());
    if (PeekName("not") && PeekName("in", 1)) {
      pos_ += 2;
      return MakeExpr(Expr::Kind::kNotIn, line_, std::move(left), ParseAdd());
    }
    return left;
  }

  std::unique_ptr<Expr> ParseAdd() {
    auto left = ParseUnary();
    while (true) {
      if (AcceptOperator("+")) {
        left = MakeExpr(Expr::Kind::kAdd, line_, std::move(left), ParseUnary());
      } else if (AcceptOperator("-")) {
        left = MakeExpr(Expr::Kind::kSubtract, line_, std::move(left), ParseUnary());
      } else {
        return left;
      }
    }
  }

  std::unique_ptr<Expr> ParseUnary() {
    if (AcceptOperator("-")) return ParseFilters(MakeExpr(Expr::Kind::kNegate, line_, ParsePostfix(ParsePrimary())));
    return ParseFilters(ParsePostfix(ParsePrimary()));
  }

  std::unique_ptr<Expr> ParsePrimary() {
    if (AtEnd()) Fail(line_, "expression expected");
    const Token& token = tokens_[pos_++];
    auto expr = MakeExpr(Expr::Kind::kLiteral, line_);
    switch (token.kind) {
      case TokenKind::kInteger:
        expr->literal = {token.integer};
        return expr;
      case TokenKind::kString:
        expr->literal = {token.text};
        // Adjacent string literals concatenate, as in Python.
        while (!AtEnd() && tokens_[pos_].kind == TokenKind::kString)
          std::get<std::string>(expr->literal.data) += tokens_[pos_++].text;
        return expr;
      case TokenKind::kName:
        if (token.text == "true" || token.text == "True") {
          expr->literal = {true};
        } else if (token.text == "false" || token.text == "False") {
          expr->literal = {false};
        } else if (token.text == "none" || token.text == "None") {
          expr->literal = {None{}};
        } else {
          expr->kind = Expr::Kind::kVariable;
          expr->name = token.text;
          names_.insert(token.text);
        }
        return expr;
      case TokenKind::kOperator:
        if (token.text == "(") {
          expr = ParseExpression();
          if (AcceptOperator(",")) Fail(line_, "unsupported Jinja construct: tuple");
          if (!AcceptOperator(")")) Fail(line_, "expected ')'");
          return expr;
        }
        if (token.text == "[") Fail(line_, "unsupported Jinja construct: list literal");
        if (token.text == "{") Fail(line_, "unsupported Jinja construct: dict literal");
        Fail(line_, fmt::format("unexpected '{}'", token.text));
    }
    Fail(line_, "expression expected");
  }

  std::unique_ptr<Expr> ParsePostfix(std::unique_ptr<Expr> object) {
    while (true) {
      if (AcceptOperator(".")) {
        const std::string name = ExpectName("an attribute name after '.'");
        if (AcceptOperator("(")) {
          object = ParseCall(Expr::Kind::kMethod, FindCallable(kMethods, name), "." + name, std::move(object));
          continue;
        }
        auto key = MakeExpr(Expr::Kind::kLiteral, line_);
        key->literal = {name};
        if (object->kind == Expr::Kind::kVariable && object->name == "loop") CheckLoopAttribute(name);
        object = MakeExpr(Expr::Kind::kSubscript, line_, std::move(object), std::move(key));
      } else if (AcceptOperator("[")) {
        object = ParseSubscript(std::move(object));
      } else if (AcceptOperator("(")) {
        if (object->kind != Expr::Kind::kVariable) Fail(line_, "unsupported Jinja construct: calling an expression");
        const std::string name = object->name;
        object = ParseCall(Expr::Kind::kCall, FindCallable(kFunctions, name), name, nullptr);
      } else {
        return object;
      }
    }
  }

  // After '[': an index, or a slice with any of start, stop and step.
  std::unique_ptr<Expr> ParseSubscript(std::unique_ptr<Expr> object) {
    std::unique_ptr<Expr> start;
    if (!Peek(TokenKind::kOperator, ":")) start = ParseExpression();
    if (!AcceptOperator(":")) {
      if (!AcceptOperator("]")) Fail(line_, "expected ']'");
      return MakeExpr(Expr::Kind::kSubscript, line_, std::move(object), std::move(start));
    }
    auto slice = MakeExpr(Expr::Kind::kSlice, line_, std::move(object));
    const auto bound = [&] {
      return Peek(TokenKind::kOperator, ":") || Peek(TokenKind::kOperator, "]") ? nullptr : ParseExpression();
    };
    AddArgument(*slice, std::move(start));
    AddArgument(*slice, bound());
    AddArgument(*slice, AcceptOperator(":") ? bound() : nullptr);
    if (!AcceptOperator("]")) Fail(line_, "expected ']' after a slice");
    return slice;
  }

  // After '(': the arguments of `callable` (null: a call outside the subset) up to ')'.
  std::unique_ptr<Expr> ParseCall(Expr::Kind kind, const Callable* callable, const std::string& shown,
                                  std::unique_ptr<Expr> object) {
    if (callable == nullptr)
      Fail(line_, fmt::format("unsupported Jinja construct: function or method call '{}()'", shown));
    auto call = MakeExpr(kind, line_, std::move(object));
    call->name = callable->name;
    ParseArguments(*call, *callable, shown);
    return call;
  }

  void ParseArguments(Expr& call, const Callable& callable, const std::string& shown) {
    const Nesting nesting(*this);
    size_t positional = 0;
    while (!AcceptOperator(")")) {
      if (!call.arguments.empty() && !AcceptOperator(","))
        Fail(line_, fmt::format("expected ',' or ')' in '{}()'", shown));
      if (AcceptOperator(")")) break;  // a trailing comma
      std::string keyword;
      if (pos_ + 1 < tokens_.size() && tokens_[pos_].kind == TokenKind::kName && Peek(TokenKind::kOperator, "=", 1)) {
        keyword = tokens_[pos_].text;
        pos_ += 2;
        if (callable.keyword != "*" && callable.keyword != keyword)
          Fail(line_, fmt::format("unsupported argument '{}' to '{}()'", keyword, shown));
        if (std::find(call.keywords.begin(), call.keywords.end(), keyword) != call.keywords.end()) {
          Fail(line_, fmt::format("argument '{}' repeated in '{}()'", keyword, shown));
        }
      } else {
        if (!call.keywords.empty() && !call.keywords.back().empty()) {
          Fail(line_, fmt::format("a positional argument after a keyword argument in '{}()'", shown));
        }
        ++positional;
      }
      AddArgument(call, ParseExpression(), std::move(keyword));
    }
    if (positional < callable.min_positional || positional > callable.max_positional) {
      Fail(line_, callable.min_positional == callable.max_positional
                      ? fmt::format("'{}()' takes {} positional argument{} here, not {}", shown,
                                    callable.min_positional, callable.min_positional == 1 ? "" : "s", positional)
                      : fmt::format("'{}()' takes {} to {} positional arguments here, not {}", shown,
                                    callable.min_positional, callable.max_positional, positional));
    }
  }

  void CheckLoopAttribute(std::string_view name) const {
    if (name != "first" && name != "last" && name != "index" && name != "index0" && name != "length") {
      Fail(line_, fmt::format("unsupported loop attribute 'loop.{}'", name));
    }
  }

  std::unique_ptr<Expr> ParseFilters(std::unique_ptr<Expr> operand) {
    while (true) {
      if (AcceptOperator("|")) {
        const std::string filter = ExpectName("a filter name after '|'");
        const Callable* callable = FindCallable(kFilters, filter);
        if (callable == nullptr) Fail(line_, fmt::format("unsupported Jinja filter '{}'", filter));
        auto node = MakeExpr(Expr::Kind::kFilter, line_, std::move(operand));
        node->name = filter;
        if (AcceptOperator("(")) {
          if (callable->max_positional == 0 && callable->keyword.empty()) {
            Fail(line_, fmt::format("unsupported arguments to the '{}' filter", filter));
          }
          ParseArguments(*node, *callable, filter);
        }
        operand = std::move(node);
      } else if (AcceptName("is")) {
        const bool negated = AcceptName("not");
        const std::string test = ExpectName("a test name after 'is'");
        if (std::find(std::begin(kTests), std::end(kTests), test) == std::end(kTests)) {
          Fail(line_, fmt::format("unsupported Jinja test '{}'", test));
        }
        operand = MakeExpr(Expr::Kind::kTest, line_, std::move(operand));
        operand->name = test;
        operand->negated = negated;
      } else {
        return operand;
      }
    }
  }

  const std::vector<Token>& tokens_;
  size_t line_;
  std::set<std::string>& names_;
  size_t pos_ = 0;
  int nesting_ = 0;
};

// Builds the statement tree from the segments: if/elif/else/endif, for/endfor, set.
class Parser {
 public:
  explicit Parser(std::vector<Segment> segments) : segments_(std::move(segments)) {}

  Block ParseTemplate() {
    Block block = ParseBlock();
    if (pos_ < segments_.size()) Fail(segments_[pos_].line, fmt::format("unexpected '{}'", Keyword(segments_[pos_])));
    return block;
  }
  // Every variable the template reads (set by ParseTemplate).
  std::set<std::string> TakeNames() { return std::move(names_); }

 private:
  static bool IsTerminator(std::string_view keyword) {
    return keyword == "elif" || keyword == "else" || keyword == "endif" || keyword == "endfor";
  }

  static const std::string& Keyword(const Segment& segment) {
    if (segment.tokens.empty() || segment.tokens[0].kind != TokenKind::kName)
      Fail(segment.line, "tag without a keyword");
    return segment.tokens[0].text;
  }

  // Nodes up to the end or to the next elif/else/endif/endfor, which is left for the caller.
  Block ParseBlock() {
    Block block;
    while (pos_ < segments_.size()) {
      const Segment& segment = segments_[pos_];
      if (segment.kind == Segment::Kind::kText) {
        block.push_back({Node::Kind::kText, segment.line, segment.text});
        ++pos_;
        continue;
      }
      TagParser tag(segment, names_);
      if (segment.kind == Segment::Kind::kOutput) {
        Node node{Node::Kind::kOutput, segment.line};
        node.expr = tag.ParseExpression();
        tag.ExpectEnd();
        block.push_back(std::move(node));
        ++pos_;
        continue;
      }
      const std::string& keyword = Keyword(segment);
      if (IsTerminator(keyword)) return block;
      ++pos_;
      tag.ExpectKeyword(keyword, "tag");
      if (keyword == "if") {
        block.push_back(ParseIf(tag, segment.line));
      } else if (keyword == "for") {
        block.push_back(ParseFor(tag, segment.line));
      } else if (keyword == "set") {
        block.push_back(ParseSet(tag, segment.line));
      } else {
        Fail(segment.line, fmt::format("unsupported Jinja tag '{}'", keyword));
      }
    }
    return block;
  }

  // Parsing, rendering and destroying the tree recurse once per level of {% if %} and {% for %}.
  void EnterBlock(size_t line) {
    if (++block_depth_ > input_limits::kMaxTemplateBlockDepth) {
      Fail(line, fmt::format("'if' and 'for' blocks nest deeper than {} levels", input_limits::kMaxTemplateBlockDepth));
    }
  }

  Node ParseIf(TagParser& tag, size_t line) {
    EnterBlock(line);
    Node node{Node::Kind::kIf, line};
    auto first_condition = tag.ParseExpression();
    tag.ExpectEnd();
    node.branches.push_back({std::move(first_condition), ParseBlock()});
    while (true) {
      if (pos_ == segments_.size()) Fail(line, "'if' is never closed by 'endif'");
      const Segment& segment = segments_[pos_++];
      const std::string& keyword = Keyword(segment);
      TagParser end(segment, names_);
      end.ExpectKeyword(keyword, "tag");
      if (keyword == "endif") {
        end.ExpectEnd();
        --block_depth_;
        return node;
      }
      if (node.branches.back().condition == nullptr) Fail(segment.line, fmt::format("'{}' after 'else'", keyword));
      std::unique_ptr<Expr> condition;  // stays null for else
      if (keyword == "elif") {
        condition = end.ParseExpression();
      } else if (keyword != "else") {
        Fail(segment.line, fmt::format("'{}' inside 'if' (line {})", keyword, line));
      }
      end.ExpectEnd();
      node.branches.push_back({std::move(condition), ParseBlock()});
    }
  }

  Node ParseFor(TagParser& tag, size_t line) {
    EnterBlock(line);
    Node node{Node::Kind::kFor, line};
    node.text = tag.ExpectName("a loop variable");
    if (tag.AcceptOperator(",")) Fail(line, "unsupported Jinja construct: unpacking in 'for'");
    tag.ExpectKeyword("in", "'for'");
    node.expr = tag.ParseExpression();
    if (tag.PeekName("if") || tag.PeekName("recursive"))
      Fail(line, "unsupported Jinja construct: 'for' with 'if' or 'recursive'");
    tag.ExpectEnd();
    node.body = ParseBlock();
    if (pos_ == segments_.size()) Fail(line, "'for' is never closed by 'endfor'");
    const Segment& segment = segments_[pos_++];
    const std::string& keyword = Keyword(segment);
    if (keyword == "else") Fail(segment.line, "unsupported Jinja construct: 'for' ... 'else'");
    if (keyword != "endfor") Fail(segment.line, fmt::format("'{}' inside 'for' (line {})", keyword, line));
    TagParser end(segment, names_);
    end.ExpectKeyword(keyword, "tag");
    end.ExpectEnd();
    --block_depth_;
    return node;
  }

  static Node ParseSet(TagParser& tag, size_t line) {
    Node node{Node::Kind::kSet, line};
    node.text = tag.ExpectName("a variable name");
    if (tag.AcceptOperator(".")) node.attribute = tag.ExpectName("an attribute name after '.'");
    if (!tag.AcceptOperator("=")) Fail(line, "unsupported Jinja construct: block 'set' (or multiple targets)");
    node.expr = tag.ParseExpression();
    tag.ExpectEnd();
    return node;
  }

  std::vector<Segment> segments_;
  std::set<std::string> names_;
  size_t pos_ = 0;
  int block_depth_ = 0;
};

// --- rendering ------------------------------------------------------------------------------

using Scope = std::unordered_map<std::string, Value>;

// What one rendering may spend (model/input_limits.h): a template is a program from the model's
// files, and a loop or a doubling string must end in an Error, not hang or exhaust memory.
struct RenderBudget {
  uint64_t steps;
  uint64_t output_bytes;
  uint64_t memory_bytes;  // of strings and lists the template creates
  uint64_t work_bytes;    // copied, compared or searched
};

class Renderer {
 public:
  Renderer(Scope globals, const RenderBudget& budget) : budget_(budget) { scopes_.push_back(std::move(globals)); }

  void Run(const Block& block, std::string& out) {
    for (const Node& node : block) {
      Step(node.line);
      switch (node.kind) {
        case Node::Kind::kText:
          Emit(node.text, node.line, out);
          break;
        case Node::Kind::kOutput:
          Emit(ToText(Eval(*node.expr), node.line), node.line, out);
          break;
        case Node::Kind::kIf:
          for (const Branch& branch : node.branches) {
            if (branch.condition == nullptr || Truthy(Eval(*branch.condition))) {
              Run(branch.body, out);
              break;
            }
          }
          break;
        case Node::Kind::kFor:
          RunFor(node, out);
          break;
        case Node::Kind::kSet:
          RunSet(node);
          break;
      }
    }
  }

 private:
  void Step(size_t line) {
    if (++steps_ > budget_.steps) {
      Fail(line, fmt::format("rendering took more than {} steps", budget_.steps));
    }
  }

  void Emit(std::string_view text, size_t line, std::string& out) const {
    if (text.size() > budget_.output_bytes - out.size()) {
      Fail(line, fmt::format("the rendered prompt would be over {} bytes", budget_.output_bytes));
    }
    out += text;
  }

  // Counts `bytes` about to be copied, compared or searched against the budget: a step costs
  // time in proportion to the strings it touches.
  void Work(uint64_t bytes, size_t line) {
    if (bytes > budget_.work_bytes - worked_) {
      Fail(line, fmt::format("rendering copied or compared more than {} bytes", budget_.work_bytes));
    }
    worked_ += bytes;
  }

  // A value just copied out of a variable, a literal or a container; a string's copy costs its length.
  Value Copied(Value value, size_t line) {
    if (const auto* text = As<std::string>(value)) Work(text->size(), line);
    return value;
  }

  // Counts `bytes` about to be allocated for a new string or list against the budget.
  void Allocate(uint64_t bytes, size_t line) {
    if (bytes > MemoryLeft()) {
      Fail(line, fmt::format("rendering made more than {} bytes of strings and lists", budget_.memory_bytes));
    }
    allocated_ += bytes;
  }
  uint64_t MemoryLeft() const { return budget_.memory_bytes - allocated_; }

  // Each iteration gets a fresh scope, so a `set` in the body lasts one iteration, as in Jinja.
  void RunFor(const Node& node, std::string& out) {
    const Value iterable = Eval(*node.expr);
    std::shared_ptr<const List> items = std::make_shared<const List>();
    if (const auto* list = As<ListPtr>(iterable)) {
      items = *list;
    } else if (const auto* dict = As<DictPtr>(iterable)) {
      Allocate(Footprint(iterable), node.line);
      Work(Footprint(iterable), node.line);
      List keys;
      for (const auto& entry : **dict) keys.push_back({entry.first});
      items = std::make_shared<const List>(std::move(keys));
    } else if (!As<Undefined>(iterable)) {
      Fail(node.line, fmt::format("cannot iterate over {}", TypeName(iterable)));
    }
    const auto count = static_cast<int64_t>(items->size());
    for (int64_t i = 0; i < count; ++i) {
      Step(node.line);
      Scope& scope = scopes_.emplace_back();
      scope.emplace(node.text, Copied((*items)[static_cast<size_t>(i)], node.line));
      scope.emplace("loop", MakeDict({{"index", {i + 1}},
                                      {"index0", {i}},
                                      {"first", {i == 0}},
                                      {"last", {i + 1 == count}},
                                      {"length", {count}}}));
      Run(node.body, out);
      scopes_.pop_back();
    }
  }

  void RunSet(const Node& node) {
    Value value = Eval(*node.expr);
    if (node.attribute.empty()) {
      scopes_.back().insert_or_assign(node.text, std::move(value));
      return;
    }
    const Value target = Lookup(node.text);
    const auto* space = As<NamespacePtr>(target);
    if (space == nullptr) {
      Fail(node.line, fmt::format("cannot assign the attribute '{}' of '{}', which is {}, not a namespace",
                                  node.attribute, node.text, TypeName(target)));
    }
    RequireNoNamespace(value, node.line);
    Dict& attributes = (*space)->attributes;
    const auto it = std::find_if(attributes.begin(), attributes.end(),
                                 [&](const auto& entry) { return entry.first == node.attribute; });
    if (it != attributes.end()) {
      it->second = std::move(value);
    } else {
      attributes.emplace_back(node.attribute, std::move(value));
    }
  }

  // Namespaces are the one value that changes, so one inside another could come to hold itself
  // (and printing, comparing or measuring it would never end): they are kept apart.
  static void RequireNoNamespace(const Value& value, size_t line) {
    if (As<NamespacePtr>(value)) Fail(line, "a namespace cannot hold another namespace");
  }

  static std::string ToText(const Value& value, size_t line) {
    if (As<Undefined>(value)) return {};
    if (As<None>(value)) return "None";
    if (const auto* b = As<bool>(value)) return *b ? "True" : "False";
    if (const auto* i = As<int64_t>(value)) return std::to_string(*i);
    if (const auto* d = As<double>(value)) return PythonFloat(*d);
    if (const auto* s = As<std::string>(value)) return *s;
    Fail(line, fmt::format("printing {} is not supported", TypeName(value)));
  }

  static void RequireDefined(const Value& value, size_t line) {
    if (const auto* undefined = As<Undefined>(value)) Fail(line, undefined->why);
  }

  Value Lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope) {
      if (const auto it = scope->find(name); it != scope->end()) return it->second;
    }
    return {Undefined{fmt::format("'{}' is undefined", name)}};
  }

  Value Subscript(const Value& object, const Value& key, size_t line) const {
    RequireDefined(object, line);
    const Dict* dict = nullptr;
    if (const auto* d = As<DictPtr>(object)) dict = d->get();
    if (const auto* space = As<NamespacePtr>(object)) dict = &(*space)->attributes;
    if (dict != nullptr) {
      const auto* name = As<std::string>(key);
      if (name == nullptr) Fail(line, fmt::format("a dict key must be a string, not {}", TypeName(key)));
      if (const Value* found = Find(*dict, *name)) return *found;
      return {Undefined{
          fmt::format("'{}' has no attribute '{}'", As<NamespacePtr>(object) ? "namespace" : "dict object", *name)}};
    }
    if (const auto* list = As<ListPtr>(object)) {
      const auto index = AsInteger(key);
      if (!index) Fail(line, fmt::format("a list index must be an integer, not {}", TypeName(key)));
      const auto size = static_cast<int64_t>((*list)->size());
      const int64_t position = *index < 0 ? *index + size : *index;  // Python's negative indices
      if (position < 0 || position >= size) return {Undefined{fmt::format("list index {} out of range", *index)}};
      return (**list)[static_cast<size_t>(position)];
    }
    Fail(line, fmt::format("cannot index {}", TypeName(object)));
  }

  std::optional<int64_t> SliceBound(const std::unique_ptr<Expr>& bound, size_t line) {
    if (bound == nullptr) return std::nullopt;
    const Value value = Eval(*bound);
    if (As<None>(value)) return std::nullopt;
    const auto integer = AsInteger(value);
    if (!integer) Fail(line, fmt::format("slice indices must be integers or none, not {}", TypeName(value)));
    return integer;
  }

  Value Slice(const Expr& expr) {
    const Value object = Eval(*expr.left);
    const auto start = SliceBound(expr.arguments[0], expr.line);
    const auto stop = SliceBound(expr.arguments[1], expr.line);
    const int64_t step = SliceBound(expr.arguments[2], expr.line).value_or(1);
    if (step == 0) Fail(expr.line, "slice step cannot be zero");
    RequireDefined(object, expr.line);
    if (const auto* text = As<std::string>(object)) {
      Work(text->size(), expr.line);
      std::string sliced = SliceText(*text, ResolveSlice(CharacterCount(*text), start, stop, step));
      Allocate(sliced.size(), expr.line);
      return {std::move(sliced)};
    }
    const auto* list = As<ListPtr>(object);
    if (list == nullptr) Fail(expr.line, fmt::format("cannot slice {}", TypeName(object)));
    const SliceRange range = ResolveSlice(static_cast<int64_t>((*list)->size()), start, stop, step);
    uint64_t bytes = 0;
    for (int64_t k = 0; k < range.count; ++k) bytes += Footprint((**list)[static_cast<size_t>(range.start + k * step)]);
    Work(bytes, expr.line);
    Allocate(bytes, expr.line);
    List sliced;
    sliced.reserve(static_cast<size_t>(range.count));
    for (int64_t k = 0; k < range.count; ++k) sliced.push_back((**list)[static_cast<size_t>(range.start + k * step)]);
    return MakeList(std::move(sliced));
  }

  Value Call(const Expr& expr) {
    if (expr.name == "raise_exception") {
      Fail(expr.line, fmt::format("the template raised an error: {}", ToText(Eval(*expr.arguments[0]), expr.line)));
    }
    auto space = std::make_shared<Namespace>();  // namespace(name=value, ...)
    for (size_t i = 0; i < expr.arguments.size(); ++i) {
      Value value = Eval(*expr.arguments[i]);
      RequireNoNamespace(value, expr.line);
      space->attributes.emplace_back(expr.keywords[i], std::move(value));
    }
    return {std::move(space)};
  }

  // A string method's argument: a string, or none for the method's default.
  std::optional<std::string> TextArgument(const Expr& call, size_t index, bool none_allowed) {
    if (index >= call.arguments.size()) return std::nullopt;
    Value value = Eval(*call.arguments[index]);
    if (none_allowed && As<None>(value)) return std::nullopt;
    auto* text = std::get_if<std::string>(&value.data);
    if (text == nullptr) {
      Fail(call.line, fmt::format("the argument of '.{}()' must be a string{}, not {}", call.name,
                                  none_allowed ? " or none" : "", TypeName(value)));
    }
    return std::move(*text);
  }

  Value Method(const Expr& expr) {
    const Value object = Eval(*expr.left);
    RequireDefined(object, expr.line);
    const auto* text = As<std::string>(object);
    if (text == nullptr) Fail(expr.line, fmt::format("'.{}()' needs a string, not {}", expr.name, TypeName(object)));
    const bool affix = expr.name == "startswith" || expr.name == "endswith";
    const std::optional<std::string> argument = TextArgument(expr, 0, !affix);
    Work(text->size() * std::max<uint64_t>(argument ? argument->size() : 1, 1), expr.line);
    if (expr.name == "startswith") return {text->starts_with(*argument)};
    if (expr.name == "endswith") return {text->ends_with(*argument)};
    if (expr.name == "split") {
      if (argument && argument->empty()) Fail(expr.line, "'.split()' with an empty separator");
      uint64_t pieces = 0;
      SplitText(*text, argument, [&](std::string_view) { ++pieces; });
      Allocate(text->size() + pieces * sizeof(Value), expr.line);
      List list;
      list.reserve(pieces);
      SplitText(*text, argument, [&](std::string_view piece) { list.push_back({std::string(piece)}); });
      return MakeList(std::move(list));
    }
    const std::string_view stripped =
        StripText(*text, argument, expr.name != "rstrip", expr.name != "lstrip");  // strip, lstrip or rstrip
    Allocate(stripped.size(), expr.line);
    return {std::string(stripped)};
  }

  Value Filter(const Expr& expr) {
    const Value operand = Eval(*expr.left);
    if (expr.name == "trim") {
      const std::string text = ToText(operand, expr.line);
      Work(text.size(), expr.line);
      std::string stripped(StripText(text, std::nullopt, true, true));
      Allocate(stripped.size(), expr.line);
      return {std::move(stripped)};
    }
    if (expr.name == "length") return {Length(operand, expr.line)};
    // tojson's one argument (transformers' first positional one is ensure_ascii, which stays off):
    // json.dumps' indent, a number of spaces or the string itself.
    std::string indent;
    bool indented = false;
    if (!expr.arguments.empty()) {
      const Value value = Eval(*expr.arguments[0]);
      if (const auto spaces = AsInteger(value)) {
        indented = true;
        const int64_t count = std::max<int64_t>(*spaces, 0);
        Allocate(static_cast<uint64_t>(count), expr.line);
        indent.assign(static_cast<size_t>(count), ' ');
      } else if (const auto* text = As<std::string>(value)) {
        indented = true;
        indent = *text;
      } else if (!As<None>(value)) {
        Fail(expr.line, fmt::format("tojson's indent must be an integer, a string or none, not {}", TypeName(value)));
      }
    }
    std::string json;
    AppendJson(operand, indented ? &indent : nullptr, 0, json, expr.line);
    Work(json.size(), expr.line);
    Allocate(json.size(), expr.line);
    return {std::move(json)};
  }

  // json.dumps with ensure_ascii=False: ", " and ": " between items, or with an indent one item a
  // line. The text is held to the memory left as it grows, since an indent repeats per line.
  void AppendJson(const Value& value, const std::string* indent, int level, std::string& out, size_t line) {
    if (out.size() > MemoryLeft()) {
      Fail(line, fmt::format("rendering made more than {} bytes of strings and lists", budget_.memory_bytes));
    }
    const auto newline = [&](int depth) {
      out += '\n';
      for (int i = 0; i < depth; ++i) out += *indent;
    };
    const auto items = [&](size_t count, char open, char close, const auto& item) {
      out += open;
      for (size_t i = 0; i < count; ++i) {
        if (i > 0) out += indent ? "," : ", ";
        if (indent) newline(level + 1);
        item(i);
      }
      if (indent && count > 0) newline(level);
      out += close;
    };
    if (As<None>(value)) {
      out += "null";
    } else if (const auto* b = As<bool>(value)) {
      out += *b ? "true" : "false";
    } else if (const auto* i = As<int64_t>(value)) {
      out += std::to_string(*i);
    } else if (const auto* d = As<double>(value)) {
      out += std::isnan(*d) ? "NaN" : std::isinf(*d) ? (*d > 0 ? "Infinity" : "-Infinity") : PythonFloat(*d);
    } else if (const auto* s = As<std::string>(value)) {
      AppendJsonString(*s, out);
    } else if (const auto* list = As<ListPtr>(value)) {
      items((*list)->size(), '[', ']', [&](size_t k) { AppendJson((**list)[k], indent, level + 1, out, line); });
    } else if (const auto* dict = As<DictPtr>(value)) {
      items((*dict)->size(), '{', '}', [&](size_t k) {
        AppendJsonString((**dict)[k].first, out);
        out += ": ";
        AppendJson((**dict)[k].second, indent, level + 1, out, line);
      });
    } else {
      Fail(line, fmt::format("tojson cannot write {} as JSON", TypeName(value)));
    }
  }

  bool Test(const std::string& test, const Value& value) const {
    const bool is_undefined = As<Undefined>(value) != nullptr;
    if (test == "defined") return !is_undefined;
    if (test == "undefined") return is_undefined;
    if (test == "none") return As<None>(value) != nullptr;
    if (test == "string") return As<std::string>(value) != nullptr;
    if (test == "number") return AsNumber(value).has_value();
    if (test == "integer") return As<int64_t>(value) != nullptr;
    if (test == "float") return As<double>(value) != nullptr;
    if (test == "boolean") return As<bool>(value) != nullptr;
    if (test == "true") return As<bool>(value) && *As<bool>(value);
    if (test == "false") return As<bool>(value) && !*As<bool>(value);
    if (test == "mapping") return As<DictPtr>(value) != nullptr;
    // "iterable" and "sequence": Jinja's Undefined iterates as empty and has a length.
    return is_undefined || As<std::string>(value) || As<ListPtr>(value) || As<DictPtr>(value);
  }

  Value Add(const Value& a, const Value& b, size_t line) {
    RequireDefined(a, line);
    RequireDefined(b, line);
    const auto* x = As<std::string>(a);
    const auto* y = As<std::string>(b);
    if (x && y) {
      Allocate(x->size() + y->size(), line);
      Work(x->size() + y->size(), line);
      return {*x + *y};
    }
    if (const auto i = AsInteger(a), j = AsInteger(b); i && j) {
      int64_t sum = 0;
      if (__builtin_add_overflow(*i, *j, &sum)) Fail(line, fmt::format("{} + {} overflows a 64-bit integer", *i, *j));
      return {sum};
    }
    if (const auto i = AsNumber(a), j = AsNumber(b); i && j) return {*i + *j};
    const auto* list_a = As<ListPtr>(a);
    const auto* list_b = As<ListPtr>(b);
    if (list_a && list_b) {
      const uint64_t bytes = Footprint(a) + Footprint(b);
      Allocate(bytes, line);
      Work(bytes, line);
      List joined = **list_a;
      joined.insert(joined.end(), (*list_b)->begin(), (*list_b)->end());
      return MakeList(std::move(joined));
    }
    Fail(line, fmt::format("cannot add {} and {}", TypeName(a), TypeName(b)));
  }

  static Value Subtract(const Value& a, const Value& b, size_t line) {
    RequireDefined(a, line);
    RequireDefined(b, line);
    if (const auto i = AsInteger(a), j = AsInteger(b); i && j) {
      int64_t difference = 0;
      if (__builtin_sub_overflow(*i, *j, &difference)) {
        Fail(line, fmt::format("{} - {} overflows a 64-bit integer", *i, *j));
      }
      return {difference};
    }
    if (const auto i = AsNumber(a), j = AsNumber(b); i && j) return {*i - *j};
    Fail(line, fmt::format("cannot subtract {} from {}", TypeName(b), TypeName(a)));
  }

  // Python's a < b for numbers and strings (strings by code point, which UTF-8's byte order keeps).
  bool Less(const Value& a, const Value& b, size_t line) {
    RequireDefined(a, line);
    RequireDefined(b, line);
    if (const auto i = AsInteger(a), j = AsInteger(b); i && j) return *i < *j;
    if (const auto i = AsNumber(a), j = AsNumber(b); i && j) return *i < *j;
    const auto* x = As<std::string>(a);
    const auto* y = As<std::string>(b);
    if (x && y) {
      Work(std::min(x->size(), y->size()), line);
      return *x < *y;
    }
    Fail(line, fmt::format("cannot compare {} with {}", TypeName(a), TypeName(b)));
  }

  bool Contains(const Value& container, const Value& item, size_t line) {
    if (As<Undefined>(container)) return false;  // Jinja's Undefined iterates as empty
    if (const auto* text = As<std::string>(container)) {
      const auto* needle = As<std::string>(item);
      if (needle == nullptr) Fail(line, fmt::format("'in <string>' needs a string, not {}", TypeName(item)));
      // A plain search compares up to every byte of the needle at every position of the text.
      Work(text->size() * std::max<uint64_t>(needle->size(), 1), line);
      return text->find(*needle) != std::string::npos;
    }
    if (const auto* list = As<ListPtr>(container)) {
      uint64_t compared = 0;
      bool found = false;
      for (const Value& element : **list) {
        if (Equal(element, item, compared)) {
          found = true;
          break;
        }
      }
      Work(compared, line);
      return found;
    }
    if (const auto* dict = As<DictPtr>(container)) {
      const auto* key = As<std::string>(item);
      return key != nullptr && Find(**dict, *key) != nullptr;
    }
    Fail(line, fmt::format("'in' needs a string, list or dict, not {}", TypeName(container)));
  }

  int64_t Length(const Value& value, size_t line) {
    if (As<Undefined>(value)) return 0;
    if (const auto* text = As<std::string>(value)) {
      Work(text->size(), line);
      return CharacterCount(*text);
    }
    if (const auto* list = As<ListPtr>(value)) return static_cast<int64_t>((*list)->size());
    if (const auto* dict = As<DictPtr>(value)) return static_cast<int64_t>((*dict)->size());
    Fail(line, fmt::format("{} has no length", TypeName(value)));
  }

  Value Eval(const Expr& expr) {
    Step(expr.line);
    switch (expr.kind) {
      case Expr::Kind::kLiteral:
        return Copied(expr.literal, expr.line);
      case Expr::Kind::kVariable:
        return Copied(Lookup(expr.name), expr.line);
      case Expr::Kind::kSubscript:
        return Copied(Subscript(Eval(*expr.left), Eval(*expr.right), expr.line), expr.line);
      case Expr::Kind::kSlice:
        return Slice(expr);
      case Expr::Kind::kCall:
        return Call(expr);
      case Expr::Kind::kMethod:
        return Method(expr);
      case Expr::Kind::kFilter:
        return Filter(expr);
      case Expr::Kind::kTest:
        return {Test(expr.name, Eval(*expr.left)) != expr.negated};
      case Expr::Kind::kNot:
        return {!Truthy(Eval(*expr.left))};
      case Expr::Kind::kNegate: {
        const Value operand = Eval(*expr.left);
        if (const auto* real = As<double>(operand)) return {-*real};
        const auto* integer = As<int64_t>(operand);
        if (integer == nullptr) Fail(expr.line, fmt::format("cannot negate {}", TypeName(operand)));
        if (*integer == std::numeric_limits<int64_t>::min()) {
          Fail(expr.line, fmt::format("-({}) overflows a 64-bit integer", *integer));
        }
        return {-*integer};
      }
      case Expr::Kind::kAnd: {
        Value left = Eval(*expr.left);
        return Truthy(left) ? Eval(*expr.right) : left;
      }
      case Expr::Kind::kOr: {
        Value left = Eval(*expr.left);
        return Truthy(left) ? left : Eval(*expr.right);
      }
      case Expr::Kind::kAdd:
        return Add(Eval(*expr.left), Eval(*expr.right), expr.line);
      case Expr::Kind::kSubtract:
        return Subtract(Eval(*expr.left), Eval(*expr.right), expr.line);
      case Expr::Kind::kEqual:
      case Expr::Kind::kNotEqual: {
        uint64_t compared = 0;
        const bool equal = Equal(Eval(*expr.left), Eval(*expr.right), compared);
        Work(compared, expr.line);
        return {equal == (expr.kind == Expr::Kind::kEqual)};
      }
      case Expr::Kind::kLess:
        return {Less(Eval(*expr.left), Eval(*expr.right), expr.line)};
      case Expr::Kind::kGreater: {
        const Value left = Eval(*expr.left);
        return {Less(Eval(*expr.right), left, expr.line)};
      }
      case Expr::Kind::kLessEqual: {
        const Value left = Eval(*expr.left);
        return {!Less(Eval(*expr.right), left, expr.line)};
      }
      case Expr::Kind::kGreaterEqual:
        return {!Less(Eval(*expr.left), Eval(*expr.right), expr.line)};
      case Expr::Kind::kIn:
        return {Contains(Eval(*expr.right), Eval(*expr.left), expr.line)};
      case Expr::Kind::kNotIn:
        return {!Contains(Eval(*expr.right), Eval(*expr.left), expr.line)};
    }
    Fail(expr.line, "unknown expression");
  }

  std::vector<Scope> scopes_;
  RenderBudget budget_;
  uint64_t steps_ = 0;
  uint64_t allocated_ = 0;
  uint64_t worked_ = 0;
};

// --- ChatTemplate ---------------------------------------------------------------------------

using nlohmann::json;

// A special token in tokenizer_config.json: a string, {"content": ...}, or null.
std::string SpecialTokenText(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  throw Error(fmt::format("{} is neither a string nor an object with \"content\"", key));
}

std::string TemplateSource(const json& config) {
  const json& templates = config.at("chat_template");
  if (templates.is_string()) return templates.get<std::string>();
  if (!templates.is_array()) throw Error("chat_template is neither a string nor a list");
  std::vector<std::string> names;
  for (const json& named : templates) {
    names.push_back(named.at("name").get<std::string>());
    if (names.back() == "default") return named.at("template").get<std::string>();
  }
  throw Error(fmt::format("chat_template has no \"default\" entry (it has: {})", fmt::join(names, ", ")));
}

// What apply_chat_template passes besides the caller's keyword arguments.
constexpr std::string_view kGivenVariables[] = {"messages", "add_generation_prompt", "tools", "documents", "bos_token",
                                                "eos_token"};

}  // namespace

struct ChatTemplate::Program {
  Block body;
  std::set<std::string> variables;  // every variable the template reads
};

ChatTemplate::ChatTemplate(std::string jinja_source) : source_(std::move(jinja_source)) {
  if (source_.size() > input_limits::kMaxTemplateBytes) {
    throw Error(fmt::format("chat template: {} bytes is over the limit of {} bytes", source_.size(),
                            input_limits::kMaxTemplateBytes));
  }
  Parser parser(Lexer(source_).Run());
  Block body = parser.ParseTemplate();
  program_ = std::make_shared<const Program>(Program{std::move(body), parser.TakeNames()});
}

ChatTemplate ChatTemplate::FromTokenizerConfig(const std::filesystem::path& path) {
  const json config = ReadJsonFile(path, {input_limits::kMaxTokenizerConfigJsonBytes, input_limits::kMaxJsonDepth});
  try {
    if (!config.is_object() || !config.contains("chat_template")) throw Error("it has no chat_template");
    ChatTemplate chat_template(TemplateSource(config));
    chat_template.bos_token_ = SpecialTokenText(config, "bos_token");
    chat_template.eos_token_ = SpecialTokenText(config, "eos_token");
    return chat_template;
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  }
}

bool ChatTemplate::ReadsVariable(std::string_view name) const {
  return program_->variables.contains(std::string(name));
}

namespace {

// One rendering: `messages` and `variables` (enable_thinking, tools, ...) over the variables every
// rendering has, with a budget that grows with the input's bytes.
std::string Render(const Block& body, Value messages, Scope variables, bool add_generation_prompt,
                   const std::string& bos_token, const std::string& eos_token) {
  uint64_t input_bytes = Footprint(messages);
  for (const auto& [name, value] : variables) input_bytes += Footprint(value);
  using namespace input_limits;
  const RenderBudget budget{kMaxRenderSteps, kRenderOutputBaseBytes + kRenderOutputPerMessageByte * input_bytes,
                            kRenderMemoryBaseBytes + kRenderMemoryPerMessageByte * input_bytes,
                            kRenderWorkBaseBytes + kRenderWorkPerMessageByte * input_bytes};
  variables.insert_or_assign("messages", std::move(messages));
  variables.insert_or_assign("add_generation_prompt", Value{add_generation_prompt});
  variables.try_emplace("tools", Value{None{}});
  variables.insert_or_assign("documents", Value{None{}});
  variables.insert_or_assign("bos_token", Value{bos_token});
  variables.insert_or_assign("eos_token", Value{eos_token});
  Renderer renderer(std::move(variables), budget);
  std::string out;
  renderer.Run(body, out);
  return out;
}

}  // namespace

std::string ChatTemplate::Apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                const TemplateOptions& options) const {
  List list;
  for (const ChatMessage& message : messages) {
    list.push_back(MakeDict({{"role", {message.role}}, {"content", {message.content}}}));
  }
  Scope variables;
  if (options.enable_thinking) variables.emplace("enable_thinking", Value{*options.enable_thinking});
  return Render(program_->body, MakeList(std::move(list)), std::move(variables), add_generation_prompt, bos_token_,
                eos_token_);
}

std::string ChatTemplate::ApplyJson(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                    const nlohmann::ordered_json& variables) const {
  if (!messages.is_array()) throw Error("chat template input: messages must be a list");
  if (!variables.is_null() && !variables.is_object()) throw Error("chat template input: variables must be an object");
  Scope scope;
  if (variables.is_object()) {
    for (const auto& [name, value] : variables.items()) {
      if (name != "tools" &&
          std::find(std::begin(kGivenVariables), std::end(kGivenVariables), name) != std::end(kGivenVariables)) {
        throw Error(fmt::format("chat template input: the variable '{}' is given by the renderer", name));
      }
      scope.emplace(name, FromJson(value, 1));
    }
  }
  return Render(program_->body, FromJson(messages, 0), std::move(scope), add_generation_prompt, bos_token_, eos_token_);
}

}  // namespace qvk
