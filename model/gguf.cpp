// Sections: ggml types / reader / metadata values / header and tensor infos / tensor layout /
// GgufFile access
#include "model/gguf.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"
#include "model/input_limits.h"

namespace qvk {

// Values are copied straight out of the little-endian file.
static_assert(std::endian::native == std::endian::little, "GGUF reading assumes a little-endian host");

namespace {

// --- ggml types ----------------------------------------------------------------------------

struct TypeRow {
  GgmlType type;
  const char* name;
  GgmlTypeTraits traits;
};

// Block sizes and bytes from ggml's type_traits (ggml.c) and its block structs (ggml-common.h).
constexpr std::array<TypeRow, 32> kTypes = {{
    {GgmlType::F32, "F32", {1, 4}},
    {GgmlType::F16, "F16", {1, 2}},
    {GgmlType::Q4_0, "Q4_0", {32, 18}},
    {GgmlType::Q4_1, "Q4_1", {32, 20}},
    {GgmlType::Q5_0, "Q5_0", {32, 22}},
    {GgmlType::Q5_1, "Q5_1", {32, 24}},
    {GgmlType::Q8_0, "Q8_0", {32, 34}},
    {GgmlType::Q8_1, "Q8_1", {32, 36}},
    {GgmlType::Q2_K, "Q2_K", {256, 84}},
    {GgmlType::Q3_K, "Q3_K", {256, 110}},
    {GgmlType::Q4_K, "Q4_K", {256, 144}},
    {GgmlType::Q5_K, "Q5_K", {256, 176}},
    {GgmlType::Q6_K, "Q6_K", {256, 210}},
    {GgmlType::Q8_K, "Q8_K", {256, 292}},
    {GgmlType::IQ2_XXS, "IQ2_XXS", {256, 66}},
    {GgmlType::IQ2_XS, "IQ2_XS", {256, 74}},
    {GgmlType::IQ3_XXS, "IQ3_XXS", {256, 98}},
    {GgmlType::IQ1_S, "IQ1_S", {256, 50}},
    {GgmlType::IQ4_NL, "IQ4_NL", {32, 18}},
    {GgmlType::IQ3_S, "IQ3_S", {256, 110}},
    {GgmlType::IQ2_S, "IQ2_S", {256, 82}},
    {GgmlType::IQ4_XS, "IQ4_XS", {256, 136}},
    {GgmlType::I8, "I8", {1, 1}},
    {GgmlType::I16, "I16", {1, 2}},
    {GgmlType::I32, "I32", {1, 4}},
    {GgmlType::I64, "I64", {1, 8}},
    {GgmlType::F64, "F64", {1, 8}},
    {GgmlType::IQ1_M, "IQ1_M", {256, 56}},
    {GgmlType::BF16, "BF16", {1, 2}},
    {GgmlType::TQ1_0, "TQ1_0", {256, 54}},
    {GgmlType::TQ2_0, "TQ2_0", {256, 66}},
    {GgmlType::MXFP4, "MXFP4", {32, 17}},
}};

const TypeRow* FindType(GgmlType type) {
  const auto it = std::find_if(kTypes.begin(), kTypes.end(), [&](const TypeRow& row) { return row.type == type; });
  return it == kTypes.end() ? nullptr : &*it;
}

// Smallest encoding of each metadata value type, which bounds how many elements the bytes left
// can hold: a string is at least its 8-byte length, an array its 4-byte type and 8-byte count.
constexpr std::array<uint64_t, 13> kMinValueBytes = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};
constexpr std::array<const char*, 13> kValueTypeNames = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                         "bool", "string", "array", "u64", "i64", "f64"};

// Smallest metadata entry (empty key, one-byte value) and tensor info (empty name, one dimension).
constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;

// --- reader --------------------------------------------------------------------------------

// Where a read happens, for messages: a reference to a callable formatting it, called only on
// failure, so the common path formats nothing. It must not outlive the callable.
class Where {
 public:
  template <typename F>
  requires(!std::is_same_v<std::decay_t<F>, Where>) Where(const F& f)
      : object_(&f), format_([](const void* o) { return (*static_cast<const F*>(o))(); }) {}
  std::string operator()() const { return format_(object_); }

 private:
  const void* object_;
  std::string (*format_)(const void*);
};

