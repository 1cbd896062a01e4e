// Sections: values / whitespace / lexing / parsing / rendering / ChatTemplate
//
// Semantics follow Jinja 3 as transformers configures it: trim_blocks and lstrip_blocks on,
// keep_trailing_newline off, newlines normalised to "\n", the default Undefined (prints as
// nothing, but raises when indexed or added to), Python's rules for truthiness, `and`/`or`
// returning an operand, and `==` with True == 1.
#include "model/chat_template.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
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
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts iterate

struct Undefined {
  std::string why;  // the error to raise if it is used as more than an empty string
};
struct None {};

struct Value {
  std::variant<Undefined, None, bool, int64_t, std::string, std::shared_ptr<const List>, std::shared_ptr<const Dict>>
      data;
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

std::string_view TypeName(const Value& value) {
  constexpr std::string_view kNames[] = {"undefined", "none",   "a boolean", "an integer",
                                         "a string",  "a list", "a dict"};
  return kNames[value.data.index()];
}

// Python treats booleans as the integers 0 and 1 in arithmetic and comparison.
std::optional<int64_t> AsInteger(const Value& value) {
  if (const auto* b = As<bool>(value)) return *b ? 1 : 0;
  if (const auto* i = As<int64_t>(value)) return *i;
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
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return v != 0;
        } else if constexpr (std::is_same_v<T, std::string>) {
          return !v.empty();
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
  if (a.data.index() != b.data.index()) return false;
  if (const auto* s = As<std::string>(a)) {
    work += s->size();
    return *s == *As<std::string>(b);
  }
  if (const auto* list = As<std::shared_ptr<const List>>(a)) {
    const List& other = **As<std::shared_ptr<const List>>(b);
    if ((*list)->size() != other.size()) return false;
    for (size_t i = 0; i < other.size(); ++i) {
      if (!Equal((**list)[i], other[i], work)) return false;
    }
    return true;
  }
  if (const auto* dict = As<std::shared_ptr<const Dict>>(a)) {
    const Dict& other = **As<std::shared_ptr<const Dict>>(b);
    if ((*dict)->size() != other.size()) return false;
    for (const auto& [key, value] : **dict) {
      const Value* match = Find(other, key);
      work += other.size();
      if (match == nullptr || !Equal(value, *match, work)) return false;
    }
    return true;
  }
  return true;  // both undefined or both none
}

// At least the bytes a copy of `value` allocates: a list holds its strings by value (its dicts are
// shared, but counted as if copied, which errs on the safe side).
uint64_t Footprint(const Value& value) {
  uint64_t bytes = sizeof(Value);
  if (const auto* text = As<std::string>(value)) bytes += text->size();
  if (const auto* list = As<std::shared_ptr<const List>>(value)) {
    for (const Value& element : **list) bytes += Footprint(element);
  }
  if (const auto* dict = As<std::shared_ptr<const Dict>>(value)) {
    for (const auto& [key, element] : **dict) bytes += key.size() + Footprint(element);
  }
  return bytes;
}

// --- whitespace -----------------------------------------------------------------------------

// Python's str.isspace(), which Jinja's whitespace control and the trim filter rely on.
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

std::string Strip(std::string_view text) {
  const size_t begin = SkipSpaces(text, 0);
  return std::string(text.substr(begin, TrailingSpaceStart(text.substr(begin))));
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
    for (const std::string_view op : {"==", "!="}) {
      if (std::string_view(source_).substr(pos_).starts_with(op)) {
        pos_ += 2;
        return {TokenKind::kOperator, std::string(op)};
      }
    }
    if (IsOneOf(c, "()[].|+-,=")) return {TokenKind::kOperator, std::string(1, source_[pos_++])};
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
    kNot,
    kNegate,
    kAnd,
    kOr,
    kAdd,
    kEqual,
    kNotEqual,
    kIn,
    kNotIn,
    kIsDefined,
    kIsNotDefined,
    kTrim,
    kLength
  };
  Kind kind;
  size_t line;
  Value literal;                      // kLiteral
  std::string name;                   // kVariable
  std::unique_ptr<Expr> left, right;  // operands; unary kinds use left; kSubscript: object, key
  int height = 1;                     // of the tree below and including this node
};

