// The Markdown-lite parser, and DrawMarkdown rendered into ImGui draw lists without a GPU.
// Sections: helpers / blocks / inline spans / rendering / glyphs on demand
#include <cmath>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <imgui.h>

#include "ui/fonts.h"
#include "ui/markdown_view.h"

namespace qvk::ui {
namespace {

using Kind = MdBlockKind;
using Style = SpanStyle;

// The spans as "style:text" items, LineBreak as "/".
std::vector<std::string> Describe(const std::vector<MdSpan>& spans) {
  std::vector<std::string> items;
  for (const MdSpan& span : spans) {
    switch (span.style) {
      case Style::Plain:
        items.push_back("p:" + std::string(span.text));
        break;
      case Style::Bold:
        items.push_back("b:" + std::string(span.text));
        break;
      case Style::Italic:
        items.push_back("i:" + std::string(span.text));
        break;
      case Style::BoldItalic:
        items.push_back("bi:" + std::string(span.text));
        break;
      case Style::Code:
        items.push_back("c:" + std::string(span.text));
        break;
      case Style::LineBreak:
        items.push_back("/");
        break;
    }
  }
  return items;
}

std::string PlainText(const std::vector<MdSpan>& spans) {
  std::string text;
  for (const MdSpan& span : spans) text += span.text;
  return text;
}

using Items = std::vector<std::string>;

TEST(MarkdownParse, ParagraphsAreSplitByBlankLinesAndKeepLineBreaks) {
  const auto blocks = ParseMarkdown("first line\nsecond line\n\n  \nthird\n");
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].kind, Kind::Paragraph);
  EXPECT_EQ(Describe(blocks[0].spans), (Items{"p:first line", "/", "p:second line"}));
  EXPECT_EQ(blocks[1].kind, Kind::Paragraph);
  EXPECT_EQ(Describe(blocks[1].spans), (Items{"p:third"}));
  EXPECT_TRUE(ParseMarkdown("").empty());
  EXPECT_TRUE(ParseMarkdown("\n\n   \n").empty());
}

TEST(MarkdownParse, Headings) {
  const auto blocks = ParseMarkdown("# Title\n### Sub *part* ###\n#hashtag\n####### seven\n#");
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].kind, Kind::Heading);
  EXPECT_EQ(blocks[0].level, 1);
  EXPECT_EQ(Describe(blocks[0].spans), (Items{"p:Title"}));
  EXPECT_EQ(blocks[1].level, 3);
  EXPECT_EQ(Describe(blocks[1].spans), (Items{"p:Sub ", "i:part"}));
  EXPECT_EQ(blocks[2].kind, Kind::Paragraph);  // no space after '#', and seven '#', are text
  EXPECT_EQ(Describe(blocks[2].spans), (Items{"p:#hashtag", "/", "p:####### seven"}));
  EXPECT_EQ(blocks[3].kind, Kind::Heading);
  EXPECT_TRUE(blocks[3].spans.empty());
}

TEST(MarkdownParse, BulletListsWithContinuationLines) {
  const auto blocks = ParseMarkdown("Intro:\n- one\n* two\ncontinued\n+ three\n-not a bullet");
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].kind, Kind::Paragraph);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(blocks[i].kind, Kind::BulletItem);
    EXPECT_EQ(blocks[i].indent, 0);
  }
  EXPECT_EQ(Describe(blocks[1].spans), (Items{"p:one"}));
  EXPECT_EQ(Describe(blocks[2].spans), (Items{"p:two", "/", "p:continued"}));
  EXPECT_EQ(Describe(blocks[3].spans), (Items{"p:three", "/", "p:-not a bullet"}));
}

TEST(MarkdownParse, NestedListsFollowIndentation) {
  const auto blocks =
      ParseMarkdown("- a\n  - b\n    - c\n  - d\n- e\n\n    1. four spaces\n\t- tab\n\n  para in a\n\nout");
  std::vector<std::pair<Kind, int>> shape;
  for (const MdBlock& block : blocks) shape.emplace_back(block.kind, block.indent);
  const std::vector<std::pair<Kind, int>> expected = {
      {Kind::BulletItem, 0}, {Kind::BulletItem, 1}, {Kind::BulletItem, 2},
      {Kind::BulletItem, 1}, {Kind::BulletItem, 0}, {Kind::NumberedItem, 1},
      {Kind::BulletItem, 1}, {Kind::Paragraph, 1},  {Kind::Paragraph, 0}};
  EXPECT_EQ(shape, expected);
}