// Reads little-endian values from the front of the bytes, each bounds-checked.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return bytes_.size() - position_; }

  [[noreturn]] void Fail(Where where, std::string_view why) const {
    throw Error(fmt::format("{}: {}: {}", file_, where(), why));
  }

  std::span<const std::byte> Take(uint64_t n, Where where) {
    if (n > remaining()) {
      Fail(where, fmt::format("needs {} bytes at byte {} but the file ends at byte {} (truncated?)", n, position_,
                              bytes_.size()));
    }
    const auto out = bytes_.subspan(position_, n);
    position_ += n;
    return out;
  }

  template <typename T>
  T Read(Where where) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, Take(sizeof(T), where).data(), sizeof(T));
    return value;
  }

  std::string String(Where where) {
    const auto length = Read<uint64_t>(where);
    if (length > remaining()) {
      Fail(where, fmt::format("string length {} at byte {} runs past the end of the file ({} bytes; truncated?)",
                              length, position_ - 8, bytes_.size()));
    }
    const auto text = Take(length, where);
    return std::string(reinterpret_cast<const char*>(text.data()), text.size());
  }

  // A count of items of at least `min_item_bytes` each, refused before anything is allocated for
  // it when the bytes left could not hold that many.
  uint64_t Count(Where where, std::string_view items, uint64_t min_item_bytes) {
    const auto count = Read<uint64_t>(where);
    if (count > remaining() / min_item_bytes) {
      Fail(where, fmt::format("{} count {} is more than the {} bytes left could hold", items, count, remaining()));
    }
    return count;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& file_;
  uint64_t position_ = 0;
};

// --- metadata values -----------------------------------------------------------------------

GgufType ReadValueType(Reader& r, Where where) {
  const auto type = r.Read<uint32_t>(where);
  if (type >= kMinValueBytes.size()) r.Fail(where, fmt::format("unknown metadata value type {}", type));
  return static_cast<GgufType>(type);
}

bool ReadBool(Reader& r, Where where) {
  const auto byte = r.Read<uint8_t>(where);
  if (byte > 1) r.Fail(where, fmt::format("bool value is {}, not 0 or 1", byte));
  return byte == 1;
}

GgufArray ReadArray(Reader& r, int depth, Where where);

// One value of type T, an array nested one level below `depth`.
template <typename T>
T ReadOne(Reader& r, int depth, Where where) {
  if constexpr (std::is_same_v<T, bool>) {
    return ReadBool(r, where);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return r.String(where);
  } else if constexpr (std::is_same_v<T, GgufArray>) {
    return ReadArray(r, depth + 1, where);
  } else {
    return r.Read<T>(where);
  }
}

// The value of type `type`, placed in the variant alternative of the same number.
template <size_t... I>
GgufValue ReadValue(Reader& r, GgufType type, int depth, Where where, std::index_sequence<I...>) {
  using Variant = decltype(GgufValue::value);
  GgufValue v;
  ((static_cast<size_t>(type) == I
        ? void(v.value.template emplace<I>(ReadOne<std::variant_alternative_t<I, Variant>>(r, depth, where)))
        : void()),
   ...);
  return v;
}

// Fixed-size elements in one copy: the tokenizer's arrays hold hundreds of thousands.
template <typename T>
std::vector<T> ReadPlainElements(Reader& r, uint64_t count, Where where) {
  std::vector<T> out(count);
  if (count != 0) std::memcpy(out.data(), r.Take(count * sizeof(T), where).data(), count * sizeof(T));
  return out;
}

template <size_t I>
void ReadElements(Reader& r, GgufArray& array, uint64_t count, int depth, Where where) {
  using Vector = std::variant_alternative_t<I, decltype(GgufArray::values)>;
  using T = typename Vector::value_type;
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    array.values.template emplace<I>(ReadPlainElements<T>(r, count, where));
  } else {
    Vector& out = array.values.template emplace<I>();
    out.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      const auto element_where = [&] { return fmt::format("{} element {}", where(), i); };
      out.push_back(ReadOne<T>(r, depth, element_where));
    }
  }
}

template <size_t... I>
void ReadElementsOfType(Reader& r, GgufArray& array, GgufType type, uint64_t count, int depth, Where where,
                        std::index_sequence<I...>) {
  ((static_cast<size_t>(type) == I ? ReadElements<I>(r, array, count, depth, where) : void()), ...);
}