// Evaluation and destruction recurse once per level of the tree, and a chain such as
// `a + a + ...` or `x | trim | trim ...` builds one level per link: the height is bounded here.
std::unique_ptr<Expr> MakeExpr(Expr::Kind kind, size_t line, std::unique_ptr<Expr> left = nullptr,
                               std::unique_ptr<Expr> right = nullptr) {
  const int height = 1 + std::max(left ? left->height : 0, right ? right->height : 0);
  if (height > input_limits::kMaxTemplateExpressionDepth) {
    Fail(line, fmt::format("expression nests deeper than {} levels", input_limits::kMaxTemplateExpressionDepth));
  }
  return std::make_unique<Expr>(Expr{kind, line, {}, {}, std::move(left), std::move(right), height});
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
  std::unique_ptr<Expr> expr;    // kOutput, kSet: the value; kFor: what is iterated
  std::vector<Branch> branches;  // kIf
  Block body;                    // kFor
};

// Recursive descent over one tag's tokens, with Jinja's precedence: or < and < not < comparison
// (==, !=, in, not in) < + < unary minus < postfix (. [] | is).
class TagParser {
 public:
  explicit TagParser(const Segment& segment) : tokens_(segment.tokens), line_(segment.line) {}

  bool AtEnd() const { return pos_ == tokens_.size(); }
  void ExpectEnd() const {
    if (!AtEnd()) Fail(line_, fmt::format("unexpected '{}'", tokens_[pos_].text));
  }
  bool AcceptName(std::string_view name) { return Accept(TokenKind::kName, name); }
  bool AcceptOperator(std::string_view op) { return Accept(TokenKind::kOperator, op); }
  bool PeekName(std::string_view name, size_t ahead = 0) const {
    return pos_ + ahead < tokens_.size() && tokens_[pos_ + ahead].kind == TokenKind::kName &&
           tokens_[pos_ + ahead].text == name;
  }
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
  // Parentheses, brackets and `not` recurse in the parser without always deepening the tree
  // (`((((x))))` is one node), so the recursion is bounded on its own.
  class Nesting {
   public:
    explicit Nesting(TagParser& parser) : parser_(parser) {
      if (++parser_.nesting_ > input_limits::kMaxTemplateExpressionDepth) {
        Fail(parser_.line_,
             fmt::format("expression nests deeper than {} levels", input_limits::kMaxTemplateExpressionDepth));
      }
    }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    ~Nesting() { --parser_.nesting_; }

   private:
    TagParser& parser_;
  };

  bool Accept(TokenKind kind, std::string_view text) {
    if (AtEnd() || tokens_[pos_].kind != kind || tokens_[pos_].text != text) return false;
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
    Expr::Kind kind;
    if (AcceptOperator("==")) {
      kind = Expr::Kind::kEqual;
    } else if (AcceptOperator("!=")) {
      kind = Expr::Kind::kNotEqual;
    } else if (AcceptName("in")) {
      kind = Expr::Kind::kIn;
    } else if (PeekName("not") && PeekName("in", 1)) {
      pos_ += 2;
      kind = Expr::Kind::kNotIn;
    } else {
      return left;
    }
    return MakeExpr(kind, line_, std::move(left), ParseAdd());
  }