TEST(MarkdownParse, NumberedItems) {
  const auto blocks = ParseMarkdown("1. first\n2) second\n10. **tenth**\n3.14 is pi\n1.\n");
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[0].kind, Kind::NumberedItem);
  EXPECT_EQ(blocks[0].number, 1);
  EXPECT_EQ(Describe(blocks[0].spans), (Items{"p:first"}));
  EXPECT_EQ(blocks[1].number, 2);
  EXPECT_EQ(blocks[2].number, 10);
  EXPECT_EQ(Describe(blocks[2].spans), (Items{"b:tenth", "/", "p:3.14 is pi"}));
  EXPECT_EQ(blocks[3].kind, Kind::NumberedItem);
  EXPECT_TRUE(blocks[3].spans.empty());
}

TEST(MarkdownParse, FencedCodeBlocksWithAndWithoutLanguage) {
  const auto blocks = ParseMarkdown(
      "Run:\n```python title=x\ndef f():\n    return `1`\n\n**not "
      "bold**\n```\n~~~\nplain\n~~~\n````\n```\n````\nafter");
  ASSERT_EQ(blocks.size(), 5u);
  EXPECT_EQ(blocks[0].kind, Kind::Paragraph);
  EXPECT_EQ(blocks[1].kind, Kind::CodeBlock);
  EXPECT_EQ(blocks[1].language, "python");
  EXPECT_EQ(blocks[1].code, "def f():\n    return `1`\n\n**not bold**");
  EXPECT_TRUE(blocks[1].closed);
  EXPECT_EQ(blocks[2].language, "");
  EXPECT_EQ(blocks[2].code, "plain");
  EXPECT_EQ(blocks[3].code, "```");  // a shorter fence does not close a longer one
  EXPECT_EQ(blocks[4].kind, Kind::Paragraph);
  EXPECT_EQ(Describe(blocks[4].spans), (Items{"p:after"}));

  const auto empty = ParseMarkdown("```\n```");
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0].code, "");
  EXPECT_TRUE(empty[0].closed);
}

TEST(MarkdownParse, UnclosedFenceRunsToTheEnd) {
  const auto blocks = ParseMarkdown("Here:\n```cpp\nint x = 1;\n\n# not a heading\n- not an item\n");
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[1].kind, Kind::CodeBlock);
  EXPECT_EQ(blocks[1].language, "cpp");
  EXPECT_EQ(blocks[1].code, "int x = 1;\n\n# not a heading\n- not an item");
  EXPECT_FALSE(blocks[1].closed);

  const auto just_opened = ParseMarkdown("```py");
  ASSERT_EQ(just_opened.size(), 1u);
  EXPECT_EQ(just_opened[0].code, "");
  EXPECT_FALSE(just_opened[0].closed);
}

TEST(MarkdownParse, CodeInsideAListItemLosesTheFenceIndentation) {
  const auto blocks = ParseMarkdown("1. Build:\n   ```bash\n   make\n     -j2\n   ```\n2. Run");
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[1].kind, Kind::CodeBlock);
  EXPECT_EQ(blocks[1].indent, 1);
  EXPECT_EQ(blocks[1].code, "make\n  -j2");
  EXPECT_EQ(blocks[2].kind, Kind::NumberedItem);
  EXPECT_EQ(blocks[2].number, 2);
}

TEST(MarkdownParse, Rules) {
  const auto blocks = ParseMarkdown("a\n---\n* * *\n___\n**bold**\n--");
  ASSERT_EQ(blocks.size(), 5u);
  EXPECT_EQ(blocks[1].kind, Kind::Rule);
  EXPECT_EQ(blocks[2].kind, Kind::Rule);
  EXPECT_EQ(blocks[3].kind, Kind::Rule);
  EXPECT_EQ(blocks[4].kind, Kind::Paragraph);
  EXPECT_EQ(Describe(blocks[4].spans), (Items{"b:bold", "/", "p:--"}));
}