GgufArray ReadArray(Reader& r, int depth, Where where) {
  if (depth > input_limits::kMaxGgufArrayDepth)
    r.Fail(where, fmt::format("arrays nested more than {} deep", input_limits::kMaxGgufArrayDepth));
  const GgufType type = ReadValueType(r, where);
  const uint64_t count = r.Count(where, "array element", kMinValueBytes[static_cast<size_t>(type)]);
  GgufArray array;
  ReadElementsOfType(r, array, type, count, depth, where, std::make_index_sequence<kMinValueBytes.size()>());
  return array;
}

// --- header and tensor infos ---------------------------------------------------------------

struct Header {
  uint32_t version = 0;
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
};

Header ReadHeader(Reader& r, std::span<const std::byte> bytes, const std::string& file) {
  const auto where = [] { return std::string("header"); };
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    std::string found;
    for (size_t i = 0; i < std::min<size_t>(bytes.size(), 4); ++i) {
      found += fmt::format("{:02x}", std::to_integer<unsigned>(bytes[i]));
    }
    throw Error(fmt::format("{}: not a GGUF file: it starts with bytes '{}', not the magic \"GGUF\"", file, found));
  }
  r.Take(4, where);
  Header h;
  h.version = r.Read<uint32_t>(where);
  if (h.version == 1) {
    throw Error(
        fmt::format("{}: GGUF version 1 is not supported (it predates 64-bit counts; convert the model again)", file));
  }
  if (h.version == 0x02000000 || h.version == 0x03000000) {
    throw Error(fmt::format("{}: big-endian GGUF (version {}) is not supported", file, h.version >> 24));
  }
  if (h.version != 2 && h.version != 3) {
    throw Error(fmt::format("{}: GGUF version {} is not supported (only 2 and 3)", file, h.version));
  }
  // Both counts are bounded by the bytes after the header before either sizes anything; the
  // tensor count is checked again once the metadata is read.
  h.tensor_count = r.Read<uint64_t>(where);
  h.kv_count = r.Count(where, "metadata entry", kMinEntryBytes);
  if (h.tensor_count > r.remaining() / kMinTensorInfoBytes) {
    throw Error(fmt::format("{}: header: tensor count {} is more than the {} bytes left could hold", file,
                            h.tensor_count, r.remaining()));
  }
  return h;
}

struct ParsedTensor {
  GgufTensor tensor;
  uint64_t bytes = 0;
};

ParsedTensor ReadTensorInfo(Reader& r, uint64_t index) {
  ParsedTensor t;
  const auto info_where = [&] { return fmt::format("tensor info {}", index); };
  t.tensor.name = r.String(info_where);
  const auto where = [&] { return fmt::format("tensor '{}'", t.tensor.name); };
  if (t.tensor.name.empty()) r.Fail(info_where, "empty tensor name");

  const auto n_dims = r.Read<uint32_t>(where);
  if (n_dims == 0 || n_dims > kMaxDims) {
    r.Fail(where, fmt::format("{} dimensions (a tensor has 1 to {})", n_dims, kMaxDims));
  }
  // ggml counts elements in int64_t.
  constexpr auto kMaxElements = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    t.tensor.dims.push_back(r.Read<uint64_t>(where));
    if (t.tensor.dims.back() == 0) r.Fail(where, fmt::format("dimension {} is 0", d));
    if (__builtin_mul_overflow(elements, t.tensor.dims.back(), &elements) || elements > kMaxElements) {
      r.Fail(where,
             fmt::format("dimensions [{}...] hold more elements than fit in 63 bits", fmt::join(t.tensor.dims, ", ")));
    }
  }

  const auto type_number = r.Read<uint32_t>(where);
  t.tensor.type = static_cast<GgmlType>(type_number);
  const TypeRow* type = FindType(t.tensor.type);
  if (type == nullptr) r.Fail(where, fmt::format("unknown ggml type {}", type_number));
  const GgmlTypeTraits traits = type->traits;
  if (t.tensor.dims[0] % traits.block_elements != 0) {
    r.Fail(where, fmt::format("row length {} is not a multiple of {}'s block of {} elements", t.tensor.dims[0],
                              type->name, traits.block_elements));
  }
  if (__builtin_mul_overflow(elements / traits.block_elements, uint64_t{traits.block_bytes}, &t.bytes)) {
    r.Fail(where, fmt::format("{} elements of {} are more bytes than fit in 64 bits", elements, type->name));
  }
  t.tensor.offset = r.Read<uint64_t>(where);
  return t;
}

