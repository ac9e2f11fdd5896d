// Publication: the Message frame built once, its compressed variants built
// at most once per window and shared, each decodable by a client that
// negotiated that window, and the completion hook on the last release.
#include "pubsub/publication.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <zlib.h>

#include <atomic>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "refs.h"

namespace wstrace::pubsub {
namespace {

using test::refs;

std::string payload_of(const Frame* f, ws::FrameHeader* h = nullptr) {
  ws::FrameHeader local;
  ws::FrameHeader& fh = h ? *h : local;
  EXPECT_EQ(ws::parse_header(f->data(), f->size(), fh), ws::HeaderStatus::Ok);
  return std::string(reinterpret_cast<const char*>(f->data()) + fh.header_size,
                     static_cast<size_t>(fh.payload_size));
}

// A strict client inflater: one output byte at a time, so every
// back-reference must be in a window of 2^bits bytes.
std::optional<std::string> client_inflate(const std::string& z, int bits) {
  z_stream zs{};
  if (inflateInit2(&zs, -bits) != Z_OK) return std::nullopt;
  std::string in = z + std::string("\x00\x00\xff\xff", 4);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    char c;
    zs.next_out = reinterpret_cast<Bytef*>(&c);
    zs.avail_out = 1;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      inflateEnd(&zs);
      return std::nullopt;
    }
    if (zs.avail_out == 0) {
      out.push_back(c);
      continue;
    }
    if (zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  return out;
}

Publication* publish(std::string_view channel, std::string_view content, uint64_t offset = 1) {
  Buffer scratch;
  Publication* p = Publication::make(channel, content, 1234, TraceContext{}, 7);
  p->seal("e1", offset, scratch);
  return p;
}

std::string text_with_far_repeats(size_t n) {
  std::mt19937 rng(9);
  std::string block;
  for (int i = 0; i < 2000; ++i) block.push_back(static_cast<char>('a' + rng() % 26));
  std::string s;
  while (s.size() < n) s += block;
  s.resize(n);
  return s;
}

TEST(Publication, PlainFrame) {
  Publication* p = publish("news", "he said \"hi\"");
  EXPECT_EQ(p->channel(), "news");
  EXPECT_EQ(p->content(), "he said \"hi\"");
  EXPECT_EQ(p->content_size(), 12u);
  EXPECT_EQ(p->published_unix_ns(), 1234u);
  EXPECT_EQ(p->origin_node(), 7u);
  ws::FrameHeader h;
  std::string body = payload_of(p->plain(), &h);
  EXPECT_TRUE(h.fin);
  EXPECT_FALSE(h.rsv1);
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.opcode, 0x1);
  EXPECT_EQ(body, R"({"type":"Message","channel":"news","content":"he said \"hi\"","offset":1})");
  EXPECT_EQ(p->epoch(), "e1");
  EXPECT_EQ(p->offset(), 1u);
  p->unref();
}

TEST(Publication, UnsealedUntilItsSequencerGivesItAPosition) {
  Publication* p = Publication::make("c", "x", 1, TraceContext{}, 7);
  EXPECT_FALSE(p->sealed());
  EXPECT_EQ(p->plain(), nullptr);
  Buffer scratch;
  p->seal("abc", 42, scratch);
  EXPECT_TRUE(p->sealed());
  EXPECT_EQ(payload_of(p->plain()), R"({"type":"Message","channel":"c","content":"x","offset":42})");
  EXPECT_GT(p->memory_bytes(), sizeof(Publication));
  p->unref();
}

TEST(Publication, GapNotice) {
  Buffer scratch;
  Publication* g = Publication::make_gap("room", "e2", 5, 9, {}, scratch);
  EXPECT_TRUE(g->is_gap());
  EXPECT_EQ(g->gap_from(), 5u);
  EXPECT_EQ(g->offset(), 9u);
  EXPECT_EQ(g->gap_size(), 5u);
  EXPECT_EQ(payload_of(g->plain()),
            R"({"type":"Gap","channel":"room","epoch":"e2","from":5,"to":9})");
  g->unref();
  // A reset that lost nothing of the new epoch: from 1 to 0.
  g = Publication::make_gap("room", "e3", 1, 0, "e2", scratch);
  EXPECT_EQ(g->gap_size(), 0u);
  EXPECT_EQ(payload_of(g->plain()),
            R"({"type":"Gap","channel":"room","epoch":"e3","from":1,"to":0,"reset":true,"previous_epoch":"e2"})");
  g->unref();
  Publication* m = publish("room", "m");
  EXPECT_FALSE(m->is_gap());
  m->unref();
}

TEST(Publication, SmallMessagesAreNotCompressed) {
  Publication* p = publish("c", "short");
  DeflaterSet ds;
  EXPECT_LT(p->plain()->payload_size(), Publication::kCompressMin);
  EXPECT_EQ(p->deflated(15, ds), p->plain());
  EXPECT_EQ(p->deflated(9, ds), p->plain());
  EXPECT_EQ(refs(p->plain()), 1u);  // no reference taken for the plain answer
  p->unref();
}