TEST(MarkdownInline, Spans) {
  EXPECT_EQ(Describe(ParseInline("a **b** c")), (Items{"p:a ", "b:b", "p: c"}));
  EXPECT_EQ(Describe(ParseInline("__b__ and _i_ and *i*")), (Items{"b:b", "p: and ", "i:i", "p: and ", "i:i"}));
  EXPECT_EQ(Describe(ParseInline("***both*** end")), (Items{"bi:both", "p: end"}));
  EXPECT_EQ(Describe(ParseInline("**bold *and italic* inside**")), (Items{"b:bold ", "bi:and italic", "b: inside"}));
  EXPECT_EQ(Describe(ParseInline("use `x * y` here")), (Items{"p:use ", "c:x * y", "p: here"}));
  EXPECT_EQ(Describe(ParseInline("`` a `tick` b ``")), (Items{"c:a `tick` b"}));
  EXPECT_EQ(Describe(ParseInline("*`code` in italic*")), (Items{"c:code", "i: in italic"}));
  EXPECT_EQ(Describe(ParseInline("un*frigging*believable")), (Items{"p:un", "i:frigging", "p:believable"}));
}

TEST(MarkdownInline, UnmatchedMarkersStayLiteral) {
  EXPECT_EQ(Describe(ParseInline("**unclosed")), (Items{"p:**unclosed"}));
  EXPECT_EQ(Describe(ParseInline("closed** only")), (Items{"p:closed** only"}));
  EXPECT_EQ(Describe(ParseInline("2 * 3 * 4 = 24")), (Items{"p:2 * 3 * 4 = 24"}));
  EXPECT_EQ(Describe(ParseInline("snake_case_name and __init__")), (Items{"p:snake_case_name and ", "b:init"}));
  EXPECT_EQ(Describe(ParseInline("a_b_c")), (Items{"p:a_b_c"}));
  EXPECT_EQ(Describe(ParseInline("`no closing tick")), (Items{"p:`no closing tick"}));
  EXPECT_EQ(Describe(ParseInline("**a *b")), (Items{"p:**a *b"}));
  EXPECT_EQ(Describe(ParseInline("**a *b**")), (Items{"p:*", "i:a ", "i:b"}));  // as CommonMark: *<em>a <em>b</em></em>
  EXPECT_EQ(PlainText(ParseInline("\\*not italic\\* and \\`tick")), "*not italic* and `tick");
  for (const MdSpan& span : ParseInline("\\*not italic\\*")) EXPECT_EQ(span.style, Style::Plain);
}

TEST(MarkdownInline, MultibyteTextIsUntouched) {
  EXPECT_EQ(Describe(ParseInline("**注意：**这是中文。")), (Items{"b:注意：", "p:这是中文。"}));
  EXPECT_EQ(Describe(ParseInline("中*文*字")), (Items{"p:中", "i:文", "p:字"}));
  EXPECT_EQ(Describe(ParseInline("héllo **wörld** ñ")), (Items{"p:héllo ", "b:wörld", "p: ñ"}));
  EXPECT_EQ(Describe(ParseInline("emoji 😀 `ß`")), (Items{"p:emoji 😀 ", "c:ß"}));
  const std::string japanese = "日本語のテキスト、そして한국어";
  EXPECT_EQ(Describe(ParseInline(japanese)), (Items{"p:" + japanese}));
}

// Search snippets: marked matches, everything else literal (brackets and asterisks included).
TEST(MarkedSpans, MarksBecomeBoldAndTheRestStaysText) {
  EXPECT_EQ(Describe(MarkedSpans("a \x02match\x03 [b] **c**\nd", '\x02', '\x03')),
            (Items{"p:a ", "b:match", "p: [b] **c**", "/", "p:d"}));
  EXPECT_EQ(Describe(MarkedSpans("\x02one\x03\x02two\x03", '\x02', '\x03')), (Items{"b:one", "b:two"}));
  EXPECT_EQ(Describe(MarkedSpans("\x02unclosed", '\x02', '\x03')), (Items{"b:unclosed"}));
  EXPECT_TRUE(MarkedSpans("", '\x02', '\x03').empty());
}