// --- tensor layout -------------------------------------------------------------------------

// Every tensor aligned, inside the data section, and apart from every other: two sharing bytes
// would let a write through one (an in-place conversion) corrupt the other, and no writer makes that.
void PlaceTensors(std::vector<ParsedTensor>& parsed, std::span<const std::byte> data, uint64_t alignment,
                  const std::string& file) {
  for (ParsedTensor& t : parsed) {
    const GgufTensor& g = t.tensor;
    if (g.offset % alignment != 0) {
      throw Error(fmt::format("{}: tensor '{}': offset {} is not a multiple of the alignment {}", file, g.name,
                              g.offset, alignment));
    }
    if (g.offset > data.size() || t.bytes > data.size() - g.offset) {
      throw Error(fmt::format(
          "{}: tensor '{}': its {} bytes at offset {} run past the end of the data section ({} bytes; truncated?)",
          file, g.name, t.bytes, g.offset, data.size()));
    }
    t.tensor.data = data.subspan(g.offset, t.bytes);
  }
  std::vector<const ParsedTensor*> by_offset;
  by_offset.reserve(parsed.size());
  for (const ParsedTensor& t : parsed) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ParsedTensor* a, const ParsedTensor* b) { return a->tensor.offset < b->tensor.offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ParsedTensor& a = *by_offset[i - 1];
    const ParsedTensor& b = *by_offset[i];
    if (b.tensor.offset < a.tensor.offset + a.bytes) {
      throw Error(fmt::format("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", file, a.tensor.name,
                              a.tensor.offset, a.tensor.offset + a.bytes, b.tensor.name, b.tensor.offset,
                              b.tensor.offset + b.bytes));
    }
  }
}

}  // namespace

const char* GgmlTypeName(GgmlType type) {
  if (const TypeRow* row = FindType(type)) return row->name;
  // Unknown numbers are rare and only reach messages; a small ring keeps each name valid a while.
  thread_local std::array<std::array<char, 24>, 4> names{};
  thread_local size_t next = 0;
  auto& name = names[next++ % names.size()];
  *fmt::format_to_n(name.data(), name.size() - 1, "type {}", static_cast<uint32_t>(type)).out = '\0';
  return name.data();
}

std::optional<GgmlTypeTraits> TraitsOf(GgmlType type) {
  if (const TypeRow* row = FindType(type)) return row->traits;
  return std::nullopt;
}

const char* GgufTypeName(GgufType type) {
  const auto i = static_cast<size_t>(type);
  return i < kValueTypeNames.size() ? kValueTypeNames[i] : "unknown";
}

size_t GgufArray::size() const {
  return std::visit([](const auto& v) { return v.size(); }, values);
}

uint64_t GgufTensor::elements() const {
  uint64_t n = 1;
  for (const uint64_t d : dims) n *= d;
  return n;
}