TEST(Publication, CompressedOnceAndShared) {
  std::string content = text_with_far_repeats(300);  // 300 < 512: one variant for all windows
  Publication* p = publish("room", content);
  const std::string plain = payload_of(p->plain());
  DeflaterSet ds;
  Frame* f15 = p->deflated(15, ds);
  ASSERT_NE(f15, p->plain());
  EXPECT_EQ(refs(f15), 1u);  // owned by the publication
  ws::FrameHeader h;
  std::string z = payload_of(f15, &h);
  EXPECT_TRUE(h.rsv1);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, 0x1);
  EXPECT_LT(z.size(), plain.size());
  for (int bits = 9; bits <= 15; ++bits) {
    EXPECT_EQ(p->deflated(static_cast<uint8_t>(bits), ds), f15) << bits;
    auto back = client_inflate(z, bits);
    ASSERT_TRUE(back) << bits;
    EXPECT_EQ(*back, plain);
  }
  EXPECT_EQ(refs(f15), 1u);
  p->unref();
}

TEST(Publication, LongMessagesGetAVariantPerWindow) {
  std::string content = text_with_far_repeats(20000);
  Publication* p = publish("room", content);
  const std::string plain = payload_of(p->plain());
  DeflaterSet ds;
  std::set<Frame*> variants;
  for (int bits = 9; bits <= 15; ++bits) {
    Frame* f = p->deflated(static_cast<uint8_t>(bits), ds);
    ASSERT_NE(f, p->plain());
    EXPECT_EQ(p->deflated(static_cast<uint8_t>(bits), ds), f);  // built once
    variants.insert(f);
    ws::FrameHeader h;
    std::string z = payload_of(f, &h);
    EXPECT_TRUE(h.rsv1);
    // A client that negotiated server_max_window_bits=bits can decode it.
    auto back = client_inflate(z, bits);
    ASSERT_TRUE(back) << "window " << bits;
    EXPECT_EQ(*back, plain);
  }
  EXPECT_EQ(variants.size(), 7u);
  p->unref();
}

TEST(Publication, IncompressibleContentSendsThePlainFrame) {
  std::mt19937 rng(4);
  std::string noise;
  for (int i = 0; i < 5000; ++i) noise.push_back(static_cast<char>('!' + rng() % 90));
  // JSON-escaped noise barely compresses; make it truly random bytes in \u form.
  std::string content;
  for (int i = 0; i < 3000; ++i) content.push_back(static_cast<char>(1 + rng() % 31));
  Publication* p = publish("n", content);
  DeflaterSet ds;
  Frame* f = p->deflated(15, ds);
  // Either compressed smaller, or the plain frame with an extra reference.
  if (f == p->plain()) {
    EXPECT_EQ(refs(f), 2u);
  } else {
    EXPECT_LT(f->size(), p->plain()->size());
  }
  p->unref();
}

TEST(Publication, ConcurrentDeflatedBuildsOneVariant) {
  std::string content = text_with_far_repeats(5000);
  Publication* p = publish("room", content);
  std::vector<Frame*> got(8);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      DeflaterSet ds;  // one per thread, as in the workers
      ready.fetch_add(1);
      while (ready.load() < 8) {
      }
      got[t] = p->deflated(15, ds);
    });
  }
  for (auto& t : threads) t.join();
  for (Frame* f : got) EXPECT_EQ(f, got[0]);
  EXPECT_EQ(refs(got[0]), 1u);  // the losers' copies were released
  p->unref();
}

struct Completions {
  int calls = 0;
  uint32_t recipients = 0;
  uint32_t dropped = 0;
  const Publication* last = nullptr;
};

TEST(Publication, CompletionHookRunsOnceTheLastThreadDelivered) {
  Completions seen;
  Publication::set_completion_hook(
      [](const Publication& p, void* ctx) {
        auto* c = static_cast<Completions*>(ctx);
        ++c->calls;
        c->recipients = p.recipients();
        c->dropped = p.dropped();
        c->last = &p;
      },
      &seen);
  Publication* p = publish("c", "content");
  Frame* plain = p->plain();
  plain->ref();  // a subscriber's queue still holds the frame
  p->ref();      // the history keeps it: that does not delay the hook
  p->expect_deliveries(2);
  p->mark_delivery_start(50);
  p->mark_delivery_start(60);  // the first thread's time stays
  EXPECT_EQ(p->delivery_start_unix_ns(), 50u);
  p->add_delivered(10, 1);
  p->delivered_here();
  p->add_delivered(5, 2);
  EXPECT_EQ(seen.calls, 0);
  p->delivered_here();
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(seen.last, p);
  EXPECT_EQ(seen.recipients, 15u);
  EXPECT_EQ(seen.dropped, 3u);
  p->unref();
  p->unref();
  EXPECT_EQ(seen.calls, 1);  // not again at the last release
  // The frame outlives the publication.
  EXPECT_EQ(refs(plain), 1u);
  EXPECT_NE(payload_of(plain).find("\"content\""), std::string::npos);
  plain->unref();
  Publication::set_completion_hook(nullptr, nullptr);
}

TEST(DeflaterSet, OneDeflaterPerWindow) {
  DeflaterSet ds;
  EXPECT_EQ(&ds.get(15), &ds.get(15));
  EXPECT_NE(&ds.get(15), &ds.get(9));
}

}  // namespace
}  // namespace wstrace::pubsub
