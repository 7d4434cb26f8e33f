// Command-line parsing shared by the tempfs binaries: help and version go to
// stdout with exit 0; a usage error is one line on stderr and exit 2.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

namespace tempfs {

// Parses argv; returns the exit code to end with, or nullopt to go on.
inline std::optional<int> ParseArgs(CLI::App& app, int argc, char** argv, const char* prog) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fprintf(stderr, "%s: %s (see %s --help)\n", prog, e.what(), prog);
    return 2;
  }
  return std::nullopt;
}

}  // namespace tempfs
