// Child processes of sluice-bench (the dataplane, testpmd): started with
// fork/exec, output to files, killed with the parent (PR_SET_PDEATHSIG),
// and always reaped before sluice-bench exits.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sluice::bench {

struct Child {
  std::string name;
  pid_t pid = -1;
  int stdin_fd = -1;  // write end of the child's stdin pipe, or -1
  std::string out_path, err_path;
  int status = 0;     // wait status once reaped
};

// Starts argv[0] (searched in PATH) with stdout/stderr appended to the
// given files; with want_stdin, the child's stdin is a pipe we hold.
bool spawn(Child* c, const std::vector<std::string>& argv, bool want_stdin, std::string* err);
// True while the child runs; reaps it (and records its status) when not.
bool alive(Child* c);
// Closes its stdin (if any), sends sig, waits up to timeout_s, then SIGKILL.
void stop(Child* c, int sig, double timeout_s);
std::string describe_exit(const Child& c);
std::string read_file(const std::string& path, size_t max_bytes = 16384);

// Signal handling: SIGINT/SIGTERM/SIGHUP set g_stop; a second one kills the
// registered children and exits at once.
extern volatile int g_stop;
void install_signal_handlers();

}  // namespace sluice::bench