TEST(MarkdownParse, CrlfLineEndings) {
  const auto blocks = ParseMarkdown("# Title\r\na\r\nb **c**\r\n\r\n- item\r\n```js\r\nx\r\n\r\ny\r\n```\r\n");
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(Describe(blocks[0].spans), (Items{"p:Title"}));
  EXPECT_EQ(Describe(blocks[1].spans), (Items{"p:a", "/", "p:b ", "b:c"}));
  EXPECT_EQ(Describe(blocks[2].spans), (Items{"p:item"}));
  EXPECT_EQ(blocks[3].language, "js");
  EXPECT_EQ(blocks[3].code, "x\n\ny");
  EXPECT_TRUE(blocks[3].closed);
}

// --- rendering ---------------------------------------------------------------------------------

constexpr std::string_view kSample =
    "```cpp\nint main() { return 0; }  // a comment long enough to need the horizontal scrollbar in a narrow "
    "window\n```\n"
    "# Heading one\n## Heading two\n### Heading three\n\n"
    "A paragraph with **bold**, *italic*, ***both***, `inline code` and a "
    "Supercalifragilisticexpialidocious_and_then_some_more_characters_to_overflow word.\n"
    "A second line: 中文文本，没有空格也要能换行，日本語のテキスト、한국어 and an emoji 😀.\n\n"
    "- bullet one\n  - nested bullet\n    - deeper\n- bullet two\n\n"
    "1. first\n2. second with `code`\n   ```\n   indented code\n   ```\n\n---\n\n"
    "Trailing paragraph.\n```python\nprint('streaming, unclosed')\n";

class MarkdownRender : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;
    io.DisplaySize = ImVec2(2000.0f, 8000.0f);
    io.DeltaTime = 1.0f / 60.0f;
    fonts_ = LoadFonts(1.0f);
    unsigned char* pixels = nullptr;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &atlas_width_, &atlas_height_);
  }
  static void TearDownTestSuite() { ImGui::DestroyContext(); }

  struct Frame {
    float height = 0;  // of the drawn text
    int vertices = 0;
  };

  // One frame with the text in a window `width` wide at the origin (or `top` above the screen's
  // top edge, so that the screen shows a part below the text's start).
  static Frame Render(std::string_view text, float width, MarkdownActions* actions = nullptr,
                      MarkdownLayout* layout = nullptr, float top_offscreen = 0.0f, float window_height = 7000.0f) {
    ImGui::NewFrame();
    ImGui::SetNextWindowPos(ImVec2(0, -top_offscreen));
    ImGui::SetNextWindowSize(ImVec2(width, window_height));
    ImGui::Begin("markdown", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoSavedSettings);
    const float top = ImGui::GetCursorPosY();
    DrawMarkdown(text, fonts_, actions, layout);
    const float height = ImGui::GetCursorPosY() - top;
    ImGui::End();
    ImGui::Render();
    return {height, ImGui::GetDrawData()->TotalVtxCount};
  }

  static inline Fonts fonts_;
  static inline int atlas_width_ = 0;
  static inline int atlas_height_ = 0;
};

