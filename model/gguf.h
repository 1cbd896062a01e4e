#pragma once
// GGUF files (llama.cpp's format, versions 2 and 3), mapped and validated before anything in them
// is trusted: every read inside the file, every count against the bytes left, every size product
// against overflow, every tensor inside the data section and apart from the others. A corrupt,
// truncated or hostile file is an Error naming the file and the problem, never a crash, a read
// outside the mapping or an allocation the file's size does not justify.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "model/mapped_file.h"

namespace qvk {

// ggml tensor types, numbered as in ggml.h; the numbers ggml retired (4, 5, 31-33, 36-38) are absent.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

const char* GgmlTypeName(GgmlType type);  // "Q4_K"; "type 99" for a number ggml does not define

// A row of `block_elements` values is stored in `block_bytes` bytes.
struct GgmlTypeTraits {
  uint32_t block_elements;
  uint32_t block_bytes;
};
std::optional<GgmlTypeTraits> TraitsOf(GgmlType type);  // nullopt for an unknown type

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t { U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };
const char* GgufTypeName(GgufType type);  // "u32", "string", "array"...

// An array's elements, all of one type; the alternative's index is that type's number. An array
// of arrays holds arrays of any (possibly different) element types.
struct GgufArray {
  std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>, std::vector<int16_t>,
               std::vector<uint32_t>, std::vector<int32_t>, std::vector<float>, std::vector<bool>,
               std::vector<std::string>, std::vector<GgufArray>, std::vector<uint64_t>, std::vector<int64_t>,
               std::vector<double>>
      values;

  GgufType element_type() const { return static_cast<GgufType>(values.index()); }
  size_t size() const;
};

// A metadata value; the alternative's index is its type's number.
struct GgufValue {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string, GgufArray, uint64_t,
               int64_t, double>
      value;

  GgufType type() const { return static_cast<GgufType>(value.index()); }
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the row length (ggml's ne0)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;              // from the start of the data section
  std::span<const std::byte> data;  // inside the file's bytes, exactly the tensor's size
  uint64_t elements() const;
  uint64_t rows() const;  // product of dims[1..]
};

class GgufFile {
 public:
  // Maps the file and parses it with FromBytes; throws Error naming the path and the problem.
  static GgufFile Open(const std::filesystem::path& path);
  // Parses bytes held elsewhere (a fuzzer's input, a buffer): they must outlive the result.
  // `name` stands for the file in messages.
  static GgufFile FromBytes(std::span<const std::byte> bytes, std::string name);

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* FindTensor(std::string_view name) const;

  const GgufValue* Find(std::string_view key) const;
  std::vector<std::string> Keys() const;  // in file order
  // Typed access; each returns nullopt (or an empty vector) when the key is absent and throws
  // Error naming the file and the key when it holds another type or an out-of-range value.
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<uint64_t> GetUint(std::string_view key) const;  // any integer type, not negative
  std::optional<double> GetFloat(std::string_view key) const;   // f32, f64 or any integer type
  std::optional<bool> GetBool(std::string_view key) const;
  std::vector<std::string> GetStringArray(std::string_view key) const;
  std::vector<int64_t> GetIntArray(std::string_view key) const;  // any integer element type

 private:
  GgufFile() = default;
  [[noreturn]] void FailKey(std::string_view key, std::string_view why) const;

  std::optional<MappedFile> mapping_;  // absent for FromBytes
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace qvk
