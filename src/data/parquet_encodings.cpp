#include "data/parquet_encodings.h"

#include <cstring>

#include "core/error.h"

namespace spin::data::parquet {

namespace {

using nlohmann::json;

// Bits [bit, bit + width) of `data`, least significant first (Parquet's bit-packing order).
std::uint64_t bits_at(std::string_view data, std::size_t bit, int width) {
  std::uint64_t v = 0;
  for (int got = 0; got < width;) {
    const auto byte = static_cast<std::uint8_t>(data[bit >> 3]);
    const int shift = static_cast<int>(bit & 7);
    const int take = std::min(8 - shift, width - got);
    v |= static_cast<std::uint64_t>((byte >> shift) & ((1u << take) - 1)) << got;
    got += take;
    bit += static_cast<std::size_t>(take);
  }
  return v;
}

std::string_view byte_array(ByteCursor& in) { return in.take(in.le(4)); }

void decode_plain(ByteCursor& in, Type type, std::size_t count, std::vector<json>& out) {
  switch (type) {
    case Type::kBoolean: {
      const std::string_view bits = in.take((count + 7) / 8);
      for (std::size_t i = 0; i < count; ++i) out.emplace_back(bits_at(bits, i, 1) != 0);
      return;
    }
    case Type::kInt32:
      for (std::size_t i = 0; i < count; ++i) out.emplace_back(static_cast<std::int32_t>(in.le(4)));
      return;
    case Type::kInt64:
      for (std::size_t i = 0; i < count; ++i) out.emplace_back(static_cast<std::int64_t>(in.le(8)));
      return;
    case Type::kFloat:
      for (std::size_t i = 0; i < count; ++i) {
        const auto u = static_cast<std::uint32_t>(in.le(4));
        float f;
        std::memcpy(&f, &u, sizeof f);
        out.emplace_back(f);
      }
      return;
    case Type::kDouble:
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t u = in.le(8);
        double d;
        std::memcpy(&d, &u, sizeof d);
        out.emplace_back(d);
      }
      return;
    case Type::kByteArray:
      for (std::size_t i = 0; i < count; ++i) out.emplace_back(std::string(byte_array(in)));
      return;
    default: fail(in.where(), ": ", type_name(type), " values are not read by spin");
  }
}

// DELTA_BINARY_PACKED integers as the column's type.
void append_integers(const std::vector<std::int64_t>& values, Type type, const std::string& where,
                     std::vector<json>& out) {
  require(type == Type::kInt32 || type == Type::kInt64, where, ": DELTA_BINARY_PACKED ", type_name(type), " values");
  for (std::int64_t v : values) {
    if (type == Type::kInt32) {
      out.emplace_back(static_cast<std::int32_t>(static_cast<std::uint32_t>(v)));
    } else {
      out.emplace_back(v);
    }
  }
}

// DELTA_LENGTH_BYTE_ARRAY: the lengths (DELTA_BINARY_PACKED), then the bytes one after another.
std::vector<std::string_view> delta_length_byte_arrays(ByteCursor& in) {
  const std::vector<std::int64_t> lengths = decode_delta_binary_packed(in);
  std::vector<std::string_view> arrays;
  arrays.reserve(lengths.size());
  for (std::int64_t n : lengths) {
    require(n >= 0, in.where(), ": a byte array of length ", n, " (corrupt page)");
    arrays.push_back(in.take(static_cast<std::size_t>(n)));
  }
  return arrays;
}

}  // namespace

int bit_width(std::int64_t max) {
  int width = 0;
  while (max >> width) ++width;
  return width;
}

void decode_rle_hybrid(ByteCursor& in, int width, std::size_t count, std::vector<std::int32_t>& out) {
  require(width >= 0 && width <= 32, in.where(), ": a bit width of ", width, " (corrupt page)");
  const std::size_t end = out.size() + count;
  while (out.size() < end) {
    const std::uint64_t header = in.varint();
    const std::size_t want = end - out.size();
    if (header & 1) {  // bit-packed: (header >> 1) groups of 8 values
      const std::uint64_t groups = header >> 1;
      require(groups <= in.left(), in.where(), ": a bit-packed run of ", groups, " groups (corrupt page)");
      const std::string_view packed = in.take(static_cast<std::size_t>(groups) * static_cast<std::size_t>(width));
      const std::size_t n = std::min<std::size_t>(want, groups * 8);
      for (std::size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<std::int32_t>(bits_at(packed, i * static_cast<std::size_t>(width), width)));
      }
    } else {  // a run: (header >> 1) copies of one value in ceil(width / 8) bytes
      const std::uint64_t run = header >> 1;
      require(run > 0, in.where(), ": an empty RLE run (corrupt page)");
      const auto value = static_cast<std::int32_t>(in.le((width + 7) / 8));
      require(width == 32 || (value >> width) == 0, in.where(), ": an RLE value wider than ", width, " bits");
      out.insert(out.end(), std::min<std::uint64_t>(want, run), value);
    }
  }
}