// A kept layout draws what a fresh one does, on its first frame (which lays out everything) and
// on later ones (which resume at the first line in view), wherever the text is scrolled to; the
// lines it recorded are the lines drawn. A megabyte-long word wraps like any over-long word.
TEST_F(MarkdownRender, AKeptLayoutDrawsWhatAFreshOneDoes) {
  const std::string word(size_t{1} << 20, 'a');
  const std::string text =
      "# Title\n\nSome **words** and `code` first.\n\n" + word + " and after it\n\n```\ncode\n```\n";
  // Windows at most 2000 pixels in view: a screen of glyphs stays within 16-bit vertex indices.
  const Frame fresh = Render(text, 600.0f, nullptr, nullptr, 0.0f, 2000.0f);
  const float line_height = std::round(std::round(fonts_.regular->FontSize) * 1.25f);
  EXPECT_GT(fresh.height, line_height * static_cast<float>(word.size()) * fonts_.regular->GetCharAdvance('a') / 600.0f);
  // Vertices: the same lines of glyphs (a line is 260 vertices here); blocks out of view may
  // leave out their backgrounds and the like.
  constexpr int kTolerance = 100;
  MarkdownLayout layout;
  for (int frame = 0; frame < 2; ++frame) {
    const Frame kept = Render(text, 600.0f, nullptr, &layout, 0.0f, 2000.0f);
    EXPECT_FLOAT_EQ(kept.height, fresh.height) << frame;
    EXPECT_NEAR(kept.vertices, fresh.vertices, kTolerance) << frame;
  }
  ASSERT_EQ(layout.layout.size(), 4u);  // heading, paragraph, the long word's paragraph, code
  const MarkdownLayout::Block& long_paragraph = layout.layout[2];
  EXPECT_NEAR(static_cast<float>(long_paragraph.lines.size()) * line_height, long_paragraph.height, line_height);
  for (const float scrolled : {50'000.0f, 123'456.0f, fresh.height - 3000.0f}) {
    const Frame fresh_there = Render(text, 600.0f, nullptr, nullptr, scrolled, scrolled + 2000.0f);
    const Frame kept_there = Render(text, 600.0f, nullptr, &layout, scrolled, scrolled + 2000.0f);
    EXPECT_GT(fresh_there.vertices, 4 * 1000) << scrolled;  // a screen full of glyphs
    EXPECT_NEAR(kept_there.vertices, fresh_there.vertices, kTolerance) << scrolled;
    EXPECT_FLOAT_EQ(kept_there.height, fresh.height) << scrolled;
  }
  // Another width lays out again.
  const Frame narrow = Render(text, 300.0f, nullptr, &layout, 0.0f, 2000.0f);
  EXPECT_FLOAT_EQ(narrow.height, Render(text, 300.0f, nullptr, nullptr, 0.0f, 2000.0f).height);
  EXPECT_GT(narrow.height, fresh.height);
}

TEST_F(MarkdownRender, FontsCoverCjkAndFallBackToTheReplacementCharacter) {
  EXPECT_LE(atlas_width_, 4096);
  EXPECT_LE(atlas_height_, 4096);
  for (ImFont* font : {fonts_.regular, fonts_.bold, fonts_.italic, fonts_.mono}) {
    ASSERT_NE(font, nullptr);
    EXPECT_FLOAT_EQ(font->FontSize, 16.0f);
    EXPECT_EQ(font->FallbackChar, 0xFFFD);
    if (std::filesystem::exists("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")) {
      EXPECT_NE(font->FindGlyphNoFallback(0x4E2D), nullptr);  // 中
      EXPECT_NE(font->FindGlyphNoFallback(0x3042), nullptr);  // あ
    }
  }
  if (std::filesystem::exists("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")) {
    EXPECT_NE(fonts_.bold, fonts_.regular);
  }
}

TEST_F(MarkdownRender, EveryFeatureDrawsAndWrapsTallerWhenNarrower) {
  const Frame wide = Render(kSample, 1200.0f);
  const Frame narrow = Render(kSample, 300.0f);
  EXPECT_GT(wide.vertices, 4 * 400);  // hundreds of glyphs, four vertices each
  EXPECT_GT(narrow.vertices, 4 * 400);
  EXPECT_GT(wide.height, 0.0f);
  EXPECT_GT(narrow.height, wide.height + 5 * 16.0f);  // at least five more lines
  const Frame same = Render(kSample, 1200.0f);
  EXPECT_EQ(same.height, wide.height);
}

TEST_F(MarkdownRender, EveryPrefixOfAStreamingReplyDraws) {
  // Cuts inside UTF-8 sequences, markers and fences included; a sliver of a window too.
  for (size_t length = 0; length <= kSample.size(); ++length) Render(kSample.substr(0, length), 500.0f);
  EXPECT_GT(Render(kSample, 24.0f).height, Render(kSample, 500.0f).height);
}

