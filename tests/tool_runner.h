// Runs the built `metallic` command (env METALLIC_TOOL) as a user would, capturing its output.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace metallic::test {

/// Exit status (as pclose returns it) and captured output of one command run.
struct ToolRun {
  int status;
  std::string out;
};

/// `arg` quoted for /bin/sh.
inline std::string shell_quote(const std::string& arg) {
  std::string out = "'";
  for (const char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// Runs `metallic args...` with `input` on stdin; stderr is captured too when `with_stderr`.
inline ToolRun run_tool(const std::vector<std::string>& args, const std::string& input = "",
                        bool with_stderr = false) {
  const char* tool = std::getenv("METALLIC_TOOL");
  std::string command = "printf %s " + shell_quote(input) + " | " + shell_quote(tool ? tool : "metallic");
  for (const auto& a : args) command += ' ' + shell_quote(a);
  command += with_stderr ? " 2>&1" : " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, {}};
  std::string out;
  std::array<char, 4096> buffer;
  for (size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) out.append(buffer.data(), n);
  return {pclose(pipe), out};
}

/// The last line of `out`, without its newline.
inline std::string last_line(std::string out) {
  if (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

}  // namespace metallic::test