uint64_t GgufTensor::rows() const {
  uint64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

GgufFile GgufFile::Open(const std::filesystem::path& path) {
  MappedFile mapping = MappedFile::Open(path);
  const std::span<const std::byte> bytes = mapping.bytes();
  GgufFile file = FromBytes(bytes, path.string());
  // The mapping stays at the same address when moved, so the tensors' spans stay valid.
  file.mapping_.emplace(std::move(mapping));
  return file;
}

GgufFile GgufFile::FromBytes(std::span<const std::byte> bytes, std::string name) {
  GgufFile out;
  out.name_ = std::move(name);
  const std::string& file = out.name_;
  Reader r(bytes, file);
  const Header header = ReadHeader(r, bytes, file);
  out.version_ = header.version;

  out.metadata_.reserve(header.kv_count);
  for (uint64_t i = 0; i < header.kv_count; ++i) {
    const auto entry_where = [&] { return fmt::format("metadata entry {}", i); };
    std::string key = r.String(entry_where);
    if (key.empty()) r.Fail(entry_where, "empty key");
    const auto where = [&] { return fmt::format("metadata '{}'", key); };
    if (out.metadata_index_.contains(key)) r.Fail(where, "the key appears twice");
    const GgufType type = ReadValueType(r, where);
    GgufValue value = ReadValue(r, type, 0, where, std::make_index_sequence<kMinValueBytes.size()>());
    out.metadata_index_.emplace(key, out.metadata_.size());
    out.metadata_.emplace_back(std::move(key), std::move(value));
  }

  out.alignment_ = kDefaultAlignment;
  if (out.Find("general.alignment") != nullptr) {
    out.alignment_ = *out.GetUint("general.alignment");
    if (!std::has_single_bit(out.alignment_)) out.FailKey("general.alignment", "must be a power of two");
  }

  if (header.tensor_count > r.remaining() / kMinTensorInfoBytes) {
    r.Fail([] { return std::string("header"); },
           fmt::format("tensor count {} is more than the {} bytes left after the metadata could hold",
                       header.tensor_count, r.remaining()));
  }
  std::vector<ParsedTensor> parsed;
  parsed.reserve(header.tensor_count);
  for (uint64_t i = 0; i < header.tensor_count; ++i) {
    parsed.push_back(ReadTensorInfo(r, i));
    if (!out.tensor_index_.emplace(parsed.back().tensor.name, i).second) {
      throw Error(fmt::format("{}: tensor '{}' appears twice", file, parsed.back().tensor.name));
    }
  }

  // The data section starts at the first aligned byte after the tensor infos. A file without
  // tensors may end before it.
  const uint64_t header_end = r.position();
  const uint64_t padding = (out.alignment_ - header_end % out.alignment_) % out.alignment_;
  std::span<const std::byte> data;
  if (padding <= bytes.size() - header_end) {
    data = bytes.subspan(header_end + padding);
  } else if (!parsed.empty()) {
    throw Error(
        fmt::format("{}: the data section would start at byte {}, past the end of the file ({} bytes; "
                    "truncated?)",
                    file, header_end + padding, bytes.size()));
  }
  PlaceTensors(parsed, data, out.alignment_, file);
  out.tensors_.reserve(parsed.size());
  for (ParsedTensor& t : parsed) out.tensors_.push_back(std::move(t.tensor));
  return out;
}

// --- GgufFile access -------------------------------------------------------------------------

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::vector<std::string> GgufFile::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(metadata_.size());
  for (const auto& [key, value] : metadata_) keys.push_back(key);
  return keys;
}

void GgufFile::FailKey(std::string_view key, std::string_view why) const {
  throw Error(fmt::format("{}: metadata '{}': {}", name_, key, why));
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  FailKey(key, fmt::format("has type {}, not string", GgufTypeName(v->type())));
}

std::optional<uint64_t> GgufFile::GetUint(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return std::visit(
      [&](const auto& x) -> uint64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>) {
            if (x < 0) FailKey(key, fmt::format("is {}, not a non-negative integer", x));
          }
          return static_cast<uint64_t>(x);
        } else {
          FailKey(key, fmt::format("has type {}, not an integer type", GgufTypeName(v->type())));
        }
      },
      v->value);
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return std::visit(
      [&](const auto& x) -> double {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<double>(x);
        } else {
          FailKey(key, fmt::format("has type {}, not a number type", GgufTypeName(v->type())));
        }
      },
      v->value);
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  FailKey(key, fmt::format("has type {}, not bool", GgufTypeName(v->type())));
}

std::vector<std::string> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return {};
  const auto* array = std::get_if<GgufArray>(&v->value);
  if (array == nullptr) FailKey(key, fmt::format("has type {}, not an array of strings", GgufTypeName(v->type())));
  const auto* strings = std::get_if<std::vector<std::string>>(&array->values);
  if (strings == nullptr) {
    FailKey(key, fmt::format("is an array of {}, not of strings", GgufTypeName(array->element_type())));
  }
  return *strings;
}

std::vector<int64_t> GgufFile::GetIntArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return {};
  const auto* array = std::get_if<GgufArray>(&v->value);
  if (array == nullptr) FailKey(key, fmt::format("has type {}, not an array of integers", GgufTypeName(v->type())));
  return std::visit(
      [&](const auto& elements) {
        using T = typename std::decay_t<decltype(elements)>::value_type;
        std::vector<int64_t> out;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          out.reserve(elements.size());
          for (size_t i = 0; i < elements.size(); ++i) {
            if constexpr (std::is_same_v<T, uint64_t>) {
              if (elements[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                FailKey(key, fmt::format("element {} is {}, past the 64-bit signed range", i, elements[i]));
              }
            }
            out.push_back(static_cast<int64_t>(elements[i]));
          }
        } else {
          FailKey(key, fmt::format("is an array of {}, not of integers", GgufTypeName(array->element_type())));
        }
        return out;
      },
      array->values);
}

}  // namespace qvk