TEST_F(MarkdownRender, SnippetsDrawEveryWordAndWrap) {
  const std::string snippet = "…a long snippet with a \x02match\x03 in the middle of words that must wrap…";
  const std::vector<MdSpan> spans = MarkedSpans(snippet, '\x02', '\x03');
  float heights[2] = {};
  int vertices = 0;
  for (const float width : {1200.0f, 120.0f}) {
    ImGui::NewFrame();
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(ImVec2(width, 7000.0f));
    ImGui::Begin("snippet", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoSavedSettings);
    const float top = ImGui::GetCursorPosY();
    DrawSnippet(spans, fonts_);
    heights[width < 500.0f ? 1 : 0] = ImGui::GetCursorPosY() - top;
    ImGui::End();
    ImGui::Render();
    vertices = ImGui::GetDrawData()->TotalVtxCount;
  }
  EXPECT_GT(vertices, 4 * 50);
  EXPECT_GT(heights[0], 0.0f);
  EXPECT_GT(heights[1], heights[0] + 2 * 16.0f);
}

TEST_F(MarkdownRender, CopyButtonPutsTheCodeOnTheClipboard) {
  const std::string text = "```sh\necho hello\n```\nafter";
  const float width = 600.0f;
  MarkdownActions actions;
  Render(text, width, &actions);
  EXPECT_EQ(actions.copied_code_block, -1);
  // The button sits at the block's top right: window padding 8, button right edge 4 further in.
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2(width - 8.0f - 4.0f - 6.0f, 8.0f + 12.0f);
  io.MouseDown[0] = true;
  Render(text, width, &actions);
  EXPECT_EQ(actions.copied_code_block, -1);
  io.MouseDown[0] = false;
  Render(text, width, &actions);
  EXPECT_EQ(actions.copied_code_block, 0);
  ASSERT_NE(ImGui::GetClipboardText(), nullptr);
  EXPECT_STREQ(ImGui::GetClipboardText(), "echo hello");
  Render(text, width, &actions);
  EXPECT_EQ(actions.copied_code_block, -1);
  io.MousePos = ImVec2(-1.0f, -1.0f);
}

}  // namespace
// --- glyphs on demand --------------------------------------------------------------------------

TEST(GlyphCoverage, CollectsMissingGlyphsOnceAndTheRebuiltAtlasHasThem) {
  const bool noto_cjk = std::filesystem::exists("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc");
  ImGuiContext* context = ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;
  Fonts fonts = LoadFonts(1.0f);
  io.Fonts->Build();
  const std::vector<ImWchar> hangul = {0xC548, 0xB155, 0xD558, 0xC138, 0xC694};  // 안녕하세요
  for (const ImWchar c : hangul) EXPECT_EQ(fonts.regular->FindGlyphNoFallback(c), nullptr);

  GlyphCoverage coverage;
  coverage.Note("안녕하세요 and ASCII", fonts.regular);
  EXPECT_TRUE(coverage.TakeNewGlyphs());
  coverage.Note("안녕하세요 again", fonts.regular);
  EXPECT_FALSE(coverage.TakeNewGlyphs());  // each code point is asked for once
  if (noto_cjk) {
    coverage.Note("中文 is in the common set", fonts.regular);
    EXPECT_FALSE(coverage.TakeNewGlyphs());
  }
  coverage.Note("an emoji \xF0\x9F\x98\x80 stays the replacement box", fonts.regular);
  EXPECT_FALSE(coverage.TakeNewGlyphs());

  io.Fonts->Clear();
  fonts = LoadFonts(1.0f, coverage.ranges());
  io.Fonts->Build();
  if (noto_cjk) {
    for (const ImWchar c : hangul) {
      EXPECT_NE(fonts.regular->FindGlyphNoFallback(c), nullptr);
      EXPECT_NE(fonts.bold->FindGlyphNoFallback(c), nullptr);
    }
  }
  ImGui::DestroyContext(context);
}

}  // namespace qvk::ui