  std::unique_ptr<Expr> ParseAdd() {
    auto left = ParseUnary();
    while (true) {
      if (AcceptOperator("+")) {
        left = MakeExpr(Expr::Kind::kAdd, line_, std::move(left), ParseUnary());
      } else if (AcceptOperator("-")) {
        Fail(line_, "unsupported Jinja operator '-' (subtraction)");
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
        Fail(line_, fmt::format("unexpected '{}'", token.text));
    }
    Fail(line_, "expression expected");
  }

  std::unique_ptr<Expr> ParsePostfix(std::unique_ptr<Expr> object) {
    while (true) {
      std::unique_ptr<Expr> key;
      if (AcceptOperator(".")) {
        key = MakeExpr(Expr::Kind::kLiteral, line_);
        key->literal = {ExpectName("an attribute name after '.'")};
        if (object->kind == Expr::Kind::kVariable && object->name == "loop") CheckLoopAttribute(key->literal);
      } else if (AcceptOperator("[")) {
        key = ParseExpression();
        if (!AcceptOperator("]")) Fail(line_, "expected ']' (slices are not supported)");
      } else if (AcceptOperator("(")) {
        Fail(line_, "unsupported Jinja construct: function or method call");
      } else {
        return object;
      }
      object = MakeExpr(Expr::Kind::kSubscript, line_, std::move(object), std::move(key));
    }
  }

  void CheckLoopAttribute(const Value& attribute) const {
    const std::string& name = std::get<std::string>(attribute.data);
    if (name != "first" && name != "last" && name != "index" && name != "index0" && name != "length") {
      Fail(line_, fmt::format("unsupported loop attribute 'loop.{}'", name));
    }
  }

  std::unique_ptr<Expr> ParseFilters(std::unique_ptr<Expr> operand) {
    while (true) {
      if (AcceptOperator("|")) {
        const std::string filter = ExpectName("a filter name after '|'");
        if (filter != "trim" && filter != "length") Fail(line_, fmt::format("unsupported Jinja filter '{}'", filter));
        if (AcceptOperator("(")) Fail(line_, fmt::format("unsupported arguments to the '{}' filter", filter));
        operand = MakeExpr(filter == "trim" ? Expr::Kind::kTrim : Expr::Kind::kLength, line_, std::move(operand));
      } else if (AcceptName("is")) {
        const bool negated = AcceptName("not");
        const std::string test = ExpectName("a test name after 'is'");
        if (test != "defined") Fail(line_, fmt::format("unsupported Jinja test '{}'", test));
        operand = MakeExpr(negated ? Expr::Kind::kIsNotDefined : Expr::Kind::kIsDefined, line_, std::move(operand));
      } else {
        return operand;
      }
    }
  }

  const std::vector<Token>& tokens_;
  size_t line_;
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
      TagParser tag(segment);
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
      TagParser end(segment);
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
    TagParser end(segment);
    end.ExpectKeyword(keyword, "tag");
    end.ExpectEnd();
    --block_depth_;
    return node;
  }

  static Node ParseSet(TagParser& tag, size_t line) {
    Node node{Node::Kind::kSet, line};
    node.text = tag.ExpectName("a variable name");
    if (tag.AcceptOperator(".")) Fail(line, "unsupported Jinja construct: attribute assignment (namespace)");
    if (!tag.AcceptOperator("=")) Fail(line, "unsupported Jinja construct: block 'set' (or multiple targets)");
    node.expr = tag.ParseExpression();
    tag.ExpectEnd();
    return node;
  }

