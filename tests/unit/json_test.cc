// Json: building and reading, Dump (compact, pretty, escaping, numbers),
// strict Parse (unicode, every malformed class refused with EINVAL).
#include "common/json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace tempfs {
namespace {

Json MustParse(std::string_view text) {
  auto r = Json::Parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : Json();
}

void ExpectRefused(std::string_view text) {
  auto r = Json::Parse(text);
  ASSERT_FALSE(r.ok()) << "accepted: " << text;
  EXPECT_EQ(r.err(), EINVAL) << text;
  EXPECT_NE(r.status().message().find("at byte "), std::string::npos) << r.status().message();
}

TEST(Json, BuildAndRead) {
  Json j = Json::Object()
               .Set("name", "tempfs")
               .Set("n", 3)
               .Set("big", uint64_t{1} << 40)
               .Set("ratio", 0.5)
               .Set("on", true)
               .Set("none", nullptr)
               .Set("list", Json::Array().Push(1).Push("two").Push(Json::Object()));
  EXPECT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 7u);
  EXPECT_EQ(j.Find("name")->as_string(), "tempfs");
  EXPECT_EQ(j.Find("n")->as_int(), 3);
  EXPECT_EQ(j.Find("n")->as_double(), 3.0);  // ints convert
  EXPECT_EQ(j.Find("big")->as_int(), int64_t{1} << 40);
  EXPECT_EQ(j.Find("ratio")->as_double(), 0.5);
  EXPECT_TRUE(j.Find("on")->as_bool());
  EXPECT_TRUE(j.Find("none")->is_null());
  EXPECT_EQ(j.Find("missing"), nullptr);
  const Json& list = *j.Find("list");
  ASSERT_EQ(list.items().size(), 3u);
  EXPECT_EQ(list.items()[1].as_string(), "two");
  EXPECT_TRUE(list.items()[2].is_object());
  // Insertion order kept; Set on an existing key replaces in place.
  j.Set("name", "other");
  EXPECT_EQ(j.members()[0].first, "name");
  EXPECT_EQ(j.members()[0].second.as_string(), "other");
  EXPECT_EQ(j.members()[6].first, "list");
  // Wrong-type reads give empty answers.
  EXPECT_EQ(j.as_int(), 0);
  EXPECT_EQ(j.as_string(), "");
  EXPECT_TRUE(j.items().empty());
  EXPECT_EQ(Json(7).size(), 0u);
  // Unsigned above INT64_MAX becomes a double.
  EXPECT_TRUE(Json(std::numeric_limits<uint64_t>::max()).is_double());
}

TEST(Json, CompactDumpKeepsOrder) {
  Json j = Json::Object().Set("z", 1).Set("a", Json::Array().Push(true).Push(nullptr)).Set("m", "x");
  EXPECT_EQ(j.Dump(), R"({"z":1,"a":[true,null],"m":"x"})");
  EXPECT_EQ(Json::Object().Dump(), "{}");
  EXPECT_EQ(Json::Array().Dump(), "[]");
  EXPECT_EQ(Json().Dump(), "null");
}

TEST(Json, PrettyDump) {
  Json j = Json::Object().Set("a", 1).Set("b", Json::Array().Push(1).Push(Json::Object().Set("c", "d"))).Set(
      "e", Json::Object());
  EXPECT_EQ(j.Dump(2),
            "{\n"
            "  \"a\": 1,\n"
            "  \"b\": [\n"
            "    1,\n"
            "    {\n"
            "      \"c\": \"d\"\n"
            "    }\n"
            "  ],\n"
            "  \"e\": {}\n"
            "}");
  EXPECT_EQ(Json::Array().Push(1).Dump(0), "[\n1\n]");
  EXPECT_EQ(MustParse(j.Dump(4)), j);
}

