#include "data/zstd.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "core/error.h"
#include "data/byte_cursor.h"
#include "data/zstd_entropy.h"

namespace spin::data {
namespace {

using zstd::BackwardBits;
using zstd::FseState;
using zstd::FseTable;

constexpr std::uint32_t kFrameMagic = 0xFD2FB528, kSkippableMagic = 0x184D2A50;  // the latter's low 4 bits free
constexpr std::size_t kMaxBlock = std::size_t{128} << 10;                        // Block_Maximum_Size

// The three sequence fields, in the order of the compression modes byte and the streams' states.
enum Field { kLiteralLength = 0, kOffset = 1, kMatchLength = 2 };
constexpr std::array<const char*, 3> kFieldName = {"literal length", "offset", "match length"};
constexpr std::array<int, 3> kMaxLog = {9, 8, 9}, kMaxSymbol = {35, 31, 52};

// The predefined distributions (section 3.1.1.3.2.2), of accuracy 6, 5 and 6.
constexpr std::array<std::int16_t, 36> kLiteralLengthCounts = {
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1};
constexpr std::array<std::int16_t, 29> kOffsetCounts = {1, 1, 1, 1, 1, 1, 2, 2, 2, 1,  1,  1,  1,  1, 1,
                                                        1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1};
constexpr std::array<std::int16_t, 53> kMatchLengthCounts = {1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1,  1,  1,  1,  1,  1,  1, 1,
                                                             1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  1,  1,  1,  1,  1,  1, 1,
                                                             1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1};

const FseTable& predefined(Field field) {
  static const std::array<FseTable, 3> tables = [] {
    const std::string where = "Zstandard's predefined tables";
    return std::array<FseTable, 3>{zstd::fse_table(kLiteralLengthCounts, 6, where),
                                   zstd::fse_table(kOffsetCounts, 5, where),
                                   zstd::fse_table(kMatchLengthCounts, 6, where)};
  }();
  return tables[field];
}

// A length code's baseline and the extra bits added to it (sections 3.1.1.3.2.1.1).
struct LengthCode {
  std::uint32_t base;
  int bits;
};
constexpr std::array<LengthCode, 36> kLiteralLengthCodes = {{
    {0, 0},   {1, 0},   {2, 0},     {3, 0},     {4, 0},     {5, 0},     {6, 0},      {7, 0},      {8, 0},
    {9, 0},   {10, 0},  {11, 0},    {12, 0},    {13, 0},    {14, 0},    {15, 0},     {16, 1},     {18, 1},
    {20, 1},  {22, 1},  {24, 2},    {28, 2},    {32, 3},    {40, 3},    {48, 4},     {64, 6},     {128, 7},
    {256, 8}, {512, 9}, {1024, 10}, {2048, 11}, {4096, 12}, {8192, 13}, {16384, 14}, {32768, 15}, {65536, 16},
}};
constexpr std::array<LengthCode, 53> kMatchLengthCodes = {{
    {3, 0},   {4, 0},     {5, 0},     {6, 0},     {7, 0},     {8, 0},      {9, 0},      {10, 0},     {11, 0},
    {12, 0},  {13, 0},    {14, 0},    {15, 0},    {16, 0},    {17, 0},     {18, 0},     {19, 0},     {20, 0},
    {21, 0},  {22, 0},    {23, 0},    {24, 0},    {25, 0},    {26, 0},     {27, 0},     {28, 0},     {29, 0},
    {30, 0},  {31, 0},    {32, 0},    {33, 0},    {34, 0},    {35, 1},     {37, 1},     {39, 1},     {41, 1},
    {43, 2},  {47, 2},    {51, 3},    {59, 3},    {67, 4},    {83, 4},     {99, 5},     {131, 7},    {259, 8},
    {515, 9}, {1027, 10}, {2051, 11}, {4099, 12}, {8195, 13}, {16387, 14}, {32771, 15}, {65539, 16},
}};

// What a frame's compressed blocks carry from one to the next.
struct FrameState {
  zstd::HuffmanTable huffman;
  bool has_huffman = false;
  std::array<FseTable, 3> tables;
  std::array<bool, 3> has_table = {};
  std::array<std::uint32_t, 3> repeats = {1, 4, 8};  // the repeated offsets, most recent first
};

// One block's bytes appended to `out`: at most 128 KiB, never past `limit`; a match reaches back at
// most to `frame_start` (the frame's first byte, or the oldest one kept).
class Output {
 public:
  Output(std::string& out, std::size_t limit, std::size_t frame_start, const std::string& where)
      : out_(out), limit_(limit), frame_start_(frame_start), size_(out.size()), where_(where) {
    out_.resize(std::min(limit_, size_ + kMaxBlock));  // written in place, trimmed by finish()
  }
  void append(const void* data, std::size_t n) {
    if (n > 0) std::memcpy(reserve(n), data, n);  // an empty literals buffer's data() may be null
  }
  void fill(std::uint8_t byte, std::size_t n) { std::memset(reserve(n), byte, n); }
  // `length` bytes from `offset` back; a copy may overlap what it writes (a repeated pattern).
  void copy(std::size_t offset, std::size_t length) {
    require(offset <= size_ - frame_start_, where_, ": a Zstandard match ", offset, " bytes back where ",
            size_ - frame_start_, " are decompressed (corrupt data)");
    char* to = reserve(length);
    const char* from = to - offset;
    if (offset >= length) {
      std::memcpy(to, from, length);
    } else {
      for (std::size_t i = 0; i < length; ++i) to[i] = from[i];
    }
  }
  void finish() { out_.resize(size_); }

