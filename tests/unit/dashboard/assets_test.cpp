// The embedded dashboard files: every path serves its file, the gzip copy
// inflates to exactly the same bytes, and each ETag is the content's.
#include <gtest/gtest.h>
#include <zlib.h>

#include <set>
#include <string>

#include "dashboard/assets.h"

namespace {

using wstrace::dashboard::asset;

std::string gunzip(std::string_view gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

const char* const kPaths[] = {"/", "/app.js", "/style.css", "/chart.js", "/licenses/chart.js.txt"};

TEST(DashboardAssets, EveryFileHasAnIdenticalGzipCopy) {
  size_t plain = 0, gz = 0;
  for (const char* p : kPaths) {
    auto a = asset(p);
    ASSERT_TRUE(a) << p;
    EXPECT_FALSE(a->body.empty()) << p;
    EXPECT_EQ(gunzip(a->gzip), a->body) << p;
    plain += a->body.size();
    gz += a->gzip.size();
  }
  EXPECT_EQ(plain, wstrace::dashboard::total_bytes());
  EXPECT_EQ(gz, wstrace::dashboard::total_gzip_bytes());
  EXPECT_LT(gz, plain / 2);  // Chart.js and the script compress well
}

TEST(DashboardAssets, PathsAndTypes) {
  EXPECT_EQ(asset("/index.html")->body, asset("/")->body);
  EXPECT_EQ(asset("/")->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(asset("/chart.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(asset("/")->body.find("<html"), std::string_view::npos);
  EXPECT_FALSE(asset("/nope"));
  EXPECT_FALSE(asset("/app.js.gz"));
}

TEST(DashboardAssets, EtagsAreQuotedStableAndDistinct) {
  std::set<std::string> seen;
  for (const char* p : kPaths) {
    const std::string_view e = asset(p)->etag;
    ASSERT_EQ(e.size(), 18u) << p;
    EXPECT_EQ(e.front(), '"');
    EXPECT_EQ(e.back(), '"');
    EXPECT_EQ(asset(p)->etag, e);
    seen.insert(std::string(e));
  }
  EXPECT_EQ(seen.size(), std::size(kPaths));
}

}  // namespace