TEST(Json, Escaping) {
  std::string s = "q\"b\\s/\n\r\t\b\f";
  s += '\0';
  s += '\x01';
  s += '\x1f';
  s += "\xc3\xa9\xf0\x9f\x98\x80";  // é and an emoji pass through as bytes
  std::string dumped = Json(s).Dump();
  EXPECT_EQ(dumped, "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0000\\u0001\\u001f\xc3\xa9\xf0\x9f\x98\x80\"");
  EXPECT_EQ(MustParse(dumped).as_string(), s);
  // Keys are escaped too.
  EXPECT_EQ(Json::Object().Set("a\"b", 1).Dump(), R"({"a\"b":1})");
}

TEST(Json, UnicodeEscapes) {
  EXPECT_EQ(MustParse(R"("\u0041\u00e9\u20AC")").as_string(), "A\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(MustParse(R"("\ud83d\ude00")").as_string(), "\xf0\x9f\x98\x80");  // surrogate pair
  EXPECT_EQ(MustParse(R"("\u0000")").as_string(), std::string(1, '\0'));
  EXPECT_EQ(MustParse(R"("\/")").as_string(), "/");
  ExpectRefused(R"("\ud83d")");         // high surrogate alone
  ExpectRefused(R"("\ud83dx")");        // high surrogate, then text
  ExpectRefused(R"("\ud83d\u0041")");   // high surrogate, then not a low one
  ExpectRefused(R"("\ude00")");         // low surrogate alone
  ExpectRefused(R"("\u12")");           // short
  ExpectRefused(R"("\u12g4")");         // not hex
  ExpectRefused(R"("\x")");             // unknown escape
  ExpectRefused("\"\xc3\"");            // truncated UTF-8
  ExpectRefused("\"\xc0\xaf\"");        // overlong
  ExpectRefused("\"\xed\xa0\x80\"");    // encoded surrogate
  ExpectRefused("\"\xff\"");            // never valid
}

TEST(Json, RoundTrip) {
  const char* texts[] = {
      R"({"a":[1,-2,3.5,"x",true,false,null],"b":{"c":{}},"d":[]})",
      R"([[[[]]]])",
      R"("")",
      R"(0)",
      R"(-1.5e-07)",
  };
  for (const char* t : texts) {
    Json j = MustParse(t);
    EXPECT_EQ(MustParse(j.Dump()), j) << t;
    EXPECT_EQ(MustParse(j.Dump(3)), j) << t;
  }
  EXPECT_EQ(MustParse(texts[0]).Dump(), texts[0]);
  // Whitespace around and inside is fine.
  EXPECT_EQ(MustParse(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n").Dump(), R"({"a":[1,2]})");
  // Duplicate keys: the last value wins, at the first one's place.
  EXPECT_EQ(MustParse(R"({"a":1,"b":2,"a":3})").Dump(), R"({"a":3,"b":2})");
}

TEST(Json, Numbers) {
  const int64_t lo = std::numeric_limits<int64_t>::min();
  const int64_t hi = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(Json(lo).Dump(), "-9223372036854775808");
  EXPECT_EQ(Json(hi).Dump(), "9223372036854775807");
  Json jlo = MustParse("-9223372036854775808");
  EXPECT_TRUE(jlo.is_int());
  EXPECT_EQ(jlo.as_int(), lo);
  EXPECT_EQ(MustParse("9223372036854775807").as_int(), hi);
  // One past int64 becomes a double.
  Json over = MustParse("9223372036854775808");
  EXPECT_TRUE(over.is_double());
  EXPECT_EQ(over.as_double(), 9223372036854775808.0);

  Json big = MustParse("1e308");
  EXPECT_TRUE(big.is_double());
  EXPECT_EQ(big.as_double(), 1e308);
  EXPECT_EQ(MustParse(big.Dump()).as_double(), 1e308);
  ExpectRefused("1e309");  // no JSON value we could write back
  EXPECT_EQ(MustParse("1e-400").as_double(), 0.0);

  Json negzero = MustParse(Json(-0.0).Dump());
  EXPECT_EQ(Json(-0.0).Dump(), "-0.0");
  EXPECT_TRUE(negzero.is_double());
  EXPECT_TRUE(std::signbit(negzero.as_double()));

  // Doubles stay doubles and read back exactly.
  EXPECT_EQ(Json(1.0).Dump(), "1.0");
  EXPECT_TRUE(MustParse(Json(1.0).Dump()).is_double());
  for (double d : {0.1, 1.0 / 3, 123456789.123456789, 5e-324, 1.7976931348623157e308, -2.5e-10}) {
    EXPECT_EQ(MustParse(Json(d).Dump()).as_double(), d) << Json(d).Dump();
  }
  // No NaN or Inf in JSON: they are written as null.
  EXPECT_EQ(Json(std::nan("")).Dump(), "null");
  EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).Dump(), "null");
  EXPECT_EQ(Json(-std::numeric_limits<double>::infinity()).Dump(), "null");

  EXPECT_EQ(MustParse("2.9").as_int(), 2);
  EXPECT_EQ(MustParse("-2.9").as_int(), -2);
  EXPECT_EQ(MustParse("1E2").as_double(), 100.0);
  EXPECT_EQ(MustParse("1e+2").as_double(), 100.0);
}

TEST(Json, MalformedRefused) {
  const char* bad[] = {
      "",             // nothing
      "   ",          // only whitespace
      "[1,2,]",       // trailing comma in an array
      "{\"a\":1,}",   // trailing comma in an object
      "[,1]",
      "{,}",
      "01",           // leading zero
      "-01",
      "00",
      "1.",           // digit required after '.'
      ".5",
      "1e",           // exponent without digits
      "1e+",
      "+1",
      "-",
      "\"a\nb\"",     // bare control character in a string
      "\"a\tb\"",
      "\"abc",        // unterminated string
      "\"abc\\",
      "[1,2",         // unterminated array
      "{\"a\":1",     // unterminated object
      "{\"a\" 1}",    // missing colon
      "{1:2}",        // key not a string
      "{'a':1}",
      "[1 2]",        // missing comma
      "tru",          // bad literals
      "True",
      "nul",
      "NaN",
      "Infinity",
      "1 2",          // trailing garbage
      "{} x",
      "[]]",
      "\"a\"\"b\"",
      "\xef\xbb\xbf{}",  // byte order mark
  };
  for (const char* t : bad) ExpectRefused(t);
  // A NUL byte inside a string, not just at its end.
  ExpectRefused(std::string_view("\"a\0b\"", 5));
  ExpectRefused(std::string_view("{}\0", 3));
}

TEST(Json, ErrorNamesOffset) {
  auto r = Json::Parse("[1,2,]");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at byte 5"), std::string::npos) << r.status().message();
  r = Json::Parse("{} x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at byte 3"), std::string::npos) << r.status().message();
}

