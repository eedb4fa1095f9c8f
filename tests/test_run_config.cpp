// The run config's one field table: every setting can be given in the YAML file, as an
// override (`run --set KEY=VALUE`) and as a command-line flag (set_run_config_value, what
// the CLI's settings flags call), gives the same resolved config every way, and an
// out-of-range or ill-typed value is refused with the same message every way, only the
// location differing (file:line, "override KEY" or the flag).
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/pipeline/run_config.h"
#include "support/test_models.h"
#include "support/test_support.h"

#include <catch2/catch.hpp>  // last: glog (through ATen) defines CHECK too

namespace cc = cushioncache;

namespace {

// The base config every case starts from: a model, and for the planted-sink settings the
// two a planted sink needs (the examples differ from these).
std::string base_yaml(const std::string& key) {
  std::string yaml = "model: /nowhere/model.bin\n";
  if (key.rfind("planted_sink.", 0) == 0) yaml += "planted_sink: {sink_token: 0, trigger_tokens: [2]}\n";
  return yaml;
}

// The base config with `key` set to `value` (YAML text). A planted-sink key joins the
// base's planted_sink mapping (replacing its value there), which must stay one mapping.
std::string yaml_with(const std::string& key, const std::string& value);

// "a.b.c: v" as nested YAML.
std::string nested_yaml(const std::string& key, const std::string& value) {
  std::string out, indent;
  std::size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    if (dot == std::string::npos) return out + indent + key.substr(start) + ": " + value + "\n";
    out += indent + key.substr(start, dot - start) + ":\n";
    indent += "  ";
    start = dot + 1;
  }
}

std::string yaml_with(const std::string& key, const std::string& value) {
  if (key.rfind("planted_sink.", 0) != 0) return base_yaml(key) + nested_yaml(key, value);
  std::string yaml = "model: /nowhere/model.bin\nplanted_sink:\n  " + key.substr(13) + ": " + value + "\n";
  if (key != "planted_sink.sink_token") yaml += "  sink_token: 0\n";
  if (key != "planted_sink.trigger_tokens") yaml += "  trigger_tokens: [2]\n";
  return yaml;
}

std::string write(const cc::testing::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

// The message without its location ("file:line: " or "override KEY: ").
std::string refusal(const std::function<void()>& load, const std::string& key) {
  try {
    load();
  } catch (const cc::Error& e) {
    INFO(e.message());
    CHECK(e.kind() == cc::ErrorKind::kInvalidConfig);
    CHECK_THAT(e.message(), Catch::Contains(key));
    const auto colon = e.message().find(": ");
    return colon == std::string::npos ? e.message() : e.message().substr(colon + 2);
  }
  FAIL("no error for " << key);
  return "";
}

}  // namespace

TEST_CASE("every run-config setting is set the same from YAML and from an override, and refused with the same message", "[pipeline]") {
  cc::testing::TempDir dir;
  const auto settings = cc::run_config_settings();
  REQUIRE(settings.size() >= 50);
  for (const cc::RunConfigSetting& s : settings) {
    INFO(s.key);
    std::string base = base_yaml(s.key);
    const std::string base_path = write(dir, "base.yaml", base);
    const std::string yaml_path = write(dir, "set.yaml", yaml_with(s.key, s.example));

    const nlohmann::json defaults = cc::to_json(cc::load_run_config(base_path));
    nlohmann::json from_yaml = cc::to_json(cc::load_run_config(yaml_path));
    nlohmann::json from_override = cc::to_json(cc::load_run_config(base_path, {s.key + "=" + s.example}));
    // The name defaults to the file's stem, which differs between the two files.
    if (s.key != "name") from_yaml["name"] = from_override["name"] = defaults["name"];
    CHECK(from_yaml == from_override);
    CHECK(from_yaml != defaults);  // the example changes something: the setting is not ignored
    cc::RunConfig flagged = cc::load_run_config(base_path);
    cc::set_run_config_value(flagged, s.key, s.example, "--flag");
    nlohmann::json from_flag_value = cc::to_json(flagged);
    if (s.key != "name") from_flag_value["name"] = defaults["name"];
    CHECK(from_flag_value == from_override);

    // Out of range: refused both ways with one message.
    if (!s.out_of_range.empty()) {
      const std::string bad_path = write(dir, "bad.yaml", yaml_with(s.key, s.out_of_range));
      const std::string from_file = refusal([&] { cc::load_run_config(bad_path); }, s.key);
      const std::string from_flag = refusal([&] { cc::load_run_config(base_path, {s.key + "=" + s.out_of_range}); }, s.key);
      CHECK(from_file == from_flag);
      const std::string from_cli = refusal(
          [&] {
            cc::RunConfig c = cc::load_run_config(base_path);
            cc::set_run_config_value(c, s.key, s.out_of_range, "--flag");
          },
          s.key);
      CHECK(from_file == from_cli);
    }
    // A value of the wrong shape: the same again.
    if (s.key.rfind("planted_sink.", 0) != 0) {
      const std::string bad_path = write(dir, "shape.yaml", base + nested_yaml(s.key, "{not: valid}"));
      const std::string from_file = refusal([&] { cc::load_run_config(bad_path); }, s.key);
      const std::string from_flag = refusal([&] { cc::load_run_config(base_path, {s.key + "={not: valid}"}); }, s.key);
      CHECK(from_file == from_flag);
    }
  }
}

TEST_CASE("run-config overrides: unknown keys, malformed pairs and sections", "[pipeline]") {
  cc::testing::TempDir dir;
  const std::string base = write(dir, "base.yaml", "model: /nowhere/model.bin\nsearch: {tau: 0.7}\n");
  cc::testing::expect_error([&] { cc::load_run_config(base, {"search.tua=0.3"}); }, cc::ErrorKind::kInvalidConfig,
                            {"override search.tua", "unknown key 'search.tua'"});
  cc::testing::expect_error([&] { cc::load_run_config(base, {"search.tau"}); }, cc::ErrorKind::kInvalidConfig, {"KEY=VALUE"});
  cc::testing::expect_error([&] { cc::load_run_config(base, {"search.tau="}); }, cc::ErrorKind::kInvalidConfig, {"no value"});
  // A whole section as a flow mapping; later overrides win over the file and earlier ones.
  const cc::RunConfig c = cc::load_run_config(base, {"search={tau: 0.2, max_length: 3}", "search.tau=0.4", "search.candidates={frequent: 32}"});
  CHECK(c.search.tau == Approx(0.4));
  CHECK(c.search.max_length == 3);
  REQUIRE(c.frequent_candidates);
  CHECK(c.frequent_candidates->count == 32);
  // The file's errors still name the file and line.
  const std::string bad = write(dir, "bad.yaml", "model: /nowhere/model.bin\nsearch:\n  tau: 2\n");
  cc::testing::expect_error([&] { cc::load_run_config(bad); }, cc::ErrorKind::kInvalidConfig, {"bad.yaml:3", "'search.tau' must be in (0, 1], got 2"});
  // A setting of an optional section that is not given reads as null, and reading it
  // does not create the section.
  const cc::RunConfig plain = cc::load_run_config(base);
  CHECK(cc::run_config_value(plain, "planted_sink.channel").is_null());
  CHECK_FALSE(plain.planted_sink.has_value());
  CHECK(cc::run_config_value(plain, "search.tau") == 0.7);
  const std::string missing = write(dir, "missing.yaml", "search: {tau: 0.5}\n");
  cc::testing::expect_error([&] { cc::load_run_config(missing); }, cc::ErrorKind::kInvalidConfig, {"missing key 'model'"});
}