 private:
  char* reserve(std::size_t n) {
    require(n <= limit_ - size_, where_, ": Zstandard data longer than the page header's ", limit_,
            " bytes (corrupt data)");
    require(n <= out_.size() - size_, where_, ": a Zstandard block decompressing to more than 128 KiB (corrupt data)");
    char* at = out_.data() + size_;
    size_ += n;
    return at;
  }
  std::string& out_;
  const std::size_t limit_, frame_start_;
  std::size_t size_;
  const std::string& where_;
};

// The literals section (section 3.1.1.3.1): raw, one byte repeated, or Huffman-coded in one or
// four streams, with a new table or the previous one ("treeless").
std::span<const std::uint8_t> read_literals(ByteCursor& in, FrameState& frame, std::vector<std::uint8_t>& literals) {
  const std::string& where = in.where();
  const std::uint8_t b0 = in.byte();
  const int type = b0 & 3, format = (b0 >> 2) & 3;
  if (type < 2) {
    std::size_t size = b0 >> 3;
    if (format == 1) size = (b0 >> 4) + (std::size_t{in.byte()} << 4);
    if (format == 3) size = (b0 >> 4) + (in.le(2) << 4);
    require(size <= kMaxBlock, where, ": Zstandard literals of ", size, " bytes in one block (corrupt data)");
    if (type == 0) {
      const std::string_view raw = in.take(size);
      literals.assign(raw.begin(), raw.end());
    } else {
      literals.assign(size, in.byte());
    }
    return literals;
  }
  const int bits = format <= 1 ? 10 : format == 2 ? 14 : 18;
  const std::uint64_t header = b0 | (in.le(format <= 1 ? 2 : format == 2 ? 3 : 4) << 8);
  const std::size_t mask = (std::size_t{1} << bits) - 1;
  const std::size_t size = (header >> 4) & mask, compressed = (header >> (4 + bits)) & mask;
  require(size <= kMaxBlock, where, ": Zstandard literals of ", size, " bytes in one block (corrupt data)");
  std::string_view data = in.take(compressed);
  if (type == 2) {
    data.remove_prefix(zstd::huffman_read_table(data, frame.huffman, where));
    frame.has_huffman = true;
  }
  require(frame.has_huffman, where,
          ": Zstandard literals coded with a previous Huffman table, where there is none (corrupt data)");
  literals.resize(size);
  if (format == 0) {
    zstd::huffman_decode(frame.huffman, data, literals, where);
    return literals;
  }
  // Four streams behind a jump table of the first three's sizes, each a quarter of the literals.
  ByteCursor jump(data, where);
  std::array<std::size_t, 4> sizes = {jump.le(2), jump.le(2), jump.le(2), 0};
  const std::size_t listed = sizes[0] + sizes[1] + sizes[2];
  const std::size_t quarter = (size + 3) / 4;
  require(listed <= jump.left() && 3 * quarter <= size, where,
          ": Zstandard literal streams that do not fit their section (corrupt data)");
  sizes[3] = jump.left() - listed;
  std::span<std::uint8_t> out(literals);
  for (int s = 0; s < 4; ++s) {
    const std::size_t n = s < 3 ? quarter : size - 3 * quarter;
    zstd::huffman_decode(frame.huffman, jump.take(sizes[s]), out.subspan(s * quarter, n), where);
  }
  return literals;
}

// The sequences' three tables, each predefined, one symbol, described here, or the previous block's.
void read_tables(ByteCursor& in, FrameState& frame) {
  const std::string& where = in.where();
  const std::uint8_t modes = in.byte();
  require((modes & 3) == 0, where, ": a Zstandard sequences header with its reserved bits set (corrupt data)");
  for (Field field : {kLiteralLength, kOffset, kMatchLength}) {
    switch ((modes >> (6 - 2 * field)) & 3) {
      case 0: frame.tables[field] = predefined(field); break;
      case 1: {
        const std::uint8_t symbol = in.byte();
        require(symbol <= kMaxSymbol[field], where, ": a Zstandard ", kFieldName[field], " code of ", int{symbol},
                " (corrupt data)");
        frame.tables[field] = zstd::fse_rle_table(symbol);
        break;
      }
      case 2: {
        ForwardBits bits(in.rest(), where);
        frame.tables[field] = zstd::fse_read_table(bits, kMaxLog[field], kMaxSymbol[field], where);
        in.take(bits.bytes_used());
        break;
      }
      default:
        require(frame.has_table[field], where, ": Zstandard ", kFieldName[field],
                "s coded with a previous table, where there is none (corrupt data)");
    }
    frame.has_table[field] = true;
  }
}

// The offset a sequence copies from, updating the repeated offsets (section 3.1.1.5).
std::size_t resolve_offset(std::uint32_t value, std::uint32_t literal_length, FrameState& frame,
                           const std::string& where) {
  auto& r = frame.repeats;
  if (value > 3) {
    r = {value - 3, r[0], r[1]};
    return r[0];
  }
  const std::uint32_t index = value - 1 + (literal_length == 0 ? 1 : 0);
  if (index == 0) return r[0];
  if (index == 1) {
    r = {r[1], r[0], r[2]};
  } else if (index == 2) {
    r = {r[2], r[0], r[1]};
  } else {
    require(r[0] > 1, where, ": a Zstandard repeated offset of 0 (corrupt data)");
    r = {r[0] - 1, r[0], r[1]};
  }
  return r[0];
}

// The sequences section (section 3.1.1.3.2), executed as it is decoded: literals, then a match.
void decode_sequences(ByteCursor& in, FrameState& frame, std::span<const std::uint8_t> literals, Output& out) {
  const std::string& where = in.where();
  const std::uint8_t b0 = in.byte();
  std::size_t count = b0;
  if (b0 >= 128) count = b0 < 255 ? ((b0 - std::size_t{128}) << 8) + in.byte() : in.le(2) + 0x7F00;
  if (count > 0) {
    read_tables(in, frame);
    BackwardBits bits(in.take(in.left()), where);
    std::array<FseState, 3> states;
    for (Field field : {kLiteralLength, kOffset, kMatchLength}) states[field].init(frame.tables[field], bits);
    std::size_t used = 0;  // literals
    for (std::size_t i = 0; i < count; ++i) {
      const int offset_code = states[kOffset].symbol();
      const LengthCode ml = kMatchLengthCodes[states[kMatchLength].symbol()];
      const LengthCode ll = kLiteralLengthCodes[states[kLiteralLength].symbol()];
      // The extra bits in this order: offset, match length, literal length; then the states'
      // updates, literal length first -- except after the last sequence.
      const std::uint32_t offset_value = (std::uint32_t{1} << offset_code) + bits.read(offset_code);
      const std::uint32_t match_length = ml.base + bits.read(ml.bits);
      const std::uint32_t literal_length = ll.base + bits.read(ll.bits);
      if (i + 1 < count) {
        for (Field field : {kLiteralLength, kMatchLength, kOffset}) states[field].update(bits);
      }
      require(literal_length <= literals.size() - used, where, ": a Zstandard sequence of ", literal_length,
              " literals where ", literals.size() - used, " are left (corrupt data)");
      out.append(literals.data() + used, literal_length);
      used += literal_length;
      out.copy(resolve_offset(offset_value, literal_length, frame, where), match_length);
    }
    require(bits.left() == 0, where, ": a Zstandard sequences stream that does not hold its ", count,
            " sequences exactly (corrupt data)");
    literals = literals.subspan(used);
  }
  require(in.left() == 0, where, ": a Zstandard block longer than its sequences (corrupt data)");
  out.append(literals.data(), literals.size());
}

}  // namespace

struct ZstdDecoder::State {
  State(std::string_view compressed, const std::string& where_) : in(compressed, where_), where(where_) {}

