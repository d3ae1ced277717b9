#include "checkpoint/h5.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace spin::ckpt::h5 {

namespace {

// Set before any other HDF5 call. HDF5 prints a stack of errors to stderr by default; spin reports
// its own one line. And no HDF5 exit handler: a file whose close failed (a full disk) stays half
// closed, and HDF5 1.10's handler crashes closing it at exit -- a segfault after spin's error line.
// Every file spin opens is closed by its File; what is left open at exit is a failed one.
struct Setup {
  Setup() {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
};
const Setup kSetup;

Id dataspace(const Shape& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

Id link_create_with_parents() {
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

void check(herr_t status, const std::string& path, const std::string& what) {
  require(status >= 0, path, ": HDF5 could not ", what);
}

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::uint64_t checksum(const void* data, std::size_t bytes) { return XXH3_64bits(data, bytes); }

File File::create(const std::string& path) {
  // The 1.8 file format or later: attributes past 64 KiB (the index's catalog of a model of
  // thousands of tensors -- a mixture of experts, or any large model with its optimizer state)
  // go to dense storage; the earliest format keeps them in the object header, 64 KiB at most.
  const Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  Id id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  require(id.get() >= 0, path, ": cannot create the HDF5 file");
  return File(std::move(id), path);
}

File File::open_read(const std::string& path) {
  require(std::filesystem::exists(path), path, ": missing (the checkpoint is incomplete)");
  Id id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  require(id.get() >= 0, path, ": not a readable HDF5 file (truncated or corrupt?)");
  return File(std::move(id), path);
}

std::uint64_t File::write_floats(const std::string& name, const Shape& shape, const float* data) {
  const Id space = dataspace(shape);
  const Id lcpl = link_create_with_parents();
  Id dset(H5Dcreate2(id(), name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl.get(), H5P_DEFAULT,
                     H5P_DEFAULT),
          H5Dclose);
  require(dset.get() >= 0, path_, ": cannot create dataset ", name);
  check(H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path_,
        "write dataset " + name);
  const std::uint64_t sum = checksum(data, static_cast<std::size_t>(shape_numel(shape)) * sizeof(float));
  const std::string text = hex(sum);
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), text.size());
  const Id scalar(H5Screate(H5S_SCALAR), H5Sclose);
  const Id attr(H5Acreate2(dset.get(), "xxh3_64", type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(H5Awrite(attr.get(), type.get(), text.data()), path_, "write the checksum of " + name);
  return sum;
}

void File::close() {
  const hid_t id = id_.release();
  if (id >= 0) check(H5Fclose(id), path_, "write its metadata and close it (a full disk?)");
}

void File::start_writeback() {
  void* handle = nullptr;
  if (H5Fget_vfd_handle(id(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) return;  // best effort
  ::sync_file_range(*static_cast<int*>(handle), 0, 0, SYNC_FILE_RANGE_WRITE);
}

bool File::exists(const std::string& name) const {
  // Walk the path so that a missing parent group is "no" rather than an error.
  std::size_t at = 0;
  while (true) {
    const std::size_t slash = name.find('/', at);
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    at = slash + 1;
  }
}

Shape File::dataset_shape(const std::string& name) const {
  const Id dset(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  require(dset.get() >= 0, path_, ": no readable dataset ", name,
          " where the checkpoint's index puts it (the file is truncated or corrupt)");
  const Id space(H5Dget_space(dset.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return Shape(dims.begin(), dims.end());
}

void File::read_floats_verified(const std::string& name, const Shape& shape, float* out) const {
  const Shape actual = dataset_shape(name);
  require(actual == shape, path_, ": dataset ", name, " has shape ", shape_text(actual), ", the index says ",
          shape_text(shape));
  const Id dset(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  check(H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), path_,
        "read dataset " + name + " (the file may be truncated)");
  const Id attr(H5Aopen(dset.get(), "xxh3_64", H5P_DEFAULT), H5Aclose);
  require(attr.get() >= 0, path_, ": dataset ", name, " has no checksum");
  Id type(H5Aget_type(attr.get()), H5Tclose);
  std::string stored(H5Tget_size(type.get()), '\0');
  check(H5Aread(attr.get(), type.get(), stored.data()), path_, "read the checksum of " + name);
  const std::string computed = hex(checksum(out, static_cast<std::size_t>(shape_numel(shape)) * sizeof(float)));
  require(stored == computed, path_, ": checksum mismatch in tensor ", name, " (stored ", stored,
          ", computed ", computed, "): the file is corrupt");
}

void File::write_string_attribute(const std::string& name, const std::string& value) {
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1));
  const Id scalar(H5Screate(H5S_SCALAR), H5Sclose);
  const Id attr(H5Acreate2(id(), name.c_str(), type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  require(attr.get() >= 0, path_, ": cannot create attribute ", name);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(attr.get(), type.get(), padded.data()), path_, "write attribute " + name);
}

std::string File::read_string_attribute(const std::string& name) const {
  require(H5Aexists(id(), name.c_str()) > 0, path_, ": no attribute ", name,
          " (not a spin checkpoint index?)");
  const Id attr(H5Aopen(id(), name.c_str(), H5P_DEFAULT), H5Aclose);
  Id type(H5Aget_type(attr.get()), H5Tclose);
  std::string value(H5Tget_size(type.get()), '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), path_, "read attribute " + name);
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

std::vector<std::string> File::attribute_names() const {
  std::vector<std::string> names;
  const auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t at = 0;
  check(H5Aiterate2(id(), H5_INDEX_NAME, H5_ITER_INC, &at, collect, &names), path_, "list attributes");
  return names;
}

void File::write_virtual(const std::string& name, const Shape& shape,
                         const std::vector<Source>& sources) {
  const Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const Id vspace_all = dataspace(shape);
  for (const Source& s : sources) {
    const Id vspace = dataspace(shape);
    std::vector<hsize_t> start(s.start.begin(), s.start.end()), count(s.count.begin(), s.count.end());
    check(H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          path_, "select a hyperslab of " + name);
    const Id src = dataspace(s.count);
    check(H5Pset_virtual(dcpl.get(), vspace.get(), s.file.c_str(), s.dataset.c_str(), src.get()), path_,
          "map " + s.file + ":" + s.dataset + " into " + name);
  }
  const Id lcpl = link_create_with_parents();
  const Id dset(H5Dcreate2(id(), name.c_str(), H5T_IEEE_F32LE, vspace_all.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                H5Dclose);
  require(dset.get() >= 0, path_, ": cannot create the virtual dataset ", name);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  require(fd >= 0, path, ": cannot open to sync: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  require(rc == 0, path, ": fsync failed: ", std::strerror(errno));
}

}  // namespace spin::ckpt::h5
