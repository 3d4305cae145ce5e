// The datasource exchange document's bytes and its atomic file.
#include "aggregator/app/atomic_file.h"
#include "aggregator/app/datasource_exchange.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace dpa::app {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DatasourceExchange, SortedByUidThenTypeWithExactlyTheThreeFields) {
  const std::string doc = exchange_document(
      {{"prometheus", "b"}, {"loki", "a"}, {"tempo", "b"}, {"loki", "c"}}, "grafana-1");
  EXPECT_EQ(doc,
            R"([{"type":"loki","uid":"a","grafana_uid":"grafana-1"},)"
            R"({"type":"prometheus","uid":"b","grafana_uid":"grafana-1"},)"
            R"({"type":"tempo","uid":"b","grafana_uid":"grafana-1"},)"
            R"({"type":"loki","uid":"c","grafana_uid":"grafana-1"}])"
            "\n");
}

TEST(DatasourceExchange, IncompleteEntriesAreNeverPublished) {
  EXPECT_EQ(exchange_document({{"", "no-type"}, {"loki", ""}, {"", ""}}, "g"), "[]\n");
  EXPECT_EQ(exchange_document({{"loki", "x"}, {"", "y"}}, "g"),
            R"([{"type":"loki","uid":"x","grafana_uid":"g"}])" "\n");
}

TEST(DatasourceExchange, SameInputSameBytesWhateverTheOrder) {
  std::vector<ExchangeEntry> a = {{"t1", "u2"}, {"t2", "u1"}, {"t3", "u3"}, {"t1", "u2"}};
  std::vector<ExchangeEntry> b = {{"t3", "u3"}, {"t1", "u2"}, {"t2", "u1"}};
  EXPECT_EQ(exchange_document(a, "g"), exchange_document(b, "g"));
}

TEST(DatasourceExchange, WithoutAGrafanaUidNothingIsPublished) {
  DatasourceExchange exchange("", "");
  exchange.update({{"loki", "a"}});
  EXPECT_FALSE(exchange.document().has_value());
  DatasourceExchange published("g", "");
  EXPECT_EQ(published.document(), "[]\n");
  published.update({{"loki", "a"}});
  EXPECT_EQ(published.document(), R"([{"type":"loki","uid":"a","grafana_uid":"g"}])" "\n");
}

TEST(DatasourceExchange, TheFileIsRewrittenOnChangeOnly) {
  const auto dir = std::filesystem::temp_directory_path() / ("dpa-exchange-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "exchange.json").string();
  DatasourceExchange exchange("g", file);
  exchange.update({{"loki", "a"}});
  EXPECT_EQ(read(file), R"([{"type":"loki","uid":"a","grafana_uid":"g"}])" "\n");
  const auto first = std::filesystem::last_write_time(file);
  std::filesystem::last_write_time(file, first - std::chrono::hours(1));  // mark it
  exchange.update({{"loki", "a"}});
  EXPECT_EQ(std::filesystem::last_write_time(file), first - std::chrono::hours(1));  // untouched
  exchange.update({{"loki", "a"}, {"tempo", "b"}});
  EXPECT_NE(read(file).find("tempo"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(AtomicFile, AReaderNeverSeesPartOfAFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("dpa-atomic-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "doc").string();
  const std::string small(10, 's');
  const std::string large(1 << 20, 'L');
  ASSERT_TRUE(write_file_atomically(file, small).ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      const std::string seen = read(file);
      if (seen != small && seen != large) ++torn;
      ++reads;
    }
  });
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(write_file_atomically(file, i % 2 ? small : large).ok());
  while (reads.load() < 100) std::this_thread::yield();
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_FALSE(std::filesystem::exists(file + ".tmp"));
  // A directory that does not exist: an error naming the path, not an exception.
  auto failed = write_file_atomically((dir / "missing" / "doc").string(), small);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("missing/doc"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dpa::app