  ByteCursor in;
  const std::string& where;
  bool in_frame = false, checksum = false;
  std::uint64_t window = 0, content_size = 0, frame_size = 0;
  int size_bytes = 0;
  std::size_t frame_start = 0;  // where the frame's bytes start in the caller's output (0 once dropped)
  FrameState frame;
  std::vector<std::uint8_t> literals;
  std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> hash{XXH64_createState(), &XXH64_freeState};

  void start_frame(std::size_t at);
  void decode_block(std::string& out, std::size_t limit);
  void end_frame();
};

// A frame's header (section 3.1.1.1).
void ZstdDecoder::State::start_frame(std::size_t at) {
  const std::uint8_t descriptor = in.byte();
  const int size_flag = descriptor >> 6, dictionary_flag = descriptor & 3;
  const bool single_segment = (descriptor >> 5) & 1;
  checksum = (descriptor >> 2) & 1;
  require((descriptor & 8) == 0, where, ": a Zstandard frame header with its reserved bit set (corrupt data)");
  if (!single_segment) {  // Window_Descriptor: 2^(10 + exponent) plus eighths of it
    const std::uint8_t w = in.byte();
    const std::uint64_t base = std::uint64_t{1} << (10 + (w >> 3));
    window = base + base / 8 * (w & 7);
  }
  const std::uint64_t dictionary = in.le(std::array{0, 1, 2, 4}[dictionary_flag]);
  require(dictionary == 0, where, ": Zstandard data compressed with dictionary ", dictionary,
          "; spin reads frames without a dictionary (as Parquet writers make them)");
  size_bytes = std::array{single_segment ? 1 : 0, 2, 4, 8}[size_flag];
  content_size = in.le(size_bytes) + (size_bytes == 2 ? 256 : 0);
  if (single_segment) window = content_size;  // the whole frame is the window
  frame = FrameState{};
  frame_start = at;
  frame_size = 0;
  XXH64_reset(hash.get(), 0);
  in_frame = true;
}

// One block (section 3.1.1.2): raw, one byte repeated, or compressed.
void ZstdDecoder::State::decode_block(std::string& out, std::size_t limit) {
  const std::uint64_t header = in.le(3);
  const std::size_t size = header >> 3, before = out.size();
  require(size <= kMaxBlock, where, ": a Zstandard block of ", size, " bytes (corrupt data)");
  Output block_out(out, limit, frame_start, where);
  switch ((header >> 1) & 3) {
    case 0: {
      const std::string_view raw = in.take(size);
      block_out.append(raw.data(), raw.size());
      break;
    }
    case 1: block_out.fill(in.byte(), size); break;
    case 2: {
      ByteCursor block(in.take(size), where);
      decode_sequences(block, frame, read_literals(block, frame, literals), block_out);
      break;
    }
    default: fail(where, ": a Zstandard block of the reserved type (corrupt data)");
  }
  block_out.finish();
  frame_size += out.size() - before;
  if (checksum) XXH64_update(hash.get(), out.data() + before, out.size() - before);
  if (header & 1) end_frame();
}

void ZstdDecoder::State::end_frame() {
  require(size_bytes == 0 || frame_size == content_size, where, ": a Zstandard frame of ", frame_size,
          " bytes whose header says ", content_size, " (corrupt data)");
  if (checksum) {
    require(static_cast<std::uint32_t>(in.le(4)) == static_cast<std::uint32_t>(XXH64_digest(hash.get())), where,
            ": a Zstandard frame whose content checksum does not match (corrupt data)");
  }
  in_frame = false;
}

ZstdDecoder::ZstdDecoder(std::string_view compressed, const std::string& where)
    : state_(std::make_unique<State>(compressed, where)) {}

ZstdDecoder::~ZstdDecoder() = default;

bool ZstdDecoder::next(std::string& out, std::size_t limit) {
  State& s = *state_;
  if (s.in_frame) {
    s.decode_block(out, limit);
    return true;
  }
  if (s.in.left() == 0) return false;
  const std::uint32_t magic = static_cast<std::uint32_t>(s.in.le(4));
  if ((magic & ~std::uint32_t{15}) == kSkippableMagic) {
    s.in.take(s.in.le(4));
    return true;
  }
  require(magic == kFrameMagic, s.where, ": not Zstandard data (a frame starting 0x", std::hex, magic,
          ") (corrupt data)");
  s.start_frame(out.size());
  return true;
}

std::uint64_t ZstdDecoder::window() const { return state_->in_frame ? state_->window : 0; }

void ZstdDecoder::forget(std::size_t n) { state_->frame_start = state_->frame_start > n ? state_->frame_start - n : 0; }

std::string zstd_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where) {
  // Every block takes at least a 3-byte header and gives at most 128 KiB.
  require(expected_size <= (compressed.size() / 3 + 1) * kMaxBlock, where, ": ", compressed.size(),
          " bytes of Zstandard data cannot hold the ", expected_size, " bytes the page header says (corrupt data)");
  std::string out;
  out.reserve(expected_size);
  ZstdDecoder decoder(compressed, where);
  while (decoder.next(out, expected_size)) {
  }
  require(out.size() == expected_size, where, ": Zstandard data decompresses to ", out.size(), " of its ",
          expected_size, " bytes (corrupt data)");
  return out;
}

}  // namespace spin::data