TEST(Json, DepthLimit) {
  auto nested = [](int depth, char open, char close) {
    return std::string(depth, open) + std::string(depth, close);
  };
  EXPECT_TRUE(Json::Parse(nested(Json::kMaxDepth, '[', ']')).ok());
  ExpectRefused(nested(Json::kMaxDepth + 1, '[', ']'));
  ExpectRefused(nested(100000, '[', ']'));  // no stack overflow either
  std::string objects;
  for (int i = 0; i < Json::kMaxDepth; ++i) objects += "{\"a\":";
  EXPECT_TRUE(Json::Parse(objects + "1" + std::string(Json::kMaxDepth, '}')).ok());
  ExpectRefused("{\"a\":" + objects + "1" + std::string(Json::kMaxDepth + 1, '}'));
  // Mixed nesting counts both kinds.
  auto mixed = [](int pairs) {
    std::string s;
    for (int i = 0; i < pairs; ++i) s += "[{\"a\":";
    s += "1";
    for (int i = 0; i < pairs; ++i) s += "}]";
    return s;
  };
  EXPECT_TRUE(Json::Parse(mixed(Json::kMaxDepth / 2)).ok());
  ExpectRefused(mixed(Json::kMaxDepth / 2 + 1));
}

}  // namespace
}  // namespace tempfs