  std::vector<Segment> segments_;
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
          scopes_.back().insert_or_assign(node.text, Eval(*node.expr));
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
    if (bytes > budget_.memory_bytes - allocated_) {
      Fail(line, fmt::format("rendering made more than {} bytes of strings and lists", budget_.memory_bytes));
    }
    allocated_ += bytes;
  }

  // Each iteration gets a fresh scope, so a `set` in the body lasts one iteration, as in Jinja.
  void RunFor(const Node& node, std::string& out) {
    const Value iterable = Eval(*node.expr);
    std::shared_ptr<const List> items = std::make_shared<const List>();
    if (const auto* list = As<std::shared_ptr<const List>>(iterable)) {
      items = *list;
    } else if (const auto* dict = As<std::shared_ptr<const Dict>>(iterable)) {
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

  static std::string ToText(const Value& value, size_t line) {
    if (As<Undefined>(value)) return {};
    if (As<None>(value)) return "None";
    if (const auto* b = As<bool>(value)) return *b ? "True" : "False";
    if (const auto* i = As<int64_t>(value)) return std::to_string(*i);
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
    if (const auto* dict = As<std::shared_ptr<const Dict>>(object)) {
      const auto* name = As<std::string>(key);
      if (name == nullptr) Fail(line, fmt::format("a dict key must be a string, not {}", TypeName(key)));
      if (const Value* found = Find(**dict, *name)) return *found;
      return {Undefined{fmt::format("'dict object' has no attribute '{}'", *name)}};
    }
    if (const auto* list = As<std::shared_ptr<const List>>(object)) {
      const auto index = AsInteger(key);
      if (!index) Fail(line, fmt::format("a list index must be an integer, not {}", TypeName(key)));
      const auto size = static_cast<int64_t>((*list)->size());
      const int64_t position = *index < 0 ? *index + size : *index;  // Python's negative indices
      if (position < 0 || position >= size) return {Undefined{fmt::format("list index {} out of range", *index)}};
      return (**list)[static_cast<size_t>(position)];
    }
    Fail(line, fmt::format("cannot index {}", TypeName(object)));
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
    const auto* list_a = As<std::shared_ptr<const List>>(a);
    const auto* list_b = As<std::shared_ptr<const List>>(b);
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

  bool Contains(const Value& container, const Value& item, size_t line) {
    if (As<Undefined>(container)) return false;  // Jinja's Undefined iterates as empty
    if (const auto* text = As<std::string>(container)) {
      const auto* needle = As<std::string>(item);
      if (needle == nullptr) Fail(line, fmt::format("'in <string>' needs a string, not {}", TypeName(item)));
      // A plain search compares up to every byte of the needle at every position of the text.
      Work(text->size() * std::max<uint64_t>(needle->size(), 1), line);
      return text->find(*needle) != std::string::npos;
    }
    if (const auto* list = As<std::shared_ptr<const List>>(container)) {
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
    if (const auto* dict = As<std::shared_ptr<const Dict>>(container)) {
      const auto* key = As<std::string>(item);
      return key != nullptr && Find(**dict, *key) != nullptr;
    }
    Fail(line, fmt::format("'in' needs a string, list or dict, not {}", TypeName(container)));
  }

  int64_t Length(const Value& value, size_t line) {
    if (As<Undefined>(value)) return 0;
    if (const auto* text = As<std::string>(value)) {
      Work(text->size(), line);
      int64_t characters = 0;  // Python counts code points
      for (const char c : *text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return characters;
    }
    if (const auto* list = As<std::shared_ptr<const List>>(value)) return static_cast<int64_t>((*list)->size());
    if (const auto* dict = As<std::shared_ptr<const Dict>>(value)) return static_cast<int64_t>((*dict)->size());
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
      case Expr::Kind::kNot:
        return {!Truthy(Eval(*expr.left))};
      case Expr::Kind::kNegate: {
        const Value operand = Eval(*expr.left);
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
      case Expr::Kind::kEqual:
      case Expr::Kind::kNotEqual: {
        uint64_t compared = 0;
        const bool equal = Equal(Eval(*expr.left), Eval(*expr.right), compared);
        Work(compared, expr.line);
        return {equal == (expr.kind == Expr::Kind::kEqual)};
      }
      case Expr::Kind::kIn:
        return {Contains(Eval(*expr.right), Eval(*expr.left), expr.line)};
      case Expr::Kind::kNotIn:
        return {!Contains(Eval(*expr.right), Eval(*expr.left), expr.line)};
      case Expr::Kind::kIsDefined:
        return {As<Undefined>(Eval(*expr.left)) == nullptr};
      case Expr::Kind::kIsNotDefined:
        return {As<Undefined>(Eval(*expr.left)) != nullptr};
      case Expr::Kind::kTrim: {
        const std::string text = ToText(Eval(*expr.left), expr.line);
        Work(text.size(), expr.line);
        std::string stripped = Strip(text);
        Allocate(stripped.size(), expr.line);
        return {std::move(stripped)};
      }
      case Expr::Kind::kLength:
        return {Length(Eval(*expr.left), expr.line)};
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

}  // namespace

struct ChatTemplate::Program {
  Block body;
};

ChatTemplate::ChatTemplate(std::string jinja_source) : source_(std::move(jinja_source)) {
  if (source_.size() > input_limits::kMaxTemplateBytes) {
    throw Error(fmt::format("chat template: {} bytes is over the limit of {} bytes", source_.size(),
                            input_limits::kMaxTemplateBytes));
  }
  program_ = std::make_shared<const Program>(Program{Parser(Lexer(source_).Run()).ParseTemplate()});
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

std::string ChatTemplate::Apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  List list;
  uint64_t message_bytes = 0;
  for (const ChatMessage& message : messages) {
    list.push_back(MakeDict({{"role", {message.role}}, {"content", {message.content}}}));
    message_bytes += message.role.size() + message.content.size();
  }
  using namespace input_limits;
  const RenderBudget budget{kMaxRenderSteps, kRenderOutputBaseBytes + kRenderOutputPerMessageByte * message_bytes,
                            kRenderMemoryBaseBytes + kRenderMemoryPerMessageByte * message_bytes,
                            kRenderWorkBaseBytes + kRenderWorkPerMessageByte * message_bytes};
  Renderer renderer({{"messages", MakeList(std::move(list))},
                     {"add_generation_prompt", {add_generation_prompt}},
                     {"bos_token", {bos_token_}},
                     {"eos_token", {eos_token_}},
                     {"tools", {None{}}}},
                    budget);
  std::string out;
  renderer.Run(program_->body, out);
  return out;
}

}  // namespace qvk