std::vector<std::int64_t> decode_delta_binary_packed(ByteCursor& in) {
  const std::uint64_t block = in.varint(), miniblocks = in.varint(), total = in.varint();
  std::uint64_t value = static_cast<std::uint64_t>(in.zigzag());
  require(block > 0 && block <= 65536 && block % 128 == 0 && miniblocks > 0 && block % miniblocks == 0 &&
              (block / miniblocks) % 32 == 0,
          in.where(), ": a DELTA_BINARY_PACKED header of block ", block, " in ", miniblocks,
          " miniblocks (corrupt page)");
  const std::size_t per = block / miniblocks;
  // Not reserved by `total`: a corrupt header's count is bounded only by the bytes each block takes.
  std::vector<std::int64_t> out;
  if (total > 0) out.push_back(static_cast<std::int64_t>(value));
  while (out.size() < total) {
    const auto min_delta = static_cast<std::uint64_t>(in.zigzag());
    const std::string_view widths = in.take(miniblocks);
    for (std::size_t m = 0; m < miniblocks && out.size() < total; ++m) {
      const int width = static_cast<std::uint8_t>(widths[m]);
      require(width <= 64, in.where(), ": a miniblock of ", width, "-bit deltas (corrupt page)");
      const std::string_view packed = in.take(per * static_cast<std::size_t>(width) / 8);
      for (std::size_t i = 0; i < per && out.size() < total; ++i) {
        // Unsigned: the writer's deltas wrap, and so does their sum.
        value += min_delta + bits_at(packed, i * static_cast<std::size_t>(width), width);
        out.push_back(static_cast<std::int64_t>(value));
      }
    }
  }
  return out;
}

void decode_values(ByteCursor& in, Type type, Encoding encoding, std::size_t count,
                   const std::vector<json>& dictionary, std::vector<json>& out) {
  switch (encoding) {
    case Encoding::kPlain: decode_plain(in, type, count, out); return;
    case Encoding::kPlainDictionary:
    case Encoding::kRleDictionary: {
      if (count == 0) return;
      require(!dictionary.empty(), in.where(), ": dictionary-encoded values without a dictionary page (corrupt file)");
      std::vector<std::int32_t> indices;
      decode_rle_hybrid(in, in.byte(), count, indices);
      for (std::int32_t i : indices) {
        require(i >= 0 && static_cast<std::size_t>(i) < dictionary.size(), in.where(), ": dictionary index ", i,
                " of ", dictionary.size(), " entries (corrupt page)");
        out.push_back(dictionary[static_cast<std::size_t>(i)]);
      }
      return;
    }
    case Encoding::kRle: {  // booleans (as pyarrow writes them in v2 pages): a length, then 1-bit runs
      require(type == Type::kBoolean, in.where(), ": RLE-encoded ", type_name(type), " values");
      ByteCursor runs(in.take(in.le(4)), in.where());
      std::vector<std::int32_t> bits;
      decode_rle_hybrid(runs, 1, count, bits);
      for (std::int32_t b : bits) out.emplace_back(b != 0);
      return;
    }
    case Encoding::kDeltaBinaryPacked: {
      const std::vector<std::int64_t> values = decode_delta_binary_packed(in);
      require(values.size() == count, in.where(), ": ", values.size(),
              " DELTA_BINARY_PACKED values where the page has ", count);
      append_integers(values, type, in.where(), out);
      return;
    }
    case Encoding::kDeltaLengthByteArray:
    case Encoding::kDeltaByteArray: {
      require(type == Type::kByteArray, in.where(), ": ", encoding_name(encoding), " ", type_name(type), " values");
      std::vector<std::int64_t> prefixes;
      if (encoding == Encoding::kDeltaByteArray) prefixes = decode_delta_binary_packed(in);
      const std::vector<std::string_view> suffixes = delta_length_byte_arrays(in);
      require(suffixes.size() == count && (prefixes.empty() || prefixes.size() == count), in.where(), ": ",
              suffixes.size(), " ", encoding_name(encoding), " values where the page has ", count);
      // DELTA_BYTE_ARRAY: each value the first prefixes[i] bytes of the one before, then its suffix.
      std::string previous;
      for (std::size_t i = 0; i < count; ++i) {
        std::string value;
        if (!prefixes.empty()) {
          require(prefixes[i] >= 0 && static_cast<std::size_t>(prefixes[i]) <= previous.size(), in.where(),
                  ": a prefix of ", prefixes[i], " bytes of a ", previous.size(), "-byte value (corrupt page)");
          value = previous.substr(0, static_cast<std::size_t>(prefixes[i]));
        }
        value += suffixes[i];
        out.emplace_back(value);
        previous = std::move(value);
      }
      return;
    }
    default:
      fail(in.where(), ": values in ", encoding_name(encoding),
           ", which spin does not read (it reads PLAIN, dictionary and DELTA_* encodings)");
  }
}

}  // namespace spin::data::parquet
