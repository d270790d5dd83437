// What a resume trusts: manifest.json's sizes and CRC-32s, checked by every rank for its share of
// the files (balanced by bytes) so that the job reads each byte once. A corrupted byte is found by
// exactly one share; a wrong size by every one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "worker/train/checkpoint_manifest.h"

namespace fs = std::filesystem;

namespace {

class CheckpointManifest : public ::testing::Test {
 protected:
  void SetUp() override { fresh(); }
  // A checkpoint folder of four intact files and their manifest (again, when a test reuses it).
  void fresh() {
    dir_ = fs::temp_directory_path() / ("pdsd-manifest-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Sizes that a byte-balanced split puts on different shares: 3 MB + 1 MB against 2 MB + 2 MB.
    std::vector<std::pair<std::string, size_t>> files = {
        {"a.safetensors", 3 << 20}, {"b.safetensors", 2 << 20}, {"c.safetensors", 2 << 20}, {"d.safetensors", 1 << 20}};
    std::vector<pdsd::FileDigest> digests;
    for (const auto& [name, size] : files) {
      std::string bytes(size, '\0');
      for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
      pdsd::write_file_durably((dir_ / name).string(), bytes);
      digests.push_back(pdsd::digest_file(dir_.string(), name));
    }
    pdsd::write_manifest(dir_.string(), digests);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void flip_a_byte(const std::string& name) {
    std::fstream f(dir_ / name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(1000);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(1000);
    f.write(&c, 1);
  }
  std::vector<std::string> verdicts(int parts) {
    std::vector<std::string> out;
    for (int p = 0; p < parts; ++p) out.push_back(pdsd::validate_checkpoint(dir_.string(), true, p, parts));
    return out;
  }

  fs::path dir_;
};

// A large file is checksummed as parallel ranges whose CRCs are combined: the same digest as one pass,
// whatever the number of ranges (and an odd size leaves the last range longer).
TEST_F(CheckpointManifest, ParallelRangesGiveTheWholeFilesCrc) {
  std::string bytes((5 << 20) + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 40503u) >> 7);
  pdsd::write_file_durably((dir_ / "odd.bin").string(), bytes);
  const uint32_t whole = pdsd::crc32_of(bytes.data(), bytes.size());
  for (uint64_t min_range : {uint64_t{1} << 30, uint64_t{2} << 20, uint64_t{1} << 20, uint64_t{4096}}) {
    pdsd::FileDigest d = pdsd::digest_file(dir_.string(), "odd.bin", min_range);
    EXPECT_EQ(d.bytes, bytes.size());
    EXPECT_EQ(d.crc32, whole) << "ranges of at least " << min_range << " bytes";
  }
}

TEST_F(CheckpointManifest, IntactFilesValidateInEveryShare) {
  for (int parts : {1, 2, 3, 8}) {
    for (const auto& why : verdicts(parts)) EXPECT_EQ(why, "") << parts << " parts";
  }
}

TEST_F(CheckpointManifest, EachCorruptedFileIsFoundByExactlyOneShare) {
  for (const std::string name : {"a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"}) {
    fresh();
    flip_a_byte(name);
    ASSERT_NE(pdsd::validate_checkpoint(dir_.string()), "") << name << ": one process must find it";
    for (int parts : {2, 3}) {
      int found = 0;
      for (const auto& why : verdicts(parts)) {
        if (why.empty()) continue;
        ++found;
        EXPECT_NE(why.find(name + ": CRC-32 "), std::string::npos) << why;
      }
      EXPECT_EQ(found, 1) << name << " with " << parts << " parts";
    }
  }
}

TEST_F(CheckpointManifest, SharesAreBalancedByBytes) {
  // Flipping a byte in each file in turn shows which share reads it: 3 MB + 1 MB on one share,
  // the two 2 MB files on the other.
  std::map<std::string, int> share;
  for (const std::string name : {"a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"}) {
    fresh();
    flip_a_byte(name);
    auto v = verdicts(2);
    share[name] = v[0].empty() ? 1 : 0;
  }
  EXPECT_EQ(share["a.safetensors"], share["d.safetensors"]);
  EXPECT_EQ(share["b.safetensors"], share["c.safetensors"]);
  EXPECT_NE(share["a.safetensors"], share["b.safetensors"]);
}

TEST_F(CheckpointManifest, AWrongSizeIsFoundByEveryShare) {
  fs::resize_file(dir_ / "d.safetensors", 1000);
  for (const auto& why : verdicts(3)) {
    EXPECT_NE(why.find("d.safetensors: 1000 bytes, the manifest says 1048576 (truncated)"), std::string::npos) << why;
  }
}

}  // namespace
