// `cushioncache`: the command-line front end. Exit codes: 0 success, 2 bad usage or
// config, 3 missing/corrupt/mismatched input, 4 unsupported, 5 numerical, 1 internal
// (docs/cli.md).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
int main(int argc, char** argv) {
  namespace cc = cushioncache;
  cc::reuse_freed_host_memory();
  CLI::App app{"CushionCache: attention-sink prefixes for accurate per-tensor static INT8 activation quantization of LLMs"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn, error or off")->capture_default_str();
  app.parse_complete_callback([&] { cc::log::set_level(cc::log::parse_level(log_level)); });
  cc::cli::add_generate_command(app);
  cc::cli::add_tokenize_command(app);
  cc::cli::add_logits_command(app);
  cc::cli::add_convert_command(app);
  cc::cli::add_eval_command(app);
  cc::cli::add_inspect_command(app);
  cc::cli::add_search_command(app);
  cc::cli::add_tune_command(app);
  cc::cli::add_baseline_command(app);
  cc::cli::add_run_command(app);
  cc::cli::add_train_command(app);
  cc::cli::add_plan_memory_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", e.what());
    return 2;
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    // The library speaks of resuming; on the command line that is --resume.
    if (e.kind() == cc::ErrorKind::kInterrupted) std::fputs("(run the same command with --resume to continue)\n", stderr);
    return cc::exit_code(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
